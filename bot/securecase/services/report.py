"""``securecase report``: gather the cases at HEAD and the history's commits, compute metrics.

The computing is :mod:`securecase.domain.metrics` (pure); this module only reads the cases
repo, in three steps: every ``case.yaml`` at HEAD (one ``ls-tree``, one batch of blobs), the
policy, and one ``git log -z`` over ``cases/`` that prints, per commit, its id, author email,
author date and ``Securecase-*`` trailers, then the case files it changed. A bot commit's
trailers say which case it recorded and what the gate decided; a human commit's case files
are read (before and after, in one batch) to tell whether it changed a status or triage.

The events derived from the log are kept in a cache outside the work tree
(:mod:`securecase.services.eventcache`) with the commit they go up to; a later run logs only
the commits since, when HEAD extends that commit without a merge, and reads all history
otherwise (a rewritten history, no cache, caching off), with the same result.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from securecase.clock import Clock
from securecase.domain.case import Case, CaseHeader
from securecase.domain.metrics import (
    EVENT_TRAILERS,
    AuthorKind,
    CommitEvent,
    Metrics,
    Window,
    acknowledges,
    compute,
    parse_time,
)
from securecase.domain.policy import Policy, builtin_policy, load_policy
from securecase.domain.subjects import CASES_ROOT
from securecase.errors import CaseFileError, StoreError, UsageError
from securecase.github.links import case_file_url, repo_web_base
from securecase.services.catalog import require_existing
from securecase.services.eventcache import EventCache
from securecase.storage.casefile import CASE_FILE, FINDINGS_FILE, load_case, load_case_header
from securecase.storage.git import DEFAULT_IDENTITY, GitIdentity, redact
from securecase.storage.repos import is_remote, open_store
from securecase.storage.store import CasesStore

POLICY_FILE = "policy.yaml"
DEFAULT_DAYS = 90
TRAILER_PREFIX = "securecase-"
_HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_NULL_OID = frozenset({"0" * 40, "0" * 64})
# Fields a human cannot write come first (id, author email, author date), the trailers last;
# -z ends every field and every changed-file entry with a NUL, which no commit text holds.
_LOG_FORMAT = "%H%x00%ae%x00%aI%x00%(trailers:only,unfold)"


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
    email: str
    at: datetime
    trailers: dict[str, str]
    case_files: tuple[tuple[str | None, str | None], ...]  # (old blob, new blob) per case.yaml


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


def build_report(request: ReportRequest, *, clock: Clock) -> ReportResult:
    """Read the cases repo and compute every metric of the report."""
    now = clock.now().astimezone(UTC)
    window = window_for(request.since, request.until, now.date())
    require_existing(request.cases_repo)
    cache = EventCache(request.cache_dir, repo_identity(request.cases_repo), request.bot.email)
    with open_store(request.cases_repo, paths=[POLICY_FILE, CASES_ROOT]) as store:
        snapshot = store.snapshot()
        head = snapshot.head
        policy = _policy(snapshot.read(POLICY_FILE))
        cases, paths = _cases_at(store, head)
        events = _events(store, head, request.bot, cache)
    metrics = compute(
        cases,
        events,
        window=window,
        now=now,
        repos=request.repos,
        sla_days=policy.sla_days,
        exceptions=policy.exceptions,
    )
    warnings = (cache.warning,) if cache.warning else ()
    return ReportResult(metrics=metrics, head=head, case_paths=paths, warnings=warnings)


def repo_identity(location: str) -> str:
    """What names one cases repo across runs: its resolved path, or its URL without
    credentials (only a hash of it is ever written)."""
    if is_remote(location):
        return redact(location.strip())
    return os.path.realpath(location)


def _policy(data: bytes | None) -> Policy:
    return builtin_policy() if data is None else load_policy(data, origin=POLICY_FILE)


def _cases_at(store: CasesStore, head: str | None) -> tuple[list[Case], dict[str, str]]:
    """Every case at ``head`` and its file's path by key."""
    listed = store.blob_ids(head, CASES_ROOT)
    folders = sorted(p[: -len(CASE_FILE) - 1] for p in listed if p.endswith("/" + CASE_FILE))
    blobs = store.read_blobs(list(listed.values()))
    cases, paths = [], {}
    for folder in folders:
        findings_oid = listed.get(f"{folder}/{FINDINGS_FILE}")
        case = load_case(
            blobs[listed[f"{folder}/{CASE_FILE}"]],
            blobs[findings_oid] if findings_oid else None,
            folder=folder,
        )
        cases.append(case)
        paths[case.key] = f"{folder}/{CASE_FILE}"
    return cases, paths


