"""The cases-repo store: real git, temporary folders, bare repositories as remotes."""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import bare_repo
from securecase.errors import StoreError
from securecase.storage.git import Git, redact, url_secrets
from securecase.storage.local import LocalBackend
from securecase.storage.repos import is_remote, open_store
from securecase.storage.store import Change, Plan, Snapshot, validate_relpath

WORKER = Path(__file__).with_name("store_worker.py")
CASE = "cases/github/acme/shop/pr-42"
LOG = f"{CASE}/log.txt"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Human",
    "GIT_AUTHOR_EMAIL": "human@example.com",
    "GIT_COMMITTER_NAME": "Human",
    "GIT_COMMITTER_EMAIL": "human@example.com",
    "LC_ALL": "C",
}


def git(cwd: Path | str, *args: str, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, input=input
    )
    if check and proc.returncode:
        raise AssertionError(f"git {args}: {proc.stderr}")
    return proc.stdout + (proc.stderr if not check else "")


def append(
    line: str, path: str = LOG, calls: list[str | None] | None = None
) -> Callable[[Snapshot], Plan[str]]:
    """A compute function appending ``line`` to ``path``."""

    def compute(snap: Snapshot) -> Plan[str]:
        if calls is not None:
            calls.append(snap.head)
        old = snap.read(path) or b""
        message = f"append {line}\n\nSecurecase-Case: x::{line}\nSecurecase-Decision: pass\n"
        return Plan(Change({path: old + line.encode() + b"\n"}, message=message), line)

    return compute


def commits(repo: Path, ref: str = "HEAD") -> list[str]:
    out = git(repo, "rev-list", ref, check=False)
    return [c for c in out.split() if len(c) == 40]


def assert_fsck_clean(repo: Path) -> None:
    proc = subprocess.run(
        ["git", "fsck", "--strict", "--no-progress"],
        cwd=repo,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (proc.stdout + proc.stderr).splitlines()
    bad = [line for line in lines if not line.startswith(("dangling ", "notice: HEAD points"))]
    assert not bad, bad


def bare_remote(
    tmp_path: Path,
    files: dict[str, bytes] | None = None,
    name: str = "remote.git",
    head: str = "main",
) -> Path:
    """A bare repository (filters allowed, like GitHub), optionally seeded with ``files``."""
    remote = bare_repo(tmp_path / name, head=head)
    if files:
        seed = tmp_path / f"seed-{name}"
        git(tmp_path, "init", "-q", "-b", head, str(seed))
        for rel, data in files.items():
            (seed / rel).parent.mkdir(parents=True, exist_ok=True)
            (seed / rel).write_bytes(data)
        git(seed, "add", "-A")
        git(seed, "commit", "-qm", "seed")
        git(seed, "push", "-q", str(remote), head)
    return remote


def human_repo(tmp_path: Path, files: dict[str, bytes]) -> Path:
    repo = tmp_path / "cases"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    for rel, data in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "human")
    return repo


