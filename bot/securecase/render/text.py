"""The terminal renderer: text, JSON-ready data, tables and CSV. Pure string building.

Markdown has its own renderer, :mod:`securecase.render.markdown`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from securecase.domain.case import Case, CaseSummary
from securecase.domain.findings import SEVERITIES_WORST_FIRST, Finding
from securecase.domain.outcome import (
    BlockingFinding,
    IngestResult,
    blocking_findings,
    breakdown,
    incomplete_sources,
    recorded_state,
)
from securecase.domain.policy import ExceptionUse
from securecase.render.phrases import (
    baseline_line,
    exception_lines,
    incomplete_line,
    no_rule_note,
    verdict,
)

if TYPE_CHECKING:  # imported for annotations only: `ingest` need not load these modules
    from securecase.domain.policy.diff import Flip, PolicyDiff
    from securecase.domain.retirement import Removal
    from securecase.domain.timeline import CaseHistory, HistoryEntry

#: Findings listed in text output before "... and N more".
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
        "recorded": recorded_state(result),
        "queued": result.queued,
        "stale": result.stale,
        "counts": counts,
        "max_severity": max_severity.value if max_severity else None,
        "appeared": len(result.appeared),
        "fixed": len(result.fixed),
        "blocking": [_blocking_data(b) for b in blocking_findings(result)],
        "incomplete_sources": list(incomplete_sources(result)),
        "incomplete": {
            name: list(case.sources[name].incomplete) for name in incomplete_sources(result)
        },
        "rules": list(result.decision.blocking_rules),
        "rules_applied": list(result.decision.applied_rules),
        "note": no_rule_note(result),
        "warnings": list(result.warnings),
        "reasons": list(result.decision.reasons),
        "policy": {"path": result.policy.origin, "blob": result.policy.blob},
        "sources": {name: rec.findings for name, rec in case.sources.items()},
        "baseline": {
            "case": result.baseline_key,
            "found": result.decision.baseline_found,
        },
        "breakdown": breakdown(result),
        "exceptions": {
            "applied": [_use_data(u) for u in result.decision.exceptions_applied],
            "expired": [_use_data(u) for u in result.decision.exceptions_expired],
            "expiring": [_use_data(u) for u in result.decision.exceptions_expiring],
        },
    }


def _blocking_data(item: BlockingFinding) -> dict[str, Any]:
    finding = item.finding
    data: dict[str, Any] = {
        "id": finding.id,
        "advisory": finding.advisory,
        "severity": finding.severity.value,
    }
    if finding.package is not None:
        package = finding.package
        data["package"] = {
            "name": package.name,
            "version": package.version,
            "fixed_version": package.fixed_version,
        }
    elif finding.location is not None:
        location = finding.location
        data["location"] = {
            "path": location.path,
            "start_line": location.start_line,
            "url": location.url,
        }
    data["rules"] = list(item.rules)
    data["new"] = item.new
    return data


def _use_data(use: ExceptionUse) -> dict[str, Any]:
    return {"id": use.id, "expires": use.expires.isoformat(), "findings": list(use.findings)}


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[s.count_key]} {s.value}" for s in SEVERITIES_WORST_FIRST)


def _finding_line(f: Finding) -> str:
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
    return f"{f.severity.value:<8} {f.advisory}{where} [{f.source}] {f.title}{note}"


def ingest_text(result: IngestResult) -> str:
    """Human-readable summary for the terminal and CI logs."""
    case = result.case
    lines = [
        f"{verdict(result)}  {case.key}",
        f"  status: {case.status.value}",
        f"  findings: {_counts_line(case.counts)}",
        # "appeared", not "new": new in a pull request means absent from its target branch
        # (the baseline line and the breakdown); these count changes since this case's last scan.
        f"  since the last scan: {len(result.appeared)} appeared, {len(result.fixed)} fixed",
        f"  policy: {result.policy.origin} (mode {result.decision.mode.value})",
    ]
    note = no_rule_note(result)
    if note:
        lines.append(f"  note: {note}")
    baseline = baseline_line(result)
    if baseline:
        lines.append(f"  {baseline}")
    lines.extend(f"  warning: {warning}" for warning in result.warnings)
    lines.extend(f"  blocked by {reason}" for reason in result.decision.reasons)
    incomplete = incomplete_line(result)
    if incomplete:
        lines.append(f"  {incomplete.replace('`', '')}")
        for name in incomplete_sources(result):
            lines.extend(f"    {name}: {why}" for why in result.case.sources[name].incomplete)
    lines.extend(f"  {line}" for line in exception_lines(result))
    if result.stale:
        lines.append("  late scan of an older commit: recorded in history, case not rolled back")
    where = result.cases_commit[:12] if result.cases_commit else "no commit yet"
    if result.queued:
        lines.append(f"  case: {result.case_path} (record queued as {result.queued})")
    else:
        state = recorded_state(result)
        lines.append(f"  case: {result.case_path} ({state}, cases repo at {where})")
    blocking = blocking_findings(result)
    if blocking:
        lines.append("  blocking findings:")
        lines.extend(f"    {_finding_line(b.finding)}" for b in blocking[:SHOWN_FINDINGS])
        if len(blocking) > SHOWN_FINDINGS:
            lines.append(f"    ... and {len(blocking) - SHOWN_FINDINGS} more")
    return "\n".join(lines)


CASE_COLUMNS = ("key", "status", "decision", "critical", "high", "medium", "low", "updated_at")


def case_row(case: CaseSummary, shard: tuple[str, str] | None = None) -> dict[str, Any]:
    """One line of ``cases list``; ``shard`` (its name and cases repo) when the cases come
    from several shards."""
    counts = case.counts
    where = {"shard": shard[0], "cases_repo": shard[1]} if shard is not None else {}
    return {
        "key": case.key,
        **where,
        "status": case.status.value,
        "decision": case.decision,
        "critical": counts["critical"],
        "high": counts["high"],
        "medium": counts["medium"],
        "low": counts["low"],
        "updated_at": case.updated_at,
    }


def _columns(sharded: bool) -> tuple[str, ...]:
    return (CASE_COLUMNS[0], "shard", "cases_repo", *CASE_COLUMNS[1:]) if sharded else CASE_COLUMNS


def cases_table(cases: list[CaseSummary], shards: list[tuple[str, str]] | None = None) -> str:
    """An aligned plain-text table; ``shards`` (one per case) adds the shard's name column."""
    columns = tuple(c for c in _columns(shards is not None) if c != "cases_repo")
    rows = [
        [str(row[c]) for c in columns]
        for row in (
            case_row(c, shards[n] if shards is not None else None) for n, c in enumerate(cases)
        )
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(columns)]
    out = ["  ".join(h.upper().ljust(w) for h, w in zip(columns, widths, strict=True))]
    out.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in out)


