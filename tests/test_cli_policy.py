"""End-to-end: PR baselines, expiring exceptions, triage by commit, with the real CLI and git.

The clock is moved with SECURECASE_NOW, the documented way to replay a run at a given time.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import TRIVY, commit_count, git, read_case_files, run_cli, trivy_rescan

PR = ("--repo", "acme/shop", "--pr", "7", "--target-branch", "main")
MAIN = ("--repo", "acme/shop", "--branch", "main")
#: One HIGH (CVE-2019-14806, Werkzeug) and one MEDIUM.
BASE_REPORT = TRIVY / "pip.json"
#: Exactly one HIGH: CVE-2023-37920 in certifi.
EXTRA_REPORT = TRIVY / "issue_9092.json"
PR_CASE = "cases/github/acme/shop/pr-7/case.yaml"
HUMAN = ("-c", "user.name=Alice Reviewer", "-c", "user.email=alice@example.com")

NEW_ONLY_POLICY = """version: 1
mode: pr_gate
rules:
  - id: no-new-high-into-main
    when: {event: pull_request, target_branches: [main]}
    block: {severity_at_least: HIGH, new_only: true}
    max_allowed: 0
"""
EXCEPTION = """exceptions:
  - id: EXC-42
    match: {rule: CVE-2023-37920, package: certifi, repos: ["acme/*"]}
    reason: certifi is only used by a test helper that never runs in production
    approved_by: "@acme/security"
    expires: 2027-01-31
"""


def ingest(*args: str | Path, cwd: Path, now: str) -> tuple[int, dict[str, Any], str]:
    proc = run_cli("ingest", *args, "--output", "json", cwd=cwd, SECURECASE_NOW=now)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def commit_policy(location: Path, text: str, scratch: Path) -> None:
    """Commit policy.yaml as a human would: in place, or through a clone and a push."""
    if (location / ".git").exists():
        work = location
    else:
        work = scratch / "policy-clone"
        if not work.exists():
            subprocess.run(["git", "clone", "-q", str(location), str(work)], check=True)
        git(work, "pull", "-q")
    (work / "policy.yaml").write_text(text)
    git(work, "add", "policy.yaml")
    git(work, *HUMAN, "commit", "-qm", "policy change")
    if work != location:
        git(work, "push", "-q", "origin", "HEAD:main")


def read_case(location: Path, path: str) -> dict[str, Any]:
    """case.yaml at ``path`` on main, with findings.json's findings and resolved beside it."""
    document: dict[str, Any] = yaml.safe_load(git(location, "show", f"main:{path}"))
    findings_path = path.rsplit("/", 1)[0] + "/findings.json"
    findings = json.loads(git(location, "show", f"main:{findings_path}"))
    document.update(findings=findings["findings"], resolved=findings["resolved"])
    return document


