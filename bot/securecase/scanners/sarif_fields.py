"""Checked access to the fields of a SARIF log: every problem is recorded with its JSON path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from securecase.scanners.jsonload import (
    Problems,
    array_member,
    json_path,
    short_repr,
    type_name,
)
from securecase.scanners.sarif_identity import Dropped

#: Titles are cut to this many characters (the last one an ellipsis).
TITLE_LIMIT = 500
#: Identity and stored fields longer than this are refused.
FIELD_LIMIT = 2000
_LEVELS = ("none", "note", "warning", "error")
_PLACEHOLDER = re.compile(r"\{(\d+)\}")

Where = tuple[str | int, ...]


def obj(
    record: Mapping[str, Any], key: str, where: Where, problems: Problems, *, required: bool = False
) -> dict[str, Any] | None:
    """An object member; None when absent (a problem when ``required``) or not an object."""
    value = record.get(key)
    if isinstance(value, dict):
        return value
    if value is None:
        if required:
            problems.add((*where, key), "missing")
        return None
    problems.add((*where, key), f"expected an object, got {type_name(value)}")
    return None


def array(record: Mapping[str, Any], key: str, where: Where, problems: Problems) -> list[Any]:
    """An array member; empty when absent or null."""
    return array_member(record, key, where, problems)


def string(
    record: Mapping[str, Any], key: str, where: Where, problems: Problems, *, required: bool = False
) -> str | None:
    """A string member; None when absent (a problem when ``required``)."""
    value = record.get(key)
    if type(value) is str:
        if value.isascii():
            return value
        return value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates
    if value is None:
        if required:
            problems.add((*where, key), "missing")
        return None
    problems.add((*where, key), f"expected a string, got {type_name(value)}")
    return None


def line(record: Mapping[str, Any], key: str, where: Where, problems: Problems) -> int | None:
    """A 1-based line number (None when absent)."""
    value = record.get(key)
    if value is None:
        return None
    if type(value) is not int or value < 1:
        problems.add((*where, key), f"expected a line number (1 or more), got {short_repr(value)}")
        return None
    return value


def message_text(
    result: Mapping[str, Any], rule: Mapping[str, Any], where: Where, problems: Problems
) -> str:
    """The result's message: its text, else the rule's message string with the arguments."""
    message = obj(result, "message", where, problems)
    if message is None:
        return ""
    m_where: Where = (*where, "message")
    text = string(message, "text", m_where, problems) or string(
        message, "markdown", m_where, problems
    )
    if text is not None:
        return text
    message_id = string(message, "id", m_where, problems)
    strings = rule.get("messageStrings")
    template = strings.get(message_id) if message_id and isinstance(strings, dict) else None
    pattern = template.get("text") if isinstance(template, dict) else None
    if not isinstance(pattern, str):
        return message_id or ""
    arguments = array(message, "arguments", m_where, problems)

    def argument(match: re.Match[str]) -> str:
        index = int(match.group(1))
        value = arguments[index] if index < len(arguments) else None
        return value if isinstance(value, str) else match.group()

    return _PLACEHOLDER.sub(argument, pattern)


def level(
    result: Mapping[str, Any],
    rule: Mapping[str, Any],
    kind: str | None,
    where: Where,
    problems: Problems,
) -> str:
    """The result's level: its own, else SARIF's defaults (§3.27.10): ``none`` for a result
    whose kind is not ``fail`` (the rule's default level applies to failures only), else the
    rule's default, else ``warning``."""
    value = result.get("level")
    if value is not None:
        if value in _LEVELS:
            return str(value)
        problems.add(
            (*where, "level"), f"expected one of {', '.join(_LEVELS)}, got {short_repr(value)}"
        )
        return "warning"
    if kind is not None and kind != "fail":
        return "none"
    config = rule.get("defaultConfiguration")
    default = config.get("level") if isinstance(config, dict) else None
    if default in _LEVELS:
        return str(default)
    return "warning"


def suppressed(result: Mapping[str, Any], where: Where, problems: Problems) -> bool:
    """True when the result has suppressions and all of them are accepted (an absent
    ``status`` means accepted); one under review or rejected keeps the result active.

    SARIF 2.1.0 names the member ``status``; ``state`` (a pre-release draft's name) is read
    too, so a suppression either calls not accepted keeps the result active."""
    entries = array(result, "suppressions", where, problems)
    if not entries:
        return False
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(
                (*where, "suppressions", index), f"expected an object, got {type_name(entry)}"
            )
            return False
        for key in ("status", "state"):
            status = entry.get(key)
            if status is not None and status != "accepted":
                return False
    return True


#: Fingerprint values that identify nothing: Semgrep run without a login writes this one
#: on every result. Such values are ignored, so the snippet or message identifies the result.
PLACEHOLDER_FINGERPRINTS = frozenset({"requires login"})


def fingerprints(
    result: Mapping[str, Any], where: Where, problems: Problems, dropped: Dropped
) -> tuple[str, ...]:
    """``table:name=value`` for every (partial) fingerprint, sorted; empty when there are none
    (placeholders such as Semgrep's ``requires login`` do not count).

    A value that is not a string (some tools write objects), or too long, identifies nothing
    reliably: it is dropped with a warning, and the result is identified without it."""
    found: list[str] = []
    for key in ("fingerprints", "partialFingerprints"):
        table = result.get(key)
        if table is None:
            continue
        if not isinstance(table, dict):
            dropped.add(json_path(*where, key), f"expected an object, got {type_name(table)}")
            continue
        for name, value in table.items():
            if type(value) is not str:
                dropped.add(
                    json_path(*where, key, name), f"expected a string, got {type_name(value)}"
                )
                continue
            if len(value) > FIELD_LIMIT:
                dropped.add(json_path(*where, key, name), f"longer than the {FIELD_LIMIT} allowed")
                continue
            if value.strip().lower() not in PLACEHOLDER_FINGERPRINTS:
                found.append(f"{key}:{name}={value}")
    return tuple(sorted(found))


def region_line(
    record: Mapping[str, Any], key: str, where: Where, problems: Problems, dropped: Dropped
) -> int | None:
    """A 1-based line number (None when absent). ``0`` (bandit 1.7 writes it for a finding
    it cannot place) says nothing: dropped with a warning; any other non-line is a problem."""
    value = record.get(key)
    if type(value) is int and value == 0:
        dropped.add(json_path(*where, key), "line 0 is not a line (SARIF lines start at 1)")
        return None
    return line(record, key, where, problems)


def clip(value: str | None, limit: int) -> str | None:
    """``value`` cut to ``limit`` characters (the last one an ellipsis)."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


def title(value: str) -> str:
    """A display title: whitespace runs made single spaces, cut to ``TITLE_LIMIT``."""
    text = " ".join(value[: TITLE_LIMIT * 2].split())
    return clip(text, TITLE_LIMIT) or ""


def utc(value: str) -> str | None:
    """An ISO 8601 time as ``YYYY-MM-DDTHH:MM:SSZ`` (SARIF's times are UTC, so one without an
    offset is taken as UTC); None for anything else, which must not become the scan's time:
    case times are compared as strings, so 'not a date' would outrank every later scan."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
