"""``securecase report``: gather the cases at HEAD and the history's commits, compute metrics.

The computing is :mod:`securecase.domain.metrics` (pure); this module only reads the cases
repo, in three steps: every case at HEAD (one ``ls-tree``, one batch of blobs; what the
metrics read of a case, :class:`~securecase.domain.metrics.CaseFacts`, is kept in the parse
cache by the blob ids of its two files, so a warm run reads none of them, and all cases
together by the tree id of ``cases/``, so a warm run lists no folder either: see
:func:`_cases_at`), the policy, and
one ``git log -z`` of every commit (its id, parents, author email, author date and the
``Securecase-*`` trailers the metrics read). A bot commit's trailers say which case it
recorded and what the gate decided. For human commits only, one ``git diff-tree --stdin``
lists the case files each changed, which are read (before and after, in one batch) to tell
whether it changed a status or triage. The log has no path limit and no diff: comparing
trees for every commit would cost several times the log itself, and every bot commit with a
case trailer writes that case.

Cases the sweep retired from the tip (``services.retirement``) count as if they were still
there: the log's ``Securecase-Retired`` commits name them, and those retired on or after the
window's first day (a case retired earlier resolved nothing in the window) are read as their
retirement commit's parent had them, files found by one ``diff-tree``. A key back at the tip
(a branch made again) is read from the tip only.

The events derived from the log are folded (:func:`~securecase.domain.metrics.fold_history`:
the gate's scans per day and repository, each case's first acknowledgement, the
retirements) and kept in a cache outside the work tree
(:mod:`securecase.services.eventcache`) with the commit they go up to; a later run logs only
the commits since, when HEAD descends from that commit, and folds their events onto the
cached history; it reads all history otherwise (a rewritten history, no cache, caching off),
with the same result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from securecase.clock import Clock
from securecase.domain.case import CaseHeader, Status
from securecase.domain.findings import Severity
from securecase.domain.metrics import (
    EVENT_TRAILERS,
    AuthorKind,
    CaseFacts,
    CommitEvent,
    FindingTimes,
    History,
    Metrics,
    Window,
    acknowledges,
    case_facts,
    compute,
    fold_history,
    parse_time,
)
from securecase.domain.policy import Policy, builtin_policy, load_policy
from securecase.domain.subjects import CASES_ROOT
from securecase.errors import CaseFileError, StoreError, UsageError
from securecase.github.links import case_file_url, repo_web_base
from securecase.services.catalog import require_existing
from securecase.services.eventcache import CachedHistory, EventCache
from securecase.services.retirement import retired_folders
from securecase.storage.cachedir import repo_identity
from securecase.storage.casefile import CASE_FILE, FINDINGS_FILE, header_from_document
from securecase.storage.caseparse import parse_case_yamls, workers_for
from securecase.storage.caseread import CaseFolder, CaseReader, case_folders
from securecase.storage.git import DEFAULT_IDENTITY, GitIdentity
from securecase.storage.parsecache import CASE_FACTS, CASES_FACTS, ParseCache, no_cache
from securecase.storage.repos import is_remote, open_store
from securecase.storage.store import CasesStore, GitSnapshot

POLICY_FILE = "policy.yaml"
DEFAULT_DAYS = 90
TRAILER_PREFIX = "securecase-"
_HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Fields a human cannot write come first (id, parents, author email, author date), the
# trailers last; -z ends every record with a NUL, which no commit text holds. git picks the
# trailers by name (any case), as it parses them everywhere else.
_TRAILER_KEYS = ",".join(f"key={TRAILER_PREFIX}{n}" for n in ("case", *sorted(EVENT_TRAILERS)))
_LOG_FORMAT = f"%H%x00%P%x00%ae%x00%aI%x00%(trailers:{_TRAILER_KEYS},only,unfold)"
_LOG_FIELDS = 5


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What one ``securecase report`` call asks for."""

    cases_repo: str
    since: date | None = None
    until: date | None = None
    repos: tuple[str, ...] = ()
    bot: GitIdentity = DEFAULT_IDENTITY
    cache_dir: Path | None = None  # None: no cache is read or written


