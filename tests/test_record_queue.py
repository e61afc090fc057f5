"""A busy cases repo: decisions never wait for a push, records are queued, never lost.

The cases repo is a GitHub-like bare remote (tests/githublike.py): its pre-receive hook refuses
objects above a size limit and pushes beyond a push-rate budget. Every securecase is the real
CLI in its own process; concurrency is real processes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, TRIVY, clean_env, git, read_github_output, run_cli, trivy_rescan
from fake_github import TOKEN, FakeGitHub, serve
from githublike import GitHubLikeRemote
from securecase.storage.queue import RecordQueue
from securecase.storage.repos import open_store
from securecase.storage.store import Change, Plan, Snapshot

REPORT = TRIVY / "alpine-310.json"  # four MEDIUM vulnerabilities
BLOCK_MEDIUM = "version: 1\nrules:\n  - id: no-medium\n    block: {severity_at_least: MEDIUM}\n"
HEAD = "0123456789abcdef0123456789abcdef01234567"
PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # the fixture event's pull request head

MakeRemote = Callable[..., GitHubLikeRemote]


def ingest_args(remote: GitHubLikeRemote, pr: int, report: Path = REPORT) -> list[str]:
    """The arguments of ``securecase ingest --output json`` of ``report`` into PR ``pr``'s case."""
    return [
        "ingest",
        str(report),
        "--cases-repo",
        remote.url,
        "--repo",
        "acme/shop",
        "--pr",
        str(pr),
        "--target-branch",
        "main",
        "--commit",
        HEAD,
        "--output",
        "json",
    ]


def ingest(
    work: Path,
    remote: GitHubLikeRemote,
    pr: int,
    *args: str | Path,
    report: Path = REPORT,
    **env: str,
) -> tuple[int, dict[str, Any], str]:
    """One real ``securecase ingest --output json`` of ``report`` into PR ``pr``'s case."""
    proc = run_cli(*ingest_args(remote, pr, report), *args, cwd=work, **env)
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, data, proc.stderr


def queue_entries(work: Path, remote: GitHubLikeRemote) -> list[str]:
    """The ids of the records waiting in the queue at ``work/queue`` for ``remote``."""
    return [e.entry_id for e in RecordQueue(work / "queue", remote.url).entries()]


def sweep(work: Path, remote: GitHubLikeRemote, *args: str) -> subprocess.CompletedProcess[str]:
    """A real ``securecase sweep`` (it folds the queue first)."""
    return run_cli(
        "sweep",
        "--cases-repo",
        remote.url,
        "--output",
        "json",
        "--queue-dir",
        str(work / "queue"),
        *args,
        cwd=work,
    )


def case_keys_at_tip(remote: GitHubLikeRemote) -> list[str]:
    """The case folders at the tip of ``main`` in the remote."""
    listed = git(remote.path, "ls-tree", "-r", "--name-only", "main", "--", "cases")
    return sorted(p.rsplit("/", 1)[0] for p in listed.splitlines() if p.endswith("/case.yaml"))


def trailers(remote: GitHubLikeRemote, name: str) -> list[str]:
    """The values of one ``Securecase-<name>`` trailer over the history of ``main``, newest
    first (one per commit)."""
    out = git(
        remote.path, "log", f"--format=%(trailers:key=Securecase-{name},valueonly)%x00", "main"
    )
    return [value.strip() for value in out.split("\0") if value.strip()]


# -- the GitHub-like remote itself -------------------------------------------------------------


