"""JSON Schemas for securecase files, and validation that reports problems as ``file:line``.

Every document takes a fast yes/no path (:mod:`securecase.storage.schemacheck`, compiled once per
process: about 1 ms to compile and 3 ms per 1,000 findings, where loading a general validator
alone costs more than that); only an invalid document pays for jsonschema, which lists every
problem with its JSON path. Both read ``pattern`` the way JSON Schema specifies (ECMA-262).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securecase.storage import schemacheck, yamlio

if TYPE_CHECKING:
    import jsonschema

POLICY = "policy.schema.json"
CASE = "case.schema.json"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema shipped as package data under ``securecase/schemas``."""
    # A plain path, not importlib.resources: that import alone costs ~25 ms of start-up.
    text = (Path(__file__).parent / name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _fast_validator(name: str) -> Callable[[Any], bool]:
    return schemacheck.compile_schema(load_schema(name))


def is_valid(document: Any, name: str) -> bool:
    """Quick yes/no check of ``document`` against the named schema."""
    return _fast_validator(name)(document)


def json_path(parts: Any) -> str:
    """Render a sequence of keys and indices as ``$.a.b[3].c``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def problems(document: Any, name: str, *, text: str | bytes, path: str) -> list[str]:
    """Every schema problem of ``document`` as ``path:line: $.json.path: message``, in order."""
    validator = reporting_validator(load_schema(name))
    found = []
    for error in validator.iter_errors(document):
        parts = list(error.absolute_path)
        line = yamlio.locate(text, parts)
        where = f"{path}:{line}" if line is not None else path
        found.append((line or 0, json_path(parts), f"{where}: {json_path(parts)}: {error.message}"))
    found.sort()
    if not found:  # never a silent pass: the quick check said no
        found.append((0, "$", f"{path}: $: the document does not match the schema"))
    return [message for _, _, message in found]


def reporting_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """jsonschema's draft 2020-12 validator, with ``pattern`` read as ECMA-262 reads it."""
    import jsonschema

    def pattern(
        validator: Any, expected: str, instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        if validator.is_type(instance, "string"):
            translated = schemacheck.ecma_pattern(expected, "pattern")
            if re.search(translated, instance) is None:
                yield jsonschema.ValidationError(f"{instance!r} does not match {expected!r}")

    kind = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})
    return kind(schema)
