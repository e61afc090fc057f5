"""What a SARIF result and its rule say beyond their ids: severity from
``security-severity``, title, confidence, CWEs, and the package of a Trivy vulnerability."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from securecase.domain.findings import Package, Severity
from securecase.scanners import sarif_fields as fields

_TRIVY_PACKAGE_LINE = re.compile(r"^(Package|Installed Version|Fixed Version): (.+)$", re.M)
_CWE = re.compile(r"\bcwe[-_/ :]?0*(\d{1,6})\b", re.I)


def properties(record: Mapping[str, Any]) -> dict[str, Any]:
    value = record.get("properties")
    return value if isinstance(value, dict) else {}


def security_severity(properties: Mapping[str, Any]) -> float | None:
    """The ``security-severity`` score (0-10) when the property holds a number."""
    value = properties.get("security-severity")
    if type(value) is str:
        try:
            score = float(value)
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        score = float(value)
    else:
        return None
    return score if math.isfinite(score) and 0 <= score <= 10 else None


def severity_of_score(score: float) -> Severity:
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0:
        return Severity.LOW
    return Severity.INFO


def trivy_package(message: str) -> Package | None:
    """Trivy's SARIF names the package only in the message: ``Package: musl`` lines."""
    found = dict(_TRIVY_PACKAGE_LINE.findall(message))
    name = found.get("Package", "").strip()
    if not name or len(name) > fields.FIELD_LIMIT:
        return None
    version = found.get("Installed Version", "").strip() or None
    fixed = found.get("Fixed Version", "").strip() or None
    return Package(name, fields.clip(version, 200), fields.clip(fixed, 200))


def title(rule: Mapping[str, Any], message: str, rule_id: str, *, secret: bool) -> str:
    """The rule's short description, else the message's first line, else the rule's name.

    A secret's message may quote the secret, so a secret's title never comes from it.
    """
    short = rule.get("shortDescription")
    if isinstance(short, dict) and isinstance(short.get("text"), str) and short["text"].strip():
        return fields.title(short["text"])
    first_line = message.strip().split("\n", 1)[0]
    if first_line and not secret:
        return fields.title(first_line)
    name = rule.get("name")
    if isinstance(name, str) and name.strip():
        return fields.title(name)
    return fields.title(rule_id)


def confidence(rule_props: Mapping[str, Any], result_props: Mapping[str, Any]) -> str | None:
    for value in (result_props.get("issue_confidence"), rule_props.get("precision")):
        if isinstance(value, str) and 0 < len(value) <= 40:
            return value.lower()
    return None


def merged_cwes(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    if not b or a == b:
        return a
    if not a:
        return b
    return tuple(sorted(set(a) | set(b), key=lambda cwe: int(cwe[4:])))


def cwes(props: Mapping[str, Any]) -> tuple[str, ...]:
    """CWE ids named in a property bag's ``tags`` or ``cwe`` (CodeQL, Semgrep, ...)."""
    if not props:
        return ()
    found: set[int] = set()
    for key in ("tags", "cwe"):
        values = props.get(key)
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            continue
        for value in values[:50]:
            if isinstance(value, str):
                found.update(int(n) for n in _CWE.findall(value))
    return tuple(f"CWE-{n}" for n in sorted(found))
