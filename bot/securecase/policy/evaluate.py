"""Policy evaluation: a pure function of (policy, subject, active findings).

No I/O and no clock here, so every decision can be replayed and tested in isolation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from securecase.keys import Subject
from securecase.models import Finding
from securecase.policy.model import Block, Event, Mode, Policy, Rule, When


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """How one rule judged the subject: whether it applied, what it counted, if it blocks."""

    rule: Rule
    applies: bool
    matched: tuple[str, ...]
    blocks: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict. ``gate`` is true exactly when some rule blocks, whatever the mode."""

    mode: Mode
    gate: bool
    outcomes: tuple[RuleOutcome, ...]

    @property
    def decision(self) -> str:
        return "block" if self.gate else "pass"

    @property
    def fails(self) -> bool:
        """True when the run should fail: blocked in ``pr_gate`` mode."""
        return self.gate and self.mode is Mode.PR_GATE

    @property
    def blocking_rules(self) -> tuple[str, ...]:
        return tuple(o.rule.id for o in self.outcomes if o.blocks)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(o.reason for o in self.outcomes if o.reason)


def evaluate(
    policy: Policy, subject: Subject, findings: Iterable[Finding], *, mode: Mode | None = None
) -> Decision:
    """Judge the active ``findings`` of ``subject``; ``mode`` overrides the policy's mode."""
    active = tuple(findings)
    outcomes = tuple(_judge(rule, subject, active) for rule in policy.rules)
    return Decision(
        mode=mode or policy.mode, gate=any(o.blocks for o in outcomes), outcomes=outcomes
    )


def _judge(rule: Rule, subject: Subject, findings: Sequence[Finding]) -> RuleOutcome:
    if not applies(rule.when, subject):
        return RuleOutcome(rule, applies=False, matched=(), blocks=False, reason=None)
    matched = tuple(f.id for f in findings if selects(rule.block, f))
    blocks = len(matched) > rule.max_allowed
    reason = None
    if blocks:
        phrase = describe(rule.block)
        if len(matched) == 1:
            phrase = phrase.replace("findings", "finding", 1)
        reason = f"{rule.id}: {len(matched)} {phrase} (at most {rule.max_allowed} allowed)"
    return RuleOutcome(rule, applies=True, matched=matched, blocks=blocks, reason=reason)


def applies(when: When, subject: Subject) -> bool:
    """Whether a rule's ``when`` selects this subject."""
    event = Event.PULL_REQUEST if subject.is_pr else Event.PUSH
    if when.events and event not in when.events:
        return False
    if when.target_branches and not (
        subject.is_pr and _any_glob(when.target_branches, subject.target_branch)
    ):
        return False
    if when.branches and not _any_glob(when.branches, subject.branch):
        return False
    return not when.repos or _any_glob(when.repos, subject.slug)


def selects(block: Block, finding: Finding) -> bool:
    """Whether a rule's ``block`` counts this finding."""
    if block.severity_at_least and not finding.severity.at_least(block.severity_at_least):
        return False
    if block.kinds and finding.kind not in block.kinds:
        return False
    if block.sources and not _any_glob(block.sources, finding.source):
        return False
    return not block.fixable_only or finding.fixable


def describe(block: Block) -> str:
    """A short phrase for what a block selects, used in reasons."""
    words = []
    if block.fixable_only:
        words.append("fixable")
    words.append(
        "/".join(k.value for k in block.kinds) + " findings" if block.kinds else "findings"
    )
    if block.severity_at_least:
        words.append(f"at {block.severity_at_least.value} or above")
    if block.sources:
        words.append("from " + ", ".join(block.sources))
    return " ".join(words)


def _any_glob(patterns: Sequence[str], value: str | None) -> bool:
    return value is not None and any(glob_match(p, value) for p in patterns)


def glob_match(pattern: str, value: str) -> bool:
    """Match ``value`` against a glob: ``*`` and ``?`` stay within a ``/`` segment, ``**`` not."""
    return _compile_glob(pattern).fullmatch(value) is not None


@functools.lru_cache(maxsize=512)
def _compile_glob(pattern: str) -> re.Pattern[str]:
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out), re.DOTALL)
