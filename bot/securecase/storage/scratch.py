"""Temporary folders a run owns: ``$TMPDIR/securecase-<uid>/run-<pid>-<random>``.

A run killed before it could clean up leaves its folder (a clone of the cases repo) behind;
the next run on the same host removes every run folder whose process is gone. The parent is
private to the user (mode 0700), so no other account can plant or read a run folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile

from securecase.errors import StoreError
from securecase.storage.locks import log, pid_alive

OWNER_FILE = "owner.json"


def _private_parent() -> str:
    """``$TMPDIR/securecase-<uid>``, created 0700; refused when someone else could use it."""
    parent = os.path.join(tempfile.gettempdir(), f"securecase-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(parent, 0o700)
    found = os.lstat(parent)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        raise StoreError(
            f"{parent} is not a folder of this user",
            hint="remove it, or point TMPDIR to a private folder",
        )
    if stat.S_IMODE(found.st_mode) & 0o077:
        os.chmod(parent, 0o700)
    return parent


def _run_pid(name: str, folder: str) -> tuple[str | None, int] | None:
    """(host, pid) of the run that made ``folder``; None when it is not a run folder."""
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "run" or not parts[1].isdigit():
        return None
    host = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        with open(os.path.join(folder, OWNER_FILE), encoding="utf-8") as handle:
            host = str(json.load(handle)["host"])
    return host, int(parts[1])


def remove_stale_runs(parent: str) -> list[str]:
    """Remove the run folders under ``parent`` left by processes that are gone; their paths."""
    removed: list[str] = []
    here = socket.gethostname()
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in sorted(names):
        folder = os.path.join(parent, name)
        owner = _run_pid(name, folder)
        if owner is None or owner[1] == os.getpid():
            continue
        host, pid = owner
        if (host is not None and host != here) or pid_alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.exists(folder):
            removed.append(folder)
            log.warning(
                "securecase: removed %s, the temporary clone of a run (pid %d) that is gone",
                folder,
                pid,
            )
    return removed


def run_directory() -> str:
    """A new folder owned by this run, after removing those of dead runs."""
    parent = _private_parent()
    remove_stale_runs(parent)
    folder = tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=parent)
    with open(os.path.join(folder, OWNER_FILE), "w", encoding="utf-8") as handle:
        json.dump({"host": socket.gethostname(), "pid": os.getpid()}, handle)
    return folder