# -- paths, redaction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "a/../b",
        "..",
        "a//b",
        "a/",
        ".git/config",
        "a/.GIT/x",
        "a\\b",
        "a\0b",
        "a\nb",
        "./a",
    ],
)
def test_invalid_relpaths_are_rejected(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        validate_relpath(bad)
    with open_store(str(tmp_path / "r")) as store, pytest.raises(ValueError):
        store.update(lambda s: Plan(Change({bad: b"x"}), None))
    assert commits(tmp_path / "r") == []


@pytest.mark.parametrize(
    ("location", "remote"),
    [
        ("https://github.com/acme/security-cases.git", True),
        ("file:///srv/cases.git", True),
        ("git@github.com:acme/security-cases.git", True),
        ("ssh://git@host:22/cases.git", True),
        ("/srv/cases", False),
        ("./security-cases", False),
        ("cases:2024", False),
    ],
)
def test_remote_locations_are_recognised(location: str, remote: bool) -> None:
    assert is_remote(location) is remote


def test_redaction_of_urls_headers_and_secrets() -> None:
    text = (
        "fatal: unable to access 'https://x-access-token:ghs_SECRET1@github.com/a/b.git/'\n"
        "Authorization: Bearer ghp_SECRET2 and AUTHORIZATION: basic c2VjcmV0Mw==\n"
        "http.https://github.com/.extraheader=AUTHORIZATION: basic SECRET4\n"
    )
    out = redact(text)
    for secret in ("SECRET1", "SECRET2", "c2VjcmV0Mw", "SECRET4"):
        assert secret not in out
    assert "https://***@github.com/a/b.git" in out
    assert set(url_secrets("https://u:p%40ss@h/x")) >= {"p%40ss", "p@ss"}
    assert redact("pushing to host with token tok123", url_secrets("https://tok123@h/x")) == (
        "pushing to host with token ***"
    )


def test_failing_remote_never_shows_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("http://user:secret@127.0.0.1:1/x.git", timeout=20)
    err = info.value
    assert err.exit_code == 3
    shown = f"{err} {err.hint} {err!r} {err.message}"
    assert "secret" not in shown
    assert "http://127.0.0.1:1/x.git" in shown and "user" not in shown  # still says where


def test_git_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_DIR", "/nonexistent")
    monkeypatch.setenv("GIT_INDEX_FILE", "/nonexistent/index")
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i key")
    g = Git(str(tmp_path))
    assert "GIT_DIR" not in g.env and "GIT_INDEX_FILE" not in g.env
    assert g.env["GIT_SSH_COMMAND"] == "ssh -i key"
    assert g.env["GIT_TERMINAL_PROMPT"] == "0" and g.env["LC_ALL"] == "C"
    assert f"core.hooksPath={os.devnull}" in g.config_args
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:  # GIT_DIR/GIT_INDEX_FILE above would break this
        store.update(append("one"))
    hook = repo / ".git" / "hooks" / "reference-transaction"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    with open_store(str(repo)) as store:  # the repository's hooks never run
        assert store.update(append("two")).commit


# -- local mode ------------------------------------------------------------------------------


def test_local_init_of_missing_path_commits_with_trailers(tmp_path: Path) -> None:
    repo = tmp_path / "new" / "cases"
    with open_store(str(repo)) as store:
        assert store.snapshot().head is None
        first = store.update(append("one"))
    assert first.commit and first.head == first.commit and first.attempts == 1
    assert first.result == "one"
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(repo, "log", "-1", "--format=%(trailers:key=Securecase-Case,valueonly)").strip() == (
        "x::one"
    )
    assert git(repo, "log", "-1", "--format=%an <%ae>").strip() == (
        "securecase-bot <securecase-bot@users.noreply.github.com>"
    )
    assert (repo / LOG).read_bytes() == b"one\n"
    assert git(repo, "status", "--porcelain") == ""
    assert_fsck_clean(repo)


def test_local_sha256_repository(tmp_path: Path) -> None:
    repo = tmp_path / "cases"
    git(tmp_path, "init", "-q", "--object-format=sha256", "-b", "main", str(repo))
    with open_store(str(repo)) as store:
        first = store.update(append("one"))
        second = store.update(append("two", path="cases/x/y.txt"))
    assert first.commit and len(first.commit) == 64
    assert second.commit and git(repo, "rev-parse", "HEAD").strip() == second.commit
    assert (repo / LOG).read_bytes() == b"one\n" and (
        repo / "cases/x/y.txt"
    ).read_bytes() == b"two\n"
    assert git(repo, "status", "--porcelain") == ""
    assert_fsck_clean(repo)


def test_local_existing_empty_dir_is_initialised_but_other_dirs_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with open_store(str(tmp_path / "empty")) as store:
        store.update(append("x"))
    assert len(commits(tmp_path / "empty")) == 1
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    with pytest.raises(StoreError, match="not the top folder"):
        open_store(str(tmp_path / "junk"))
    with pytest.raises(StoreError, match="not the top folder"):
        open_store(str(tmp_path / "empty" / ".git"))


def test_no_commit_when_plan_is_none_or_tree_unchanged(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        head = store.update(append("one")).head
        res = store.update(lambda s: Plan(None, "same"))
        assert (res.commit, res.head, res.result) == (None, head, "same")
        same = store.update(lambda s: Plan(Change({LOG: s.read(LOG) or b""}, message="m"), 1))
        assert same.commit is None and same.head == head
        empty = store.update(lambda s: Plan(Change({}, delete=("cases/none",)), 2))
        assert empty.commit is None
    assert len(commits(repo)) == 1


def test_snapshot_reads_head_not_the_work_tree(tmp_path: Path) -> None:
    repo = human_repo(tmp_path, {"policy.yaml": b"v1\n", f"{CASE}/case.yaml": b"c\n"})
    (repo / "policy.yaml").write_bytes(b"uncommitted\n")
    (repo / "untracked.txt").write_bytes(b"u\n")
    with open_store(str(repo)) as store:
        snap = store.snapshot()
        assert snap.head == git(repo, "rev-parse", "HEAD").strip()
        assert snap.read("policy.yaml") == b"v1\n"
        assert snap.read("untracked.txt") is None
        assert snap.read("cases") is None  # a folder is not a file
        assert snap.blob_id("policy.yaml") == git(repo, "rev-parse", "HEAD:policy.yaml").strip()
        assert snap.list_files("") == [f"{CASE}/case.yaml", "policy.yaml"]
        assert snap.list_files("cases/github/") == [f"{CASE}/case.yaml"]
        assert snap.list_files("cases/git") == []
        # the policy edit is not in a touched path: the update goes through and keeps it
        store.update(append("one"))
    assert (repo / "policy.yaml").read_bytes() == b"uncommitted\n"


@pytest.mark.parametrize("how", ["modified", "staged", "untracked", "deleted"])
def test_refuses_to_overwrite_uncommitted_edits(tmp_path: Path, how: str) -> None:
    repo = human_repo(tmp_path, {LOG: b"committed\n"} if how != "untracked" else {"x": b""})
    target = repo / LOG
    if how == "deleted":
        target.unlink()
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"my precious edit\n")
    if how == "staged":
        git(repo, "add", LOG)
    before = commits(repo)
    with open_store(str(repo)) as store, pytest.raises(StoreError) as info:
        store.update(append("bot"))
    assert "uncommitted changes" in str(info.value) and "stash" in (info.value.hint or "")
    assert commits(repo) == before
    if how == "deleted":
        assert not target.exists()
    else:
        assert target.read_bytes() == b"my precious edit\n"


def test_interrupted_sync_is_recovered_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
    monkeypatch.setattr(LocalBackend, "after_publish", lambda self, old, built: None)
    with open_store(str(repo)) as store:
        store.update(append("two"))  # "killed" after update-ref: work tree and index stale
    assert (repo / LOG).read_bytes() == b"one\n"
    assert git(repo, "status", "--porcelain") != ""
    monkeypatch.undo()
    with open_store(str(repo)) as store:
        store.update(append("three"))
    assert (repo / LOG).read_bytes() == b"one\ntwo\nthree\n"
    assert git(repo, "status", "--porcelain") == ""


def test_same_size_edit_right_after_a_run_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
    (repo / LOG).write_bytes(b"ONE\n")  # same size, within the same clock tick
    with open_store(str(repo)) as store, pytest.raises(StoreError, match="uncommitted"):
        store.update(append("two"))
    assert (repo / LOG).read_bytes() == b"ONE\n"


def test_edit_between_check_and_sync_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
    publish = LocalBackend.publish

    def publish_then_edit(self: LocalBackend, old: str | None, built: object) -> bool:
        done = publish(self, old, built)  # type: ignore[arg-type]
        (repo / LOG).write_bytes(b"edited while the run committed\n")
        return done

    monkeypatch.setattr(LocalBackend, "publish", publish_then_edit)
    with open_store(str(repo)) as store:
        store.update(append("two"))
    assert git(repo, "show", f"HEAD:{LOG}") == "one\ntwo\n"
    assert (repo / LOG).read_bytes() == b"edited while the run committed\n"


def test_written_files_record_names_committed_blobs_and_is_only_a_hint(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
    record = repo / ".git" / "securecase-written.json"
    entries = json.loads(record.read_text())
    assert entries[LOG][0] == git(repo, "rev-parse", f"HEAD:{LOG}").strip()
    assert (repo / LOG).stat().st_mtime < time.time() - 1  # back-dated, see store_local
    record.write_text("{not json")
    with open_store(str(repo)) as store:
        store.update(append("two"))
    assert (repo / LOG).read_bytes() == b"one\ntwo\n"
    assert git(repo, "status", "--porcelain") == ""
    # a record that lies about a file's blob while its signature matches is believed only
    # for files nobody wrote since; a human edit changes the signature and is caught
    (repo / LOG).write_bytes(b"human\n")
    with open_store(str(repo)) as store, pytest.raises(StoreError, match="uncommitted"):
        store.update(append("three"))


@pytest.mark.parametrize("remote", [False, True])
def test_large_files_are_committed_whole_and_leave_no_debris(tmp_path: Path, remote: bool) -> None:
    location = tmp_path / "r"
    if remote:
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(location))
    big = os.urandom(2_000_000).hex().encode()  # large enough to take git a moment
    raw = f"{CASE}/raw/report.json"
    with open_store(str(location)) as store:
        done = store.update(lambda snap: Plan(Change({raw: big, LOG: b"x\n"}, message="m\n"), None))
        build_dir = Path(store.workdir).parent if remote else location / ".git/securecase-tmp"
        assert not build_dir.exists() or sorted(p.name for p in build_dir.iterdir()) == (
            ["owner.json", "repo"] if remote else []
        )  # no blob or index file left behind
    blob = git(location, "rev-parse", f"{done.commit}:{raw}").strip()
    assert git(location, "cat-file", "-p", blob).encode() == big
    objects = location / ("objects" if remote else ".git/objects")
    assert not list(objects.glob("*/tmp_obj_*"))
    assert_fsck_clean(location)


def test_a_file_inside_a_file_of_the_same_change_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
        for files in ({"a": b"1", "a/b": b"2"}, {"x/y/z": b"1", "x/y": b"2"}):
            change = Change(files, message="m")

            def compute(snap: Snapshot, change: Change = change) -> Plan[None]:
                return Plan(change, None)

            with pytest.raises(ValueError, match="inside"):
                store.update(compute)
    assert len(commits(repo)) == 1


def test_delete_folder_and_write_in_one_commit(tmp_path: Path) -> None:
    repo = human_repo(tmp_path, {f"{CASE}/raw/a.json": b"a", f"{CASE}/raw/b.json": b"b"})
    change = Change({f"{CASE}/raw/c.json": b"c"}, delete=(f"{CASE}/raw",), message="replace")
    with open_store(str(repo)) as store:
        store.update(lambda s: Plan(change, None))
        assert store.snapshot().list_files(CASE) == [f"{CASE}/raw/c.json"]
    assert sorted(p.name for p in (repo / CASE / "raw").iterdir()) == ["c.json"]
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "diff", "--name-status", "HEAD~1", "HEAD").split() == [
        "D",
        f"{CASE}/raw/a.json",
        "D",
        f"{CASE}/raw/b.json",
        "A",
        f"{CASE}/raw/c.json",
    ]


