"""The main job: reports in, one case commit and one decision out.

Reports and an explicit policy are read before the cases repo is touched, so bad input fails
(exit 2) without a commit. The merge runs inside the store's update callback: when a push
races with another run, the store re-reads the case and this module recomputes from it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

from securecase import scanners as report_registry
from securecase.clock import Clock, iso
from securecase.domain.case import (
    Case,
    ExceptionRef,
    GateRecord,
    MergeResult,
    Scan,
    is_stale,
    mark_findings,
    mark_sla,
    merge,
    record_stale,
)
from securecase.domain.case import same_content as same_case_content
from securecase.domain.findings import Report, ReportFormat
from securecase.domain.outcome import IngestResult
from securecase.domain.policy import (
    Decision,
    Mode,
    Policy,
    builtin_policy,
    evaluate_case,
    load_policy,
)
from securecase.domain.subjects import Provider, Subject
from securecase.errors import (
    CaseFileError,
    CasesRepoBusy,
    InputError,
    PushRefused,
    SecurecaseError,
    StoreError,
    UsageError,
)
from securecase.limits import FOLDER_ENTRIES_WARNING, MAX_FINDINGS
from securecase.scanners.jsonload import (
    DEFAULT_MAX_REPORT_BYTES,
    check_source_name,
    read_report_bytes,
)
from securecase.scanners.sarif_identity import CheckoutReplay
from securecase.services.keptcheckout import checkout_replays, kept_checkout
from securecase.services.slots import assign_slots
from securecase.storage.casefile import CASE_FILE, FINDINGS_FILE, dump_case, load_case
from securecase.storage.queue import RECORD_FILE, QueuedRecord, RecordQueue, entry_digest
from securecase.storage.rawfile import RawPacker, packed_raw, stored_path
from securecase.storage.repos import open_store
from securecase.storage.schemas import RECORD, problems
from securecase.storage.secrets import masked_file, remember_packed
from securecase.storage.store import CasesStore, Change, GitIdentity, Plan, Snapshot
from securecase.storage.userfile import read_regular_file, repo_policy_bytes

POLICY_FILE = "policy.yaml"
#: How far a --commit-time may lie ahead of our clock (runner clocks drift a little). Beyond
#: it the time is clamped to now: a far-future time would make every later scan look late.
COMMIT_TIME_SKEW = timedelta(minutes=10)
#: A record queued longer than this means the cases repo is not busy but unwritable from here
#: (credentials, branch protection): the next run that cannot push fails with exit 3.
QUEUE_STALE_AFTER = timedelta(hours=1)
#: Queued records an ingest carries in its push at most (oldest first); a sweep takes them all.
FOLD_WITH_INGEST = 50
#: Open findings a case may hold: beyond this a case is too large to review or to store.
DEFAULT_MAX_FINDINGS = MAX_FINDINGS


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """Everything one ``securecase ingest`` call asks for."""

    reports: tuple[Path, ...]
    subject: Subject
    cases_repo: str
    identity: GitIdentity
    fmt: ReportFormat | None = None
    sources: tuple[str, ...] = ()
    commit: str | None = None
    committed_at: str | None = None
    run_url: str | None = None
    image: str | None = None
    image_digest: str | None = None
    policy_file: Path | None = None
    mode: Mode | None = None
    push_timeout: float = 120.0
    max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES
    max_findings: int = DEFAULT_MAX_FINDINGS
    #: The scanned checkout (``--source-root``, ``$GITHUB_WORKSPACE``); ``fallback_root``
    #: (the current directory) serves only when the reports' files are all under it.
    source_root: str | None = None
    fallback_root: str | None = None
    #: Where records wait when the cases repo cannot take them (None: a busy cases repo fails
    #: the run, exit 3); see :mod:`securecase.storage.queue`.
    queue_root: Path | None = None
    #: The Action uploads a queued record as a workflow artifact (GitHub-hosted runners),
    #: which ``sweep --fold-artifacts`` folds in: only the warning's wording depends on it.
    queue_artifact: bool = False
    #: False for a record replayed away from the machine that scanned (a workflow artifact):
    #: the roots above then only cut paths, and no file of this machine is read for it.
    read_checkout: bool = True
    #: A queued record's: what its ingest read from the scanned checkout, one per report,
    #: used instead of any file (so its findings keep that ingest's ids); None otherwise.
    checkout_replay: tuple[CheckoutReplay, ...] | None = None


def baseline_subject(subject: Subject) -> Subject | None:
    """The target branch's subject a pull request's findings are compared with, if any."""
    if not subject.is_pr or not subject.target_branch:
        return None
    return Subject(subject.provider, subject.org, subject.repo, branch=subject.target_branch)


def read_reports(
    paths: Sequence[Path],
    fmt: ReportFormat | None,
    sources: Sequence[str],
    *,
    max_bytes: int = DEFAULT_MAX_REPORT_BYTES,
    source_root: str | None = None,
    fallback_root: str | None = None,
) -> list[Report]:
    """Parse every report up front; two reports may not fill the same source slot."""
    loaded = _read_reports(
        paths, fmt, sources, max_bytes, source_root=source_root, fallback_root=fallback_root
    )
    return [entry.report for entry in loaded]


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A report parsed, with the bytes it was read from (to parse it again into an older
    case's slot, see :mod:`securecase.services.slots`) and the JSON document they decode to
    (masking reads it instead of decoding them again; None for XML)."""

    report: Report
    data: bytes
    document: object | None


