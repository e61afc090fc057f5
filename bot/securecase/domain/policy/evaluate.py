"""Policy evaluation: a pure function of (policy, case, baseline case, today).

No I/O and no clock here (``today`` is passed in), so every decision can be replayed and
tested in isolation. :func:`evaluate_case` is the one entry point the rest of securecase uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from securecase.domain.case import Case, GateRecord, Status, distinct_findings
from securecase.domain.findings import Finding, Severity
from securecase.domain.policy.model import (
    Block,
    Event,
    ExceptionMatch,
    Mode,
    Policy,
    PolicyException,
    Rule,
    When,
)
from securecase.domain.subjects import Subject

#: An applied exception expiring within this many days is warned about.
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """How one rule judged the subject: whether it applied, what it counted, if it blocks."""

    rule: Rule
    applies: bool
    matched: tuple[str, ...]
    blocks: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class ExceptionUse:
    """One policy exception as it bears on a case: the active findings it covers.

    For an expired exception, ``findings`` are those it would still cover (and no longer does).
    """

    id: str
    expires: date
    findings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict. ``gate`` is true exactly when some rule blocks, whatever the mode.

    ``outcomes`` count only findings no exception covers. ``new`` holds the ids of the case's
    active findings absent from the baseline (all of them when ``baseline_found`` is false);
    ``excepted`` maps each covered finding id to its exception. ``exceptions_applied`` cover
    findings here; ``exceptions_expired`` match findings here but expired (so no longer cover
    them); ``exceptions_expiring`` are applied ones that expire within 14 days.
    """

    mode: Mode
    gate: bool
    outcomes: tuple[RuleOutcome, ...]
    baseline_found: bool = False
    new: tuple[str, ...] = ()
    excepted: Mapping[str, PolicyException] = field(default_factory=dict)
    exceptions_applied: tuple[ExceptionUse, ...] = ()
    exceptions_expired: tuple[ExceptionUse, ...] = ()
    exceptions_expiring: tuple[ExceptionUse, ...] = ()

    @property
    def decision(self) -> str:
        return "block" if self.gate else "pass"

    def gate_record(self, policy: Policy) -> GateRecord:
        """What a case records of this verdict under ``policy`` (its ``gate`` field)."""
        return GateRecord(
            mode=self.mode.value,
            decision=self.decision,
            gate=self.gate,
            policy_path=policy.origin,
            policy_blob=policy.blob,
            rules=self.blocking_rules,
            reasons=self.reasons,
        )

    @property
    def fails(self) -> bool:
        """True when the run should fail: blocked in ``pr_gate`` mode."""
        return self.gate and self.mode is Mode.PR_GATE

    @property
    def applied_rules(self) -> tuple[str, ...]:
        """Ids of the rules whose ``when`` selected the subject. Empty means the policy said
        nothing about this subject: a pass by default, which outputs must say out loud."""
        return tuple(o.rule.id for o in self.outcomes if o.applies)

    @property
    def blocking_rules(self) -> tuple[str, ...]:
        return tuple(o.rule.id for o in self.outcomes if o.blocks)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(o.reason for o in self.outcomes if o.reason)


@dataclass(frozen=True, slots=True)
class _Item:
    """A finding with what the conditions need: new or not, age in days (None: unknown)."""

    finding: Finding
    new: bool
    age_days: int | None
    #: False for suppressed findings and cross-scanner duplicates: marked, never counted.
    counted: bool = True


def evaluate_case(
    policy: Policy, case: Case, *, baseline: Case | None, today: date, mode: Mode | None = None
) -> Decision:
    """Judge ``case``'s findings under ``policy`` on day ``today`` (UTC).

    ``baseline`` is the case of the pull request's target branch: a finding is new when its
    fingerprint is not among the baseline's active findings, and one that is there is as old
    as its ``first_seen`` there (age and SLA conditions). Without a baseline every finding is
    new and ``Decision.baseline_found`` is false. Exceptions are applied first (an expired
    one no longer covers anything); rules then count the findings no exception covers.
    ``mode`` overrides the policy's mode.
    """
    return evaluate_case_under((policy,), case, baseline=baseline, today=today, mode=mode)[0]


def evaluate_case_under(
    policies: Sequence[Policy],
    case: Case,
    *,
    baseline: Case | None,
    today: date,
    mode: Mode | None = None,
) -> tuple[Decision, ...]:
    """:func:`evaluate_case` under each of ``policies`` (e.g. the two sides of a policy
    change): what a finding is (new, age, counted) is worked out once for all of them."""
    # A finding already on the target branch is as old as it is there (for age and SLA).
    known = (
        {t.finding.id: t.first_seen.at for t in baseline.findings} if baseline is not None else {}
    )
    # Suppressed findings never count; a problem several scanners report is gated once.
    unsuppressed = (t.finding for t in case.findings if not t.finding.suppressed)
    gated = {f.id for f in distinct_findings(unsuppressed)}
    items = []
    for tracked in case.findings:
        first_seen = min(
            tracked.first_seen.at, known.get(tracked.finding.id, tracked.first_seen.at)
        )
        items.append(
            _Item(
                tracked.finding,
                new=tracked.finding.id not in known,
                age_days=_age_days(first_seen, today),
                counted=tracked.finding.id in gated,
            )
        )
    found = baseline is not None
    return tuple(
        _decide(policy, case.subject, items, today, mode, baseline_found=found)
        for policy in policies
    )