def test_lock_wait_is_bounded(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
    with open(repo / ".git" / "securecase.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        start = time.monotonic()
        with open_store(str(repo), timeout=0.5) as store, pytest.raises(StoreError) as info:
            store.update(append("two"))
        assert time.monotonic() - start < 5
    assert "holds the lock" in str(info.value) and info.value.exit_code == 3
    with open_store(str(repo)) as store:
        assert store.update(append("two")).commit


def test_a_stale_ref_lock_is_removed_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
    ref_lock = repo / ".git" / "refs" / "heads" / "main.lock"
    ref_lock.write_text("")
    os.utime(ref_lock, (time.time() - 3600, time.time() - 3600))  # older than the timeout
    with open_store(str(repo), timeout=30) as store:
        res = store.update(append("two"))
    assert res.commit == git(repo, "rev-parse", "HEAD").strip() and res.attempts == 2
    assert not ref_lock.exists()
    said = re.search(rf"removed {re.escape(str(ref_lock))}, (\d+)s old", caplog.text)
    assert said is not None, caplog.text
    assert 3600 <= int(said.group(1)) < 3660  # its age when found (a loaded machine is slow)
    assert (repo / LOG).read_bytes() == b"one\ntwo\n"
    assert git(repo, "status", "--porcelain") == ""


def test_a_humans_index_lock_makes_the_run_wait_then_fail_naming_it(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
    head = git(repo, "rev-parse", "HEAD")
    index_lock = repo / ".git" / "index.lock"
    index_lock.write_text("")  # e.g. a human's `git commit` with its editor open
    start = time.monotonic()
    with open_store(str(repo), timeout=1) as store, pytest.raises(StoreError) as info:
        store.update(append("two"))
    assert 1 <= time.monotonic() - start < 10
    assert f"{index_lock} (" in str(info.value) and "s old)" in str(info.value)
    assert info.value.exit_code == 3
    # nothing was reported committed, and nothing moved: no later commit can revert it
    assert git(repo, "rev-parse", "HEAD") == head and index_lock.read_text() == ""
    # released while the run waits: the run goes on and the index follows the branch
    timer = threading.Timer(0.5, index_lock.unlink)
    timer.start()
    with open_store(str(repo), timeout=30) as store:
        assert store.update(append("two")).commit
    timer.join()
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / LOG).read_bytes() == b"one\ntwo\n"


def test_fresh_ref_lock_makes_update_give_up_in_time(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    with open_store(str(repo)) as store:
        store.update(append("one"))
    lock = repo / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    busy = threading.Event()

    def keep_fresh() -> None:  # a git command that is alive keeps writing near its lock
        while not busy.wait(0.05):
            os.utime(lock)

    toucher = threading.Thread(target=keep_fresh)
    toucher.start()
    try:
        with open_store(str(repo), timeout=1) as store, pytest.raises(StoreError) as info:
            store.update(append("two"))
    finally:
        busy.set()
        toucher.join()
    assert "attempts" in str(info.value) and lock.exists()
    assert f"{lock} (0s old) blocks the branch update" in str(info.value)


# -- remote mode -----------------------------------------------------------------------------


def test_empty_remote_gets_first_commit_on_main(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, head="master")
    with open_store(f"file://{remote}", paths=[CASE]) as store:
        clone = Path(store.workdir)
        assert store.snapshot().head is None
        res = store.update(append("one"))
        assert clone.exists()
    assert not clone.exists()
    assert git(remote, "rev-parse", "refs/heads/main").strip() == res.commit
    assert git(remote, "show", f"main:{LOG}") == "one\n"
    assert "Securecase-Decision: pass" in git(remote, "log", "--format=%(trailers)", "main")
    with open_store(str(remote), paths=[CASE]) as store:  # a bare path works as a remote too
        assert store.update(append("two")).attempts == 1
    assert git(remote, "show", f"main:{LOG}") == "one\ntwo\n"
    assert_fsck_clean(remote)


def test_remote_default_branch_is_followed(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n"}, head="trunk")
    with open_store(f"file://{remote}", paths=["policy.yaml"]) as store:
        assert store.snapshot().read("policy.yaml") == b"p\n"
        store.update(append("one"))
    assert git(remote, "show", f"trunk:{LOG}") == "one\n"
    assert git(remote, "branch", "--list").split() == ["*", "trunk"]


def present_objects(clone: str | Path) -> set[str]:
    """The ids of the objects a clone holds (git lists them without fetching any)."""
    listing = git(Path(clone), "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return set(listing.split())


def raced(
    url: str,
    path: str,
    intruder: Callable[[Snapshot], Plan[Any]],
    mine: Callable[[Snapshot], Plan[Any]],
) -> Callable[[Snapshot], Plan[Any]]:
    """``mine``, whose first call lets another writer (its own store, reading ``path``) land
    ``intruder`` first: the push of that first attempt loses the race."""
    first = [True]

    def compute(snap: Snapshot) -> Plan[Any]:
        if first:
            first.clear()
            with open_store(url, paths=[path]) as other:
                other.update(intruder)
        return mine(snap)

    return compute


def test_sparse_clone_fetches_only_requested_blobs(tmp_path: Path) -> None:
    rng = random.Random(7)
    big = {f"cases/github/other/big/raw/r{i}.json": rng.randbytes(300_000) for i in range(4)}
    remote = bare_remote(tmp_path, {**big, "policy.yaml": b"p\n", f"{CASE}/case.yaml": b"c\n"})
    with open_store(f"file://{remote}", paths=["policy.yaml", CASE]) as store:
        clone = store.workdir
        head = store.snapshot().head
        assert head is not None
        big_ids = {git(remote, "rev-parse", f"main:{p}").strip() for p in big}
        # The tip's fetch brings the owners' folders (a listing of their repositories), never
        # a repository's folder of cases on another path.
        other_tree = git(remote, "rev-parse", "main:cases/github/other/big").strip()
        owner_tree = git(remote, "rev-parse", "main:cases/github/other").strip()
        assert owner_tree in present_objects(clone)
        assert not (big_ids | {other_tree}) & present_objects(clone)
        for wanted in ("policy.yaml", f"{CASE}/case.yaml"):
            assert git(remote, "rev-parse", f"main:{wanted}").strip() in present_objects(clone)
        size = sum(f.stat().st_size for f in Path(clone, ".git", "objects").rglob("*"))
        assert size < 200_000
        store.update(append("one"))
        assert not (big_ids | {other_tree}) & present_objects(clone)
        new_head = store.snapshot().head
        assert new_head is not None and new_head != head
        # reading outside `paths` still works (fetched on demand)
        assert store.snapshot().list_files("cases/github/other/big/raw")[0].endswith("r0.json")
        assert store.snapshot().read(next(iter(big))) == next(iter(big.values()))
    assert git(remote, "show", f"main:{LOG}") == "one\n"
    assert_fsck_clean(remote)


def test_whole_tree_when_paths_is_none(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"a/x": b"x", "b/y": b"y"})
    with open_store(f"file://{remote}") as store:
        listing = git(store.workdir, "rev-list", "--objects", "--missing=print", "--all")
        assert not any(line.startswith("?") for line in listing.split())
        assert store.snapshot().list_files("") == ["a/x", "b/y"]


def test_rejected_push_recomputes_on_the_new_tip(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n"})
    url = f"file://{remote}"
    calls: list = []
    sleeps: list = []

    def racing(snap: Snapshot) -> Plan[str]:
        if not calls:
            with open_store(url, paths=[CASE]) as other:
                other.update(append("intruder"))
        return append("mine", calls=calls)(snap)

    with open_store(url, paths=[CASE], rng=random.Random(1), sleep=sleeps.append) as store:
        res = store.update(racing)
        assert res.attempts == 2 and len(calls) == 2 and calls[0] != calls[1]
        assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.1
        assert store.snapshot().head == res.commit
    assert git(remote, "show", f"main:{LOG}") == "intruder\nmine\n"
    subjects = git(remote, "log", "--format=%s", "main").split("\n")
    assert subjects[:3] == ["append mine", "append intruder", "seed"]
    assert_fsck_clean(remote)


def test_a_retry_fetches_the_new_tip_and_no_blob_it_already_has(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n", LOG: b"seed\n"})
    url = f"file://{remote}"
    other_case = "cases/github/acme/shop/pr-7/log.txt"
    calls: list = []

    def racing(snap: Snapshot) -> Plan[str]:
        if not calls:  # another writer records another case first
            with open_store(url, paths=[other_case]) as other:
                other.update(append("intruder", path=other_case))
        return append("mine", calls=calls)(snap)

    with open_store(url, paths=["policy.yaml", CASE], sleep=lambda _: None) as store:
        sent: list[list[str]] = []
        backend: Any = store._backend
        talk, fetch = backend._net, backend._filtered

        def recorded(args: list[str], **kwargs: Any) -> Any:
            sent.append(args)
            return talk(args, **kwargs)

        def filtered(args: list[str], filter_spec: str, **kwargs: Any) -> Any:
            sent.append([*args, f"--filter={filter_spec}"])
            return fetch(args, filter_spec, **kwargs)

        backend._net, backend._filtered = recorded, filtered
        result = store.update(racing)
    assert result.attempts == 2
    fetches = [args for args in sent if "fetch" in args]
    # The tip (with the owners' folders, acme/ among them), then the repository's folder the
    # other writer changed on our path (shop/), alone; our blobs were there, and no blob is
    # asked for.
    assert len(fetches) == 2 and "--depth" in fetches[0]
    assert all("--filter=tree:0" in args for args in fetches[1:])
    assert git(remote, "show", f"main:{LOG}") == "seed\nmine\n"
    assert git(remote, "show", f"main:{other_case}") == "intruder\n"


def test_a_case_folder_changed_by_another_writer_is_fetched_again_trees_then_files(
    tmp_path: Path,
) -> None:
    raw = f"{CASE}/raw/trivy.json"
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n", LOG: b"seed\n", raw: b"{}\n"})
    url = f"file://{remote}"
    # Another writer changes a file deep in our own folder first.
    other = Plan(Change({raw: b'{"a": 1}\n'}, message="other\n"), None)
    racing = raced(url, raw, lambda _: other, append("mine"))

    with open_store(url, paths=["policy.yaml", CASE], sleep=lambda _: None) as store:
        sent: list[list[str]] = []
        backend: Any = store._backend
        fetch = backend._filtered
        asked: list[int] = []

        def filtered(args: list[str], filter_spec: str, **kwargs: Any) -> Any:
            sent.append([*args, f"--filter={filter_spec}"])
            asked.append(len((kwargs.get("stdin") or b"").splitlines()))
            return fetch(args, filter_spec, **kwargs)

        backend._filtered = filtered
        result = store.update(racing)
        held = present_objects(store.workdir)
    assert result.attempts == 2
    # The retry: the tip, the repository's folder alone, our folder with its subfolder (no
    # file), then the one file that changed.
    fetches = [args for args in sent if "fetch" in args]
    filters = [args[-1] for args in fetches]
    assert filters == [f"--filter={f}" for f in ("tree:4", "tree:0", "blob:none", "blob:none")]
    assert asked[3] == 1
    assert git(remote, "rev-parse", f"main:{raw}").strip() in held
    assert git(remote, "show", f"main:{raw}") == '{"a": 1}\n'
    assert git(remote, "show", f"main:{LOG}") == "seed\nmine\n"


def test_a_server_that_caps_the_tree_filter_at_depth_0_is_read_from_the_root(
    tmp_path: Path,
) -> None:
    raw = f"{CASE}/raw/trivy.json"
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n", LOG: b"seed\n", raw: b"{}\n"})
    git(remote, "config", "uploadpackfilter.tree.maxDepth", "0")
    url = f"file://{remote}"
    with open_store(url, paths=["policy.yaml", CASE], sleep=lambda _: None) as store:
        snap = store.snapshot()
        assert snap.read("policy.yaml") == b"p\n"
        assert snap.read(raw) == b"{}\n"
        held = present_objects(store.workdir)
        assert git(remote, "rev-parse", f"main:{raw}").strip() in held
        store.update(append("mine"))
    # A writer whose push lost the race fetches the new tip the same way.
    with open_store(url, paths=[LOG], sleep=lambda _: None) as store:
        assert store.update(raced(url, LOG, append("intruder"), append("late"))).attempts == 2
    assert git(remote, "show", f"main:{LOG}") == "seed\nmine\nintruder\nlate\n"


def _counting(calls: list[str], path: str, line: str) -> Callable[[Snapshot], Plan[str]]:
    """A compute that appends ``line`` to ``path`` and never reads the head."""

    def compute(snap: Snapshot) -> Plan[str]:
        calls.append(line)
        old = snap.read(path) or b""
        return Plan(Change({path: old + line.encode() + b"\n"}, message=f"append {line}\n"), line)

    return compute


def test_a_retry_whose_reads_are_unchanged_keeps_its_plan_and_its_blobs(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n", LOG: b"seed\n"})
    url = f"file://{remote}"
    other_case = "cases/github/acme/shop/pr-7/log.txt"
    calls: list[str] = []
    mine = _counting(calls, LOG, "mine")

    def racing(snap: Snapshot) -> Plan[str]:
        if not calls:  # another writer records another case first
            with open_store(url, paths=[other_case]) as other:
                other.update(append("intruder", path=other_case))
        return mine(snap)

    with open_store(url, paths=["policy.yaml", CASE], sleep=lambda _: None) as store:
        backend: Any = store._backend
        run = backend.git.run
        commands: list[str] = []

        def recorded(args: list[str], **kwargs: Any) -> Any:
            commands.append(args[0])
            return run(args, **kwargs)

        backend.git.run = recorded
        result = store.update(racing)
    assert result.attempts == 2
    assert calls == ["mine"]  # planned once: the retry's reads gave the same answers
    assert commands.count("hash-object") == 1  # the blob written once, reused on the new tip
    assert commands.count("commit-tree") == 2
    assert git(remote, "show", f"main:{LOG}") == "seed\nmine\n"
    assert git(remote, "show", f"main:{other_case}") == "intruder\n"
    assert_fsck_clean(remote)


def test_a_retry_whose_read_changed_plans_again_on_the_new_tip(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n", LOG: b"seed\n"})
    url = f"file://{remote}"
    calls: list[str] = []
    mine = _counting(calls, LOG, "mine")

    def racing(snap: Snapshot) -> Plan[str]:
        if not calls:  # another writer appends to the very file this one reads
            with open_store(url, paths=[CASE]) as other:
                other.update(append("intruder"))
        return mine(snap)

    with open_store(url, paths=["policy.yaml", CASE], sleep=lambda _: None) as store:
        result = store.update(racing)
    assert result.attempts == 2 and calls == ["mine", "mine"]
    assert git(remote, "show", f"main:{LOG}") == "seed\nintruder\nmine\n"
    assert_fsck_clean(remote)


def test_remote_gives_up_after_timeout(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n"})
    url = f"file://{remote}"
    clock = iter(range(0, 1000, 10))

    def always_racing(snap: Snapshot) -> Plan[str]:
        with open_store(url, paths=[CASE]) as other:
            other.update(append(f"intruder{random.random()}"))
        return append("mine")(snap)

    with open_store(
        url, paths=[CASE], timeout=25, sleep=lambda s: None, monotonic=lambda: float(next(clock))
    ) as store:
        with pytest.raises(StoreError, match=r"after 3 attempts in 30\.0s"):
            store.update(always_racing)
        clone = Path(store.workdir)
    assert not clone.exists()
    assert "mine" not in git(remote, "show", f"main:{LOG}")


def test_remote_refusal_fails_at_once(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n"})
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    calls: list = []
    with open_store(f"file://{remote}", paths=[CASE]) as store, pytest.raises(StoreError) as e:
        store.update(append("one", calls=calls))
    assert len(calls) == 1 and e.value.exit_code == 3
    assert "pre-receive hook declined" in str(e.value) and "protected branch" in str(e.value)


def test_temp_clone_removed_when_compute_raises(tmp_path: Path) -> None:
    remote = bare_remote(tmp_path, {"policy.yaml": b"p\n"})

    def boom(snap: Snapshot) -> Plan[None]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError), open_store(f"file://{remote}", paths=[CASE]) as store:
        clone = Path(store.workdir)
        store.update(boom)
    assert not clone.exists()


# -- real concurrency and crashes ------------------------------------------------------------


def run_workers(location: str, specs: list[tuple[str, str, int]]) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), location, name, rel, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, rel, count in specs
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_concurrent_processes_lose_no_update(tmp_path: Path, kind: str) -> None:
    if kind == "local":
        repo = tmp_path / "r"
        location, history = str(repo), repo
    else:
        repo = bare_remote(tmp_path, {"policy.yaml": b"p\n"})
        location, history = f"file://{repo}", repo
    shared = [(f"s{i}", LOG, 1) for i in range(8)]
    own = [(f"o{i}", f"cases/github/acme/shop/pr-{i}/log.txt", 2) for i in range(3)]
    run_workers(location, shared + own)
    text = git(history, "show", f"main:{LOG}")
    assert sorted(text.split()) == sorted(f"s{i}-0" for i in range(8))
    for i in range(3):
        assert git(history, "show", f"main:cases/github/acme/shop/pr-{i}/log.txt") == (
            f"o{i}-0\no{i}-1\n"
        )
    subjects = git(history, "log", "--format=%s", "main").split("\n")
    assert sum(s.startswith("append ") for s in subjects) == 14
    assert_fsck_clean(history)
    if kind == "local":
        assert git(repo, "status", "--porcelain") == ""


def killable_store(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A local repo with one commit, or a bare remote with a policy: (repo path, location)."""
    if kind == "local":
        repo = tmp_path / "r"
        with open_store(str(repo)) as store:
            store.update(append("start"))
        return repo, str(repo)
    repo = bare_remote(tmp_path, {"policy.yaml": b"p\n"})
    return repo, f"file://{repo}"


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_sigkill_at_any_point_leaves_a_usable_repo(tmp_path: Path, kind: str) -> None:
    repo, location = killable_store(tmp_path, kind)
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # leaked temp clones stay in tmp_path
    rng = random.Random(42)
    done: list[str] = []
    for round_ in range(3 if kind == "local" else 2):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), location, f"k{round_}", LOG, "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        assert proc.stdout is not None
        done.append(proc.stdout.readline().split()[1])  # it is mid-loop now
        time.sleep(rng.uniform(0, 0.25))
        if round_ % 2:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole process group
        else:
            os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        done += [line.split()[1] for line in out.splitlines()]
        with open_store(location, paths=[CASE], timeout=30) as store:
            res = store.update(append(f"after{round_}"))
            assert res.commit
            text = (store.snapshot().read(LOG) or b"").decode()
        lines = text.split()
        assert len(lines) == len(set(lines))
        assert set(done) <= set(lines) and f"after{round_}" in lines
        assert_fsck_clean(repo)
        if kind == "local":
            assert not (repo / ".git" / "index.lock").exists()
            assert not (repo / ".git" / "refs" / "heads" / "main.lock").exists()
            assert git(repo, "status", "--porcelain") == ""
            assert (repo / LOG).read_text() == text


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_sigkill_between_any_two_steps_leaves_a_usable_repo(tmp_path: Path, kind: str) -> None:
    repo, location = killable_store(tmp_path, kind)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    for n in range(1, 60):
        proc = subprocess.run(
            [sys.executable, str(WORKER), location, f"d{n}", LOG, "1"],
            env={**env, "STORE_WORKER_DIE_AFTER": str(n)},
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            break  # the update needs fewer than n git commands: every point was tried
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        with open_store(location, paths=[CASE], timeout=30) as store:
            assert store.update(append(f"after{n}")).commit
            lines = (store.snapshot().read(LOG) or b"").decode().split()
        assert len(lines) == len(set(lines)) and f"after{n}" in lines
        if kind == "local":
            assert git(repo, "status", "--porcelain") == ""
            assert not (repo / ".git" / "index.lock").exists()
    else:
        raise AssertionError("the worker never finished")
    assert n > 3  # several steps of the update were interrupted
    assert_fsck_clean(repo)


def test_thousands_of_files_in_one_commit(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    files = {f"{CASE}/raw/r{n}.json": b"%d\n" % n for n in range(3000)}
    with open_store(str(repo)) as store:
        done = store.update(lambda s: Plan(Change(files, message="many\n"), None))
    listing = git(repo, "ls-tree", "-r", "--name-only", f"{done.commit}")
    assert sorted(listing.split()) == sorted(files)
    assert git(repo, "show", f"HEAD:{CASE}/raw/r2999.json") == "2999\n"
    assert (repo / CASE / "raw" / "r1234.json").read_bytes() == b"1234\n"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("remote", [True, False])
def test_update_chain_makes_one_commit_per_change_and_retries_as_a_whole(
    tmp_path: Path, remote: bool
) -> None:
    from securecase.storage.store import ChainPlan

    files = {"policy.yaml": b"p\n"}
    if remote:
        location = f"file://{bare_remote(tmp_path, files)}"
    else:
        location = str(human_repo(tmp_path, files))
    heads: list[str | None] = []

    def racing(snap: Snapshot) -> ChainPlan[int]:
        heads.append(snap.head)
        if len(heads) == 1 and remote:
            with open_store(location, paths=None) as other:
                other.update(append("intruder"))
        elif len(heads) == 1:  # a human commits meanwhile (the store holds the lock)
            (Path(location) / LOG).parent.mkdir(parents=True, exist_ok=True)
            (Path(location) / LOG).write_text("intruder\n")
            git(location, "add", LOG)
            git(location, "commit", "-qm", "append intruder")
        changes = tuple(
            Change({f"cases/x/{n}/case.yaml": f"{n} on {snap.head}\n".encode()}, message=f"c{n}\n")
            for n in range(3)
        ) + (Change({"policy.yaml": b"p\n"}, message="unchanged: no commit\n"),)
        return ChainPlan(changes, len(heads))

    with open_store(location, paths=None, rng=random.Random(1), sleep=lambda _: None) as store:
        done = store.update_chain(racing)
        assert done.attempts == 2 and done.result == 2 and heads[0] != heads[1]
        assert len(done.commits) == 3 and store.snapshot().head == done.commits[-1]
    repo = Path(location.removeprefix("file://"))
    subjects = git(repo, "log", "--format=%s", "main").split("\n")
    assert subjects[:4] == ["c2", "c1", "c0", "append intruder"]
    for n, commit in enumerate(done.commits):
        changed = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", commit).split()
        assert changed == [f"cases/x/{n}/case.yaml"]
    if not remote:  # the work tree follows the branch
        assert (repo / "cases/x/2/case.yaml").read_text() == f"2 on {heads[1]}\n"
    assert_fsck_clean(repo)
