"""Security posture metrics: pure functions of the cases at HEAD, the history's commits and a
window.

Nothing here reads git or the clock: the caller gathers the cases, one :class:`CommitEvent`
per commit and case, ``now`` and the window, and gets plain data back (see
``services/report.py``). Times in case files are ISO 8601 strings; they are compared as
aware datetimes (a time without an offset is UTC).
"""

from __future__ import annotations

import functools
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from securecase.domain.case import (
    Case,
    CaseHeader,
    Status,
    Tracked,
    distinct_findings,
    severity_counts,
)
from securecase.domain.findings import SEVERITIES_WORST_FIRST, Severity
from securecase.domain.policy.evaluate import EXPIRY_WARNING_DAYS, glob_match
from securecase.domain.policy.model import PolicyException
from securecase.domain.subjects import parse_key
from securecase.errors import SecurecaseError

#: Blocking rules listed in the gate panel.
TOP_RULES = 10


class AuthorKind(StrEnum):
    """Who made a commit: the bot (its configured identity) or a human."""

    BOT = "bot"
    HUMAN = "human"


#: The bot's trailers the metrics read (lower-case, without the ``Securecase-`` prefix). An
#: event carries no others: tens of thousands of events are kept between runs. ``retired``
#: marks the sweep's commit that removed a closed case from the tip (its case is read from
#: history, so retiring changes no metric).
EVENT_TRAILERS = frozenset({"decision", "retired", "rules", "stale", "sweep"})


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """One commit's effect on one case, as the history tells it.

    ``trailers`` are the bot's ``Securecase-*`` trailers named in :data:`EVENT_TRAILERS`, by
    lower-case name without the prefix (empty for a human commit: a human's trailers are only
    text). ``acknowledges`` is true for a commit that changed the case's status or triage
    fields (read from the case file).
    """

    commit: str
    author: AuthorKind
    at: datetime
    case_key: str
    trailers: Mapping[str, str] = field(default_factory=dict)
    acknowledges: bool = False


@dataclass(frozen=True, slots=True)
class Window:
    """The days a report covers, both ends included (UTC)."""

    since: date
    until: date
    #: The first moment of the window and the first one after it (set from the days: asked
    #: for once per event and finding).
    start: datetime = field(init=False, compare=False, repr=False)
    end: datetime = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _midnight(self.since))
        object.__setattr__(self, "end", _midnight(self.until + timedelta(days=1)))

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


def _midnight(day: date) -> datetime:
    """The start of ``day`` in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Spread:
    """Mean and median of a set of durations (None when there are none) and how many."""

    mean: float | None
    median: float | None
    count: int


@dataclass(frozen=True, slots=True)
class RepoLine:
    repo: str
    open_cases: int
    open_findings: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class WeekLine:
    week: str  # ISO week, 2026-W49
    appeared: int
    fixed: int


@dataclass(frozen=True, slots=True)
class SlaLine:
    overdue: int
    resolved_within_sla_pct: float | None
    #: Findings resolved in the window whose severity has an SLA (the percentage's base).
    resolved_with_sla: int


@dataclass(frozen=True, slots=True)
class ExceptionLine:
    active: int
    expiring: int
    expired: int


@dataclass(frozen=True, slots=True)
class GateLine:
    pr_scans: int
    blocked: int
    block_rate: float | None
    top_rules: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ExposureLine:
    advisory: str
    package: str
    repos: int
    cases: int


@dataclass(frozen=True, slots=True)
class CaseLine:
    """One case in the dashboard's table."""

    key: str
    repo: str
    status: str
    decision: str
    counts: Mapping[str, int]
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Metrics:
    """Everything ``securecase report`` shows."""

    window: Window
    now: datetime
    open_cases: int
    open_findings: Mapping[str, int]
    by_repo: tuple[RepoLine, ...]
    by_source: Mapping[str, int]
    by_kind: Mapping[str, int]
    weekly: tuple[WeekLine, ...]
    mttr_days: Mapping[str, Spread]
    mtta_hours: Spread
    sla: SlaLine
    exceptions: ExceptionLine
    gate: GateLine
    exposure: tuple[ExposureLine, ...]
    cases: tuple[CaseLine, ...]