def _read_reports(
    paths: Sequence[Path],
    fmt: ReportFormat | None,
    sources: Sequence[str],
    max_bytes: int,
    *,
    source_root: str | None = None,
    fallback_root: str | None = None,
    read_checkout: bool = True,
    checkout_replay: Sequence[CheckoutReplay] | None = None,
    packer: RawPacker | None = None,
) -> list[_Loaded]:
    """Each report parsed, with its bytes and document (``packer`` starts compressing each
    report's bytes as soon as they are read)."""
    if sources and len(sources) != len(paths):
        raise UsageError(
            f"{len(sources)} --source name(s) for {len(paths)} report(s)",
            hint="give --source once per report, in the same order, or not at all",
        )
    if not paths:
        raise UsageError("no report given", hint="securecase ingest REPORT... (see --help)")
    loaded = []
    for i, path in enumerate(paths):
        source = sources[i] if sources else None
        if source is not None:
            check_source_name(source, str(path))
        data = read_report_bytes(path, max_bytes=max_bytes)
        if packer is not None:
            packer.start(data)
        report, document = report_registry.parse_with_document(
            data,
            origin=str(path),
            fmt=fmt,
            source=source,
            source_root=source_root,
            fallback_root=fallback_root,
            read_checkout=read_checkout,
            checkout_replay=checkout_replay[i] if checkout_replay is not None else None,
        )
        loaded.append(_Loaded(report, data, document))
    seen: dict[str, str] = {}
    for report in (entry.report for entry in loaded):
        if report.source in seen:
            raise UsageError(
                f"{seen[report.source]} and {report.path} both fill source {report.source!r}",
                hint="name each report's slot with --source (once per report, in order)",
            )
        seen[report.source] = report.path
    return loaded


