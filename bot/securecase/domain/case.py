"""The security case: merge a scan into the previous case, lifecycle and counts.

Everything here is pure: the caller supplies the previous case, the parsed reports and the
time, and gets the next case back. Human-owned fields (``triage``, and ``status`` apart from
the bot's own transitions) are carried over untouched.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum

from securecase.domain.findings import (
    SEVERITIES_WORST_FIRST,
    SEVERITY_RANK,
    Finding,
    Report,
    Severity,
)
from securecase.domain.subjects import Subject

SCHEMA_ID = "securecase/case/v2"
#: Late scans remembered in the case; older entries live on in git history.
STALE_SCANS_KEPT = 20


class Status(StrEnum):
    """Case lifecycle: NEW → TRIAGED → IN_PROGRESS → RESOLVED → CLOSED."""

    NEW = "NEW"
    TRIAGED = "TRIAGED"
    IN_PROGRESS = "IN_PROGRESS"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"

    @property
    def coarse(self) -> str:
        """OPEN (NEW, TRIAGED, IN_PROGRESS), RESOLVED or CLOSED."""
        return self.value if self in (Status.RESOLVED, Status.CLOSED) else "OPEN"


@dataclass(frozen=True, slots=True)
class Seen:
    """A moment in a case's life: the scanned commit (if known) and the time."""

    commit: str | None
    at: str


@dataclass(frozen=True, slots=True)
class ExceptionRef:
    """The policy exception covering a finding: its id and last valid day (YYYY-MM-DD)."""

    id: str
    expires: str


@dataclass(frozen=True, slots=True)
class SlaMark:
    """When a finding's SLA (the policy's ``sla_days`` for its severity) runs out, and whether
    it has: ``due`` is the last day within the SLA (YYYY-MM-DD)."""

    due: str
    breached: bool


@dataclass(frozen=True, slots=True)
class Tracked:
    """A finding as the case keeps it: the latest data plus when it was first (and last) seen.

    ``new`` (pull request cases only, else None) is true when the finding is absent from the
    target branch's case; ``exception`` names the policy exception covering it, if any. Both
    are set by :func:`mark_findings` after each evaluation.
    """

    finding: Finding
    first_seen: Seen
    resolved: Seen | None = None
    new: bool | None = None
    exception: ExceptionRef | None = None
    sla: SlaMark | None = None


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The latest report of one source (one scanner slot) and where its raw copy is stored."""

    tool: str
    version: str | None
    format: str
    raw: str
    sha256: str
    scanned_at: str
    commit: str | None
    artifact: str | None
    findings: int
    #: Why the latest scan of this source did not complete (empty: it did).
    incomplete: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest scan applied to the case."""

    commit: str | None = None
    committed_at: str | None = None
    run_url: str | None = None
    image_name: str | None = None
    image_tag: str | None = None
    image_digest: str | None = None
    scanned_at: str | None = None


@dataclass(frozen=True, slots=True)
class GateRecord:
    """The policy verdict stored in the case, with the policy's origin for the audit trail."""

    mode: str
    decision: str
    gate: bool
    policy_path: str | None = None
    policy_blob: str | None = None
    rules: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Triage:
    """Human-owned triage data; the bot never changes it."""

    assignee: str | None = None
    tags: tuple[str, ...] = ()
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class StaleScan:
    """A scan that arrived after a newer commit's scan and so was not applied."""

    commit: str | None
    scanned_at: str | None
    received_at: str
    sources: tuple[str, ...]


class CloseReason(StrEnum):
    """Why the sweep closed a case."""

    MERGED = "merged"
    CLOSED = "closed"
    BRANCH_DELETED = "branch_deleted"


@dataclass(frozen=True, slots=True)
class Closed:
    """Set when the sweep closed the case: why, and when (the PR's close time, or the sweep's)."""

    reason: CloseReason
    at: str


@dataclass(frozen=True, slots=True)
class Case:
    """One security case: a repository plus a pull request or branch.

    ``closed`` is set by the sweep when it closes the case; ``notified`` holds the ids of the
    sweep events already sent to the configured channels (see ``domain.sweep``).
    """

    subject: Subject
    status: Status
    triage: Triage
    latest: Latest
    gate: GateRecord
    sources: Mapping[str, SourceRecord]
    findings: tuple[Tracked, ...]
    resolved: tuple[Tracked, ...]
    created_at: str
    updated_at: str
    reopened: int = 0
    stale_scans: tuple[StaleScan, ...] = ()
    closed: Closed | None = None
    notified: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.subject.key

    @property
    def active(self) -> tuple[Finding, ...]:
        """Findings that count: open ones the scanner did not suppress and no policy exception
        covers."""
        return tuple(
            t.finding for t in self.findings if t.exception is None and not t.finding.suppressed
        )

    @property
    def excepted(self) -> tuple[Finding, ...]:
        """Open findings a policy exception covers: shown, not counted."""
        return tuple(
            t.finding for t in self.findings if t.exception is not None and not t.finding.suppressed
        )

    @property
    def counts(self) -> dict[str, int]:
        """Active findings per severity, a problem reported by several sources counted once."""
        return severity_counts(distinct_findings(self.active))

    @property
    def max_severity(self) -> Severity | None:
        worst = max((f.severity for f in self.active), key=lambda s: s.rank, default=None)
        return worst


