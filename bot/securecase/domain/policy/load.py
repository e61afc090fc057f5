"""Load a policy: safe YAML, JSON Schema, semantic checks, then typed data.

Every problem is reported with ``file:line`` and all problems at once; a policy with any
problem is refused (fail closed: an invalid policy never lets a scan pass).
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

from securecase.domain.findings import Kind, Severity
from securecase.domain.policy.model import (
    Block,
    Event,
    ExceptionMatch,
    Mode,
    Policy,
    PolicyException,
    Rule,
    When,
)
from securecase.errors import InputError, PolicyError
from securecase.storage import schemas, yamldoc

BUILTIN_ORIGIN = "builtin:policies/default.yaml"
DATA = Path(__file__).parents[2] / "data"


def git_blob_id(data: bytes) -> str:
    """The id git gives ``data`` as a blob, so built-in and file policies are named alike."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def builtin_policy_bytes(folder: Path = DATA) -> bytes:
    """The shipped default policy (the seed gate), byte-identical to ``policies/default.yaml``."""
    return (folder / "default-policy.yaml").read_bytes()


def builtin_policy(folder: Path = DATA) -> Policy:
    """The default policy: block pull requests into main with HIGH or CRITICAL findings.

    ``folder`` holds ``default-policy.yaml`` (the package's data folder).
    """
    return load_policy(builtin_policy_bytes(folder), origin=BUILTIN_ORIGIN)


def load_policy(data: bytes, *, origin: str) -> Policy:
    """Parse and validate policy bytes; ``origin`` names the file in messages and the case."""
    try:
        located = yamldoc.load_located(data, path=origin)
    except yamldoc.YamlError as exc:
        raise PolicyError(
            exc.message, hint="see `securecase policy validate --help` and policies/ for examples"
        ) from exc
    return policy_from_document(located, data, origin=origin)


def policy_from_document(located: yamldoc.Located, data: bytes, *, origin: str) -> Policy:
    """Validate a parsed policy (from ``data``, with its node tree for lines) into a Policy."""
    document = located.data
    if document is None:
        raise PolicyError(f"{origin}: the policy is empty", hint="start from policies/default.yaml")
    found = schemas.problems(
        document,
        schemas.POLICY,
        path=origin,
        line_of=lambda parts: yamldoc.line_of(located.node, parts),
    )
    if found:
        raise PolicyError(
            f"{origin}: the policy is invalid ({len(found)} problem(s))",
            problems=found,
            hint="see `securecase policy validate --help` and policies/ for examples",
        )
    found = _semantic_problems(document, located, origin)
    if found:
        raise PolicyError(
            f"{origin}: the policy is invalid ({len(found)} problem(s))", problems=found
        )
    return Policy(
        mode=Mode(document.get("mode", Mode.PR_GATE.value)),
        rules=tuple(_rule(raw) for raw in document["rules"]),
        origin=origin,
        blob=git_blob_id(data),
        exceptions=tuple(_exception(raw) for raw in document.get("exceptions", ())),
        sla_days={Severity(k): int(v) for k, v in document.get("sla_days", {}).items()},
    )


def validate_policy(data: bytes, *, origin: str, today: date) -> Policy:
    """:func:`load_policy` plus the checks a policy change must pass before it merges.

    An exception that has already expired is an error here (a policy pull request adding one
    is caught), while at ingest it just stops applying.
    """
    try:
        loaded = load_policy(data, origin=origin)
    except PolicyError as error:
        # Report the expired exceptions together with the other problems, not one round later.
        expired = _expired_problems(_raw_expiries(data, origin), data, origin, today)
        if not expired:
            raise
        found = [*error.problems, *expired]
        raise PolicyError(
            f"{origin}: the policy is invalid ({len(found)} problem(s))",
            problems=found,
            hint=error.hint,
        ) from error
    expiries = [(index, exc.id, exc.expires) for index, exc in enumerate(loaded.exceptions)]
    found = _expired_problems(expiries, data, origin, today)
    if found:
        raise PolicyError(
            f"{origin}: the policy is invalid ({len(found)} problem(s))", problems=found
        )
    return loaded


def _expired_problems(
    expiries: list[tuple[int, str, date]], data: bytes, origin: str, today: date
) -> list[str]:
    found = []
    for index, exc_id, expires in expiries:
        if today > expires:
            line = _line(data, origin, ["exceptions", index, "expires"])
            found.append(
                f"{origin}:{line or '?'}: $.exceptions[{index}].expires: exception {exc_id} "
                f"expired on {expires.isoformat()} (today is {today.isoformat()}); "
                "renew or remove it"
            )
    return found