def _check_findings_limit(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise UsageError(
            f"{what} {count:,} findings, above the limit of {limit:,} (--max-findings)",
            hint="filter at the scanner (severity threshold, ignore files, fewer rules) or "
            "split the scan into several sources; a case this large is too big to review "
            "and to store (GitHub refuses files above 100 MB)",
        )


def first_seen_in(baseline: Case | None) -> dict[str, str]:
    """When each open finding of the target branch's case was first seen there (SLA clocks)."""
    return {t.finding.id: t.first_seen.at for t in baseline.findings} if baseline else {}


def split_image(image: str | None) -> tuple[str | None, str | None]:
    """``name:tag`` → (name, tag); a ``:`` inside a registry host:port is not a tag."""
    if not image:
        return None, None
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, None
    return name, tag


def ingest(request: IngestRequest, *, clock: Clock) -> IngestResult:
    """Record the reports in the subject's case, evaluate the policy, commit once.

    With a queue (``request.queue_root``), records other runs of this machine could not push
    ride along in the same push (one commit each), and when this run cannot push either, its
    decision still stands and its record joins the queue (``IngestResult.queued``).
    """
    own = _Prepared(request, clock.now())
    queue = RecordQueue(request.queue_root, request.cases_repo) if request.queue_root else None
    with queue.folding() if queue is not None else nullcontext(False) as may_fold:
        # The oldest records only: an ingest's own decision waits for the plans of those it
        # carries, and a sweep folds the rest.
        ready = queue.entries()[:FOLD_WITH_INGEST] if queue is not None and may_fold else []
        waiting, unread = read_queued(ready)
        try:
            result = _record(own, waiting, queue)
            return replace(result, warnings=(*result.warnings, *unread)) if unread else result
        except CasesRepoBusy as error:
            if queue is not None and waiting and isinstance(error, PushRefused):
                queue.end_push()  # refused: nothing of that push landed
            if queue is None or own.decided is None:
                raise  # nothing decided yet
            return _queued(own, queue, error)


def fold_queue(
    cases_repo: str, queue_root: Path, *, identity: GitIdentity, push_timeout: float
) -> FoldResult:
    """Push every record waiting in this machine's queue for ``cases_repo``, in one push
    (``sweep`` runs this first). A record whose case file is broken stays queued, named in
    the warnings; the store's errors propagate (the records stay queued)."""
    queue = RecordQueue(queue_root, cases_repo)
    with queue.folding() as may_fold:
        if not may_fold:
            return FoldResult(landed=(), waiting=len(queue.entries()), commits=0, warnings=())
        waiting, unread = read_queued(queue.entries())
        if not waiting and queue.in_flight() is None:
            return FoldResult(
                landed=(), waiting=len(unread), commits=0, warnings=unread, unread=unread
            )
        paths = [POLICY_FILE] + [p for entry in waiting for p in entry.prepared.paths]
        with open_store(cases_repo, identity=identity, paths=paths, timeout=push_timeout) as store:
            waiting = _settle_in_flight(store, queue, waiting)
            if not waiting:
                return FoldResult(
                    landed=(), waiting=len(unread), commits=0, warnings=unread, unread=unread
                )
            try:
                done = store.update_batch(
                    [entry.compute for entry in waiting],
                    before_publish=lambda tip: queue.begin_push(tip, [e.entry_id for e in waiting]),
                )
            except PushRefused:
                queue.end_push()  # refused: nothing of that push landed
                raise
        landed, warnings = landed_records(waiting, done.results)
        queue.remove(landed)
        queue.end_push()
        return FoldResult(
            landed=landed,
            waiting=len(queue.entries()),
            commits=sum(c is not None for c in done.commits),
            warnings=(*warnings, *unread),
            unread=unread,
        )


@dataclass(frozen=True)
class FoldResult:
    """What folding a queue did: the entries that landed, how many still wait, the commits
    made, and why some entries stay queued (``unread``: those this version cannot read, a
    subset of ``warnings``)."""

    landed: tuple[str, ...]
    waiting: int
    commits: int
    warnings: tuple[str, ...]
    unread: tuple[str, ...] = ()


class _Prepared:
    """One ingest's inputs read and checked, ready to plan on any snapshot of the cases repo.

    ``decided`` keeps the last result planned: the decision a run reports even when its
    record could not be pushed.
    """

    def __init__(self, request: IngestRequest, now: datetime) -> None:
        self.packer = RawPacker()
        loaded = _read_reports(
            request.reports,
            request.fmt,
            request.sources,
            request.max_report_bytes,
            source_root=request.source_root,
            fallback_root=request.fallback_root,
            read_checkout=request.read_checkout,
            checkout_replay=request.checkout_replay,
            packer=self.packer,
        )
        self.loaded = loaded
        self.parsed = [entry.report for entry in loaded]
        _check_findings_limit(
            sum(len(r.findings) for r in self.parsed), request.max_findings, "the reports hold"
        )
        self._reparsed: dict[tuple[int, str], Report] = {}
        self.policy_bytes = None
        self.explicit_policy = None
        if request.policy_file is not None:
            self.policy_bytes = _read_policy_file(request.policy_file)
            self.explicit_policy = load_policy(self.policy_bytes, origin=str(request.policy_file))
        self.folder = request.subject.folder
        self.received_at = iso(now)
        committed_at, self.warnings = clamp_commit_time(request.committed_at, now)
        self.request = replace(request, committed_at=committed_at)
        self.today = now.astimezone(UTC).date()
        self.target = baseline_subject(request.subject)
        # Only the files a plan reads: a sparse clone of a remote cases repo (and its refetch
        # after a rejected push) transfers the case files of this case and its baseline,
        # never their raw reports.
        self.paths = [POLICY_FILE] + [
            f"{case_folder}/{name}"
            for case_folder in [self.folder] + ([self.target.folder] if self.target else [])
            for name in (CASE_FILE, FINDINGS_FILE)
        ]
        self.decided: IngestResult | None = None

    def reparse(self, index: int, slot: str) -> Report:
        """An older case's per-tool slot: the ids depend on the slot, so parse again (once)."""
        if (index, slot) not in self._reparsed:
            report, data = self.loaded[index].report, self.loaded[index].data
            self._reparsed[index, slot] = report_registry.parse_bytes(
                data,
                origin=report.path,
                fmt=self.request.fmt,
                source=slot,
                source_root=self.request.source_root,
                fallback_root=self.request.fallback_root,
                read_checkout=self.request.read_checkout,
                checkout_replay=(
                    self.request.checkout_replay[index]
                    if self.request.checkout_replay is not None
                    else None
                ),
            )
        return self._reparsed[index, slot]

    def document_of(self, report: Report) -> object | None:
        """The JSON document ``report.raw`` decodes to, when its parser decoded it."""
        for entry in self.loaded:
            if entry.data is report.raw:
                return entry.document
        return None

    def plan(self, snapshot: Snapshot) -> Plan[IngestResult]:
        """The case update and decision for this run on ``snapshot``."""
        request = self.request
        policy = self.explicit_policy or _repo_policy(snapshot)
        found = _read_case(snapshot, self.folder, request.subject)
        previous = found[0] if found else None
        crowding = _crowding(snapshot, self.folder) if previous is None else ()
        # A run that does not name the target branch judges against the one the case knows
        # (the case keeps it), as `policy diff` does; otherwise `new_only` would count every
        # finding as new. A remote fetches that folder lazily (it was not known up front).
        base = self.target
        if base is None and previous is not None and request.subject.is_pr:
            base = baseline_subject(previous.subject)
        baseline_warnings: tuple[str, ...] = ()
        try:
            in_base = _read_case(snapshot, base.folder, base) if base else None
        except CaseFileError as error:
            # Another subject's broken file must not stop this ingest; without a baseline
            # every finding counts as new, so the gate errs on the strict side.
            in_base = None
            first = f": {error.problems[0]}" if error.problems else ""
            baseline_warnings = (
                f"the target branch's case is broken, so every finding counts as new: "
                f"{error.message}{first}",
            )
        baseline = in_base[0] if in_base else None
        placed = assign_slots(self.parsed, previous, self.reparse)
        planned = _plan(
            request,
            placed,
            policy,
            found,
            self.folder,
            self.received_at,
            baseline,
            self.today,
            base,
            (*self.warnings, *baseline_warnings, *crowding),
            {report.source: self.document_of(report) for report in placed},
            self.packer,
        )
        self.decided = planned.result
        return planned

    def finished(self, result: IngestResult, commit: str | None, head: str | None) -> IngestResult:
        """The result as the caller sees it: where the cases repo is, the parsers' notes."""
        return replace(
            result,
            cases_commit=commit or head,
            committed=commit is not None,
            # The parsers' notes, then what this run changed in its input (a clamped time).
            warnings=(*(w for report in self.parsed for w in report.warnings), *result.warnings),
        )


@dataclass(frozen=True)
class WaitingRecord:
    """A queued record, read back and ready to plan."""

    entry_id: str
    prepared: _Prepared

    @property
    def paths(self) -> list[str]:
        """The files of the cases repo its plan reads."""
        return self.prepared.paths

    @property
    def subject(self) -> Subject:
        """The subject whose case the record updates."""
        return self.prepared.request.subject

    @property
    def received_at(self) -> str:
        """When the ingest that queued it ran (ISO 8601)."""
        return self.prepared.received_at

    def compute(self, snapshot: Snapshot) -> Plan[IngestResult | SecurecaseError]:
        """Its plan; a record the cases repo's state refuses (a case file a human broke, a
        case grown past the findings limit) stays queued instead of stopping the others.

        Its commit names the record (``Securecase-Record:`` and its content digest), so a
        copy of the record found later (a workflow artifact) is known to have landed."""
        try:
            planned = cast(Plan[IngestResult | SecurecaseError], self.prepared.plan(snapshot))
        except StoreError:
            raise  # the cases repo itself: every record waits
        except SecurecaseError as error:
            return Plan(change=None, result=error)
        if planned.change is None:
            return planned
        trailer = _trailer("Record", entry_digest(self.entry_id))
        message = f"{planned.change.message}{trailer}\n"
        return replace(planned, change=replace(planned.change, message=message))


def _record(
    own: _Prepared, waiting: list[WaitingRecord], queue: RecordQueue | None
) -> IngestResult:
    """Push this run's record, with the waiting ones before it, in one push."""
    request = own.request
    paths = own.paths + [p for entry in waiting for p in entry.prepared.paths]
    with open_store(
        request.cases_repo, identity=request.identity, paths=paths, timeout=request.push_timeout
    ) as store:
        if queue is not None and waiting:
            waiting = _settle_in_flight(store, queue, waiting)
        if queue is None or not waiting:
            committed = store.update(own.plan)
            return own.finished(committed.result, committed.commit, committed.head)
        computes: list[Callable[[Snapshot], Plan[IngestResult | SecurecaseError]]] = [
            entry.compute for entry in waiting
        ]
        computes.append(
            lambda snapshot: cast(Plan[IngestResult | SecurecaseError], own.plan(snapshot))
        )
        done = store.update_batch(
            computes,
            before_publish=lambda tip: queue.begin_push(tip, [e.entry_id for e in waiting]),
        )
    landed, notes = landed_records(waiting, done.results[:-1])
    queue.remove(landed)
    queue.end_push()
    mine = done.results[-1]
    if isinstance(mine, SecurecaseError):
        raise mine
    result = own.finished(mine, done.commits[-1], done.head)
    note = f"{len(landed)} queued record(s) of earlier runs landed with this one"
    return replace(result, warnings=(*result.warnings, note, *notes))


def _queued(own: _Prepared, queue: RecordQueue, error: CasesRepoBusy) -> IngestResult:
    """Keep the record of a run that decided but could not push; its result says so."""
    request = own.request
    subject = request.subject
    fields = {
        "received_at": own.received_at,
        "subject": {
            "provider": subject.provider.value,
            "org": subject.org,
            "repo": subject.repo,
            "pr": subject.pr,
            "branch": subject.branch,
            "target_branch": subject.target_branch,
        },
        "format": request.fmt.value if request.fmt else None,
        "sources": list(request.sources),
        "commit": request.commit,
        "committed_at": request.committed_at,
        "run_url": request.run_url,
        "image": request.image,
        "image_digest": request.image_digest,
        "policy_origin": str(request.policy_file) if request.policy_file else None,
        "mode": request.mode.value if request.mode else None,
        "max_report_bytes": request.max_report_bytes,
        "max_findings": request.max_findings,
        "source_root": request.source_root,
        "fallback_root": request.fallback_root,
        "identity": [request.identity.name, request.identity.email],
    }
    # The fold has no checkout: what identity read there goes with the record.
    fields["checkout"], kept_warnings = kept_checkout(own.parsed)
    entry = queue.put(fields, [loaded.data for loaded in own.loaded], own.policy_bytes)
    oldest = min(str(e.fields["received_at"]) for e in queue.entries())
    if parse_time(oldest) < parse_time(own.received_at) - QUEUE_STALE_AFTER:
        # The queue has not drained for a long time: not a burst but a cases repo this
        # machine cannot write (credentials, branch protection). Fail so someone looks.
        raise StoreError(
            f"{error.message}; records have waited in {queue.folder} since {oldest} "
            f"(this run's is queued too)",
            hint=(error.hint or "check the cases repo's credentials and branch protection")
            + "; the queued records land with the first ingest or sweep that can push",
        ) from error
    assert own.decided is not None
    result = own.finished(own.decided, None, None)
    where = (
        f"is kept as the workflow artifact securecase-record-{entry.entry_id} and lands with "
        "the next `securecase sweep --fold-artifacts` of this cases repo"
        if request.queue_artifact
        else f"is queued as {entry.entry_id} in {queue.folder} and lands with the next ingest "
        "or sweep of this cases repo on this machine"
    )
    warning = (
        f"the decision stands, but the cases repo could not take the record now "
        f"({error.message}); it {where}"
    )
    return replace(
        result,
        queued=entry.entry_id,
        queued_folder=str(entry.folder),
        warnings=(*result.warnings, *kept_warnings, warning),
    )


def parse_time(value: str) -> datetime:
    """An ISO 8601 time of a record, UTC when it names no zone."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_queued(
    entries: Sequence[QueuedRecord], *, foreign_identity: GitIdentity | None = None
) -> tuple[list[WaitingRecord], tuple[str, ...]]:
    """The queued records read back, and a warning per one that no longer reads (its files
    damaged, or refused by this version): that one stays queued, for a person to look at.

    ``foreign_identity`` marks records that arrive from elsewhere (workflow artifacts, which
    anyone's run could write): it replaces the commit author a record names, and no file of
    this machine is read for them (their checkout roots name another machine's folders)."""
    ready, warnings = [], []
    for entry in entries:
        try:
            request, received = _request_of(entry)
            if foreign_identity is not None:
                request = replace(request, identity=foreign_identity, read_checkout=False)
            ready.append(WaitingRecord(entry.entry_id, _Prepared(request, received)))
        except (SecurecaseError, KeyError, TypeError, ValueError) as error:
            said = error.message if isinstance(error, SecurecaseError) else repr(error)
            if isinstance(error, InputError) and error.problems:
                said += ": " + "; ".join(error.problems[:3])
            warnings.append(f"queued record {entry.folder} cannot be read, it stays: {said}")
    return ready, tuple(warnings)


def _request_of(entry: QueuedRecord) -> tuple[IngestRequest, datetime]:
    """The ingest request a queued record holds, and the moment it was received.

    A record of version 2 replays what its ingest read from the scanned checkout instead of
    reading any file; one of version 1 (queued before records kept it) reads as it did."""
    fields = entry.fields
    origin = str(entry.folder / RECORD_FILE)
    found = problems(dict(fields), RECORD, path=origin)
    if found:
        raise InputError(f"{origin} is not a queued record", problems=found)
    subject = fields["subject"]
    policy = entry.policy_file
    request = IngestRequest(
        reports=entry.reports,
        subject=Subject(
            Provider(subject["provider"]),
            subject["org"],
            subject["repo"],
            pr=subject["pr"],
            branch=subject["branch"],
            target_branch=subject["target_branch"],
        ),
        cases_repo="",
        identity=GitIdentity(*fields["identity"]),
        fmt=ReportFormat(fields["format"]) if fields["format"] else None,
        sources=tuple(fields["sources"]),
        commit=fields["commit"],
        committed_at=fields["committed_at"],
        run_url=fields["run_url"],
        image=fields["image"],
        image_digest=fields["image_digest"],
        policy_file=policy,
        mode=Mode(fields["mode"]) if fields["mode"] else None,
        max_report_bytes=int(fields["max_report_bytes"]),
        max_findings=int(fields["max_findings"]),
        source_root=fields["source_root"],
        fallback_root=fields["fallback_root"],
    )
    if "checkout" in fields:
        replays = checkout_replays(fields["checkout"], len(request.reports), origin)
        request = replace(request, read_checkout=False, checkout_replay=replays)
    return request, parse_time(str(fields["received_at"]))


def _settle_in_flight(
    store: CasesStore, queue: RecordQueue, waiting: list[WaitingRecord]
) -> list[WaitingRecord]:
    """Finish what a fold that died between its push and its clean-up left: its entries are
    removed when its commit reached the cases repo, and fold again otherwise."""
    noted = queue.in_flight()
    if noted is None:
        return waiting
    commit, entry_ids = noted
    head = store.snapshot().head
    if head is not None and store.is_ancestor(commit, head):
        queue.remove(entry_ids)
        waiting = [entry for entry in waiting if entry.entry_id not in entry_ids]
    queue.end_push()
    return waiting


def landed_records(
    waiting: Sequence[WaitingRecord], results: Sequence[IngestResult | SecurecaseError]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The entries whose records are now in the cases repo, and a warning per one that stays."""
    landed, warnings = [], []
    for entry, result in zip(waiting, results, strict=True):
        if isinstance(result, SecurecaseError):
            warnings.append(
                f"queued record {entry.entry_id} stays queued: {result.message}"
                + (f" ({result.hint})" if result.hint else "")
            )
        else:
            landed.append(entry.entry_id)
    return tuple(landed), tuple(warnings)


def clamp_commit_time(value: str | None, now: datetime) -> tuple[str | None, tuple[str, ...]]:
    """The commit time to record, and a warning when it lay too far in the future.

    A time more than :data:`COMMIT_TIME_SKEW` after ``now`` becomes ``now``: recorded as
    given, it would make every later scan of the case count as late and never apply.
    """
    if value is None:
        return None, ()
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment <= now + COMMIT_TIME_SKEW:
        return value, ()
    clamped = iso(now)
    return clamped, (
        f"--commit-time {value} is in the future (more than "
        f"{int(COMMIT_TIME_SKEW.total_seconds() // 60)} minutes after this run's clock, "
        f"{clamped}); recorded as {clamped}",
    )


def _read_policy_file(path: Path) -> bytes:
    return read_regular_file(path, what=f"--policy {path}")


def _repo_policy(snapshot: Snapshot) -> Policy:
    data = repo_policy_bytes(snapshot, POLICY_FILE)
    if data is None:
        return builtin_policy()
    return load_policy(data, origin=POLICY_FILE)


def _read_case(snapshot: Snapshot, folder: str, subject: Subject) -> tuple[Case, bool] | None:
    """The subject's case and whether its folder is in the first layout; None if no case yet.

    A folder in the first layout (findings inside case.yaml) is read so this run rewrites it
    in the current one, every finding carried over.
    """
    case_yaml = snapshot.read(f"{folder}/{CASE_FILE}")
    if case_yaml is None:
        return None
    findings_json = snapshot.read(f"{folder}/{FINDINGS_FILE}")
    case = load_case(case_yaml, findings_json, folder=folder, old_layout=True)
    if case.key != subject.key:
        raise CaseFileError(
            f"{folder}/{CASE_FILE}: holds case {case.key!r}, expected {subject.key!r}",
            hint="the folder name and the case key disagree; fix the file by pull request",
        )
    return case, findings_json is None


def _crowding(snapshot: Snapshot, folder: str) -> tuple[str, ...]:
    """A warning when the new case's folder makes its repository's folder crowded."""
    parent = folder.rpartition("/")[0]
    count = snapshot.entries(parent) + 1
    if count <= FOLDER_ENTRIES_WARNING:
        return ()
    return (
        f"{parent} now holds {count} case folders; GitHub recommends at most 3,000 entries "
        "per directory: run `securecase sweep` on schedule (it retires closed cases after "
        "--retire-after days, 30 by default) or lower --retire-after",
    )


def _plan(
    request: IngestRequest,
    parsed: list[Report],
    policy: Policy,
    found: tuple[Case, bool] | None,
    folder: str,
    received_at: str,
    baseline: Case | None,
    today: date,
    target: Subject | None,
    warnings: tuple[str, ...],
    documents: Mapping[str, object | None],
    packer: RawPacker,
) -> Plan[IngestResult]:
    previous, first_layout = found if found else (None, False)
    stored = {r.source: _stored_report(r, folder, documents.get(r.source)) for r in parsed}
    # The digest of the report as stored (secrets masked, before compression), so
    # `cases validate` can check it.
    raw_sha = {source: hashlib.sha256(s.masked).hexdigest() for source, s in stored.items()}
    raw_paths = {source: s.path for source, s in stored.items()}
    report_times = {}
    for report in parsed:
        if report.scanned_at and _is_time(report.scanned_at, not_after=received_at):
            continue
        # A report without its own timestamp (or with one that is not a time, or lies in the
        # future: finding ages count from it, and a future time would make every later scan
        # look stale) keeps the one it got when first received, so a re-sent report changes
        # nothing.
        before = previous.sources.get(report.source) if previous else None
        same = before is not None and before.sha256 == raw_sha[report.source]
        report_times[report.source] = before.scanned_at if same and before else received_at
    image_name, image_tag = split_image(request.image)
    scan = Scan(
        subject=request.subject,
        reports=tuple(parsed),
        received_at=received_at,
        commit=request.commit,
        committed_at=request.committed_at,
        run_url=request.run_url,
        image_name=image_name,
        image_tag=image_tag,
        image_digest=request.image_digest,
        raw_paths=raw_paths,
        raw_sha256=raw_sha,
        report_times=report_times,
    )
    placeholder = GateRecord(mode=policy.mode.value, decision="pass", gate=False)
    merged: MergeResult = merge(previous, scan, placeholder)
    _check_findings_limit(len(merged.case.findings), request.max_findings, "the case would hold")
    decision = evaluate_case(policy, merged.case, baseline=baseline, today=today, mode=request.mode)
    gate = decision.gate_record(policy)
    case = mark_findings(
        replace(merged.case, gate=gate),
        new=decision.new if merged.case.subject.is_pr else None,
        excepted={
            fid: ExceptionRef(exc.id, exc.expires.isoformat())
            for fid, exc in decision.excepted.items()
        },
    )
    case = mark_sla(case, policy.sla_days, today=today, known_since=first_seen_in(baseline))
    stale = previous is not None and is_stale(previous, scan)
    if stale and previous is not None:
        case = record_stale(previous, scan)
    result = IngestResult(
        case=case,
        decision=decision,
        policy=policy,
        case_path=f"{folder}/{CASE_FILE}",
        cases_commit=None,
        committed=False,
        stale=stale,
        appeared=() if stale else merged.appeared,
        fixed=() if stale else merged.fixed,
        baseline_key=target.key if target else None,
        warnings=warnings,
    )
    unchanged = case is previous or (
        previous is not None and _unchanged(previous, case, raw_sha, stale)
    )
    if previous is not None and unchanged and not first_layout:
        return Plan(change=None, result=replace(result, case=previous))
    # The raw reports' bytes are waited for only now: a large one was being compressed
    # since it was read (see RawPacker).
    files = {} if stale else {s.path: s.content(packer) for s in stored.values()}
    files.update({f"{folder}/{name}": data for name, data in dump_case(case).items()})
    message = _commit_message(case, decision, scan, result)
    # A report that grew past (or fell below) the compression threshold leaves its other form.
    other_form = tuple(
        path[: -len(".gz")] if path.endswith(".gz") else path + ".gz"
        for path in raw_paths.values()
        if path in files
    )
    change = Change(files=files, delete=other_form, message=message, authored_at=received_at)
    return Plan(change=change, result=result)


@dataclass(frozen=True, slots=True)
class _StoredReport:
    """A report as the cases repo stores it: its bytes with secrets masked, at ``path``
    (``planned`` + ``.gz`` when large, then compressed)."""

    masked: bytes
    planned: str
    path: str
    origin: str

    def content(self, packer: RawPacker) -> bytes:
        """The bytes stored at ``path``. The store masks every file it commits: told that
        compressed bytes hold masked ones, it does not decompress them to check."""
        if self.path == self.planned:
            return self.masked
        packed = packed_raw(self.masked, origin=self.origin, pack=packer.packed)
        remember_packed(self.path, self.masked, packed)
        return packed


def _stored_report(report: Report, folder: str, document: object | None) -> _StoredReport:
    """The report's bytes with secrets masked, and where they are stored. Masking seldom
    changes a report: its compression, started when it was read, is then the one stored;
    when masking changes it, the masked bytes are compressed instead."""
    planned = f"{folder}/raw/{report.source}{report.raw_suffix}"
    masked = masked_file(planned, report.raw, document=document)
    return _StoredReport(
        masked, planned, stored_path(planned, report.raw), origin=f"report {report.source}"
    )


#: What case.yaml accepts as a time (its schema): a date and a time of day, to the second.
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def _is_time(value: str, *, not_after: str) -> bool:
    """True for a time case.yaml accepts that is not later than ``not_after``."""
    if not _TIME_RE.match(value):
        return False
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        limit = datetime.fromisoformat(not_after.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment <= limit


def _unchanged(previous: Case, case: Case, raw_sha: dict[str, str], stale: bool) -> bool:
    if not same_case_content(case, previous):
        return False
    return stale or all(
        (rec := previous.sources.get(name)) is not None and rec.sha256 == sha
        for name, sha in raw_sha.items()
    )


#: Anything git could read as a line break or that a terminal would act on.
_LINE_BREAKS_RE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one line of a commit message: control characters and line breaks become
    spaces, and it is cut to ``limit`` characters, so no value can start a line of its own
    (and with it a ``Securecase-*`` trailer)."""
    flat = " ".join(_LINE_BREAKS_RE.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _trailer(name: str, value: str) -> str:
    """One ``Securecase-<name>: value`` line. The values were validated upstream; flattening
    them again means a missed check still cannot forge a trailer."""
    return f"Securecase-{name}: {one_line(value, limit=2000)}"


def _commit_message(case: Case, decision: Decision, scan: Scan, result: IngestResult) -> str:
    """The bot's commit message. Every interpolated value goes through :func:`one_line`; the
    trailers carry only validated values (case key, hex commit id, enums, counts, rule ids).
    """
    counts = case.counts
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no active findings"
    sources = ", ".join(f"{one_line(r.source)} ({len(r.findings)})" for r in scan.reports)
    key = one_line(case.key, limit=2000)
    if result.stale:
        subject = f"securecase: {key}: late scan of an older commit recorded, not applied"
    else:
        subject = f"securecase: {key}: {decision.decision} ({summary})"
    body = [
        subject,
        "",
        f"Sources: {sources}.",
        f"Appeared: {len(result.appeared)}, fixed: {len(result.fixed)}, "
        f"status: {case.status.value}.",
    ]
    body.extend(f"Blocked by {one_line(reason)}" for reason in decision.reasons)
    body.extend(
        f"Excepted by {one_line(use.id)} (expires {use.expires.isoformat()}): "
        f"{len(use.findings)} finding(s)."
        for use in decision.exceptions_applied
    )
    body.extend(f"Warning: {one_line(warning)}" for warning in result.warnings)
    body += [
        "",
        _trailer("Case", key),
        _trailer("Commit", scan.commit or "unknown"),
        _trailer("Decision", decision.decision),
        _trailer("Status", case.status.value),
        # Counts too, so `cases history` reads a bot commit's facts without opening the file.
        _trailer("Counts", " ".join(f"{k}={n}" for k, n in counts.items())),
    ]
    if decision.blocking_rules:
        # The rule ids, so `report` counts blocking rules without opening a file version.
        body.append(_trailer("Rules", " ".join(one_line(r) for r in decision.blocking_rules)))
    if result.stale:
        body.append(_trailer("Stale", "true"))
    return "\n".join(body) + "\n"
