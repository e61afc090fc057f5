"""The reading commands over every shard of a shard file: ``cases list``, ``report``,
``policy diff`` and ``sweep`` read (and sweep writes) each shard's cases repo in file order and
merge what they found.

No shard is ever skipped: one that cannot be read stops the command with an error naming the
shard (a report over part of an organisation must not look whole). A case key held by more
than one shard (a pattern changed and the old shard kept its copy) is named in a warning by
``cases list`` (both rows are listed), ``report`` and ``policy diff`` count only the copy of
the shard the file picks for its repository (:func:`securecase.domain.shards.owner`), and
``sweep`` refuses to run until one copy is removed: it would close, re-judge and notify twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from typing import TYPE_CHECKING, Any

from securecase.clock import Clock
from securecase.domain.case import CaseSummary
from securecase.domain.metrics import CaseFacts, Metrics, combine_histories, compute
from securecase.domain.policy import Policy
from securecase.domain.policy.diff import PolicyDiff
from securecase.domain.shards import Duplicate, Shard, ShardMap, duplicate_warning, duplicates
from securecase.domain.subjects import decode_segment
from securecase.errors import InputError, SecurecaseError, UsageError
from securecase.services.catalog import CaseFilter, list_cases
from securecase.services.policydiff import DiffTally
from securecase.services.report import ReportRequest, read_cases_repo, window_for
from securecase.storage.caseread import case_folders
from securecase.storage.git import DEFAULT_IDENTITY, GitIdentity
from securecase.storage.parsecache import ParseCache
from securecase.storage.repos import is_remote, open_store

if TYPE_CHECKING:
    from securecase.services.sweep import SweepRequest, SweepResult


@contextlib.contextmanager
def in_shard(shard: Shard, shards: ShardMap) -> Iterator[None]:
    """Errors raised while working on ``shard`` name it first (same class, same exit code).
    A shard whose cases repo is a path that does not exist is an error here: reading
    commands never create one, and a missing shard must not read as an empty one."""
    if not is_remote(shard.cases_repo) and not os.path.exists(shard.cases_repo):
        raise UsageError(
            f"{shards.origin}:{shard.line}: shard {shard.name}: no cases repo at {shard.shown}",
            hint="fix its cases_repo, or create it: ingest creates a shard's cases repo when "
            "it records the shard's first case",
        )
    try:
        yield
    except SecurecaseError as error:
        error.message = f"shard {shard.name} ({shard.shown}): {error.message}"
        error.args = (error.message,)
        raise


# -- cases list ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShardedListing:
    """Listed cases with the shard each comes from, sorted by key then shard order; the
    broken case files (shard named); one warning per case key held by several shards."""

    rows: tuple[tuple[Shard, CaseSummary], ...]
    broken: tuple[str, ...]
    warnings: tuple[str, ...]


def list_sharded(
    shards: ShardMap,
    case_filter: CaseFilter,
    *,
    identity: GitIdentity = DEFAULT_IDENTITY,
    cache: ParseCache | None = None,
) -> ShardedListing:
    """``cases list`` over every shard."""
    rows: list[tuple[int, Shard, CaseSummary]] = []
    broken: list[str] = []
    for index, shard in enumerate(shards.shards):
        with in_shard(shard, shards):
            listing = list_cases(shard.cases_repo, case_filter, identity=identity, cache=cache)
        rows += [(index, shard, case) for case in listing.cases]
        broken += [f"shard {shard.name}: {line}" for line in listing.broken]
    rows.sort(key=lambda row: (row[2].key, row[0]))
    found = [(shard.name, case.key, case.subject.slug) for _, shard, case in rows]
    warnings = tuple(duplicate_warning(shards, dup) for dup in duplicates(shards, found))
    return ShardedListing(tuple((s, c) for _, s, c in rows), tuple(broken), warnings)


# -- report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShardRead:
    """What the report read from one shard: its HEAD and the path of each case file it
    counted, by key."""

    shard: Shard
    head: str | None
    case_paths: dict[str, str]


@dataclass(frozen=True, slots=True)
class ShardedReport:
    """The metrics over every shard, what each shard gave, and the warnings."""

    metrics: Metrics
    parts: tuple[ShardRead, ...]
    duplicates: tuple[Duplicate, ...]
    warnings: tuple[str, ...]


def report_sharded(
    shards: ShardMap,
    request: ReportRequest,
    *,
    clock: Clock,
    parse_cache: ParseCache | None = None,
) -> ShardedReport:
    """``report`` over every shard: the metrics of one cases repo holding all their cases and
    history. Each case keeps its own shard's SLA days; the exceptions counted are those of
    every shard's policy (one written the same in several shards counts once); a case held by
    several shards counts once (see the module docstring). ``request.cases_repo`` is unused.
    """
    now = clock.now().astimezone(UTC)
    window = window_for(request.since, request.until, now.date())
    reads = []
    for shard in shards.shards:
        with in_shard(shard, shards):
            reads.append(
                read_cases_repo(
                    shard.cases_repo,
                    bot=request.bot,
                    cache_dir=request.cache_dir,
                    parse_cache=parse_cache,
                    retired_since=window.since,
                )
            )
    found = [
        (shard.name, case.key, case.slug)
        for shard, read in zip(shards.shards, reads, strict=True)
        for case in read.cases
    ]
    doubled = duplicates(shards, found)
    dropped = {(name, dup.key) for dup in doubled for name in dup.holders if name != dup.owner}
    cases: list[CaseFacts] = []
    sla_by_case = {}
    policies: list[Policy] = []
    parts = []
    for shard, read in zip(shards.shards, reads, strict=True):
        policies.append(read.policy)
        kept = [case for case in read.cases if (shard.name, case.key) not in dropped]
        cases += kept
        sla_by_case.update({case.key: read.policy.sla_days for case in kept})
        paths = {case.key: read.paths[case.key] for case in kept}
        parts.append(ShardRead(shard, read.head, paths))
    exceptions = list(dict.fromkeys(exc for policy in policies for exc in policy.exceptions))
    metrics = compute(
        cases,
        combine_histories([read.history for read in reads]),
        window=window,
        now=now,
        repos=request.repos,
        sla_days=policies[0].sla_days,
        exceptions=exceptions,
        sla_by_case=sla_by_case,
    )
    warnings = [
        f"shard {shard.name}: {read.warning}"
        for shard, read in zip(shards.shards, reads, strict=True)
        if read.warning
    ]
    warnings += [duplicate_warning(shards, dup) for dup in doubled]
    return ShardedReport(metrics, tuple(parts), doubled, tuple(warnings))


# -- policy diff ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShardedDiff:
    """The policy diff over every shard, the commit read in each, and the warnings."""

    diff: PolicyDiff
    heads: tuple[tuple[Shard, str | None], ...]
    warnings: tuple[str, ...]


def diff_sharded(
    shards: ShardMap,
    old: Policy,
    new: Policy,
    *,
    today: date,
    cache: ParseCache | None = None,
) -> ShardedDiff:
    """``policy diff`` over every shard's open cases (a case several shards hold is judged
    once, in the shard that owns it)."""
    doubled = shard_duplicates(shards)
    tally = DiffTally(old, new, today)
    heads = []
    for shard in shards.shards:
        # A doubled case's key here is its folder (see shard_duplicates).
        skip = frozenset(
            d.key for d in doubled if shard.name in d.holders and shard.name != d.owner
        )
        with in_shard(shard, shards):
            head = tally.judge_repo(shard.cases_repo, cache=cache, skip=skip, label=shard.name)
        heads.append((shard, head))
    warnings = tuple(duplicate_warning(shards, dup) for dup in doubled)
    return ShardedDiff(tally.result(cases_commit=None), tuple(heads), warnings)


# -- sweep ---------------------------------------------------------------------------------


def shard_duplicates(shards: ShardMap) -> tuple[Duplicate, ...]:
    """The case folders present in more than one shard (from each shard's tree listing alone:
    a case's folder is a function of its key). Their ``key`` is the folder path."""
    found: list[tuple[str, str, str]] = []
    for shard in shards.shards:
        with in_shard(shard, shards):
            with open_store(shard.cases_repo, paths=[], list_tree=True) as store:
                folders = case_folders(store, store.snapshot().head)
        found += [(shard.name, f.folder, folder_slug(f.folder)) for f in folders]
    return duplicates(shards, found)


def folder_slug(folder: str) -> str:
    """``org/name`` of a case folder ``cases/<provider>/<org>/<name>/...`` ("" when the folder
    is not of that shape or its names were too long to keep)."""
    parts = folder.split("/")
    if len(parts) < 5:
        return ""
    org, name = decode_segment(parts[2]), decode_segment(parts[3])
    return f"{org}/{name}" if org is not None and name is not None else ""


def refuse_duplicates(shards: ShardMap) -> None:
    """``InputError`` (exit 2) naming every case folder several shards hold: a sweep would
    close, re-judge and notify each copy."""
    doubled = shard_duplicates(shards)
    if not doubled:
        return
    raise InputError(
        f"{len(doubled)} case folder(s) are in more than one shard of {shards.origin}; "
        "sweep would judge, close and notify each copy, so it changes nothing until one copy "
        "is removed",
        problems=[duplicate_warning(shards, dup) for dup in doubled],
        hint="in the shard whose copy does not count: git rm -r FOLDER, commit and push",
    )


@dataclass(frozen=True, slots=True)
class ShardedSweep:
    """The sweeps of every shard merged into one result, and each shard's own."""

    result: SweepResult
    parts: tuple[tuple[Shard, SweepResult], ...]


def sweep_sharded(
    shards: ShardMap, request: SweepRequest, *, clock: Clock, cache: ParseCache | None = None
) -> ShardedSweep:
    """``sweep`` over every shard, each shard's changes committed and pushed to that shard, in
    file order; refused (nothing written) while a case folder is in several shards. A shard's
    ``web_url`` is its cases web URL. ``request.cases_repo`` is unused."""
    from securecase.services.sweep import sweep

    refuse_duplicates(shards)
    parts = []
    for shard in shards.shards:
        with in_shard(shard, shards):
            one = dataclasses.replace(
                request, cases_repo=shard.cases_repo, cases_web_url=shard.web_url
            )
            parts.append((shard, sweep(one, clock=clock, cache=cache)))
    merged: SweepResult = merge_results([result for _, result in parts])
    return ShardedSweep(merged, tuple(parts))


def merge_results(results: Sequence[Any]) -> Any:
    """One result of the same dataclass from several (one per shard): tuples joined in shard
    order, numbers added, flags alike kept; exceptions expiring in several shards are one
    line with the cases of all."""
    first = results[0]
    merged: dict[str, Any] = {}
    for field in dataclasses.fields(first):
        values = [getattr(result, field.name) for result in results]
        if field.name == "warnings":  # the same warning from every shard is said once
            merged[field.name] = tuple(dict.fromkeys(w for value in values for w in value))
        elif isinstance(values[0], tuple):
            merged[field.name] = tuple(item for value in values for item in value)
        elif isinstance(values[0], bool):
            merged[field.name] = values[0]
        elif isinstance(values[0], int):
            merged[field.name] = sum(values)
        else:
            merged[field.name] = values[0]
    if "expiring_exceptions" in merged:
        cases: dict[tuple[str, str], list[str]] = {}
        for exc_id, expires, keys in merged["expiring_exceptions"]:
            cases.setdefault((exc_id, expires), []).extend(keys)
        merged["expiring_exceptions"] = tuple(
            (exc_id, expires, tuple(sorted(set(keys)))) for (exc_id, expires), keys in cases.items()
        )
    return type(first)(**merged)
