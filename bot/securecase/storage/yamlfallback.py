"""PyYAML's side of :mod:`securecase.storage.yamlio`, imported only when a text needs it.

Kept apart so that the common path (writing a case, reading one the bot wrote) never pays for
importing PyYAML.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from securecase.storage.yamlio import YamlSyntaxError, decode

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# What PyYAML's reader refuses anywhere in a stream.
_NON_PRINTABLE = re.compile("[^\t\n\r -~\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
    source = decode(text, "<text>")
    loader = FallbackLoader(source)
    try:
        node: Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


def fallback_load(text: str, path: str) -> Any:
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        offset = bad.start()
        line = text.count("\n", 0, offset) + 1
        column = offset - text.rfind("\n", 0, offset)
        raise YamlSyntaxError(
            f"{path}:{line}:{column}: character U+{ord(bad.group()):04X} is not allowed in YAML"
        )
    _refuse_anchors(text, path)
    loader = FallbackLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(describe(path, exc)) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"{path}:1:1: {exc}") from exc
    except RecursionError as exc:
        raise YamlSyntaxError(f"{path}:1:1: the document is nested too deeply") from exc
    finally:
        loader.dispose()


def _refuse_anchors(text: str, path: str) -> None:
    """Refuse anchors and aliases before anything is built: a policy or case file never needs
    them, and a few hundred bytes of nested aliases expand to gigabytes (an alias bomb)."""
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                where = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "1:1"
                what = "an alias (*)" if isinstance(event, yaml.AliasEvent) else "an anchor (&)"
                raise YamlSyntaxError(
                    f"{path}:{where}: {what}: YAML anchors and "
                    "aliases are not allowed in securecase files",
                    hint="write the repeated values out",
                )
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(describe(path, exc)) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"{path}:1:1: {exc}") from exc


def describe(path: str, exc: yaml.MarkedYAMLError) -> str:
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