def _raw_expiries(data: bytes, origin: str) -> list[tuple[int, str, date]]:
    """(index, id, expires) of the well-formed exceptions of a policy that failed to load."""
    try:
        document = yamldoc.load(data, path=origin)
    except InputError:
        return []
    raw = document.get("exceptions") if isinstance(document, dict) else None
    found = []
    for index, entry in enumerate(raw if isinstance(raw, list) else ()):
        if not isinstance(entry, dict):
            continue
        exc_id, expires = entry.get("id"), entry.get("expires")
        if not isinstance(exc_id, str) or not isinstance(expires, str):
            continue
        try:
            found.append((index, exc_id, date.fromisoformat(expires)))
        except ValueError:
            continue  # already reported as not a calendar date
    return found


def _line(data: bytes, origin: str, path: list[str | int]) -> int | None:
    """The line of ``path`` in a policy text (None when the text does not parse)."""
    try:
        return yamldoc.line_of(yamldoc.load_located(data, path=origin).node, path)
    except InputError:
        return None


def _semantic_problems(
    document: dict[str, Any], located: yamldoc.Located, origin: str
) -> list[str]:
    def where(*path: str | int) -> str:
        line = yamldoc.line_of(located.node, list(path))
        return f"{origin}:{line}" if line else origin

    def line_of(*path: str | int) -> int:
        return yamldoc.line_of(located.node, list(path)) or 0

    found = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(document["rules"]):
        rule_id = raw["id"]
        if rule_id in seen:
            found.append(
                f"{where('rules', index, 'id')}: $.rules[{index}].id: duplicate rule id "
                f"{rule_id!r} (first defined at line {line_of('rules', seen[rule_id], 'id')})"
            )
        else:
            seen[rule_id] = index
        when = raw.get("when", {})
        events = when.get("event", [])
        events = [events] if isinstance(events, str) else events
        if "target_branches" in when and events and "pull_request" not in events:
            found.append(
                f"{where('rules', index, 'id')}: $.rules[{index}].when: target_branches only "
                "match pull requests, but the rule's event excludes pull_request, so it can "
                "never apply"
            )
        if raw["block"].get("sla_breached") and not document.get("sla_days"):
            found.append(
                f"{where('rules', index, 'id')}: $.rules[{index}].block.sla_breached: needs "
                "sla_days at the top level of the policy (days per severity)"
            )
    seen.clear()
    for index, raw in enumerate(document.get("exceptions", ())):
        exc_id = raw["id"]
        if exc_id in seen:
            found.append(
                f"{where('exceptions', index, 'id')}: $.exceptions[{index}].id: duplicate "
                f"exception id {exc_id!r} (first defined at line "
                f"{line_of('exceptions', seen[exc_id], 'id')})"
            )
        else:
            seen[exc_id] = index
        if set(raw["match"]) == {"repos"}:
            found.append(
                f"{where('exceptions', index, 'match')}: $.exceptions[{index}].match: names only "
                "repos, which would except every finding there; add rule, package, path, "
                "source or fingerprint"
            )
        try:
            date.fromisoformat(raw["expires"])
        except ValueError:
            found.append(
                f"{where('exceptions', index, 'expires')}: $.exceptions[{index}].expires: "
                f"{raw['expires']!r} is not a calendar date (YYYY-MM-DD)"
            )
    return found


def _exception(raw: dict[str, Any]) -> PolicyException:
    match = raw["match"]
    return PolicyException(
        id=raw["id"],
        match=ExceptionMatch(
            advisory=match.get("advisory", match.get("rule")),
            package=match.get("package"),
            path=match.get("path"),
            source=match.get("source"),
            repos=tuple(match.get("repos", ())),
            fingerprint=match.get("fingerprint"),
        ),
        reason=raw["reason"],
        approved_by=raw["approved_by"],
        expires=date.fromisoformat(raw["expires"]),
    )


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
            new_only=bool(block.get("new_only", False)),
            cvss_at_least=float(block["cvss_at_least"]) if "cvss_at_least" in block else None,
            age_days_over=block.get("age_days_over"),
            sla_breached=bool(block.get("sla_breached", False)),
        ),
        max_allowed=int(raw.get("max_allowed", 0)),
    )
