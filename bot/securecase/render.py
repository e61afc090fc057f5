"""Turn results into text, JSON-ready data, Markdown, tables and CSV. Pure string building."""

from __future__ import annotations

import csv
import io
from typing import Any

from securecase.case import Case, Tracked
from securecase.ingest import IngestResult
from securecase.models import SEVERITIES_WORST_FIRST

#: Findings listed in text and Markdown output before "... and N more".
SHOWN_FINDINGS = 20


def ingest_data(result: IngestResult) -> dict[str, Any]:
    """The ``--output json`` document of ``ingest`` (the seed contract plus more)."""
    case = result.case
    counts = case.counts
    max_severity = case.max_severity
    return {
        "case_key": case.key,
        "case_status": case.status.coarse,
        "status": case.status.value,
        "critical": counts["critical"],
        "high": counts["high"],
        "gate": result.decision.gate,
        "decision": result.decision.decision,
        "mode": result.decision.mode.value,
        "case_path": result.case_path,
        "cases_commit": result.cases_commit,
        "committed": result.committed,
        "stale": result.stale,
        "counts": counts,
        "max_severity": max_severity.value if max_severity else None,
        "new": len(result.new),
        "fixed": len(result.fixed),
        "rules": list(result.decision.blocking_rules),
        "reasons": list(result.decision.reasons),
        "policy": {"path": result.policy.origin, "blob": result.policy.blob},
        "sources": {name: rec.findings for name, rec in case.sources.items()},
    }


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[s.count_key]} {s.value}" for s in SEVERITIES_WORST_FIRST)


def _verdict(result: IngestResult) -> str:
    decision = result.decision
    if not decision.gate:
        return "PASS"
    return "BLOCK" if decision.fails else "BLOCK (reported only: mode ci)"


def _blocking(result: IngestResult) -> list[Tracked]:
    matched = {i for o in result.decision.outcomes if o.blocks for i in o.matched}
    return [t for t in result.case.findings if t.finding.id in matched]


def _finding_line(tracked: Tracked) -> str:
    f = tracked.finding
    where = ""
    if f.package is not None:
        where = f" in {f.package.name} {f.package.version or ''}".rstrip()
        if f.package.fixed_version:
            where += f" (fixed in {f.package.fixed_version})"
    elif f.location is not None and f.location.path:
        where = f" at {f.location.path}"
        if f.location.start_line:
            where += f":{f.location.start_line}"
    elif f.location is not None and f.location.url:
        where = f" at {f.location.url}"
    note = " (suppressed by the scanner, not counted)" if f.suppressed else ""
    return f"{f.severity.value:<8} {f.rule}{where} [{f.source}] {f.title}{note}"


def ingest_text(result: IngestResult) -> str:
    """Human-readable summary for the terminal and CI logs."""
    case = result.case
    lines = [
        f"{_verdict(result)}  {case.key}",
        f"  findings: {_counts_line(case.counts)}",
        f"  new: {len(result.new)}  fixed: {len(result.fixed)}  status: {case.status.value}",
        f"  policy: {result.policy.origin} (mode {result.decision.mode.value})",
    ]
    lines.extend(f"  blocked by {reason}" for reason in result.decision.reasons)
    if result.stale:
        lines.append("  late scan of an older commit: recorded in history, case not rolled back")
    where = result.cases_commit[:12] if result.cases_commit else "no commit yet"
    state = "committed" if result.committed else "unchanged"
    lines.append(f"  case: {result.case_path} ({state}, cases repo at {where})")
    blocking = _blocking(result)
    if blocking:
        lines.append("  blocking findings:")
        lines.extend(f"    {_finding_line(t)}" for t in blocking[:SHOWN_FINDINGS])
        if len(blocking) > SHOWN_FINDINGS:
            lines.append(f"    ... and {len(blocking) - SHOWN_FINDINGS} more")
    return "\n".join(lines)


def ingest_markdown(result: IngestResult) -> str:
    """Markdown summary (job summaries, PR comments)."""
    case = result.case
    counts = case.counts
    header = " | ".join(s.value for s in SEVERITIES_WORST_FIRST)
    values = " | ".join(str(counts[s.count_key]) for s in SEVERITIES_WORST_FIRST)
    lines = [
        f"### securecase: {_verdict(result)}",
        "",
        f"Case `{case.key}` — status **{case.status.value}**, "
        f"{len(result.new)} new, {len(result.fixed)} fixed.",
        "",
        f"| {header} |",
        "|" + "---|" * len(SEVERITIES_WORST_FIRST),
        f"| {values} |",
        "",
    ]
    for reason in result.decision.reasons:
        rule_id, _, why = reason.partition(":")
        lines.append(f"- Blocked by `{rule_id}`:{why}")  # noqa: PERF401 (clearer as a loop)
    blocking = _blocking(result)
    if blocking:
        lines += ["", "| severity | rule | where | source |", "|---|---|---|---|"]
        for tracked in blocking[:SHOWN_FINDINGS]:
            f = tracked.finding
            where = f.package.name if f.package else (f.location.path if f.location else "")
            lines.append(f"| {f.severity.value} | `{f.rule}` | `{where}` | {f.source} |")
        if len(blocking) > SHOWN_FINDINGS:
            lines.append(f"\n…and {len(blocking) - SHOWN_FINDINGS} more in the case file.")
    lines += [
        "",
        f"Policy `{result.policy.origin}` (blob `{result.policy.blob[:12]}`), "
        f"case file `{result.case_path}`.",
    ]
    return "\n".join(lines)


CASE_COLUMNS = ("key", "status", "decision", "critical", "high", "medium", "low", "updated_at")


def case_row(case: Case) -> dict[str, Any]:
    """One line of ``cases list``."""
    counts = case.counts
    return {
        "key": case.key,
        "status": case.status.value,
        "decision": case.gate.decision,
        "critical": counts["critical"],
        "high": counts["high"],
        "medium": counts["medium"],
        "low": counts["low"],
        "updated_at": case.updated_at,
    }


def cases_table(cases: list[Case]) -> str:
    """An aligned plain-text table."""
    rows = [[str(v) for v in case_row(c).values()] for c in cases]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(CASE_COLUMNS)]
    out = ["  ".join(h.upper().ljust(w) for h, w in zip(CASE_COLUMNS, widths, strict=True))]
    out.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in out)


def cases_csv(cases: list[Case]) -> str:
    """CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CASE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for case in cases:
        writer.writerow(case_row(case))
    return buffer.getvalue()


def case_text(case: Case, path: str) -> str:
    """``cases show`` in text: the header facts and every active finding."""
    lines = [
        f"{case.key}  ({path})",
        f"  status: {case.status.value}  decision: {case.gate.decision}  mode: {case.gate.mode}",
        f"  findings: {_counts_line(case.counts)}",
        f"  latest commit: {case.latest.commit or 'unknown'}  scanned: {case.latest.scanned_at}",
    ]
    if case.triage.assignee or case.triage.tags or case.triage.notes:
        tags = ", ".join(case.triage.tags)
        lines.append(f"  triage: assignee {case.triage.assignee or '-'}; tags {tags or '-'}")
    lines.extend(f"  blocked by {reason}" for reason in case.gate.reasons)
    lines.extend(f"    {_finding_line(t)}" for t in case.findings)
    if case.resolved:
        lines.append(f"  resolved: {len(case.resolved)} finding(s)")
    return "\n".join(lines)
