"""Publish an ingest's result on GitHub, with fallbacks: check run → commit status → job summary.

Runs after the case commit. Nothing here can change the exit code or lose the case: every
failure becomes a warning in the returned :class:`PublishOutcome` (and :class:`Publication`).
Whether to post at all is decided before the ingest, by :func:`plan_posting`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from securecase.errors import GitHubError, SecurecaseError, UsageError

if TYPE_CHECKING:
    from securecase.domain.outcome import IngestResult
    from securecase.github.actions import ActionsContext
    from securecase.github.checks import Annotation, CheckContent
    from securecase.github.client import GitHubClient, GitHubSettings
    from securecase.github.port import CheckRunFields, ExistingCheckRun, GitHubPort

# Every ingest imports this module to plan its publishing; what posting needs is imported when
# there is something to post, so a run without GitHub pays nothing for it.

FORK_PR_WARNING = (
    "pull request from a fork: its token is read-only, so the result is only in the "
    "job summary (hand the reports to a workflow_run job, or pass --report github to try anyway)"
)
UNKNOWN_COMMIT_WARNING = "not posted to GitHub: the scanned commit is unknown (pass --commit)"


class Channel(StrEnum):
    """Where the result ended up."""

    CHECK_RUN = "check_run"
    COMMIT_STATUS = "commit_status"
    JOB_SUMMARY = "job_summary"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """The commit to publish on: ``owner/name`` and the scanned head SHA."""

    repo: str
    head_sha: str


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """What the CLI asks for; ``target`` None means do not post to GitHub."""

    target: CheckTarget | None
    case_url: str | None
    run_url: str | None
    step_summary_path: str | None
    output_path: str | None


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """Where the result went, the check run id, and warnings for stderr."""

    channel: Channel
    check_run_id: int | None
    updated_existing: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PostingPlan:
    """Whether to post an ingest's result to GitHub, decided from the options before ingesting."""

    #: Post a check run (or a commit status) when the scanned commit is known.
    post: bool
    #: ``--report github`` was asked for: post even from a fork pull request.
    explicit: bool
    settings: GitHubSettings | None


@dataclass(frozen=True, slots=True)
class Publication:
    """What publishing an ingest leaves for the user: warnings, and the bug that cut it short.

    ``internal_error`` is set only for an unexpected exception (a bug), so the CLI can show its
    traceback with ``--verbose``; it has already been turned into a warning.
    """

    warnings: tuple[str, ...]
    internal_error: Exception | None = None


def plan_posting(
    publish_to: str | None, settings: GitHubSettings | None, *, provider: str
) -> PostingPlan:
    """Post when ``publish_to`` (``--report``) is ``github``, or when it is None and credentials
    are given.

    Only GitHub-hosted repositories are posted to. ``publish_to`` ``github`` without credentials
    is a ``UsageError``, raised before anything is committed.
    """
    if publish_to == "github" and settings is None:
        raise UsageError(
            "--report github needs GitHub credentials",
            hint="pass --github-token (default $GITHUB_TOKEN) or the --github-app-* options",
        )
    post = publish_to == "github" or (publish_to is None and settings is not None)
    return PostingPlan(
        post=post and provider == "github", explicit=publish_to == "github", settings=settings
    )


def publish_ingest(
    result: IngestResult,
    plan: PostingPlan,
    *,
    repo: str,
    head_sha: str | None,
    run_url: str | None,
    cases_repo: str,
    cases_web_url: str | None,
    context: ActionsContext | None,
    now: datetime,
    pr: int | None = None,
    comment: str = "never",
) -> Publication:
    """Post an ingest's result as ``plan`` says and write the Actions files; never raises.

    The case link points into ``cases_web_url``, else the web page of a GitHub
    ``cases_repo`` URL. A pull request from a fork is not posted unless asked for explicitly
    (its token is read-only), nor is a result whose scanned commit is unknown. With
    ``comment`` on-block or always and a pull request ``pr``, the sticky comment follows the
    check run (:mod:`securecase.github.comments`). Every failure, a bug included, becomes a
    warning: the case is already committed.
    """
    if not plan.post and context is None:
        return Publication(())  # nothing to post and no Actions files to write
    from securecase.github.links import case_file_url, repo_web_base

    warnings: list[str] = []
    try:
        server_url = context.server_url if context is not None else "https://github.com"
        web_base = cases_web_url or repo_web_base(cases_repo, server_url=server_url)
        case_url = case_file_url(web_base, result.cases_commit, result.case_path)
        post = plan.post
        fork_pr = context is not None and context.from_fork and context.event_name == "pull_request"
        if post and fork_pr and not plan.explicit:
            warnings.append(FORK_PR_WARNING)
            post = False
        target = None
        if post and head_sha:
            target = CheckTarget(repo=repo, head_sha=head_sha)
        elif post:
            warnings.append(UNKNOWN_COMMIT_WARNING)
        port = None
        if target is not None:
            from securecase.github.client import GitHubClient, GitHubSettings

            # Without settings the client refuses with a UsageError (no credentials).
            port = GitHubClient(plan.settings or GitHubSettings())
        outcome, _ = publish(
            result,
            PublishRequest(
                target=target,
                case_url=case_url,
                run_url=run_url,
                step_summary_path=context.step_summary_path if context else None,
                output_path=context.output_path if context else None,
            ),
            port=port,
            now=now,
        )
        warnings.extend(outcome.warnings)
        if port is not None and pr is not None and comment != "never":
            warnings.extend(_sync_comment(port, repo, pr, result, case_url, run_url, comment))
    except SecurecaseError as error:
        warnings.append(f"publishing failed: {error.message}")
    except Exception as exc:  # a publishing bug must not turn a recorded case into a failure
        warnings.append(f"publishing failed (internal error {type(exc).__name__}); see --verbose")
        return Publication(tuple(warnings), internal_error=exc)
    return Publication(tuple(warnings))


