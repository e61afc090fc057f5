"""A cases repo with a known history, built by the real CLI under fixed clocks, for the
``securecase report`` tests. Every expected figure in those tests is computed by hand from
the timeline below.

Day 0 is Monday 2026-11-02 09:00Z (ISO week 2026-W45); the report runs on day 40.

- day 0 00h  acme/shop PR 42 (into main): pip.json, HIGH CVE-2019-14806 + MEDIUM
             CVE-2020-28724 in Werkzeug -> the gate blocks (rule no-high-into-main)
- day 0 01h  acme/api branch main: pip.json (the same two findings)
- day 0 02h  acme/web branch main: severity_prio.json, CRITICAL CVE-2023-37920 (certifi) and
             LOW CVE-2023-46218 (curl)
- day 0 05h  Alice (a human) sets PR 42 to TRIAGED by a plain git commit -> MTTA 5 h
- day 3      acme/shop PR 43 (into main): npm.json, MEDIUM CVE-2019-11358 (jquery) -> pass
- day 9      acme/web rescan without the CRITICAL -> resolved after 8.92 days (SLA 7: late)
- day 10     PR 42 rescan without the HIGH -> resolved after 10 days (SLA 30: in time); pass

Every report's own timestamp is set to the moment it is ingested (a scanner that ran then).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import TRIVY, clean_env, git, run_cli

DAY0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = DAY0 + timedelta(days=40)
POLICY = """\
version: 1
mode: pr_gate
rules:
  - id: no-high-into-main
    when: {event: pull_request, target_branches: [main]}
    block: {severity_at_least: HIGH}
    max_allowed: 0
exceptions:
  - id: EXC-LONG
    match: {advisory: CVE-0000-0001}
    reason: not reachable
    approved_by: "@acme/security"
    expires: 2027-06-30
  - id: EXC-SOON
    match: {advisory: CVE-0000-0002}
    reason: not reachable
    approved_by: "@acme/security"
    expires: 2026-12-20
  - id: EXC-OVER
    match: {advisory: CVE-0000-0003}
    reason: not reachable
    approved_by: "@acme/security"
    expires: 2026-11-30
sla_days: {CRITICAL: 7, HIGH: 30, MEDIUM: 90, LOW: 180}
"""
HUMAN = {"GIT_AUTHOR_NAME": "Alice Triager", "GIT_AUTHOR_EMAIL": "alice@example.com"}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def report_at(
    tmp: Path, fixture: str, moment: datetime, *, drop: tuple[str, ...] = (), name: str = ""
) -> Path:
    """A copy of a Trivy fixture made at ``moment``, without the vulnerabilities in ``drop``."""
    doc: dict[str, Any] = json.loads((TRIVY / fixture).read_text())
    doc["CreatedAt"] = stamp(moment)
    for result in doc.get("Results", []):
        vulns = result.get("Vulnerabilities") or []
        result["Vulnerabilities"] = [v for v in vulns if v["VulnerabilityID"] not in drop]
    path = tmp / (name or f"{moment:%Y%m%d%H}-{fixture}")
    path.write_text(json.dumps(doc))
    return path


def ingest_at(work: Path, moment: datetime, report: Path, *subject: str) -> int:
    proc = run_cli(
        "ingest", report, *subject, "--report", "none", cwd=work, SECURECASE_NOW=stamp(moment)
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode


def commit_as_human(repo: Path, message: str, moment: datetime) -> None:
    env = clean_env(
        **HUMAN,
        GIT_COMMITTER_NAME=HUMAN["GIT_AUTHOR_NAME"],
        GIT_COMMITTER_EMAIL=HUMAN["GIT_AUTHOR_EMAIL"],
        GIT_AUTHOR_DATE=stamp(moment),
        GIT_COMMITTER_DATE=stamp(moment),
    )
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", message], check=True, env=env)


PR42 = ("--repo", "acme/shop", "--pr", "42", "--target-branch", "main", "--commit")
PR43 = ("--repo", "acme/shop", "--pr", "43", "--target-branch", "main", "--commit")
API = ("--repo", "acme/api", "--branch", "main", "--commit")
WEB = ("--repo", "acme/web", "--branch", "main", "--commit")


def build(work: Path) -> Path:
    """Build the cases repo of the module docstring under ``work``; returns its path."""
    repo = work / "security-cases"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "policy.yaml").write_text(POLICY)
    git(repo, "add", "policy.yaml")
    commit_as_human(repo, "policy", DAY0 - timedelta(days=1))
    h = timedelta(hours=1)
    assert ingest_at(work, DAY0, report_at(work, "pip.json", DAY0), *PR42, "c1000000") == 1
    assert ingest_at(work, DAY0 + h, report_at(work, "pip.json", DAY0 + h), *API, "a1000000") == 0
    prio = report_at(work, "severity_prio.json", DAY0 + 2 * h)
    assert ingest_at(work, DAY0 + 2 * h, prio, *WEB, "f1000000") == 0
    case = repo / "cases/github/acme/shop/pr-42/case.yaml"
    text = case.read_text()
    assert "status: NEW" in text
    case.write_text(text.replace("status: NEW", "status: TRIAGED", 1))
    commit_as_human(repo, "triage PR 42", DAY0 + 5 * h)
    day3 = DAY0 + timedelta(days=3)
    assert ingest_at(work, day3, report_at(work, "npm.json", day3), *PR43, "d1000000") == 0
    day9 = DAY0 + timedelta(days=9)
    fixed_web = report_at(work, "severity_prio.json", day9, drop=("CVE-2023-37920",))
    assert ingest_at(work, day9, fixed_web, *WEB, "f2000000") == 0
    day10 = DAY0 + timedelta(days=10)
    fixed_shop = report_at(work, "pip.json", day10, drop=("CVE-2019-14806",))
    assert ingest_at(work, day10, fixed_shop, *PR42, "c2000000") == 0
    return repo
