"""End-to-end: ``securecase sweep`` through the real CLI, real git (a bare remote as the cases
repo), the GitHub stand-in and a webhook receiver over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import TRIVY, clean_env, git, run_cli
from fake_github import TOKEN, FakeGitHub, fake_sha, serve

HIGH_REPORT = TRIVY / "issue_9092.json"  # one HIGH finding, no report time of its own
OTHER_REPORT = TRIVY / "pip.json"
POLICY = """\
version: 1
mode: pr_gate
rules:
  - id: no-high
    block: {severity_at_least: HIGH}
exceptions:
  - id: EXC-1
    match: {source: "*", repos: ["acme/*"]}
    reason: accepted until the upgrade lands
    approved_by: "@acme/security"
    expires: 2027-01-20
sla_days: {CRITICAL: 7, HIGH: 30}
"""
SECRET_PATH = "/hooks/T000/B000/s3cr3t-webhook-token-42"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


class Receiver:
    """A webhook receiver on localhost: records bodies, answers scripted statuses first."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def bare_remote(work: Path, policy: str | None = POLICY) -> Path:
    """A bare cases repo on ``main``, holding ``policy.yaml`` when given."""
    remote = work / "cases.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    if policy is not None:
        seed = work / "seed"
        subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
        (seed / "policy.yaml").write_text(policy)
        git(seed, "add", "policy.yaml")
        git(seed, "-c", "user.name=sec", "-c", "user.email=sec@example.com", "commit", "-qm", "p")
        git(seed, "push", "-q", str(remote), "main")
    return remote