def _sync_comment(
    port: GitHubClient,
    repo: str,
    pr: int,
    result: IngestResult,
    case_url: str | None,
    run_url: str | None,
    comment: str,
) -> tuple[str, ...]:
    """Keep the sticky comment in step with this result; its warnings."""
    from securecase.github.comments import COMMENT_LIMIT, CommentMode, marker_line, sync_comment
    from securecase.render.markdown import size, summary_markdown, summary_of

    # Same summary as the check run, within the comment limit once the marker line is on top.
    room = COMMENT_LIMIT - size(marker_line(result.case.key)) - 1
    data = summary_of(result, case_url=case_url, run_url=run_url)
    markdown = summary_markdown(data, max_bytes=room)
    outcome = sync_comment(
        port,
        repo,
        pr,
        case_key=result.case.key,
        markdown=markdown,
        blocked=result.decision.gate,
        mode=CommentMode(comment),
    )
    return outcome.warnings


def check_content(
    result: IngestResult, *, case_url: str | None, run_url: str | None
) -> CheckContent:
    """What the check run, commit status and job summary say about an ingest: the summary
    facts (as ``ingest --output markdown`` prints them) and annotations for located findings."""
    from securecase.github import checks as checkrun
    from securecase.render.markdown import summary_of

    return checkrun.CheckContent(
        summary=summary_of(result, case_url=case_url, run_url=run_url),
        annotations=checkrun.annotations_for(result.case.active),
    )


def publish(
    result: IngestResult,
    request: PublishRequest,
    *,
    port: GitHubPort | None,
    now: datetime,
    outputs: Iterable[tuple[str, str]] = (),
) -> tuple[PublishOutcome, str]:
    """Post (when asked), then write the job summary; returns the outcome and the Markdown.

    ``outputs`` are extra ``$GITHUB_OUTPUT`` values computed by the caller.
    """
    from securecase.github import checks as checkrun
    from securecase.github.outputs import append_outputs, ingest_outputs

    data = check_content(result, case_url=request.case_url, run_url=request.run_url)
    markdown = checkrun.check_summary(data.summary)
    warnings: list[str] = []
    outcome = PublishOutcome(Channel.NONE, None, False, ())
    if request.target is not None and port is not None:
        outcome = post_check(port, request.target, data, now=now)
        warnings.extend(outcome.warnings)
    if request.step_summary_path:
        try:
            _write_step_summary(request.step_summary_path, markdown, warnings)
        except OSError as exc:
            warnings.append(f"cannot write the job summary {request.step_summary_path}: {exc}")
    if request.output_path:
        values = ingest_outputs(result, channel=outcome.channel.value, case_url=request.case_url)
        values.update(dict(outputs))
        try:
            append_outputs(request.output_path, values)
        except OSError as exc:
            warnings.append(f"cannot write the step outputs {request.output_path}: {exc}")
    final = PublishOutcome(
        outcome.channel, outcome.check_run_id, outcome.updated_existing, tuple(warnings)
    )
    return final, markdown


def _write_step_summary(path: str, markdown: str, warnings: list[str]) -> None:
    """Append to the job summary within what the step's 1 MiB limit leaves (raises OSError)."""
    import os

    from securecase.github import checks as checkrun
    from securecase.github.outputs import append_step_summary

    try:
        used = os.path.getsize(path)
    except FileNotFoundError:
        used = 0
    # One byte kept for the newline appended to text that lacks one.
    text = checkrun.step_summary(markdown, room=checkrun.STEP_SUMMARY_LIMIT - used - 1)
    if not text:
        warnings.append(
            f"the job summary {path} is full (1 MiB per step): securecase's is left out"
        )
        return
    append_step_summary(path, text)


