"""Sentences the terminal and the Markdown renderer both say about an ingest."""

from __future__ import annotations

from securecase.domain.outcome import IngestResult, incomplete_sources


def verdict(result: IngestResult) -> str:
    """PASS, BLOCK, or BLOCK reported only (ci mode)."""
    decision = result.decision
    if not decision.gate:
        return "PASS" if decision.applied_rules else "PASS (no rule applied)"
    return "BLOCK" if decision.fails else "BLOCK (reported only: mode ci)"


NO_RULE_APPLIED = "no policy rule applies to this subject: it passes by default, nothing was judged"


def no_rule_note(result: IngestResult) -> str | None:
    """Said in every output when no rule's ``when`` selected the subject (None otherwise):
    such a pass is the policy's silence, not a verdict."""
    if result.decision.applied_rules:
        return None
    subject = result.case.subject
    if subject.is_pr and not subject.target_branch:
        return f"{NO_RULE_APPLIED} (the pull request's target branch is unknown)"
    return NO_RULE_APPLIED


def exception_lines(result: IngestResult) -> list[str]:
    """One line per exception applied, expired or expiring soon in this decision."""
    decision = result.decision
    lines = [
        f"excepted by {u.id} (until {u.expires.isoformat()}): {len(u.findings)} finding(s)"
        for u in decision.exceptions_applied
    ]
    lines += [
        f"exception {u.id} expired on {u.expires.isoformat()}: "
        f"{len(u.findings)} finding(s) no longer covered"
        for u in decision.exceptions_expired
    ]
    lines += [
        f"warning: exception {u.id} expires on {u.expires.isoformat()}"
        for u in decision.exceptions_expiring
    ]
    return lines


def baseline_line(result: IngestResult) -> str | None:
    """What a pull request was compared with (None for a branch case)."""
    if result.baseline_key is None:
        if result.case.subject.is_pr:
            return "baseline: target branch unknown (--target-branch), every finding counts as new"
        return None
    new_ids = set(result.decision.new)
    new = sum(f.id in new_ids for f in result.case.active)
    if not result.decision.baseline_found:
        return f"baseline: no case {result.baseline_key} yet, so every finding counts as new"
    existing = len(result.case.active) - new
    return f"baseline: {result.baseline_key} ({new} new, {existing} already there)"


def incomplete_line(result: IngestResult) -> str | None:
    """What a scan that did not complete means for this case (None when every source did)."""
    names = incomplete_sources(result)
    if not names:
        return None
    listed = ", ".join(f"`{name}`" for name in names)
    noun = "source" if len(names) == 1 else "sources"
    return (
        f"incomplete: the scanner of {noun} {listed} reported that the scan did not complete; "
        "its earlier findings stay open and nothing it no longer reports counts as fixed"
    )


def sentence(text: str) -> str:
    """``text`` with its first letter upper-cased."""
    return text[:1].upper() + text[1:]
