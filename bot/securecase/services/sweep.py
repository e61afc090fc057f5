"""The scheduled upkeep: close finished cases, re-judge aged ones, commit, notify, report.

Order of a sweep: read every case and the policy at the cases repo's head; list each GitHub
repository's pull requests and branches once; judge every case that is not CLOSED
(``domain.sweep``); deliver the events not notified before (webhooks, playbook issues); then
commit one change per case that changed, all published in one push (``update_chain``). When
the push is rejected, only the cases whose file moved are read and judged again. Finally a
check run is posted on the head commit of each pull request whose decision changed.

Reading and writing a case file happens in :func:`_load` and :func:`_dump` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from securecase.clock import Clock, iso
from securecase.domain.case import Case, Status
from securecase.domain.policy import Policy, builtin_policy, load_policy
from securecase.domain.policy.evaluate import glob_match
from securecase.domain.retirement import Retirement
from securecase.domain.subjects import CASES_ROOT, Provider
from securecase.domain.sweep import (
    CaseSweep,
    Event,
    PullState,
    RepoState,
    close_reason,
    pending_events,
    record_notified,
    state_event_ids,
    sweep_case,
)
from securecase.errors import CaseFileError, GitHubError
from securecase.github.links import repo_web_base
from securecase.services.catalog import require_existing
from securecase.services.ingest import POLICY_FILE, baseline_subject
from securecase.services.notify import Webhook, deliver
from securecase.services.retirement import RETIRED_TRAILER, due_retirements
from securecase.services.sweepgithub import playbook_issues, post_check_runs
from securecase.services.sweepmemo import Known, SweepMemo
from securecase.storage.cachedir import repo_folder
from securecase.storage.casefile import CASE_FILE, FINDINGS_FILE, dump_case
from securecase.storage.caseread import CaseFolder, CaseReader
from securecase.storage.parsecache import ParseCache, no_cache
from securecase.storage.repos import open_store
from securecase.storage.store import (
    CasesStore,
    ChainPlan,
    Change,
    GitIdentity,
    Snapshot,
)

if TYPE_CHECKING:  # PyGithub is imported only when GitHub is used
    from securecase.github.client import GitHubSettings
    from securecase.github.listing import SweepClient

#: Cases recorded this long before a pull request's last update may still have missed it.
LISTING_MARGIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SweepRequest:
    """What one ``securecase sweep`` asks for."""

    cases_repo: str
    identity: GitIdentity
    repo_glob: str | None = None
    dry_run: bool = False
    webhooks: tuple[Webhook, ...] = ()
    issues_repo: str | None = None
    github: GitHubSettings | None = field(default=None, repr=False)
    cases_web_url: str | None = None
    push_timeout: float = 120.0
    #: Called with (done, total) while cases are judged (a progress line); never required.
    progress: Callable[[int, int], None] | None = None
    #: Drop the raw reports of cases closed at least this many days ago (history keeps them).
    prune_raw_after: int | None = None
    #: Remove from the tip the folders of cases CLOSED (and left alone by people) at least
    #: this many days (None: never); history keeps them (``services.retirement``).
    retire_after: int | None = None
    #: The cache directory (None: off). A cases repo given as a URL is read through a
    #: temporary clone, so its sweep memo is kept here, per cases repo, between runs.
    cache_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class DecisionChange:
    """A case whose verdict changed in this sweep."""

    case_key: str
    before: str
    after: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What the sweep did (or, with ``dry_run``, would do)."""

    closed: tuple[tuple[str, str], ...]
    decision_changes: tuple[DecisionChange, ...]
    sla_breaches: tuple[tuple[str, str, str, str], ...]  # case key, finding, severity, due
    expiring_exceptions: tuple[tuple[str, str, tuple[str, ...]], ...]  # id, expires, cases
    commits: tuple[str, ...]
    planned: tuple[tuple[str, tuple[str, ...]], ...]  # case key, what changes
    api_calls: int
    notified: int
    warnings: tuple[str, ...]
    dry_run: bool
    #: Keys of the closed cases whose raw reports were (with ``dry_run``: would be) removed.
    pruned: tuple[str, ...] = ()
    #: (key, days left alone) of the cases removed (with ``dry_run``: to remove) from the tip.
    retired: tuple[tuple[str, int], ...] = ()


