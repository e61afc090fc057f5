"""Records waiting for a busy cases repo: a durable folder on this machine.

When an ingest decided but could not push its record (the push was refused, the push budget
was spent, the push timed out), the record goes here instead of being dropped; the next ingest
or sweep of the same cases repo on this machine folds every waiting record in with its own
push. One folder per cases repo (named by a hash of its identity, like the caches)::

    <queue root>/<hash>/<entry id>/record.json   the ingest's inputs (subject, flags, times,
                                                  what it read from the scanned checkout)
    <queue root>/<hash>/<entry id>/report-<n>     the reports' bytes, as read
    <queue root>/<hash>/<entry id>/policy         the --policy file's bytes, when one was given
    <queue root>/<hash>/fold.lock                 held by the run folding the queue
    <queue root>/<hash>/inflight.json             the records a fold is pushing, and its commit

An entry appears whole or not at all (written in a temporary folder, then renamed) and is
removed only after the push that carries it succeeded. ``inflight.json`` is written before
that push and removed after the entries: a fold that died in between left it, and the next
fold removes the entries when that commit reached the cases repo (so no record lands twice)
and keeps them otherwise (so none is lost).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securecase.errors import StoreError
from securecase.storage.cachedir import cache_dir, repo_folder

#: Environment variable naming the queue root (else ``queue/`` under the cache directory).
QUEUE_DIR_ENV = "SECURECASE_QUEUE_DIR"
RECORD_FILE = "record.json"
INFLIGHT_FILE = "inflight.json"
#: Version of record.json; a later securecase that changes it reads this one too. Version 2
#: adds ``checkout`` (what the ingest read from the scanned checkout).
RECORD_SCHEMA = 2
#: The versions this one reads: a record queued by the previous version still folds.
READ_SCHEMAS = frozenset({1, RECORD_SCHEMA})


def queue_root(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """Where queued records live: ``explicit`` (``--queue-dir``, ``$SECURECASE_QUEUE_DIR``),
    else ``queue/`` in the cache directory; None when there is none, and then a busy cases
    repo fails the run with exit 3.

    ``off`` turns queueing off. A GitHub-hosted runner (``$RUNNER_ENVIRONMENT``) has no
    default: its disk is discarded after the job, so a record queued there would be lost
    while the run looked recorded; exit 3 says so instead.
    """
    env = os.environ if environ is None else environ
    chosen = (explicit or "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(os.path.abspath(chosen))
    if env.get("RUNNER_ENVIRONMENT", "").strip() == "github-hosted":
        return None
    base = cache_dir(env)
    return None if base is None else base / "queue"


@dataclass(frozen=True)
class QueuedRecord:
    """One waiting record: its id (sortable by arrival), its inputs and its files."""

    entry_id: str
    folder: Path
    fields: Mapping[str, Any]

    @property
    def reports(self) -> tuple[Path, ...]:
        """The reports' files, in the order the ingest was given them."""
        return tuple(self.folder / f"report-{n}" for n in range(int(self.fields["reports"])))

    @property
    def policy_file(self) -> Path | None:
        """The explicit policy the decision used, None when it came from the cases repo."""
        path = self.folder / "policy"
        return path if path.exists() else None


