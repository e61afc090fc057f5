"""The fast half of :mod:`securecase.storage.yamlio`: a deterministic emitter and a loader for its output.

:func:`emit` writes plain data (dict, list, str, int, float, bool, None) as block-style YAML that
YAML 1.1 and 1.2 loaders read back identically. :func:`fast_load` parses exactly the subset of
YAML that :func:`emit` writes, line by line (string splits, and a regular expression only for a
key or value not seen before), and returns :data:`REJECT` for anything else (comments, anchors,
flow style, odd indentation, any scalar the emitter would not write...) so the caller can fall
back to PyYAML. Whenever it accepts a text, its result equals what PyYAML's safe loader (without
timestamps) returns for that text.
"""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

#: Returned by :func:`fast_load` when the text is outside the subset it understands.
REJECT: Final = object()

# A plain (unquoted) scalar: words of these characters, the first starting with a letter, "_" or
# "/", joined by single spaces or by runs of ":" (so never ": ", " :" or a final ":").
_WORD = r"[A-Za-z0-9_./@+~=\-]"
_PLAIN = rf"[A-Za-z_/]{_WORD}*+(?:(?::++| ){_WORD}++)*+"
# Words that YAML 1.1 or 1.2 resolves to a bool or null in some spelling; compared lowercased.
_RESERVED: Final = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})
# The body of a double-quoted scalar using only the escapes the emitter writes, and raw only the
# characters it writes raw: printable, neither a line break nor a byte order mark.
# Written as the complement: a class of huge ranges costs ~8 ms to compile at every start-up.
_QCHAR = '[^\\x00-\\x1f"\\\\\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff\\ufeff\\ufffe\\uffff]'
_QBODY = rf'{_QCHAR}*+(?:\\(?:["\\bfnrt]|u[0-9a-fA-F]{{4}}){_QCHAR}*+)*+'

_PLAIN_RE: Final = re.compile(_PLAIN)
_QUOTED_RE: Final = re.compile(f'"{_QBODY}"')
_INT_RE: Final = re.compile(r"0|-?[1-9][0-9]{0,3999}")
_FLOAT_RE: Final = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+(?:e[-+][0-9]+)?")
# A line after its indentation and dashes: key, value after "key: ", or a bare item.
_ENTRY_RE: Final = re.compile(rf'("{_QBODY}"|{_PLAIN}):(?: (.+))?|(.+)')
_UNESCAPE_RE: Final = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")

# Characters that a double-quoted scalar must escape: C0 controls, `"`, `\`, DEL, C1 (incl. NEL),
# the YAML 1.1 line/paragraph separators, BOM, U+FFFE/U+FFFF and surrogates.
_ESCAPE_RE: Final = re.compile(
    '[\x00-\x1f"\\\\\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]'
)
_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}
_UNESCAPES: Final = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
# Anything outside: line feed, printable ASCII, and printable non-ASCII that YAML treats neither
# as a line break nor as a byte order mark. Such text is never written raw by the emitter.
_UNSAFE_RE: Final = re.compile(
    "[\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff\\ufeff\\ufffe\\uffff]"
)
# A line of a literal block that ends in a space (trailing spaces are never written).
_TRAILING_SPACE_RE: Final = re.compile(r" (?:\n|\Z)")
#: A simple key longer than this (in UTF-8 bytes) is written in the explicit ``? key`` form;
#: YAML parsers refuse simple keys of more than 1024 characters.
MAX_SIMPLE_KEY: Final = 1000
#: Deeper documents are left to PyYAML (which may refuse them).
MAX_DEPTH: Final = 200


class _Reject(Exception):
    """Internal: the text is outside the fast subset."""


# --------------------------------------------------------------------------------------------
# Emitter

# A line of the top level: a key in column 0 (an empty line inside a literal block is not one).
_TOP_LINE_RE: Final = re.compile(r"\n(?=[^ \n])")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    if "\ud800" <= char <= "\udfff":
        raise ValueError(
            f"cannot write a lone surrogate (U+{ord(char):04X}) to YAML: it is not a character"
        )
    return f"\\u{ord(char):04x}"


def _quote(text: str) -> str:
    if _ESCAPE_RE.search(text) is None:
        return f'"{text}"'
    return '"' + _ESCAPE_RE.sub(_escape_char, text) + '"'


