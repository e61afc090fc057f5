"""The scheduled upkeep of one case, as a pure function (``securecase sweep``).

Given a case that is not CLOSED, the cases repo's policy, today, and what GitHub says about
its pull request or branch, :func:`sweep_case` returns the case as it should now be stored and
what happened to it: closed (merged, closed, branch deleted), re-judged (expired exceptions,
``sla_days``, age rules), and the events still to be notified.

Events are derived from the case's state, each with a stable id, and ``Case.notified`` keeps
the ids already delivered; so a sweep that is retried, or run again, finds nothing new to send,
and an event whose delivery failed is found again by the next sweep.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum

from securecase.domain.case import (
    Case,
    Closed,
    CloseReason,
    ExceptionRef,
    Status,
    mark_findings,
    mark_sla,
)
from securecase.domain.findings import Severity
from securecase.domain.policy import Decision, Mode, Policy, evaluate_case
from securecase.domain.policy.evaluate import EXPIRY_WARNING_DAYS, covers
from securecase.domain.subjects import Subject


@dataclass(frozen=True, slots=True)
class PullState:
    """A pull request as the listing shows it: open or not, merged or not, head commit."""

    number: int
    open: bool
    merged: bool
    closed_at: str | None
    head_sha: str | None


@dataclass(frozen=True, slots=True)
class RepoState:
    """What one repository's listings said; None for a listing that was not made."""

    pulls: Mapping[int, PullState] | None
    branches: frozenset[str] | None


class EventKind(StrEnum):
    """What a notification is about."""

    CLOSED = "case_closed"
    BLOCKED = "decision_block"
    SLA_BREACHED = "sla_breached"
    EXCEPTION_EXPIRING = "exception_expiring"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to tell people once; ``id`` is unique within its case."""

    id: str
    kind: EventKind
    case_key: str
    text: str


@dataclass(frozen=True, slots=True)
class SlaBreach:
    """A finding that went past its SLA in this sweep."""

    finding: str
    severity: Severity
    due: str


@dataclass(frozen=True, slots=True)
class CaseSweep:
    """What the sweep does to one case.

    ``case`` is the case to store (``changed`` says whether it differs from the one read);
    ``decision`` is the re-judged verdict (None when the case was closed instead).
    """

    case: Case
    changed: bool
    closed: Closed | None
    decision_from: str | None
    decision: Decision | None
    sla_breaches: tuple[SlaBreach, ...]
    expiring: tuple[tuple[str, date], ...]
    events: tuple[Event, ...]
    what: tuple[str, ...]

    @property
    def decision_changed(self) -> bool:
        """True when the gate's decision (block/pass) is not the one the case had."""
        return self.decision is not None and self.decision.decision != self.decision_from


def close_reason(case: Case | Subject, state: RepoState | None, *, now: str) -> Closed | None:
    """Why the case closes, from the listings; None when it stays open or nothing is known.

    A pull request case closes when its pull request is closed (merged or not); a branch case
    when its branch is not among the repository's branches. A pull request the listing does
    not show (deleted, or beyond what was listed) leaves its case as it is.
    """
    if state is None:
        return None
    subject = case if isinstance(case, Subject) else case.subject
    if subject.is_pr:
        if state.pulls is None or subject.pr is None:
            return None
        pull = state.pulls.get(subject.pr)
        if pull is None or pull.open:
            return None
        reason = CloseReason.MERGED if pull.merged else CloseReason.CLOSED
        return Closed(reason, pull.closed_at or now)
    if state.branches is None or subject.branch is None or subject.branch in state.branches:
        return None
    return Closed(CloseReason.BRANCH_DELETED, now)


def rejudge(
    case: Case, policy: Policy, *, baseline: Case | None, today: date
) -> tuple[Case, Decision]:
    """The case judged again under ``policy`` on ``today``, with its marks brought up to date.

    The gate keeps the case's mode (an ingest may have overridden the policy's). A gate whose
    verdict, rules and reasons are unchanged is kept as it is, so a policy edit that changes
    nothing for this case does not rewrite it.
    """
    decision = evaluate_case(
        policy, case, baseline=baseline, today=today, mode=Mode(case.gate.mode)
    )
    gate = decision.gate_record(policy)
    old = case.gate
    if (old.decision, old.gate, old.rules, old.reasons) == (
        gate.decision,
        gate.gate,
        gate.rules,
        gate.reasons,
    ):
        gate = old
    marked = mark_findings(
        replace(case, gate=gate),
        new=decision.new if case.subject.is_pr else None,
        excepted={
            fid: ExceptionRef(exc.id, exc.expires.isoformat())
            for fid, exc in decision.excepted.items()
        },
    )
    known = {t.finding.id: t.first_seen.at for t in baseline.findings} if baseline else {}
    marked = mark_sla(marked, policy.sla_days, today=today, known_since=known)
    return marked, decision


