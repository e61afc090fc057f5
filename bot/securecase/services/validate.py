"""``securecase cases validate``: check the case folders of a cases repo checkout.

What a reviewer of a triage pull request cannot see by eye: that every ``case.yaml`` and
``findings.json`` still match their schemas (status values included), that the key names the
folder the case sits in, that the counts and worst severity ``case.yaml`` shows agree with the
findings, and that each source's raw report is there with the digest the case records. Every
problem is reported as ``file:line`` where the file gives one, all at once.

It reads the files on disk (what a pull request would merge, or what a person is about to
commit), so the cases repo must be a local checkout.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from securecase.domain.case import Case, CaseHeader, Status
from securecase.domain.subjects import CASES_ROOT
from securecase.errors import CaseFileError, UsageError
from securecase.storage import yamldoc
from securecase.storage.casefile import CASE_FILE, FINDINGS_FILE, load_case, load_case_header
from securecase.storage.rawfile import read_raw
from securecase.storage.repos import is_remote

if TYPE_CHECKING:
    from yaml import Node


@dataclass(frozen=True, slots=True)
class CasesValidation:
    """The case folders checked (relative to the repo root) and the problems found."""

    checked: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def valid(self) -> bool:
        """True when no case folder has a problem."""
        return not self.problems


def validate_cases(cases_repo: str, paths: Sequence[str] = ()) -> CasesValidation:
    """Check every case folder under ``cases/`` of ``cases_repo``, or only those ``paths``
    name (case folders, ``case.yaml`` files or folders holding cases, relative to the repo).

    ``UsageError`` for a remote URL or a path outside ``cases/``.
    """
    if is_remote(cases_repo):
        raise UsageError(
            f"cases validate reads a checkout, not {cases_repo}",
            hint="clone the cases repo and pass its folder as --cases-repo",
        )
    root = Path(cases_repo)
    if not root.is_dir():
        raise UsageError(
            f"no cases repo at {cases_repo}",
            hint="pass --cases-repo (or set SECURECASE_CASES_REPO)",
        )
    folders = sorted(_case_folders(root, paths))
    problems: list[str] = []
    for folder in folders:
        problems.extend(check_case_folder(root, folder))
    return CasesValidation(tuple(folders), tuple(problems))


def _case_folders(root: Path, paths: Sequence[str]) -> set[str]:
    """Case folders (``cases/<provider>/<org>/<repo>/<subject>``) under the given paths."""
    starts = [_relative(root, p) for p in paths] or [CASES_ROOT]
    found: set[str] = set()
    for start in starts:
        if start.endswith("/" + CASE_FILE) or start == CASE_FILE:
            start = start.rpartition("/")[0]
        parts = start.split("/")
        if parts[0] != CASES_ROOT:
            raise UsageError(
                f"{start}: not inside {CASES_ROOT}/ of the cases repo",
                hint="give case folders such as cases/github/acme/shop/pr-42",
            )
        if len(parts) >= 5:
            found.add("/".join(parts[:5]))
            continue
        base = root / start
        if not base.is_dir():
            raise UsageError(f"{start}: no such folder in the cases repo")
        pattern = "/".join(["*"] * (5 - len(parts)))
        found.update(
            f.relative_to(root).as_posix()
            for f in base.glob(pattern)
            if f.is_dir() and not any(part.startswith(".") for part in f.parts[-5:])
        )
    return found


def _relative(root: Path, given: str) -> str:
    """``given`` as a path inside the repo: relative to the repo, or to the working folder."""
    path = Path(given)
    candidates = [path] if path.is_absolute() else [root / path, Path.cwd() / path]
    for candidate in candidates:
        try:
            rel = candidate.resolve().relative_to(root.resolve())
        except ValueError:
            continue
        if candidate.exists():
            return rel.as_posix()
    return path.as_posix().strip("/")


def check_case_folder(root: Path, folder: str) -> list[str]:
    """Every problem of one case folder, each starting with ``file:line`` where known."""
    path = f"{folder}/{CASE_FILE}"
    try:
        case_yaml = (root / path).read_bytes()
    except FileNotFoundError:
        return [f"{path}: missing (the folder {folder} holds no case file)"]
    except OSError as exc:
        return [f"{path}: cannot read ({exc.strerror})"]
    try:
        findings_json: bytes | None = (root / folder / FINDINGS_FILE).read_bytes()
    except FileNotFoundError:
        findings_json = None
    except OSError as exc:
        return [f"{folder}/{FINDINGS_FILE}: cannot read ({exc.strerror})"]
    try:
        # A case of the first layout is valid: its next ingest rewrites it.
        case = load_case(case_yaml, findings_json, folder=folder, old_layout=True)
        header = load_case_header(case_yaml, folder=folder, old_layout=True)
    except CaseFileError as error:
        # Schema problems name file:line already; others (bad JSON) get the file named.
        return [
            problem if problem.startswith(folder) else f"{error.message}: {problem}"
            for problem in error.problems
        ] or [error.message]
    node = yamldoc.load_located(case_yaml, path=path).node
    problems = []
    if case.subject.folder != folder:
        problems.append(
            f"{_at(node, path, ['key'])}: $.key: {case.key!r} belongs in "
            f"{case.subject.folder}/, not in {folder}/"
        )
    problems += _count_problems(case, header, node, path)
    problems += _source_problems(root, case, node, path)
    return problems


def _count_problems(case: Case, header: CaseHeader, node: Node | None, path: str) -> list[str]:
    """The counts and worst severity case.yaml shows, against the active findings."""
    problems = []
    for severity, expected in case.counts.items():
        shown = header.counts.get(severity)
        if shown != expected:
            problems.append(
                f"{_at(node, path, ['counts', severity])}: $.counts.{severity}: {shown} but "
                f"the findings hold {expected} active"
            )
    if header.max_severity != case.max_severity:
        shown_worst = header.max_severity.value if header.max_severity else None
        worst = case.max_severity.value if case.max_severity else None
        problems.append(
            f"{_at(node, path, ['max_severity'])}: $.max_severity: {shown_worst} but the worst "
            f"active finding is {worst}"
        )
    return problems


def _source_problems(root: Path, case: Case, node: Node | None, path: str) -> list[str]:
    """Each source's raw report: inside the case folder, present, with the recorded digest."""
    problems = []
    folder = path.rpartition("/")[0]
    for name, record in case.sources.items():
        where = _at(node, path, ["sources", name, "raw"])
        if not record.raw.startswith(folder + "/raw/"):
            problems.append(f"{where}: $.sources.{name}.raw: {record.raw} is outside {folder}/raw/")
            continue
        try:
            stored = (root / record.raw).read_bytes()
        except OSError:
            if case.status is not Status.CLOSED:  # sweep --prune-raw-after drops closed ones
                problems.append(f"{where}: $.sources.{name}.raw: {record.raw} is missing")
            continue
        try:
            digest = hashlib.sha256(read_raw(record.raw, stored)).hexdigest()
        except (OSError, EOFError, zlib.error):
            problems.append(f"{where}: $.sources.{name}.raw: {record.raw} is not valid gzip")
            continue
        if digest != record.sha256:
            problems.append(
                f"{where}: $.sources.{name}.sha256: {record.raw} has sha256 {digest[:12]}…, "
                f"the case records {record.sha256[:12]}…"
            )
    return problems


def _at(node: Node | None, path: str, json_path: list[str | int]) -> str:
    line = yamldoc.line_of(node, json_path)
    return f"{path}:{line}" if line else path