@dataclass
class _Judged:
    """Cases as read (by blob id, so a retry re-reads only files that moved) and judged."""

    cases: dict[str, Case] = field(default_factory=dict)  # version -> case
    sweeps: dict[tuple[str, str | None, str], CaseSweep] = field(default_factory=dict)


def sweep(request: SweepRequest, *, clock: Clock, cache: ParseCache | None = None) -> SweepResult:
    """Run one sweep (see the module docstring); never raises for a GitHub or webhook failure.

    ``cache`` (by blob id) spares parsing case files read before.
    """
    require_existing(request.cases_repo)
    cache = cache or no_cache()
    now_dt = clock.now()
    now, today = iso(now_dt), now_dt.astimezone(UTC).date()
    warnings: list[str] = []
    with open_store(
        request.cases_repo, identity=request.identity, paths=None, timeout=request.push_timeout
    ) as store:
        judged = _Judged()
        snapshot = store.snapshot()
        policy = _policy(snapshot)
        memo = SweepMemo.load(_memo_folder(store, request), policy.blob)
        channels = _channels(request)
        cases, known = _read_cases(store, cache, snapshot, request, judged, memo, today, channels)
        client = _client(request, cases, known, warnings)
        states = _list_repos(client, cases, known, warnings)
        cases.update(_closing_too(store, cache, known, states, now, judged))
        sweeps = _judge_all(cases, policy, states, today, now, judged, request.progress)
        prunes = _prunable(store, cache, snapshot, cases, known, request.prune_raw_after, today)
        retiring = _retiring(store, cache, snapshot, cases, known, request, today, channels)
        prunes = {f: v for f, v in prunes.items() if f not in retiring}
        closed_pending = _closed_pending(cases, today) if channels else []
        events = [e for s in sweeps.values() for e in s.events] + closed_pending
        delivered: set[tuple[str, str]] = set()
        sent = 0
        if request.dry_run:
            return _result(
                sweeps, (), client, 0, warnings, dry_run=True, pruned=prunes, retired=retiring
            )
        if events and channels:
            ok, issue_warnings = _deliver(request, client, events)
            warnings.extend(issue_warnings)
            if ok:
                delivered = {(e.case_key, e.id) for e in events}
                sent = len(events)

        def plan(snap: Snapshot) -> ChainPlan[dict[str, CaseSweep]]:
            nonlocal policy, cases, prunes, retiring
            if snap.head != snapshot.head:
                policy = _policy(snap)
                again_memo = memo if memo.policy == policy.blob else SweepMemo(policy.blob)
                cases, moved = _read_cases(
                    store, cache, snap, request, judged, again_memo, today, channels
                )
                cases.update(_closing_too(store, cache, moved, states, now, judged))
                judgements = _judge_all(cases, policy, states, today, now, judged, None)
                prunes = _prunable(store, cache, snap, cases, moved, request.prune_raw_after, today)
                retiring = _retiring(store, cache, snap, cases, moved, request, today, channels)
                prunes = {f: v for f, v in prunes.items() if f not in retiring}
            else:
                judgements = sweeps
            changes = _changes(cases, judgements, delivered, today)
            # A case this sweep changes (notified, say) retires at the next one.
            retiring = {f: r for f, r in retiring.items() if not _touches(changes, f)}
            return _with_retirements(_with_prunes(changes, prunes), retiring, now)

        committed = store.update_chain(plan)
        final = committed.result
        memo.remember(cases, final, policy, today)
        memo.forget(retiring if committed.commits else ())
        memo.save()
    result = _result(
        final,
        committed.commits,
        client,
        sent,
        warnings,
        dry_run=False,
        pruned=prunes,
        retired=retiring,
    )
    if client is not None:
        head = committed.commits[-1] if committed.commits else None
        web_base = request.cases_web_url or repo_web_base(request.cases_repo)
        warnings.extend(
            post_check_runs(client, final, states, policy, head=head, web_base=web_base, now=now_dt)
        )
        result = replace(result, api_calls=len(client.calls), warnings=tuple(warnings))
    return result


# -- reading and writing case files (the one place that knows the case file format) ----------


#: A case folder's version: its case.yaml and findings.json blob ids, joined (either moving
#: makes a new version, so a retry re-reads exactly the cases that moved).
def _version(case_oid: str, findings_oid: str | None) -> str:
    return f"{case_oid}:{findings_oid or ''}"


