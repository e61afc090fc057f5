"""What securecase says on GitHub: check-run title, Markdown summary, annotations, status text.

Pure functions of a small typed input (:class:`CheckSummaryInput`), so every limit of the API
(65,535 characters of summary, 50 annotations per request, 140 characters of commit-status
description, 255 characters of annotation title, 64 KB of annotation message) is enforced and
tested here, without any network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from securecase.domain.findings import SEVERITIES_WORST_FIRST, Finding, Severity

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
#: Blocking findings listed in the summary before "... and N more".
SHOWN_BLOCKING = 30
TRUNCATION_NOTE = (
    "\n\n_…summary truncated to fit GitHub's size limit; the case file has everything._\n"
)


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
class BlockingFinding:
    """A finding that makes the gate block, as one summary row."""

    severity: Severity
    advisory: str
    where: str
    source: str
    title: str


@dataclass(frozen=True, slots=True)
class CheckSummaryInput:
    """Everything the check run, commit status and job summary say.

    The four count maps are keyed by lower-case severity (``critical`` ... ``unknown``):
    ``new`` findings absent from the target branch, ``existing`` ones already there, ``fixed``
    ones this scan no longer reports, ``excepted`` ones covered by a policy exception.
    """

    case_key: str
    decision: str
    gate: bool
    fails: bool
    mode: str
    reasons: tuple[str, ...]
    new: Mapping[str, int]
    existing: Mapping[str, int]
    fixed: Mapping[str, int]
    excepted: Mapping[str, int]
    blocking: tuple[BlockingFinding, ...]
    exception_notes: tuple[str, ...]
    case_path: str
    cases_commit: str | None
    case_url: str | None
    run_url: str | None
    annotations: tuple[Annotation, ...]


def conclusion(data: CheckSummaryInput) -> Conclusion:
    """``failure`` when blocked in pr_gate, ``neutral`` when blocked in ci mode, else success."""
    if not data.gate:
        return Conclusion.SUCCESS
    return Conclusion.FAILURE if data.fails else Conclusion.NEUTRAL


def title(data: CheckSummaryInput) -> str:
    """One line saying why: the verdict and the first reason."""
    if not data.gate:
        active = sum(data.new.values()) + sum(data.existing.values())
        text = f"Passed: {active} active finding{'s' if active != 1 else ''}, no rule blocks"
    else:
        first = data.reasons[0] if data.reasons else "a policy rule blocks"
        more = f" (+{len(data.reasons) - 1} more rule(s))" if len(data.reasons) > 1 else ""
        prefix = "Blocked" if data.fails else "Would block (ci mode, report only)"
        text = f"{prefix}: {first}{more}"
    return _clip_chars(" ".join(text.split()), TITLE_LIMIT)


def status_state(data: CheckSummaryInput) -> str:
    """Commit-status state: ``failure`` only when the run fails (blocked in pr_gate)."""
    return "failure" if data.fails else "success"


def status_description(data: CheckSummaryInput) -> str:
    """The commit-status description, at most 140 characters."""
    return _clip_chars(title(data), STATUS_DESCRIPTION_LIMIT)


def _count_row(label: str, counts: Mapping[str, int]) -> str:
    cells = " | ".join(str(counts.get(s.count_key, 0)) for s in SEVERITIES_WORST_FIRST)
    return f"| {label} | {cells} | {sum(counts.values())} |"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def summary_markdown(data: CheckSummaryInput, *, limit: int = SUMMARY_LIMIT) -> str:
    """The Markdown summary, never longer than ``limit`` UTF-8 bytes (truncated with a note)."""
    verdict = {
        Conclusion.SUCCESS: "✅ pass",
        Conclusion.FAILURE: "❌ blocked",
        Conclusion.NEUTRAL: "⚠️ would block (ci mode: reported only)",
    }[conclusion(data)]
    header = " | ".join(s.value for s in SEVERITIES_WORST_FIRST)
    lines = [
        f"## securecase: {verdict}",
        "",
        f"Case `{data.case_key}`, policy mode `{data.mode}`.",
        "",
        f"| findings | {header} | total |",
        "|---|" + "---:|" * (len(SEVERITIES_WORST_FIRST) + 1),
        _count_row("new", data.new),
        _count_row("existing", data.existing),
        _count_row("fixed", data.fixed),
        _count_row("excepted", data.excepted),
        "",
    ]
    for reason in data.reasons:
        rule_id, _, why = reason.partition(":")
        lines.append(f"- Blocked by `{rule_id}`:{why}")
    if data.exception_notes:
        lines += ["", "### Exceptions needing attention", ""]
        lines.extend(f"- {note}" for note in data.exception_notes)
    lines.append("")
    lines.append(_link_line(data))
    tail = "\n".join(lines) + "\n"
    blocking = _blocking_table(data.blocking)
    return _fit(tail, blocking, limit)


def _link_line(data: CheckSummaryInput) -> str:
    at = f" at cases commit `{data.cases_commit[:12]}`" if data.cases_commit else ""
    if data.case_url:
        text = f"Case file: [{data.case_path}]({data.case_url}){at}."
    else:
        text = f"Case file: `{data.case_path}`{at}."
    if data.run_url:
        text += f" Scanned in [this run]({data.run_url})."
    return text


def _blocking_table(blocking: Sequence[BlockingFinding]) -> list[str]:
    if not blocking:
        return []
    rows = ["", "### Blocking findings", "", "| severity | rule | where | source | title |"]
    rows.append("|---|---|---|---|---|")
    rows.extend(
        f"| {item.severity.value} | `{_cell(item.advisory)}` | `{_cell(item.where)}` "
        f"| {_cell(item.source)} | {_cell(_clip_chars(item.title, 200))} |"
        for item in blocking[:SHOWN_BLOCKING]
    )
    if len(blocking) > SHOWN_BLOCKING:
        more = len(blocking) - SHOWN_BLOCKING
        rows += ["", f"…and {more} more blocking finding(s) in the case file."]
    return rows


def _fit(head: str, blocking: list[str], limit: int) -> str:
    """Head, then the blocking table; drop table rows, then cut text, to stay within limit."""
    text = head + ("\n".join(blocking) + "\n" if blocking else "")
    if _size(text) <= limit:
        return text
    note_size = _size(TRUNCATION_NOTE)
    rows = list(blocking)
    while rows and _size(head + "\n".join(rows) + "\n") + note_size > limit:
        rows.pop()
    text = head + ("\n".join(rows) + "\n" if rows else "")
    if _size(text) + note_size > limit:
        text = _clip_bytes(text, max(limit - note_size, 0))
    return _clip_bytes(text + TRUNCATION_NOTE, limit)


def step_summary(markdown: str, *, room: int = STEP_SUMMARY_LIMIT) -> str:
    """The job-summary text: the same Markdown, within ``room`` bytes (empty if none is left).

    The step limit counts the whole file, so ``room`` is what earlier writes of the same step
    left of it.
    """
    if _size(markdown) <= room:
        return markdown
    if room <= _size(TRUNCATION_NOTE):
        return ""
    return _clip_bytes(markdown, room - _size(TRUNCATION_NOTE)) + TRUNCATION_NOTE


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
                message=_clip_bytes(message, ANNOTATION_MESSAGE_LIMIT),
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


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _clip_chars(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
