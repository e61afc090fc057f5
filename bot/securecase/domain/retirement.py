"""When a closed case leaves the tip of the cases repo (``securecase sweep --retire-after``).

A case folder stays at the tip while people may still read or edit it; history keeps it for
ever. A case retires once it has been CLOSED and left alone for the grace period, counted
from the latest of its closing (the pull request's close time), the bot's last write to it
(``updated_at``: the sweep that closed it, so a pull request closed long ago still shows as
closed at the tip for a grace period) and the last change a person made to its folder: a
triage note written after the pull request merged keeps the case for another grace period.
An open case (any status but CLOSED) never retires, and neither does a case whose closing
has not been notified yet (when the sweep notifies), so the notice is never lost with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from securecase.domain.case import Case, Status

#: The default grace period, in days: a month to read and annotate a closed case at the tip.
RETIRE_AFTER_DAYS = 30


@dataclass(frozen=True, slots=True)
class Removal:
    """The commit that took a case folder off the tip: when (its author date, the sweep's
    clock) and whether it was the sweep's retirement (not, say, a person deleting it)."""

    commit: str
    at: str
    by_sweep: bool


@dataclass(frozen=True, slots=True)
class Retirement:
    """A case the sweep removes from the tip, and how many days it has been left alone."""

    case: Case
    idle_days: int


def idle_since(case: Case, last_human_change: datetime | None) -> datetime | None:
    """When the case was last touched by its closing, the bot or a person; None when not
    CLOSED (or a time of its is unreadable, which never retires it)."""
    if case.status is not Status.CLOSED or case.closed is None:
        return None
    moments = [_time(case.closed.at), _time(case.updated_at), last_human_change]
    if moments[0] is None or moments[1] is None:
        return None
    return max(m for m in moments if m is not None)


def _time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def retirement(
    case: Case,
    *,
    days: int,
    today: date,
    last_human_change: datetime | None,
    unnotified: bool = False,
) -> Retirement | None:
    """The case's retirement when it is due today, else None (see the module docstring).

    ``unnotified`` is true when the sweep notifies and the case's closing event has not gone
    out yet: it stays until it has.
    """
    if unnotified:
        return None
    since = idle_since(case, last_human_change)
    if since is None:
        return None
    idle = (today - since.astimezone(UTC).date()).days
    return Retirement(case, idle) if idle >= days else None
