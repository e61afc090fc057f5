"""A cache of validated case files, keyed by git blob id, kept outside every work tree.

A git blob id names exact bytes, so what securecase concluded from a blob once (the validated
``case.yaml`` document; that a ``findings.json`` matches its schema) holds for as long as the
parser and the schemas are the same. Those are part of the cache's name (package version,
schema texts, the layout of the stored entries): a new parser opens a new file and never reads
an entry an old one wrote. One SQLite file holds the entries (standard library; it serialises
concurrent writers itself, and a busy one is waited for, briefly).

Where: the cache directory of :mod:`securecase.storage.cachedir` (``$SECURECASE_CACHE_DIR``,
else ``$XDG_CACHE_HOME/securecase``, else ``~/.cache/securecase``); ``SECURECASE_CACHE=off``
(or ``--no-cache``) turns it off. The cache
is an accelerator only: a file that is corrupt, locked for too long, or not writable turns it
off for the rest of the run with one warning (:attr:`ParseCache.warning`), never an error and
never a different answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from securecase import __version__
from securecase.storage.cachedir import cache_dir

#: Bumped whenever what an entry holds changes meaning (for "facts": whenever
#: ``domain.metrics.case_facts`` or its fields change).
ENTRY_FORMAT = 2
#: How long a write waits for another process's write to finish before giving up (seconds).
BUSY_TIMEOUT = 5.0
#: Keys per query (SQLite allows 32,766 parameters; a few hundred keeps statements small).
_CHUNK = 500
#: Entries written at once (one transaction each).
_PENDING = 2000
_SCHEMAS = ("case.schema.json", "findings.schema.json")

#: Kinds of entries: a validated case.yaml document (JSON), the part of it a listing shows
#: (JSON), a findings.json known to match its schema (empty), what the report's metrics
#: read of a case folder (JSON, keyed by both blob ids: ``<case.yaml>+<findings.json>``),
#: and of every case folder under ``cases/`` at once (JSON, keyed by that folder's tree id,
#: which names every path and blob beneath it).
CASE_DOC = "case"
CASE_SUMMARY = "summary"
FINDINGS_OK = "findings"
CASE_FACTS = "facts"
CASES_FACTS = "cases-facts"


def cache_version() -> str:
    """What a cache file is valid for: entry format, package version and the schema texts."""
    digest = hashlib.sha256(f"{ENTRY_FORMAT}\0{__version__}".encode())
    folder = Path(__file__).parent / "schemas"
    for name in _SCHEMAS:
        digest.update(b"\0" + (folder / name).read_bytes())
    return f"{__version__}-{digest.hexdigest()[:16]}"


class ParseCache:
    """Validated parse results by (kind, blob id); does nothing when ``folder`` is None.

    Reads go to the file at once; writes are collected and written by :meth:`flush`, one
    transaction per batch of entries (and what is left at the end of a command).
    """

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / f"parsed-{cache_version()}.sqlite3" if folder is not None else None
        self.warning: str | None = None
        #: Set by a caller that already warned about the cache folder (one warning per run).
        self.warned = False
        self._db: sqlite3.Connection | None = None
        self._pending: dict[tuple[str, str], bytes] = {}
        self._discarded: set[tuple[str, str]] = set()
        self._opened = False

    @property
    def enabled(self) -> bool:
        """True while the cache is in use (not turned off, no failure so far)."""
        return self.path is not None and self.warning is None

    def _connection(self) -> sqlite3.Connection | None:
        if not self.enabled:
            return None
        if not self._opened:
            self._opened = True
            assert self.path is not None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
                db.execute(
                    "CREATE TABLE IF NOT EXISTS parsed (kind TEXT NOT NULL, blob TEXT NOT NULL, "
                    "value BLOB NOT NULL, PRIMARY KEY (kind, blob)) WITHOUT ROWID"
                )
                self._db = db
            except (OSError, sqlite3.Error) as exc:
                self._fail(exc)
        return self._db

    def _fail(self, exc: BaseException) -> None:
        self.warning = (
            f"the parse cache {self.path} is not usable ({exc}); reading without it "
            "(delete the file, or set SECURECASE_CACHE=off)"
        )
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._pending.clear()
        self._discarded.clear()

    def get(self, kind: str, blobs: Iterable[str]) -> dict[str, bytes]:
        """The stored values of these blobs (blob id -> value) that the cache holds."""
        db = self._connection()
        wanted = list(dict.fromkeys(blobs))
        if db is None or not wanted:
            return {}
        found = {
            blob: self._pending[(kind, blob)] for blob in wanted if (kind, blob) in self._pending
        }
        wanted = [blob for blob in wanted if blob not in found]
        try:
            wanted.sort()  # neighbouring keys: fewer pages read
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT blob, value FROM parsed WHERE kind = ? AND blob IN ({marks})",
                    (kind, *chunk),
                )
                found.update((blob, value) for blob, value in rows)
        except sqlite3.Error as exc:
            self._fail(exc)
            return {}
        return found

    def documents(self, kind: str, blobs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """:meth:`get` for entries holding a JSON object; an entry that does not decode to
        one is left out (then parsed again, as on a miss)."""
        found = {}
        for blob, value in self.get(kind, blobs).items():
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                found[blob] = doc
        return found

    def put(self, kind: str, blob: str, value: bytes) -> None:
        """Remember ``value`` for ``blob`` (written by :meth:`flush`, or now when many wait:
        what a run learns is not all held until its end)."""
        if self.enabled:
            self._pending[(kind, blob)] = value
            if len(self._pending) >= _PENDING:
                self.flush()

    def put_document(self, kind: str, blob: str, document: dict[str, Any]) -> None:
        """Remember a JSON document for ``blob`` (one orjson cannot write is not kept)."""
        if not self.enabled:
            return
        try:
            value = orjson.dumps(document)
        except (orjson.JSONEncodeError, TypeError):
            return  # e.g. an integer beyond 64 bits: read from the file each time instead
        self.put(kind, blob, value)

    def discard(self, kind: str, blob: str) -> None:
        """Forget the entry of ``blob`` (at :meth:`flush`): one a newer entry supersedes, which
        would otherwise only take room (a later run that wants it computes it again)."""
        if self.enabled:
            self._pending.pop((kind, blob), None)
            self._discarded.add((kind, blob))

    def flush(self) -> None:
        """Write the remembered entries, and forget the discarded ones, in one transaction (a
        failure turns the cache off)."""
        if not (self._pending or self._discarded):
            return
        db = self._connection()
        if db is None:
            return
        # In key order: the table is a B-tree on (kind, blob), and blob ids are random, so
        # unsorted inserts split pages all over it (twice the time for 10,000 case files).
        rows: Sequence[tuple[str, str, bytes]] = sorted(
            (kind, blob, value) for (kind, blob), value in self._pending.items()
        )
        gone = sorted(self._discarded)
        self._pending, self._discarded = {}, set()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM parsed WHERE kind = ? AND blob = ?", gone)
                db.executemany("INSERT OR IGNORE INTO parsed VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._fail(exc)

    def close(self) -> None:
        """Write what is pending and close the file."""
        self.flush()
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def open_cache(environ: Mapping[str, str], *, enabled: bool = True) -> ParseCache:
    """The parse cache for this run, in the cache directory of :mod:`securecase.storage.cachedir`
    (a disabled one when turned off by flag or environment)."""
    return ParseCache(cache_dir(environ) if enabled else None)


def no_cache() -> ParseCache:
    """A cache that holds nothing (library calls that were given none)."""
    return ParseCache(None)
