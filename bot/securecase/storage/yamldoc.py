"""YAML through PyYAML: deterministic dump, strict load (libyaml's parser when present).

:func:`dump` writes keys in the order given, block style, without folding long lines, so the
same data always gives the same text. :func:`load` refuses what a case or policy file never
needs and a hostile file could abuse: anchors and aliases (an alias bomb is refused before
anything is built), duplicate keys, keys that are not strings, several documents. Timestamps
stay strings. :func:`load_located` also returns the composed node tree, whose marks give the
line of a JSON path (:func:`line_of`) for error messages.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from securecase.errors import InputError

_LoaderBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: libyaml wants an int; this is "never fold" for both emitters.
_NO_FOLDING = 2**31 - 1
#: Longest message text an error carries (a hostile file may hold megabyte-long scalars).
MAX_MESSAGE = 400


class YamlError(InputError):
    """A YAML text securecase will not read; the message is ``path:line:col: problem``."""


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 14] + " ...(cut)"


class _Dumper(yaml.SafeDumper):
    # PyYAML's own emitter, not libyaml's: the two choose different styles for some text
    # (characters beyond U+FFFF, empty keys), and a runner with libyaml and one without must
    # write the same bytes for the same case. case.yaml is small; the speed is not needed.

    def ignore_aliases(self, data: Any) -> bool:
        # Equal values are written out each time: the file must read without anchors.
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text (a human's notes) reads best as a literal block; the emitter falls back
    # to a quoted style by itself when a block cannot hold the value exactly.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(data: Mapping[str, Any]) -> str:
    """Block-style YAML for plain data, keys in insertion order; same data, same text.

    ``data`` holds dicts with str keys, lists, str, int, float, bool and None.
    """
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=_NO_FOLDING,
    )
    return text


class _Loader(_LoaderBase):  # type: ignore[misc,valid-type]
    """The safe loader with timestamps read as strings and duplicate or non-string keys refused."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _LoaderBase.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Hashable, Any]:
        # Built here in one pass over the entries (PyYAML's own would first look for merge
        # keys, which are refused, and then construct every key a second time).
        if not isinstance(node, MappingNode):
            return super().construct_mapping(node, deep=deep)
        mapping: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not allowed", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"mapping keys must be strings, found {type(key).__name__} "
                    f"{clip(repr(key), 60)} (quote it)",
                    key_node.start_mark,
                )
            if key in mapping:
                first = next((k for k, _ in node.value if k.value == key_node.value), key_node)
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {clip(repr(key), 80)} "
                    f"(first at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


@dataclass(frozen=True, slots=True)
class Located:
    """A parsed document and the node tree it was built from (for :func:`line_of`)."""

    data: Any
    node: Node | None


def decode(text: str | bytes, path: str) -> str:
    """``text`` as str without a leading byte order mark; bytes must be UTF-8."""
    if isinstance(text, bytes):
        data = text
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise YamlError(
                f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                f"{exc.start})"
            ) from exc
    return text[1:] if text.startswith("\ufeff") else text


def load(text: str | bytes, *, path: str) -> Any:
    """Parse one YAML document; ``path`` names the file in errors. Empty text gives None.

    Raises YamlError (``path:line:col: problem``) for bad syntax, several documents, anchors
    or aliases, duplicate keys and keys that are not strings.
    """
    return load_located(text, path=path).data


def load_located(text: str | bytes, *, path: str) -> Located:
    """:func:`load`, keeping the node tree for locating JSON paths."""
    source = decode(text, path)
    try:
        if "&" in source or "*" in source:
            # An anchor is written with "&" and an alias with "*": text holding neither
            # cannot have one, and the event pass below is skipped (most files).
            _refuse_anchors(source)
        loader = _Loader(source)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise YamlError(_marked_message(exc, path)) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"{path}: {clip(str(exc))}") from exc
    return Located(data, node)


def _refuse_anchors(source: str) -> None:
    # Events come before any node is built, so an alias bomb stops at its first anchor.
    for event in yaml.parse(source, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases (&name, *name) are not allowed; write values out",
                problem_mark=event.start_mark,  # type: ignore[arg-type]  # libyaml's Mark
            )


def _marked_message(exc: yaml.MarkedYAMLError, path: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
    what = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    return f"{where}: {clip(what)}"


def line_of(node: Node | None, json_path: Sequence[str | int]) -> int | None:
    """1-based line of the node at ``json_path`` (keys as str, indices as int).

    A mapping entry is found at its key. When the path leads outside the document, the line
    of the deepest node that exists; None for an empty document.
    """
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in json_path:
        if isinstance(node, MappingNode):
            entry = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, ScalarNode) and k.value == str(part)
                ),
                None,
            )
            if entry is None:
                return line
            line = entry[0].start_mark.line + 1
            node = entry[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
