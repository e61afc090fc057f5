"""Which slot of the case each report fills, checked against what the case already holds.

A report replaces the findings of its slot, so the slot must hold scans of the same artifact.
Default slots are derived from the artifact (:mod:`securecase.scanners.slots`); a case written
before that keeps its per-tool slot (``trivy-image``) for the artifact that slot records, so
finding ids do not change; a report whose slot records another artifact is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from securecase.domain.case import Case
from securecase.domain.findings import Report
from securecase.errors import UsageError
from securecase.scanners.slots import artifact_key

#: Parses a report's bytes again into another slot: (index of the report, slot) -> Report.
Reparse = Callable[[int, str], Report]


class SlotConflictError(UsageError):
    """A report would replace a slot's findings with those of a different artifact."""


def assign_slots(
    reports: Sequence[Report], previous: Case | None, reparse: Reparse
) -> list[Report]:
    """``reports`` each in the slot it fills in ``previous`` (re-parsed when that is an older
    case's per-tool slot); raises :class:`SlotConflictError` when a slot records another
    artifact than its report's."""
    if previous is None:
        return list(reports)
    taken = {r.source for r in reports}
    placed: list[Report] = []
    for index, report in enumerate(reports):
        legacy = report.legacy_source
        if (
            legacy is not None
            and legacy in previous.sources
            and report.source not in previous.sources
            and legacy not in taken
            and _same_artifact(previous, legacy, report) is not False
        ):
            taken.add(legacy)
            report = reparse(index, legacy)
        if _same_artifact(previous, report.source, report) is False:
            record = previous.sources[report.source]
            raise SlotConflictError(
                f"{report.path}: source {report.source!r} of case {previous.key} holds "
                f"{record.artifact!r}; this report scanned {report.artifact_name!r}. Ingesting "
                "it would mark the other artifact's findings fixed",
                hint="give each artifact its own slot with --source NAME (once per report, "
                "in order), e.g. --source trivy-image-worker",
            )
        placed.append(report)
    return placed


def _same_artifact(case: Case, slot: str, report: Report) -> bool | None:
    """Whether ``slot`` of ``case`` records the artifact ``report`` scanned (None: the slot
    is empty, or one side does not say)."""
    record = case.sources.get(slot)
    if record is None:
        return None
    held = artifact_key(record.format, record.tool, record.artifact)
    scanned = artifact_key(report.format.value, report.tool, report.artifact_name)
    if held is None or scanned is None:
        return None
    return held == scanned
