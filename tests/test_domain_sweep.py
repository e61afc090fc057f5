"""The sweep of one case as a pure function: closing, re-judging, SLA marks, events."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from conftest import vuln_finding
from securecase.domain.case import (
    Case,
    Closed,
    CloseReason,
    GateRecord,
    Latest,
    Seen,
    SlaMark,
    Status,
    Tracked,
    Triage,
    mark_sla,
)
from securecase.domain.findings import Severity
from securecase.domain.policy import Policy, load_policy
from securecase.domain.subjects import Provider, Subject
from securecase.domain.sweep import (
    EventKind,
    PullState,
    RepoState,
    close_reason,
    pending_events,
    record_notified,
    state_event_ids,
    sweep_case,
)

PR = Subject(Provider.GITHUB, "acme", "shop", pr=4, target_branch="main")
BRANCH = Subject(Provider.GITHUB, "acme", "shop", branch="feature/x")
NOW = "2027-01-25T00:00:00Z"
TODAY = date(2027, 1, 25)
POLICY = """
version: 1
rules:
  - id: no-high
    block: {severity_at_least: HIGH}
  - id: old-medium
    block: {severity_at_least: MEDIUM, age_days_over: 60}
exceptions:
  - id: EXC-1
    match: {advisory: CVE-2024-0001}
    reason: not reachable
    approved_by: "@acme/security"
    expires: 2027-01-20