def _load(store: CasesStore, cache: ParseCache, folders: Mapping[str, str]) -> dict[str, Case]:
    """Read the cases of these folders (folder -> version) in one batch."""
    wanted = []
    for folder, version in sorted(folders.items()):
        case_oid, findings_oid = version.split(":")
        wanted.append(CaseFolder(folder, case_oid, findings_oid or None))
    reader = CaseReader(store, cache)
    found = {}
    for where, case in reader.cases(wanted):
        if isinstance(case, CaseFileError):
            raise case
        found[where.folder] = case
    return found


def _dump(case: Case) -> dict[str, bytes]:
    """The files of a case folder to write (relative to the folder)."""
    return dump_case(case)


def _read_cases(
    store: CasesStore,
    cache: ParseCache,
    snapshot: Snapshot,
    request: SweepRequest,
    judged: _Judged,
    memo: SweepMemo,
    today: date,
    channels: bool,
) -> tuple[dict[str, tuple[Case, str]], dict[str, Known]]:
    """The cases at the snapshot: folder -> (case, version) for those read, and
    folder -> what the memo knows for those it says cannot have changed (not read).

    Files are read once per blob id, so on a retry only the ones that moved are parsed again.
    """
    blobs = store.blob_ids(snapshot.head, CASES_ROOT, names=(CASE_FILE, FINDINGS_FILE))
    listed = {
        path[: -len(CASE_FILE) - 1]: _version(
            oid, blobs.get(path[: -len(CASE_FILE)] + FINDINGS_FILE)
        )
        for path, oid in blobs.items()
        if path.endswith("/" + CASE_FILE)
    }
    known: dict[str, Known] = {}
    for folder, oid in listed.items():
        hit = memo.lookup(folder, oid, listed, today, channels=channels)
        if hit is not None:
            known[folder] = hit
    wanted = {f: oid for f, oid in listed.items() if f not in known}
    loaded = _load(store, cache, {f: oid for f, oid in wanted.items() if oid not in judged.cases})
    for folder, case in loaded.items():
        judged.cases[wanted[folder]] = case
    found = {folder: (judged.cases[oid], oid) for folder, oid in wanted.items()}
    glob = request.repo_glob
    if glob:
        found = {
            f: v for f, v in found.items() if glob_match(glob, v[0].subject.slug, ignore_case=True)
        }
        known = {
            f: v for f, v in known.items() if glob_match(glob, v.subject.slug, ignore_case=True)
        }
    return found, known


def _closing_too(
    store: CasesStore,
    cache: ParseCache,
    known: Mapping[str, Known],
    states: Mapping[tuple[str, str], RepoState],
    now: str,
    judged: _Judged,
) -> dict[str, tuple[Case, str]]:
    """The cases the memo let us skip that the listings close after all: read them now."""
    closing = {
        folder: k.blob
        for folder, k in known.items()
        if k.status is not Status.CLOSED
        and close_reason(k.subject, states.get((k.subject.org, k.subject.repo)), now=now)
    }
    found = {}
    for folder, case in _load(store, cache, closing).items():
        oid = closing[folder]
        judged.cases[oid] = case
        found[folder] = (case, oid)
    return found


def _memo_folder(store: CasesStore, request: SweepRequest) -> str | None:
    """Where the sweep memo lives: inside a local checkout's git dir, else in the cache."""
    if store.private_dir is not None:
        return store.private_dir
    if request.cache_dir is None:
        return None
    return str(repo_folder(request.cache_dir, "sweep-memo", request.cases_repo))


def _policy(snapshot: Snapshot) -> Policy:
    data = snapshot.read(POLICY_FILE)
    return builtin_policy() if data is None else load_policy(data, origin=POLICY_FILE)


# -- retention -----------------------------------------------------------------------------