@pytest.mark.parametrize("kind", ["local", "bare"])
def test_new_only_exception_and_expiry(work: Path, kind: str) -> None:
    location = work / "security-cases"
    if kind == "bare":
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(location)], check=True)
    repo_arg = ("--cases-repo", str(location))
    # A push scan keeps the main branch's case current.
    code, main, err = ingest(
        BASE_REPORT, *MAIN, "--source", "app", "--commit", "e1000000", *repo_arg, cwd=work,
        now="2027-01-10T09:00:00Z",
    )  # fmt: skip
    assert code == 0, err
    assert main["baseline"] == {"case": None, "found": False}
    commit_policy(location, NEW_ONLY_POLICY, work)

    # The PR carries the same findings plus one extra HIGH.
    pr_args = (BASE_REPORT, EXTRA_REPORT, *PR, "--source", "app", "--source", "sbom", *repo_arg)
    code, out, err = ingest(*pr_args, "--commit", "b1000000", cwd=work, now="2027-01-15T09:00:00Z")
    assert code == 1, err
    assert out["baseline"] == {"case": "github::acme::shop::BR::main", "found": True}
    assert out["rules"] == ["no-new-high-into-main"]
    assert out["reasons"] == [
        "no-new-high-into-main: 1 new finding at HIGH or above (at most 0 allowed)"
    ]
    assert out["breakdown"]["new"]["high"] == 1 and out["breakdown"]["existing"]["high"] == 1
    assert out["breakdown"]["existing"]["medium"] == 1
    assert sum(out["breakdown"]["excepted"].values()) == 0
    assert out["counts"]["high"] == 2
    case = read_case(location, PR_CASE)
    flags = {f["advisory"]: f["new"] for f in case["findings"]}
    assert flags == {"CVE-2023-37920": True, "CVE-2019-14806": False, "CVE-2020-28724": False}
    assert all("exception" not in f for f in case["findings"])

    # An approved exception for exactly that finding lets the PR pass; it is shown, not hidden.
    commit_policy(location, NEW_ONLY_POLICY + EXCEPTION, work)
    code, out, err = ingest(*pr_args, "--commit", "b1000000", cwd=work, now="2027-01-15T09:00:00Z")
    assert code == 0, err
    assert out["decision"] == "pass" and out["committed"] is True
    assert out["breakdown"]["excepted"]["high"] == 1 and out["breakdown"]["new"]["high"] == 0
    assert out["counts"]["high"] == 1  # counts leave excepted findings out
    assert [e["id"] for e in out["exceptions"]["applied"]] == ["EXC-42"]
    assert out["exceptions"]["expiring"] == [] and out["exceptions"]["expired"] == []
    case = read_case(location, PR_CASE)
    certifi = next(f for f in case["findings"] if f["advisory"] == "CVE-2023-37920")
    assert certifi["exception"] == {"id": "EXC-42", "expires": "2027-01-31"}
    assert case["counts"]["high"] == 1 and case["gate"]["decision"] == "pass"
    trailers = git(location, "log", "-1", "--format=%B", "main")
    assert "Excepted by EXC-42 (expires 2027-01-31): 1 finding(s)." in trailers
    markdown = run_cli(
        "ingest", *pr_args, "--output", "markdown", cwd=work, SECURECASE_NOW="2027-01-15"
    )
    assert markdown.returncode == 0, markdown.stderr
    assert "| excepted | 0 | 1 | 0 | 0 | 0 | 0 |" in markdown.stdout
    assert "| new | 0 | 0 | 0 | 0 | 0 | 0 |" in markdown.stdout
    assert "| existing | 0 | 1 | 1 | 0 | 0 | 0 |" in markdown.stdout
    # "new" in the summary means new to the target branch only, never "since the last scan"
    assert "0 appeared and 0 fixed since the last scan." in markdown.stdout
    assert "status **NEW**, 0 new" not in markdown.stdout
    assert "- Excepted by EXC-42 (until 2027-01-31): 1 finding(s)" in markdown.stdout
    shown = run_cli("cases", "show", "github::acme::shop::PR::7", *repo_arg, cwd=work)
    assert shown.returncode == 0, shown.stderr
    certifi_line = next(line for line in shown.stdout.splitlines() if "CVE-2023-37920" in line)
    assert certifi_line.endswith("(new) (excepted by EXC-42 until 2027-01-31)")

    # Within 14 days of expiry the summary warns; on the last day the exception still holds.
    text = run_cli(
        "ingest", *pr_args, "--commit", "b1000000", cwd=work, SECURECASE_NOW="2027-01-31T23:59:59Z"
    )
    assert text.returncode == 0, text.stderr
    assert "excepted by EXC-42 (until 2027-01-31): 1 finding(s)" in text.stdout
    assert "warning: exception EXC-42 expires on 2027-01-31" in text.stdout
    assert "since the last scan: 0 appeared, 0 fixed" in text.stdout
    assert "new: 0" not in text.stdout

    # The day after, it stops applying and the gate names it.
    code, out, err = ingest(*pr_args, "--commit", "b1000000", cwd=work, now="2027-02-01T00:00:00Z")
    assert code == 1, err
    assert out["reasons"] == [
        "no-new-high-into-main: 1 new finding at HIGH or above (at most 0 allowed); "
        "exception EXC-42 expired on 2027-01-31"
    ]
    assert [e["id"] for e in out["exceptions"]["expired"]] == ["EXC-42"]
    assert out["breakdown"]["new"]["high"] == 1 and sum(out["breakdown"]["excepted"].values()) == 0
    case = read_case(location, PR_CASE)
    assert all("exception" not in f for f in case["findings"])
    assert case["gate"]["reasons"] == out["reasons"]


