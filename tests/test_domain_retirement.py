"""When a closed case leaves the tip, as a pure function (``domain.retirement``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from securecase.domain.case import Case, Closed, CloseReason, Status
from securecase.domain.retirement import idle_since, retirement
from test_domain_sweep import PR, case

TODAY = date(2027, 3, 1)


def closed(at: str = "2027-01-20T08:00:00Z", updated: str = "2027-01-21T00:00:00Z") -> Case:
    return replace(
        case(PR),
        status=Status.CLOSED,
        closed=Closed(CloseReason.MERGED, at),
        updated_at=updated,
    )


def test_the_grace_counts_from_the_latest_of_closing_bot_write_and_a_persons_change() -> None:
    assert idle_since(closed(), None) == datetime(2027, 1, 21, tzinfo=UTC)
    # A pull request closed long ago: the sweep that closed the case starts the grace.
    late = closed(at="2026-06-01T00:00:00Z", updated="2027-02-20T00:00:00Z")
    assert idle_since(late, None) == datetime(2027, 2, 20, tzinfo=UTC)
    edit = datetime(2027, 2, 10, 9, tzinfo=UTC)
    assert idle_since(closed(), edit) == edit
    assert idle_since(closed(), datetime(2027, 1, 1, tzinfo=UTC)) == datetime(
        2027, 1, 21, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("days", "edit", "expected"),
    [
        (30, None, 39),  # 2027-01-21 -> 2027-03-01
        (39, None, 39),  # exactly the grace: due
        (40, None, None),
        (30, datetime(2027, 2, 1, tzinfo=UTC), None),  # 28 days since a person's edit
        (28, datetime(2027, 2, 1, tzinfo=UTC), 28),
        (0, None, 39),
    ],
)
def test_a_closed_case_retires_once_left_alone_for_the_grace(
    days: int, edit: datetime | None, expected: int | None
) -> None:
    found = retirement(closed(), days=days, today=TODAY, last_human_change=edit)
    assert (found.idle_days if found else None) == expected
    if found is not None:
        assert found.case == closed()


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.CLOSED])
def test_a_case_that_is_not_closed_never_retires(status: Status) -> None:
    old = replace(closed(at="2020-01-01T00:00:00Z", updated="2020-01-01T00:00:00Z"), status=status)
    assert retirement(old, days=0, today=TODAY, last_human_change=None) is None


def test_unnotified_or_unreadable_closings_stay() -> None:
    assert (
        retirement(closed(), days=1, today=TODAY, last_human_change=None, unnotified=True) is None
    )
    broken = closed(at="yesterday")
    assert retirement(broken, days=0, today=TODAY, last_human_change=None) is None
    no_closing = replace(closed(), closed=None)
    assert retirement(no_closing, days=0, today=TODAY, last_human_change=None) is None
