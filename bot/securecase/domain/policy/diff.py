"""What replacing one policy by another would do to the open cases (``policy diff``'s result)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from securecase.domain.policy.model import Mode


class Direction(StrEnum):
    """Which way a case's decision flips under the new policy."""

    NEW_BLOCK = "pass->block"
    UNBLOCK = "block->pass"
    STILL_BLOCKED = "block->block"  # blocked under both, for other reasons


@dataclass(frozen=True, slots=True)
class Flip:
    """A case whose decision differs between the two policies, and why on each side."""

    key: str
    path: str
    direction: Direction
    old_reasons: tuple[str, ...]
    new_reasons: tuple[str, ...]
    baseline: str | None  # key of the target branch's case judged against, if any


@dataclass(frozen=True, slots=True)
class ExceptionNote:
    """An exception of the new policy that is stale (matches nothing) or expired/expiring."""

    id: str
    state: str  # stale | expired | expiring
    detail: str


@dataclass(frozen=True, slots=True)
class PolicySide:
    """Where one side's policy came from."""

    origin: str
    blob: str
    mode: Mode


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """The impact of replacing ``old`` by ``new`` on the open cases, as of ``today``."""

    old: PolicySide
    new: PolicySide
    today: date
    cases_commit: str | None
    open_cases: int
    blocked_before: int
    blocked_after: int
    flips: tuple[Flip, ...]
    reasons_changed: tuple[Flip, ...]  # blocked under both, for other reasons
    exceptions: tuple[ExceptionNote, ...]
    #: Stale, expired or expiring exceptions of ``new`` that already were so under ``old``.
    exceptions_unchanged: tuple[ExceptionNote, ...] = ()

    @property
    def new_blocks(self) -> tuple[Flip, ...]:
        """Cases that pass today and would block under the new policy."""
        return tuple(f for f in self.flips if f.direction is Direction.NEW_BLOCK)

    @property
    def unblocked(self) -> tuple[Flip, ...]:
        """Cases that block today and would pass under the new policy."""
        return tuple(f for f in self.flips if f.direction is Direction.UNBLOCK)