@dataclass(frozen=True, slots=True)
class CaseHeader:
    """What ``case.yaml`` alone says about a case: everything but the findings.

    ``counts`` and ``max_severity`` are the ones stored with the case (the bot writes them
    from the findings on every update), so listings need not read the findings.
    """

    subject: Subject
    status: Status
    triage: Triage
    latest: Latest
    gate: GateRecord
    sources: Mapping[str, SourceRecord]
    counts: dict[str, int]
    max_severity: Severity | None
    created_at: str
    updated_at: str
    reopened: int = 0
    stale_scans: tuple[StaleScan, ...] = ()
    closed: Closed | None = None
    notified: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.subject.key


@dataclass(frozen=True, slots=True)
class Scan:
    """One ingest: the reports of one run and what the run knows about the scanned commit."""

    subject: Subject
    reports: tuple[Report, ...]
    received_at: str
    commit: str | None = None
    committed_at: str | None = None
    run_url: str | None = None
    image_name: str | None = None
    image_tag: str | None = None
    image_digest: str | None = None
    raw_paths: Mapping[str, str] = field(default_factory=dict)
    raw_sha256: Mapping[str, str] = field(default_factory=dict)
    #: When each source's report was made: its own timestamp, else when it was first received.
    report_times: Mapping[str, str] = field(default_factory=dict)

    @property
    def scanned_at(self) -> str:
        """The earliest report time, else the time the run received them."""
        times = [self.report_time(r) for r in self.reports]
        return min(times) if times else self.received_at

    def report_time(self, report: Report) -> str:
        return self.report_times.get(report.source) or report.scanned_at or self.received_at


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The next case plus what changed in this scan (``appeared``: ids absent from the case's
    previous scan; ``fixed``: ids that scan had and this one closed; ``incomplete``: sources
    whose scan said it did not complete)."""

    case: Case
    appeared: tuple[str, ...]
    fixed: tuple[str, ...]
    stale: bool
    incomplete: tuple[str, ...] = ()


def severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts per severity, worst first, every severity present (zero when none)."""
    tally = dict.fromkeys(SEVERITIES_WORST_FIRST, 0)
    for finding in findings:
        tally[finding.severity] += 1
    return {s.count_key: n for s, n in tally.items()}


def distinct_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """``findings`` (in the order given) with cross-scanner duplicates left out: for the same
    vulnerability id in the same package reported by several sources, only one source's
    findings stay.

    Both stay in the case; this is what counts and what the policy gates. The finding kept is
    the worst one, then the one of the alphabetically first source, so the choice never
    depends on report order. Duplicates within one source are distinct findings (e.g. the
    same package in two lock files) and all stay.
    """
    listed = tuple(findings)
    if len({f.source for f in listed}) <= 1:
        return listed  # one scanner: nothing to leave out
    rank = SEVERITY_RANK
    owner: dict[tuple[str, str], tuple[int, str]] = {}
    for f in listed:
        if f.package is not None:
            key = (f.advisory, f.package.name)
            claim = (-rank[f.severity], f.source)
            if key not in owner or claim < owner[key]:
                owner[key] = claim
    return tuple(
        f for f in listed if f.package is None or owner[(f.advisory, f.package.name)][1] == f.source
    )


def sort_key(tracked: Tracked) -> tuple[int, str]:
    """Findings are kept worst first, then by id, so the file order is stable."""
    return (-tracked.finding.severity.rank, tracked.finding.id)


def is_stale(previous: Case, scan: Scan) -> bool:
    """True when ``scan`` is of an older commit than the case's latest and must not apply.

    Commit times decide when both are known; otherwise the reports' scan times do. A rescan
    of the same commit is never stale.
    """
    latest = previous.latest
    if scan.commit is None or latest.commit is None or scan.commit == latest.commit:
        return False
    if scan.committed_at and latest.committed_at:
        return scan.committed_at < latest.committed_at
    return latest.scanned_at is not None and scan.scanned_at < latest.scanned_at