@dataclass(frozen=True, slots=True)
class ReportResult:
    """The metrics plus where each case file lives (for links) and the HEAD they were read at."""

    metrics: Metrics
    head: str | None
    case_paths: dict[str, str]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _LogEntry:
    commit: str
    merge: bool
    email: str
    at: datetime
    trailers: dict[str, str]


def window_for(since: date | None, until: date | None, today: date) -> Window:
    """The report window: ``until`` defaults to today, ``since`` to 90 days before it."""
    last = until or today
    first = since or last - timedelta(days=DEFAULT_DAYS)
    if first > last:
        raise UsageError(
            f"--since {first.isoformat()} is after --until {last.isoformat()}",
            hint="give a window whose first day is not after its last",
        )
    return Window(first, last)


def build_report(
    request: ReportRequest, *, clock: Clock, parse_cache: ParseCache | None = None
) -> ReportResult:
    """Read the cases repo and compute every metric of the report (``parse_cache``, by blob
    id, spares parsing case files read before)."""
    now = clock.now().astimezone(UTC)
    window = window_for(request.since, request.until, now.date())
    read = read_cases_repo(
        request.cases_repo,
        bot=request.bot,
        cache_dir=request.cache_dir,
        parse_cache=parse_cache,
        retired_since=window.since,
    )
    metrics = compute(
        read.cases,
        read.history,
        window=window,
        now=now,
        repos=request.repos,
        sla_days=read.policy.sla_days,
        exceptions=read.policy.exceptions,
    )
    warnings = (read.warning,) if read.warning else ()
    return ReportResult(metrics=metrics, head=read.head, case_paths=read.paths, warnings=warnings)


@dataclass(frozen=True, slots=True)
class RepoRead:
    """What the report reads from one cases repo: its HEAD, its policy, every case there (and
    its file's path by key) and its history, folded."""

    head: str | None
    policy: Policy
    cases: list[CaseFacts]
    paths: dict[str, str]
    history: History
    warning: str | None = None  # the event cache's, if it failed


def read_cases_repo(
    cases_repo: str,
    *,
    bot: GitIdentity = DEFAULT_IDENTITY,
    cache_dir: Path | None = None,
    parse_cache: ParseCache | None = None,
    retired_since: date | None = None,
) -> RepoRead:
    """Read what the metrics need from one cases repo (a broken case file fails): the cases
    at HEAD, and those the sweep retired on or after ``retired_since`` (None: all of them;
    see the module docstring)."""
    require_existing(cases_repo)
    cache = EventCache(cache_dir, repo_identity(cases_repo), bot.email)
    # From a URL: every folder listing, then only the case files read, in one batch.
    with open_store(cases_repo, paths=[POLICY_FILE], list_tree=True) as store:
        snapshot = store.snapshot()
        head = snapshot.head
        policy = _policy(snapshot.read(POLICY_FILE))
        cached = cache.load()
        # A remote's clone may lack the commit the cache went up to: read its folders whole.
        previous = cached.head if cached is not None and not is_remote(cases_repo) else None
        cases, paths = _cases_at(store, snapshot, parse_cache or no_cache(), previous=previous)
        history = _history(store, head, bot, cache, cached)
        retired = _retired_cases(
            store, history.events, set(paths), retired_since, parse_cache or no_cache()
        )
    return RepoRead(head, policy, cases + retired, paths, history, cache.warning)


def _policy(data: bytes | None) -> Policy:
    return builtin_policy() if data is None else load_policy(data, origin=POLICY_FILE)


