"""The policy as typed data, after loading and validation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from securecase.models import Kind, Severity


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


@dataclass(frozen=True, slots=True)
class Rule:
    """Block when more than ``max_allowed`` findings selected by ``block`` are active."""

    id: str
    when: When
    block: Block
    max_allowed: int = 0
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy plus where it came from (path and git blob id, for the audit trail)."""

    mode: Mode
    rules: tuple[Rule, ...]
    origin: str
    blob: str