def post_check(
    port: GitHubPort, target: CheckTarget, data: CheckContent, *, now: datetime
) -> PublishOutcome:
    """Check run; on refusal a commit status; if that is refused too, the job summary only."""
    from securecase.github import checks as checkrun
    from securecase.github.port import CommitStatusFields

    warnings: list[str] = []
    try:
        run_id, updated, batch_warning = _post_check_run(port, target, data, now)
    except GitHubError as error:
        if error.kind == "auth":
            warnings.append(
                f"{error.message}; the result was not posted to GitHub (see the job summary). "
                f"hint: {error.hint}"
            )
            return PublishOutcome(Channel.JOB_SUMMARY, None, False, tuple(warnings))
        warnings.append(f"could not create the check run: {error.message}")
    else:
        if batch_warning:
            warnings.append(batch_warning)
        return PublishOutcome(Channel.CHECK_RUN, run_id, updated, tuple(warnings))
    try:
        port.create_commit_status(
            target.repo,
            CommitStatusFields(
                sha=target.head_sha,
                state=checkrun.status_state(data.summary),
                description=checkrun.status_description(data.summary),
                context=checkrun.CHECK_NAME,
                target_url=data.summary.case_url or data.summary.run_url,
            ),
        )
    except GitHubError as error:
        warnings.append(
            f"could not post a commit status either: {error.message}; the result is only in "
            "the job summary and this log"
        )
        return PublishOutcome(Channel.JOB_SUMMARY, None, False, tuple(warnings))
    warnings.append("posted a commit status instead of a check run")
    return PublishOutcome(Channel.COMMIT_STATUS, None, False, tuple(warnings))


def _not_yet_posted(
    port: GitHubPort,
    repo: str,
    run: ExistingCheckRun,
    annotations: tuple[Annotation, ...],
) -> tuple[Annotation, ...]:
    """The annotations a re-run still has to send: GitHub appends, so send only missing ones.

    A re-run on the same commit may carry other findings (another report joined the case), in
    another order; what is already on the run is read back and subtracted, one for one.
    """
    if run.annotations_count == 0:
        return annotations
    try:
        present = Counter(port.list_annotations(repo, run.id))
    except GitHubError:
        # Cannot read them back: assume the run holds the first ones, as a same-scan re-run.
        return annotations[run.annotations_count :]
    missing = []
    for annotation in annotations:
        if present[annotation] > 0:
            present[annotation] -= 1
        else:
            missing.append(annotation)
    return tuple(missing)


def _post_check_run(
    port: GitHubPort, target: CheckTarget, data: CheckContent, now: datetime
) -> tuple[int, bool, str | None]:
    """Create or update the run, annotations in batches of 50; (id, updated, warning)."""
    from securecase.github import checks as checkrun
    from securecase.github.port import CheckRunFields

    existing = port.find_check_runs(target.repo, target.head_sha, checkrun.CHECK_NAME)
    # Only our case's run: a push and a pull request on the same commit are two cases, so two
    # runs named securecase.
    ours = [r for r in existing if r.external_id == data.summary.case_key]
    annotations = data.annotations
    if ours:
        annotations = _not_yet_posted(port, target.repo, ours[0], annotations)
    batches = checkrun.annotation_batches(annotations)
    summary = checkrun.check_summary(data.summary)

    def fields(batch: tuple[Annotation, ...]) -> CheckRunFields:
        return CheckRunFields(
            name=checkrun.CHECK_NAME,
            head_sha=target.head_sha,
            conclusion=checkrun.conclusion(data.summary),
            title=checkrun.title(data.summary),
            summary=summary,
            completed_at=now,
            details_url=data.summary.case_url or data.summary.run_url,
            external_id=data.summary.case_key,
            annotations=batch,
        )

    updated = False
    if ours:
        try:
            port.update_check_run(target.repo, ours[0].id, fields(batches[0]))
            run_id, updated = ours[0].id, True
        except GitHubError as error:
            if error.kind != "forbidden":
                raise
            # Only the app that created a run may update it (another token or App posted
            # this one): post a run of our own, with every annotation.
            annotations = data.annotations
            batches = checkrun.annotation_batches(annotations)
    if not updated:
        run_id = port.create_check_run(target.repo, fields(batches[0]))
    sent = len(batches[0])
    for batch in batches[1:]:
        try:
            port.update_check_run(target.repo, run_id, fields(batch))
        except GitHubError as error:
            return (
                run_id,
                updated,
                f"check run posted, but only {sent} of {len(annotations)} annotations: "
                f"{error.message}",
            )
        sent += len(batch)
    return run_id, updated, None