def commit_and_push(clone: Path, name: str, url: str) -> subprocess.CompletedProcess[str]:
    """Commit the file ``name`` of ``clone`` and push ``main`` to ``url`` (git's answer)."""
    git(clone, "add", name)
    git(clone, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", name)
    return subprocess.run(
        ["git", "-C", str(clone), "push", url, "main"],
        capture_output=True,
        text=True,
        env=clean_env(),
    )


def test_the_remote_refuses_a_large_object_with_githubs_text(
    tmp_path: Path, githublike: MakeRemote
) -> None:
    remote = githublike(max_object_bytes=10_000)
    clone = tmp_path / "clone"
    git(tmp_path, "init", "-q", "-b", "main", str(clone))
    (clone / "small.txt").write_bytes(b"x" * 9_000)
    assert commit_and_push(clone, "small.txt", remote.url).returncode == 0
    (clone / "big.bin").write_bytes(bytes(range(256)) * 60)  # 15,360 bytes
    pushed = commit_and_push(clone, "big.bin", remote.url)
    assert pushed.returncode != 0
    assert "File big.bin is 0.01 MB; this exceeds GitHub's file size limit of 0.01 MB" in (
        pushed.stderr
    )
    assert "GH001: Large files detected" in pushed.stderr
    assert "pre-receive hook declined" in pushed.stderr
    assert remote.commits() == 1 and remote.pushes() == 1


def test_the_remote_enforces_githubs_100_mb_by_default(
    tmp_path: Path, githublike: MakeRemote
) -> None:
    remote = githublike()  # GitHub's limits: 100 MB, 6 pushes a minute
    clone = tmp_path / "clone"
    git(tmp_path, "init", "-q", "-b", "main", str(clone))
    with open(clone / "image.tar", "wb") as handle:
        handle.truncate(100 * 1024 * 1024 + 1)  # zeros: cheap to write, hash and pack
    pushed = commit_and_push(clone, "image.tar", remote.url)
    assert pushed.returncode != 0
    assert "File image.tar is 100.00 MB; this exceeds GitHub's file size limit of 100.00 MB" in (
        pushed.stderr
    )
    assert remote.commits() == 0


def test_the_remote_refuses_pushes_beyond_its_budget(
    tmp_path: Path, githublike: MakeRemote
) -> None:
    remote = githublike(pushes_per_window=2, window_seconds=300)
    clone = tmp_path / "clone"
    git(tmp_path, "init", "-q", "-b", "main", str(clone))
    results = []
    for n in range(3):
        (clone / "f.txt").write_text(str(n))
        git(clone, "add", "f.txt")
        git(clone, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", str(n))
        results.append(
            subprocess.run(
                ["git", "-C", str(clone), "push", remote.url, "main"],
                capture_output=True,
                text=True,
                env=clean_env(),
            )
        )
    assert [r.returncode for r in results[:2]] == [0, 0]
    assert results[2].returncode != 0
    assert "push rate limit exceeded: at most 2 pushes per 300 s" in results[2].stderr
    assert remote.pushes() == 2 and remote.commits() == 2


# -- securecase against it ---------------------------------------------------------------------


def test_an_oversize_report_is_refused_before_any_push(work: Path, githublike: MakeRemote) -> None:
    remote = githublike()
    code, _, err = ingest(work, remote, 1, "--max-report-bytes", "1000")
    assert code == 2, err
    assert "above the" in err and "--max-report-bytes" in err
    assert remote.pushes() == 0 and remote.commits() == 0


def test_the_servers_size_rule_reaches_the_user_as_exit_3(
    work: Path, githublike: MakeRemote
) -> None:
    # The raw report (about 20 KB) is above what this server takes: it refuses the push, and
    # with queueing off the run fails with exit 3 naming GitHub's rule.
    remote = githublike(max_object_bytes=4_000)
    code, _, err = ingest(work, remote, 1, "--queue-dir", "off")
    assert code == 3, err
    assert "this exceeds GitHub's file size limit" in err and "GH001" in err
    assert remote.commits() == 0


def test_a_refused_push_still_decides_and_queues_the_record(
    work: Path, githublike: MakeRemote
) -> None:
    remote = githublike(pushes_per_window=1, window_seconds=600)
    policy = work / "policy.yaml"
    policy.write_text(BLOCK_MEDIUM)
    queue = ["--queue-dir", str(work / "queue"), "--policy", str(policy)]
    first = ingest(work, remote, 1, *queue)
    assert first[0] == 1 and first[1]["recorded"] == "committed", first[2]
    # The budget is spent: the gate's decision (block, exit 1) is still reported.
    code, out, err = ingest(work, remote, 2, *queue)
    assert code == 1, err
    assert out["decision"] == "block" and out["recorded"] == "queued"
    assert out["cases_commit"] is None and out["queued"] == queue_entries(work, remote)[0]
    assert "push rate limit exceeded" in err and "queued as" in err
    # Queueing off: the same busy cases repo is exit 3, as before queues existed.
    off = ingest(work, remote, 3, "--queue-dir", "off", "--policy", str(policy))
    assert off[0] == 3 and "push rate limit exceeded" in off[2]
    assert remote.commits() == 1 and len(queue_entries(work, remote)) == 1


def test_the_next_ingest_lands_the_queue_in_its_own_push(
    work: Path, githublike: MakeRemote
) -> None:
    remote = githublike(pushes_per_window=1, window_seconds=600)
    queue = ("--queue-dir", str(work / "queue"))
    assert ingest(work, remote, 1, *queue)[1]["recorded"] == "committed"
    fixed = trivy_rescan(REPORT, work / "fixed.json", "CVE-2019-1549")
    # Two records of PR 2 (a scan, then a rescan with a fix) and one of PR 3 wait.
    assert ingest(work, remote, 2, *queue)[1]["recorded"] == "queued"
    assert ingest(work, remote, 2, *queue, report=fixed)[1]["recorded"] == "queued"
    assert ingest(work, remote, 3, *queue)[1]["recorded"] == "queued"
    assert remote.pushes() == 1 and len(queue_entries(work, remote)) == 3
    remote.configure("pushesPerWindow", 2)  # the budget comes back
    code, out, err = ingest(work, remote, 4, *queue)
    assert code == 0 and out["recorded"] == "committed", err
    assert "3 queued record(s) of earlier runs landed with this one" in err
    assert remote.pushes() == 2  # one push carried four records
    assert remote.commits() == 5 and queue_entries(work, remote) == []
    assert len(case_keys_at_tip(remote)) == 4
    # One commit per record, each attributable to its case, in the order they were received.
    assert trailers(remote, "Case")[:4] == [
        "github::acme::shop::PR::4",
        "github::acme::shop::PR::3",
        "github::acme::shop::PR::2",
        "github::acme::shop::PR::2",
    ]
    # PR 2's case holds the rescan (the later record), not the first scan.
    shown = run_cli(
        "cases", "show", "github::acme::shop::PR::2", "--cases-repo", remote.url, cwd=work
    )
    assert shown.returncode == 0, shown.stderr
    history = run_cli(
        "cases",
        "history",
        "github::acme::shop::PR::2",
        "--cases-repo",
        remote.url,
        "--output",
        "json",
        cwd=work,
    )
    assert history.returncode == 0, history.stderr
    assert len(json.loads(history.stdout)["entries"]) == 2
    listed = run_cli("cases", "list", "--cases-repo", remote.url, "--output", "json", cwd=work)
    by_key = {row["key"]: row for row in json.loads(listed.stdout)}
    # the rescan fixed CVE-2019-1549 (in two packages); PR 3 keeps all four
    assert by_key["github::acme::shop::PR::2"]["medium"] == 2
    assert by_key["github::acme::shop::PR::3"]["medium"] == 4


def test_a_sweep_folds_the_queue_and_a_second_fold_changes_nothing(
    work: Path, githublike: MakeRemote
) -> None:
    remote = githublike(pushes_per_window=1, window_seconds=600)
    queue = ("--queue-dir", str(work / "queue"))
    ingest(work, remote, 1, *queue)
    for pr in (2, 3):
        assert ingest(work, remote, pr, *queue)[1]["recorded"] == "queued"
    kept = work / "kept"
    shutil.copytree(RecordQueue(work / "queue", remote.url).folder, kept)
    remote.configure("pushesPerWindow", 10)
    swept = sweep(work, remote)
    assert swept.returncode == 0, swept.stderr
    assert "2 queued record(s) of earlier ingests landed" in swept.stderr
    assert remote.commits() == 3 and queue_entries(work, remote) == []
    # The same records again (a fold that died before removing them, without its note):
    # re-applied, they change nothing, and leave the queue.
    folder = RecordQueue(work / "queue", remote.url).folder
    shutil.rmtree(folder)
    shutil.copytree(kept, folder)
    again = sweep(work, remote)
    assert again.returncode == 0, again.stderr
    assert remote.commits() == 3 and queue_entries(work, remote) == []


def test_a_fold_that_died_after_its_push_is_not_applied_twice(
    work: Path, githublike: MakeRemote
) -> None:
    remote = githublike(pushes_per_window=1, window_seconds=600)
    queue = ("--queue-dir", str(work / "queue"))
    ingest(work, remote, 1, *queue)
    fixed = trivy_rescan(REPORT, work / "fixed.json", "CVE-2019-1549")
    assert ingest(work, remote, 2, *queue)[1]["recorded"] == "queued"
    records = RecordQueue(work / "queue", remote.url)
    [first] = records.entries()
    kept = work / "kept"
    shutil.copytree(first.folder, kept)
    remote.configure("pushesPerWindow", 10)
    assert sweep(work, remote).returncode == 0
    tip = git(remote.path, "rev-parse", "main").strip()
    # A later rescan of PR 2 lands; then the state a fold killed between its push and its
    # clean-up leaves: its entry still there, its note naming the commit it pushed.
    assert ingest(work, remote, 2, *queue, report=fixed)[1]["recorded"] == "committed"
    shutil.copytree(kept, first.folder)
    records.begin_push(tip, [first.entry_id])
    assert sweep(work, remote).returncode == 0
    # Not applied again: PR 2 keeps the rescan's two findings, no commit was added.
    assert remote.commits() == 3 and records.entries() == []
    listed = run_cli("cases", "list", "--cases-repo", remote.url, "--output", "json", cwd=work)
    by_key = {row["key"]: row for row in json.loads(listed.stdout)}
    assert by_key["github::acme::shop::PR::2"]["medium"] == 2


def test_concurrent_ingests_beyond_the_budget_all_decide_and_all_land(
    work: Path, githublike: MakeRemote
) -> None:
    remote = githublike(pushes_per_window=2, window_seconds=600)
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "securecase",
                *ingest_args(remote, pr),
                "--queue-dir",
                str(work / "queue"),
            ],
            cwd=work,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pr in range(1, 9)
    ]
    outcomes = [(run.wait(timeout=300), run.communicate()) for run in runs]
    assert [code for code, _ in outcomes] == [0] * 8, [err for _, (_, err) in outcomes]
    states = [json.loads(out)["recorded"] for _, (out, _) in outcomes]
    assert all(state in ("committed", "queued") for state in states)
    assert remote.pushes() <= 2
    landed_now = remote.commits()
    assert landed_now + len(queue_entries(work, remote)) == 8  # nothing dropped
    remote.configure("pushesPerWindow", 3)
    assert sweep(work, remote).returncode == 0
    assert remote.pushes() <= 3  # the whole queue in one push
    assert len(case_keys_at_tip(remote)) == 8 and queue_entries(work, remote) == []