def _prunable(
    store: CasesStore,
    cache: ParseCache,
    snapshot: Snapshot,
    cases: Mapping[str, tuple[Case, str]],
    known: Mapping[str, Known],
    days: int | None,
    today: date,
) -> dict[str, tuple[Case, int]]:
    """folder -> (case, days since it closed) for the CLOSED cases closed ``days`` or more
    days ago that still hold raw reports (none when ``days`` is None). Once pruned, a case is
    not read for it again.
    """
    if days is None:
        return {}
    # A case folder ends in pr-N or branch-NAME, so "/raw/" before the last segment is its raw/.
    with_raw = {
        path.rpartition("/raw/")[0]
        for path in store.blob_ids(snapshot.head, CASES_ROOT)
        if "/raw/" in path
    }
    closed = {f: v[0] for f, v in cases.items() if f in with_raw}
    unread = {f: k.blob for f, k in known.items() if f in with_raw and k.status is Status.CLOSED}
    closed.update(_load(store, cache, unread))
    found = {}
    for folder, case in sorted(closed.items()):
        if case.status is Status.CLOSED and case.closed is not None:
            age = (today - _time(case.closed.at).date()).days
            if age >= days:
                found[folder] = (case, age)
    return found


def _with_prunes(
    plan: ChainPlan[dict[str, CaseSweep]], prunes: Mapping[str, tuple[Case, int]]
) -> ChainPlan[dict[str, CaseSweep]]:
    """``plan`` with each pruned case's ``raw/`` folder removed: in the commit that already
    changes that case, else in one commit of its own."""
    changes = list(plan.changes)
    for folder, (case, age) in prunes.items():
        what = f"raw reports pruned (closed {age} day(s) ago)"
        mine = [i for i, c in enumerate(changes) if f"{folder}/{CASE_FILE}" in c.files]
        if mine:
            before = changes[mine[0]]
            message = before.message.replace("\n\n", f"; {what}\n\n", 1)
            changes[mine[0]] = replace(before, delete=(f"{folder}/raw",), message=message)
        else:
            message = _commit_message(case, [what])
            changes.append(Change(files={}, delete=(f"{folder}/raw",), message=message))
    return ChainPlan(tuple(changes), plan.result)


def _retiring(
    store: CasesStore,
    cache: ParseCache,
    snapshot: Snapshot,
    cases: Mapping[str, tuple[Case, str]],
    known: Mapping[str, Known],
    request: SweepRequest,
    today: date,
    channels: bool,
) -> dict[str, Retirement]:
    """folder -> retirement of the CLOSED cases due to leave the tip (none when
    ``retire_after`` is None); see :mod:`securecase.services.retirement`."""
    if request.retire_after is None:
        return {}
    closed = {f: case for f, (case, _) in cases.items() if case.status is Status.CLOSED}
    closed.update(
        _load(store, cache, {f: k.blob for f, k in known.items() if k.status is Status.CLOSED})
    )
    unnotified = frozenset(
        f for f, case in closed.items() if channels and pending_events(case, None, today=today)
    )
    return due_retirements(
        store,
        snapshot.head,
        closed,
        days=request.retire_after,
        today=today,
        bot_email=request.identity.email,
        unnotified=unnotified,
    )


def _touches(plan: ChainPlan[dict[str, CaseSweep]], folder: str) -> bool:
    inside = folder + "/"
    return any(
        path.startswith(inside)
        for change in plan.changes
        for path in (*change.files, *change.delete)
    )


def _with_retirements(
    plan: ChainPlan[dict[str, CaseSweep]], retiring: Mapping[str, Retirement], now: str
) -> ChainPlan[dict[str, CaseSweep]]:
    """``plan`` with one more commit per retiring case, removing its folder, dated by the
    sweep's clock (``report`` reads when a case retired from it)."""
    changes = list(plan.changes)
    for folder, retired in sorted(retiring.items()):
        what = f"retired from the tip (closed, left alone {retired.idle_days} day(s))"
        message = _commit_message(retired.case, [what], retired=folder)
        changes.append(Change(files={}, delete=(folder,), message=message, authored_at=now))
    return ChainPlan(tuple(changes), plan.result)


# -- GitHub listings ----------------------------------------------------------------------


def _client(
    request: SweepRequest,
    cases: Mapping[str, tuple[Case, str]],
    known: Mapping[str, Known],
    warnings: list[str],
) -> SweepClient | None:
    live = _live(cases, known)
    others = sum(1 for c in live if c.subject.provider is not Provider.GITHUB)
    if others:
        warnings.append(
            f"closing skipped for {others} case(s) of providers other than GitHub "
            "(no listing for them); they were re-judged"
        )
    github_live = len(live) - others
    needs_client = github_live or request.issues_repo
    if not needs_client:
        return None
    if request.github is None:
        warnings.append(
            "closing skipped: no GitHub credentials (pass --github-token or set GITHUB_TOKEN); "
            "cases were re-judged"
        )
        return None
    from securecase.github.listing import SweepClient

    return SweepClient(request.github)