@functools.lru_cache(maxsize=4096)
def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time from a case file as an aware datetime; None when absent or not a time.

    Remembered: a scan's findings share its time, and each finding's times are asked for by
    several metrics."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def repo_selected(patterns: Sequence[str], slug: str) -> bool:
    """Whether ``org/name`` matches one of the ``--repo`` globs (any, when none; any case)."""
    return not patterns or any(glob_match(p.lower(), slug.lower()) for p in patterns)


def acknowledges(before: Case | CaseHeader | None, after: Case | CaseHeader | None) -> bool:
    """True when a commit moved the case to another status or edited its triage fields."""
    if before is None or after is None:
        return False
    return before.status != after.status or before.triage != after.triage


@dataclass(frozen=True, slots=True)
class GateWhere:
    """Where pull request scans are tallied: a UTC day and the repository a case key names
    (``repo``; None for a key that does not parse, then tallied by the key itself)."""

    day: date
    repo: str | None
    case_key: str = ""

    @property
    def sort_key(self) -> tuple[date, str, str]:
        return self.day, self.repo or "", self.case_key


@dataclass(frozen=True, slots=True)
class GateTally:
    """The pull request scans the bot recorded at one :class:`GateWhere`."""

    scans: int
    blocked: int
    #: Blocking rule -> blocked scans it was among the rules of.
    rules: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class History:
    """What the metrics (and the report's reading of retired cases) need of a history's
    events, folded so that it grows with days and cases, not commits: the gate's scans
    tallied per UTC day and repository, and the events still needed one by one (each case's
    first acknowledgement, every retirement), in ``git log`` order. Built by
    :func:`fold_history`; the fold of two stretches of history is the fold of both."""

    gate: Mapping[GateWhere, GateTally] = field(default_factory=dict)
    events: tuple[CommitEvent, ...] = ()


def fold_history(events: Iterable[CommitEvent], older: History | None = None) -> History:
    """Fold ``events`` (``git log`` order: newest first) onto ``older``, the history of the
    commits before them (None: none)."""
    # By plain tuple while folding (a dataclass's hash runs in Python): [scans, blocked, rules]
    gate: dict[tuple[date, str | None, str], list[Any]] = {}
    slugs: dict[str, str | None] = {}
    kept: list[CommitEvent] = []
    for event in events:
        trailers = event.trailers
        if event.author is AuthorKind.HUMAN:
            if event.acknowledges:
                kept.append(event)
            continue
        if "retired" in trailers:
            kept.append(event)
        if "decision" not in trailers or trailers.get("stale") == "true" or "sweep" in trailers:
            continue  # late scans and upkeep commits are not gate runs
        key = event.case_key
        if "::PR::" not in key:
            continue
        if key not in slugs:
            slugs[key] = _key_slug(key)
        repo = slugs[key]
        where = (event.at.astimezone(UTC).date(), repo, "" if repo is not None else key)
        tally = gate.get(where)
        if tally is None:
            tally = gate[where] = [0, 0, Counter()]
        tally[0] += 1
        if trailers["decision"] == "block":
            tally[1] += 1
            tally[2].update(set(trailers.get("rules", "").split()))
    folded = History(
        {GateWhere(*where): GateTally(n, b, dict(rules)) for where, (n, b, rules) in gate.items()},
        tuple(kept),
    )
    return combine_histories([folded] if older is None else [folded, older])


def combine_histories(parts: Sequence[History]) -> History:
    """One history of several (newest first: stretches of one history, or the histories of
    several cases repos): scans added up, each case's earliest acknowledgement kept."""
    scans: Counter[GateWhere] = Counter()
    blocked: Counter[GateWhere] = Counter()
    rules: dict[GateWhere, Counter[str]] = {}
    for part in parts:
        for where, tally in part.gate.items():
            scans[where] += tally.scans
            blocked[where] += tally.blocked
            rules.setdefault(where, Counter()).update(tally.rules)
    kept = [event for part in parts for event in part.events]
    first = {id(e) for e in _first_acknowledgements(kept).values()}
    return History(
        gate={
            where: GateTally(n, blocked[where], dict(sorted(rules[where].items())))
            for where, n in sorted(scans.items(), key=lambda item: item[0].sort_key)
        },
        events=tuple(e for e in kept if e.author is AuthorKind.BOT or id(e) in first),
    )