def evaluate(
    policy: Policy,
    subject: Subject,
    findings: Iterable[Finding],
    *,
    mode: Mode | None = None,
    today: date | None = None,
) -> Decision:
    """Judge bare ``findings`` of ``subject`` (no case, so no baseline and no ages).

    Every finding counts as new; age conditions select nothing. Exceptions apply only when
    ``today`` is given. Prefer :func:`evaluate_case`.
    """
    items = [_Item(f, new=True, age_days=None) for f in findings]
    return _decide(policy, subject, items, today, mode, baseline_found=False)


def _decide(
    policy: Policy,
    subject: Subject,
    items: Sequence[_Item],
    today: date | None,
    mode: Mode | None,
    *,
    baseline_found: bool,
) -> Decision:
    excepted: dict[str, PolicyException] = {}
    lapsed: dict[str, PolicyException] = {}
    if today is not None and policy.exceptions:
        for item in items:
            covering = [e for e in policy.exceptions if covers(e.match, item.finding, subject)]
            if not covering:
                continue
            # The longest-lived exception wins, so the summary names the one that matters.
            current = [e for e in covering if not e.expired(today)]
            chosen = max(current or covering, key=lambda e: (e.expires, e.id))
            (excepted if current else lapsed)[item.finding.id] = chosen
    counted = [i for i in items if i.counted and i.finding.id not in excepted]
    outcomes = tuple(_judge(rule, subject, counted, policy, lapsed) for rule in policy.rules)
    applied = _uses(excepted)
    expiring: tuple[ExceptionUse, ...] = ()
    if today is not None:
        horizon = today + timedelta(days=EXPIRY_WARNING_DAYS)
        expiring = tuple(u for u in applied if u.expires <= horizon)
    return Decision(
        mode=mode or policy.mode,
        gate=any(o.blocks for o in outcomes),
        outcomes=outcomes,
        baseline_found=baseline_found,
        new=tuple(sorted(i.finding.id for i in items if i.new)),
        excepted={fid: excepted[fid] for fid in sorted(excepted)},
        exceptions_applied=applied,
        exceptions_expired=_uses(lapsed),
        exceptions_expiring=expiring,
    )


def _uses(by_finding: Mapping[str, PolicyException]) -> tuple[ExceptionUse, ...]:
    grouped: dict[str, list[str]] = {}
    expires: dict[str, date] = {}
    for fid, exc in by_finding.items():
        grouped.setdefault(exc.id, []).append(fid)
        expires[exc.id] = exc.expires
    return tuple(
        ExceptionUse(id=eid, expires=expires[eid], findings=tuple(sorted(grouped[eid])))
        for eid in sorted(grouped)
    )


def _age_days(first_seen_at: str, today: date) -> int | None:
    try:
        first = date.fromisoformat(first_seen_at[:10])
    except ValueError:
        return None
    return (today - first).days


def _judge(
    rule: Rule,
    subject: Subject,
    items: Sequence[_Item],
    policy: Policy,
    lapsed: Mapping[str, PolicyException],
) -> RuleOutcome:
    if not applies(rule.when, subject):
        return RuleOutcome(rule, applies=False, matched=(), blocks=False, reason=None)
    matched = tuple(
        i.finding.id
        for i in items
        if selects(rule.block, i.finding, new=i.new, age_days=i.age_days, sla_days=policy.sla_days)
    )
    blocks = len(matched) > rule.max_allowed
    reason = None
    if blocks:
        phrase = describe(rule.block)
        if len(matched) == 1:
            phrase = phrase.replace("findings", "finding", 1)
        reason = f"{rule.id}: {len(matched)} {phrase} (at most {rule.max_allowed} allowed)"
        expired = sorted({(lapsed[i].id, lapsed[i].expires) for i in matched if i in lapsed})
        reason += "".join(f"; exception {eid} expired on {day.isoformat()}" for eid, day in expired)
    return RuleOutcome(rule, applies=True, matched=matched, blocks=blocks, reason=reason)


def covers(match: ExceptionMatch, finding: Finding, subject: Subject) -> bool:
    """Whether an exception's ``match`` selects ``finding`` in ``subject``'s case (any date)."""
    if match.fingerprint is not None and finding.id != match.fingerprint:
        return False
    if match.advisory is not None and finding.advisory != match.advisory:
        return False
    if match.package is not None and (
        finding.package is None or finding.package.name != match.package
    ):
        return False
    if match.source is not None and not glob_match(match.source, finding.source):
        return False
    if match.path is not None:
        path = finding.location.path if finding.location else None
        if path is None or not glob_match(match.path, path):
            return False
    return not match.repos or _repo_match(match.repos, subject.slug)


