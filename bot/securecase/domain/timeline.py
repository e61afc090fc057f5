"""A case's timeline: one entry per commit that changed its case file, oldest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class AuthorKind(StrEnum):
    """Who made a commit: the bot (its configured identity) or a human."""

    BOT = "bot"
    HUMAN = "human"


class FileChange(StrEnum):
    """What a commit did to the case file."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One commit in a case's timeline, with the facts of the case after it.

    ``facts_from`` says where the facts came from: ``trailers`` (the bot's commit message) or
    ``case file`` (the file at that commit). ``problem`` is set when the file at that commit
    could not be read (a human broke it); the facts are then unknown (None).
    """

    commit: str
    time: str
    author_name: str
    author_email: str
    author_kind: AuthorKind
    subject: str
    change: FileChange
    scanned_commit: str | None
    decision: str | None
    status: str | None
    previous_status: str | None
    counts: Mapping[str, int] | None
    triage_changes: tuple[str, ...]
    stale: bool
    facts_from: str
    problem: str | None = None
    #: The sweep removed the (closed) case from the cases repo's tip in this commit.
    retired: bool = False

    @property
    def status_changed(self) -> bool:
        """True when this commit moved the case to another status."""
        return self.status is not None and self.status != self.previous_status


@dataclass(frozen=True, slots=True)
class CaseHistory:
    """A case's timeline, oldest commit first."""

    key: str
    path: str
    entries: tuple[HistoryEntry, ...]
