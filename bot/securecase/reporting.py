"""Report an ingest back to GitHub, with fallbacks: check run → commit status → job summary.

Runs after the case commit. Nothing here can change the exit code or lose the case: every
failure becomes a warning in the returned :class:`ReportOutcome`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from securecase import checkrun
from securecase.checkrun import BlockingFinding, CheckSummaryInput
from securecase.errors import GitHubError
from securecase.github_port import CheckRunFields, CommitStatusFields, GitHubPort
from securecase.ingest import IngestResult
from securecase.models import Finding


class Channel(StrEnum):
    """Where the result ended up."""

    CHECK_RUN = "check_run"
    COMMIT_STATUS = "commit_status"
    JOB_SUMMARY = "job_summary"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ReportTarget:
    """The commit to report on: ``owner/name`` and the scanned head SHA."""

    repo: str
    head_sha: str


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What the CLI asks for; ``target`` None means do not post to GitHub."""

    target: ReportTarget | None
    case_url: str | None
    run_url: str | None
    step_summary_path: str | None
    output_path: str | None


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """Where the result went, the check run id, and warnings for stderr."""

    channel: Channel
    check_run_id: int | None
    updated_existing: bool
    warnings: tuple[str, ...]


def summary_input_from_result(
    result: IngestResult, *, case_url: str | None, run_url: str | None
) -> CheckSummaryInput:
    """What the check run, commit status and job summary say about an ingest.

    Counts split new (absent from the target branch's case) / existing / fixed by this scan /
    excepted, as ``ingest --output json`` does; exception lines name applied, expired and
    expiring exceptions.
    """
    from securecase.render import breakdown, exception_lines

    case = result.case
    split = breakdown(result)
    matched = {i for o in result.decision.outcomes if o.blocks for i in o.matched}
    blocking = tuple(_blocking_row(t.finding) for t in case.findings if t.finding.id in matched)
    return CheckSummaryInput(
        case_key=case.key,
        decision=result.decision.decision,
        gate=result.decision.gate,
        fails=result.decision.fails,
        mode=result.decision.mode.value,
        reasons=result.decision.reasons,
        new=split["new"],
        existing=split["existing"],
        fixed=split["fixed"],
        excepted=split["excepted"],
        blocking=blocking,
        exception_notes=tuple(exception_lines(result)),
        case_path=result.case_path,
        cases_commit=result.cases_commit,
        case_url=case_url,
        run_url=run_url,
        annotations=checkrun.annotations_for(case.active),
    )


def _blocking_row(finding: Finding) -> BlockingFinding:
    where = ""
    if finding.package is not None:
        where = f"{finding.package.name} {finding.package.version or ''}".strip()
    elif finding.location is not None:
        where = finding.location.path or finding.location.url or ""
        if finding.location.path and finding.location.start_line:
            where += f":{finding.location.start_line}"
    return BlockingFinding(finding.severity, finding.rule, where, finding.source, finding.title)


def report(
    result: IngestResult,
    request: ReportRequest,
    *,
    port: GitHubPort | None,
    now: datetime,
    outputs: Iterable[tuple[str, str]] = (),
) -> tuple[ReportOutcome, str]:
    """Post (when asked), then write the job summary; returns the outcome and the Markdown.

    ``outputs`` are extra ``$GITHUB_OUTPUT`` values computed by the caller.
    """
    from securecase.actions_output import append_outputs, append_step_summary, ingest_outputs

    data = summary_input_from_result(result, case_url=request.case_url, run_url=request.run_url)
    markdown = checkrun.summary_markdown(data)
    warnings: list[str] = []
    outcome = ReportOutcome(Channel.NONE, None, False, ())
    if request.target is not None and port is not None:
        outcome = post_report(port, request.target, data, now=now)
        warnings.extend(outcome.warnings)
    if request.step_summary_path:
        try:
            append_step_summary(request.step_summary_path, checkrun.step_summary(markdown))
        except OSError as exc:
            warnings.append(f"cannot write the job summary {request.step_summary_path}: {exc}")
    if request.output_path:
        values = ingest_outputs(result, channel=outcome.channel.value, case_url=request.case_url)
        values.update(dict(outputs))
        try:
            append_outputs(request.output_path, values)
        except OSError as exc:
            warnings.append(f"cannot write the step outputs {request.output_path}: {exc}")
    final = ReportOutcome(
        outcome.channel, outcome.check_run_id, outcome.updated_existing, tuple(warnings)
    )
    return final, markdown