@pytest.fixture
def fake() -> Any:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


def test_in_actions_a_queued_record_still_posts_the_check_run(
    work: Path, githublike: MakeRemote, fake: FakeGitHub
) -> None:
    remote = githublike(pushes_per_window=0, window_seconds=600)  # every push refused
    policy = work / "policy.yaml"
    policy.write_text(BLOCK_MEDIUM)
    event = FIXTURES / "github-events" / "pull_request.synchronize.json"  # PR 2
    proc = run_cli(
        "ingest",
        REPORT,
        "--cases-repo",
        remote.url,
        "--policy",
        policy,
        "--queue-dir",
        work / "queue",
        cwd=work,
        GITHUB_ACTIONS="true",
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_EVENT_PATH=str(event),
        GITHUB_REPOSITORY="acme/shop",
        GITHUB_SHA=HEAD,
        GITHUB_REF="refs/pull/2/merge",
        GITHUB_SERVER_URL="https://github.com",
        GITHUB_API_URL=fake.base_url,
        GITHUB_RUN_ID="5",
        GITHUB_RUN_ATTEMPT="1",
        GITHUB_TOKEN=TOKEN,
        GITHUB_STEP_SUMMARY=str(work / "summary.md"),
        GITHUB_OUTPUT=str(work / "output.txt"),
    )
    assert proc.returncode == 1, proc.stderr  # the gate's code
    assert "::warning" in proc.stderr and "queued as" in proc.stderr
    assert "push rate limit exceeded: at most 0 pushes per 600 s" in proc.stderr
    [run] = fake.check_runs.values()
    assert run["conclusion"] == "failure" and run["head_sha"] == PR_HEAD
    outputs = read_github_output(work / "output.txt")
    assert outputs["recorded"] == "queued" and outputs["decision"] == "block"
    assert outputs["cases_commit"] == "" and remote.commits() == 0
    assert len(queue_entries(work, remote)) == 1