class RecordQueue:
    """The queue of one cases repo (see the module docstring)."""

    def __init__(self, root: Path, location: str) -> None:
        self.folder = repo_folder(root, "records", location)

    def put(
        self, fields: Mapping[str, Any], reports: Sequence[bytes], policy: bytes | None
    ) -> QueuedRecord:
        """Store one record durably (fsynced, whole or not at all); the entry."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        suffix = record_digest(fields, reports)
        received = "".join(c for c in str(fields["received_at"]) if c.isalnum())
        for child in self.folder.glob(f"{received}-*-{suffix}"):
            return QueuedRecord(child.name, child, fields)  # the same record, queued before
        # received_at has whole seconds; the queueing instant orders records of one second.
        entry_id = f"{received}-{time.time_ns():020d}-{suffix}"
        final = self.folder / entry_id
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.folder))
        try:
            files = {f"report-{n}": data for n, data in enumerate(reports)}
            if policy is not None:
                files["policy"] = policy
            record = {"schema": RECORD_SCHEMA, **fields, "reports": len(reports)}
            files[RECORD_FILE] = json.dumps(record, sort_keys=True, indent=2).encode() + b"\n"
            for name, data in files.items():
                with open(staging / name, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            os.rename(staging, final)
            _fsync_dir(self.folder)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(
                f"cannot queue the record in {self.folder}: {error.strerror or error}",
                hint="free disk space or point --queue-dir at a writable folder",
            ) from error
        return QueuedRecord(entry_id, final, record)

    def entries(self) -> list[QueuedRecord]:
        """The waiting records, oldest first (entries being written or removed are skipped)."""
        if not self.folder.is_dir():
            return []
        found = []
        for child in sorted(self.folder.iterdir()):
            if child.name.startswith(".") or not child.is_dir():
                continue
            try:
                fields = json.loads((child / RECORD_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # not a record: never folded, never removed by us
            if isinstance(fields, dict) and fields.get("schema") in READ_SCHEMAS:
                found.append(QueuedRecord(child.name, child, fields))
        return found

    def remove(self, entry_ids: Sequence[str]) -> None:
        """Drop these entries (their records landed): renamed away first, so a removal cut
        short never leaves a half entry that looks like a record."""
        for entry_id in entry_ids:
            entry = self.folder / entry_id
            if not entry.is_dir():
                continue
            gone = self.folder / f".landed-{entry_id}"
            os.rename(entry, gone)
            shutil.rmtree(gone, ignore_errors=True)
        for left in self.folder.glob(".landed-*"):
            shutil.rmtree(left, ignore_errors=True)

    @contextmanager
    def folding(self) -> Iterator[bool]:
        """Hold the fold lock if no other run holds it: True when this run may fold."""
        if not self.folder.is_dir():
            yield False
            return
        # Imported here: most runs have no queue folder, and filelock's import costs as much
        # as a small ingest's git steps.
        import filelock

        lock = filelock.FileLock(str(self.folder / "fold.lock"), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            yield False  # another run is folding; this one pushes its own record only
            return
        try:
            yield True
        finally:
            lock.release()

    def begin_push(self, commit: str, entry_ids: Sequence[str]) -> None:
        """Note, before pushing ``commit``, which entries it carries (see the docstring)."""
        path = self.folder / INFLIGHT_FILE
        staging = path.with_suffix(".tmp")
        with open(staging, "w", encoding="utf-8") as handle:
            json.dump({"commit": commit, "entries": list(entry_ids)}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)

    def in_flight(self) -> tuple[str, tuple[str, ...]] | None:
        """(commit, entry ids) a fold noted and did not finish, None when there is none."""
        try:
            data = json.loads((self.folder / INFLIGHT_FILE).read_text(encoding="utf-8"))
            return str(data["commit"]), tuple(str(e) for e in data["entries"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def end_push(self) -> None:
        """Forget the note of :meth:`begin_push` (its entries were removed, or stay queued)."""
        (self.folder / INFLIGHT_FILE).unlink(missing_ok=True)


def record_digest(fields: Mapping[str, Any], reports: Sequence[bytes]) -> str:
    """The content digest that ends a record's entry id: its inputs and its reports' bytes.

    A record carried elsewhere (a workflow artifact) is checked against it when read back, and
    the commit that lands a record names it (``Securecase-Record:``), so a record is never
    applied twice."""
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    for data in reports:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()[:20]


def entry_digest(entry_id: str) -> str:
    """The content digest at the end of an entry id (see :func:`record_digest`)."""
    return entry_id.rsplit("-", 1)[-1]


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
