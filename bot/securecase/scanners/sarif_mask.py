"""Masking secret text in a SARIF log before its raw copy is stored in the cases repo."""

from __future__ import annotations

import json
import re
from collections.abc import Set
from typing import Any

#: What replaces secret text in the stored raw log.
MASK = "<masked by securecase>"

#: Members of a secret result that may hold the secret (snippets, messages, tool properties).
_MASKED_KEYS = frozenset(
    {"snippet", "text", "markdown", "arguments", "properties", "fixes", "attachments", "contents"}
)

#: Members that name things rather than hold found text; kept as they are.
_KEPT_KEYS = frozenset({"ruleId", "id", "uri", "uriBaseId", "level", "kind", "guid", "state"})


def masked_copy(doc: dict[str, Any], results: Set[tuple[int, int]]) -> bytes:
    """The log re-serialized with the text of the given (run, result) indexes masked.

    Within each such result every snippet, message, property bag, fix and attachment is
    replaced by :data:`MASK`, at any depth (code flows and related locations too); rule ids,
    paths and line numbers stay. The artifact contents of the runs involved are masked too.
    Mutates ``doc``.
    """
    runs = doc["runs"]
    for run_index in sorted({run for run, _ in results}):
        run = runs[run_index]
        for artifact in run.get("artifacts") or ():
            if isinstance(artifact, dict) and "contents" in artifact:
                artifact["contents"] = _all_text_masked(artifact["contents"])
    for run_index, result_index in results:
        records = runs[run_index]["results"]
        records[result_index] = _masked(records[result_index])
    try:
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let json escape them
        return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def _masked(value: Any) -> Any:
    """``value`` with its text masked and its shape kept: objects stay objects and arrays
    arrays, so the stored copy is still a valid SARIF log."""
    if isinstance(value, dict):
        return {
            key: _all_text_masked(item)
            if key in _MASKED_KEYS
            else item
            if key in _KEPT_KEYS and isinstance(item, str)
            else _masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, str):  # any other text may quote the secret
        return value if len(value) <= 200 and " " not in value else MASK
    return value


def _all_text_masked(value: Any) -> Any:
    """Every string inside ``value`` replaced by :data:`MASK` (keys, numbers and the nesting
    kept)."""
    if isinstance(value, str):
        return value if _is_number(value) else MASK  # scores such as security-severity stay
    if isinstance(value, dict):
        return {key: _all_text_masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_all_text_masked(item) for item in value]
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return len(text) <= 16


#: A command-line option whose value is a credential: ``--token=X``, ``--password X``.
_SECRET_OPTION = re.compile(
    r"(?i)(-{1,2}[\w.-]*(?:token|passw(?:or)?d|secret|api[-_]?key|auth|credential)[\w.-]*)"
    r"(=|\s+)(\"[^\"]*\"|'[^']*'|\S+)"
)
_SECRET_FLAG = re.compile(
    r"(?i)-{1,2}[\w.-]*(?:token|passw(?:or)?d|secret|api[-_]?key|auth|credential)[\w.-]*\Z"
)


def mask_invocations(doc: dict[str, Any]) -> bool:
    """Mask what a run's invocations may carry of the build's credentials: every value of
    ``environmentVariables`` (CI secrets are often environment variables; the names stay)
    and the values of credential options in ``commandLine`` and ``arguments``. Mutates
    ``doc``; True when anything changed."""
    changed = False
    for run in doc["runs"]:
        invocations = run.get("invocations") if isinstance(run, dict) else None
        for invocation in invocations if isinstance(invocations, list) else ():
            if not isinstance(invocation, dict):
                continue
            variables = invocation.get("environmentVariables")
            if isinstance(variables, dict) and any(v != MASK for v in variables.values()):
                invocation["environmentVariables"] = dict.fromkeys(variables, MASK)
                changed = True
            command = invocation.get("commandLine")
            if isinstance(command, str):
                masked = _SECRET_OPTION.sub(rf"\1\2{MASK}", command)
                if masked != command:
                    invocation["commandLine"] = masked
                    changed = True
            arguments = invocation.get("arguments")
            if isinstance(arguments, list):
                masked_arguments = _masked_arguments(arguments)
                if masked_arguments != arguments:
                    invocation["arguments"] = masked_arguments
                    changed = True
    return changed


def _masked_arguments(arguments: list[Any]) -> list[Any]:
    out: list[Any] = []
    after_flag = False
    for argument in arguments:
        if not isinstance(argument, str):
            out.append(argument)
            after_flag = False
            continue
        if after_flag:
            out.append(MASK)
            after_flag = False
            continue
        out.append(_SECRET_OPTION.sub(rf"\1\2{MASK}", argument))
        after_flag = _SECRET_FLAG.match(argument) is not None
    return out
