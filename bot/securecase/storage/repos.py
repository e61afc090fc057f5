"""Opening the cases repository: a local work tree, a bare repository or a remote URL."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence

from securecase.storage import local as store_local
from securecase.storage.git import DEFAULT_IDENTITY, GitIdentity
from securecase.storage.store import Backend, CasesStore, validate_relpath

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._~+-]+@[A-Za-z0-9.-]+:")


def is_remote(location: str) -> bool:
    """True for URLs (``scheme://``) and scp-like ``user@host:path`` locations."""
    return "://" in location or bool(_SCP_LIKE.match(location))


def open_store(
    location: str,
    *,
    identity: GitIdentity = DEFAULT_IDENTITY,
    paths: Sequence[str] | None = None,
    list_tree: bool = False,
    timeout: float = 120.0,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> CasesStore:
    """Open the cases repo at ``location`` (work-tree path, bare repo path, or remote URL).

    A missing path or an empty directory becomes a new repository on ``main``. A remote is
    cloned as little as the command needs (see :mod:`securecase.storage.remote`): ``paths``
    (files or folders) are the only blobs fetched up front, with the trees on the way to them
    only, unless ``list_tree`` (the command lists every folder: every tree is fetched).
    ``paths=None`` fetches everything.
    """
    for path in paths or ():
        validate_relpath(path.rstrip("/"))
    backend: Backend
    remote = location if is_remote(location) else None
    if remote is None:
        bare = store_local.open_local(location, identity)
        if isinstance(bare, str):
            remote = bare
        else:
            backend = bare
    if remote is not None:
        # Imported for a remote only: a local work tree needs none of the clone's machinery.
        from securecase.storage import remote as store_remote

        scope = store_remote.Scope.TREES if list_tree else store_remote.Scope.PATHS
        if paths is None:
            scope = store_remote.Scope.FULL
        backend = store_remote.RemoteBackend(remote, identity, paths or (), timeout, scope=scope)
    return CasesStore(
        backend, timeout=timeout, rng=rng or random.Random(), sleep=sleep, monotonic=monotonic
    )
