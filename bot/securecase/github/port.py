"""The small GitHub interface the reporting code depends on (implemented by ``github_api``).

Plain typed data in and out, so the orchestration never sees PyGithub objects and tests can
drive the real adapter against a local server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from securecase.github.checks import Annotation, Conclusion


@dataclass(frozen=True, slots=True)
class CheckRunFields:
    """One create or update of a completed check run (``title`` and ``summary`` always sent)."""

    name: str
    head_sha: str
    conclusion: Conclusion
    title: str
    summary: str
    completed_at: datetime
    details_url: str | None = None
    external_id: str | None = None
    annotations: tuple[Annotation, ...] = ()


@dataclass(frozen=True, slots=True)
class ExistingCheckRun:
    """A check run already on the commit (a re-run updates it instead of adding another)."""

    id: int
    external_id: str | None
    annotations_count: int


@dataclass(frozen=True, slots=True)
class CommitStatusFields:
    """A commit status: the fallback when check runs are not allowed."""

    sha: str
    state: str
    description: str
    context: str
    target_url: str | None = None


class GitHubPort(Protocol):
    """What securecase asks of GitHub; every method raises ``GitHubError`` on failure."""

    def find_check_runs(self, repo: str, head_sha: str, name: str) -> list[ExistingCheckRun]:
        """Check runs called ``name`` on ``head_sha``, newest first."""
        ...

    def create_check_run(self, repo: str, fields: CheckRunFields) -> int:
        """Create a check run; returns its id."""
        ...

    def update_check_run(self, repo: str, check_run_id: int, fields: CheckRunFields) -> None:
        """Update a check run; annotations given are appended to the existing ones."""
        ...

    def list_annotations(self, repo: str, check_run_id: int) -> list[Annotation]:
        """The annotations already on a check run (updates only ever append to them)."""
        ...

    def create_commit_status(self, repo: str, fields: CommitStatusFields) -> None:
        """Post a commit status."""
        ...
