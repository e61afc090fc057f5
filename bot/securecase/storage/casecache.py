"""Parsed ``case.yaml`` documents kept beside a local cases repo, so a rescan skips the YAML.

Every ingest reads the case it is about to update; reading 1,000 findings of YAML and checking
them against the schema costs more than the rest of the merge. The ingest before it had that
very document in hand when it wrote the file, so it leaves a copy here, in ``marshal`` form,
keyed by a digest of the exact ``case.yaml`` bytes.

A hit is sound by construction: the key covers the bytes, the case schema, the source of the
code that reads, checks and writes case files, securecase's version and the Python that wrote
it; only documents that passed the schema are stored, and only documents read by securecase's
own loader (never PyYAML's, whose version the key does not cover). A missing, unreadable,
corrupt or pruned entry is just a miss, and the file is parsed and validated as usual; a
well-formed entry is trusted as the rest of the git dir is. That folder is never transferred by
git, so nothing fetched from a remote can fill it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any

from securecase import __version__

#: Entries kept, and their total size: the least recently used beyond either are removed
#: when one is added (the newest is always kept).
MAX_ENTRIES = 32
MAX_BYTES = 64 * 2**20
_MAGIC = b"securecase case cache\n"
_CHECK = 16  # bytes of the payload digest that follows the magic


#: The files a cached document depends on besides the case file: the schema, and the code
#: that parses, checks and writes case files (a fix to any of them invalidates every entry).
DEPENDS_ON = (
    "schemas/case.schema.json",
    "schemas/__init__.py",
    "schemacheck.py",
    "yamlio.py",
    "yamlfast.py",
    "casefile.py",
    "casecache.py",
)


@functools.cache
def _namespace() -> bytes | None:
    """Key material for everything a cached document depends on besides the file's bytes;
    None when the sources are not there to read (an install without ``.py`` files)."""
    here = Path(__file__).parent
    digest = hashlib.blake2b(digest_size=32)
    digest.update(f"{__version__}\0{marshal.version}\0{sys.version_info[:3]}\0".encode())
    try:
        for name in DEPENDS_ON:
            digest.update((here / name).read_bytes())
    except OSError:
        return None
    return digest.digest()


class CaseCache:
    """The cache in ``folder`` (None: no cache, every lookup misses and nothing is stored)."""

    def __init__(
        self, folder: str | None, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES
    ) -> None:
        # Without the code to key entries by, there is no telling what made them: no cache.
        self.folder = folder if folder is not None and _namespace() is not None else None
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # Documents used in this process: (bytes, document, written by the emitter).
        self._used: list[tuple[bytes, dict[str, Any], bool]] = []

    def key(self, data: bytes) -> str:
        """The entry name for ``case.yaml`` bytes ``data``."""
        namespace = _namespace()
        assert namespace is not None  # a cache without it has no folder and never asks
        return hashlib.blake2b(data, digest_size=20, key=namespace).hexdigest()

    def get(self, data: bytes) -> tuple[dict[str, Any], bool] | None:
        """The schema-valid document parsed from ``data`` earlier, and whether ``data`` is the
        emitter's own output for it; None when there is no usable entry."""
        if self.folder is None:
            return None
        path = os.path.join(self.folder, self.key(data))
        try:
            with open(path, "rb") as handle:
                stored = handle.read()
        except OSError:
            return None
        head = len(_MAGIC) + _CHECK
        payload = stored[head:]
        if stored[: len(_MAGIC)] != _MAGIC or stored[len(_MAGIC) : head] != _digest(payload):
            return None
        try:
            entry = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):
            return None
        if type(entry) is not tuple or len(entry) != 2 or type(entry[0]) is not dict:
            return None
        doc, written = entry
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return doc, written is True

    def used(self, data: bytes, doc: dict[str, Any], written: bool) -> None:
        """Note that ``doc``, from :meth:`get`, was accepted as what ``data`` holds."""
        self._used.append((data, doc, written))

    def emitted(self, data: bytes) -> dict[str, Any] | None:
        """The document used for ``data`` in this process (see :meth:`used`), provided
        ``data`` is exactly the YAML securecase's emitter wrote for it."""
        for known, doc, written in self._used:
            if written and (known is data or known == data):
                return doc
        return None

    def put(self, data: bytes, doc: dict[str, Any], *, written: bool = False) -> None:
        """Remember ``doc`` (schema-valid, plain data) as what ``data`` parses to; ``written``
        says ``data`` is the emitter's own output for ``doc``."""
        if self.folder is None:
            return
        try:
            payload = marshal.dumps((doc, written))
        except ValueError:
            return  # not plain data: nothing to gain from caching it
        path = os.path.join(self.folder, self.key(data))
        temp = f"{path}.{os.urandom(6).hex()}.tmp"
        try:
            os.makedirs(self.folder, exist_ok=True)
            with open(temp, "wb") as handle:
                handle.write(_MAGIC + _digest(payload) + payload)
            os.replace(temp, path)
            self._prune()
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def _prune(self) -> None:
        assert self.folder is not None
        entries = []
        with os.scandir(self.folder) as found:
            for entry in found:
                with contextlib.suppress(OSError):
                    stat = entry.stat()
                    entries.append((stat.st_mtime_ns, stat.st_size, entry.path))
        entries.sort(reverse=True)  # most recently used first
        total = 0
        for kept, (_, size, path) in enumerate(entries, start=1):
            total += size
            if kept > 1 and (kept > self.max_entries or total > self.max_bytes):
                with contextlib.suppress(OSError):
                    os.unlink(path)


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_CHECK).digest()