def cases_csv(cases: list[CaseSummary], shards: list[tuple[str, str]] | None = None) -> str:
    """CSV with a header row; ``shards`` (one per case) adds the shard and cases repo."""
    import csv  # only `cases list --output csv` needs it

    buffer = io.StringIO()
    columns = _columns(shards is not None)
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for n, case in enumerate(cases):
        writer.writerow(case_row(case, shards[n] if shards is not None else None))
    return buffer.getvalue()


def case_text(case: Case, path: str, *, retired: Removal | None = None) -> str:
    """``cases show`` in text: the header facts and every active finding; for a case no
    longer at the tip, first the commit that removed it."""
    lines = [f"{case.key}  ({path})"]
    if retired is not None:
        how = "retired from the tip by the sweep" if retired.by_sweep else "removed from the tip"
        lines.append(
            f"  {how} in commit {retired.commit[:12]} at {retired.at}; "
            "its last state follows (history keeps it)"
        )
    lines += [
        f"  status: {case.status.value}  decision: {case.gate.decision}  mode: {case.gate.mode}",
        f"  findings: {_counts_line(case.counts)}",
        f"  latest commit: {case.latest.commit or 'unknown'}  scanned: {case.latest.scanned_at}",
    ]
    if case.triage.assignee or case.triage.tags or case.triage.notes:
        tags = ", ".join(case.triage.tags)
        lines.append(f"  triage: assignee {case.triage.assignee or '-'}; tags {tags or '-'}")
    lines.extend(f"  blocked by {reason}" for reason in case.gate.reasons)
    for tracked in case.findings:
        marks = " (new)" if tracked.new else ""
        if tracked.exception is not None:
            exc = tracked.exception
            marks += f" (excepted by {exc.id} until {exc.expires})"
        lines.append(f"    {_finding_line(tracked.finding)}{marks}")
    if case.resolved:
        lines.append(f"  resolved: {len(case.resolved)} finding(s)")
    return "\n".join(lines)


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "-"


def history_entry_data(entry: HistoryEntry) -> dict[str, Any]:
    """One commit of ``cases history --output json``."""
    return {
        "commit": entry.commit,
        "time": entry.time,
        "author": {
            "name": entry.author_name,
            "email": entry.author_email,
            "kind": entry.author_kind.value,
        },
        "change": entry.change.value,
        "scanned_commit": entry.scanned_commit,
        "decision": entry.decision,
        "status": entry.status,
        "previous_status": entry.previous_status,
        "status_changed": entry.status_changed,
        "counts": dict(entry.counts) if entry.counts is not None else None,
        "triage_changes": list(entry.triage_changes),
        "stale": entry.stale,
        "retired": entry.retired,
        "facts_from": entry.facts_from,
        "problem": entry.problem,
        "subject": entry.subject,
    }


def history_data(history: CaseHistory) -> dict[str, Any]:
    """``cases history --output json``: the case and its commits, oldest first."""
    return {
        "key": history.key,
        "path": history.path,
        "entries": [history_entry_data(e) for e in history.entries],
    }


HISTORY_COLUMNS = ("time", "author", "commit", "scanned", "decision", "status", "c/h/m/l", "notes")