def test_pr_without_a_baseline_case_counts_everything_as_new(work: Path) -> None:
    policy = work / "policy.yaml"
    policy.write_text(NEW_ONLY_POLICY)
    proc = run_cli(
        "ingest", BASE_REPORT, *PR, "--policy", policy, cwd=work, SECURECASE_NOW="2027-01-01"
    )
    assert proc.returncode == 1, proc.stderr
    assert "baseline: no case github::acme::shop::BR::main yet" in proc.stdout
    code, out, _ = ingest(BASE_REPORT, *PR, "--policy", policy, cwd=work, now="2027-01-01")
    assert code == 1 and out["baseline"]["found"] is False
    assert out["breakdown"]["new"]["high"] == 1 and out["breakdown"]["new"]["medium"] == 1
    case = read_case_files(work / "security-cases" / PR_CASE)
    assert [f["new"] for f in case["findings"]] == [True, True]


def test_human_triage_commit_survives_three_changing_rescans(work: Path) -> None:
    location = work / "security-cases"
    now = "2027-01-05T10:00:00Z"
    code, _, err = ingest(
        BASE_REPORT, *PR, "--source", "app", "--commit", "c0000000", cwd=work, now=now
    )
    assert code == 1, err
    path = location / PR_CASE
    text = path.read_text()
    # A reviewer edits the file by hand (as in a pull request to the cases repo).
    text = text.replace("status: NEW\n", "status: TRIAGED\n", 1)
    text = text.replace("  assignee: null\n", '  assignee: "@bob"\n', 1)
    path.write_text(text)
    git(location, *HUMAN, "commit", "-qam", "Triage PR 7: Bob owns it")
    human = git(location, "rev-parse", "HEAD").strip()
    # Three rescans, each changing the findings, each a bot commit.
    upgraded = trivy_rescan(BASE_REPORT, work / "upgraded.json", "CVE-2019-14806")
    scans = [
        (BASE_REPORT, EXTRA_REPORT, "--source", "app", "--source", "sbom"),
        (EXTRA_REPORT, "--source", "sbom"),
        (upgraded, "--source", "app"),
    ]
    for number, scan in enumerate(scans, start=1):
        before = commit_count(location)
        commit = ("--commit", f"c{number}000000", "--commit-time", f"2027-01-0{number}T00:00:00Z")
        code, out, err = ingest(*scan, *PR, *commit, cwd=work, now=now)
        assert code in (0, 1), err
        assert out["committed"] is True and commit_count(location) == before + 1
        case = yaml.safe_load(path.read_text())
        assert case["status"] == "TRIAGED", number
        assert case["triage"]["assignee"] == "@bob", number
        assert case["latest"]["commit"] == f"c{number}000000"
    # The history still says who triaged: the human commit is an ancestor, authored by Alice.
    log = git(location, "log", "--format=%H %an", "--", PR_CASE).splitlines()
    assert f"{human} Alice Reviewer" in log
    assert [line.split(" ", 1)[1] for line in log].count("securecase-bot") == 4
    blame = git(location, "blame", "--line-porcelain", PR_CASE)
    assert "author Alice Reviewer" in blame


def test_case_file_broken_yaml_stops_ingest_with_file_line(work: Path) -> None:
    location = work / "security-cases"
    code, _, err = ingest(BASE_REPORT, *PR, cwd=work, now="2027-01-05T10:00:00Z")
    assert code == 1, err
    path = location / PR_CASE
    lines = path.read_text().splitlines(keepends=True)
    # A realistic slip: YAML does not allow a plain scalar to start with "@".
    index = lines.index("  assignee: null\n")
    lines[index] = "  assignee: @bob\n"
    broken = "".join(lines)
    path.write_text(broken)
    git(location, *HUMAN, "commit", "-qam", "a broken hand edit")
    before = commit_count(location)
    proc = run_cli("ingest", BASE_REPORT, *PR, cwd=work, SECURECASE_NOW="2027-01-06T00:00:00Z")
    assert proc.returncode == 2
    assert f"{PR_CASE}:{index + 1}:13: " in proc.stderr, proc.stderr
    assert path.read_text() == broken and commit_count(location) == before


