"""End-to-end: the real CLI on real Trivy reports into real git repositories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from conftest import TRIVY, commit_count, git, ingest_json, read_case_files, run_cli
from reportgen import big_report

PR42 = ("--repo", "acme/shop", "--pr", "42", "--target-branch", "main")
HIGH_REPORT = TRIVY / "pip.json"  # one HIGH and one MEDIUM vulnerability


def cases_repo(work: Path) -> Path:
    return work / "security-cases"


def test_pr_into_main_with_high_blocks(work: Path) -> None:
    code, out, err = ingest_json(HIGH_REPORT, *PR42, "--commit", "abc12300", cwd=work)
    assert code == 1, err
    assert out["gate"] is True and out["decision"] == "block"
    assert out["case_key"] == "github::acme::shop::PR::42"
    assert out["case_status"] == "OPEN" and out["status"] == "NEW"
    assert out["high"] == 1 and out["critical"] == 0
    assert out["counts"] == {
        "critical": 0,
        "high": 1,
        "medium": 1,
        "low": 0,
        "info": 0,
        "unknown": 0,
    }
    assert out["max_severity"] == "HIGH"
    assert out["case_path"] == "cases/github/acme/shop/pr-42/case.yaml"
    repo = cases_repo(work)
    assert out["cases_commit"] == git(repo, "rev-parse", "HEAD").strip()
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)")
    assert "Securecase-Case: github::acme::shop::PR::42" in trailers
    assert "Securecase-Commit: abc123" in trailers
    assert "Securecase-Decision: block" in trailers
    files = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    # The default slot names the scanned artifact (ArtifactName testdata/fixtures/repo/pip).
    raw = "cases/github/acme/shop/pr-42/raw/trivy-repo-testdata-fixtures-repo-pip.json"
    assert sorted(files) == [
        "cases/github/acme/shop/pr-42/case.yaml",
        "cases/github/acme/shop/pr-42/findings.json",
        raw,
    ]
    stored = (repo / raw).read_bytes()
    assert stored == HIGH_REPORT.read_bytes()
    case = yaml.safe_load((repo / out["case_path"]).read_text())
    assert case["gate"]["gate"] is True and case["gate"]["rules"] == ["no-high-into-main"]
    assert case["gate"]["policy"]["path"] == "builtin:policies/default.yaml"


def test_same_report_on_a_branch_passes(work: Path) -> None:
    code, out, err = ingest_json(
        HIGH_REPORT, "--repo", "acme/shop", "--branch", "feature/x", cwd=work
    )
    assert code == 0, err
    assert out["gate"] is False and out["decision"] == "pass"
    assert out["case_key"] == "github::acme::shop::BR::feature/x"
    assert (cases_repo(work) / "cases/github/acme/shop/branch-feature%2Fx/case.yaml").exists()


def test_ci_mode_exits_zero_but_records_the_block(work: Path) -> None:
    code, out, err = ingest_json(HIGH_REPORT, *PR42, "--mode", "ci", cwd=work)
    assert code == 0, err
    assert out["gate"] is True and out["decision"] == "block" and out["mode"] == "ci"
    case = yaml.safe_load((cases_repo(work) / out["case_path"]).read_text())
    assert case["gate"]["mode"] == "ci" and case["gate"]["decision"] == "block"


def test_policy_in_cases_repo_is_used(work: Path) -> None:
    repo = cases_repo(work)
    ingest_json(TRIVY / "npm.json", *PR42, cwd=work)  # creates the repo
    (repo / "policy.yaml").write_text(
        "version: 1\nrules:\n  - id: no-medium\n    block: {severity_at_least: MEDIUM}\n"
    )
    git(repo, "add", "policy.yaml")
    git(repo, "-c", "user.name=Sec", "-c", "user.email=sec@example.com", "commit", "-qm", "policy")
    code, out, _ = ingest_json(TRIVY / "npm.json", *PR42, cwd=work)
    assert code == 1 and out["rules"] == ["no-medium"] and out["policy"]["path"] == "policy.yaml"


def test_text_and_markdown_outputs(work: Path) -> None:
    proc = run_cli("ingest", HIGH_REPORT, *PR42, cwd=work)
    assert proc.returncode == 1
    assert proc.stdout.startswith("BLOCK  github::acme::shop::PR::42")
    assert "blocked by no-high-into-main" in proc.stdout
    proc = run_cli("ingest", HIGH_REPORT, *PR42, "--output", "markdown", cwd=work)
    assert "### securecase: BLOCK" in proc.stdout and "| CRITICAL | HIGH |" in proc.stdout


def test_several_reports_make_one_commit(work: Path) -> None:
    code, out, err = ingest_json(
        TRIVY / "alpine-310.json", TRIVY / "misconfigurations_and_secrets.json", *PR42, cwd=work
    )
    assert code == 1, err
    assert set(out["sources"]) == {
        "trivy-image-testdata-fixtures-images-alpine-310.tar.gz",
        "trivy-fs",
    }
    assert commit_count(cases_repo(work)) == 1


def test_rescan_diff_is_small_resend_is_a_noop_and_removal_resolves(
    work: Path, tmp_path: Path
) -> None:
    repo = cases_repo(work)
    base, plus_one, minus_one = (tmp_path / n for n in ("base.json", "plus.json", "minus.json"))
    base.write_bytes(big_report(1500))
    plus_one.write_bytes(big_report(1500, extra=1))
    minus_one.write_bytes(big_report(1500, extra=1, skip=frozenset({7})))
    args = ("--repo", "acme/shop", "--branch", "main")
    assert ingest_json(base, *args, "--commit", "c1000000", cwd=work)[0] == 0
    first = read_case_files(repo / "cases/github/acme/shop/branch-main/case.yaml")
    assert len(first["findings"]) == 1500

    code, out, err = ingest_json(plus_one, *args, "--commit", "c2000000", cwd=work)
    assert code == 0, err
    assert out["appeared"] == 1
    numstat = git(repo, "show", "--numstat", "--format=", "HEAD").splitlines()
    outside_raw = [line.split("\t") for line in numstat if "/raw/" not in line]
    assert {path.rsplit("/", 1)[1] for _, _, path in outside_raw} == {"case.yaml", "findings.json"}
    # One new finding (~20 lines) plus latest/counts/source/updated_at lines (a replaced
    # line counted once).
    changed = sum(max(int(added), int(deleted)) for added, deleted, _ in outside_raw)
    assert changed <= 30, numstat

    before = commit_count(repo)
    code, out, _ = ingest_json(plus_one, *args, "--commit", "c2000000", cwd=work)
    assert code == 0 and out["committed"] is False
    assert commit_count(repo) == before

    code, out, _ = ingest_json(minus_one, *args, "--commit", "c3000000", cwd=work)
    assert code == 0 and out["fixed"] == 1
    case = read_case_files(repo / "cases/github/acme/shop/branch-main/case.yaml")
    assert [r["advisory"] for r in case["resolved"]] == ["CVE-2099-000007"]
    assert case["resolved"][0]["resolved"]["commit"] == "c3000000"
    assert len(case["findings"]) == 1500
    assert all(f["first_seen"]["commit"] in {"c1000000", "c2000000"} for f in case["findings"])
    assert sum(f["first_seen"]["commit"] == "c2000000" for f in case["findings"]) == 1


def test_human_triage_and_status_survive_rescans(work: Path) -> None:
    repo = cases_repo(work)
    ingest_json(HIGH_REPORT, *PR42, cwd=work)
    path = repo / "cases/github/acme/shop/pr-42/case.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["status"] = "TRIAGED"
    doc["triage"] = {"assignee": "@alice", "tags": ["urgent"], "notes": "line one\nline two"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(repo, "-c", "user.name=Alice", "-c", "user.email=a@example.com", "commit", "-qam", "triage")
    for commit in ("d1000000", "d2000000", "d3000000"):
        code, out, err = ingest_json(
            TRIVY / "npm.json",
            HIGH_REPORT,
            *PR42,
            "--source",
            "npm",
            "--source",
            "pip",
            "--commit",
            commit,
            cwd=work,
        )
        assert code == 1, err
        case = yaml.safe_load(path.read_text())
        assert case["status"] == "TRIAGED"
        assert case["triage"] == {
            "assignee": "@alice",
            "tags": ["urgent"],
            "notes": "line one\nline two",
        }


def test_broken_case_file_is_reported_not_overwritten(work: Path) -> None:
    repo = cases_repo(work)
    ingest_json(HIGH_REPORT, *PR42, cwd=work)
    path = repo / "cases/github/acme/shop/pr-42/case.yaml"
    text = path.read_text().replace("status: NEW", "status: DONE")
    path.write_text(text)
    git(repo, "-c", "user.name=Bob", "-c", "user.email=b@example.com", "commit", "-qam", "oops")
    before = commit_count(repo)
    proc = run_cli("ingest", HIGH_REPORT, *PR42, cwd=work)
    assert proc.returncode == 2
    line = text.splitlines().index("status: DONE") + 1
    assert f"cases/github/acme/shop/pr-42/case.yaml:{line}: $.status" in proc.stderr
    assert path.read_text() == text and commit_count(repo) == before


def test_cases_list_and_show(work: Path) -> None:
    ingest_json(HIGH_REPORT, *PR42, cwd=work)
    ingest_json(TRIVY / "npm.json", "--repo", "acme/web", "--branch", "main", cwd=work)
    ingest_json(
        TRIVY / "scheme_2_no_vuln.json",
        "--repo",
        "acme/api",
        "--pr",
        "1",
        "--target-branch",
        "main",
        cwd=work,
    )
    proc = run_cli("cases", "list", "--output", "json", cwd=work)
    rows = json.loads(proc.stdout)
    assert [r["key"] for r in rows] == [
        "github::acme::api::PR::1",
        "github::acme::shop::PR::42",
        "github::acme::web::BR::main",
    ]
    assert rows[0]["status"] == "RESOLVED" and rows[1]["decision"] == "block"
    open_rows = json.loads(
        run_cli("cases", "list", "--status", "OPEN", "--output", "json", cwd=work).stdout
    )
    assert {r["key"] for r in open_rows} == {
        "github::acme::shop::PR::42",
        "github::acme::web::BR::main",
    }
    csv_out = run_cli("cases", "list", "--repo", "acme/web", "--output", "csv", cwd=work).stdout
    assert csv_out.splitlines()[0].startswith("key,status,decision")
    assert len(csv_out.splitlines()) == 2
    table = run_cli("cases", "list", cwd=work).stdout
    assert table.splitlines()[0].split()[:3] == ["KEY", "STATUS", "DECISION"]
    show = run_cli("cases", "show", "github::acme::shop::PR::42", cwd=work)
    assert show.returncode == 0 and "CVE-2020-28724" in show.stdout
    as_yaml = run_cli("cases", "show", "github::acme::shop::PR::42", "--output", "yaml", cwd=work)
    assert (
        as_yaml.stdout == (cases_repo(work) / "cases/github/acme/shop/pr-42/case.yaml").read_text()
    )
    missing = run_cli("cases", "show", "github::acme::shop::PR::9", cwd=work)
    assert missing.returncode == 2 and "no case" in missing.stderr


def test_policy_validate(work: Path) -> None:
    good = run_cli(
        "policy", "validate", Path(__file__).parents[1] / "policies/strict.yaml", cwd=work
    )
    assert good.returncode == 0 and "valid (6 rule(s)" in good.stdout
    bad = work / "policy.yaml"
    bad.write_text("version: 1\nrules:\n  - id: x\n    block: {severity_at_least: HGH}\n")
    proc = run_cli("policy", "validate", cwd=work)
    assert proc.returncode == 2
    assert "policy.yaml:4: $.rules[0].block.severity_at_least" in proc.stderr


def test_invalid_policy_fails_closed_without_commit(work: Path) -> None:
    bad = work / "bad.yaml"
    bad.write_text("version: 1\nrules: {}\n")
    proc = run_cli("ingest", TRIVY / "npm.json", *PR42, "--policy", bad, cwd=work)
    assert proc.returncode == 2 and "bad.yaml:2: $.rules" in proc.stderr
    assert commit_count(cases_repo(work)) == 0


def test_version_and_help(work: Path) -> None:
    proc = run_cli("--version", cwd=work)
    assert proc.returncode == 0 and proc.stdout.startswith("securecase, version ")
    helptext = run_cli("ingest", "--help", cwd=work).stdout
    for flag in ("--cases-repo", "--target-branch", "--image-digest", "--source", "--mode"):
        assert flag in helptext
    module = subprocess.run(["securecase", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "ingest" in module.stdout


def test_bot_identity_from_flag_and_environment(work: Path) -> None:
    proc = run_cli(
        "ingest",
        HIGH_REPORT,
        *PR42,
        cwd=work,
        SECURECASE_GIT_NAME="Sec Bot",
        SECURECASE_GIT_EMAIL="sec-bot@example.com",
    )
    assert proc.returncode == 1, proc.stderr
    author = git(cases_repo(work), "log", "-1", "--format=%an <%ae>").strip()
    assert author == "Sec Bot <sec-bot@example.com>"
    run_cli("ingest", TRIVY / "npm.json", *PR42, "--git-name", "Flag Bot", cwd=work)
    assert git(cases_repo(work), "log", "-1", "--format=%an").strip() == "Flag Bot"


def test_reading_commands_do_not_create_a_cases_repo(work: Path) -> None:
    for args in (("cases", "list"), ("cases", "show", "github::acme::shop::PR::1")):
        proc = run_cli(*args, cwd=work)
        assert proc.returncode == 2 and "no cases repo at ./security-cases" in proc.stderr
    assert not cases_repo(work).exists()
    # ... and their help does not promise to create one
    for args in (("cases", "list"), ("cases", "history"), ("policy", "diff")):
        helptext = " ".join(run_cli(*args, "--help", cwd=work).stdout.split())
        assert "ingest creates a missing one" in helptext and "created when" not in helptext