def _events(
    store: CasesStore, head: str | None, bot: GitIdentity, cache: EventCache
) -> list[CommitEvent]:
    """The events of every commit up to ``head``: the cached ones plus those of the commits
    since, or all of them derived afresh when the cache does not apply."""
    if head is None:
        return []
    cached = cache.load()
    if cached is not None and cached.head == head:
        return cached.events
    if cached is not None and store.extends_linearly(cached.head, head):
        events = _derive_events(store, f"{cached.head}..{head}", bot) + cached.events
    else:
        events = _derive_events(store, head, bot)
    cache.save(head, events)
    return events


def _derive_events(store: CasesStore, revisions: str, bot: GitIdentity) -> list[CommitEvent]:
    """In ``git log`` order, one event per bot commit of ``revisions`` (its case from the
    trailers) and per case file a human commit changed (its case and whether it was
    acknowledged, from the files)."""
    args = ["-z", f"--format={_LOG_FORMAT}", "--raw", "--no-abbrev", "--no-renames"]
    entries = parse_log(store.log([*args, revisions, "--", CASES_ROOT + "/"]))
    bot_email = bot.email.strip().lower()
    is_bot = [entry.email.strip().lower() == bot_email for entry in entries]
    wanted = {
        blob
        for entry, by_bot in zip(entries, is_bot, strict=True)
        if not by_bot
        for pair in entry.case_files
        for blob in pair
        if blob is not None
    }
    blobs = store.read_blobs(sorted(wanted))
    events: list[CommitEvent] = []
    for entry, by_bot in zip(entries, is_bot, strict=True):
        if by_bot:
            key = entry.trailers.get("case")
            if key:
                kept = {k: v for k, v in entry.trailers.items() if k in EVENT_TRAILERS}
                events.append(CommitEvent(entry.commit, AuthorKind.BOT, entry.at, key, kept))
            continue
        for old, new in entry.case_files:
            before, after = _readable(blobs, old, entry), _readable(blobs, new, entry)
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


def _readable(blobs: dict[str, bytes], oid: str | None, entry: _LogEntry) -> CaseHeader | None:
    """The case.yaml version ``oid`` (either layout: history spans the change), None when a
    human left it unreadable."""
    if oid is None:
        return None
    try:
        return load_case_header(
            blobs[oid], folder=f"{CASE_FILE}@{entry.commit[:12]}", old_layout=True
        )
    except CaseFileError:
        return None


def parse_log(out: bytes) -> list[_LogEntry]:
    """Parse ``git log -z --format=<_LOG_FORMAT> --raw``: per commit four NUL-ended fields,
    then NUL-ended ``:meta`` and path pairs of the files it changed."""
    fields = out.split(b"\0")
    entries: list[_LogEntry] = []
    index = 0
    while index < len(fields):
        if not fields[index].strip():
            index += 1
            continue
        if index + 4 > len(fields):
            raise StoreError("git log output of the cases repo ends inside a commit record")
        commit, email, when, trailer_text = (
            f.decode("utf-8", "surrogateescape") for f in fields[index : index + 4]
        )
        at = parse_time(when)
        if not _HEX.match(commit) or at is None:
            raise StoreError(f"unexpected git log record of the cases repo: {commit[:80]!r}")
        index += 4
        files: list[tuple[str | None, str | None]] = []
        while index + 1 < len(fields) and fields[index].lstrip(b"\n").startswith(b":"):
            meta = fields[index].lstrip(b"\n").decode("ascii", "replace").split()
            path = fields[index + 1].decode("utf-8", "surrogateescape")
            index += 2
            if path.endswith("/" + CASE_FILE) and len(meta) >= 4:
                old = None if meta[2] in _NULL_OID else meta[2]
                new = None if meta[3] in _NULL_OID else meta[3]
                files.append((old, new))
        entries.append(_LogEntry(commit, email, at, _trailers(trailer_text), tuple(files)))
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