def merge(previous: Case | None, scan: Scan, gate: GateRecord) -> MergeResult:
    """Apply ``scan`` to ``previous`` (None for a new case) and return the next case.

    Only the sources in this scan are re-evaluated: their findings that are gone move to
    ``resolved``; other sources keep their findings and the commit they came from. A source
    whose report says the scan did not complete adds what it found and resolves nothing, so
    the case (and the decision on it) is never less strict than before.
    """
    rerun = {r.source for r in scan.reports if not r.incomplete}
    seen_at = scan.scanned_at
    prior_open = {t.finding.id: t for t in previous.findings} if previous else {}
    prior_resolved = {t.finding.id: t for t in previous.resolved} if previous else {}

    findings: list[Tracked] = []
    appeared_list: list[str] = []
    returned: set[str] = set()
    current: set[str] = set()
    former = _former_ids(scan.reports, prior_open, prior_resolved)
    for report in scan.reports:
        report_at = scan.report_time(report)
        for finding in report.findings:
            current.add(finding.id)
            before = prior_open.get(finding.id)
            old_id = former.get(finding.id)
            if before is None and old_id in prior_open:
                current.add(old_id)  # the same finding under its earlier id: not fixed
                before = prior_open[old_id]
            if before is None:
                earlier = prior_resolved.get(finding.id)
                if earlier is None and old_id is not None:
                    earlier = prior_resolved.get(old_id)
                    returned.add(old_id)
                if earlier is not None:
                    returned.add(finding.id)
                    first = earlier.first_seen
                else:
                    first = Seen(scan.commit, report_at)
                appeared_list.append(finding.id)
                findings.append(Tracked(finding, first))
            elif before.finding == finding:
                findings.append(before)
            else:
                findings.append(Tracked(finding, before.first_seen))

    fixed: list[Tracked] = []
    rerun_at = {r.source: scan.report_time(r) for r in scan.reports}
    for tracked in prior_open.values():
        if tracked.finding.id in current:
            continue
        if tracked.finding.source not in rerun:
            findings.append(tracked)
        else:
            resolved_at = rerun_at[tracked.finding.source]
            fixed.append(replace(tracked, resolved=Seen(scan.commit, resolved_at)))
    fixed_ids = {t.finding.id for t in fixed}
    resolved = [t for i, t in prior_resolved.items() if i not in returned and i not in fixed_ids]
    resolved.extend(fixed)
    findings.sort(key=sort_key)
    resolved.sort(key=sort_key)

    sources = dict(previous.sources) if previous else {}
    for report in scan.reports:
        sources[report.source] = SourceRecord(
            tool=report.tool,
            version=report.tool_version,
            format=report.format.value,
            raw=scan.raw_paths[report.source],
            sha256=scan.raw_sha256[report.source],
            scanned_at=scan.report_time(report),
            commit=scan.commit,
            artifact=report.artifact_name,
            findings=len(report.findings),
            incomplete=report.incomplete,
        )
    digest = scan.image_digest or next(
        (r.image_digest for r in scan.reports if r.image_digest), None
    )
    latest = Latest(
        commit=scan.commit,
        committed_at=scan.committed_at,
        run_url=scan.run_url,
        image_name=scan.image_name,
        image_tag=scan.image_tag,
        image_digest=digest,
        scanned_at=seen_at,
    )
    has_active = any(not t.finding.suppressed for t in findings)
    appeared_ids = set(appeared_list)
    appeared = any(t.finding.id in appeared_ids and not t.finding.suppressed for t in findings)
    status, reopened = _next_status(previous, has_active=has_active, appeared=appeared)
    closed = previous.closed if previous else None
    if previous is not None and previous.closed is not None:
        # The sweep closed it (its PR was closed or its branch deleted); a new scan means the PR
        # was reopened or the branch pushed again: the case is live again.
        status = Status.NEW if has_active else Status.RESOLVED
        reopened, closed = previous.reopened + 1, None
    case = Case(
        subject=_merged_subject(previous, scan.subject),
        status=status,
        reopened=reopened,
        triage=previous.triage if previous else Triage(),
        latest=latest,
        gate=gate,
        sources={name: sources[name] for name in sorted(sources)},
        findings=tuple(findings),
        resolved=tuple(resolved),
        stale_scans=previous.stale_scans if previous else (),
        created_at=previous.created_at if previous else scan.received_at,
        updated_at=scan.received_at,
        closed=closed,
        notified=previous.notified if previous else (),
    )
    incomplete = tuple(sorted(r.source for r in scan.reports if r.incomplete))
    return MergeResult(
        case,
        tuple(sorted(appeared_list)),
        tuple(sorted(fixed_ids)),
        stale=False,
        incomplete=incomplete,
    )


