"""The git processes one local ingest starts: each costs a process start (milliseconds of CPU,
tens of milliseconds on a busy runner), so a change that adds one must change this list."""

from __future__ import annotations

import collections
import os
import shutil
from pathlib import Path

from conftest import git, run_cli
from reportgen import big_report

#: A first ingest into an empty repository, and a rescan of the case it made. Reading goes
#: through one `cat-file --batch-command` (a missing file is told apart by it, and nothing of
#: an empty repository's is read); the tree is written by one `mktree --batch`.
FIRST = {
    "rev-parse": 2,  # open the repository; read the branch (unborn)
    "symbolic-ref": 1,  # the unborn branch's name
    "ls-files": 1,  # the index entries of the touched paths (uncommitted work is refused)
    "hash-object": 2,  # the case files in one call, the compressed raw report beside it
    "mktree": 1,
    "commit-tree": 1,
    "update-ref": 1,
    "update-index": 1,  # the work tree's index follows the new commit
}
RESCAN = {**FIRST, "symbolic-ref": 0, "cat-file": 1}


def git_shim(folder: Path, log: Path) -> str:
    """A ``PATH`` whose first ``git`` logs its subcommand, then runs the real git."""
    real = shutil.which("git")
    assert real is not None
    folder.mkdir()
    shim = folder / "git"
    # The subcommand is the first argument after securecase's `-c name=value` settings.
    shim.write_text(
        "#!/bin/sh\n"
        'for arg; do case "$arg" in -c) ;; *=*) ;; *) break ;; esac; done\n'
        f'printf "%s\\n" "$arg" >> "{log}"\n'
        f'exec "{real}" "$@"\n'
    )
    shim.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def ingest(report: Path, repo: Path, commit: str, cwd: Path, path: str) -> None:
    proc = run_cli(
        "ingest",
        report,
        "--cases-repo",
        repo,
        "--repo",
        "acme/shop",
        "--pr",
        "1",
        "--target-branch",
        "main",
        "--commit",
        commit,
        cwd=cwd,
        PATH=path,
    )
    assert proc.returncode in (0, 1), proc.stderr


def test_a_local_ingest_starts_these_git_processes_and_no_more(tmp_path: Path) -> None:
    # Above the compression threshold: the raw report is stored as .gz.
    base, plus = tmp_path / "base.json", tmp_path / "plus.json"
    base.write_bytes(big_report(300))
    plus.write_bytes(big_report(300, extra=1))
    log = tmp_path / "git.log"
    path = git_shim(tmp_path / "shim", log)
    repo = tmp_path / "cases"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))

    ingest(base, repo, "c1000001", tmp_path, path)
    first = collections.Counter(log.read_text().split())
    log.unlink()
    ingest(plus, repo, "c2000002", tmp_path, path)
    rescan = collections.Counter(log.read_text().split())

    assert first == collections.Counter(FIRST)
    assert rescan == collections.Counter(RESCAN)
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "2"
    assert git(repo, "status", "--porcelain") == ""
    raw = git(repo, "ls-tree", "-r", "--name-only", "HEAD", "cases/github/acme/shop/pr-1/raw")
    assert raw.endswith(".json.gz\n") and raw.count("\n") == 1
    # git did not compress the gzip data again (stored: no smaller than the blob), but did
    # the case files (which deflate well).
    assert _loose_share(repo, f"HEAD:{raw.strip()}") >= 1
    assert _loose_share(repo, "HEAD:cases/github/acme/shop/pr-1/findings.json") < 0.5


def _loose_share(repo: Path, rev: str) -> float:
    """A loose object's size on disk over the size of its content."""
    oid = git(repo, "rev-parse", rev).strip()
    size = int(git(repo, "cat-file", "-s", oid))
    return (repo / ".git" / "objects" / oid[:2] / oid[2:]).stat().st_size / size
