"""A JSON Schema (draft 2020-12) yes/no check compiled to Python closures, for our own schemas.

Every ingest checks the case it reads and the case it writes. A general validator costs more
to import and set up than those checks take, so the keywords securecase's schemas use are
compiled here into nested closures, once per process. A schema using any other keyword is
refused when compiled (so a schema change cannot silently weaken a check), and the tests hold
this check to the same answers as the reference validator (``jsonschema``), which also
produces the messages when a document fails.

Semantics follow the specification: ``integer`` includes floats with no fraction, booleans
are not numbers, ``enum``/``const`` compare as JSON values (``1 == 1.0``, ``true != 1``), and
``pattern`` is an unanchored search where ``$`` only matches at the very end of the string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sized
from typing import Any

Check = Callable[[Any], bool]

#: Keywords that only annotate: they never change whether a document is valid.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default"})
_APPLIED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "minProperties",
        "items",
        "minItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "pattern",
        "oneOf",
        "$ref",
        "$defs",
    }
)


class UnsupportedSchema(ValueError):
    """The schema uses something this check does not implement."""


def compile_schema(schema: Mapping[str, Any] | bool) -> Check:
    """A function telling whether a JSON document is valid against ``schema``.

    ``$ref`` may point to ``#/$defs/NAME`` of the root schema only. Raises UnsupportedSchema
    for keywords or references outside that subset.
    """
    if isinstance(schema, bool):
        return _compile(schema, lambda ref: _never, "#")
    defs: dict[str, Check] = {}
    raw_defs = schema.get("$defs", {})
    compiling: set[str] = set()

    def resolve(ref: str) -> Check:
        prefix = "#/$defs/"
        name = ref[len(prefix) :]
        if not ref.startswith(prefix) or name not in raw_defs or "/" in name or "~" in name:
            raise UnsupportedSchema(f"$ref {ref!r}: only #/$defs/NAME of the root is supported")
        if name in defs:
            return defs[name]
        if name in compiling:  # a recursive definition: look it up when used

            def deferred(instance: Any) -> bool:
                return defs[name](instance)

            return deferred
        compiling.add(name)
        defs[name] = _compile(raw_defs[name], resolve, ref)
        return defs[name]

    for name in raw_defs:
        resolve(f"#/$defs/{name}")
    return _compile(schema, resolve, "#")


def _compile(schema: Any, resolve: Callable[[str], Check], where: str) -> Check:
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        raise UnsupportedSchema(f"{where}: a schema must be an object or a boolean")
    unknown = set(schema) - _APPLIED - _ANNOTATIONS
    if unknown:
        raise UnsupportedSchema(f"{where}: unsupported keyword(s) {sorted(unknown)}")
    checks: list[Check] = []
    structured = bool({"properties", "required", "additionalProperties"} & set(schema))
    # An object schema checks the type itself (one call per object instead of two).
    only_objects = structured and schema.get("type") == "object"
    if "type" in schema and not only_objects:
        checks.append(_type_check(schema["type"], where))
    if "enum" in schema:
        checks.append(_one_of_values(list(schema["enum"])))
    if "const" in schema:
        checks.append(_one_of_values([schema["const"]]))
    if "$ref" in schema:
        checks.append(resolve(schema["$ref"]))
    if "oneOf" in schema:
        options = [
            _compile(sub, resolve, f"{where}/oneOf/{n}") for n, sub in enumerate(schema["oneOf"])
        ]
        checks.append(lambda x: sum(1 for option in options if option(x)) == 1)
    if structured:
        checks.append(_object_check(schema, resolve, where, only_objects=only_objects))
    if "propertyNames" in schema:
        names = _compile(schema["propertyNames"], resolve, f"{where}/propertyNames")
        checks.append(lambda x: type(x) is not dict or all(names(key) for key in x))
    if "items" in schema:
        item = _compile(schema["items"], resolve, f"{where}/items")
        checks.append(lambda x: type(x) is not list or all(item(value) for value in x))
    for keyword, (kind, at_least) in _SIZES.items():
        if keyword in schema:
            checks.append(_size_check(kind, schema[keyword], at_least=at_least))
    if "minimum" in schema:
        low = schema["minimum"]
        checks.append(lambda x: type(x) not in _NUMBERS or not x < low)  # NaN: as jsonschema
    if "maximum" in schema:
        high = schema["maximum"]
        checks.append(lambda x: type(x) not in _NUMBERS or not x > high)
    if "pattern" in schema:
        search = re.compile(ecma_pattern(schema["pattern"], where)).search
        checks.append(lambda x: type(x) is not str or search(x) is not None)
    return _all_of(checks)


#: Size keywords: the type they constrain (its ``len``) and whether they set a lower bound.
_SIZES: dict[str, tuple[type[Sized], bool]] = {
    "minProperties": (dict, True),
    "minItems": (list, True),
    "minLength": (str, True),
    "maxLength": (str, False),
}


def _size_check(kind: type[Sized], bound: int, *, at_least: bool) -> Check:
    if at_least:
        return lambda x: type(x) is not kind or len(x) >= bound
    return lambda x: type(x) is not kind or len(x) <= bound


def _always(instance: Any) -> bool:
    return True


def _never(instance: Any) -> bool:
    return False


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    return lambda x: all(check(x) for check in checks)


_NUMBERS = (int, float)


def _is_integer(x: Any) -> bool:
    return type(x) is int or (type(x) is float and x.is_integer())


#: JSON types that are exactly one Python type in a parsed document.
_EXACT: dict[str, type] = {"string": str, "boolean": bool, "object": dict, "array": list}

_TYPES: dict[str, Check] = {
    "string": lambda x: type(x) is str,
    "integer": _is_integer,
    "number": lambda x: type(x) in _NUMBERS,
    "boolean": lambda x: type(x) is bool,
    "null": lambda x: x is None,
    "object": lambda x: type(x) is dict,
    "array": lambda x: type(x) is list,
}


def _type_check(declared: Any, where: str) -> Check:
    names = [declared] if isinstance(declared, str) else list(declared)
    if not names or any(name not in _TYPES for name in names):
        raise UnsupportedSchema(f"{where}/type: unknown type in {declared!r}")
    if len(names) == 1:
        if names[0] in _EXACT:
            wanted = _EXACT[names[0]]
            return lambda x: type(x) is wanted
        return _TYPES[names[0]]
    if names == ["string", "null"]:
        return lambda x: x is None or type(x) is str
    checks = [_TYPES[name] for name in names]
    return lambda x: any(check(x) for check in checks)


def _one_of_values(values: list[Any]) -> Check:
    if all(type(v) is str for v in values):
        allowed = frozenset(values)
        return lambda x: type(x) is str and x in allowed
    return lambda x: any(_json_equal(x, v) for v in values)


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: numbers by value, booleans never equal to numbers."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _object_check(
    schema: dict[str, Any], resolve: Callable[[str], Check], where: str, *, only_objects: bool
) -> Check:
    exact: dict[str, type] = {}  # properties that only need a value of one Python type
    properties: dict[str, Check] = {}
    for name, sub in schema.get("properties", {}).items():
        plain = isinstance(sub, dict) and set(sub) - _ANNOTATIONS == {"type"}
        if plain and isinstance(sub["type"], str) and sub["type"] in _EXACT:
            exact[name] = _EXACT[sub["type"]]
        else:
            properties[name] = _compile(sub, resolve, f"{where}/properties/{name}")
    required = frozenset(schema.get("required", ()))
    extra = schema.get("additionalProperties", True)
    closed = extra is False
    others = None if extra is True or closed else _compile(extra, resolve, f"{where}/additional")

    def check(x: Any) -> bool:
        if type(x) is not dict:
            return not only_objects  # other values are only constrained by "type"
        if not required <= x.keys():
            return False
        for key, value in x.items():
            wanted = exact.get(key)
            if wanted is not None:
                if type(value) is not wanted:
                    return False
                continue
            known = properties.get(key)
            if known is not None:
                if not known(value):
                    return False
            elif closed or (others is not None and not others(value)):
                return False
        return True

    return check


def ecma_pattern(pattern: str, where: str) -> str:
    """``pattern`` for Python's ``re``, read as ECMA-262 reads it.

    Only the syntax both read alike is accepted: literals, classes, groups, alternation,
    quantifiers and the anchors ``^`` and ``$``; no escapes, no ``.`` (ECMA's excludes more
    line terminators) and no ``(?`` constructs. ECMA's ``$`` (no multiline flag) matches only
    at the end, Python's also before a final newline: outside a class it becomes ``\\Z``.
    """
    out = []
    in_class = False
    for char in pattern:
        if char == "\\" or (char == "." and not in_class):
            raise UnsupportedSchema(f"{where}/pattern: {pattern!r}: escapes and '.' unsupported")
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        out.append("\\Z" if char == "$" and not in_class else char)
    if "(?" in pattern or "[]" in pattern or "[^]" in pattern:
        raise UnsupportedSchema(f"{where}/pattern: {pattern!r}: '(?', '[]' and '[^]' unsupported")
    return "".join(out)