def test_a_record_whose_case_a_human_broke_stays_queued_and_the_others_land(
    work: Path, tmp_path: Path, githublike: MakeRemote
) -> None:
    remote = githublike(pushes_per_window=1, window_seconds=600)
    queue = ("--queue-dir", str(work / "queue"))
    assert ingest(work, remote, 2, *queue)[1]["recorded"] == "committed"
    fixed = trivy_rescan(REPORT, work / "fixed.json", "CVE-2019-1549")
    assert ingest(work, remote, 2, *queue, report=fixed)[1]["recorded"] == "queued"
    assert ingest(work, remote, 3, *queue)[1]["recorded"] == "queued"
    remote.configure("pushesPerWindow", 10)
    human = tmp_path / "human"
    git(tmp_path, "clone", "-q", remote.url, str(human))
    [case_yaml] = human.glob("cases/github/acme/shop/pr-2/case.yaml")
    case_yaml.write_text("schema: [unclosed\n")
    git(human, "-c", "user.name=h", "-c", "user.email=h@e", "commit", "-qam", "oops")
    git(human, "push", "-q", "origin", "main")
    code, out, err = ingest(work, remote, 4, *queue)
    assert code == 0 and out["recorded"] == "committed", err
    assert "stays queued" in err and "case.yaml" in err
    assert "1 queued record(s) of earlier runs landed with this one" in err
    keys = case_keys_at_tip(remote)
    assert [k.rsplit("/", 1)[1] for k in keys] == ["pr-2", "pr-3", "pr-4"]
    [left] = RecordQueue(work / "queue", remote.url).entries()
    assert left.fields["subject"]["pr"] == 2


