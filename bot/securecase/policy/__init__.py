"""The YAML severity policy: model, loader and pure evaluation."""

from securecase.policy.evaluate import Decision, RuleOutcome, evaluate
from securecase.policy.load import BUILTIN_ORIGIN, builtin_policy, git_blob_id, load_policy
from securecase.policy.model import Mode, Policy, Rule

__all__ = [
    "BUILTIN_ORIGIN",
    "Decision",
    "Mode",
    "Policy",
    "Rule",
    "RuleOutcome",
    "builtin_policy",
    "evaluate",
    "git_blob_id",
    "load_policy",
]