def _former_ids(
    reports: Iterable[Report],
    prior_open: Mapping[str, Tracked],
    prior_resolved: Mapping[str, Tracked],
) -> dict[str, str]:
    """Finding id → the id an earlier identity scheme gave it, for findings the case knows
    only by that earlier id; each earlier id goes to one finding (the first by id), and
    never when it is also the id of a finding in this scan."""
    current = {f.id for r in reports for f in r.findings}
    mapped: dict[str, str] = {}
    claimed: set[str] = set()
    for report in reports:
        for new_id, old_id in sorted(report.former_ids):
            if new_id in prior_open or new_id in prior_resolved or old_id in current:
                continue
            if old_id in claimed or (old_id not in prior_open and old_id not in prior_resolved):
                continue
            claimed.add(old_id)
            mapped[new_id] = old_id
    return mapped


def mark_findings(
    case: Case, *, new: Collection[str] | None, excepted: Mapping[str, ExceptionRef]
) -> Case:
    """Record each open finding's baseline status and covering exception.

    ``new`` holds the ids absent from the target branch's case (None for a case that is not a
    pull request: no ``new`` flags). Resolved findings carry neither mark.
    """
    new_ids = None if new is None else frozenset(new)
    findings = []
    for t in case.findings:
        is_new = None if new_ids is None else t.finding.id in new_ids
        exception = excepted.get(t.finding.id)
        unchanged = t.new is is_new and t.exception == exception
        findings.append(t if unchanged else replace(t, new=is_new, exception=exception))
    resolved = tuple(
        t
        if t.new is None and t.exception is None and t.sla is None
        else replace(t, new=None, exception=None, sla=None)
        for t in case.resolved
    )
    return replace(case, findings=tuple(findings), resolved=resolved)


def mark_sla(
    case: Case,
    sla_days: Mapping[Severity, int],
    *,
    today: date,
    known_since: Mapping[str, str] | None = None,
) -> Case:
    """Record on each open finding when its SLA runs out and whether it has, as of ``today``.

    A finding's clock starts at its ``first_seen`` day, or at the day it was first seen on the
    target branch (``known_since``: finding id -> time) when that is earlier, as the policy's
    ``sla_breached`` condition counts it. Breached means ``today`` is past the due day.
    Findings of a severity without ``sla_days`` (and suppressed ones) carry no mark.
    """
    known = known_since or {}
    findings = []
    for t in case.findings:
        limit = sla_days.get(t.finding.severity)
        mark = None
        if limit is not None and not t.finding.suppressed:
            since = min(t.first_seen.at, known.get(t.finding.id, t.first_seen.at))
            try:
                start = date.fromisoformat(since[:10])
            except ValueError:
                start = None
            if start is not None:
                due = start + timedelta(days=limit)
                mark = SlaMark(due.isoformat(), today > due)
        findings.append(t if t.sla == mark else replace(t, sla=mark))
    return replace(case, findings=tuple(findings))


def record_stale(previous: Case, scan: Scan) -> Case:
    """Note a late scan in the case without applying it (the case does not roll back)."""
    entry = StaleScan(
        commit=scan.commit,
        scanned_at=scan.scanned_at,
        received_at=scan.received_at,
        sources=tuple(sorted(r.source for r in scan.reports)),
    )
    if any(_same_stale(entry, earlier) for earlier in previous.stale_scans):
        return previous
    kept = (*previous.stale_scans, entry)[-STALE_SCANS_KEPT:]
    return replace(previous, stale_scans=kept, updated_at=scan.received_at)


def _same_stale(a: StaleScan, b: StaleScan) -> bool:
    return (a.commit, a.scanned_at, a.sources) == (b.commit, b.scanned_at, b.sources)


def _next_status(previous: Case | None, *, has_active: bool, appeared: bool) -> tuple[Status, int]:
    """The bot's transitions; any other status is a human's and stays.

    A RESOLVED or CLOSED case reopens only when a finding appears (or returns): a human who
    closed a case that still had findings is not overruled by a rescan that finds the same.
    """
    if previous is None:
        return (Status.NEW if has_active else Status.RESOLVED), 0
    status, reopened = previous.status, previous.reopened
    if appeared and status in (Status.RESOLVED, Status.CLOSED):
        return Status.NEW, reopened + 1
    if not has_active and status in (Status.NEW, Status.TRIAGED, Status.IN_PROGRESS):
        return Status.RESOLVED, reopened
    return status, reopened


def _merged_subject(previous: Case | None, subject: Subject) -> Subject:
    """Keep a PR's head/target branch when a later run does not know them."""
    if previous is None:
        return subject
    return replace(
        subject,
        branch=subject.branch or previous.subject.branch,
        target_branch=subject.target_branch or previous.subject.target_branch,
    )


def same_content(a: Case, b: Case) -> bool:
    """True when two cases differ at most in ``updated_at`` (a re-sent report)."""
    return replace(a, updated_at=b.updated_at) == b