def _literal(text: str) -> str | None:
    """``|`` / ``|-`` header and the unindented body, or None when a literal block can't hold it."""
    keep = text.endswith("\n")
    body = text[:-1] if keep else text
    if _UNSAFE_RE.search(body) is not None or _TRAILING_SPACE_RE.search(body) is not None:
        return None
    if not body or body.endswith("\n") or body.lstrip("\n").startswith(" "):
        return None  # several trailing newlines, or an indentation the loader would misread
    return ("|\n" if keep else "|-\n") + body


def scalar_token(text: str, *, key: bool = False) -> str:
    """How ``text`` is written: plain, double-quoted or (values only) a literal block.

    A literal block comes back as ``header + "\\n" + body``; a single-line token never contains
    a newline.
    """
    if _PLAIN_RE.fullmatch(text) is not None and text.lower() not in _RESERVED:
        return text
    if not key and "\n" in text:
        literal = _literal(text)
        if literal is not None:
            return literal
    return _quote(text)


def float_token(value: float) -> str:
    """``repr`` of a finite float, with a ``.0`` added where YAML 1.1 needs a dot (``1.0e-05``)."""
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} to YAML: only finite numbers are allowed")
    text = float.__repr__(value)
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e")
    return text


def sequence_items(text: str, key: str) -> list[str] | None:
    """The text of each item of the block sequence under top-level ``key`` in ``text``, which
    :func:`emit` wrote; None when there is no such non-empty sequence.

    Each item's text is the lines :func:`emit` wrote for it, without the final newline, for
    its ``written`` argument. ``key`` must be a plain key.
    """
    if scalar_token(key, key=True) != key:
        raise ValueError(f"{key!r} is not a plain key")
    head = f"{key}:\n  - "
    if text.startswith(head):
        start = 0
    else:
        found = text.find("\n" + head)
        if found < 0:
            return None
        start = found + 1
    start += len(key) + 2  # the first item's "  - "
    end = _TOP_LINE_RE.search(text, start)
    section = text[start : end.start() if end is not None else len(text.rstrip("\n"))]
    # Inside an item every line is indented further (literal lines too), so "\n  - " only
    # starts the next item.
    return ["  - " + item for item in section[4:].split("\n  - ")]


def emit(data: Mapping[str, Any], written: Mapping[str, Sequence[str | None]] | None = None) -> str:
    """Block-style YAML for ``data``; see :func:`securecase.storage.yamlio.dump`.

    ``written`` gives, for a top-level key whose value is a list, the text this function
    wrote earlier for equal items (from :func:`sequence_items`), aligned with the list; an
    item with None is written afresh. The result is the same either way.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"the top of a YAML document must be a mapping, not {type(data).__name__}")
    if not data:
        return "{}\n"
    out: list[str] = []
    append = out.append
    keys: dict[str, str] = {}
    values: dict[str, str] = {}

    def key_token(key: object) -> str:
        if not isinstance(key, str):
            raise TypeError(f"mapping keys must be str, not {type(key).__name__}: {key!r}")
        token = scalar_token(str.__str__(key), key=True)
        if len(token) > MAX_SIMPLE_KEY // 4 and len(token.encode("utf-8")) > MAX_SIMPLE_KEY:
            token = "? " + token
        keys[key] = token
        return token

    def emit_literal(head: str, token: str, child: str) -> None:
        header, _, body = token.partition("\n")
        append(f"{head} {header}")
        out.extend(child + line if line else "" for line in body.split("\n"))

    def emit_other(head: str, value: object, child: str) -> None:
        # Everything but the common case of a single-line exact str.
        if isinstance(value, str):
            token = scalar_token(str.__str__(value))
            if "\n" in token:
                emit_literal(head, token, child)
            else:
                append(f"{head} {token}")
        elif value is None:
            append(f"{head} null")
        elif value is True:
            append(f"{head} true")
        elif value is False:
            append(f"{head} false")
        elif isinstance(value, int):
            append(f"{head} {int.__repr__(value)}")
        elif isinstance(value, float):
            append(f"{head} {float_token(value)}")
        elif isinstance(value, dict):
            if value:
                append(head)
                emit_map(value, child, child)
            else:
                append(f"{head} {{}}")
        elif isinstance(value, list):
            if value:
                append(head)
                emit_seq(value, child, child)
            else:
                append(f"{head} []")
        else:
            raise TypeError(f"cannot write {type(value).__name__} to YAML: {value!r}")

    def emit_map(
        mapping: Mapping[Any, Any],
        first: str,
        indent: str,
        known_items: Mapping[str, Sequence[str | None]] = {},  # noqa: B006 (never mutated)
    ) -> None:
        # ``first`` starts the first key's line ("  - " inside a sequence item), ``indent`` the
        # others; ``child`` is where nested blocks and literal lines go.
        prefix = first
        child = indent + "  "
        for key, value in mapping.items():
            token = keys.get(key) if type(key) is str else None
            if token is None:
                token = key_token(key)
            if token[0] == "?":
                append(prefix + token)
                head = indent + ":"
            else:
                head = f"{prefix}{token}:"
            prefix = indent
            known = known_items.get(key) if known_items else None
            if known is not None and type(value) is list and value:
                if len(known) != len(value):
                    raise ValueError(f"{len(known)} known items for {len(value)} in {key!r}")
                append(head)
                emit_seq(value, child, child, known)
            elif type(value) is str:
                text = values.get(value)
                if text is None:
                    text = values[value] = scalar_token(value)
                if "\n" in text:
                    emit_literal(head, text, child)
                else:
                    append(f"{head} {text}")
            else:
                emit_other(head, value, child)

    def emit_seq(
        items: list[Any], first: str, indent: str, known: Sequence[str | None] = ()
    ) -> None:
        prefix = first + "- "
        item_prefix = indent + "- "
        child = indent + "  "
        for index, value in enumerate(items):
            text = known[index] if known else None
            if text is not None:
                append(text)
            elif type(value) is str:
                text = values.get(value)
                if text is None:
                    text = values[value] = scalar_token(value)
                if "\n" in text:
                    emit_literal(prefix[:-1], text, child)
                else:
                    append(prefix + text)
            elif isinstance(value, dict) and value:
                emit_map(value, prefix, child)
            elif isinstance(value, list) and value:
                emit_seq(value, prefix, child)
            else:
                emit_other(prefix[:-1], value, child)
            prefix = item_prefix

    emit_map(data, "", "", written or {})
    append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Loader


def _unescape_match(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 1:
        return _UNESCAPES[code]
    char = chr(int(code[1:], 16))
    if "\ud800" <= char <= "\udfff":
        raise _Reject  # libyaml refuses surrogate escapes, the pure-Python loader accepts them
    return char


def _unquote(token: str) -> str:
    """The value of a double-quoted token; raw characters must be safe, escapes the emitter's."""
    if _QUOTED_RE.fullmatch(token) is None:
        raise _Reject
    body = token[1:-1]
    if "\\" not in body:
        return body
    return _UNESCAPE_RE.sub(_unescape_match, body)