def test_a_queue_that_does_not_drain_fails_the_run_with_exit_3(
    work: Path, githublike: MakeRemote
) -> None:
    # Every push refused for hours: not a burst but a cases repo this machine cannot write.
    remote = githublike(pushes_per_window=0, window_seconds=600)
    queue = ("--queue-dir", str(work / "queue"))
    early = ingest(work, remote, 1, *queue, SECURECASE_NOW="2027-01-10T08:00:00Z")
    assert early[0] == 0 and early[1]["recorded"] == "queued", early[2]
    within = ingest(work, remote, 2, *queue, SECURECASE_NOW="2027-01-10T08:50:00Z")
    assert within[0] == 0 and within[1]["recorded"] == "queued", within[2]
    code, _, err = ingest(work, remote, 3, *queue, SECURECASE_NOW="2027-01-10T10:00:00Z")
    assert code == 3, err
    assert "records have waited in" in err and "since 2027-01-10T08:00:00Z" in err
    assert "push rate limit exceeded" in err
    assert len(queue_entries(work, remote)) == 3  # nothing dropped, this run's included


def test_a_server_too_slow_for_the_push_timeout_gets_the_record_later_once(
    work: Path, githublike: MakeRemote
) -> None:
    remote = githublike()
    queue = ("--queue-dir", str(work / "queue"))
    assert ingest(work, remote, 1, *queue)[1]["recorded"] == "committed"
    remote.configure("delaySeconds", 8)  # the server answers after the push timeout
    code, out, err = ingest(work, remote, 2, *queue, "--push-timeout", "3")
    assert code == 0 and out["recorded"] == "queued", err
    assert "did not finish within 3s" in err and "queued as" in err
    remote.configure("delaySeconds", 0)
    swept = sweep(work, remote)
    assert swept.returncode == 0, swept.stderr
    assert queue_entries(work, remote) == []
    # Whether or not the push cut short still landed on the server, the record is there
    # exactly once.
    assert sorted(trailers(remote, "Case")) == [
        "github::acme::shop::PR::1",
        "github::acme::shop::PR::2",
    ]


