"""GitHub's shape of a result: conclusion, title, annotations, status text and size limits.

Pure functions of the summary facts (:class:`~securecase.render.markdown.Summary`), so every
limit of the API (65,535 characters of summary, 50 annotations per request, 140 characters of
commit-status description, 255 characters of annotation title, 64 KB of annotation message) is
enforced and tested here, without any network. The Markdown itself comes from
:mod:`securecase.render.markdown`, the one renderer of the summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from securecase.domain.findings import Finding, Severity
from securecase.render.markdown import TRUNCATION_NOTE, Summary, clip_bytes, size, summary_markdown

CHECK_NAME = "securecase"
#: ``output.summary`` and ``output.text`` limit (SPEC checks/create ``maxLength``). Enforced
#: in UTF-8 bytes, which is never more than the character count, so both readings hold.
SUMMARY_LIMIT = 65535
#: ``$GITHUB_STEP_SUMMARY`` accepts at most 1 MiB per step.
STEP_SUMMARY_LIMIT = 1024 * 1024
ANNOTATIONS_PER_REQUEST = 50
ANNOTATION_TITLE_LIMIT = 255
ANNOTATION_MESSAGE_LIMIT = 64 * 1024
STATUS_DESCRIPTION_LIMIT = 140
TITLE_LIMIT = 200


class Conclusion(StrEnum):
    """Check-run conclusions securecase uses (``neutral`` never blocks a merge)."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


class AnnotationLevel(StrEnum):
    """GitHub's annotation levels (there is no ``error``)."""

    NOTICE = "notice"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class Annotation:
    """One check-run annotation: a finding pinned to a file line."""

    path: str
    start_line: int
    end_line: int
    level: AnnotationLevel
    message: str
    title: str


@dataclass(frozen=True, slots=True)
class CheckContent:
    """What one check run carries: the summary facts and the annotations."""

    summary: Summary
    annotations: tuple[Annotation, ...] = ()


def conclusion(data: Summary) -> Conclusion:
    """``failure`` when blocked in pr_gate, ``neutral`` when blocked in ci mode, else success."""
    if not data.gate:
        return Conclusion.SUCCESS
    return Conclusion.FAILURE if data.fails else Conclusion.NEUTRAL


def title(data: Summary) -> str:
    """One line saying why: the verdict and the first reason."""
    if not data.gate and data.no_rule_note:
        text = "Passed by default: no policy rule applies to this subject"
    elif not data.gate:
        active = data.active
        text = f"Passed: {active} active finding{'s' if active != 1 else ''}, no rule blocks"
    else:
        first = data.reasons[0] if data.reasons else "a policy rule blocks"
        more = f" (+{len(data.reasons) - 1} more rule(s))" if len(data.reasons) > 1 else ""
        prefix = "Blocked" if data.fails else "Would block (ci mode, report only)"
        text = f"{prefix}: {first}{more}"
    return _clip_chars(" ".join(text.split()), TITLE_LIMIT)


def status_state(data: Summary) -> str:
    """Commit-status state: ``failure`` only when the run fails (blocked in pr_gate)."""
    return "failure" if data.fails else "success"


def status_description(data: Summary) -> str:
    """The commit-status description, at most 140 characters."""
    return _clip_chars(title(data), STATUS_DESCRIPTION_LIMIT)


def check_summary(data: Summary) -> str:
    """The check-run summary: the Markdown summary within GitHub's size limit."""
    return summary_markdown(data, max_bytes=SUMMARY_LIMIT)


def step_summary(markdown: str, *, room: int = STEP_SUMMARY_LIMIT) -> str:
    """The job-summary text: the same Markdown, within ``room`` bytes (empty if none is left).

    The step limit counts the whole file, so ``room`` is what earlier writes of the same step
    left of it.
    """
    if size(markdown) <= room:
        return markdown
    if room <= size(TRUNCATION_NOTE):
        return ""
    return clip_bytes(markdown, room - size(TRUNCATION_NOTE)) + TRUNCATION_NOTE


def annotation_level(severity: Severity) -> AnnotationLevel:
    """CRITICAL/HIGH fail, MEDIUM warns, the rest are notices."""
    if severity.at_least(Severity.HIGH):
        return AnnotationLevel.FAILURE
    if severity is Severity.MEDIUM:
        return AnnotationLevel.WARNING
    return AnnotationLevel.NOTICE


def annotations_for(findings: Iterable[Finding]) -> tuple[Annotation, ...]:
    """Annotations for findings that have a file path and a line, in the given order."""
    out = []
    for finding in findings:
        loc = finding.location
        if loc is None or not loc.path or not loc.start_line or loc.start_line < 1:
            continue
        if ".." in loc.path.replace("\\", "/").split("/"):
            continue  # outside the repository: no file of the commit to annotate
        end = loc.end_line if loc.end_line and loc.end_line >= loc.start_line else loc.start_line
        message = f"{finding.severity.value} {finding.advisory}: {finding.title} [{finding.source}]"
        out.append(
            Annotation(
                path=loc.path.lstrip("/"),
                start_line=loc.start_line,
                end_line=end,
                level=annotation_level(finding.severity),
                message=clip_bytes(message, ANNOTATION_MESSAGE_LIMIT),
                title=_clip_chars(
                    f"{finding.advisory} ({finding.severity.value})", ANNOTATION_TITLE_LIMIT
                ),
            )
        )
    return tuple(out)


def annotation_batches(
    annotations: Sequence[Annotation], size: int = ANNOTATIONS_PER_REQUEST
) -> list[tuple[Annotation, ...]]:
    """Split into batches of at most ``size``; always at least one (possibly empty) batch."""
    if not annotations:
        return [()]
    return [tuple(annotations[i : i + size]) for i in range(0, len(annotations), size)]


def _clip_chars(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
