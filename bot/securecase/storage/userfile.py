"""Reading a file a person named (a policy), refusing anything that is not a regular file.

``Path.read_bytes`` on a FIFO waits forever for a writer and on ``/dev/zero`` never ends, and
a folder where a policy should be must not read as "no policy": each is an error, exit 2.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from securecase.errors import PolicyError, UsageError
from securecase.storage.store import Snapshot

#: A policy is a page of YAML; a larger file is a mistake (or an attack), not a policy.
MAX_POLICY_BYTES = 1_000_000


def read_regular_file(
    path: Path, *, what: str, max_bytes: int = MAX_POLICY_BYTES, kind: str = "policy file"
) -> bytes:
    """The bytes of ``path``; ``UsageError`` when it is missing, unreadable, not a regular
    file (folder, FIFO, device, socket) or larger than ``max_bytes``. ``what`` names the file
    in messages (e.g. ``--policy policy.yaml``), ``kind`` says what it is."""
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"{what}: cannot read the {kind} ({exc.strerror})") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UsageError(
            f"{what}: not a regular file (it is {_kind(info.st_mode)})", hint="name a YAML file"
        )
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > max_bytes:
            raise UsageError(f"{what}: {info.st_size} bytes, more than the {max_bytes} allowed")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read it
        raise UsageError(f"{what}: more than the {max_bytes} bytes allowed")
    return data


def repo_policy_bytes(snapshot: Snapshot, path: str) -> bytes | None:
    """The cases repo's policy file, None when there is none. Something else at its path (a
    folder) is a ``PolicyError``: falling back to the built-in policy would silently change
    the gate."""
    data = snapshot.read(path)
    if data is None and snapshot.is_folder(path):
        raise PolicyError(
            f"{path}: is a folder in the cases repo, not a policy file",
            hint="policy.yaml must be a YAML file at the cases repo root",
        )
    if data is not None and len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: {len(data)} bytes, more than the {MAX_POLICY_BYTES} allowed")
    return data


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")
