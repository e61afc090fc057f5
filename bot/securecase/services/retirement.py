"""Retired cases: which closed cases leave the tip, and finding them again in history.

``securecase sweep`` removes the folder of each case CLOSED for longer than its grace period
(:mod:`securecase.domain.retirement`), one commit per case with the sweep's trailers plus
``Securecase-Retired: <folder>``. Nothing is lost: the commit's parent holds the folder as
it last was, and a case key names its folder, so the removing commit is found by path:

- ``cases show KEY`` reads a case that is not at the tip from the parent of the last commit
  that deleted its ``case.yaml`` (:func:`find_retired`);
- ``report`` reads the cases its history's retirement commits removed (one ``diff-tree`` for
  all of them gives the files' last blobs), so its metrics do not change when cases retire
  (:func:`retired_folders`);
- ``cases history`` follows the case file's path through the deletion anyway.

A person's edits are told from the bot's by the author email, as ``report`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from securecase.domain.case import Case
from securecase.domain.metrics import parse_time
from securecase.domain.retirement import Removal, Retirement, retirement
from securecase.domain.subjects import CASES_ROOT, parse_key
from securecase.errors import StoreError
from securecase.storage.casefile import CASE_FILE, FINDINGS_FILE
from securecase.storage.caseread import CaseFolder
from securecase.storage.store import CasesStore

RETIRED_TRAILER = "Securecase-Retired"


@dataclass(frozen=True, slots=True)
class RetiredAt:
    """The commit that removed a case folder from the tip, and the folder as it last was."""

    removal: Removal
    folder: CaseFolder


def due_retirements(
    store: CasesStore,
    head: str | None,
    closed: Mapping[str, Case],
    *,
    days: int,
    today: date,
    bot_email: str,
    unnotified: frozenset[str] = frozenset(),
) -> dict[str, Retirement]:
    """folder → retirement, for the CLOSED cases (by folder) that retire today.

    A person's change only delays a retirement, so history is read only when some case is
    due by its closing date alone: one walk of the commits (no diffs) finds the people's
    commits, and one ``diff-tree`` the folders they changed.
    """
    due = {
        folder: case
        for folder, case in closed.items()
        if retirement(case, days=days, today=today, last_human_change=None) is not None
    }
    if not due or head is None:
        return {}
    human = last_human_changes(store, head, bot_email, due)
    found = {}
    for folder, case in sorted(due.items()):
        retiring = retirement(
            case,
            days=days,
            today=today,
            last_human_change=human.get(folder),
            unnotified=folder in unnotified,
        )
        if retiring is not None:
            found[folder] = retiring
    return found


def last_human_changes(
    store: CasesStore, head: str, bot_email: str, folders: Sequence[str] | Mapping[str, object]
) -> dict[str, datetime]:
    """folder → when the latest commit by someone other than the bot that changed a file in
    it landed (its committer date), for the ``folders`` any such commit changed."""
    wanted = set(folders)
    out = store.log(["-z", "--format=%H%x00%ae%x00%cI", head])
    fields = out.split(b"\0")
    if fields and not fields[-1].strip():
        fields.pop()
    if len(fields) % 3:
        raise StoreError("git log output of the cases repo ends inside a commit record")
    bot = bot_email.strip().lower()
    landed: dict[str, datetime] = {}
    records = [iter(fields)] * 3
    for commit, email, when in zip(*records, strict=True):
        if email.decode("utf-8", "surrogateescape").strip().lower() == bot:
            continue
        at = parse_time(when.decode("ascii", "replace"))
        if at is not None:
            landed[commit.strip().decode("ascii", "replace")] = at
    latest: dict[str, datetime] = {}
    for commit, changed in store.changed_files(sorted(landed), CASES_ROOT).items():
        for _, _, path in changed:
            folder = _owning(path, wanted)
            if folder is not None and (folder not in latest or landed[commit] > latest[folder]):
                latest[folder] = landed[commit]
    return latest


def _owning(path: str, folders: set[str]) -> str | None:
    """The folder of ``folders`` that holds ``path``, if any."""
    parent = path.rpartition("/")[0]
    while parent:
        if parent in folders:
            return parent
        parent = parent.rpartition("/")[0]
    return None


def find_retired(
    store: CasesStore, head: str | None, folder: str, *, bot_email: str
) -> RetiredAt | None:
    """The last commit up to ``head`` that removed the case file of ``folder``, with the
    folder's files as they were just before; None when it never did. ``by_sweep`` is true
    for the bot's own retirement commit."""
    if head is None:
        return None
    path = f"{folder}/{CASE_FILE}"
    out = store.log(
        [
            "-1",
            "-z",
            "--diff-filter=D",
            "--no-renames",
            f"--format=%H%x00%aI%x00%ae%x00%(trailers:key={RETIRED_TRAILER},valueonly)",
            head,
            "--",
            path,
        ]
    )
    if not out.strip(b"\0\n"):
        return None
    commit, at, email, retired = out.decode("utf-8", "surrogateescape").split("\0")[:4]
    commit = commit.strip()
    found = _removed(store, {commit: folder})
    if commit not in found:
        raise StoreError(f"commit {commit[:12]} removes {path} but its parent has no such file")
    by_sweep = bool(retired.strip()) and email.strip().lower() == bot_email.strip().lower()
    return RetiredAt(Removal(commit, at, by_sweep), found[commit])


def retired_folders(store: CasesStore, commits: Mapping[str, str]) -> dict[str, RetiredAt]:
    """key → how the retirement commit (``commits``: key → commit) left its case, read from
    the files each commit removed (the bot's retirement commits, as ``report`` lists them)."""
    folders = {commit: parse_key(key).folder for key, commit in commits.items()}
    removed = _removed(store, folders)
    return {
        key: RetiredAt(Removal(commit, "", True), removed[commit])
        for key, commit in commits.items()
        if commit in removed
    }


def _removed(store: CasesStore, folders: Mapping[str, str]) -> dict[str, CaseFolder]:
    """commit → the case folder (``folders``: commit → folder) that commit removed, with the
    blob ids of its files before the commit (one ``diff-tree`` for all)."""
    found: dict[str, CaseFolder] = {}
    for commit, changed in store.changed_files(sorted(folders), CASES_ROOT).items():
        folder = folders[commit]
        before = {path: old for old, new, path in changed if old is not None and new is None}
        case_blob = before.get(f"{folder}/{CASE_FILE}")
        if case_blob is not None:
            found[commit] = CaseFolder(folder, case_blob, before.get(f"{folder}/{FINDINGS_FILE}"))
    return found
