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
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from securecase import __version__
from securecase.domain.metrics import EVENT_TRAILERS, AuthorKind, CommitEvent

SUBDIR = "report-events"
_FORMAT = 2
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
            doc = orjson.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if (
                doc.get("format") != _FORMAT
                or doc.get("version") != __version__
                or doc.get("trailer_names") != sorted(EVENT_TRAILERS)
            ):
                return None  # another release wrote it: recompute, then replace it
            return CachedEvents(_commit_id(doc.get("head")), _events(doc))
        except (ValueError, TypeError, KeyError) as exc:
            self._warn(f"ignored the corrupt report cache {path} ({exc}); read all history")
            return None

    def save(self, head: str, events: list[CommitEvent]) -> None:
        """Remember ``events`` as those of every commit up to ``head`` (best effort)."""
        path = self.path
        if path is None:
            return
        # One list per field rather than one record per event: about half the time to load.
        doc = {
            "format": _FORMAT,
            "version": __version__,
            "trailer_names": sorted(EVENT_TRAILERS),
            "head": head,
            "commits": [e.commit for e in events],
            "authors": "".join(_AUTHORS[e.author] for e in events),
            "times": [e.at.isoformat() for e in events],
            "cases": [e.case_key for e in events],
            "trailers": [dict(e.trailers) for e in events],
            "acknowledges": "".join("1" if e.acknowledges else "0" for e in events),
        }
        temp: str | None = None
        try:
            data = orjson.dumps(doc)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".events-", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)
        except (OSError, orjson.JSONEncodeError) as exc:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            # orjson refuses text git gave undecoded (a commit's non-UTF-8 bytes): no cache then
            reason = getattr(exc, "strerror", None) or exc
            self._warn(f"cannot write the report cache {path} ({reason})")

    def _warn(self, message: str) -> None:
        if self.warning is None:
            self.warning = message


def _commit_id(value: object) -> str:
    if not isinstance(value, str) or len(value) not in (40, 64):
        raise ValueError("no commit id under 'head'")
    int(value, 16)  # ValueError when not hex
    return value


def _events(doc: dict[str, Any]) -> list[CommitEvent]:
    """The events of a cache document, each field checked for its type.

    The checks run over whole columns in C (``map``, ``set``): a Python loop per event would
    cost as much as the JSON parsing.
    """
    commits, authors, times = doc["commits"], doc["authors"], doc["times"]
    cases, trailers, acks = doc["cases"], doc["trailers"], doc["acknowledges"]
    if not (isinstance(authors, str) and isinstance(acks, str)):
        raise ValueError("'authors' and 'acknowledges' must be strings")
    columns = (commits, times, cases, trailers)
    if not all(isinstance(c, list) for c in columns):
        raise ValueError("'commits', 'times', 'cases' and 'trailers' must be lists")
    if len({len(c) for c in (*columns, authors, acks)}) > 1:
        raise ValueError("the event fields differ in length")
    if not (
        set(map(type, commits)) <= {str}
        and set(map(type, cases)) <= {str}
        and set(map(type, trailers)) <= {dict}
        and set(map(type, chain.from_iterable(map(dict.values, trailers)))) <= {str}
        and set(authors) <= set(_KINDS)
        and set(acks) <= {"0", "1"}
    ):
        raise ValueError("an event field has the wrong type")
    moments = list(map(datetime.fromisoformat, times))
    if None in set(map(attrgetter("tzinfo"), moments)):
        raise ValueError("an event time has no offset")
    return list(
        map(
            CommitEvent,
            commits,
            map(_KINDS.__getitem__, authors),
            moments,
            cases,
            trailers,
            map("1".__eq__, acks),
        )
    )
