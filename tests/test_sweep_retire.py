"""End-to-end: ``securecase sweep --retire-after`` takes closed cases off the cases repo's tip
(real CLI, real git, a bare remote as the cases repo, the GitHub stand-in over real HTTP), and
``cases show``, ``cases history`` and ``report`` still find them through history."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import clean_env, git, run_cli, trivy_rescan
from fake_github import TOKEN, FakeGitHub, serve
from test_sweep import HIGH_REPORT, PR, bare_remote, commits, ingest, sweep

PR1 = "github::acme::shop::PR::1"
PR2 = "github::acme::shop::PR::2"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


def tree(remote: Path, at: str = "main") -> dict[str, str]:
    """Every file at ``at``: path -> blob id."""
    out = git(remote, "ls-tree", "-r", at)
    return {line.split("\t")[1]: line.split()[2] for line in out.splitlines()}


def cli_json(work: Path, *args: str | Path, **env: str) -> Any:
    proc = run_cli(*args, "--output", "json", cwd=work, **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def close_pr1(work: Path, remote: Path, fake: FakeGitHub) -> None:
    """PR 1 and PR 2 recorded; PR 1 merged on 2027-01-09 and closed by the sweep of 01-10."""
    for number in (1, 2):
        ingest(work, remote, "--pr", str(number), "--target-branch", "main")
    fake.add_pull("acme", "shop", 1, merged=True, closed_at="2027-01-09T08:00:00Z")
    fake.add_pull("acme", "shop", 2)
    _, out = sweep(work, remote, fake, now="2027-01-10T00:00:00Z")
    assert out["closed"] == [{"case_key": PR1, "reason": "merged"}] and out["retired"] == []


def test_a_closed_case_leaves_the_tip_after_its_grace_and_history_keeps_every_byte(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work)
    close_pr1(work, remote, fake)
    before_files = tree(remote)
    folder_tree = git(remote, "rev-parse", f"main:{PR.format(1)}").strip()
    shown_before = cli_json(work, "cases", "show", PR1, "--cases-repo", remote)
    yaml_before = git(remote, "show", f"main:{PR.format(1)}/case.yaml")

    # 29 days after the sweep that closed it: still at the tip.
    _, early = sweep(work, remote, fake, now="2027-02-08T00:00:00Z")
    assert early["retired"] == [] and PR.format(1) + "/case.yaml" in tree(remote)
    before_files = tree(remote)  # PR 2 was re-judged (its exception expired)

    env = {"SECURECASE_NOW": "2027-02-09T00:00:00Z", "GITHUB_TOKEN": TOKEN}
    dry = run_cli(
        "sweep", "--cases-repo", remote, "--dry-run",
        cwd=work, GITHUB_API_URL=fake.base_url, **env,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "1 closed case(s) would leave the tip (history keeps them):" in dry.stdout
    assert f"{PR1} (closed, left alone 30 day(s))" in dry.stdout
    assert tree(remote) == before_files

    _, out = sweep(work, remote, fake, now="2027-02-09T00:00:00Z")
    assert out["retired"] == [{"case_key": PR1, "idle_days": 30}] and out["commits"] == 1
    after_files = tree(remote)
    gone = {p: b for p, b in before_files.items() if p.startswith(PR.format(1) + "/")}
    assert gone and {p: b for p, b in before_files.items() if p not in gone} == after_files
    assert any(p.startswith(PR.format(2) + "/") for p in after_files)  # open: stays
    message = git(remote, "log", "-1", "--format=%B", "main")
    for line in (
        f"Securecase-Case: {PR1}",
        "Securecase-Status: CLOSED",
        "Securecase-Sweep: retired from the tip (closed, left alone 30 day(s))",
        f"Securecase-Retired: {PR.format(1)}",
    ):
        assert line in message.splitlines(), message
    # History keeps every byte: the parent holds the very same folder tree.
    assert git(remote, "rev-parse", f"main~1:{PR.format(1)}").strip() == folder_tree

    listed = cli_json(work, "cases", "list", "--cases-repo", remote)
    assert [c["key"] for c in listed] == [PR2]
    shown = cli_json(work, "cases", "show", PR1, "--cases-repo", remote)
    retired = shown.pop("retired")
    assert shown == shown_before
    assert retired["commit"] == commits(remote)[0] and retired["by_sweep"] is True
    assert retired["at"].startswith("2027-02-09")
    text = run_cli("cases", "show", PR1, "--cases-repo", remote, cwd=work)
    assert text.returncode == 0, text.stderr
    assert f"retired from the tip by the sweep in commit {retired['commit'][:12]}" in text.stdout
    assert "status: CLOSED" in text.stdout
    as_yaml = run_cli("cases", "show", PR1, "--cases-repo", remote, "--output", "yaml", cwd=work)
    assert as_yaml.stdout == yaml_before

    history = cli_json(work, "cases", "history", PR1, "--cases-repo", remote)
    last = history["entries"][-1]
    assert (last["change"], last["retired"], last["commit"]) == ("deleted", True, retired["commit"])
    assert not any(e["retired"] for e in history["entries"][:-1])
    table = run_cli("cases", "history", PR1, "--cases-repo", remote, cwd=work)
    assert "case retired from the tip (history keeps it)" in table.stdout

    _, again = sweep(work, remote, fake, now="2027-02-09T06:00:00Z")
    assert again["retired"] == [] and again["commits"] == 0
    missing = run_cli(
        "cases", "show", "github::acme::shop::PR::9", "--cases-repo", remote, cwd=work
    )
    assert missing.returncode == 2 and "at the tip and in history" in missing.stderr


def human_commit(work: Path, remote: Path, folder: str, notes: str, when: str) -> None:
    """A person edits the case's triage notes and pushes, the commit landing at ``when``."""
    checkout = work / "human"
    if not checkout.exists():
        subprocess.run(["git", "clone", "-q", str(remote), str(checkout)], check=True)
    git(checkout, "pull", "-q", "origin", "main")
    path = checkout / folder / "case.yaml"
    case = yaml.safe_load(path.read_text())
    case["triage"]["notes"] = notes
    path.write_text(yaml.safe_dump(case, sort_keys=False))
    env = clean_env(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    for args in (
        ["-c", "user.name=Ada", "-c", "user.email=ada@example.com", "commit", "-qam", notes],
        ["push", "-q", "origin", "main"],
    ):
        subprocess.run(["git", "-C", str(checkout), *args], check=True, env=env)


def test_a_persons_edit_after_closing_restarts_the_grace_and_open_cases_never_retire(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work)
    close_pr1(work, remote, fake)
    human_commit(work, remote, PR.format(1), "keep for the audit", "2027-01-20T10:00:00Z")
    human_commit(work, remote, PR.format(2), "open: looking", "2027-01-21T10:00:00Z")
    retire = ("--retire-after", "30")

    _, first = sweep(work, remote, fake, *retire, now="2027-02-12T00:00:00Z")
    # 33 days after the sweep closed it, but 23 after the edit: it stays.
    assert first["retired"] == [] and PR.format(1) + "/case.yaml" in tree(remote)
    _, second = sweep(work, remote, fake, *retire, now="2027-02-19T00:00:00Z")
    assert second["retired"] == [{"case_key": PR1, "idle_days": 30}]
    shown = cli_json(work, "cases", "show", PR1, "--cases-repo", remote)
    assert shown["triage"]["notes"] == "keep for the audit"  # its last state, edit included

    # PR 2 stays open on GitHub: a year on, its case is still at the tip.
    _, later = sweep(work, remote, fake, "--retire-after", "0", now="2028-01-01T00:00:00Z")
    assert later["retired"] == [] and PR.format(2) + "/case.yaml" in tree(remote)
    never = run_cli(
        "sweep", "--cases-repo", remote, "--retire-after", "soon", cwd=work,
        SECURECASE_NOW="2028-01-01T00:00:00Z",
    )  # fmt: skip
    assert never.returncode == 2 and "neither a number of days" in never.stderr


def test_retiring_changes_no_report_metric(work: Path, fake: FakeGitHub) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "1", "--target-branch", "main", now="2027-01-04T09:00:00Z")
    ingest(work, remote, "--pr", "2", "--target-branch", "main", now="2027-01-05T09:00:00Z")
    fixed = trivy_rescan(HIGH_REPORT, work / "fixed.json")
    ingest(
        work, remote, "--pr", "1", "--target-branch", "main", "--commit", "b" * 40,
        report=fixed, now="2027-01-07T09:00:00Z",
    )  # fmt: skip
    human_commit(work, remote, PR.format(1), "upgrade landed", "2027-01-08T10:00:00Z")
    fake.add_pull("acme", "shop", 1, merged=True, closed_at="2027-01-08T12:00:00Z")
    fake.add_pull("acme", "shop", 2)
    sweep(work, remote, fake, "--retire-after", "never", now="2027-01-09T00:00:00Z")
    # Brought up to date (PR 2's exception expired): the next sweep only retires.
    sweep(work, remote, fake, "--retire-after", "never", now="2027-03-01T00:00:00Z")

    def report(*extra: str) -> Any:
        return cli_json(
            work, "report", "--cases-repo", remote, "--since", "2026-12-01",
            "--until", "2027-03-31", *extra, SECURECASE_NOW="2027-03-31T00:00:00Z",
        )  # fmt: skip

    before = report()
    assert before["mttr_days"]["high"]["count"] == 1 and before["gate"]["pr_scans"] == 3
    assert before["mtta_hours"]["count"] == 1
    assert sum(w["fixed"] for w in before["weekly"]) == 1
    assert [r["repo"] for r in before["by_repo"]] == ["acme/shop"]

    _, out = sweep(work, remote, fake, now="2027-03-01T06:00:00Z")
    assert out["retired"] == [{"case_key": PR1, "idle_days": 51}] and out["commits"] == 1
    assert PR.format(1) + "/case.yaml" not in tree(remote)
    assert report() == before  # the cached events, plus the retirement commit
    assert report("--no-cache") == before  # every event derived afresh
    # A window that starts after the retirement reads no retired case (it resolved nothing
    # there) and lists the same open cases.
    late = cli_json(
        work, "report", "--cases-repo", remote, "--since", "2027-03-02", "--until", "2027-03-31",
        SECURECASE_NOW="2027-03-31T00:00:00Z",
    )  # fmt: skip
    assert late["open_cases"] == before["open_cases"] and late["mttr_days"]["high"]["count"] == 0


