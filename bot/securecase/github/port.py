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


@dataclass(frozen=True, slots=True)
class PullRef:
    """A pull request as the API lists it for a commit (the hand-off's source of truth)."""

    number: int
    state: str
    head_sha: str
    head_ref: str
    #: ``owner/name`` of the head repository; None when the fork was deleted.
    head_repo: str | None
    base_ref: str
    base_repo: str


@dataclass(frozen=True, slots=True)
class IssueComment:
    """A comment on an issue or pull request; ``author_is_bot`` for an App or Actions token."""

    id: int
    body: str
    author_is_bot: bool


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


class PullRequestPort(Protocol):
    """Pull-request look-ups and issue comments (the hand-off and the sticky comment)."""

    def pulls_for_commit(self, repo: str, sha: str) -> list[PullRef]:
        """Pull requests whose head (or merge) commit is ``sha``."""
        ...

    def list_issue_comments(self, repo: str, number: int) -> list[IssueComment]:
        """Every comment on issue or pull request ``number``, oldest first."""
        ...

    def create_issue_comment(self, repo: str, number: int, body: str) -> int:
        """Add a comment; returns its id."""
        ...

    def update_issue_comment(self, repo: str, number: int, comment_id: int, body: str) -> None:
        """Replace a comment's body."""
        ...

    def delete_issue_comment(self, repo: str, number: int, comment_id: int) -> None:
        """Delete a comment."""
        ...