def ingest(
    work: Path,
    remote: Path,
    *subject: str,
    report: Path = HIGH_REPORT,
    now: str = "2027-01-10T00:00:00Z",
) -> dict[str, Any]:
    proc = run_cli(
        "ingest",
        report,
        "--cases-repo",
        remote,
        "--repo",
        "acme/shop",
        *subject,
        "--report",
        "none",
        "--output",
        "json",
        cwd=work,
        SECURECASE_NOW=now,
    )
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def sweep(
    work: Path,
    remote: Path,
    fake: FakeGitHub | None,
    *args: str | Path,
    now: str = "2027-01-10T12:00:00Z",
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {"SECURECASE_NOW": now}
    if fake is not None:
        env |= {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": fake.base_url}
    proc = run_cli("sweep", "--cases-repo", remote, "--output", "json", *args, cwd=work, **env)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(proc.stdout)


def case_file(remote: Path, folder: str) -> dict[str, Any]:
    """case.yaml at main, with findings.json's open and resolved findings merged in."""
    data: dict[str, Any] = yaml.safe_load(git(remote, "show", f"main:{folder}/case.yaml"))
    findings = json.loads(git(remote, "show", f"main:{folder}/findings.json"))
    data["findings"], data["resolved"] = findings["findings"], findings["resolved"]
    return data


def commits(remote: Path) -> list[str]:
    return git(remote, "rev-list", "main").split()


def changed_folders(remote: Path, commit: str) -> set[str]:
    names = git(remote, "diff-tree", "--no-commit-id", "--name-only", "-r", commit).split()
    return {name.rsplit("/", 1)[0] for name in names}


PR = "cases/github/acme/shop/pr-{}"
BR = "cases/github/acme/shop/branch-{}"


def test_sweep_closes_merged_closed_and_deleted_and_is_idempotent(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work, policy=None)
    for number in (1, 2, 3):
        ingest(work, remote, "--pr", str(number), "--target-branch", "main")
    for branch in ("feature/a", "feature/gone"):
        ingest(work, remote, "--branch", branch)
    fake.add_pull("acme", "shop", 1, merged=True, closed_at="2027-01-09T08:00:00Z")
    fake.add_pull("acme", "shop", 2, state="closed", closed_at="2027-01-09T09:00:00Z")
    fake.add_pull("acme", "shop", 3)
    fake.add_branch("acme", "shop", "main")
    fake.add_branch("acme", "shop", "feature/a")
    before = commits(remote)

    _, out = sweep(work, remote, fake)

    assert sorted((c["case_key"], c["reason"]) for c in out["closed"]) == [
        ("github::acme::shop::BR::feature/gone", "branch_deleted"),
        ("github::acme::shop::PR::1", "merged"),
        ("github::acme::shop::PR::2", "closed"),
    ]
    assert out["commits"] == 3 and out["warnings"] == []
    made = commits(remote)[: len(commits(remote)) - len(before)]
    assert len(made) == 3
    assert sorted(folder for c in made for folder in changed_folders(remote, c)) == sorted(
        [PR.format(1), PR.format(2), BR.format("feature%2Fgone")]
    )
    message = git(remote, "log", "-1", "--format=%B", made[0])
    assert "Securecase-Sweep: closed" in message and "Securecase-Case: github::acme::" in message
    merged = case_file(remote, PR.format(1))
    assert merged["status"] == "CLOSED"
    assert merged["closed"] == {"reason": "merged", "at": "2027-01-09T08:00:00Z"}
    assert case_file(remote, BR.format("feature%2Fgone"))["closed"]["reason"] == "branch_deleted"
    assert case_file(remote, PR.format(3))["status"] == "NEW"
    assert "closed" not in case_file(remote, BR.format("feature%2Fa"))
    # One listing of each kind for the repository, not a call per case.
    assert fake.count("pulls/list") == 1 and fake.count("repos/list-branches") == 1

    _, again = sweep(work, remote, fake)
    assert again["commits"] == 0 and again["closed"] == []
    assert len(commits(remote)) == len(before) + 3


def test_a_reopened_pull_request_reopens_its_case_on_the_next_scan(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work, policy=None)
    ingest(work, remote, "--pr", "5", "--target-branch", "main", "--commit", "a" * 40)
    fake.add_pull("acme", "shop", 5, state="closed")
    sweep(work, remote, fake)
    assert case_file(remote, PR.format(5))["status"] == "CLOSED"
    fake.add_pull("acme", "shop", 5)  # reopened
    out = ingest(
        work,
        remote,
        "--pr",
        "5",
        "--target-branch",
        "main",
        "--commit",
        "b" * 40,
        now="2027-01-11T00:00:00Z",
    )
    reopened = case_file(remote, PR.format(5))
    assert out["status"] == "NEW" and reopened["status"] == "NEW"
    assert "closed" not in reopened and reopened["reopened"] == 1


def test_listing_calls_grow_with_repositories_not_cases(work: Path, fake: FakeGitHub) -> None:
    """300 pull request cases in 3 repositories: a handful of listing calls per repository."""
    remote = bare_remote(work, policy=None)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    template = git(remote, "show", f"main:{PR.format(1)}/case.yaml")
    findings = git(remote, "show", f"main:{PR.format(1)}/findings.json") + "\n"
    # The other 299 case files are the real one under other keys, committed with real git.
    clone = work / "clone"
    git(work, "clone", "-q", str(remote), str(clone))
    repos = ("shop", "cart", "pay")
    fake.now = "2027-01-10T06:00:00Z"  # pull requests updated after their cases were recorded
    for repo in repos:
        for number in range(1, 101):
            folder = clone / f"cases/github/acme/{repo}/pr-{number}"
            folder.mkdir(parents=True, exist_ok=True)
            text = template.replace(
                "github::acme::shop::PR::1", f"github::acme::{repo}::PR::{number}"
            )
            text = text.replace("repo: shop", f"repo: {repo}").replace("pr: 1\n", f"pr: {number}\n")
            (folder / "case.yaml").write_text(text)
            (folder / "findings.json").write_text(findings)
            # Every tenth pull request of each repository was merged; plus unrelated ones.
            fake.add_pull("acme", repo, number, merged=number % 10 == 0)
        for number in range(101, 161):
            fake.add_pull("acme", repo, number)
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "cases")
    git(clone, "push", "-q", "origin", "main")

    _, out = sweep(work, remote, fake)

    assert len(out["closed"]) == 30 and {c["reason"] for c in out["closed"]} == {"merged"}
    assert out["commits"] == 30
    assert fake.count("pulls/list") <= 2 * len(repos)  # 100 per page
    assert fake.count("repos/list-branches") == 0  # no branch cases: no branch listing
    assert out["api_calls"] == fake.count("pulls/list")
    per_repo = {r.path.split("/")[3] for r in fake.calls_to("pulls/list")}
    assert per_repo == set(repos)


def test_expired_exception_flips_the_pr_to_block_with_a_check_run(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work)
    head = fake_sha("acme", "shop", "head", 7)
    first = ingest(work, remote, "--pr", "7", "--target-branch", "main", "--commit", head)
    assert first["decision"] == "pass"
    fake.add_pull("acme", "shop", 7, head_sha=head)

    _, soon = sweep(work, remote, fake, now="2027-01-12T00:00:00Z")
    assert soon["decision_changes"] == [] and soon["commits"] == 0
    assert soon["expiring_exceptions"] == [
        {"id": "EXC-1", "expires": "2027-01-20", "cases": ["github::acme::shop::PR::7"]}
    ]
    assert fake.check_runs == {}

    _, out = sweep(work, remote, fake, now="2027-01-25T00:00:00Z")

    [change] = out["decision_changes"]
    assert (change["case_key"], change["from"], change["to"]) == (
        "github::acme::shop::PR::7",
        "pass",
        "block",
    )
    assert any("exception EXC-1 expired on 2027-01-20" in r for r in change["reasons"])
    stored = case_file(remote, PR.format(7))
    assert stored["gate"]["decision"] == "block" and stored["gate"]["rules"] == ["no-high"]
    assert all("exception" not in f for f in stored["findings"])
    [run] = fake.check_runs.values()
    assert run["head_sha"] == head and run["conclusion"] == "failure"
    assert run["external_id"] == "github::acme::shop::PR::7"
    history = run_cli(
        "cases",
        "history",
        "github::acme::shop::PR::7",
        "--cases-repo",
        remote,
        "--output",
        "json",
        cwd=work,
    )
    assert history.returncode == 0, history.stderr
    entries = json.loads(history.stdout)["entries"]  # oldest first
    assert [(e["decision"], e["facts_from"]) for e in entries] == [
        ("pass", "trailers"),
        ("block", "trailers"),
    ]
    assert entries[1]["commit"] == git(remote, "rev-parse", "main").strip()
    assert entries[1]["scanned_commit"] == head


def test_webhook_gets_each_new_event_once(work: Path, fake: FakeGitHub, receiver: Receiver) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    ingest(work, remote, "--pr", "2", "--target-branch", "main")
    fake.add_pull("acme", "shop", 1, merged=True)
    fake.add_pull("acme", "shop", 2)
    hook = ("--notify", receiver.url)

    first_proc, first = sweep(work, remote, fake, *hook, now="2027-01-12T00:00:00Z")
    second_proc, second = sweep(work, remote, fake, *hook, now="2027-01-12T06:00:00Z")

    assert len(receiver.bodies) == 1  # one message per sweep, none when nothing is new
    ids = [e["id"] for e in receiver.bodies[0]["events"]]
    kinds = sorted(e["kind"] for e in receiver.bodies[0]["events"])
    assert kinds == ["case_closed", "exception_expiring"], ids
    assert first["notified"] == 2 and second["notified"] == 0 and second["commits"] == 0
    # A new event (the second pull request is closed) is the only one the next message holds.
    fake.add_pull("acme", "shop", 2, state="closed")
    sweep(work, remote, fake, *hook, now="2027-01-13T00:00:00Z")
    assert len(receiver.bodies) == 2
    assert [e["kind"] for e in receiver.bodies[1]["events"]] == ["case_closed"]
    assert receiver.bodies[1]["events"][0]["case_key"] == "github::acme::shop::PR::2"
    assert_secret_nowhere(remote, receiver.url, first_proc, second_proc)


def test_webhook_failing_twice_then_succeeding_gets_the_message_once(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    fake.add_pull("acme", "shop", 1, merged=True)
    flaky = Receiver([500, 500])
    try:
        proc, out = sweep(work, remote, fake, "--notify", flaky.url)
        _, again = sweep(work, remote, fake, "--notify", flaky.url)
    finally:
        flaky.close()
    assert flaky.attempts == 3 and len(flaky.bodies) == 1
    assert out["notified"] == 1 and out["warnings"] == []
    assert again["notified"] == 0
    assert_secret_nowhere(remote, flaky.url, proc)


def test_a_failed_delivery_is_a_warning_and_retried_by_the_next_sweep(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    fake.add_pull("acme", "shop", 1, merged=True)
    down = Receiver([500] * 4)
    try:
        proc, out = sweep(work, remote, fake, "--notify", down.url, "--notify-format", "slack")
        _, later = sweep(work, remote, fake, "--notify", down.url, "--notify-format", "slack")
    finally:
        down.close()
    assert out["notified"] == 0 and out["commits"] == 1  # the case closed all the same
    assert any(w.startswith("webhook #1: delivery failed") for w in out["warnings"])
    assert later["notified"] == 1 and len(down.bodies) == 1
    assert "github::acme::shop::PR::1: closed (merged)" in down.bodies[0]["text"]
    assert_secret_nowhere(remote, down.url, proc)


def assert_secret_nowhere(remote: Path, url: str, *procs: subprocess.CompletedProcess[str]) -> None:
    """The webhook URL is in no output and in no object of the cases repo."""
    secret = SECRET_PATH.rsplit("/", 1)[1]
    for proc in procs:
        assert secret not in proc.stdout and secret not in proc.stderr
        assert url not in proc.stdout and url not in proc.stderr
    objects = subprocess.run(
        ["git", "-C", str(remote), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
        env=clean_env(),
    ).stdout
    assert objects and secret.encode() not in objects


def test_without_credentials_closing_is_skipped_with_one_warning(work: Path) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    ingest(work, remote, "--pr", "2", "--target-branch", "main")
    _, out = sweep(work, remote, None, now="2027-01-25T00:00:00Z")
    assert len(out["warnings"]) == 1 and "closing skipped" in out["warnings"][0]
    assert out["closed"] == [] and len(out["decision_changes"]) == 2  # re-judged all the same
    assert out["api_calls"] == 0 and out["commits"] == 2


def test_sla_breach_is_marked_and_reported_once(work: Path, fake: FakeGitHub) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    fake.add_pull("acme", "shop", 1)
    [finding] = case_file(remote, PR.format(1))["findings"]
    assert finding["sla"] == {"due": "2027-02-09", "breached": False}
    _, out = sweep(work, remote, fake, now="2027-02-15T00:00:00Z")
    assert [(b["severity"], b["due"]) for b in out["sla_breaches"]] == [("HIGH", "2027-02-09")]
    assert case_file(remote, PR.format(1))["findings"][0]["sla"]["breached"] is True
    _, again = sweep(work, remote, fake, now="2027-02-15T08:00:00Z")
    assert again["sla_breaches"] == [] and again["commits"] == 0


def test_dry_run_prints_the_plan_and_writes_nothing(work: Path, fake: FakeGitHub) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    fake.add_pull("acme", "shop", 1, merged=True)
    before = commits(remote)
    proc = run_cli(
        "sweep",
        "--cases-repo",
        remote,
        "--dry-run",
        cwd=work,
        SECURECASE_NOW="2027-01-25T00:00:00Z",
        GITHUB_TOKEN=TOKEN,
        GITHUB_API_URL=fake.base_url,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 case(s) would change" in proc.stdout
    assert "github::acme::shop::PR::1: closed (merged)" in proc.stdout
    assert commits(remote) == before and fake.check_runs == {}


def raw_files(remote: Path, folder: str, at: str = "main") -> list[str]:
    return git(remote, "ls-tree", "-r", "--name-only", at, "--", f"{folder}/raw").split()


def test_prune_raw_after_removes_closed_cases_raw_reports_and_history_keeps_them(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work)
    for number in (1, 2):
        ingest(work, remote, "--pr", str(number), "--target-branch", "main")
    fake.add_pull("acme", "shop", 1, merged=True, closed_at="2027-01-09T08:00:00Z")
    fake.add_pull("acme", "shop", 2)
    sweep(work, remote, fake, now="2027-01-10T00:00:00Z")  # closes PR 1
    fake.add_pull("acme", "shop", 2, state="closed", closed_at="2027-02-04T00:00:00Z")
    # Retirement (its own test: test_sweep_retire.py) would remove PR 1's folder on 2027-02-09.
    prune = ("--prune-raw-after", "30", "--retire-after", "never")
    _, early = sweep(work, remote, fake, *prune, now="2027-02-05T00:00:00Z")  # closes PR 2
    assert early["raw_pruned"] == [] and early["closed"]
    kept = raw_files(remote, PR.format(1))
    assert kept and raw_files(remote, PR.format(2))
    before = commits(remote)
    case_before = git(remote, "show", f"main:{PR.format(1)}/case.yaml")

    dry = run_cli(
        "sweep", "--cases-repo", remote, "--dry-run", *prune,
        cwd=work, SECURECASE_NOW="2027-02-08T00:00:00Z", GITHUB_TOKEN=TOKEN,
        GITHUB_API_URL=fake.base_url,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "raw reports would be removed of 1 closed case(s):" in dry.stdout
    assert "github::acme::shop::PR::1" in dry.stdout and commits(remote) == before

    _, out = sweep(work, remote, fake, *prune, now="2027-02-08T00:00:00Z")  # 30 days after
    assert out["raw_pruned"] == ["github::acme::shop::PR::1"] and out["commits"] == 1
    assert raw_files(remote, PR.format(1)) == [] and raw_files(remote, PR.format(2))
    assert git(remote, "show", f"main:{PR.format(1)}/case.yaml") == case_before
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert "raw reports pruned (closed 30 day(s) ago)" in message
    assert "Securecase-Case: github::acme::shop::PR::1" in message
    assert raw_files(remote, PR.format(1), at="main~1") == kept  # history keeps them
    for path in kept:
        assert git(remote, "cat-file", "-t", f"main~1:{path}").strip() == "blob"

    _, again = sweep(work, remote, fake, *prune, now="2027-02-09T00:00:00Z")
    assert again["raw_pruned"] == [] and again["commits"] == 0
    checkout = work / "checkout"
    subprocess.run(["git", "clone", "-q", str(remote), str(checkout)], check=True)
    valid = run_cli("cases", "validate", "--cases-repo", checkout, cwd=work)
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_open_issues_opens_updates_and_closes_one_issue_per_case(
    work: Path, fake: FakeGitHub
) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "7", "--target-branch", "main")
    fake.add_pull("acme", "shop", 7)
    args = ("--open-issues", "acme/security")
    sweep(work, remote, fake, *args, now="2027-01-25T00:00:00Z")  # blocks: exception expired
    [issue] = fake.issues("acme", "security")
    assert "<!-- securecase:case=github::acme::shop::PR::7 -->" in issue["body"]
    assert issue["state"] == "open"
    sweep(work, remote, fake, *args, now="2027-01-25T06:00:00Z")
    assert len(fake.issues("acme", "security")) == 1
    fake.add_pull("acme", "shop", 7, merged=True)
    sweep(work, remote, fake, *args, now="2027-01-26T00:00:00Z")
    [closed] = fake.issues("acme", "security")
    assert closed["state"] == "closed"


def test_bad_input_exits_2_and_an_unwritable_repo_exits_3(work: Path) -> None:
    missing = run_cli("sweep", "--cases-repo", work / "nowhere", cwd=work)
    assert missing.returncode == 2
    remote = bare_remote(work)
    bad_hook = run_cli("sweep", "--cases-repo", remote, "--notify", "ftp://x", cwd=work)
    assert bad_hook.returncode == 2 and "ftp://x" not in bad_hook.stdout
    unreachable = run_cli("sweep", "--cases-repo", "file:///nonexistent/cases.git", cwd=work)
    assert unreachable.returncode == 3, unreachable.stderr


def test_a_sweep_racing_eight_ingests_loses_no_update(work: Path, fake: FakeGitHub) -> None:
    remote = bare_remote(work)
    for number in range(1, 5):
        ingest(work, remote, "--pr", str(number), "--target-branch", "main")
        fake.add_pull("acme", "shop", number, merged=number % 2 == 0)
    env = clean_env(
        SECURECASE_NOW="2027-01-25T00:00:00Z", GITHUB_TOKEN=TOKEN, GITHUB_API_URL=fake.base_url
    )

    def start(*args: str | Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "securecase", *map(str, args)],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # Ingests into the open cases the sweep re-judges, and into new ones, all at once.
    subjects: list[tuple[str, ...]] = [
        ("--pr", str(1 + n % 2 * 2), "--target-branch", "main", "--source", f"s{n}")
        for n in range(4)
    ]
    subjects += [("--pr", str(10 + n), "--target-branch", "main") for n in range(4)]
    procs = [
        start(
            "ingest",
            OTHER_REPORT,
            "--cases-repo",
            remote,
            "--repo",
            "acme/shop",
            *s,
            "--report",
            "none",
            "--output",
            "json",
        )
        for s in subjects
    ]
    sweeper = start("sweep", "--cases-repo", remote, "--output", "json")
    outs = [p.communicate(timeout=300) for p in procs]
    swept_out, swept_err = sweeper.communicate(timeout=300)
    assert sweeper.returncode == 0, swept_err
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode in (0, 1), err
    swept = json.loads(swept_out)
    assert sorted(c["case_key"] for c in swept["closed"]) == [
        "github::acme::shop::PR::2",
        "github::acme::shop::PR::4",
    ]
    for number in (2, 4):
        assert case_file(remote, PR.format(number))["status"] == "CLOSED"
    for number in (1, 3):
        stored = case_file(remote, PR.format(number))
        assert {"s0", "s1", "s2", "s3"} & set(stored["sources"]) == {
            f"s{n}" for n in range(4) if 1 + n % 2 * 2 == number
        }
        assert stored["gate"]["decision"] == "block"  # re-judged after EXC-1 expired
    for number in range(10, 14):
        assert case_file(remote, PR.format(number))["sources"]
    log = git(remote, "log", "--format=%B", "main")
    assert log.count("Securecase-Sweep:") == swept["commits"]


def _stderr_on_a_terminal(work: Path, remote: Path, **env: str) -> str:
    """Run a dry-run sweep with stderr on a pseudo-terminal; what the terminal received."""
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "securecase", "sweep", "--cases-repo", str(remote), "--dry-run"],
            cwd=work,
            env=clean_env(SECURECASE_NOW="2027-01-25T00:00:00Z", **env),
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=300,
        )
        assert proc.returncode == 0
    finally:
        os.close(follower)
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal is closed once everything was read
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    return received.decode("utf-8", "replace")


def test_progress_line_on_a_terminal_only_and_never_in_actions(work: Path) -> None:
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    ingest(work, remote, "--pr", "2", "--target-branch", "main")
    shown = _stderr_on_a_terminal(work, remote)
    assert "judging cases" in shown and "\r" in shown
    assert "judging cases" not in _stderr_on_a_terminal(work, remote, GITHUB_ACTIONS="true")
    piped = run_cli("sweep", "--cases-repo", remote, "--dry-run", cwd=work)
    assert piped.returncode == 0 and "judging cases" not in piped.stderr


def test_a_local_repo_remembers_until_when_time_cannot_change_a_case(
    work: Path, fake: FakeGitHub
) -> None:
    """The memo lets later sweeps skip unchanged cases, but never past the day time changes
    them (here: the day after the exception expires)."""
    remote = bare_remote(work)
    local = work / "local-cases"
    git(work, "clone", "-q", str(remote), str(local))
    ingest(work, local, "--pr", "7", "--target-branch", "main")
    ingest(work, local, "--pr", "8", "--target-branch", "main")
    fake.add_pull("acme", "shop", 7)
    fake.add_pull("acme", "shop", 8)
    _, first = sweep(work, local, fake, now="2027-01-10T12:00:00Z")
    assert first["commits"] == 0
    memo = json.loads((local / ".git/securecase/sweep-memo.json").read_text())
    entry = memo["entries"][PR.format(7)]
    assert entry["until"] == "2027-01-21" and entry["key"] == "github::acme::shop::PR::7"
    # A skipped case is still listed for closing, and read when its pull request closed.
    fake.add_pull("acme", "shop", 8, merged=True)
    _, quiet = sweep(work, local, fake, now="2027-01-15T00:00:00Z")
    assert quiet["closed"] == [{"case_key": "github::acme::shop::PR::8", "reason": "merged"}]
    assert quiet["commits"] == 1 and quiet["decision_changes"] == []
    assert yaml.safe_load((local / PR.format(8) / "case.yaml").read_text())["status"] == "CLOSED"
    _, due = sweep(work, local, fake, now="2027-01-21T00:00:00Z")
    assert [(c["case_key"], c["to"]) for c in due["decision_changes"]] == [
        ("github::acme::shop::PR::7", "block")
    ]


def test_a_cases_repo_given_as_a_url_keeps_its_memo_in_the_cache(
    work: Path, fake: FakeGitHub
) -> None:
    """A URL is read through a temporary clone, so the memo lives in the cache folder, one
    per cases repo, named by a hash (neither the path nor the URL shows); --no-cache keeps
    none."""
    remote = bare_remote(work)
    ingest(work, remote, "--pr", "7", "--target-branch", "main")
    fake.add_pull("acme", "shop", 7)
    env = {"SECURECASE_NOW": "2027-01-10T12:00:00Z", "GITHUB_TOKEN": TOKEN}
    env["GITHUB_API_URL"] = fake.base_url

    def run(cache: Path, *args: str) -> dict[str, Any]:
        proc = run_cli(
            "sweep", "--cases-repo", f"file://{remote}", "--output", "json", *args,
            cwd=work, SECURECASE_CACHE_DIR=str(cache), **env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    cache = work / "cache"
    assert run(cache)["commits"] == 0
    memos = list(cache.glob("sweep-memo/*/sweep-memo.json"))
    assert len(memos) == 1, sorted(str(p) for p in cache.rglob("*"))
    assert "cases" not in memos[0].parent.name and len(memos[0].parent.name) == 32
    entry = json.loads(memos[0].read_text())["entries"][PR.format(7)]
    assert entry["key"] == "github::acme::shop::PR::7"
    assert run(cache)["commits"] == 0  # read back from the cache: the same answer
    untouched = work / "no-cache"
    assert run(untouched, "--no-cache")["commits"] == 0
    assert not (untouched / "sweep-memo").exists()
