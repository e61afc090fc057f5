"""Where securecase keeps data it can always recompute from git (never inside a work tree).

Every cache under this directory is an optimisation only: entries are keyed by what they were
derived from (commit or blob ids, the package version), a missing or unreadable entry means
recomputing, and deleting the directory is always safe.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from securecase.storage.git import redact
from securecase.storage.repos import is_remote

#: Environment variable naming the cache directory itself.
CACHE_DIR_ENV = "SECURECASE_CACHE_DIR"
#: Environment variable that turns caching off when set to ``off``.
CACHE_SWITCH_ENV = "SECURECASE_CACHE"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The cache directory (not created here), or None when caching is off.

    ``$SECURECASE_CACHE=off`` turns it off; otherwise ``$SECURECASE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/securecase``, else ``~/.cache/securecase``. A relative
    ``$SECURECASE_CACHE_DIR`` is taken from the current directory; a relative
    ``$XDG_CACHE_HOME`` is ignored, as the XDG specification asks; without a home directory
    there is no cache.
    """
    env = os.environ if environ is None else environ
    if env.get(CACHE_SWITCH_ENV, "").strip().lower() == "off":
        return None
    explicit = env.get(CACHE_DIR_ENV, "").strip()
    if explicit:
        return Path(os.path.abspath(explicit))
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "securecase"
    home = env.get("HOME", "").strip() or os.path.expanduser("~")
    if not home or not os.path.isabs(home):
        return None
    return Path(home) / ".cache" / "securecase"


def repo_identity(location: str) -> str:
    """What names one cases repo across runs: its resolved path, or its URL without
    credentials (only a hash of it is ever written)."""
    if is_remote(location):
        return redact(location.strip())
    return os.path.realpath(location)


def repo_folder(base: Path, kind: str, location: str) -> Path:
    """``base/kind/<hash of the cases repo's identity>``: one cache folder per cases repo,
    whose name tells neither its path nor its URL."""
    digest = hashlib.sha256(repo_identity(location).encode("utf-8", "surrogateescape"))
    return base / kind / digest.hexdigest()[:32]
