"""``policy diff``: what a policy change would do to every open case, before it merges.

Every OPEN case (NEW, TRIAGED, IN_PROGRESS) in the cases repo is judged under the old and the
new policy; the result lists the cases that flip pass → block or block → pass with the reasons
of each side, the cases that stay blocked for other reasons, and exceptions that become stale
or expired. The case files are read in one pass over one commit (one ``ls-tree``, one
long-running ``cat-file``; a remote fetches them in one call), so thousands of cases take
about a second.

Each case is judged as ingest judges it: against its target branch's case as baseline, with
the policy's exceptions and ages as of ``today``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

from securecase.domain.case import Case
from securecase.domain.policy import (
    Decision,
    Mode,
    Policy,
    builtin_policy,
    evaluate_case,
    load_policy,
    stale_exceptions,
)
from securecase.domain.policy.diff import (
    Direction,
    ExceptionNote,
    Flip,
    PolicyDiff,
    PolicySide,
)
from securecase.domain.policy.evaluate import EXPIRY_WARNING_DAYS
from securecase.domain.subjects import CASES_ROOT, Subject
from securecase.errors import UsageError
from securecase.services.catalog import require_existing
from securecase.storage.casefile import CASE_FILE, FINDINGS_FILE, load_case
from securecase.storage.repos import is_remote, open_store
from securecase.storage.userfile import read_regular_file, repo_policy_bytes

POLICY_FILE = "policy.yaml"


# -- judging ---------------------------------------------------------------------------------


def judge(
    policy: Policy, case: Case, *, baseline: Case | None, today: date, mode: Mode | None = None
) -> Decision:
    """One case under one policy, exactly as ``ingest`` would judge it on ``today``."""
    return evaluate_case(policy, case, baseline=baseline, today=today, mode=mode)


def exception_notes(
    old: Policy, new: Policy, cases: Sequence[Case], today: date
) -> tuple[ExceptionNote, ...]:
    """Exceptions of ``new`` that are stale, expired or expiring soon and were not so in ``old``.

    Stale: unexpired, yet matching no finding of any open case. Expired: ``expires`` is
    before ``today``. Expiring: ends within :data:`EXPIRY_WARNING_DAYS` days.
    """
    return split_exception_notes(old, new, cases, today)[0]


def split_exception_notes(
    old: Policy, new: Policy, cases: Sequence[Case], today: date
) -> tuple[tuple[ExceptionNote, ...], tuple[ExceptionNote, ...]]:
    """The notes on ``new``'s exceptions (see :func:`exception_notes`), split in two: those
    this change brings, and those already true under ``old`` (still worth cleaning up).
    """

    def states(policy: Policy) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        horizon = today + timedelta(days=EXPIRY_WARNING_DAYS)
        for exc in policy.exceptions:
            if exc.expired(today):
                found[(exc.id, "expired")] = f"expired on {exc.expires.isoformat()}"
            elif exc.expires <= horizon:
                found[(exc.id, "expiring")] = f"expires on {exc.expires.isoformat()}"
        for exc_id in stale_exceptions(policy, cases, today):
            found[(exc_id, "stale")] = "matches no finding of any open case"
        return found

    before = states(old) if old.exceptions else {}
    order = {exc.id: n for n, exc in enumerate(new.exceptions)}
    changed: list[ExceptionNote] = []
    unchanged: list[ExceptionNote] = []
    for (exc_id, state), detail in states(new).items():
        note = ExceptionNote(exc_id, state, detail)
        (unchanged if (exc_id, state) in before else changed).append(note)
    for notes in (changed, unchanged):
        notes.sort(key=lambda note: (order.get(note.id, 0), note.state))
    return tuple(changed), tuple(unchanged)


# -- policies ------------------------------------------------------------------------------


def policy_from_file(path: Path) -> Policy:
    """Load a policy file given on the command line (PolicyError with file:line if invalid)."""
    return load_policy(read_regular_file(path, what=str(path)), origin=str(path))


def working_policy(cases_repo: str) -> Policy:
    """The cases repo's working ``policy.yaml`` (the built-in default when there is none)."""
    if is_remote(cases_repo):
        raise UsageError(
            "a remote cases repo has no working policy.yaml",
            hint="give the new policy file: securecase policy diff --base-ref REF NEW",
        )
    require_existing(cases_repo)
    path = Path(cases_repo) / POLICY_FILE
    if not os.path.lexists(path):  # a dangling link is an error below, not "no policy"
        return builtin_policy()
    return policy_from_file(path)