def _cases_at(
    store: CasesStore, snapshot: GitSnapshot, cache: ParseCache, *, previous: str | None = None
) -> tuple[list[CaseFacts], dict[str, str]]:
    """What the metrics read of every case at the snapshot's head, and its file's path by key
    (a broken case file fails).

    The facts of a folder are a function of its two files, so the cache keeps them by both
    blob ids: a run reads only the case files it has not read before. All of them together
    are a function of the tree id of ``cases/``, which names every path and blob beneath it:
    a warm run over the same tree lists no folder and loads one cache entry. Over a new tree,
    when the tree of commit ``previous`` (the one the history cache went up to) has its
    entry, only the folders that differ between the two trees are looked at."""
    tree = snapshot.folder_id(CASES_ROOT) if cache.enabled else None
    known = _tree_entry(cache, tree) if tree is not None else None
    if known is None:
        known = _cases_since(store, previous, tree, cache) if tree is not None else None
        if known is None:
            folders = case_folders(store, snapshot.head)
            known = folders, _facts_of(store, folders, cache)
        if tree is not None:
            cache.put_document(CASES_FACTS, tree, _cases_entry(*known))
    folders, cases = known
    return cases, {facts.key: f.path for f, facts in zip(folders, cases, strict=True)}


def _tree_entry(cache: ParseCache, tree: str) -> tuple[list[CaseFolder], list[CaseFacts]] | None:
    entry = cache.documents(CASES_FACTS, [tree]).get(tree)
    return _cases_from_entry(entry) if entry is not None else None


def _cases_since(
    store: CasesStore, previous: str | None, tree: str, cache: ParseCache
) -> tuple[list[CaseFolder], list[CaseFacts]] | None:
    """The folders and facts under ``tree`` from those under commit ``previous`` (cached)
    and one ``diff-tree`` between the two: the folders that did not change keep their facts,
    the others are read (through the cache by blob ids). The old tree's entry is dropped:
    kept, every run over a new tree would add one (a megabyte or so for 10,000 cases). None
    when ``previous`` or its entry is unknown."""
    old_snapshot = store.snapshot_at(previous) if previous is not None else None
    old_tree = old_snapshot.folder_id(CASES_ROOT) if old_snapshot is not None else None
    old = _tree_entry(cache, old_tree) if old_tree is not None else None
    if old_tree is None or old is None:
        return None
    blobs: dict[str, list[str | None]] = {f.folder: [f.case_blob, f.findings_blob] for f in old[0]}
    facts = {f.folder: c for f, c in zip(*old, strict=True)}
    changed = set()
    for path, blob in store.tree_changes(old_tree, tree).items():
        full = f"{CASES_ROOT}/{path}"
        for index, name in enumerate((CASE_FILE, FINDINGS_FILE)):
            if full.endswith("/" + name):
                folder = full[: -len(name) - 1]
                blobs.setdefault(folder, [None, None])[index] = blob
                changed.add(folder)
    folders = [
        CaseFolder(folder, case_blob, findings_blob)
        for folder, (case_blob, findings_blob) in blobs.items()
        if case_blob is not None
    ]
    folders.sort(key=lambda f: f.path)  # as ``case_folders`` lists them
    fresh = [f for f in folders if f.folder in changed]
    read = dict(zip((f.folder for f in fresh), _facts_of(store, fresh, cache), strict=True))
    if old_tree != tree:
        cache.discard(CASES_FACTS, old_tree)  # superseded by the entry of ``tree``
    return folders, [read[f.folder] if f.folder in changed else facts[f.folder] for f in folders]


def _cases_entry(folders: list[CaseFolder], cases: list[CaseFacts]) -> dict[str, Any]:
    """The facts of every case under a tree, for the cache, with each case file's path: one
    list per field, and the values cases share (tallies, advisory + package pairs, finding
    times: a scan's findings share their times) written once in a table that the cases
    point into by index (then loaded once, and shared, by every case that has them)."""
    tallies: dict[tuple[tuple[str, int], ...], int] = {}
    pairs: dict[tuple[str, str], int] = {}
    times: dict[tuple[Any, ...], int] = {}

    def tally(value: Mapping[str, int]) -> int:
        return tallies.setdefault(tuple(value.items()), len(tallies))

    def rows(found: tuple[FindingTimes, ...]) -> list[int]:
        return [times.setdefault(tuple(_times_row(t)), len(times)) for t in found]

    return {
        "folders": [folder.folder for folder in folders],
        "case_blobs": [folder.case_blob for folder in folders],
        "findings_blobs": [folder.findings_blob for folder in folders],
        "keys": [c.key for c in cases],
        "slugs": [c.slug for c in cases],
        "statuses": [c.status.value for c in cases],
        "decisions": [c.decision for c in cases],
        "created_at": [c.created_at for c in cases],
        "updated_at": [c.updated_at for c in cases],
        "counts": [tally(c.counts) for c in cases],
        "sources": [tally(c.sources) for c in cases],
        "kinds": [tally(c.kinds) for c in cases],
        "exposure": [[pairs.setdefault(pair, len(pairs)) for pair in c.exposure] for c in cases],
        "findings": [rows(c.findings) for c in cases],
        "resolved": [rows(c.resolved) for c in cases],
        "tallies": [dict(items) for items in tallies],
        "pairs": list(pairs),
        "times": list(times),
    }