def test_broken_baseline_case_warns_and_the_pr_ingest_goes_on(work: Path) -> None:
    """Another subject's broken case must not stop a pull request: it is judged without that
    baseline (every finding new), with a warning naming the file and line; the file is kept."""
    location = work / "security-cases"
    ingest(BASE_REPORT, *MAIN, cwd=work, now="2027-01-05T10:00:00Z")
    main_case = location / "cases/github/acme/shop/branch-main/case.yaml"
    text = main_case.read_text().replace("status: NEW", "status: FINE")
    main_case.write_text(text)
    git(location, *HUMAN, "commit", "-qam", "oops")
    before = commit_count(location)
    proc = run_cli(
        "ingest", BASE_REPORT, *PR, "--output", "json", cwd=work,
        SECURECASE_NOW="2027-01-06T00:00:00Z",
    )  # fmt: skip
    out = json.loads(proc.stdout)
    assert proc.returncode == (1 if out["gate"] else 0), proc.stderr
    assert out["case_key"] == "github::acme::shop::PR::7"
    line = text.splitlines().index("status: FINE") + 1
    assert "target branch's case is broken, so every finding counts as new" in proc.stderr
    assert f"cases/github/acme/shop/branch-main/case.yaml:{line}: $.status" in proc.stderr
    assert out["breakdown"]["existing"] == dict.fromkeys(out["counts"], 0)
    assert commit_count(location) == before + 1
    assert main_case.read_text() == text


def test_policy_validate_flags_expired_and_warns_expiring(work: Path) -> None:
    policy = work / "policy.yaml"
    policy.write_text(NEW_ONLY_POLICY + EXCEPTION)
    ok = run_cli("policy", "validate", policy, cwd=work, SECURECASE_NOW="2027-01-20T12:00:00Z")
    assert ok.returncode == 0, ok.stderr
    assert "1 exception(s)" in ok.stdout
    assert "warning: exception EXC-42 expires on 2027-01-31" in ok.stderr
    far = run_cli("policy", "validate", policy, cwd=work, SECURECASE_NOW="2026-06-01T00:00:00Z")
    assert far.returncode == 0 and "warning" not in far.stderr
    late = run_cli("policy", "validate", policy, cwd=work, SECURECASE_NOW="2027-02-01T00:00:00Z")
    assert late.returncode == 2
    line = (NEW_ONLY_POLICY + EXCEPTION).splitlines().index("    expires: 2027-01-31") + 1
    assert (
        f"{policy}:{line}: $.exceptions[0].expires: exception EXC-42 expired on 2027-01-31"
        in late.stderr
    )
    bad_clock = run_cli("policy", "validate", policy, cwd=work, SECURECASE_NOW="yesterday")
    assert bad_clock.returncode == 2 and "SECURECASE_NOW" in bad_clock.stderr


@pytest.mark.parametrize("kind", ["local", "bare"])
def test_a_rescan_without_target_branch_is_refused_and_the_case_keeps_its_baseline(
    work: Path, kind: str
) -> None:
    location = work / "security-cases"
    if kind == "bare":
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(location)], check=True)
    repo_arg = ("--cases-repo", str(location))
    policy = work / "policy.yaml"
    policy.write_text(NEW_ONLY_POLICY)
    now = "2027-01-10T09:00:00Z"
    code, _, err = ingest(BASE_REPORT, *MAIN, "--commit", "e1000000", *repo_arg, cwd=work, now=now)
    assert code == 0, err
    pr = ("--repo", "acme/shop", "--pr", "7", "--policy", str(policy), *repo_arg)
    code, out, err = ingest(BASE_REPORT, *pr, "--target-branch", "main", cwd=work, now=now)
    assert code == 0 and out["breakdown"]["new"]["high"] == 0, err
    # A later run that does not name the target branch is refused (the rules depend on it),
    # and nothing is committed.
    before = commit_count(location)
    code, out, err = ingest(BASE_REPORT, *pr, "--commit", "b2000000", cwd=work, now=now)
    assert code == 2 and "--pr 7 needs --target-branch" in err, (out, err)
    assert commit_count(location) == before
    code, out, err = ingest(
        BASE_REPORT, *pr, "--target-branch", "main", "--commit", "b2000000", cwd=work, now=now
    )
    assert code == 0, (out, err)
    assert out["baseline"] == {"case": "github::acme::shop::BR::main", "found": True}
    assert out["breakdown"]["new"]["high"] == 0 and out["reasons"] == []
    case = read_case(location, PR_CASE)
    assert [f["new"] for f in case["findings"]] == [False, False]
    # The commit body counts changes since the last scan as "appeared", never as "new".
    body = git(location, "log", "-1", "--format=%B", "main")
    assert "Appeared: 0, fixed: 0, status: NEW." in body and "New:" not in body