def _scalar(token: str) -> Any:
    """The value of a single-line scalar token the emitter could have written."""
    first = token[:1]
    if first == '"':
        return _unquote(token)
    if token == "null":
        return None
    if token == "true":
        return True
    if token == "false":
        return False
    if first and first in "-0123456789":
        if _INT_RE.fullmatch(token) is not None:
            return int(token)
        if _FLOAT_RE.fullmatch(token) is not None:
            return float(token)
        raise _Reject
    if _PLAIN_RE.fullmatch(token) is None or token.lower() in _RESERVED:
        raise _Reject
    return token


def _key(token: str) -> str:
    if len(token) > MAX_SIMPLE_KEY // 4 and len(token.encode("utf-8")) > MAX_SIMPLE_KEY:
        raise _Reject
    if token[:1] == '"':
        return _unquote(token)
    if _PLAIN_RE.fullmatch(token) is None or token.lower() in _RESERVED:
        raise _Reject
    return token


def _entry(entry: str, keys: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """Split a line after its indentation and dashes: (key, value token, item token)."""
    found = _ENTRY_RE.fullmatch(entry)
    if found is None:
        raise _Reject
    key_token, value_token, item_token = found.groups()
    if key_token is None:
        return None, None, item_token
    key = keys.get(key_token)
    if key is None:
        key = keys[key_token] = _key(key_token)
    return key, value_token, None


def _literal_block(lines: list[str], index: int, column: int, keep: bool) -> tuple[str, int]:
    """Read a literal block whose content starts at ``column``; the value and the next index."""
    pad = " " * column
    body: list[str] = []
    started = False
    count = len(lines)
    while index < count:
        line = lines[index]
        if line:
            if not line.startswith(pad):
                break
            if line[-1] == " " or (not started and line[column] == " "):
                raise _Reject
            started = True
            body.append(line[column:])
        else:
            body.append("")
        index += 1
    if not started or not body[-1]:
        raise _Reject
    text = "\n".join(body)
    if _UNSAFE_RE.search(text) is not None:
        raise _Reject
    return (text + "\n" if keep else text), index


def fast_load(text: str) -> Any:
    """Parse ``text`` if it is in the emitter's subset, else return :data:`REJECT`.

    ``text`` must already be decoded and stripped of a leading byte order mark.
    """
    if not text.endswith("\n"):
        return REJECT
    if text == "{}\n":
        return {}
    lines = text.split("\n")
    lines.pop()
    # The result is a tree (no cycles): pausing the cycle collector saves it from scanning the
    # growing heap over and over while tens of thousands of containers are created.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse(lines)
    except _Reject:
        return REJECT
    finally:
        if collecting:
            gc.enable()


def _parse(lines: list[str]) -> dict[str, Any]:
    # Only spaces, "- ", ": ", the structural tokens and validated scalar tokens are accepted, so
    # a character the emitter would have escaped can only hide in a token, and every token is
    # checked once (values and keys are cached by their exact text).
    root: dict[str, Any] = {}
    # Open collections, innermost last, with the column their entries start at.
    columns: list[int] = [0]
    stack: list[Any] = [root]
    top_column = 0
    top: Any = root
    # A "key:" line with nothing after it: the mapping and key waiting for a nested block.
    pending: dict[str, Any] | None = None
    pending_key = ""
    pending_column = -1
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}
    miss = REJECT
    value: Any
    key: str | None
    value_token: str | None
    count = len(lines)
    index = 0
    while index < count:
        line = lines[index]
        index += 1
        entry = line.lstrip(" ")
        column = len(line) - len(entry)
        dashes = 0
        if entry[:1] == "-":
            while entry.startswith("- ", dashes):
                dashes += 2
            if not dashes:
                raise _Reject
            entry = entry[dashes:]
        # Split "key: value", "key:" or an item; the regex only for a key not seen yet.
        key_token, sep, value_token = entry.partition(": ")
        item_token: str | None = None
        if sep:
            key = keys.get(key_token)
            if key is None:
                key, value_token, item_token = _entry(entry, keys)
        elif entry[-1:] == ":":
            value_token = None
            key = keys.get(entry[:-1])
            if key is None:
                key, value_token, item_token = _entry(entry, keys)
        elif entry:
            key = None
            item_token = entry
        else:
            raise _Reject
        if pending is not None:
            if column != pending_column:
                raise _Reject
            if len(stack) > MAX_DEPTH:
                raise _Reject  # PyYAML's recursive composer gives up somewhere deeper
            top = [] if dashes else {}
            pending[pending_key] = top
            columns.append(column)
            stack.append(top)
            top_column = column
            pending = None
        elif column != top_column:
            if column > top_column:
                raise _Reject
            while columns[-1] > column:
                columns.pop()
                stack.pop()
            top_column = columns[-1]
            top = stack[-1]
            if top_column != column:
                raise _Reject
        if dashes:
            if type(top) is not list:
                raise _Reject
            seq = top
            if len(stack) + dashes > MAX_DEPTH:
                raise _Reject
            for _ in range(dashes // 2 - 1):
                column += 2
                inner: list[Any] = []
                seq.append(inner)
                columns.append(column)
                stack.append(inner)
                seq = inner
            column += 2  # where the item's own content starts
            if key is None:
                assert item_token is not None
                if item_token == "|" or item_token == "|-":
                    value, index = _literal_block(lines, index, column, item_token == "|")
                elif item_token == "{}":
                    value = {}
                elif item_token == "[]":
                    value = []
                else:
                    value = values.get(item_token, miss)
                    if value is miss:
                        value = values[item_token] = _scalar(item_token)
                seq.append(value)
                top_column = columns[-1]
                top = stack[-1]
                continue
            mapping: dict[str, Any] = {}
            seq.append(mapping)
            columns.append(column)
            stack.append(mapping)
            top_column = column
            top = mapping
        elif key is None or type(top) is not dict:
            raise _Reject
        else:
            mapping = top
        if key in mapping:
            raise _Reject  # duplicate key: let the fallback report it
        if value_token is None:
            mapping[key] = None
            pending = mapping
            pending_key = key
            pending_column = column + 2
            continue
        value = values.get(value_token, miss)
        if value is miss:
            if value_token == "|" or value_token == "|-":
                value, index = _literal_block(lines, index, column + 2, value_token == "|")
            elif value_token == "{}":
                value = {}
            elif value_token == "[]":
                value = []
            else:
                value = values[value_token] = _scalar(value_token)
        mapping[key] = value
    if pending is not None:
        raise _Reject
    return root