sla_days: {HIGH: 30, MEDIUM: 90}
"""


def case(subject: Subject, *tracked: Tracked, decision: str = "pass") -> Case:
    return Case(
        subject=subject,
        status=Status.NEW,
        triage=Triage(),
        latest=Latest(commit="c1"),
        gate=GateRecord(mode="pr_gate", decision=decision, gate=decision == "block"),
        sources={},
        findings=tracked,
        resolved=(),
        created_at="2027-01-01T00:00:00Z",
        updated_at="2027-01-01T00:00:00Z",
    )


def seen(days_ago: int) -> Seen:
    return Seen("c1", f"{(TODAY - timedelta(days=days_ago)).isoformat()}T10:00:00Z")


def policy() -> Policy:
    return load_policy(POLICY.encode(), origin="policy.yaml")


def pulls(**states: PullState) -> RepoState:
    return RepoState(pulls={s.number: s for s in states.values()}, branches=None)


@pytest.mark.parametrize(
    ("pull", "reason"),
    [
        (
            PullState(4, open=False, merged=True, closed_at="2027-01-24T00:00:00Z", head_sha="h"),
            "merged",
        ),
        (PullState(4, open=False, merged=False, closed_at=None, head_sha="h"), "closed"),
        (PullState(4, open=True, merged=False, closed_at=None, head_sha="h"), None),
    ],
)
def test_a_pull_request_case_closes_with_its_pull_request(
    pull: PullState, reason: str | None
) -> None:
    found = close_reason(case(PR), pulls(p=pull), now=NOW)
    assert (found.reason.value if found else None) == reason
    if found is not None:
        assert found.at == (pull.closed_at or NOW)


def test_a_branch_case_closes_when_its_branch_is_gone_and_unknown_states_close_nothing() -> None:
    present = RepoState(pulls=None, branches=frozenset({"main", "feature/x"}))
    gone = RepoState(pulls=None, branches=frozenset({"main"}))
    assert close_reason(case(BRANCH), present, now=NOW) is None
    assert close_reason(case(BRANCH), gone, now=NOW) == Closed(CloseReason.BRANCH_DELETED, NOW)
    assert close_reason(case(BRANCH), None, now=NOW) is None
    assert close_reason(case(PR), RepoState(pulls={}, branches=None), now=NOW) is None


def test_an_expired_exception_flips_the_decision_and_names_itself() -> None:
    excepted = Tracked(vuln_finding(1), seen(3))
    before = case(PR, excepted)
    swept = sweep_case(before, policy(), today=TODAY, now=NOW, state=None, baseline=None)
    assert swept.changed and swept.decision_changed
    assert swept.case.gate.decision == "block" and swept.case.gate.rules == ("no-high",)
    assert "exception EXC-1 expired on 2027-01-20" in swept.case.gate.reasons[0]
    assert swept.case.updated_at == NOW
    assert [e.kind for e in swept.events] == [EventKind.BLOCKED]


def test_age_rules_and_sla_marks_count_days_since_first_seen() -> None:
    medium = Tracked(vuln_finding(2, "MEDIUM"), seen(95))
    swept = sweep_case(
        case(BRANCH, medium), policy(), today=TODAY, now=NOW, state=None, baseline=None
    )
    assert swept.case.gate.rules == ("old-medium",)
    [mark] = [t.sla for t in swept.case.findings]
    assert mark == SlaMark((TODAY - timedelta(days=5)).isoformat(), True)
    assert [b.severity for b in swept.sla_breaches] == [Severity.MEDIUM]


def test_an_unchanged_case_is_left_as_it_is() -> None:
    fresh = Tracked(vuln_finding(3, "LOW"), seen(1))
    before = case(BRANCH, fresh)
    swept = sweep_case(before, policy(), today=TODAY, now=NOW, state=None, baseline=None)
    assert not swept.changed and swept.case is before and swept.events == ()


def test_sla_clock_starts_where_the_target_branch_first_saw_the_finding() -> None:
    finding = vuln_finding(5)
    pr_case = case(PR, Tracked(finding, seen(1)))
    marked = mark_sla(
        pr_case,
        {Severity.HIGH: 30},
        today=TODAY,
        known_since={finding.id: seen(40).at},
    )
    assert marked.findings[0].sla == SlaMark((TODAY - timedelta(days=10)).isoformat(), True)


def test_events_are_pending_until_recorded_and_stale_ids_are_dropped() -> None:
    blocked = case(PR, Tracked(vuln_finding(6), seen(1)), decision="block")
    blocked = replace(blocked, gate=replace(blocked.gate, rules=("no-high",)))
    [event] = pending_events(blocked, None, today=TODAY)
    current = state_event_ids(blocked, None, today=TODAY)
    noted = record_notified(blocked, {event.id}, current=current)
    assert pending_events(noted, None, today=TODAY) == ()
    # Back to pass: the block id no longer describes the case and is dropped when recorded.
    passing = replace(noted, gate=GateRecord(mode="pr_gate", decision="pass", gate=False))
    assert (
        record_notified(passing, (), current=state_event_ids(passing, None, today=TODAY)).notified
        == ()
    )


def test_a_closed_case_has_only_its_closing_event() -> None:
    closed = replace(
        case(PR, Tracked(vuln_finding(7), seen(1)), decision="block"),
        status=Status.CLOSED,
        closed=Closed(CloseReason.MERGED, NOW),
    )
    assert [e.kind for e in pending_events(closed, None, today=TODAY)] == [EventKind.CLOSED]


def test_stable_until_is_the_next_day_time_can_change_the_judgement() -> None:
    from securecase.domain.sweep import stable_until

    excepted = Tracked(vuln_finding(1), seen(3))  # EXC-1 expires 2027-01-20
    medium = Tracked(vuln_finding(2, "MEDIUM"), seen(10))  # age rule: 60 days; SLA: 90
    on_jan_1 = date(2027, 1, 1)
    assert stable_until(case(PR, excepted), policy(), baseline=None, today=on_jan_1) == date(
        2027, 1, 6
    )  # 14 days before the expiry: the warning starts
    assert stable_until(case(PR, excepted), policy(), baseline=None, today=date(2027, 1, 6)) == (
        date(2027, 1, 21)
    )
    first = TODAY - timedelta(days=10)
    assert stable_until(case(BRANCH, medium), policy(), baseline=None, today=TODAY) == (
        first + timedelta(days=61)
    )
    assert stable_until(case(BRANCH), policy(), baseline=None, today=TODAY) is None