def _cases_from_entry(doc: dict[str, Any]) -> tuple[list[CaseFolder], list[CaseFacts]] | None:
    """The folders and facts in a cache entry of :func:`_cases_entry` (which this code wrote
    for this very tree); None for one that does not have its shape (then the cases are read
    folder by folder, as on a miss)."""
    try:
        keys = doc["keys"]
        columns = (keys, *(doc[name] for name in _ENTRY_FIELDS))
        if len({len(column) for column in columns}) != 1:
            return None
        tallies: list[dict[str, int]] = doc["tallies"]
        pairs = [(advisory, package) for advisory, package in doc["pairs"]]
        times = _times_of(doc["times"])
        cases = list(
            map(
                CaseFacts,
                keys,
                doc["slugs"],
                map(_STATUSES.__getitem__, doc["statuses"]),
                doc["decisions"],
                doc["created_at"],
                doc["updated_at"],
                map(tallies.__getitem__, doc["counts"]),
                map(tallies.__getitem__, doc["sources"]),
                map(tallies.__getitem__, doc["kinds"]),
                [tuple(map(pairs.__getitem__, found)) for found in doc["exposure"]],
                [tuple(map(times.__getitem__, found)) for found in doc["findings"]],
                [tuple(map(times.__getitem__, found)) for found in doc["resolved"]],
            )
        )
        folders = list(map(CaseFolder, doc["folders"], doc["case_blobs"], doc["findings_blobs"]))
        return folders, cases
    except (KeyError, TypeError, ValueError, IndexError):
        return None


_ENTRY_FIELDS = (
    "folders",
    "case_blobs",
    "findings_blobs",
    "slugs",
    "statuses",
    "decisions",
    "created_at",
    "updated_at",
    "counts",
    "sources",
    "kinds",
    "exposure",
    "findings",
    "resolved",
)


def _facts_of(store: CasesStore, folders: list[CaseFolder], cache: ParseCache) -> list[CaseFacts]:
    """What the metrics read of the case in each folder, in order (see :func:`_cases_at`)."""
    known = cache.documents(CASE_FACTS, (_facts_key(f) for f in folders if f.findings_blob))
    found: dict[str, CaseFacts] = {}
    unread: list[CaseFolder] = []
    for folder in folders:
        doc = known.get(_facts_key(folder)) if folder.findings_blob else None
        facts = _facts_from_document(doc) if doc is not None else None
        if facts is None:
            unread.append(folder)
        else:
            found[folder.folder] = facts
    for folder, case in CaseReader(store, cache).cases(unread):
        if isinstance(case, CaseFileError):
            raise case
        facts = case_facts(case)
        cache.put_document(CASE_FACTS, _facts_key(folder), _facts_document(facts))
        found[folder.folder] = facts
    return [found[f.folder] for f in folders]


# By value: looking a member up in a dict costs a fraction of calling the enum.
_STATUSES = {s.value: s for s in Status}
_SEVERITIES = {s.value: s for s in Severity}


def _facts_key(folder: CaseFolder) -> str:
    return f"{folder.case_blob}+{folder.findings_blob}"


