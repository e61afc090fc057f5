"""The sticky pull-request comment: one per pull request and case, edited in place.

Opt-in (``--comment on-block|always``). The comment is found again by a hidden marker: its
whole first line, naming the case. Comments by bot accounts (an App or the Actions token) are
preferred, so a person who copies the marker into a comment cannot take the place of the
bot's own; at worst securecase edits or deletes that copy, never a comment without it. Each
push edits the same comment; when the pull request passes, ``on-block`` deletes it and
``always`` edits it to say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from securecase.errors import GitHubError
from securecase.github.port import IssueComment, PullRequestPort

MARKER = "<!-- securecase:comment -->"
#: GitHub refuses comment bodies over 65,536 characters.
COMMENT_LIMIT = 65536


class CommentMode(StrEnum):
    """When to keep a comment on the pull request."""

    NEVER = "never"
    ON_BLOCK = "on-block"
    ALWAYS = "always"


class CommentAction(StrEnum):
    """What happened to the comment."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class CommentOutcome:
    """What was done, the comment id, and warnings for stderr."""

    action: CommentAction
    comment_id: int | None
    warnings: tuple[str, ...] = ()


def marker_line(case_key: str) -> str:
    """The hidden first line that identifies this case's comment."""
    # The key cannot end the HTML comment: keys hold no ``-->`` (subjects are checked).
    return f"{MARKER} <!-- {case_key.replace('--', '- -')} -->"


def comment_body(case_key: str, markdown: str) -> str:
    """The comment: the marker line, then the summary (already within GitHub's limits)."""
    return f"{marker_line(case_key)}\n{markdown}"


def _ours(comments: list[IssueComment], case_key: str) -> list[IssueComment]:
    first = marker_line(case_key)
    marked = [c for c in comments if c.body.split("\n", 1)[0] == first]
    return sorted(marked, key=lambda c: not c.author_is_bot)  # stable: oldest first otherwise


def sync_comment(
    github: PullRequestPort,
    repo: str,
    pr: int,
    *,
    case_key: str,
    markdown: str,
    blocked: bool,
    mode: CommentMode,
) -> CommentOutcome:
    """Create, edit or delete this case's comment on ``pr`` as ``mode`` says; never raises
    ``GitHubError`` (failures come back as warnings)."""
    if mode is CommentMode.NEVER:
        return CommentOutcome(CommentAction.NONE, None)
    try:
        existing = _ours(github.list_issue_comments(repo, pr), case_key)
        keep = blocked or mode is CommentMode.ALWAYS
        if not keep:
            for comment in existing:
                github.delete_issue_comment(repo, pr, comment.id)
            if existing:
                return CommentOutcome(CommentAction.DELETED, existing[0].id)
            return CommentOutcome(CommentAction.NONE, None)
        body = comment_body(case_key, markdown)
        if existing:
            first = existing[0]
            if first.body == body:
                return CommentOutcome(CommentAction.UNCHANGED, first.id)
            github.update_issue_comment(repo, pr, first.id, body)
            return CommentOutcome(CommentAction.UPDATED, first.id)
        return CommentOutcome(CommentAction.CREATED, github.create_issue_comment(repo, pr, body))
    except GitHubError as error:
        hint = " (the job needs pull-requests: write)" if error.kind == "forbidden" else ""
        return CommentOutcome(
            CommentAction.NONE,
            None,
            (f"could not update the pull-request comment: {error.message}{hint}",),
        )
