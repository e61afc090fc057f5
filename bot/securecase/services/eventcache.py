"""The report's history, remembered between runs: the history of a cases repo up to one
commit, folded (:class:`~securecase.domain.metrics.History`: the gate's scans per day and
repository, each case's first acknowledgement, the retirements), so that a later ``securecase
report`` reads only the commits made since and loads no more than the days and cases the
history spans, never one record per commit.

One JSON file per cases repo and bot identity (events depend on which author is the bot) under
``<cache dir>/report-events/``, named by a hash of both: neither the repo's location (a URL
may hold a token) nor anything else but commit ids, case keys (and the repositories they
name), times, days, counts and the bot's trailers is written. A file of another package
version or format is ignored and replaced. A missing file is a cold run; one that cannot be
read or written gives a warning and a cold run (or no saved cache), never a failure. Writes
go to a temporary file renamed over the old one, so concurrent runs each leave a whole
file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from securecase import __version__
from securecase.domain.metrics import (
    EVENT_TRAILERS,
    AuthorKind,
    CommitEvent,
    GateTally,
    GateWhere,
    History,
)

SUBDIR = "report-events"
_FORMAT = 3
_AUTHORS = {AuthorKind.BOT: "b", AuthorKind.HUMAN: "h"}
_KINDS = {code: kind for kind, code in _AUTHORS.items()}


@dataclass(frozen=True, slots=True)
class CachedHistory:
    """The history of every commit up to and including ``head``."""

    head: str
    history: History


@dataclass
class EventCache:
    """The cached history of one cases repo (by ``repo_identity``) for one bot email.

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

    def load(self) -> CachedHistory | None:
        """The cached history, None when there is none usable."""
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
            head = _commit_id(doc.get("head"))
            return CachedHistory(head, History(_gate(doc["gate"]), tuple(_events(doc))))
        except (ValueError, TypeError, KeyError) as exc:
            self._warn(f"ignored the corrupt report cache {path} ({exc}); read all history")
            return None

    def save(self, head: str, history: History) -> None:
        """Remember ``history`` as that of every commit up to ``head`` (best effort)."""
        path = self.path
        if path is None:
            return
        events, gate = history.events, history.gate
        # One list per field rather than one record per event or tally: about half the time
        # to load.
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
            "gate": {
                "days": [where.day.isoformat() for where in gate],
                "repos": [where.repo for where in gate],
                "keys": [where.case_key for where in gate],
                "scans": [tally.scans for tally in gate.values()],
                "blocked": [tally.blocked for tally in gate.values()],
                "rules": [tally.rules for tally in gate.values()],
            },
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


def _gate(doc: object) -> dict[GateWhere, GateTally]:
    """The gate tallies of a cache document, each column checked for its type (as
    :func:`_events` does)."""
    if not isinstance(doc, dict):
        raise ValueError("'gate' must be an object")
    days, repos, keys = doc["days"], doc["repos"], doc["keys"]
    scans, blocked, rules = doc["scans"], doc["blocked"], doc["rules"]
    columns = (days, repos, keys, scans, blocked, rules)
    if not all(isinstance(c, list) for c in columns):
        raise ValueError("every 'gate' field must be a list")
    if len({len(c) for c in columns}) > 1:
        raise ValueError("the gate fields differ in length")
    if not (
        set(map(type, days)) <= {str}
        and set(map(type, repos)) <= {str, type(None)}
        and set(map(type, keys)) <= {str}
        and set(map(type, scans)) <= {int}
        and set(map(type, blocked)) <= {int}
        and set(map(type, rules)) <= {dict}
        and set(map(type, chain.from_iterable(map(dict.values, rules)))) <= {int}
    ):
        raise ValueError("a gate field has the wrong type")
    wheres = list(map(GateWhere, map(date.fromisoformat, days), repos, keys))
    return dict(zip(wheres, map(GateTally, scans, blocked, rules), strict=True))
