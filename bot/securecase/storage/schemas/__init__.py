"""JSON Schemas for securecase files, checked with jsonschema-rs.

Problems come back as ``file:line: $.json.path: message`` (the line when the document came
from YAML and its node tree is given), sorted by line, capped in number and length.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema_rs

from securecase.storage.yamldoc import MAX_MESSAGE, clip

POLICY = "policy.schema.json"
CASE = "case.schema.json"
FINDINGS = "findings.schema.json"
RECORD = "record.schema.json"
#: At most this many problems are listed; the rest are counted.
MAX_PROBLEMS = 20


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema shipped as package data beside this module."""
    schema: dict[str, Any] = json.loads((Path(__file__).parent / name).read_text("utf-8"))
    return schema


@functools.cache
def validator(name: str) -> jsonschema_rs.Draft202012Validator:
    """The compiled draft 2020-12 validator of the named schema (once per process)."""
    return jsonschema_rs.Draft202012Validator(load_schema(name))


def json_path(parts: Sequence[str | int]) -> str:
    """Render keys and indices as ``$.a.b[3].c``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def problems(
    document: Any,
    name: str,
    *,
    path: str,
    line_of: Callable[[Sequence[str | int]], int | None] | None = None,
) -> list[str]:
    """Every schema problem of ``document``, as ``path[:line]: $.json.path: message``.

    ``line_of`` maps a JSON path to a line of the file (YAML); without it only the JSON path
    is given. An empty list means the document is valid.
    """
    check = validator(name)
    if check.is_valid(document):
        return []
    found = []
    for error in check.iter_errors(document):
        parts = list(error.instance_path)
        line = line_of(parts) if line_of is not None else None
        where = f"{path}:{line}" if line is not None else path
        found.append((line or 0, json_path(parts), f"{where}: {json_path(parts)}: {_said(error)}"))
    found.sort()
    messages = [message for _, _, message in found[:MAX_PROBLEMS]]
    if len(found) > MAX_PROBLEMS:
        messages.append(f"{path}: ... and {len(found) - MAX_PROBLEMS} more problem(s)")
    return messages


#: Errors about a size limit: their message quotes the whole value, which a clipped message
#: would cut before the limit is said.
_SIZE_UNITS = {"MaxLength": "characters", "MaxItems": "items", "MaxProperties": "properties"}


def _said(error: jsonschema_rs.ValidationError) -> str:
    """The error's message, clipped; a size limit said without quoting the value."""
    unit = _SIZE_UNITS.get(type(error.kind).__name__)
    instance = error.instance
    if unit is not None and isinstance(instance, str | list | dict):
        if len(error.message) > MAX_MESSAGE:
            limit = error.kind.limit  # type: ignore[attr-defined]
            return f"{len(instance):,} {unit}, more than the {limit:,} allowed"
    return clip(error.message)
