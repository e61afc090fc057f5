"""Load a policy: safe YAML, JSON Schema, semantic checks, then typed data.

Every problem is reported with ``file:line`` and all problems at once; a policy with any
problem is refused (fail closed: an invalid policy never lets a scan pass).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from securecase import schemas, yamlio
from securecase.errors import PolicyError
from securecase.models import Kind, Severity
from securecase.policy.model import Block, Event, Mode, Policy, Rule, When

BUILTIN_ORIGIN = "builtin:policies/default.yaml"


def git_blob_id(data: bytes) -> str:
    """The id git gives ``data`` as a blob, so built-in and file policies are named alike."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def builtin_policy_bytes() -> bytes:
    """The shipped default policy (the seed gate), byte-identical to ``policies/default.yaml``."""
    return (Path(__file__).parents[1] / "data" / "default-policy.yaml").read_bytes()


def builtin_policy() -> Policy:
    """The default policy: block pull requests into main with HIGH or CRITICAL findings."""
    return load_policy(builtin_policy_bytes(), origin=BUILTIN_ORIGIN)


def load_policy(data: bytes, *, origin: str) -> Policy:
    """Parse and validate policy bytes; ``origin`` names the file in messages and the case."""
    document = yamlio.load(data, path=origin)
    if document is None:
        raise PolicyError(f"{origin}: the policy is empty", hint="start from policies/default.yaml")
    if not schemas.is_valid(document, schemas.POLICY):
        found = schemas.problems(document, schemas.POLICY, text=data, path=origin)
        raise PolicyError(
            f"{origin}: the policy is invalid ({len(found)} problem(s))",
            problems=found,
            hint="see `securecase policy validate --help` and policies/ for examples",
        )
    found = _semantic_problems(document, data, origin)
    if found:
        raise PolicyError(
            f"{origin}: the policy is invalid ({len(found)} problem(s))", problems=found
        )
    return Policy(
        mode=Mode(document.get("mode", Mode.PR_GATE.value)),
        rules=tuple(_rule(raw) for raw in document["rules"]),
        origin=origin,
        blob=git_blob_id(data),
    )


def _semantic_problems(document: dict[str, Any], data: bytes, origin: str) -> list[str]:
    found = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(document["rules"]):
        line = yamlio.locate(data, ["rules", index, "id"])
        where = f"{origin}:{line}" if line else origin
        rule_id = raw["id"]
        if rule_id in seen:
            found.append(
                f"{where}: $.rules[{index}].id: duplicate rule id {rule_id!r} "
                f"(first defined at line {seen[rule_id]})"
            )
        else:
            seen[rule_id] = line or 0
        when = raw.get("when", {})
        events = when.get("event", [])
        events = [events] if isinstance(events, str) else events
        if "target_branches" in when and events and "pull_request" not in events:
            found.append(
                f"{where}: $.rules[{index}].when: target_branches only match pull requests, "
                "but the rule's event excludes pull_request, so it can never apply"
            )
    return found


def _rule(raw: dict[str, Any]) -> Rule:
    when = raw.get("when", {})
    events = when.get("event", ())
    events = (events,) if isinstance(events, str) else events
    block = raw["block"]
    severity = block.get("severity_at_least")
    return Rule(
        id=raw["id"],
        description=raw.get("description"),
        when=When(
            events=tuple(Event(e) for e in events),
            target_branches=tuple(when.get("target_branches", ())),
            branches=tuple(when.get("branches", ())),
            repos=tuple(when.get("repos", ())),
        ),
        block=Block(
            severity_at_least=Severity(severity) if severity else None,
            sources=tuple(block.get("sources", ())),
            kinds=tuple(Kind(k) for k in block.get("kinds", ())),
            fixable_only=bool(block.get("fixable_only", False)),
        ),
        max_allowed=int(raw.get("max_allowed", 0)),
    )