def _live(cases: Mapping[str, tuple[Case, str]], known: Mapping[str, Known]) -> list[Case | Known]:
    """The cases that are not CLOSED, read or known from the memo."""
    live: list[Case | Known] = [c for c, _ in cases.values() if c.status is not Status.CLOSED]
    live += [k for k in known.values() if k.status is not Status.CLOSED]
    return live


def _list_repos(
    client: SweepClient | None,
    cases: Mapping[str, tuple[Case, str]],
    known: Mapping[str, Known],
    warnings: list[str],
) -> dict[tuple[str, str], RepoState]:
    """One pull request listing and one branch listing per GitHub repository with live cases."""
    if client is None:
        return {}
    wanted: dict[tuple[str, str], list[Case | Known]] = {}
    for case in _live(cases, known):
        if case.subject.provider is Provider.GITHUB:
            wanted.setdefault((case.subject.org, case.subject.repo), []).append(case)
    states = {}
    for (org, name), repo_cases in sorted(wanted.items()):
        slug = f"{org}/{name}"
        prs = {c.subject.pr for c in repo_cases if c.subject.is_pr and c.subject.pr is not None}
        pulls: dict[int, PullState] | None = None
        branches: frozenset[str] | None = None
        try:
            if prs:
                oldest = min(c.created_at for c in repo_cases if c.subject.is_pr)
                pulls = client.pull_states(slug, prs, not_before=_time(oldest) - LISTING_MARGIN)
            if any(not c.subject.is_pr for c in repo_cases):
                branches = client.branch_names(slug)
        except GitHubError as error:
            warnings.append(f"{slug}: listing failed, its cases are not closed: {error.message}")
        states[(org, name)] = RepoState(pulls=pulls, branches=branches)
    return states


