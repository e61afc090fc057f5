"""The policy as typed data, after loading and validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from securecase.domain.findings import Kind, Severity


class Mode(StrEnum):
    """``ci`` reports only and never fails; ``pr_gate`` fails when a rule blocks."""

    CI = "ci"
    PR_GATE = "pr_gate"


class Event(StrEnum):
    """What kind of scan a subject is: a pull request or a branch push."""

    PULL_REQUEST = "pull_request"
    PUSH = "push"


@dataclass(frozen=True, slots=True)
class When:
    """Which subjects a rule applies to; an empty tuple means "any"."""

    events: tuple[Event, ...] = ()
    target_branches: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Block:
    """Which findings a rule counts."""

    severity_at_least: Severity | None = None
    sources: tuple[str, ...] = ()
    kinds: tuple[Kind, ...] = ()
    fixable_only: bool = False
    #: Only findings absent from the target branch's case (pull requests with a baseline).
    new_only: bool = False
    cvss_at_least: float | None = None
    #: Only findings first seen more than this many days ago.
    age_days_over: int | None = None
    #: Only findings older than the policy's ``sla_days`` for their severity.
    sla_breached: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """Block when more than ``max_allowed`` findings selected by ``block`` are active."""

    id: str
    when: When
    block: Block
    max_allowed: int = 0
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ExceptionMatch:
    """Which findings an exception covers: every given field must match (at least one is).

    ``advisory`` (the finding's CVE/GHSA/check/rule id), ``package`` and ``fingerprint`` match
    exactly; ``path``, ``source`` and ``repos`` (``org/name`` of the case; case-insensitive)
    are globs.
    """

    advisory: str | None = None
    package: str | None = None
    path: str | None = None
    source: str | None = None
    repos: tuple[str, ...] = ()
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyException:
    """An approved, expiring exception. It applies up to and including ``expires`` (UTC)."""

    id: str
    match: ExceptionMatch
    reason: str
    approved_by: str
    expires: date

    def expired(self, today: date) -> bool:
        """True from the day after ``expires``: the last valid day is ``expires`` itself."""
        return today > self.expires


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy plus where it came from (path and git blob id, for the audit trail)."""

    mode: Mode
    rules: tuple[Rule, ...]
    origin: str
    blob: str
    exceptions: tuple[PolicyException, ...] = ()
    #: Days a finding of each severity may stay open before ``sla_breached`` selects it.
    sla_days: Mapping[Severity, int] = field(default_factory=dict)
