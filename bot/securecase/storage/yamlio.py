"""YAML in and out: a deterministic emitter, a fast loader for its output, PyYAML for the rest.

Case files hold thousands of findings and are read and rewritten on every CI run, which PyYAML
alone is too slow for. :func:`dump` writes plain data in one fixed block style;
:func:`load` parses that style with a line-based loader (:mod:`securecase.storage.yamlfast`) and hands
anything else (a file a human edited) to :class:`FallbackLoader`, PyYAML's safe loader (libyaml
when available) without timestamps and with duplicate keys refused. Both give the same result
for any text the fast loader accepts. Every problem is a :class:`YamlSyntaxError` reading
``path:line:col: what is wrong``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from securecase.errors import InputError
from securecase.storage import yamlfast

# and FallbackLoader, imported lazily
__all__ = ["YamlSyntaxError", "dump", "load", "load_document", "locate"]


class YamlSyntaxError(InputError):
    """A YAML text that cannot be read; the message is ``path:line:col: what is wrong``."""


def dump(data: Mapping[str, Any], written: Mapping[str, Sequence[str | None]] | None = None) -> str:
    """Deterministic block-style YAML for plain data; the same data always gives the same text.

    ``data`` holds dicts with str keys (written in insertion order), lists, str, int, finite
    float, bool and None; anything else raises TypeError, NaN and infinities ValueError, and so
    does a str holding a lone surrogate (libyaml cannot read one back). Strings are plain only
    when unambiguous in YAML 1.1 and 1.2, literal blocks (``|``/``|-``) when multi-line and
    printable, double-quoted otherwise. The text ends with exactly one newline.

    ``written`` may give, per top-level list, the text an earlier dump wrote for items equal
    to these (see :func:`yamlfast.sequence_items`); it only saves time.
    """
    return yamlfast.emit(data, written)


def load(text: str | bytes, *, path: str) -> Any:
    """Parse one YAML document; ``path`` names the file in error messages.

    Bytes must be UTF-8 (a byte order mark is allowed). Text written by :func:`dump` takes the
    fast path; anything else goes through :class:`FallbackLoader`. An empty document is None.
    Raises YamlSyntaxError (``path:line:col: problem``) on any error, including several
    documents in one file and duplicate keys.
    """
    return load_document(text, path=path)[0]


def load_document(text: str | bytes, *, path: str) -> tuple[Any, bool]:
    """:func:`load`, and whether securecase's own loader read it (False: PyYAML did)."""
    source = decode(text, path)
    result = yamlfast.fast_load(source)
    if result is not yamlfast.REJECT:
        return result, True
    from securecase.storage.yamlfallback import fallback_load

    return fallback_load(source, path), False


def _fast_load(text: str | bytes) -> Any:
    """The fast path alone (for tests): the document, or ``yamlfast.REJECT``."""
    return yamlfast.fast_load(decode(text, "<text>"))


def locate(text: str | bytes, json_path: Sequence[str | int]) -> int | None:
    """1-based line of the node at ``json_path`` (keys as str, indices as int) in ``text``.

    A mapping entry is located at its key. When the path leads outside the document, the line
    of the deepest node that exists; None when the text does not parse as YAML.
    """
    from securecase.storage.yamlfallback import locate as locate_node

    return locate_node(text, json_path)


def __getattr__(name: str) -> Any:
    # FallbackLoader lives with PyYAML in yamlfallback; importing it here would load PyYAML
    # at every start-up.
    if name == "FallbackLoader":
        from securecase.storage.yamlfallback import FallbackLoader

        return FallbackLoader
    raise AttributeError(name)


def decode(text: str | bytes, path: str) -> str:
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
