"""Masking secret text in a Trivy report before its raw copy is stored in the cases repo."""

from __future__ import annotations

import json
from typing import Any

#: What replaces secret text in the stored raw report.
MASK = "<masked by securecase>"

_SECRET_SAFE_KEYS = frozenset(
    {"RuleID", "Category", "Severity", "Title", "StartLine", "EndLine", "Offset", "Layer"}
)


def masked_copy(doc: dict[str, Any]) -> bytes:
    """The report re-serialized with every secret's text masked (mutates ``doc``).

    For each secret record, ``Match``, every string in ``Code.Lines[]`` and any field not known
    to be harmless is replaced by :data:`MASK`. Code lines that misconfiguration results of the
    same file show for the secret's lines are masked too.
    """
    secret_lines: dict[str, list[tuple[int, int]]] = {}
    results = doc.get("Results")
    if not isinstance(results, list):
        results = []
    for result in results:
        if not isinstance(result, dict) or not result.get("Secrets"):
            continue
        if not isinstance(result["Secrets"], list):  # malformed, but it may still hold text
            result["Secrets"] = MASK
            continue
        target = result.get("Target")
        records = result["Secrets"]
        for index, record in enumerate(records):
            if not isinstance(record, dict):  # malformed, but it may still hold text
                records[index] = MASK
                continue
            _mask_secret(record)
            start, end = record.get("StartLine"), record.get("EndLine")
            if type(target) is str and type(start) is int:
                span = (start, end if type(end) is int and end >= start else start)
                secret_lines.setdefault(target, []).append(span)
    if secret_lines:
        _mask_misconfiguration_lines(results, secret_lines)
    try:
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let json escape them
        return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def _mask_secret(record: dict[str, Any]) -> None:
    for key, value in record.items():
        if key == "Code" and isinstance(value, dict):
            lines = value.get("Lines")
            if lines is None:
                continue
            if isinstance(lines, list):
                for index, line in enumerate(lines):
                    if isinstance(line, dict):
                        _mask_line(line)
                    else:
                        lines[index] = MASK
            else:
                value["Lines"] = MASK
            for code_key, code_value in value.items():
                if code_key != "Lines" and isinstance(code_value, str | list | dict):
                    value[code_key] = MASK
        elif key not in _SECRET_SAFE_KEYS and value is not None and not isinstance(value, bool):
            record[key] = MASK


def _mask_line(line: dict[str, Any]) -> None:
    for key, value in line.items():
        if isinstance(value, str | list | dict) and value != "":
            line[key] = MASK


def _mask_misconfiguration_lines(
    results: list[Any], secret_lines: dict[str, list[tuple[int, int]]]
) -> None:
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("Misconfigurations"), list):
            continue
        target = result.get("Target")
        spans = secret_lines.get(target) if isinstance(target, str) else None
        if not spans:
            continue
        for record in result["Misconfigurations"]:
            cause = record.get("CauseMetadata") if isinstance(record, dict) else None
            code = cause.get("Code") if isinstance(cause, dict) else None
            lines = code.get("Lines") if isinstance(code, dict) else None
            for line in lines if isinstance(lines, list) else ():
                number = line.get("Number") if isinstance(line, dict) else None
                if type(number) is int and any(lo <= number <= hi for lo, hi in spans):
                    for key in ("Content", "Highlighted"):
                        if isinstance(line.get(key), str):
                            line[key] = MASK
