"""A case's timeline, read from the git history of its ``case.yaml``.

One ``git log -z`` lists every commit that changed the file: its id, author, time and subject,
the bot's ``Securecase-Case/Commit/Decision/Status/Counts[/Stale/Retired]`` trailers as git itself
parses them, and the file's old and new blob ids. A bot commit whose trailers say everything
needs no file read. Human commits (triage by pull request) carry no trailers, and trailers are
only trusted from the bot's own identity, so for those the file at that commit is read,
together with the version before it, to tell what the human changed: status, assignee, tags,
notes. All such file versions are read in one batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date

from securecase.domain.case import CaseHeader
from securecase.domain.findings import SEVERITIES_WORST_FIRST
from securecase.domain.subjects import parse_key
from securecase.domain.timeline import AuthorKind, CaseHistory, FileChange, HistoryEntry
from securecase.errors import CaseFileError, StoreError, UsageError
from securecase.services.catalog import require_existing
from securecase.storage.casefile import CASE_FILE, load_case_header
from securecase.storage.git import DEFAULT_IDENTITY, GitIdentity
from securecase.storage.repos import open_store

TRAILER_PREFIX = "Securecase-"
TRAILER_NAMES = ("case", "commit", "decision", "status", "counts", "stale", "retired")
# One NUL-separated field per placeholder. Git cuts whatever it prints from a commit at the
# first NUL, so no text a human wrote (name, subject, message) can add a field and shift the
# others: a human's "trailers" arrive in their own fields, and are ignored (see _record).
_FIELDS = ("%H", "%an", "%ae", "%cI", "%s") + tuple(
    f"%(trailers:key={TRAILER_PREFIX}{name},valueonly,unfold,separator=%x1f)"
    for name in TRAILER_NAMES
)
_HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_NULL_OID = frozenset({"0" * 40, "0" * 64})
COUNT_KEYS = tuple(s.count_key for s in SEVERITIES_WORST_FIRST)


@dataclass(frozen=True, slots=True)
class _LogRecord:
    commit: str
    author_name: str
    author_email: str
    time: str
    subject: str
    trailers: dict[str, str]
    old_blob: str | None
    new_blob: str | None


def case_history(
    cases_repo: str,
    key: str,
    *,
    bot: GitIdentity = DEFAULT_IDENTITY,
    since: date | None = None,
) -> CaseHistory:
    """The timeline of case ``key``; UsageError when the cases repo never had that case.

    ``bot`` is the identity the bot commits as; commits by any other author are human.
    ``since``: only the commits committed on or after that day (UTC).
    """
    subject = parse_key(key)
    require_existing(cases_repo)
    path = f"{subject.folder}/{CASE_FILE}"
    day = None if since is None else since.isoformat() + "T00:00:00Z"
    # A remote fetches only what this prints: the commits (from `since`), the trees on the
    # way to the case file in each, and the file versions whose trailers do not say it all.
    with open_store(cases_repo, paths=[path]) as store:
        head = store.snapshot().head
        exists = head is not None and store.snapshot().blob_id(path) is not None
        records = []
        if head is not None:
            log = store.log(_log_args(head, path, day), path=path, since=day)
            records = _parse_log(log, path, bot)
        trusted = [_trusts_trailers(r, key, bot) for r in records]
        wanted: set[str] = set()
        for record, trust in zip(records, trusted, strict=True):
            if not trust:
                wanted.update(b for b in (record.old_blob, record.new_blob) if b)
        blobs = store.read_blobs(sorted(wanted))
    if not records and not (since and exists):
        raise UsageError(
            f"no case {key!r} in the history of {cases_repo} (looked for {path})",
            hint="`securecase cases list` shows the keys",
        )
    entries: list[HistoryEntry] = []
    # The status before a commit is the one of the file version it started from (its old
    # blob), which on branchy history need not be the previous row's.
    status_of_blob: dict[str, str | None] = {}
    last_status: str | None = None
    for record, trust in zip(records, trusted, strict=True):
        if record.old_blob is None:
            previous_status = None
        else:
            previous_status = status_of_blob.get(record.old_blob, last_status)
        entry = _entry(record, trust, blobs, path, bot, previous_status)
        entries.append(entry)
        if record.new_blob is not None and entry.status is not None:
            status_of_blob[record.new_blob] = entry.status
        if entry.status is not None or entry.change is FileChange.DELETED:
            last_status = entry.status
    return CaseHistory(key=key, path=path, entries=tuple(entries))


def _log_args(head: str, path: str, since: str | None = None) -> list[str]:
    # --raw with full ids gives each commit's old and new blob of the file, so reading a file
    # version needs no tree walk; --no-renames keeps the path fixed. A merge is listed only when
    # it differs from every parent (a resolved conflict); it is compared with its first parent.
    # --simplify-merges drops a merge that merely brings in a side branch's version (the usual
    # merge of a triage pull request), which --diff-merges=first-parent alone would list as a
    # second copy of the side branch's change.
    return [
        "-z",
        "--reverse",
        "--format=" + "%x00".join(_FIELDS),
        "--no-show-signature",
        "--raw",
        "--no-abbrev",
        "--no-renames",
        "--diff-merges=first-parent",
        "--simplify-merges",
        *([f"--since={since}"] if since else []),
        head,
        "--",
        path,
    ]


def _parse_log(out: bytes, path: str, bot: GitIdentity) -> list[_LogRecord]:
    """The commits of a ``git log -z`` in ``_log_args`` format, with the file's blob ids."""
    tokens = out.decode("utf-8", "replace").split("\0")
    records = []
    n = 0
    while n < len(tokens) and tokens[n].strip("\n"):
        fields = [tokens[n].lstrip("\n"), *tokens[n + 1 : n + len(_FIELDS)]]
        n += len(_FIELDS)
        if len(fields) != len(_FIELDS) or not _HEX.match(fields[0]):
            raise StoreError(f"unexpected git log output for {path} near {fields[0][:60]!r}")
        old = new = None
        while n + 1 < len(tokens) and tokens[n].lstrip("\n").startswith(":"):
            meta, changed = tokens[n].lstrip("\n").split(), tokens[n + 1]
            n += 2
            if changed == path:
                old = None if meta[2] in _NULL_OID else meta[2]
                new = None if meta[3] in _NULL_OID else meta[3]
        records.append(_record(fields, old, new, bot))
    return records


