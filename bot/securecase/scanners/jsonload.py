"""Read a JSON report robustly, and small helpers every report parser shares.

A report is read once as raw bytes (they are what the cases repo stores) and parsed once.
Every way the file can be unusable becomes a :class:`~securecase.errors.ReportError` whose
message starts with the file path and says where the problem is: byte offset for bad UTF-8,
``file:line:col`` for JSON syntax errors.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from securecase.errors import ReportError, UsageError
from securecase.limits import MAX_REPORT_BYTES

UTF8_BOM = b"\xef\xbb\xbf"

#: Problems listed in one error at most; the rest are counted.
MAX_PROBLEMS = 50

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}\Z")
_WHITESPACE = b" \t\r\n"


#: Reports larger than this are refused unless ``--max-report-bytes`` says otherwise.
DEFAULT_MAX_REPORT_BYTES = MAX_REPORT_BYTES


def read_report_bytes(path: str | Path, *, max_bytes: int = DEFAULT_MAX_REPORT_BYTES) -> bytes:
    """The file's bytes; unreadable, non-regular, oversized or empty files are a
    :class:`ReportError`.

    The file is checked with ``stat`` before it is opened, so a FIFO, a device such as
    ``/dev/zero`` or a directory is refused without reading (a FIFO would block forever).
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if not stat.S_ISREG(info.st_mode):
        raise ReportError(
            f"{path}: not a regular file ({_file_kind(info.st_mode)})",
            hint="give the path of the report file the scanner wrote",
        )
    if info.st_size > max_bytes:
        raise _too_large(path, info.st_size, max_bytes)
    try:
        with open(path, "rb") as handle:
            # one byte more than allowed: a file that grew since stat is still caught
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if len(data) > max_bytes:
        raise _too_large(path, len(data), max_bytes)
    # isspace() stops at the first other byte; strip() would copy the whole report.
    if not data or data.isspace() or data == UTF8_BOM:
        raise ReportError(
            f"{path}: the report is empty",
            hint="the scanner wrote no output; check the scan step's log",
        )
    return data


def _unreadable(path: str | Path, exc: OSError) -> ReportError:
    reason = exc.strerror or exc.__class__.__name__
    return ReportError(
        f"{path}: cannot read the report: {reason}",
        hint="check the path; the scanner may have failed before writing its report",
    )


def _too_large(path: str | Path, size: int, limit: int) -> ReportError:
    return ReportError(
        f"{path}: the report is {size:,} bytes, above the limit of {limit:,} (--max-report-bytes)",
        hint="filter at the scanner (e.g. trivy --severity HIGH,CRITICAL, semgrep with fewer "
        "rules, one report per component) or raise --max-report-bytes; GitHub refuses files "
        "above 100 MB in the cases repo",
    )


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def first_significant_byte(data: bytes) -> int | None:
    """The first byte after an optional UTF-8 BOM and leading whitespace (None if none)."""
    start = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    for index in range(start, min(len(data), start + 4096)):
        byte = data[index]
        if byte not in _WHITESPACE:
            return byte
    return None


def decode_json(data: bytes, origin: str) -> object:
    """Decode UTF-8 JSON bytes (a UTF-8 BOM is accepted); ``origin`` prefixes every error."""
    offset = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    try:
        text = data[offset:].decode("utf-8") if offset else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _encoding_error(data, offset + exc.start, origin) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey:
        at, line, column, key = _locate(text, duplicate=True)
        raise ReportError(
            f"{origin}:{line}:{column}: {at}: duplicate key {short_repr(key)} "
            "(a JSON object may name each key once; readers disagree on which value wins)",
            hint="the report must be the scanner's unmodified JSON output",
        ) from None
    except _NonFiniteNumber:
        at, line, column, word = _locate(text, duplicate=False)
        raise ReportError(
            f"{origin}:{line}:{column}: {at}: {word} is not a JSON number",
            hint="the report must be the scanner's unmodified JSON output",
        ) from None
    except json.JSONDecodeError as exc:
        # an unterminated string runs to the end of the input too
        at_end = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        raise ReportError(
            f"{origin}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})",
            hint=(
                "the file ends before the JSON does: the report looks cut off "
                "(scanner killed, disk full, or an upload limit)"
                if at_end
                else "the report must be the scanner's unmodified JSON output"
            ),
        ) from None
    except RecursionError:
        where = nesting_path(text, NESTING_SHOWN)
        raise ReportError(
            f"{origin}: JSON nested too deeply to be a scanner report"
            + (f" at {where}" if where else ""),
            hint="the report must be the scanner's unmodified JSON output",
        ) from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise ReportError(f"{origin}: invalid JSON: {exc}") from None


class _DuplicateKey(ValueError):
    """An object names a key twice (located afterwards by :func:`_locate`)."""


class _NonFiniteNumber(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's extension, not JSON."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _DuplicateKey
    return document


def _no_constant(word: str) -> Any:
    raise _NonFiniteNumber(word)


_LOCATE_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]|-?(?:NaN|Infinity)')