def expired_exceptions(policy: Policy, today: date) -> tuple[str, ...]:
    """Ids of the policy's exceptions that have expired by ``today``, in policy order."""
    return tuple(e.id for e in policy.exceptions if e.expired(today))


def stale_exceptions(policy: Policy, cases: Iterable[Case], today: date) -> tuple[str, ...]:
    """Ids of unexpired exceptions that match no active finding of any open case, in policy order.

    Closed cases are ignored; expired exceptions are reported by :func:`expired_exceptions`.
    """
    waiting = [e for e in policy.exceptions if not e.expired(today)]
    for case in cases:
        if not waiting:
            break
        if case.status is Status.CLOSED:
            continue
        waiting = [
            e
            for e in waiting
            if not any(covers(e.match, t.finding, case.subject) for t in case.findings)
        ]
    return tuple(e.id for e in waiting)


def applies(when: When, subject: Subject) -> bool:
    """Whether a rule's ``when`` selects this subject."""
    event = Event.PULL_REQUEST if subject.is_pr else Event.PUSH
    if when.events and event not in when.events:
        return False
    if when.target_branches and not (
        subject.is_pr and _any_glob(when.target_branches, subject.target_branch)
    ):
        return False
    if when.branches and not _any_glob(when.branches, subject.branch):
        return False
    return not when.repos or _repo_match(when.repos, subject.slug)


def selects(
    block: Block,
    finding: Finding,
    *,
    new: bool = True,
    age_days: int | None = None,
    sla_days: Mapping[Severity, int] | None = None,
) -> bool:
    """Whether a rule's ``block`` counts this finding.

    ``new``: absent from the baseline; ``age_days``: days since first seen (None: unknown,
    then age and SLA conditions select nothing). A finding without CVSS data never meets
    ``cvss_at_least``.
    """
    if block.severity_at_least and not finding.severity.at_least(block.severity_at_least):
        return False
    if block.kinds and finding.kind not in block.kinds:
        return False
    if block.sources and not _any_glob(block.sources, finding.source):
        return False
    if block.fixable_only and not finding.fixable:
        return False
    if block.new_only and not new:
        return False
    if block.cvss_at_least is not None and (
        finding.cvss is None or finding.cvss < block.cvss_at_least
    ):
        return False
    if block.age_days_over is not None and (age_days is None or age_days <= block.age_days_over):
        return False
    if block.sla_breached:
        limit = (sla_days or {}).get(finding.severity)
        if limit is None or age_days is None or age_days <= limit:
            return False
    return True


def describe(block: Block) -> str:
    """A short phrase for what a block selects, used in reasons."""
    words = []
    if block.new_only:
        words.append("new")
    if block.fixable_only:
        words.append("fixable")
    words.append(
        "/".join(k.value for k in block.kinds) + " findings" if block.kinds else "findings"
    )
    if block.severity_at_least:
        words.append(f"at {block.severity_at_least.value} or above")
    if block.cvss_at_least is not None:
        words.append(f"with CVSS {block.cvss_at_least:g} or above")
    if block.sources:
        words.append("from " + ", ".join(block.sources))
    if block.age_days_over is not None:
        words.append(f"first seen over {block.age_days_over} days ago")
    if block.sla_breached:
        words.append("past their SLA")
    return " ".join(words)


def _any_glob(patterns: Sequence[str], value: str | None, *, ignore_case: bool = False) -> bool:
    return value is not None and any(
        glob_match(p, value, ignore_case=ignore_case) for p in patterns
    )


def _repo_match(patterns: Sequence[str], slug: str) -> bool:
    """Repository globs ignore case: GitHub treats ``ACME/Shop`` and ``acme/shop`` as one repo."""
    return _any_glob(patterns, slug, ignore_case=True)


#: Characters that make a pattern a glob under wcmatch's GLOBSTAR | DOTGLOB rules; a pattern
#: without them matches only itself.
_GLOB_CHARACTERS = frozenset("*?[\\")


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Match ``value`` against a glob: ``*`` and ``?`` stay within a ``/`` segment, ``**`` not.

    ``**/`` also matches no folder at all (``**/tests/**`` matches ``tests/a.py``), as in
    gitignore, CODEOWNERS and GitHub's path filters. ``ignore_case`` is for names GitHub
    compares without case (owners and repositories).
    """
    if _GLOB_CHARACTERS.isdisjoint(pattern) and not value.endswith("/"):
        if not ignore_case:
            return pattern == value
        if pattern.isascii() and value.isascii():  # beyond ASCII, regex case rules differ
            return pattern.lower() == value.lower()
    # Imported on the first real glob: most policies name branches and repositories plainly,
    # and wcmatch's import is a tenth of a short run's start-up.
    from wcmatch import glob as wcglob

    flags = wcglob.GLOBSTAR | wcglob.DOTGLOB
    return bool(
        wcglob.globmatch(value, pattern, flags=flags | wcglob.IGNORECASE if ignore_case else flags)
    )