def crowded_remote(work: Path, folders: int) -> Path:
    """A bare cases repo whose acme/shop folder holds ``folders`` pull request folders."""
    remote = bare_remote(work)
    seed = work / "seed"
    blob = (
        subprocess.run(
            ["git", "-C", str(seed), "hash-object", "-w", "--stdin"],
            input=b"placeholder\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    index = "".join(
        f"100644 {blob}\t{PR.format(n)}/case.yaml\n" for n in range(1000, 1000 + folders)
    )
    subprocess.run(
        ["git", "-C", str(seed), "update-index", "--index-info"],
        input=index.encode(),
        check=True,
        env=clean_env(),
    )
    ident = ["-c", "user.name=sec", "-c", "user.email=sec@example.com"]
    git(seed, *ident, "commit", "-qm", "many pull requests")
    git(seed, "push", "-q", str(remote), "main")
    return remote


def test_an_ingest_warns_when_its_repository_folder_passes_2500_entries(work: Path) -> None:
    remote = crowded_remote(work, 2499)

    def new_case(pr: int) -> str:
        proc = run_cli(
            "ingest", HIGH_REPORT, "--cases-repo", remote, "--repo", "acme/shop",
            "--pr", str(pr), "--target-branch", "main", "--report", "none",
            cwd=work, SECURECASE_NOW="2027-01-10T00:00:00Z",
        )  # fmt: skip
        assert proc.returncode in (0, 1), proc.stderr
        return proc.stderr

    assert "case folders" not in new_case(1)  # the 2,500th entry
    said = new_case(2)
    assert "cases/github/acme/shop now holds 2501 case folders" in said, said
    assert "run `securecase sweep` on schedule" in said
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert "Warning: cases/github/acme/shop now holds 2501 case folders" in message