def _locate(text: str, *, duplicate: bool) -> tuple[str, int, int, str]:
    """(JSON path, line, column, token) of the first duplicate key (``duplicate``) or the
    first non-finite constant; only called after the decoder refused the document."""
    parts: list[str | int] = []
    stack: list[set[str] | None] = []  # the keys seen so far of each open object
    last_string: str | None = None
    last_start = 0
    for match in _LOCATE_TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            last_string, last_start = token, match.start()
            continue
        found: str | None = None
        if token == ":":
            key = json.loads(last_string) if last_string else ""
            keys = stack[-1] if stack else None
            if keys is not None:
                if duplicate and key in keys:
                    found = key
                keys.add(key)
                parts[-1] = key
        elif token == ",":
            if stack and stack[-1] is None:
                index = parts[-1]
                parts[-1] = index + 1 if isinstance(index, int) else 0
        elif token in "[{":
            stack.append(set() if token == "{" else None)
            parts.append("" if token == "{" else 0)
        elif token in "]}":
            if stack:
                stack.pop()
                parts.pop()
        elif not duplicate:
            found = token
        last_string = None
        if found is not None:
            start = last_start if token == ":" else match.start()
            line = text.count("\n", 0, start) + 1
            column = start - (text.rfind("\n", 0, start) + 1) + 1
            return json_path(*parts), line, column, found
    return "$", 1, 1, ""


#: Nesting depth at which :func:`nesting_path` reports where a too-deep document goes deep.
NESTING_SHOWN = 100
#: Path parts shown before the rest of a deep path is summarized.
_PATH_PARTS_SHOWN = 12
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')


def nesting_path(text: str, depth: int) -> str | None:
    """The JSON path where ``text`` first nests ``depth`` levels deep (None if it never does).

    Only called after the decoder gave up on a document, so speed does not matter; strings are
    skipped whole, so brackets inside them do not count. Long paths are cut to their first
    parts plus the number of levels left out.
    """
    parts: list[str | int] = []
    stack: list[str] = []
    pending_key: str | None = None
    last_string: str | None = None
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            last_string = token
            continue
        if token == ":":
            pending_key = json.loads(last_string) if last_string else ""
            if parts and stack and stack[-1] == "{":
                parts[-1] = pending_key
        elif token == ",":
            if stack and stack[-1] == "[" and parts:
                index = parts[-1]
                parts[-1] = index + 1 if isinstance(index, int) else 0
        elif token in "[{":
            stack.append(token)
            parts.append(0 if token == "[" else "")
            if len(stack) >= depth:
                shown = parts[:-1][:_PATH_PARTS_SHOWN]
                path = json_path(*shown)
                rest = len(parts) - 1 - len(shown)
                return path + (f"… ({rest} more levels)" if rest > 0 else "")
        else:
            if stack:
                stack.pop()
                parts.pop()
        last_string = None
    return None


def _encoding_error(data: bytes, offset: int, origin: str) -> ReportError:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    hint = "scanner reports are UTF-8; re-run the scanner with its JSON output written to a file"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        hint = (
            "the file is UTF-16 (a PowerShell '>' redirect writes that); "
            "let the scanner write the file itself (trivy --output FILE) or convert it to UTF-8"
        )
    return ReportError(
        f"{origin}: not valid UTF-8 at byte offset {offset} (line {line}, column {column}): "
        f"byte 0x{data[offset]:02x}",
        hint=hint,
    )


def json_path(*parts: str | int) -> str:
    """A JSONPath-like location for messages: ``json_path("Results", 3, "Severity")``
    gives ``$.Results[3].Severity``; keys that are not identifiers are quoted."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            out.append(f".{part}")
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)


def type_name(value: object) -> str:
    """JSON's name for the type of a parsed value, for "expected X, got Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def short_repr(value: object, limit: int = 60) -> str:
    """``repr`` of a value, cut so a huge string cannot flood an error message."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    if isinstance(value, list | dict):
        return f"an {type_name(value)}"
    text = repr(value)
    return text if len(text) <= limit + 2 else text[:limit] + "..."


def problems_error(origin: str, what: str, problems: list[str], *, hint: str | None) -> ReportError:
    """One error for all located problems of a report, listing at most ``MAX_PROBLEMS``."""
    count = len(problems)
    listed = problems[:MAX_PROBLEMS]
    if count > MAX_PROBLEMS:
        listed.append(f"... and {count - MAX_PROBLEMS} more problems")
    noun = "problem" if count == 1 else "problems"
    return ReportError(f"{origin}: {what}: {count} {noun}", problems=listed, hint=hint)


def check_source_name(name: str, origin: str) -> str:
    """``name`` if it is a valid source slot name, else a :class:`UsageError`."""
    if not _SOURCE_NAME.match(name):
        raise UsageError(
            f"invalid source name {short_repr(name)} for {origin}",
            hint="a source name is 1-63 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit (e.g. trivy-image)",
        )
    return name


class Problems:
    """Located problems of one report; paths are built only when something is wrong."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: tuple[str | int, ...], message: str) -> None:
        """Record ``message`` at the JSON location ``where``."""
        self.items.append(f"{json_path(*where)}: {message}")


def array_member(
    record: Mapping[str, Any], key: str, where: tuple[str | int, ...], problems: Problems
) -> list[Any]:
    """The array ``record[key]``; empty when absent or null, a problem when not an array."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add((*where, key), f"expected an array, got {type_name(value)}")
        return []
    return value