def _time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime(1970, 1, 1, tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- judging ------------------------------------------------------------------------------


def _judge_all(
    cases: Mapping[str, tuple[Case, str]],
    policy: Policy,
    states: Mapping[tuple[str, str], RepoState],
    today: date,
    now: str,
    judged: _Judged,
    progress: Callable[[int, int], None] | None,
) -> dict[str, CaseSweep]:
    """folder -> what the sweep does to each case that is not CLOSED."""
    live = {f: v for f, v in cases.items() if v[0].status is not Status.CLOSED}
    out = {}
    for done, (folder, (case, oid)) in enumerate(sorted(live.items()), start=1):
        base = baseline_subject(case.subject)
        baseline = cases[base.folder][0] if base is not None and base.folder in cases else None
        # Keyed by the case's and its baseline's blobs: unchanged files are not judged again.
        base_oid = cases[base.folder][1] if base is not None and baseline is not None else None
        memo_key = (oid, base_oid, policy.blob)
        found = judged.sweeps.get(memo_key)
        if found is None:
            state = states.get((case.subject.org, case.subject.repo))
            found = sweep_case(case, policy, today=today, now=now, state=state, baseline=baseline)
            judged.sweeps[memo_key] = found
        out[folder] = found
        if progress is not None:
            progress(done, len(live))
    return out


def _closed_pending(cases: Mapping[str, tuple[Case, str]], today: date) -> list[Event]:
    """Closing events of CLOSED cases whose notification has not gone out yet."""
    return [
        e
        for case, _ in cases.values()
        if case.status is Status.CLOSED and case.closed is not None
        for e in pending_events(case, None, today=today)
    ]


def _channels(request: SweepRequest) -> bool:
    return bool(request.webhooks or request.issues_repo)


def _changes(
    cases: Mapping[str, tuple[Case, str]],
    sweeps: Mapping[str, CaseSweep],
    delivered: set[tuple[str, str]],
    today: date,
) -> ChainPlan[dict[str, CaseSweep]]:
    """One change per case to write: swept, newly notified, or both."""
    changes = []
    final: dict[str, CaseSweep] = {}
    for folder in sorted(cases):
        case, _ = cases[folder]
        swept = sweeps.get(folder)
        after = swept.case if swept is not None else case
        what = list(swept.what) if swept is not None and swept.changed else []
        mine = {event_id for key, event_id in delivered if key == case.key}
        if mine or what:
            decision = swept.decision if swept is not None else None
            current = state_event_ids(after, decision, today=today)
            noted = record_notified(after, mine, current=current)
            if len(noted.notified) > len(after.notified) or mine & set(noted.notified):
                added = len(set(noted.notified) - set(after.notified))
                if added:
                    what.append(f"notified {added} event(s)")
            after = noted
        if swept is not None:
            final[folder] = replace(swept, case=after)
        if not what or after == case:
            continue
        files = {f"{folder}/{name}": blob for name, blob in _dump(after).items()}
        changes.append(Change(files=files, message=_commit_message(after, what)))
    return ChainPlan(tuple(changes), final)


def _commit_message(case: Case, what: Sequence[str], *, retired: str | None = None) -> str:
    counts = case.counts
    summary = "; ".join(what)
    body = [
        f"securecase: {case.key}: sweep: {summary}",
        "",
        f"Status: {case.status.value}, decision: {case.gate.decision}.",
    ]
    body.extend(f"Blocked by {reason}" for reason in case.gate.reasons if case.gate.gate)
    body += [
        "",
        f"Securecase-Case: {case.key}",
        f"Securecase-Commit: {case.latest.commit or 'unknown'}",
        f"Securecase-Decision: {case.gate.decision}",
        f"Securecase-Status: {case.status.value}",
        "Securecase-Counts: " + " ".join(f"{k}={n}" for k, n in counts.items()),
        f"Securecase-Sweep: {summary}",
    ]
    if retired is not None:
        body.append(f"{RETIRED_TRAILER}: {retired}")
    return "\n".join(body) + "\n"


# -- notifying ----------------------------------------------------------------------------


def _deliver(
    request: SweepRequest, client: SweepClient | None, events: Sequence[Event]
) -> tuple[bool, list[str]]:
    """Send the events; True when every channel took them (then they count as notified)."""
    warnings: list[str] = []
    ok = True
    if request.webhooks:
        failed = deliver(request.webhooks, events)
        warnings.extend(failed)
        ok = not failed
    if request.issues_repo:
        if client is None:
            issue_warnings = ["--open-issues skipped: no GitHub credentials"]
        else:
            issue_warnings = playbook_issues(client, request.issues_repo, events)
        # Not recorded as notified unless every channel took them: the next sweep retries.
        ok = ok and not issue_warnings
        warnings.extend(issue_warnings)
    return ok, warnings


# -- the result ---------------------------------------------------------------------------


def _result(
    sweeps: Mapping[str, CaseSweep],
    commits: tuple[str, ...],
    client: SweepClient | None,
    notified: int,
    warnings: list[str],
    *,
    dry_run: bool,
    pruned: Mapping[str, tuple[Case, int]],
    retired: Mapping[str, Retirement],
) -> SweepResult:
    ordered = [sweeps[f] for f in sorted(sweeps)]
    closed = tuple((s.case.key, s.closed.reason.value) for s in ordered if s.closed is not None)
    changes = tuple(
        DecisionChange(s.case.key, s.decision_from or "", s.decision.decision, s.decision.reasons)
        for s in ordered
        if s.decision_changed and s.decision is not None
    )
    breaches = tuple(
        (s.case.key, b.finding, b.severity.value, b.due) for s in ordered for b in s.sla_breaches
    )
    expiring: dict[tuple[str, str], list[str]] = {}
    for s in ordered:
        for exc_id, day in s.expiring:
            expiring.setdefault((exc_id, day.isoformat()), []).append(s.case.key)
    planned = tuple((s.case.key, s.what) for s in ordered if s.changed)
    return SweepResult(
        closed=closed,
        decision_changes=changes,
        sla_breaches=breaches,
        expiring_exceptions=tuple(
            (eid, day, tuple(keys)) for (eid, day), keys in sorted(expiring.items())
        ),
        commits=commits,
        planned=planned,
        api_calls=len(client.calls) if client is not None else 0,
        notified=notified,
        warnings=tuple(warnings),
        dry_run=dry_run,
        pruned=tuple(case.key for case, _ in pruned.values()),
        retired=tuple((r.case.key, r.idle_days) for _, r in sorted(retired.items())),
    )
