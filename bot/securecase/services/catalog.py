"""Reading cases back: list them with filters, find one by key."""

from __future__ import annotations

import os
from dataclasses import dataclass

from securecase.domain.case import Case, CaseHeader, CaseSummary, Status
from securecase.domain.findings import Finding
from securecase.domain.policy.evaluate import glob_match
from securecase.domain.retirement import Removal
from securecase.domain.subjects import parse_key
from securecase.errors import CaseFileError, UsageError
from securecase.services.retirement import find_retired
from securecase.storage.casefile import CASE_FILE, FINDINGS_FILE, CaseLayoutError
from securecase.storage.caseread import CaseFolder, CaseReader, case_folders, parse_case
from securecase.storage.parsecache import ParseCache, no_cache
from securecase.storage.repos import is_remote, open_store
from securecase.storage.store import DEFAULT_IDENTITY, GitIdentity

STATUS_FILTERS = ("OPEN", *(s.value for s in Status))


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """Which cases to list; None means "any". ``status`` may be OPEN (NEW/TRIAGED/IN_PROGRESS).

    ``advisory`` and ``package`` (globs) keep the cases with an open finding (one not yet
    resolved) that has both: "where are we exposed to CVE-X right now".
    """

    repo: str | None = None
    branch: str | None = None
    status: str | None = None
    advisory: str | None = None
    package: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUS_FILTERS:
            raise UsageError(
                f"--status {self.status!r} is not a status",
                hint="one of " + ", ".join(STATUS_FILTERS),
            )

    @property
    def needs_findings(self) -> bool:
        """True when the filter looks into findings (findings.json), not only case.yaml."""
        return bool(self.advisory or self.package)

    def accepts(self, case: CaseHeader | CaseSummary) -> bool:
        """Whether the case's subject and status pass (what case.yaml alone tells)."""
        subject = case.subject
        if self.repo and not glob_match(self.repo, subject.slug, ignore_case=True):
            return False
        if self.branch and not (
            glob_match(self.branch, subject.branch or "")
            or glob_match(self.branch, subject.target_branch or "")
        ):
            return False
        if self.status == "OPEN":
            return case.status.coarse == "OPEN"
        return self.status is None or case.status.value == self.status

    def exposes(self, case: Case) -> bool:
        """Whether an open finding of the case matches ``advisory`` and ``package``."""
        return not self.needs_findings or any(self._matches(t.finding) for t in case.findings)

    def _matches(self, finding: Finding) -> bool:
        if finding.suppressed:
            return False
        if self.advisory and not glob_match(self.advisory, finding.advisory):
            return False
        return not self.package or (
            finding.package is not None and glob_match(self.package, finding.package.name)
        )


def require_existing(cases_repo: str) -> None:
    """Reading commands never create a cases repo: a missing local path is a usage error."""
    if not is_remote(cases_repo) and not os.path.exists(cases_repo):
        raise UsageError(
            f"no cases repo at {cases_repo}",
            hint="pass --cases-repo (or set SECURECASE_CASES_REPO); `securecase ingest` creates it",
        )


@dataclass(frozen=True, slots=True)
class CaseListing:
    """The cases that pass a filter, sorted by key, and the case files that could not be read
    (one message each, ``file:line`` first): a broken case never hides the others."""

    cases: tuple[CaseSummary, ...]
    broken: tuple[str, ...]


def list_cases(
    cases_repo: str,
    case_filter: CaseFilter,
    *,
    identity: GitIdentity = DEFAULT_IDENTITY,
    cache: ParseCache | None = None,
) -> CaseListing:
    """Every readable case in the cases repo that passes the filter, sorted by key (case.yaml
    only, plus findings.json of the cases that pass when the filter asks about findings), and
    the broken case files, skipped. ``cache`` (by blob id) spares parsing files read before."""
    require_existing(cases_repo)
    cache = cache or no_cache()
    # Every tree (to list the folders), and of blobs only those read: case.yaml, and
    # findings.json of the cases that pass when the filter asks about findings.
    with open_store(cases_repo, identity=identity, paths=[], list_tree=True) as store:
        reader = CaseReader(store, cache)
        folders = case_folders(store, store.snapshot().head)
        found: list[CaseSummary] = []
        broken: list[str] = []
        accepted: dict[str, CaseSummary] = {}
        for folder, header in reader.summaries(folders):
            if isinstance(header, CaseLayoutError):
                raise header  # the whole repo needs migrating, not one file mending: say so
            if isinstance(header, CaseFileError):
                broken.append(_broken(header))
            elif case_filter.accepts(header) and case_filter.needs_findings:
                accepted[folder.folder] = header
            elif case_filter.accepts(header):
                found.append(header)
        exposing = [f for f in folders if f.folder in accepted]
        for folder, case in reader.cases(exposing):
            if isinstance(case, CaseFileError):
                broken.append(_broken(case))
            elif case_filter.exposes(case):
                found.append(accepted[folder.folder])
        reader.finish()
    return CaseListing(tuple(sorted(found, key=lambda c: c.key)), tuple(broken))


def _broken(error: CaseFileError) -> str:
    first = error.problems[0] if error.problems else ""
    return f"{error.message}{': ' + first if first else ''}"


@dataclass(frozen=True, slots=True)
class FoundCase:
    """A case found by key: the case, its ``case.yaml`` bytes and path, and, for a case the
    sweep retired from the tip, the commit that removed it (the case is as it was before)."""

    case: Case
    data: bytes
    path: str
    retired: Removal | None = None


def find_case(
    cases_repo: str,
    key: str,
    *,
    identity: GitIdentity = DEFAULT_IDENTITY,
    cache: ParseCache | None = None,
) -> FoundCase:
    """The case with this key at the tip, else as it was when it left the tip (retired by the
    sweep, or removed by hand); UsageError when history never had it."""
    subject = parse_key(key)
    require_existing(cases_repo)
    folder = subject.folder
    path = f"{folder}/{CASE_FILE}"
    findings_path = f"{folder}/{FINDINGS_FILE}"
    retired: Removal | None = None
    # The two case files and the trees on the way to them: no other case, no raw report.
    with open_store(cases_repo, identity=identity, paths=[path, findings_path]) as store:
        snapshot = store.snapshot()
        case_blob, findings_blob = snapshot.blob_id(path), snapshot.blob_id(findings_path)
        if case_blob is None:
            found = find_retired(store, snapshot.head, folder, bot_email=identity.email)
            if found is not None:
                retired = found.removal
                case_blob, findings_blob = found.folder.case_blob, found.folder.findings_blob
        wanted = [b for b in (case_blob, findings_blob) if b is not None]
        blobs = store.read_blobs(wanted)
    if case_blob is None:
        raise UsageError(
            f"no case {key!r} in {cases_repo} (looked for {path}, at the tip and in history)",
            hint="`securecase cases list` shows the keys",
        )
    cache = cache or no_cache()
    where = CaseFolder(folder, case_blob, findings_blob)
    case_yaml = blobs[case_blob]
    findings_json = blobs.get(findings_blob) if findings_blob is not None else None
    case = parse_case(cache, where, case_yaml, findings_json)
    cache.flush()
    return FoundCase(case, case_yaml, path, retired)