def _history_notes(entry: HistoryEntry) -> str:
    notes = []
    if entry.retired:
        notes.append("case retired from the tip (history keeps it)")
    elif entry.change.value != "updated":
        notes.append(f"case {entry.change.value}")
    if entry.status_changed and entry.previous_status is not None:
        notes.append(f"status {entry.previous_status} -> {entry.status}")
    notes.extend(entry.triage_changes)
    if entry.stale:
        notes.append("late scan of an older commit, not applied")
    if entry.problem:
        notes.append(f"unreadable: {entry.problem}")
    return "; ".join(notes)


def history_table(history: CaseHistory) -> str:
    """``cases history`` as an aligned table, oldest commit first."""
    rows = []
    for entry in history.entries:
        counts = entry.counts
        rows.append(
            [
                entry.time,
                f"{entry.author_name} ({entry.author_kind.value})",
                _short(entry.commit),
                _short(entry.scanned_commit),
                entry.decision or "-",
                entry.status or "-",
                "/".join(str(counts[k]) for k in ("critical", "high", "medium", "low"))
                if counts is not None
                else "-",
                _history_notes(entry),
            ]
        )
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HISTORY_COLUMNS)]
    out = [f"{history.key}  ({history.path})"]
    out.append("  ".join(h.upper().ljust(w) for h, w in zip(HISTORY_COLUMNS, widths, strict=True)))
    out.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in out)


def _flip_data(flip: Flip) -> dict[str, Any]:
    return {
        "key": flip.key,
        "path": flip.path,
        "direction": flip.direction.value,
        "old_reasons": list(flip.old_reasons),
        "new_reasons": list(flip.new_reasons),
        "baseline": flip.baseline,
    }


def policy_diff_data(diff: PolicyDiff) -> dict[str, Any]:
    """``policy diff --output json``."""
    return {
        "old": {"policy": diff.old.origin, "blob": diff.old.blob, "mode": diff.old.mode.value},
        "new": {"policy": diff.new.origin, "blob": diff.new.blob, "mode": diff.new.mode.value},
        "today": diff.today.isoformat(),
        "cases_commit": diff.cases_commit,
        "open_cases": diff.open_cases,
        "blocked_before": diff.blocked_before,
        "blocked_after": diff.blocked_after,
        "new_blocks": [_flip_data(f) for f in diff.new_blocks],
        "unblocked": [_flip_data(f) for f in diff.unblocked],
        "reasons_changed": [_flip_data(f) for f in diff.reasons_changed],
        "exceptions": [{"id": n.id, "state": n.state, "detail": n.detail} for n in diff.exceptions],
        "exceptions_unchanged": [
            {"id": n.id, "state": n.state, "detail": n.detail} for n in diff.exceptions_unchanged
        ],
    }


def _flip_lines(flip: Flip, first: str, second: str) -> list[str]:
    lines = [f"  {flip.key}"]
    for label, reasons in ((first, flip.new_reasons), (second, flip.old_reasons)):
        if reasons:
            lines.extend(f"    {label}: blocked by {reason}" for reason in reasons)
        else:
            lines.append(f"    {label}: passes")
    if flip.baseline:
        lines.append(f"    baseline: {flip.baseline}")
    return lines


def policy_diff_text(diff: PolicyDiff) -> str:
    """``policy diff`` for reviewers of a policy change."""
    old, new = diff.old, diff.new
    lines = [
        f"policy diff: OLD {old.origin} ({old.blob[:12]}) -> NEW {new.origin} ({new.blob[:12]})",
        f"  {diff.open_cases} open case(s) evaluated as of {diff.today.isoformat()}; "
        f"blocked: {diff.blocked_before} -> {diff.blocked_after}",
    ]
    if old.mode is not new.mode:
        lines.append(f"  mode: {old.mode.value} -> {new.mode.value}")
    sections = (
        # "under NEW/OLD" (the policies), so it never reads as new or old findings
        ("would newly block", diff.new_blocks, "under NEW", "under OLD"),
        ("would no longer block", diff.unblocked, "under NEW", "under OLD"),
        ("stay blocked, for other reasons", diff.reasons_changed, "under NEW", "under OLD"),
    )
    for title, flips, first, second in sections:
        if flips:
            lines.append(f"{len(flips)} case(s) {title}:")
            for flip in flips:
                lines.extend(_flip_lines(flip, first, second))
    if not diff.flips and not diff.reasons_changed:
        lines.append("no open case changes decision")
    if diff.exceptions:
        lines.append(f"{len(diff.exceptions)} exception(s) to look at:")
        lines.extend(f"  {n.id}: {n.state}: {n.detail}" for n in diff.exceptions)
    if diff.exceptions_unchanged:
        lines.append(
            f"{len(diff.exceptions_unchanged)} exception(s) already so under the old policy "
            "(clean up when you can):"
        )
        lines.extend(f"  {n.id}: {n.state}: {n.detail}" for n in diff.exceptions_unchanged)
    return "\n".join(lines)