def policy_at_ref(cases_repo: str, ref: str) -> Policy:
    """The cases repo's ``policy.yaml`` at ``ref`` (the built-in default when it had none)."""
    require_existing(cases_repo)
    with open_store(cases_repo, paths=[POLICY_FILE]) as store:
        snapshot = store.snapshot_at(ref)
        if snapshot is None:
            raise UsageError(
                f"--base-ref {ref!r}: no such commit in the cases repo {cases_repo}",
                hint="fetch it first (e.g. git fetch origin main), or name a branch, tag or sha",
            )
        data = repo_policy_bytes(snapshot, POLICY_FILE)
    if data is None:
        return builtin_policy()
    return load_policy(data, origin=f"{ref}:{POLICY_FILE}")


# -- the diff ------------------------------------------------------------------------------


def diff_policies(cases_repo: str, old: Policy, new: Policy, *, today: date) -> PolicyDiff:
    """Judge every open case under ``old`` and ``new`` and collect what changes."""
    require_existing(cases_repo)
    # A remote is cloned without file contents (paths=[policy.yaml] makes the clone partial);
    # the case files alone (case.yaml and findings.json) are then fetched in one batch, never
    # the raw reports beside them.
    with open_store(cases_repo, paths=[POLICY_FILE]) as store:
        head = store.snapshot().head
        case_blobs = {
            path: oid
            for path, oid in store.blob_ids(head, CASES_ROOT).items()
            if path.endswith(("/" + CASE_FILE, "/" + FINDINGS_FILE))
        }
        contents = store.read_blobs(list(case_blobs.values()))
    reader = _CaseReader({path: contents[oid] for path, oid in case_blobs.items()})
    opened = reader.open_cases()
    flips: list[Flip] = []
    changed: list[Flip] = []
    blocked_before = blocked_after = 0
    for path, case in opened:
        baseline = reader.baseline(case)
        before = judge(old, case, baseline=baseline, today=today)
        after = judge(new, case, baseline=baseline, today=today)
        blocked_before += before.gate
        blocked_after += after.gate
        if before.gate == after.gate and (not after.gate or before.reasons == after.reasons):
            continue
        if before.gate == after.gate:
            direction = Direction.STILL_BLOCKED
        else:
            direction = Direction.NEW_BLOCK if after.gate else Direction.UNBLOCK
        flip = Flip(
            key=case.key,
            path=path,
            direction=direction,
            old_reasons=before.reasons,
            new_reasons=after.reasons,
            baseline=baseline.key if baseline is not None else None,
        )
        (changed if direction is Direction.STILL_BLOCKED else flips).append(flip)
    notes, standing = split_exception_notes(old, new, [case for _, case in opened], today)
    return PolicyDiff(
        old=PolicySide(old.origin, old.blob, old.mode),
        new=PolicySide(new.origin, new.blob, new.mode),
        today=today,
        cases_commit=head,
        open_cases=len(opened),
        blocked_before=blocked_before,
        blocked_after=blocked_after,
        flips=tuple(flips),
        reasons_changed=tuple(changed),
        exceptions=notes,
        exceptions_unchanged=standing,
    )


class _CaseReader:
    """Parses case folders (file path → bytes, all read in one batch), each at most once."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = files
        self._cache: dict[str, Case | None] = {}

    def _case(self, folder: str) -> Case | None:
        if folder not in self._cache:
            case_yaml = self._files.get(f"{folder}/{CASE_FILE}")
            self._cache[folder] = (
                None
                if case_yaml is None
                else load_case(
                    case_yaml, self._files.get(f"{folder}/{FINDINGS_FILE}"), folder=folder
                )
            )
        return self._cache[folder]

    def open_cases(self) -> list[tuple[str, Case]]:
        """Every open case with its case.yaml path, sorted by key (a broken file fails, with
        file:line)."""
        found = []
        for path in sorted(p for p in self._files if p.endswith("/" + CASE_FILE)):
            case = self._case(path[: -len(CASE_FILE) - 1])
            if case is not None and case.status.coarse == "OPEN":
                found.append((path, case))
        return sorted(found, key=lambda item: item[1].key)

    def baseline(self, case: Case) -> Case | None:
        """For a pull request: the case of its target branch in the same repository."""
        subject = case.subject
        if not subject.is_pr or not subject.target_branch:
            return None
        target = Subject(
            provider=subject.provider,
            org=subject.org,
            repo=subject.repo,
            branch=subject.target_branch,
        )
        return self._case(target.folder)
