"""Time, passed in: the core never reads the clock itself, so tests can fix it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as an aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that always tells the same time (tests, replays)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def iso(moment: datetime) -> str:
    """UTC timestamp with second precision, as stored in case files: 2026-11-23T07:48:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_from_env(environ: Mapping[str, str]) -> Clock:
    """The system clock, or the fixed moment in ``SECURECASE_NOW`` (replays and tests).

    Raises UsageError when the variable is set but is not an ISO 8601 time.
    """
    value = environ.get("SECURECASE_NOW")
    if not value:
        return SystemClock()
    from securecase.errors import UsageError

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"SECURECASE_NOW={value!r} is not an ISO 8601 time",
            hint="for example 2027-02-01T00:00:00Z, or unset it to use the system clock",
        ) from None
    return FixedClock(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