def _record(fields: list[str], old: str | None, new: str | None, bot: GitIdentity) -> _LogRecord:
    commit, name, email, time, subject, *values = fields
    trailers = {}
    if is_bot(name, email, bot):  # a human's "trailers" are only text
        for trailer, value in zip(TRAILER_NAMES, values, strict=True):
            if value:
                trailers[trailer] = value.split("\x1f")[0]  # the first, when repeated
    return _LogRecord(commit, name, email, time, subject, trailers, old, new)


def is_bot(name: str, email: str, bot: GitIdentity) -> bool:
    """Whether a commit author is the bot: the email decides (names are free text)."""
    del name
    return email.strip().lower() == bot.email.strip().lower()


def _trusts_trailers(record: _LogRecord, key: str, bot: GitIdentity) -> bool:
    """Trailers answer everything only on the bot's own commits for this very case."""
    trailers = record.trailers
    return (
        is_bot(record.author_name, record.author_email, bot)
        and trailers.get("case") == key
        and record.new_blob is not None
        and all(name in trailers for name in ("commit", "decision", "status", "counts"))
        and parse_counts(trailers["counts"]) is not None
    )


def parse_counts(text: str) -> dict[str, int] | None:
    """``critical=0 high=2 ...`` (the ``Securecase-Counts`` trailer) → counts; None if bad."""
    counts = {}
    for part in text.split():
        name, sep, value = part.partition("=")
        if not sep or name not in COUNT_KEYS or not value.isdigit():
            return None
        counts[name] = int(value)
    return counts if set(counts) == set(COUNT_KEYS) else None


def _load(blobs: Mapping[str, bytes], oid: str | None, where: str) -> CaseHeader | str | None:
    """The case.yaml in a blob, a problem description when it cannot be read, None for no blob.

    ``where`` is ``folder@commit``: the commit is named in the problem.
    """
    if oid is None:
        return None
    folder, _, revision = where.rpartition("@")
    try:
        # Versions written before the two-file layout are part of the case's history.
        return load_case_header(blobs[oid], folder=folder, old_layout=True)
    except CaseFileError as exc:
        return f"at {revision}: " + "; ".join([exc.message, *exc.problems[:3]])


def _entry(
    record: _LogRecord,
    trust: bool,
    blobs: Mapping[str, bytes],
    path: str,
    bot: GitIdentity,
    previous_status: str | None,
) -> HistoryEntry:
    by_bot = is_bot(record.author_name, record.author_email, bot)
    if record.new_blob is None:
        change = FileChange.DELETED
    else:
        change = FileChange.CREATED if record.old_blob is None else FileChange.UPDATED
    trailers = record.trailers  # empty unless the bot made the commit
    scanned = trailers.get("commit")
    base = HistoryEntry(
        commit=record.commit,
        time=record.time,
        author_name=record.author_name,
        author_email=record.author_email,
        author_kind=AuthorKind.BOT if by_bot else AuthorKind.HUMAN,
        subject=record.subject,
        change=change,
        scanned_commit=None if scanned in (None, "unknown") else scanned,
        decision=None,
        status=None,
        previous_status=previous_status,
        counts=None,
        triage_changes=(),
        stale=trailers.get("stale") == "true",
        facts_from="case file",
        # The sweep's commit that took the closed case off the tip (history keeps it).
        retired=change is FileChange.DELETED and bool(trailers.get("retired")),
    )
    if trust:
        return replace(
            base,
            decision=trailers["decision"],
            status=trailers["status"],
            counts=parse_counts(trailers["counts"]),
            facts_from="trailers",
        )
    short = record.commit[:12]
    folder = path[: -len(CASE_FILE) - 1]
    after = _load(blobs, record.new_blob, f"{folder}@{short}")
    if after is None:
        return base  # the file was deleted
    if not isinstance(after, CaseHeader):
        return replace(base, problem=after)
    before = _load(blobs, record.old_blob, f"{folder}@{short}^")
    return replace(
        base,
        scanned_commit=base.scanned_commit or (after.latest.commit if by_bot else None),
        decision=after.gate.decision,
        status=after.status.value,
        counts=after.counts,
        triage_changes=triage_changes(before if isinstance(before, CaseHeader) else None, after),
    )


def triage_changes(before: CaseHeader | None, after: CaseHeader) -> tuple[str, ...]:
    """What a commit changed in the human-owned triage fields, one phrase per field."""
    if before is None:
        return ()
    old, new = before.triage, after.triage
    found = []
    if old.assignee != new.assignee:
        found.append(f"assignee {old.assignee or '-'} -> {new.assignee or '-'}")
    added = [t for t in new.tags if t not in old.tags]
    removed = [t for t in old.tags if t not in new.tags]
    if added:
        found.append("tags +" + ", +".join(added))
    if removed:
        found.append("tags -" + ", -".join(removed))
    if old.notes != new.notes:
        found.append(
            "notes edited"
            if old.notes and new.notes
            else "notes added"
            if new.notes
            else "notes removed"
        )
    return tuple(found)
