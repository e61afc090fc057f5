"""``securecase policy diff``: the real CLI over cases repos built by the real ingest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, TRIVY, git, ingest_json, run_cli, trivy_rescan

DEFAULT_POLICY = (ROOT / "bot/securecase/data/default-policy.yaml").read_text()
NO_MEDIUM = """version: 1
rules:
  - id: no-medium
    description: nothing at MEDIUM or above, anywhere
    block: {severity_at_least: MEDIUM}
"""
CRITICAL_ON_PRS = """version: 1
mode: ci
rules:
  - id: no-critical-prs
    when: {event: pull_request}
    block: {severity_at_least: CRITICAL}
"""
HUMAN = ("-c", "user.name=Sec Team", "-c", "user.email=sec@example.com")


def scan(work: Path, report: str | Path, *subject: str) -> None:
    code, _, err = ingest_json(TRIVY / report, "--repo", *subject, cwd=work)
    assert code in (0, 1), err


@pytest.fixture
def repo(work: Path) -> Path:
    """Open cases: two branch cases, three PRs into main; plus one RESOLVED PR case."""
    scan(work, "alpine-310.json", "acme/api", "--branch", "main")  # 4 MEDIUM
    scan(work, "pip.json", "acme/api", "--pr", "7", "--target-branch", "main")  # HIGH+MEDIUM
    scan(work, "npm.json", "acme/shop", "--pr", "42", "--target-branch", "main")  # 1 MEDIUM
    scan(work, "debian-buster.json", "acme/shop", "--pr", "43", "--target-branch", "main")  # CRIT
    scan(work, "centos-7.json", "acme/shop", "--branch", "release/1.x")  # MEDIUM + 2 LOW
    pr9 = ("acme/web", "--pr", "9", "--target-branch", "main")
    scan(work, "fluentd-gems.json", *pr9)
    fixed = trivy_rescan(TRIVY / "fluentd-gems.json", work / "fluentd-fixed.json")
    scan(work, fixed, *pr9)  # RESOLVED: not evaluated
    return work / "security-cases"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def diff(work: Path, *args: str | Path) -> tuple[int, dict[str, Any], str]:
    proc = run_cli("policy", "diff", *args, "--output", "json", cwd=work)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stderr


def keys(flips: list[dict[str, Any]]) -> list[str]:
    return [f["key"] for f in flips]


def test_flips_to_block_with_the_new_reasons(work: Path, repo: Path) -> None:
    old, new = write(work / "old.yaml", DEFAULT_POLICY), write(work / "new.yaml", NO_MEDIUM)
    code, out, err = diff(work, old, new)
    assert code == 0, err
    assert out["open_cases"] == 5  # the RESOLVED PR 9 is not judged
    assert out["blocked_before"] == 2 and out["blocked_after"] == 5
    assert keys(out["new_blocks"]) == [
        "github::acme::api::BR::main",
        "github::acme::shop::BR::release/1.x",
        "github::acme::shop::PR::42",
    ]
    assert out["unblocked"] == []
    release = out["new_blocks"][1]
    assert release["direction"] == "pass->block" and release["old_reasons"] == []
    assert release["new_reasons"] == ["no-medium: 1 finding at MEDIUM or above (at most 0 allowed)"]
    assert release["path"] == "cases/github/acme/shop/branch-release%2F1.x/case.yaml"
    # PR 7 and PR 43 block under both, but for other reasons now.
    assert keys(out["reasons_changed"]) == [
        "github::acme::api::PR::7",
        "github::acme::shop::PR::43",
    ]
    pr7 = out["reasons_changed"][0]
    assert pr7["old_reasons"] == [
        "no-high-into-main: 1 finding at HIGH or above (at most 0 allowed)"
    ]
    assert pr7["new_reasons"] == ["no-medium: 2 findings at MEDIUM or above (at most 0 allowed)"]
    assert pr7["baseline"] == "github::acme::api::BR::main"  # the target branch's case
    assert out["new_blocks"][2]["baseline"] is None  # acme/shop has no main case
    assert out["old"]["policy"] == str(old) and out["new"]["policy"] == str(new)
    assert out["cases_commit"] == git(repo, "rev-parse", "HEAD").strip()


def test_flips_to_pass_and_text_output(work: Path, repo: Path) -> None:
    old, new = write(work / "old.yaml", DEFAULT_POLICY), write(work / "new.yaml", CRITICAL_ON_PRS)
    code, out, err = diff(work, old, new)
    assert code == 0, err
    assert keys(out["unblocked"]) == ["github::acme::api::PR::7"]
    assert out["unblocked"][0]["direction"] == "block->pass"
    assert out["unblocked"][0]["new_reasons"] == []
    assert out["new_blocks"] == [] and out["new"]["mode"] == "ci"
    assert keys(out["reasons_changed"]) == ["github::acme::shop::PR::43"]
    proc = run_cli("policy", "diff", old, new, cwd=work)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "5 open case(s) evaluated" in text and "blocked: 2 -> 1" in text
    assert "mode: pr_gate -> ci" in text
    section = text.split("1 case(s) would no longer block:\n", 1)[1]
    assert section.startswith("  github::acme::api::PR::7\n    under NEW: passes\n")
    assert "    under OLD: blocked by no-high-into-main: 1 finding at HIGH" in section
    assert text.startswith(f"policy diff: OLD {old} (")


def test_fail_on_new_blocks(work: Path, repo: Path) -> None:
    old, new = write(work / "old.yaml", DEFAULT_POLICY), write(work / "new.yaml", NO_MEDIUM)
    assert run_cli("policy", "diff", old, new, "--fail-on-new-blocks", cwd=work).returncode == 1
    # Only unblocks in this direction: the flag does not fail.
    proc = run_cli("policy", "diff", new, old, "--fail-on-new-blocks", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "3 case(s) would no longer block" in proc.stdout
    same = run_cli("policy", "diff", old, old, "--fail-on-new-blocks", cwd=work)
    assert same.returncode == 0 and "no open case changes decision" in same.stdout


def test_invalid_policy_exits_2_with_file_and_line(work: Path, repo: Path) -> None:
    old = write(work / "old.yaml", DEFAULT_POLICY)
    bad = write(
        work / "bad.yaml",
        "version: 1\nrules:\n  - id: ok\n    block: {}\n  - id: typo\n    blok: {}\n",
    )
    for args in ((old, bad), (bad, old)):
        proc = run_cli("policy", "diff", *args, cwd=work)
        assert proc.returncode == 2 and proc.stdout == ""
        assert f'{bad}:5: $.rules[1]: "block" is a required property' in proc.stderr
    proc = run_cli("policy", "diff", old, work / "absent.yaml", cwd=work)
    assert proc.returncode == 2 and "cannot read the policy" in proc.stderr


def test_base_ref_compares_the_committed_policy_with_the_working_file(
    work: Path, repo: Path
) -> None:
    write(repo / "policy.yaml", DEFAULT_POLICY)
    git(repo, "add", "policy.yaml")
    git(repo, *HUMAN, "commit", "-qm", "policy")
    write(repo / "policy.yaml", NO_MEDIUM)  # the policy PR's change, not committed
    code, out, err = diff(work, "--base-ref", "main")
    assert code == 0, err
    assert out["old"]["policy"] == "main:policy.yaml"
    assert out["new"]["policy"] == str(Path("security-cases") / "policy.yaml")
    assert len(out["new_blocks"]) == 3
    # --base-ref with an explicit NEW file; the base ref had no policy yet: built-in default.
    newer = write(work / "newer.yaml", CRITICAL_ON_PRS)
    code, out, err = diff(work, "--base-ref", "main~1", newer)
    assert code == 0, err
    assert out["old"]["policy"] == "builtin:policies/default.yaml"
    assert keys(out["unblocked"]) == ["github::acme::api::PR::7"]
    # An invalid policy at the ref is located in "REF:policy.yaml".
    write(
        repo / "policy.yaml", "version: 1\nrules:\n  - id: x\n    block: {severity_at_least: HI}\n"
    )
    git(repo, *HUMAN, "commit", "-qam", "break it")
    proc = run_cli("policy", "diff", "--base-ref", "HEAD", newer, cwd=work)
    assert proc.returncode == 2 and "HEAD:policy.yaml:4:" in proc.stderr


def test_usage_errors_exit_2(work: Path, repo: Path, tmp_path: Path) -> None:
    old = write(work / "old.yaml", DEFAULT_POLICY)
    for args in ((old,), ("--base-ref", "main", old, old), ("--base-ref", "no-such-ref")):
        proc = run_cli("policy", "diff", *args, cwd=work)
        assert proc.returncode == 2 and proc.stderr.startswith("securecase: error:"), args
    assert "no such commit" in proc.stderr
    missing = tmp_path / "nowhere"
    proc = run_cli("policy", "diff", old, old, "--cases-repo", missing, cwd=work)
    assert proc.returncode == 2 and "no cases repo at" in proc.stderr and not missing.exists()


def test_a_broken_open_case_fails_closed(work: Path, repo: Path) -> None:
    path = repo / "cases/github/acme/shop/pr-42/case.yaml"
    path.write_text(path.read_text().replace("status: NEW", "status: MAYBE", 1))
    git(repo, *HUMAN, "commit", "-qam", "bad edit")
    old = write(work / "old.yaml", DEFAULT_POLICY)
    proc = run_cli("policy", "diff", old, old, cwd=work)
    assert proc.returncode == 2
    assert "cases/github/acme/shop/pr-42/case.yaml" in proc.stderr


def test_only_the_findings_it_judges_are_read(work: Path, repo: Path) -> None:
    # PR 9 is RESOLVED: the diff never judges it, so its findings.json is not read (a broken
    # one is for `cases validate`); the same damage in an open case fails the diff, naming it.
    resolved = repo / "cases/github/acme/web/pr-9/findings.json"
    resolved.write_text('{"schema": "not json')
    git(repo, *HUMAN, "commit", "-qam", "break a resolved case's findings")
    old, new = write(work / "old.yaml", DEFAULT_POLICY), write(work / "new.yaml", NO_MEDIUM)
    code, out, err = diff(work, old, new)
    assert code == 0, err
    assert out["open_cases"] == 5 and out["blocked_after"] == 5
    opened = repo / "cases/github/acme/shop/pr-42/findings.json"
    opened.write_text('{"schema": "not json')
    git(repo, *HUMAN, "commit", "-qam", "break an open case's findings")
    proc = run_cli("policy", "diff", old, new, cwd=work)
    assert proc.returncode == 2
    assert "cases/github/acme/shop/pr-42/findings.json: not valid JSON" in proc.stderr


def test_today_option_and_remote_cases_repo(work: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    url = remote.as_uri()
    for report, pr in (("pip.json", "1"), ("npm.json", "2")):
        code, _, err = ingest_json(
            TRIVY / report, "--repo", "acme/app", "--pr", pr, "--target-branch", "main",
            "--cases-repo", url, cwd=work,
        )  # fmt: skip
        assert code in (0, 1), err
    old, new = write(work / "old.yaml", DEFAULT_POLICY), write(work / "new.yaml", NO_MEDIUM)
    code, out, err = diff(work, old, new, "--cases-repo", url, "--today", "2027-02-01")
    assert code == 0, err
    assert out["today"] == "2027-02-01" and out["open_cases"] == 2
    assert keys(out["new_blocks"]) == ["github::acme::app::PR::2"]
    proc = run_cli("policy", "diff", "--base-ref", "main", "--cases-repo", url, cwd=work)
    assert proc.returncode == 2 and "no working policy.yaml" in proc.stderr
    # The remote's default branch is a valid base ref; its policy.yaml is absent: built-in.
    code, out, err = diff(work, "--base-ref", "main", new, "--cases-repo", url)
    assert code == 0, err
    assert out["old"]["policy"] == "builtin:policies/default.yaml"
    assert keys(out["new_blocks"]) == ["github::acme::app::PR::2"]


EXCEPTIONS = (
    DEFAULT_POLICY
    + """exceptions:
  - id: EXC-1
    match: {rule: CVE-2019-14806, package: Werkzeug, repos: ["acme/*"]}
    reason: not reachable
    approved_by: "@acme/security"
    expires: 2030-06-30
  - id: EXC-2
    match: {rule: CVE-0000-0001}
    reason: matches nothing
    approved_by: "@acme/security"
    expires: 2030-12-31
  - id: EXC-3
    match: {rule: CVE-2020-28724}
    reason: lapsed
    approved_by: "@acme/security"
    expires: 2030-01-31
