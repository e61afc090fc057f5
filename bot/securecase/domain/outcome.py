"""What one scan did to its case: the stored case, the decision and the commit."""

from __future__ import annotations

from dataclasses import dataclass

from securecase.domain.case import Case
from securecase.domain.policy import Decision, Policy


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened: the case as stored, the decision for this scan, and the commit."""

    case: Case
    decision: Decision
    policy: Policy
    case_path: str
    cases_commit: str | None
    committed: bool
    stale: bool
    new: tuple[str, ...]
    fixed: tuple[str, ...]
    #: Key of the target branch's case a pull request is compared with (None: not a PR).
    baseline_key: str | None = None