def test_a_pr_without_target_branch_outside_actions_is_refused(work: Path) -> None:
    # Issue 12, 3: the built-in rule is scoped to PRs into main; without the target branch it
    # used to pass a CRITICAL in silence.
    proc = run_cli("ingest", BASE_REPORT, "--repo", "acme/shop", "--pr", "8", cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert "--pr 8 needs --target-branch" in proc.stderr and "Traceback" not in proc.stderr
    assert commit_count(work / "security-cases") == 0


SLA_POLICY = """version: 1
rules:
  - id: high-sla
    block: {severity_at_least: HIGH, sla_breached: true}
sla_days: {HIGH: 30}
"""


@pytest.mark.parametrize("created", ["yesterday", "2026-12-01", "2026-13-45T00:00:00Z"])
def test_a_report_time_that_is_not_a_time_does_not_stop_the_sla_clock(
    work: Path, created: str
) -> None:
    # Trivy's CreatedAt is kept as given; one that is no time must not make ages unknown
    # (age and SLA conditions would then never select the finding: a silent pass).
    report = json.loads(BASE_REPORT.read_text())
    report["CreatedAt"] = created
    odd = work / "odd.json"
    odd.write_text(json.dumps(report))
    policy = work / "policy.yaml"
    policy.write_text(SLA_POLICY)
    args = (odd, *MAIN, "--policy", policy)
    code, _, err = ingest(*args, cwd=work, now="2027-01-01T08:00:00Z")
    assert code == 0, err
    path = work / "security-cases/cases/github/acme/shop/branch-main/case.yaml"
    case = read_case_files(path)
    assert {f["first_seen"]["at"] for f in case["findings"]} == {"2027-01-01T08:00:00Z"}
    code, out, err = ingest(*args, cwd=work, now="2027-02-15T08:00:00Z")
    assert code == 1, err
    assert out["reasons"] == [
        "high-sla: 1 finding at HIGH or above past their SLA (at most 0 allowed)"
    ]


def test_a_report_dated_in_the_future_does_not_make_later_scans_stale(work: Path) -> None:
    report = json.loads(BASE_REPORT.read_text())
    report["CreatedAt"] = "2099-01-01T00:00:00Z"  # a runner with a wrong clock
    future = work / "future.json"
    future.write_text(json.dumps(report))
    code, _, err = ingest(
        future, *MAIN, "--commit", "c1000000", cwd=work, now="2027-01-01T08:00:00Z"
    )
    assert code == 0, err
    path = work / "security-cases/cases/github/acme/shop/branch-main/case.yaml"
    case = yaml.safe_load(path.read_text())
    assert case["latest"]["scanned_at"] == "2027-01-01T08:00:00Z"  # when it was received
    report["CreatedAt"] = "2027-01-02T08:00:00Z"
    later = work / "later.json"
    later.write_text(json.dumps(report))
    code, out, err = ingest(
        later, *MAIN, "--commit", "c2000000", cwd=work, now="2027-01-02T09:00:00Z"
    )
    assert code == 0, err
    assert out["stale"] is False
    assert yaml.safe_load(path.read_text())["latest"]["commit"] == "c2000000"


@pytest.mark.parametrize("edited", ["a while ago", "2026-13-01T00:00:00Z", "2026-01-01"])
def test_a_hand_edited_first_seen_that_is_not_a_time_stops_ingest(work: Path, edited: str) -> None:
    code, _, err = ingest(BASE_REPORT, *MAIN, cwd=work, now="2027-01-05T10:00:00Z")
    assert code == 0, err
    location = work / "security-cases"
    path = location / "cases/github/acme/shop/branch-main/findings.json"
    document = json.loads(path.read_text())
    document["findings"][0]["first_seen"]["at"] = edited
    path.write_text(json.dumps(document, indent=2) + "\n")
    text = path.read_text()
    git(location, *HUMAN, "commit", "-qam", "backdate")
    proc = run_cli("ingest", BASE_REPORT, *MAIN, cwd=work, SECURECASE_NOW="2027-03-01T00:00:00Z")
    assert proc.returncode == 2, proc.stderr
    assert "branch-main/findings.json: $.findings[0].first_seen.at" in proc.stderr
    assert path.read_text() == text
