"""YAML in and out: a deterministic emitter, a fast loader for its output, PyYAML for the rest.

Case files hold thousands of findings and are read and rewritten on every CI run, which PyYAML
alone is too slow for. :func:`dump` writes plain data in one fixed block style;
:func:`load` parses that style with a line-based loader (:mod:`securecase.yamlfast`) and hands
anything else (a file a human edited) to :class:`FallbackLoader`, PyYAML's safe loader (libyaml
when available) without timestamps and with duplicate keys refused. Both give the same result
for any text the fast loader accepts. Every problem is a :class:`YamlSyntaxError` reading
``path:line:col: what is wrong``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from securecase import yamlfast
from securecase.errors import InputError

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

__all__ = ["FallbackLoader", "YamlSyntaxError", "dump", "load", "locate"]

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# What PyYAML's reader refuses anywhere in a stream.
_NON_PRINTABLE = re.compile("[^\t\n\r -~\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class YamlSyntaxError(InputError):
    """A YAML text that cannot be read; the message is ``path:line:col: what is wrong``."""


class FallbackLoader(_BaseLoader):
    """PyYAML's safe loader for hand-edited files: no timestamps, no duplicate keys.

    A plain ``2027-01-31`` stays a string; the second of two equal keys in one mapping is an
    error at that key's line. PyYAML's own loader classes are left untouched.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, refusing a key that appears twice (merge keys ``<<`` aside)."""
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: PyYAML reports it below
                if first is not None:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r} (first defined on line {first})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        """An int, with Python's errors (``0x_``, too many digits) reported at the node."""
        try:
            return super().construct_yaml_int(node)
        except ValueError as exc:
            raise ConstructorError(
                None, None, f"cannot read {node.value!r} as an integer: {exc}", node.start_mark
            ) from exc


FallbackLoader.add_constructor("tag:yaml.org,2002:int", FallbackLoader.construct_yaml_int)


def dump(data: Mapping[str, Any]) -> str:
    """Deterministic block-style YAML for plain data; the same data always gives the same text.

    ``data`` holds dicts with str keys (written in insertion order), lists, str, int, finite
    float, bool and None; anything else raises TypeError, NaN and infinities ValueError, and so
    does a str holding a lone surrogate (libyaml cannot read one back). Strings are plain only
    when unambiguous in YAML 1.1 and 1.2, literal blocks (``|``/``|-``) when multi-line and
    printable, double-quoted otherwise. The text ends with exactly one newline.
    """
    return yamlfast.emit(data)


def load(text: str | bytes, *, path: str) -> Any:
    """Parse one YAML document; ``path`` names the file in error messages.

    Bytes must be UTF-8 (a byte order mark is allowed). Text written by :func:`dump` takes the
    fast path; anything else goes through :class:`FallbackLoader`. An empty document is None.
    Raises YamlSyntaxError (``path:line:col: problem``) on any error, including several
    documents in one file and duplicate keys.
    """
    source = _decode(text, path)
    result = yamlfast.fast_load(source)
    if result is not yamlfast.REJECT:
        return result
    return _fallback_load(source, path)


def _fast_load(text: str | bytes) -> Any:
    """The fast path alone (for tests): the document, or ``yamlfast.REJECT``."""
    return yamlfast.fast_load(_decode(text, "<text>"))


def locate(text: str | bytes, json_path: Sequence[str | int]) -> int | None:
    """1-based line of the node at ``json_path`` (keys as str, indices as int) in ``text``.

    A mapping entry is located at its key. When the path leads outside the document, the line
    of the deepest node that exists; None when the text does not parse as YAML.
    """
    try:
        node = _compose(text)
    except (YamlSyntaxError, yaml.YAMLError, RecursionError, ValueError):
        return None  # ValueError: a lone surrogate libyaml cannot encode
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in json_path:
        if isinstance(node, MappingNode):
            wanted = str(part)
            match = None
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == wanted:
                    match = key_node, value_node  # the last one wins, as in construction
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


@functools.lru_cache(maxsize=1)
def _compose(text: str | bytes) -> Node | None:
    # Cached: schema errors ask for one location each, usually in the same text.
    source = _decode(text, "<text>")
    loader = FallbackLoader(source)
    try:
        node: Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def _decode(text: str | bytes, path: str) -> str:
    """``text`` as str without a leading byte order mark; bytes must be UTF-8."""
    if isinstance(text, bytes):
        data = text
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            head = data[: exc.start]
            line = head.count(b"\n") + 1
            column = len(head[head.rfind(b"\n") + 1 :].decode("utf-8")) + 1
            raise YamlSyntaxError(
                f"{path}:{line}:{column}: not valid UTF-8: byte 0x{data[exc.start]:02x}"
                f" at byte offset {exc.start}"
            ) from exc
    return text[1:] if text.startswith("\ufeff") else text


def _fallback_load(text: str, path: str) -> Any:
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        offset = bad.start()
        line = text.count("\n", 0, offset) + 1
        column = offset - text.rfind("\n", 0, offset)
        raise YamlSyntaxError(
            f"{path}:{line}:{column}: character U+{ord(bad.group()):04X} is not allowed in YAML"
        )
    loader = FallbackLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(_describe(path, exc)) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"{path}:1:1: {exc}") from exc
    except RecursionError as exc:
        raise YamlSyntaxError(f"{path}:1:1: the document is nested too deeply") from exc
    finally:
        loader.dispose()


def _describe(path: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context:
        if exc.problem.startswith("but "):  # "expected a single document..., but found another"
            problem = f"{exc.context}, {exc.problem}"
        else:
            problem = f"{problem} ({exc.context})"
    if mark is None:
        return f"{path}:1:1: {problem}"
    return f"{path}:{mark.line + 1}:{mark.column + 1}: {problem}"
