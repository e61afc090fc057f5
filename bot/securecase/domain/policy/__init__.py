"""The YAML severity policy: model, loader and pure evaluation."""

from securecase.domain.policy.evaluate import (
    Decision,
    ExceptionUse,
    RuleOutcome,
    evaluate,
    evaluate_case,
    evaluate_case_under,
    expired_exceptions,
    stale_exceptions,
)
from securecase.domain.policy.load import (
    BUILTIN_ORIGIN,
    builtin_policy,
    git_blob_id,
    load_policy,
    validate_policy,
)
from securecase.domain.policy.model import ExceptionMatch, Mode, Policy, PolicyException, Rule

__all__ = [
    "BUILTIN_ORIGIN",
    "Decision",
    "ExceptionMatch",
    "ExceptionUse",
    "Mode",
    "Policy",
    "PolicyException",
    "Rule",
    "RuleOutcome",
    "builtin_policy",
    "evaluate",
    "evaluate_case",
    "evaluate_case_under",
    "expired_exceptions",
    "git_blob_id",
    "load_policy",
    "stale_exceptions",
    "validate_policy",
]
