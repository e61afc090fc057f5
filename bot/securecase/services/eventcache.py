"""The report's history, remembered between runs: the commit events of a cases repo up to one
commit, so that a later ``securecase report`` reads only the commits made since.

One JSON file per cases repo and bot identity (events depend on which author is the bot) under
``<cache dir>/report-events/``, named by a hash of both: neither the repo's location (a URL
may hold a token) nor anything else but commit ids, case keys, times and the bot's trailers is
written. A file of another package version or format is ignored and replaced. A missing file
is a cold run; one that cannot be read or written gives a warning and a cold run (or no saved
cache), never a failure. Writes go to a temporary file renamed over the old one, so
concurrent runs each leave a whole file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from securecase import __version__
from securecase.domain.metrics import AuthorKind, CommitEvent

SUBDIR = "report-events"
_FORMAT = 1
_AUTHORS = {AuthorKind.BOT: "b", AuthorKind.HUMAN: "h"}
_KINDS = {code: kind for kind, code in _AUTHORS.items()}


@dataclass(frozen=True, slots=True)
class CachedEvents:
    """The events of every commit up to and including ``head``, in ``git log`` order."""

    head: str
    events: list[CommitEvent]


@dataclass
class EventCache:
    """The cached events of one cases repo (by ``repo_identity``) for one bot email.

    ``folder`` None means caching is off: nothing is read or written. ``warning`` holds the
    first problem met (one per run at most).
    """

    folder: Path | None
    repo_identity: str
    bot_email: str
    warning: str | None = field(default=None, init=False)

    @property
    def path(self) -> Path | None:
        """The cache file (None when caching is off)."""
        if self.folder is None:
            return None
        key = hashlib.sha256(
            f"{self.repo_identity}\0{self.bot_email.strip().lower()}".encode(
                "utf-8", "surrogateescape"
            )
        ).hexdigest()
        return self.folder / SUBDIR / f"{key[:32]}.json"

    def load(self) -> CachedEvents | None:
        """The cached events, None when there are none usable."""
        path = self.path
        if path is None:
            return None
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn(f"cannot read the report cache {path} ({exc.strerror}); read all history")
            return None
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if doc.get("format") != _FORMAT or doc.get("version") != __version__:
                return None  # another release wrote it: recompute, then replace it
            return CachedEvents(_commit_id(doc.get("head")), _events(doc.get("events")))
        except (ValueError, TypeError, KeyError) as exc:
            self._warn(f"ignored the corrupt report cache {path} ({exc}); read all history")
            return None

    def save(self, head: str, events: list[CommitEvent]) -> None:
        """Remember ``events`` as those of every commit up to ``head`` (best effort)."""
        path = self.path
        if path is None:
            return
        doc = {
            "format": _FORMAT,
            "version": __version__,
            "head": head,
            "events": [_record(e) for e in events],
        }
        data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        temp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".events-", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(data)
            os.replace(temp, path)
        except OSError as exc:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            self._warn(f"cannot write the report cache {path} ({exc.strerror or exc})")

    def _warn(self, message: str) -> None:
        if self.warning is None:
            self.warning = message


def _record(event: CommitEvent) -> list[Any]:
    return [
        event.commit,
        _AUTHORS[event.author],
        event.at.isoformat(),
        event.case_key,
        dict(event.trailers),
        event.acknowledges,
    ]


def _commit_id(value: object) -> str:
    if not isinstance(value, str) or len(value) not in (40, 64):
        raise ValueError("no commit id under 'head'")
    int(value, 16)  # ValueError when not hex
    return value


def _events(records: object) -> list[CommitEvent]:
    if not isinstance(records, list):
        raise ValueError("no list under 'events'")
    events = []
    for index, record in enumerate(records):
        if not (isinstance(record, list) and len(record) == 6):
            raise ValueError(f"events[{index}] is not a 6-item list")
        commit, author, at, key, trailers, acknowledges = record
        if not (
            isinstance(commit, str)
            and isinstance(key, str)
            and isinstance(at, str)
            and isinstance(trailers, dict)
            and all(isinstance(v, str) for v in trailers.values())
            and isinstance(acknowledges, bool)
        ):
            raise ValueError(f"events[{index}] has a field of the wrong type")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError(f"events[{index}] has a time without an offset")
        events.append(CommitEvent(commit, _KINDS[author], moment, key, trailers, acknowledges))
    return events