"""
)


def test_exceptions_unblock_and_stale_or_expired_ones_are_named(work: Path, repo: Path) -> None:
    old, new = write(work / "old.yaml", DEFAULT_POLICY), write(work / "new.yaml", EXCEPTIONS)
    code, out, err = diff(work, old, new, "--today", "2030-06-20")
    assert code == 0, err
    assert keys(out["unblocked"]) == ["github::acme::api::PR::7"]  # its one HIGH is excepted
    notes = {(n["id"], n["state"]): n["detail"] for n in out["exceptions"]}
    assert notes == {
        ("EXC-1", "expiring"): "expires on 2030-06-30",
        ("EXC-2", "stale"): "matches no finding of any open case",
        ("EXC-3", "expired"): "expired on 2030-01-31",
    }
    # once EXC-1 has expired too, PR 7 blocks again under the new policy
    code, out, err = diff(work, old, new, "--today", "2030-07-01")
    assert code == 0, err
    assert out["unblocked"] == []
    assert ("EXC-1", "expired") in {(n["id"], n["state"]) for n in out["exceptions"]}
    # notes already true under the old policy are not repeated as changes, but still listed
    code, out, err = diff(work, new, new, "--today", "2030-06-20")
    assert code == 0 and out["exceptions"] == [], err
    standing = {(n["id"], n["state"]) for n in out["exceptions_unchanged"]}
    assert standing == {("EXC-1", "expiring"), ("EXC-2", "stale"), ("EXC-3", "expired")}
    proc = run_cli("policy", "diff", new, new, "--today", "2030-06-20", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "3 exception(s) already so under the old policy" in proc.stdout
    assert "  EXC-2: stale: matches no finding of any open case" in proc.stdout


NEW_ONLY = """version: 1
rules:
  - id: new-medium-into-main
    when: {event: pull_request, target_branches: [main]}
    block: {severity_at_least: MEDIUM, new_only: true}
"""


def test_new_only_judges_against_the_target_branch_case(work: Path, repo: Path) -> None:
    scan(work, "alpine-310.json", "acme/api", "--pr", "8", "--target-branch", "main")
    old, new = write(work / "old.yaml", DEFAULT_POLICY), write(work / "new.yaml", NEW_ONLY)
    code, out, err = diff(work, old, new)
    assert code == 0, err
    blocked = keys(out["new_blocks"])
    # PR 8 carries exactly what acme/api's main case has: nothing new, so it passes
    assert "github::acme::api::PR::8" not in blocked
    assert "github::acme::shop::PR::42" in blocked  # no main case for acme/shop: all new