def pending_events(case: Case, decision: Decision | None, *, today: date) -> tuple[Event, ...]:
    """The events the case's state calls for that ``case.notified`` does not hold yet.

    A closed case has one event (its closing); an open one: blocked, each finding past its
    SLA, each applied exception expiring within 14 days.
    """
    key = case.key
    found: list[Event] = []
    if case.closed is not None:
        closed = case.closed
        found.append(
            Event(
                f"closed:{closed.reason.value}:{closed.at}",
                EventKind.CLOSED,
                key,
                f"{key}: closed ({closed.reason.value.replace('_', ' ')})",
            )
        )
    else:
        if case.gate.decision == "block":
            rules = ",".join(case.gate.rules)
            why = "; ".join(case.gate.reasons) or "a policy rule blocks"
            found.append(Event(f"block:{rules}", EventKind.BLOCKED, key, f"{key}: blocks: {why}"))
        for tracked in case.findings:
            sla = tracked.sla
            if sla is not None and sla.breached:
                f = tracked.finding
                found.append(
                    Event(
                        f"sla:{f.id}:{sla.due}",
                        EventKind.SLA_BREACHED,
                        key,
                        f"{key}: {f.severity.value} {f.advisory} past its SLA (due {sla.due})",
                    )
                )
        if decision is not None:
            for use in decision.exceptions_expiring:
                day = use.expires.isoformat()
                left = (use.expires - today).days
                found.append(
                    Event(
                        f"expiring:{use.id}:{day}",
                        EventKind.EXCEPTION_EXPIRING,
                        key,
                        f"{key}: exception {use.id} expires on {day} "
                        f"(in {left} day{'s' if left != 1 else ''}), "
                        f"covering {len(use.findings)} finding(s)",
                    )
                )
    done = set(case.notified)
    return tuple(e for e in found if e.id not in done)


def sweep_case(
    case: Case,
    policy: Policy,
    *,
    today: date,
    now: str,
    state: RepoState | None,
    baseline: Case | None,
) -> CaseSweep:
    """Close, or else re-judge, one case that is not CLOSED (see the module docstring)."""
    closed = close_reason(case, state, now=now)
    if closed is not None:
        after = replace(case, status=Status.CLOSED, closed=closed, updated_at=now)
        what: tuple[str, ...] = (f"closed ({closed.reason.value.replace('_', ' ')})",)
        return CaseSweep(
            case=after,
            changed=True,
            closed=closed,
            decision_from=case.gate.decision,
            decision=None,
            sla_breaches=(),
            expiring=(),
            events=pending_events(after, None, today=today),
            what=what,
        )
    judged, decision = rejudge(case, policy, baseline=baseline, today=today)
    before_sla = {t.finding.id: t.sla for t in case.findings}
    breaches = tuple(
        SlaBreach(t.finding.id, t.finding.severity, t.sla.due)
        for t in judged.findings
        if t.sla is not None
        and t.sla.breached
        and not ((prior := before_sla.get(t.finding.id)) is not None and prior.breached)
    )
    what = _what_changed(case, judged, breaches)
    changed = bool(what)
    if changed:
        judged = replace(judged, updated_at=now)
    expiring = tuple((use.id, use.expires) for use in decision.exceptions_expiring)
    after = judged if changed else case
    return CaseSweep(
        case=after,
        changed=changed,
        closed=None,
        decision_from=case.gate.decision,
        decision=decision,
        sla_breaches=breaches,
        expiring=expiring,
        events=pending_events(after, decision, today=today),
        what=what,
    )


def record_notified(case: Case, delivered: Collection[str], *, current: Collection[str]) -> Case:
    """The case with the ``delivered`` event ids added to ``notified``.

    Ids that no longer describe the case's state (``current`` lists those that do, delivered
    before or not) are dropped, so a case that blocks again after passing is notified again.
    """
    keep = {i for i in case.notified if i in current}
    keep.update(i for i in delivered if i in current)
    notified = tuple(sorted(keep))
    return case if notified == case.notified else replace(case, notified=notified)


def state_event_ids(case: Case, decision: Decision | None, *, today: date) -> frozenset[str]:
    """Every event id the case's state calls for, notified already or not."""
    unmarked = replace(case, notified=())
    return frozenset(e.id for e in pending_events(unmarked, decision, today=today))


def _what_changed(before: Case, after: Case, breaches: tuple[SlaBreach, ...]) -> tuple[str, ...]:
    """Short phrases for the ``Securecase-Sweep`` trailer; empty when nothing changed."""
    what = []
    if before.gate.decision != after.gate.decision:
        what.append(f"decision {before.gate.decision} -> {after.gate.decision}")
    elif before.gate != after.gate:
        what.append("gate reasons updated")
    before_exc = {t.finding.id: t.exception for t in before.findings}
    lapsed = sorted(
        {
            ref.id
            for t in after.findings
            if (ref := before_exc.get(t.finding.id)) is not None and t.exception is None
        }
    )
    if lapsed:
        what.append("exception expired: " + ", ".join(lapsed))
    if breaches:
        what.append(f"{len(breaches)} finding(s) past SLA")
    if not what and after.findings != before.findings:
        what.append("finding marks updated")
    return tuple(what)


def stable_until(case: Case, policy: Policy, *, baseline: Case | None, today: date) -> date | None:
    """The first day after ``today`` on which judging the (unchanged) case could give another
    result or another event; None when time cannot change it.

    Everything time-dependent in a judgement is listed: the day each finding passes an
    ``age_days_over`` threshold or its ``sla_days``, and the days an exception covering it
    enters the 14-day warning window and expires. A sweep may skip a case whose file, target
    branch case and policy are the ones it judged before, until that day.
    """
    known = {t.finding.id: t.first_seen.at for t in baseline.findings} if baseline else {}
    ages = [r.block.age_days_over for r in policy.rules if r.block.age_days_over is not None]
    days: list[date] = []
    for tracked in case.findings:
        finding = tracked.finding
        since = min(tracked.first_seen.at, known.get(finding.id, tracked.first_seen.at))
        try:
            first = date.fromisoformat(since[:10])
        except ValueError:
            first = None
        if first is not None:
            days.extend(first + timedelta(days=n + 1) for n in ages)
            limit = policy.sla_days.get(finding.severity)
            if limit is not None:
                days.append(first + timedelta(days=limit + 1))
        for exc in policy.exceptions:
            if covers(exc.match, finding, case.subject):
                days.append(exc.expires - timedelta(days=EXPIRY_WARNING_DAYS))
                days.append(exc.expires + timedelta(days=1))
    later = [d for d in days if d > today]
    return min(later) if later else None