@dataclass(frozen=True, slots=True)
class FindingTimes:
    """What the metrics read of one tracked finding the scanner did not suppress."""

    severity: Severity
    first_seen: str
    resolved: str | None
    #: A policy exception covers it (shown, not counted, not overdue).
    excepted: bool


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the metrics read of one case, nothing more: its header, the tallies of its active
    findings and the times of every finding it tracks (suppressed ones left out: they never
    count). A function of the case's two files alone, so it can be kept between runs by
    their blob ids; built by :func:`case_facts`."""

    key: str
    slug: str
    status: Status
    decision: str
    created_at: str
    updated_at: str
    #: Active findings, cross-scanner duplicates left out, by severity (every severity).
    counts: Mapping[str, int]
    #: Active findings by source (duplicates across scanners kept: each source found it).
    sources: Mapping[str, int]
    #: Active findings, duplicates left out, by kind.
    kinds: Mapping[str, int]
    #: (advisory, package name) of every active finding in a package, once each.
    exposure: tuple[tuple[str, str], ...]
    #: Open findings (``case.findings``) and resolved ones (``case.resolved``).
    findings: tuple[FindingTimes, ...]
    resolved: tuple[FindingTimes, ...]

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN_STATUSES


# Asked of every case several times: a set lookup costs a fraction of ``Status.coarse``.
_OPEN_STATUSES = frozenset(s for s in Status if s.coarse == "OPEN")
_STATUS_TEXT = {s: s.value for s in Status}


def case_facts(case: Case) -> CaseFacts:
    """The facts the metrics read of ``case`` (kept in the parse cache: a change of what they
    hold bumps ``storage.parsecache.ENTRY_FORMAT``)."""
    active = case.active
    distinct = distinct_findings(active)
    return CaseFacts(
        key=case.key,
        slug=case.subject.slug,
        status=case.status,
        decision=case.gate.decision,
        created_at=case.created_at,
        updated_at=case.updated_at,
        counts=severity_counts(distinct),
        sources=dict(Counter(f.source for f in active)),
        kinds=dict(Counter(f.kind.value for f in distinct)),
        exposure=tuple(
            sorted({(f.advisory, f.package.name) for f in active if f.package is not None})
        ),
        findings=_times(case.findings),
        resolved=_times(case.resolved),
    )


def _times(tracked: Iterable[Tracked]) -> tuple[FindingTimes, ...]:
    return tuple(
        FindingTimes(
            t.finding.severity,
            t.first_seen.at,
            t.resolved.at if t.resolved else None,
            t.exception is not None,
        )
        for t in tracked
        if not t.finding.suppressed
    )


def compute(
    cases: Iterable[CaseFacts],
    events: History | Iterable[CommitEvent],
    *,
    window: Window,
    now: datetime,
    repos: Sequence[str] = (),
    sla_days: Mapping[Severity, int] | None = None,
    exceptions: Sequence[PolicyException] = (),
    sla_by_case: Mapping[str, Mapping[Severity, int]] | None = None,
) -> Metrics:
    """All metrics for the cases (at HEAD, see :func:`case_facts`) and commits (as events, or
    folded by :func:`fold_history`) of the selected repositories.

    ``sla_by_case`` (by case key) overrides ``sla_days`` for the cases it names: cases read
    from several cases repos (shards) each keep their own policy's SLA.
    """
    chosen = sorted((c for c in cases if repo_selected(repos, c.slug)), key=lambda c: c.key)
    open_cases = [c for c in chosen if c.is_open]
    history = events if isinstance(events, History) else fold_history(events)
    if repos:
        slugs = {c.key: c.slug for c in chosen}
        history = _selected(history, repos, slugs)
    return Metrics(
        window=window,
        now=now,
        open_cases=len(open_cases),
        open_findings=_sum_counts(c.counts for c in open_cases),
        by_repo=_by_repo(chosen),
        by_source=_tally_sum(c.sources for c in open_cases),
        by_kind=_tally_sum(c.kinds for c in open_cases),
        weekly=weekly(chosen, window),
        mttr_days=mttr_days(chosen, window),
        mtta_hours=mtta_hours(chosen, history, window),
        sla=sla(chosen, now=now, window=window, sla_days=sla_days or {}, sla_by_case=sla_by_case),
        exceptions=exception_counts(exceptions, now.astimezone(UTC).date()),
        gate=gate(history, window),
        exposure=exposure(open_cases),
        cases=tuple(_case_line(c) for c in chosen),
    )


def _slug(key: str, known: Mapping[str, str]) -> str:
    if key in known:
        return known[key]
    return _key_slug(key) or ""  # a key in a commit message that does not parse selects nothing


def _key_slug(key: str) -> str | None:
    """The ``org/name`` a case key names, None when it does not parse."""
    try:
        return parse_key(key).slug
    except SecurecaseError:
        return None


def _selected(history: History, repos: Sequence[str], slugs: Mapping[str, str]) -> History:
    """The part of ``history`` about the repositories ``repos`` selects (``slugs``: the
    selected cases' repositories by key, which a key that does not parse falls back to)."""
    return History(
        gate={
            where: tally
            for where, tally in history.gate.items()
            if repo_selected(
                repos, where.repo if where.repo is not None else _slug(where.case_key, slugs)
            )
        },
        events=tuple(e for e in history.events if repo_selected(repos, _slug(e.case_key, slugs))),
    )


def _tally_sum(tallies: Iterable[Mapping[str, int]]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for tally in tallies:  # a plain loop: Counter.update checks each tally's type first
        for name, n in tally.items():
            counted[name] = counted.get(name, 0) + n
    return dict(sorted(counted.items(), key=lambda item: (-item[1], item[0])))


def _sum_counts(all_counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = {s.count_key: 0 for s in SEVERITIES_WORST_FIRST}
    for counts in all_counts:
        for name, n in counts.items():
            total[name] += n
    return total


def _by_repo(cases: Sequence[CaseFacts]) -> tuple[RepoLine, ...]:
    grouped: dict[str, list[CaseFacts]] = {}
    for case in cases:
        grouped.setdefault(case.slug, []).append(case)
    lines = []
    for slug, members in grouped.items():
        still_open = [c for c in members if c.is_open]
        lines.append(RepoLine(slug, len(still_open), _sum_counts(c.counts for c in still_open)))
    return tuple(
        sorted(lines, key=lambda r: (-sum(r.open_findings.values()), -r.open_cases, r.repo))
    )


def iso_week(moment: datetime) -> str:
    """``2026-W49`` for a moment (its UTC day)."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def weekly(cases: Sequence[CaseFacts], window: Window) -> tuple[WeekLine, ...]:
    """Findings first seen and findings resolved per ISO week of the window (every week
    listed, oldest first)."""
    appeared: Counter[str] = Counter()
    fixed: Counter[str] = Counter()
    for case in cases:
        for tracked in (*case.findings, *case.resolved):
            first = parse_time(tracked.first_seen)
            if window.holds(first) and first is not None:
                appeared[iso_week(first)] += 1
            resolved = parse_time(tracked.resolved)
            if window.holds(resolved) and resolved is not None:
                fixed[iso_week(resolved)] += 1
    weeks: list[str] = []
    day = window.start
    while day < window.end:
        week = iso_week(day)
        if week not in weeks:
            weeks.append(week)
        day += timedelta(days=1)
    return tuple(WeekLine(w, appeared[w], fixed[w]) for w in weeks)


def spread(values: Sequence[float]) -> Spread:
    """Mean and median rounded to two decimals, with the count."""
    if not values:
        return Spread(None, None, 0)
    return Spread(
        round(statistics.fmean(values), 2), round(statistics.median(values), 2), len(values)
    )


def mttr_days(cases: Sequence[CaseFacts], window: Window) -> dict[str, Spread]:
    """Per severity: days from first seen to resolved, over findings resolved in the window."""
    days: dict[Severity, list[float]] = {s: [] for s in SEVERITIES_WORST_FIRST}
    for case in cases:
        for tracked in case.resolved:
            first = parse_time(tracked.first_seen)
            resolved = parse_time(tracked.resolved)
            if first is None or resolved is None or not window.holds(resolved):
                continue
            days[tracked.severity].append((resolved - first).total_seconds() / 86400)
    return {s.count_key: spread(values) for s, values in days.items()}


def _first_acknowledgements(events: Iterable[CommitEvent]) -> dict[str, CommitEvent]:
    """Per case key, its earliest human commit that changed its status or triage."""
    first: dict[str, CommitEvent] = {}
    for event in events:
        if event.author is AuthorKind.HUMAN and event.acknowledges:
            seen = first.get(event.case_key)
            if seen is None or event.at < seen.at:
                first[event.case_key] = event
    return first


def mtta_hours(
    cases: Sequence[CaseFacts], events: History | Iterable[CommitEvent], window: Window
) -> Spread:
    """Hours from a case's creation to its first human commit that changed its status or
    triage, over cases acknowledged within the window."""
    history = events if isinstance(events, History) else fold_history(events)
    first_ack = {key: e.at for key, e in _first_acknowledgements(history.events).items()}
    hours = []
    for case in cases:
        acked = first_ack.get(case.key)
        created = parse_time(case.created_at)
        if acked is None or created is None or not window.holds(acked):
            continue
        hours.append(max(0.0, (acked - created).total_seconds() / 3600))
    return spread(hours)


def _due(severity: Severity, first_seen: str, sla_days: Mapping[Severity, int]) -> datetime | None:
    """When a finding's SLA runs out: first seen plus its severity's days (None: no SLA)."""
    limit = sla_days.get(severity)
    first = parse_time(first_seen)
    if limit is None or first is None:
        return None
    return first + timedelta(days=limit)


def sla(
    cases: Sequence[CaseFacts],
    *,
    now: datetime,
    window: Window,
    sla_days: Mapping[Severity, int],
    sla_by_case: Mapping[str, Mapping[Severity, int]] | None = None,
) -> SlaLine:
    """Open findings past their due time now, and the share of findings resolved in the
    window that were resolved by their due time (``sla_by_case``: see :func:`compute`)."""
    overdue = 0
    within = resolved_with_sla = 0
    for case in cases:
        days = sla_by_case.get(case.key, sla_days) if sla_by_case else sla_days
        if case.is_open:
            for tracked in case.findings:
                if tracked.excepted:
                    continue
                due = _due(tracked.severity, tracked.first_seen, days)
                overdue += due is not None and now > due
        for tracked in case.resolved:
            resolved = parse_time(tracked.resolved)
            due = _due(tracked.severity, tracked.first_seen, days)
            if due is None or resolved is None or not window.holds(resolved):
                continue
            resolved_with_sla += 1
            within += resolved <= due
    pct = round(100 * within / resolved_with_sla, 1) if resolved_with_sla else None
    return SlaLine(overdue, pct, resolved_with_sla)


def exception_counts(exceptions: Sequence[PolicyException], today: date) -> ExceptionLine:
    """The policy's exceptions: still valid, valid but ending within 14 days, expired."""
    horizon = today + timedelta(days=EXPIRY_WARNING_DAYS)
    active = [e for e in exceptions if not e.expired(today)]
    return ExceptionLine(
        active=len(active),
        expiring=sum(e.expires <= horizon for e in active),
        expired=len(exceptions) - len(active),
    )


def gate(events: History | Iterable[CommitEvent], window: Window) -> GateLine:
    """Pull request scans the bot recorded in the window, how many the policy blocked and the
    rules that blocked them (from the ``Securecase-Rules`` trailer)."""
    history = events if isinstance(events, History) else fold_history(events)
    scans = blocked = 0
    rules: Counter[str] = Counter()
    for where, tally in history.gate.items():
        if window.since <= where.day <= window.until:
            scans += tally.scans
            blocked += tally.blocked
            rules.update(tally.rules)
    top = sorted(rules.items(), key=lambda item: (-item[1], item[0]))[:TOP_RULES]
    rate = round(blocked / scans, 4) if scans else None
    return GateLine(scans, blocked, rate, tuple(top))


def exposure(open_cases: Sequence[CaseFacts]) -> tuple[ExposureLine, ...]:
    """Advisory + package pairs by the number of repositories (then cases) where an active
    finding has them, in open cases."""
    repos: dict[tuple[str, str], set[str]] = {}
    keys: dict[tuple[str, str], set[str]] = {}
    for case in open_cases:
        for pair in case.exposure:
            repos.setdefault(pair, set()).add(case.slug)
            keys.setdefault(pair, set()).add(case.key)
    lines = [ExposureLine(a, p, len(repos[(a, p)]), len(keys[(a, p)])) for a, p in repos]
    return tuple(sorted(lines, key=lambda x: (-x.repos, -x.cases, x.advisory, x.package)))


def _case_line(case: CaseFacts) -> CaseLine:
    return CaseLine(
        key=case.key,
        repo=case.slug,
        status=_STATUS_TEXT[case.status],
        decision=case.decision,
        counts=case.counts,
        created_at=case.created_at,
        updated_at=case.updated_at,
    )
