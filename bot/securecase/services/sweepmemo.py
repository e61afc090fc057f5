"""What the last sweep of a local cases repo learnt: which cases time cannot change yet.

A daily sweep judges every case again because today moved. But a case only changes with time
on a few days (a finding passing an age rule or its SLA, an exception entering its warning
window or expiring: ``domain.sweep.stable_until``). After judging a case that did not change,
the sweep remembers its file's blob id, its target branch case's blob id and that day; a later
sweep with the same policy skips reading such a case until then, and still lists it for
closing (its key, status and creation time are remembered too).

The memo lives beside the repository (``store.cache_dir``, never transferred by git); a
missing, unreadable or foreign memo is simply empty, and a remote cases repo has none.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from securecase import __version__
from securecase.domain.case import Case, Status
from securecase.domain.policy import Policy
from securecase.domain.subjects import Subject, parse_key
from securecase.domain.sweep import CaseSweep, pending_events, stable_until
from securecase.services.ingest import baseline_subject

MEMO_FILE = "sweep-memo.json"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Known:
    """A case the sweep did not read: what the memo says about it."""

    key: str
    status: Status
    created_at: str
    blob: str

    @property
    def subject(self) -> Subject:
        return _subject(self.key)


#: Keys are parsed only for the cases a listing needs (thousands otherwise).
_subject = functools.lru_cache(maxsize=None)(parse_key)


@dataclass
class SweepMemo:
    """The memo of one cases repo under one policy (see the module docstring)."""

    policy: str
    folder: str | None = None
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def load(cls, cache_dir: str | None, policy_blob: str) -> SweepMemo:
        """The memo kept in ``cache_dir`` for this policy (empty when there is none)."""
        memo = cls(policy_blob, cache_dir)
        if cache_dir is None:
            return memo
        try:
            with open(os.path.join(cache_dir, MEMO_FILE), encoding="utf-8") as handle:
                doc = json.load(handle)
        except (OSError, ValueError):
            return memo
        if (
            isinstance(doc, dict)
            and doc.get("format") == _FORMAT
            and doc.get("version") == __version__
            and doc.get("policy") == policy_blob
            and isinstance(doc.get("entries"), dict)
        ):
            memo.entries = doc["entries"]
        return memo

    def lookup(
        self,
        folder: str,
        blob: str,
        listed: Mapping[str, str],
        today: date,
        *,
        channels: bool,
    ) -> Known | None:
        """What the memo knows of the case at ``folder``, if reading it can be skipped."""
        entry = self.entries.get(folder)
        if not isinstance(entry, dict) or not _valid(entry) or entry["blob"] != blob:
            return None
        if entry["until"] is not None and today.isoformat() >= entry["until"]:
            return None
        if channels and entry["events"]:
            return None  # it has events to send: judge it
        base = entry["base_folder"]
        if (listed.get(base) if base else None) != entry["base"]:
            return None
        return Known(entry["key"], Status(entry["status"]), entry["created_at"], blob)

    def remember(
        self,
        cases: Mapping[str, tuple[Case, str]],
        sweeps: Mapping[str, CaseSweep],
        policy: Policy,
        today: date,
    ) -> None:
        """Note every case read that this sweep left as it was."""
        if self.folder is None or policy.blob != self.policy:
            return
        blobs = {folder: oid for folder, (_, oid) in cases.items()}
        for folder, (case, oid) in cases.items():
            swept = sweeps.get(folder)
            if swept is not None and (swept.changed or swept.case != case):
                self.dirty |= self.entries.pop(folder, None) is not None
                continue
            base = baseline_subject(case.subject)
            baseline = cases.get(base.folder) if base else None
            if swept is not None:
                until = stable_until(
                    case, policy, baseline=baseline[0] if baseline else None, today=today
                )
                events = bool(swept.events)
            else:  # CLOSED: nothing changes it but its closing event
                until = None
                events = bool(pending_events(case, None, today=today))
            entry = {
                "key": case.key,
                "status": case.status.value,
                "created_at": case.created_at,
                "blob": oid,
                "base_folder": base.folder if base else None,
                "base": blobs.get(base.folder) if base else None,
                "until": until.isoformat() if until else None,
                "events": events,
            }
            if self.entries.get(folder) != entry:
                self.entries[folder] = entry
                self.dirty = True

    def forget(self, folders: Iterable[str]) -> None:
        """Drop what the memo knows of these folders (cases that left the tip)."""
        for folder in folders:
            self.dirty |= self.entries.pop(folder, None) is not None

    def save(self) -> None:
        """Write the memo atomically (best effort: a memo that cannot be written is no memo)."""
        if self.folder is None or not self.dirty:
            return
        doc = {
            "format": _FORMAT,
            "version": __version__,
            "policy": self.policy,
            "entries": self.entries,
        }
        with contextlib.suppress(OSError):
            os.makedirs(self.folder, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".sweep-memo-", dir=self.folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(json.dumps(doc, separators=(",", ":")))
                os.replace(temp, os.path.join(self.folder, MEMO_FILE))
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(temp)


def _valid(entry: dict[str, Any]) -> bool:
    """A memo entry as :meth:`SweepMemo.remember` writes it (anything else is ignored)."""
    try:
        key, status, created_at, blob = (
            entry["key"],
            entry["status"],
            entry["created_at"],
            entry["blob"],
        )
        until, base, base_folder = entry["until"], entry["base"], entry["base_folder"]
    except KeyError:
        return False
    return (
        type(key) is str
        and type(created_at) is str
        and type(blob) is str
        and type(status) is str
        and status in _STATUSES
        and type(entry.get("events")) is bool
        and (until is None or type(until) is str)
        and (base is None or type(base) is str)
        and (base_folder is None or type(base_folder) is str)
    )


_STATUSES = frozenset(Status.__members__)