def _facts_document(facts: CaseFacts) -> dict[str, Any]:
    """The facts as JSON data for the cache (findings as short lists: tens of thousands)."""
    return {
        "key": facts.key,
        "slug": facts.slug,
        "status": facts.status.value,
        "decision": facts.decision,
        "created_at": facts.created_at,
        "updated_at": facts.updated_at,
        "counts": facts.counts,
        "sources": facts.sources,
        "kinds": facts.kinds,
        "exposure": facts.exposure,
        "findings": [_times_row(t) for t in facts.findings],
        "resolved": [_times_row(t) for t in facts.resolved],
    }


def _times_row(times: FindingTimes) -> list[Any]:
    return [times.severity.value, times.first_seen, times.resolved, times.excepted]


def _facts_from_document(doc: dict[str, Any]) -> CaseFacts | None:
    """The facts in a cache entry (which this code wrote for these very blobs); None for one
    that does not have their shape (then the case is read from its files, as on a miss)."""
    try:
        return CaseFacts(
            key=doc["key"],
            slug=doc["slug"],
            status=_STATUSES[doc["status"]],
            decision=doc["decision"],
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            counts=doc["counts"],
            sources=doc["sources"],
            kinds=doc["kinds"],
            exposure=tuple((advisory, package) for advisory, package in doc["exposure"]),
            findings=_times_of(doc["findings"]),
            resolved=_times_of(doc["resolved"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _times_of(rows: list[list[Any]]) -> tuple[FindingTimes, ...]:
    """The findings of :func:`_times_row` rows."""
    return tuple(FindingTimes(_SEVERITIES[s], f, r, e) for s, f, r, e in rows)


def _retired_cases(
    store: CasesStore,
    events: Sequence[CommitEvent],
    at_tip: set[str],
    since: date | None,
    cache: ParseCache,
) -> list[CaseFacts]:
    """The cases retired from the tip on or after ``since`` (the report window's first day:
    see the module docstring; None: all), each as its retirement commit's parent had it."""
    start = None if since is None else datetime(since.year, since.month, since.day, tzinfo=UTC)
    commits: dict[str, str] = {}
    for event in events:  # newest first: a key retired twice is read as last retired
        if (
            event.author is AuthorKind.BOT
            and "retired" in event.trailers
            and (start is None or event.at >= start)
            and event.case_key not in at_tip
        ):
            commits.setdefault(event.case_key, event.commit)
    if not commits:
        return []
    retired = retired_folders(store, commits)
    return _facts_of(store, [r.folder for _, r in sorted(retired.items())], cache)


def _history(
    store: CasesStore,
    head: str | None,
    bot: GitIdentity,
    cache: EventCache,
    cached: CachedHistory | None,
) -> History:
    """The history of every commit up to ``head``, folded: the ``cached`` one (from
    ``cache``) with the events of the commits since folded onto it, or all events derived
    afresh when the cache does not apply."""
    if head is None:
        return History()
    if cached is not None and cached.head == head:
        return cached.history
    if cached is not None and store.is_ancestor(cached.head, head):
        since = _derive_events(store, f"{cached.head}..{head}", bot)
        history = fold_history(since, cached.history)
    else:
        history = fold_history(_derive_events(store, head, bot))
    cache.save(head, history)
    return history


def _derive_events(store: CasesStore, revisions: str, bot: GitIdentity) -> list[CommitEvent]:
    """In ``git log`` order, one event per bot commit of ``revisions`` (its case from the
    trailers) and per case file a human commit changed (its case and whether it was
    acknowledged, from the files). A merge tells nothing of its own: its parents' commits do."""
    entries = parse_log(store.log(["-z", f"--format={_LOG_FORMAT}", revisions]))
    bot_email = bot.email.strip().lower()
    is_bot = [entry.email.strip().lower() == bot_email for entry in entries]
    human = [e.commit for e, by_bot in zip(entries, is_bot, strict=True) if not (by_bot or e.merge)]
    case_files = {
        commit: [(old, new) for old, new, path in changed if path.endswith("/" + CASE_FILE)]
        for commit, changed in store.changed_files(human, CASES_ROOT).items()
    }
    wanted = {b for pairs in case_files.values() for pair in pairs for b in pair if b is not None}
    headers = _readable_versions(store, sorted(wanted))
    events: list[CommitEvent] = []
    for entry, by_bot in zip(entries, is_bot, strict=True):
        if by_bot:
            key = entry.trailers.get("case")
            if key:
                kept = {k: v for k, v in entry.trailers.items() if k in EVENT_TRAILERS}
                events.append(CommitEvent(entry.commit, AuthorKind.BOT, entry.at, key, kept))
            continue
        for old, new in case_files.get(entry.commit, ()):
            before = headers[old] if old is not None else None
            after = headers[new] if new is not None else None
            case = after or before
            if case is None:
                continue  # a version a human broke tells nothing; `cases validate` reports it
            events.append(
                CommitEvent(
                    entry.commit,
                    AuthorKind.HUMAN,
                    entry.at,
                    case.key,
                    acknowledges=acknowledges(before, after),
                )
            )
    return events


def _readable_versions(store: CasesStore, oids: list[str]) -> dict[str, CaseHeader | None]:
    """Each of these case.yaml versions (either layout: history spans the change) as its
    header, None for one a human left unreadable. Each is parsed once, in worker processes
    when there are many (storage/caseparse.py)."""
    blobs = store.read_blobs(oids)
    parsed = parse_case_yamls(
        ((oid, f"{CASE_FILE}@{oid[:12]}", blobs.pop(oid), 0) for oid in oids),
        workers=workers_for(len(oids)),
        old_layout=True,
    )
    return {
        oid: None if isinstance(doc, CaseFileError) or doc is None else header_from_document(doc)
        for oid, doc in parsed
    }


def parse_log(out: bytes) -> list[_LogEntry]:
    """Parse ``git log -z --format=<_LOG_FORMAT>``: five NUL-ended fields per commit."""
    fields = out.split(b"\0")
    if fields and not fields[-1].strip():
        fields.pop()  # what follows the last record's NUL
    if len(fields) % _LOG_FIELDS:
        raise StoreError("git log output of the cases repo ends inside a commit record")
    entries: list[_LogEntry] = []
    records = [iter(fields)] * _LOG_FIELDS
    for commit_field, parents, email, when, trailer_text in zip(*records, strict=True):
        commit = commit_field.strip().decode("ascii", "replace")
        at = parse_time(when.decode("ascii", "replace"))
        if not _HEX.match(commit) or at is None:
            raise StoreError(f"unexpected git log record of the cases repo: {commit[:80]!r}")
        entries.append(
            _LogEntry(
                commit,
                parents.count(b" ") > 0,
                email.decode("utf-8", "surrogateescape"),
                at,
                _trailers(trailer_text.decode("utf-8", "surrogateescape")) if trailer_text else {},
            )
        )
    return entries


def _trailers(text: str) -> dict[str, str]:
    """``Securecase-*`` trailers by lower-case name without the prefix (the first of each)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.lower().startswith(TRAILER_PREFIX):
            found.setdefault(name[len(TRAILER_PREFIX) :].lower(), value.strip())
    return found


def case_links(result: ReportResult, cases_repo: str, web_url: str | None) -> dict[str, str]:
    """The URL of each case's file: on the cases repo's web page at the HEAD read (given, or
    derived from a GitHub URL), else in a local work tree (``file://``), else none."""
    base = web_url or repo_web_base(cases_repo)
    if base:
        found = {
            key: case_file_url(base, result.head, path) for key, path in result.case_paths.items()
        }
        return {key: url for key, url in found.items() if url}
    if is_remote(cases_repo):
        return {}
    root = Path(cases_repo).resolve()
    return {
        key: (root / path).as_uri()
        for key, path in result.case_paths.items()
        if (root / path).is_file()
    }


def write_page(folder: Path, page: str) -> Path:
    """Write the dashboard to ``folder/index.html`` (the folder is created)."""
    target = folder / "index.html"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--html {folder}: cannot write the page ({exc.strerror})") from exc
    return target
