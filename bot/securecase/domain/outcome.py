"""What one scan did to its case: the stored case, the decision and the commit.

Two words, two meanings: a finding is *new* when it is absent from the target branch's case
(pull requests), and it *appeared* when this case's previous scan did not have it.
"""

from __future__ import annotations

from dataclasses import dataclass

from securecase.domain.case import Case, distinct_findings, severity_counts
from securecase.domain.findings import Finding
from securecase.domain.policy import Decision, Policy


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened: the case as stored, the decision for this scan, and the commit.

    ``appeared`` holds the ids this case's previous scan did not have, ``fixed`` the ids it had
    and this scan closed.
    """

    case: Case
    decision: Decision
    policy: Policy
    case_path: str
    cases_commit: str | None
    committed: bool
    stale: bool
    appeared: tuple[str, ...]
    fixed: tuple[str, ...]
    #: Key of the target branch's case a pull request is compared with (None: not a PR).
    baseline_key: str | None = None
    #: What did not stop the ingest but the user should see (off-spec fields the parsers
    #: left out, paths outside the checkout, a broken target-branch case, a future
    #: --commit-time clamped to now); never part of the decision.
    warnings: tuple[str, ...] = ()
    #: The queue entry holding this run's record when the cases repo could not take it (the
    #: decision stands; the record lands with a later run), None when it was pushed.
    queued: str | None = None
    #: The folder of that queue entry (what a GitHub-hosted run uploads as an artifact).
    queued_folder: str | None = None


@dataclass(frozen=True, slots=True)
class BlockingFinding:
    """A finding that makes the gate block, and the policy rules it trips.

    ``new`` is true when the finding is absent from the target branch's case, false when it is
    already there, None for a case that is not a pull request.
    """

    finding: Finding
    rules: tuple[str, ...]
    new: bool | None


def breakdown(result: IngestResult) -> dict[str, dict[str, int]]:
    """Counts by severity of active findings new to / existing on the target branch, findings
    fixed by this scan, and findings a policy exception covers.

    Without a baseline (or for a branch case) every active finding is new.
    """
    case = result.case
    new = set(result.decision.new)
    fixed = set(result.fixed)
    active = distinct_findings(case.active)  # as counted: cross-scanner duplicates once
    return {
        "new": severity_counts(f for f in active if f.id in new),
        "existing": severity_counts(f for f in active if f.id not in new),
        "fixed": severity_counts(t.finding for t in case.resolved if t.finding.id in fixed),
        "excepted": severity_counts(case.excepted),
    }


def new_count(result: IngestResult) -> int:
    """Active findings absent from the target branch's case, counted as the summary counts
    them (every active finding without a baseline)."""
    return sum(breakdown(result)["new"].values())


def blocking_findings(result: IngestResult) -> tuple[BlockingFinding, ...]:
    """The case's findings that some blocking rule counts, in case order."""
    rules_of: dict[str, list[str]] = {}
    for outcome in result.decision.outcomes:
        if outcome.blocks:
            for finding_id in outcome.matched:
                rules_of.setdefault(finding_id, []).append(outcome.rule.id)
    new = set(result.decision.new)
    is_pr = result.case.subject.is_pr
    return tuple(
        BlockingFinding(
            finding=t.finding,
            rules=tuple(rules_of[t.finding.id]),
            new=(t.finding.id in new) if is_pr else None,
        )
        for t in result.case.findings
        if t.finding.id in rules_of
    )


def incomplete_sources(result: IngestResult) -> tuple[str, ...]:
    """Sources whose latest scan said it did not complete (failed run, unreadable files, an
    error notification): their earlier findings stay active, none counts as fixed."""
    return tuple(name for name, record in result.case.sources.items() if record.incomplete)


def recorded_state(result: IngestResult) -> str:
    """What became of a run's record: ``committed``, ``unchanged`` (the case already said
    so) or ``queued`` (the cases repo was busy; it lands with a later run)."""
    if result.queued:
        return "queued"
    return "committed" if result.committed else "unchanged"
