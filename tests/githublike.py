"""A bare git remote that enforces GitHub's documented repository limits, for tests.

:func:`githublike_remote` makes a bare repository whose ``pre-receive`` hook (a real
executable script run by git's ``receive-pack``) refuses what GitHub refuses:

- **objects above 100 MB** (GitHub's enforced file size limit), with GitHub's rejection text
  (``GH001: Large files detected``); the limit is ``githublike.maxObjectBytes`` in the bare
  repo's config, so a test can try it with a small value;
- **more pushes than the push-rate budget**: at most ``githublike.pushesPerWindow`` (default 6,
  GitHub's recommended maximum per minute) in any rolling ``githublike.windowSeconds``
  (default 60). Every push the hook lets through is appended to ``githublike/pushes.log``
  under the repository, under a lock, so concurrent pushes cannot exceed the budget and a
  test or a benchmark counts pushes from the server's side. (A push whose ref update then
  loses a race to another push still counted: the server processed it.)

``githublike.delaySeconds`` makes the hook answer that much later (a slow server).

The budget and the limit live in the repository's config, so they hold for every client,
whatever its environment.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: GitHub's enforced maximum for one file (object) in a repository.
GITHUB_OBJECT_LIMIT = 100 * 1024 * 1024
#: GitHub's recommended maximum of pushes per minute to one repository.
GITHUB_PUSHES_PER_MINUTE = 6

_HOOK = r'''
"""pre-receive hook of a GitHub-like test remote (see tests/githublike.py)."""

import os
import subprocess
import sys
import time

import filelock

ZERO = "0" * 40


def config(name, default):
    found = subprocess.run(
        ["git", "config", "--int", f"githublike.{name}"], capture_output=True, text=True
    )
    return int(found.stdout.strip()) if found.returncode == 0 else default


def megabytes(size):
    return f"{size / (1024 * 1024):.2f} MB"


def oversized(updates, limit):
    """(path, size) of every new blob above ``limit`` bytes these ref updates bring."""
    news = [new for _, new, _ in updates if new.strip("0")]
    if not news:
        return []
    listed = subprocess.run(
        ["git", "rev-list", "--objects", *news, "--not", "--all"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    paths = {}
    for line in listed:
        oid, _, path = line.partition(" ")
        paths[oid] = path
    if not paths:
        return []
    sizes = subprocess.run(
        ["git", "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
        input="".join(f"{oid}\n" for oid in paths), capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    found = []
    for line in sizes:
        oid, kind, size = line.split()
        if kind == "blob" and int(size) > limit:
            found.append((paths[oid] or oid, int(size)))
    return found


def main():
    updates = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
    time.sleep(config("delaySeconds", 0))  # a slow server
    limit = config("maxObjectBytes", 100 * 1024 * 1024)
    big = oversized(updates, limit)
    if big:
        for path, size in big:
            print(f"error: File {path} is {megabytes(size)}; this exceeds GitHub's file size "
                  f"limit of {megabytes(limit)}", file=sys.stderr)
        print("error: GH001: Large files detected. You may want to try Git Large File "
              "Storage - https://git-lfs.github.com.", file=sys.stderr)
        return 1
    budget = config("pushesPerWindow", 6)
    window = config("windowSeconds", 60)
    folder = os.path.join(os.environ.get("GIT_DIR", "."), "githublike")
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, "pushes.log")
    with filelock.FileLock(log + ".lock"):
        now = time.time()
        try:
            with open(log, encoding="utf-8") as handle:
                times = [float(line.split()[0]) for line in handle if line.strip()]
        except FileNotFoundError:
            times = []
        recent = [t for t in times if t > now - window]
        if len(recent) >= budget:
            wait = min(recent) + window - now if recent else window
            print(f"error: push rate limit exceeded: at most {budget} pushes per {window} s "
                  f"to this repository; retry in {wait:.0f} s", file=sys.stderr)
            return 1
        refs = ",".join(ref for _, _, ref in updates)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{now:.6f} {refs}\n")
    return 0


sys.exit(main())
'''


@dataclass(frozen=True)
class GitHubLikeRemote:
    """A bare repository behind GitHub's limits; ``url`` is its ``file://`` URL."""

    path: Path

    @property
    def url(self) -> str:
        """The ``file://`` URL clients push to (receive-pack runs the hook)."""
        return self.path.as_uri()

    @property
    def push_log(self) -> Path:
        """One line per push the hook let through: unix time, refs."""
        return self.path / "githublike" / "pushes.log"

    def push_times(self) -> list[float]:
        """When each push the hook let through arrived (unix time), in order."""
        if not self.push_log.exists():
            return []
        lines = self.push_log.read_text(encoding="utf-8").splitlines()
        return [float(line.split()[0]) for line in lines if line.strip()]

    def pushes(self) -> int:
        """How many pushes the hook let through."""
        return len(self.push_times())

    def configure(self, name: str, value: int) -> None:
        """Set one of the hook's settings (``maxObjectBytes``, ``pushesPerWindow``,
        ``windowSeconds``, ``delaySeconds``)."""
        _git(self.path, "config", f"githublike.{name}", str(value))

    def wait_for_budget(self) -> None:
        """Sleep until the rolling window has room for one more push."""
        budget = int(_git(self.path, "config", "--default", "6", "githublike.pushesPerWindow"))
        window = int(_git(self.path, "config", "--default", "60", "githublike.windowSeconds"))
        times = self.push_times()
        if len(times) >= budget:
            # the oldest push of the last `budget` leaves the window first
            delay = times[-budget] + window - time.time()
            if delay > 0:
                time.sleep(delay + 0.05)

    def commits(self, ref: str = "main") -> int:
        """Commits on ``ref`` (0 while the branch does not exist)."""
        found = subprocess.run(
            ["git", "-C", str(self.path), "rev-list", "--count", ref],
            capture_output=True,
            text=True,
        )
        return int(found.stdout.strip()) if found.returncode == 0 else 0


def githublike_remote(
    path: Path,
    *,
    max_object_bytes: int = GITHUB_OBJECT_LIMIT,
    pushes_per_window: int = GITHUB_PUSHES_PER_MINUTE,
    window_seconds: int = 60,
) -> GitHubLikeRemote:
    """A new bare repository at ``path`` (branch ``main``) with the GitHub-like hook."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    hook = path / "hooks" / "pre-receive"
    # The interpreter running the tests: it has filelock, which the hook locks the log with.
    hook.write_text(f"#!{sys.executable}\n{_HOOK.lstrip()}", encoding="utf-8")
    hook.chmod(0o755)
    remote = GitHubLikeRemote(path)
    remote.configure("maxObjectBytes", max_object_bytes)
    remote.configure("pushesPerWindow", pushes_per_window)
    remote.configure("windowSeconds", window_seconds)
    return remote


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()