def test_a_ref_lock_blocking_every_push_is_exit_3_naming_it_not_a_queued_record(
    work: Path, githublike: MakeRemote
) -> None:
    # A push budget that the retries of 2 s cannot use up: the lock, not the rate, stops them.
    remote = githublike(pushes_per_window=1_000)
    queue = ("--queue-dir", str(work / "queue"))
    assert ingest(work, remote, 1, *queue)[1]["recorded"] == "committed"
    lock = remote.path / "refs" / "heads" / "main.lock"
    lock.write_text("")
    code, _, err = ingest(work, remote, 2, *queue, "--push-timeout", "2")
    assert code == 3 and "main.lock" in err, err
    assert queue_entries(work, remote) == []


def _appender(line: str) -> Callable[[Snapshot], Plan[str]]:
    """A compute that appends ``line`` to notes.txt as the snapshot it is given has it."""

    def compute(snapshot: Snapshot) -> Plan[str]:
        before = snapshot.read("notes.txt") or b""
        change = Change(files={"notes.txt": before + line.encode() + b"\n"}, message=line)
        return Plan(change=change, result=line)

    return compute


@pytest.mark.parametrize("kind", ["work tree", "bare remote"])
def test_a_batch_is_one_commit_per_change_each_reading_the_one_before(
    tmp_path: Path, kind: str
) -> None:
    location = tmp_path / "cases"
    if kind == "bare remote":
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(location)], check=True)
    with open_store(str(location)) as store:
        done = store.update_batch([_appender("one"), _appender("two"), _appender("three")])
    assert done.results == ("one", "two", "three") and None not in done.commits
    log = git(location, "log", "--format=%H %s", "main").splitlines()
    assert [line.split(" ", 1) for line in log] == [
        [c, s] for c, s in zip(reversed(done.commits), ["three", "two", "one"], strict=True)
    ]
    assert git(location, "show", "main:notes.txt") == "one\ntwo\nthree\n"
    if kind == "work tree":  # the checkout follows the branch
        assert (location / "notes.txt").read_text() == "one\ntwo\nthree\n"
        assert git(location, "status", "--porcelain") == ""


def test_records_received_in_one_second_keep_the_order_they_were_queued(tmp_path: Path) -> None:
    records = RecordQueue(tmp_path / "queue", "https://example.invalid/cases.git")
    same_second = "2026-12-03T18:00:00Z"
    queued = [
        records.put({"received_at": same_second, "n": n}, [b"report %d" % n], None).entry_id
        for n in (5, 3, 9, 1)  # digests in no particular order
    ]
    assert [e.entry_id for e in records.entries()] == queued
    # Queueing one of them again (a retried run) does not add an entry.
    again = records.put({"received_at": same_second, "n": 3}, [b"report 3"], None)
    assert again.entry_id == queued[1] and len(records.entries()) == 4