def post_report(
    port: GitHubPort, target: ReportTarget, data: CheckSummaryInput, *, now: datetime
) -> ReportOutcome:
    """Check run; on refusal a commit status; if that is refused too, the job summary only."""
    warnings: list[str] = []
    try:
        run_id, updated, batch_warning = _post_check_run(port, target, data, now)
    except GitHubError as error:
        if error.kind == "auth":
            warnings.append(
                f"{error.message}; the result was not posted to GitHub (see the job summary). "
                f"hint: {error.hint}"
            )
            return ReportOutcome(Channel.JOB_SUMMARY, None, False, tuple(warnings))
        warnings.append(f"could not create the check run: {error.message}")
    else:
        if batch_warning:
            warnings.append(batch_warning)
        return ReportOutcome(Channel.CHECK_RUN, run_id, updated, tuple(warnings))
    try:
        port.create_commit_status(
            target.repo,
            CommitStatusFields(
                sha=target.head_sha,
                state=checkrun.status_state(data),
                description=checkrun.status_description(data),
                context=checkrun.CHECK_NAME,
                target_url=data.case_url or data.run_url,
            ),
        )
    except GitHubError as error:
        warnings.append(
            f"could not post a commit status either: {error.message}; the result is only in "
            "the job summary and this log"
        )
        return ReportOutcome(Channel.JOB_SUMMARY, None, False, tuple(warnings))
    warnings.append("posted a commit status instead of a check run")
    return ReportOutcome(Channel.COMMIT_STATUS, None, False, tuple(warnings))


def _post_check_run(
    port: GitHubPort, target: ReportTarget, data: CheckSummaryInput, now: datetime
) -> tuple[int, bool, str | None]:
    """Create or update the run, annotations in batches of 50; (id, updated, warning)."""
    existing = port.find_check_runs(target.repo, target.head_sha, checkrun.CHECK_NAME)
    # Only our case's run: a push and a pull request on the same commit are two cases, so two
    # runs named securecase.
    ours = [r for r in existing if r.external_id == data.case_key]
    annotations = data.annotations
    if ours:
        # Annotations are appended on update: a re-run sends only those not yet there.
        annotations = annotations[ours[0].annotations_count :]
    batches = checkrun.annotation_batches(annotations)
    summary = checkrun.summary_markdown(data)

    def fields(batch: tuple[checkrun.Annotation, ...]) -> CheckRunFields:
        return CheckRunFields(
            name=checkrun.CHECK_NAME,
            head_sha=target.head_sha,
            conclusion=checkrun.conclusion(data),
            title=checkrun.title(data),
            summary=summary,
            completed_at=now,
            details_url=data.case_url or data.run_url,
            external_id=data.case_key,
            annotations=batch,
        )

    if ours:
        run_id = ours[0].id
        port.update_check_run(target.repo, run_id, fields(batches[0]))
    else:
        run_id = port.create_check_run(target.repo, fields(batches[0]))
    sent = len(batches[0])
    for batch in batches[1:]:
        try:
            port.update_check_run(target.repo, run_id, fields(batch))
        except GitHubError as error:
            return (
                run_id,
                bool(ours),
                f"check run posted, but only {sent} of {len(annotations)} annotations: "
                f"{error.message}",
            )
        sent += len(batch)
    return run_id, bool(ours), None
