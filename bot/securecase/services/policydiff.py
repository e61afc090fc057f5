"""``policy diff``: what a policy change would do to every open case, before it merges.

Every OPEN case (NEW, TRIAGED, IN_PROGRESS) in the cases repo is judged under the old and the
new policy; the result lists the cases that flip pass → block or block → pass with the reasons
of each side, the cases that stay blocked for other reasons, and exceptions that become stale
or expired. The case files are read in one pass over one commit (one ``ls-tree``, one
``cat-file --batch`` stream, through the parse cache; a remote fetches them in one call), one
repository's folder at a time.

Each case is judged as ingest judges it: against its target branch's case as baseline, with
the policy's exceptions and ages as of ``today``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

from securecase.domain.case import Case, CaseHeader
from securecase.domain.policy import (
    Policy,
    builtin_policy,
    evaluate_case_under,
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
from securecase.domain.subjects import Subject
from securecase.errors import CaseFileError, UsageError
from securecase.services.catalog import require_existing
from securecase.storage.casefile import CASE_FILE
from securecase.storage.caseread import CaseFolder, CaseReader, case_folders
from securecase.storage.parsecache import ParseCache, no_cache
from securecase.storage.repos import is_remote, open_store
from securecase.storage.userfile import read_regular_file, repo_policy_bytes

POLICY_FILE = "policy.yaml"


# -- judging ---------------------------------------------------------------------------------


def exception_notes(
    old: Policy, new: Policy, cases: Sequence[Case], today: date
) -> tuple[ExceptionNote, ...]:
    """Exceptions of ``new`` that are stale, expired or expiring soon and were not so in ``old``.

    Stale: unexpired, yet matching no finding of any open case. Expired: ``expires`` is
    before ``today``. Expiring: ends within :data:`EXPIRY_WARNING_DAYS` days.
    """
    old_unmatched, new_unmatched = Unmatched(old, today), Unmatched(new, today)
    for case in cases:
        old_unmatched.see(case)
        new_unmatched.see(case)
    return split_exception_notes(old, new, old_unmatched, new_unmatched, today)[0]


class Unmatched:
    """The unexpired exceptions of a policy that no open case seen so far has a finding for:
    fed one case at a time, so the cases need not all be held at once."""

    def __init__(self, policy: Policy, today: date) -> None:
        self._policy = policy
        self._today = today
        self._waiting = set(stale_exceptions(policy, (), today))

    def see(self, case: Case) -> None:
        """Take one case into account."""
        if self._waiting:
            self._waiting.intersection_update(stale_exceptions(self._policy, (case,), self._today))

    @property
    def ids(self) -> frozenset[str]:
        """The exceptions still unmatched (the stale ones, once every case was seen)."""
        return frozenset(self._waiting)


def split_exception_notes(
    old: Policy, new: Policy, old_stale: Unmatched, new_stale: Unmatched, today: date
) -> tuple[tuple[ExceptionNote, ...], tuple[ExceptionNote, ...]]:
    """The notes on ``new``'s exceptions (see :func:`exception_notes`), split in two: those
    this change brings, and those already true under ``old`` (still worth cleaning up).
    ``old_stale`` and ``new_stale`` have seen every open case.
    """

    def states(policy: Policy, stale: Unmatched) -> dict[tuple[str, str], str]:
        found: dict[tuple[str, str], str] = {}
        horizon = today + timedelta(days=EXPIRY_WARNING_DAYS)
        for exc in policy.exceptions:
            if exc.expired(today):
                found[(exc.id, "expired")] = f"expired on {exc.expires.isoformat()}"
            elif exc.expires <= horizon:
                found[(exc.id, "expiring")] = f"expires on {exc.expires.isoformat()}"
        for exc in policy.exceptions:
            if exc.id in stale.ids:
                found[(exc.id, "stale")] = "matches no finding of any open case"
        return found

    before = states(old, old_stale) if old.exceptions else {}
    order = {exc.id: n for n, exc in enumerate(new.exceptions)}
    changed: list[ExceptionNote] = []
    unchanged: list[ExceptionNote] = []
    for (exc_id, state), detail in states(new, new_stale).items():
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


def diff_policies(
    cases_repo: str, old: Policy, new: Policy, *, today: date, cache: ParseCache | None = None
) -> PolicyDiff:
    """Judge every open case under ``old`` and ``new`` and collect what changes.

    The cases are read in one stream, one repository's folder at a time (a pull request's
    baseline is its target branch's case, in the same folder), so memory holds one
    repository's cases, not the whole cases repo's. A broken case file fails the diff.
    """
    tally = DiffTally(old, new, today)
    head = tally.judge_repo(cases_repo, cache=cache)
    return tally.result(cases_commit=head)


class DiffTally:
    """The diff of two policies gathered over one or more cases repos (shards), one repo at
    a time: flips, counts, and the exceptions no open case of any repo matches."""

    def __init__(self, old: Policy, new: Policy, today: date) -> None:
        self.old, self.new, self.today = old, new, today
        self.flips: list[Flip] = []
        self.changed: list[Flip] = []
        self.blocked_before = self.blocked_after = self.open_cases = 0
        self.old_unmatched, self.new_unmatched = Unmatched(old, today), Unmatched(new, today)

    def judge_repo(
        self,
        cases_repo: str,
        *,
        cache: ParseCache | None = None,
        skip: frozenset[str] = frozenset(),
        label: str | None = None,
    ) -> str | None:
        """Judge the open cases of one cases repo, except those in the folders ``skip``;
        returns the commit read. ``label`` (a shard's name) prefixes the case paths shown."""
        require_existing(cases_repo)
        cache = cache or no_cache()
        old, new, today = self.old, self.new, self.today
        prefix = f"{label}:" if label else ""
        # A remote is cloned with every folder listing and no file content but policy.yaml;
        # the case files alone (case.yaml and findings.json) are then fetched in one batch,
        # never the raw reports beside them.
        with open_store(cases_repo, paths=[POLICY_FILE], list_tree=True) as store:
            head = store.snapshot().head
            reader = CaseReader(store, cache)
            folders = case_folders(store, head)
            by_path = {f.folder: f for f in folders}
            judged = [f for f in folders if f.folder not in skip]
            for group in _by_repository(reader.cases_where(judged, _judged_or_baseline)):
                for path, case in group.items():
                    if not isinstance(case, Case) or case.status.coarse != "OPEN":
                        continue
                    self.open_cases += 1
                    self.old_unmatched.see(case)
                    self.new_unmatched.see(case)
                    baseline = _baseline(case, group, reader, by_path)
                    before, after = evaluate_case_under(
                        (old, new), case, baseline=baseline, today=today
                    )
                    self.blocked_before += before.gate
                    self.blocked_after += after.gate
                    if before.gate == after.gate and (
                        not after.gate or before.reasons == after.reasons
                    ):
                        continue
                    if before.gate == after.gate:
                        direction = Direction.STILL_BLOCKED
                    else:
                        direction = Direction.NEW_BLOCK if after.gate else Direction.UNBLOCK
                    flip = Flip(
                        key=case.key,
                        path=f"{prefix}{path}/{CASE_FILE}",
                        direction=direction,
                        old_reasons=before.reasons,
                        new_reasons=after.reasons,
                        baseline=baseline.key if baseline is not None else None,
                    )
                    stays = direction is Direction.STILL_BLOCKED
                    (self.changed if stays else self.flips).append(flip)
            reader.finish()
        return head

    def result(self, *, cases_commit: str | None) -> PolicyDiff:
        """The diff over every repo judged so far."""
        old, new, today = self.old, self.new, self.today
        notes, standing = split_exception_notes(
            old, new, self.old_unmatched, self.new_unmatched, today
        )
        return PolicyDiff(
            old=PolicySide(old.origin, old.blob, old.mode),
            new=PolicySide(new.origin, new.blob, new.mode),
            today=today,
            cases_commit=cases_commit,
            open_cases=self.open_cases,
            blocked_before=self.blocked_before,
            blocked_after=self.blocked_after,
            flips=tuple(sorted(self.flips, key=_by_key)),
            reasons_changed=tuple(sorted(self.changed, key=_by_key)),
            exceptions=notes,
            exceptions_unchanged=standing,
        )


def _by_key(flip: Flip) -> str:
    return flip.key


def _judged_or_baseline(header: CaseHeader) -> bool:
    """Whether the diff needs the case's findings: an open case is judged, a branch case may
    be an open pull request's baseline. A closed pull request's findings are never read."""
    return header.status.coarse == "OPEN" or not header.subject.is_pr


def _by_repository(
    read: Iterator[tuple[CaseFolder, Case | CaseHeader | CaseFileError]],
) -> Iterator[dict[str, Case | CaseHeader]]:
    """The cases of one repository's folder at a time (folder path -> case, or its header
    when its findings were not read), from a stream in path order; a broken case file stops
    the diff with its error."""
    group: dict[str, Case | CaseHeader] = {}
    parent = None
    for folder, case in read:
        if isinstance(case, CaseFileError):
            raise case
        here = folder.folder.rpartition("/")[0]
        if here != parent and group:
            yield group
            group = {}
        parent = here
        group[folder.folder] = case
    if group:
        yield group


def _baseline(
    case: Case,
    group: Mapping[str, Case | CaseHeader],
    reader: CaseReader,
    folders: Mapping[str, CaseFolder],
) -> Case | None:
    """For a pull request: the case of its target branch in the same repository."""
    subject = case.subject
    if not subject.is_pr or not subject.target_branch:
        return None
    target = Subject(
        provider=subject.provider,
        org=subject.org,
        repo=subject.repo,
        branch=subject.target_branch,
    ).folder
    known = group.get(target)
    if isinstance(known, Case):
        return known
    if target not in folders:
        return None
    # A case file moved by hand away from its subject's folder (or a pull request's case put
    # in a branch's folder, read as a header only): read the baseline on its own.
    for _, found in reader.cases([folders[target]]):
        if isinstance(found, CaseFileError):
            raise found
        return found
    return None
