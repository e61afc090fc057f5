"""Lock files shared with git and with other securecase runs: take, describe, clean up.

git's locks (``index.lock``, ``refs/heads/<branch>.lock``) are files created exclusively and
renamed over their target when done; git records no owner in them. securecase takes
``index.lock`` the same way, but first writes an owner record (host, pid, the inode of the lock
file it is about to link into place), so a later run can prove that a lock left behind is one
of ours from a run that is gone, and only then remove it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from securecase.errors import StoreError

log = logging.getLogger("securecase")

POLL_START, POLL_CAP = 0.005, 0.05  # seconds between looks at a lock held by someone else


def lock_age(path: str) -> float | None:
    """Seconds since ``path`` was last written, None when it is gone."""
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        return None


def describe_lock(path: str) -> str:
    """``path`` and its age, for error messages."""
    age = lock_age(path)
    return path if age is None else f"{path} ({age:.0f}s old)"


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this host (or we may not signal it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Owner:
    """Who took a lock: enough to prove later that the taker is gone."""

    host: str
    pid: int
    inode: int
    taken_at: float
    commit: str
    paths: tuple[str, ...]

    def gone(self) -> bool:
        """The taker ran on this host and its process no longer exists."""
        return self.host == socket.gethostname() and not pid_alive(self.pid)


def read_owner(path: str) -> Owner | None:
    """The owner record at ``path``; None when absent or unreadable (then nothing is proven)."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
        return Owner(
            str(raw["host"]),
            int(raw["pid"]),
            int(raw["inode"]),
            float(raw["taken_at"]),
            str(raw["commit"]),
            tuple(str(p) for p in raw["paths"]),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write_json(path: str, data: object) -> None:
    temp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temp, path)


class GitLock:
    """git's ``<target>.lock`` for one file, taken exclusively with an owner record.

    The lock file is created under a private name first, its inode written to the owner
    record, then hard-linked to ``<target>.lock``: ``link`` fails when the name exists, exactly
    like git's ``O_CREAT|O_EXCL``, and a lock found later with the recorded inode is provably
    the one this run took.
    """

    def __init__(self, target: str, record: str, scratch: str) -> None:
        self.target = target
        self.path = target + ".lock"
        self.record = record
        self._scratch = scratch
        self._fd: int | None = None
        self._inode = 0

    @property
    def held(self) -> bool:
        """True between :meth:`acquire` and :meth:`commit` or :meth:`release`."""
        return self._fd is not None

    def acquire(self, deadline: float, *, what: str) -> None:
        """Take the lock, waiting until ``deadline`` (monotonic) while someone else holds it."""
        private = os.path.join(self._scratch, f"lock-{os.getpid()}-{os.urandom(4).hex()}")
        fd = os.open(private, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            self._inode = os.fstat(fd).st_ino
            self.note("", ())
            delay = POLL_START
            while True:
                try:
                    os.link(private, self.path)
                    break
                except FileExistsError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StoreError(
                            f"{what}: {describe_lock(self.path)} is held by another git command",
                            hint="let the other git command finish (or close the editor of a "
                            "`git commit`), or remove the file if no git command is running",
                        ) from None
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, POLL_CAP)
        except BaseException:
            os.close(fd)
            raise
        finally:
            os.unlink(private)
        self._fd = fd

    def adopt(self, owner: Owner) -> None:
        """Take over the lock a dead run left (see :func:`left_by_dead_run`), never letting
        go of it in between, so no other git command can slip in before the repair."""
        fd = os.open(self.path, os.O_RDWR)
        if os.fstat(fd).st_ino != owner.inode:
            os.close(fd)
            raise StoreError(f"{self.path} changed hands while securecase was taking it over")
        self._fd, self._inode = fd, owner.inode
        self.note(owner.commit, owner.paths)

    def note(self, commit: str, paths: tuple[str, ...]) -> None:
        """Record what the holder is about to change (for the repair after a crash)."""
        owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "inode": self._inode,
            "taken_at": time.time(),
            "commit": commit,
            "paths": list(paths),
        }
        _write_json(self.record, owner)

    def write(self, data: bytes) -> None:
        """Content that :meth:`commit` puts in place of the target."""
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def commit(self) -> None:
        """Rename the lock over the target (git's way to publish a locked file)."""
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        os.replace(self.path, self.target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.record)

    def release(self) -> None:
        """Drop the lock without touching the target."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.record)


def left_by_dead_run(lock: GitLock, *, run_lock_held: bool) -> Owner | None:
    """The record of a securecase run that took ``lock`` and is gone, if the lock is its.

    Proof needs all of: the recorded inode is the lock file's (so it is not someone else's
    lock), and the recorded process is gone (same host, pid not running) or, while we hold the
    repository's securecase lock, cannot be running (a live run would hold it).
    """
    owner = read_owner(lock.record)
    if owner is None:
        return None
    try:
        inode = os.stat(lock.path).st_ino
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock.record)  # nothing left behind: the record is done with
        return None
    if inode != owner.inode:
        return None
    if owner.host == socket.gethostname() and (run_lock_held or owner.gone()):
        return owner
    return None


def remove_stale(path: str, *, older_than: float, why: str) -> bool:
    """Remove ``path`` when older than ``older_than`` seconds, and say so; True if removed."""
    age = lock_age(path)
    if age is None or age < older_than:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return False
        raise
    log.warning("securecase: removed %s, %.0fs old, %s", path, age, why)
    return True


def wait_for(check: Callable[[], bool], deadline: float) -> bool:
    """Poll ``check`` until it is true or ``deadline`` (monotonic) passes."""
    delay = POLL_START
    while not check():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, POLL_CAP)
    return True
