"""yamlio: deterministic emitter, fast loader == PyYAML fallback, errors with path:line:col."""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securecase.errors import InputError
from securecase.storage import yamlfast, yamlio
from securecase.storage.yamlio import FallbackLoader, YamlSyntaxError, dump, load, locate

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fallback(text: str | bytes) -> Any:
    """What the fallback loader alone makes of ``text`` (raises on invalid YAML)."""
    return yaml.load(text, Loader=FallbackLoader)


def fast(text: str | bytes) -> Any:
    """The fast path alone: the document or ``yamlfast.REJECT``."""
    return yamlio._fast_load(text)


def same(a: Any, b: Any) -> bool:
    """Equal including types (1 vs True vs 1.0) and key order."""
    return repr(a) == repr(b)


def assert_fast_agrees(text: str) -> None:
    """If the fast loader accepts ``text``, the fallback gives exactly the same document."""
    result = fast(text)
    if result is yamlfast.REJECT:
        return
    try:
        expected = fallback(text)
    except yaml.YAMLError as exc:  # pragma: no cover - a failure of the property
        pytest.fail(f"fast loader accepted text the fallback refuses ({exc}):\n{text}")
    assert same(result, expected), text


# -- strategies ---------------------------------------------------------------------------------

# fmt: off
TRICKY = [
    "yes", "No", "~", "1e3", "0x1F", "1:20", "2027-01-31", ".inf", " leading", "trailing ",
    "- x", "a: b", "#c", "'q'", '"', "", "null", "NULL", "y", "N", "on", "Off", "TRUE", "0o17",
    "+1", "-1", "007", "1_000", "1.5", "-", "?", ":", "=", "<<", "a #b", "a\tb", "a:", "a::b",
    "a b", "a  b", "\x85", "\u2028", "\u2029", "\ufeff", "\ufffe", "\uffff", "\x7f", "\x00", "\x1b",
    "\U0001f600", "caf\u00e9", "\u00a0", "---", "...", "%YAML", "@x", "`x", "!x", "&x", "*x",
    "https://avd.aquasec.com/nvd/cve-2019-1549", "CVE-2019-1549", "pkg:apk/alpine/x@1.0?a=b",
    "a\n\nb", "a\n", "a\n\n", "\n", "\na", " a\nb", "a\n b", "a \nb", "a\n\nb\n", "#x\n- y\n",
    "a\r\nb", "a\tb\nc", "x" * 1100, '"x"' * 400, "\u00e9" * 600,
]
# fmt: on
LINES = st.sampled_from(["", "a", " b", "c ", "#d", "- e", "  f", "g: h", "\u00e9", "'i'", "..."])
MULTILINE = st.builds(
    lambda lines, end: "\n".join(lines) + end,
    st.lists(LINES, min_size=1, max_size=5),
    st.sampled_from(["", "\n", "\n\n"]),
)
TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(max_codepoint=0x7F), max_size=12),
    st.sampled_from(TRICKY),
    MULTILINE,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=25,
)
DOCS = st.dictionaries(TEXT, TREES, max_size=6)


# -- round trip -----------------------------------------------------------------------------------


@PROPERTY
@given(DOCS)
def test_round_trip_through_both_loaders(doc: dict[str, Any]) -> None:
    text = dump(doc)
    assert same(load(text, path="x.yaml"), doc)
    assert same(fallback(text), doc)
    assert same(load(text.encode("utf-8"), path="x.yaml"), doc)


@PROPERTY
@given(DOCS)
def test_fast_path_is_taken_for_emitter_output(doc: dict[str, Any]) -> None:
    text = dump(doc)
    result = fast(text)
    if re.search(r"^[ -]*\? ", text, re.MULTILINE):
        return  # a key too long for a simple key uses the explicit form: fallback only
    assert result is not yamlfast.REJECT, text
    assert same(result, doc)


@PROPERTY
@given(DOCS)
def test_emitter_output_shape(doc: dict[str, Any]) -> None:
    text = dump(doc)
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert dump(doc) == text
    for line in text.split("\n")[:-1]:
        assert line == line.rstrip(" "), repr(line)
        assert "\t" not in line and "\r" not in line
    assert not text.startswith(("---", "..."))


@PROPERTY
@given(
    DOCS,
    st.sampled_from(["findings", "resolved", "items"]),
    st.lists(TREES, min_size=1, max_size=6),
    st.data(),
)
def test_items_written_earlier_are_copied_exactly(
    doc: dict[str, Any], key: str, items: list[Any], data: st.DataObject
) -> None:
    doc = {**doc, key: items}
    text = dump(doc)
    blocks = yamlfast.sequence_items(text, key)
    assert blocks is not None and len(blocks) == len(items)
    # Any subset of the items may be copied; the rest are written afresh: the same text.
    keep = data.draw(st.lists(st.booleans(), min_size=len(items), max_size=len(items)))
    known = [block if kept else None for block, kept in zip(blocks, keep, strict=True)]
    assert dump(doc, {key: known}) == text
    assert yamlfast.sequence_items(text, "absent") is None


def test_sequence_items_of_a_list_with_literal_blocks_and_nesting() -> None:
    doc = {
        "a": 1,
        "findings": [{"id": "x", "notes": "one\n\n  - not an item\n"}, {"id": "y", "l": [1, [2]]}],
        "z": "end",
    }
    text = dump(doc)
    blocks = yamlfast.sequence_items(text, "findings")
    assert blocks == [
        "  - id: x\n    notes: |\n      one\n\n        - not an item",
        '  - id: "y"\n    l:\n      - 1\n      - - 2',
    ]
    assert yamlfast.sequence_items(dump({"findings": []}), "findings") is None
    with pytest.raises(ValueError, match="plain key"):
        yamlfast.sequence_items(text, "a b: c")
    with pytest.raises(ValueError, match="known items"):
        dump(doc, {"findings": [None]})


def test_tricky_strings_round_trip_as_values_and_keys() -> None:
    doc: dict[str, Any] = {s: s for s in TRICKY}
    doc["list"] = list(TRICKY)
    doc["nested"] = [[s, {s: [s]}] for s in TRICKY]
    text = dump(doc)
    assert same(fallback(text), doc)
    assert same(load(text, path="x"), doc)
    assert same(yaml.load(text, Loader=yaml.SafeLoader), doc)  # pure-Python parser too


def test_numbers_bools_and_nulls() -> None:
    doc = {
        "big": 10**60,
        "neg": -(10**30),
        "zero": 0,
        "bools": [True, False],
        "n": None,
        "floats": [7.5, 10.0, 1e-05, 1e16, -0.0, 5e-324, 1.7976931348623157e308, 0.1],
    }
    text = dump(doc)
    assert "big: 1000000000000000000000000000000000000000000000000000000000000\n" in text
    assert "  - 7.5\n  - 10.0\n  - 1.0e-05\n  - 1.0e+16\n  - -0.0\n" in text
    assert same(fast(text), doc)
    assert same(fallback(text), doc)
    assert same(yaml.load(text, Loader=yaml.SafeLoader), doc)


# -- scalar style ---------------------------------------------------------------------------------


# fmt: off
@pytest.mark.parametrize(
    "value",
    [
        "CVE-2019-1549", "https://avd.aquasec.com/nvd/cve-2019-1549", "pkg:apk/alpine/x",
        "openssl", "a b c", "_x", "/usr/lib", "a::b", "x=1", "v1.2.3+build~1", "me@example.com",
    ],
)
# fmt: on
def test_plain_when_obviously_safe(value: str) -> None:
    assert dump({"k": value}) == f"k: {value}\n"


# fmt: off
@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("yes", '"yes"'), ("No", '"No"'), ("y", '"y"'), ("NULL", '"NULL"'), ("~", '"~"'),
        ("1.5", '"1.5"'), ("2027-01-31", '"2027-01-31"'), ("0x1F", '"0x1F"'), ("", '""'),
        (" x", '" x"'), ("x ", '"x "'), ("a  b", '"a  b"'), ("a: b", '"a: b"'), ("a:", '"a:"'),
        ("a #b", '"a #b"'), ("-x", '"-x"'), ("a?b", '"a?b"'), ("caf\u00e9", '"caf\u00e9"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'), ("a\tb", '"a\\tb"'), ("\x1b[0m", '"\\u001b[0m"'),
        ("\x7f\x85\u2028\u2029\ufeff\ufffe", '"\\u007f\\u0085\\u2028\\u2029\\ufeff\\ufffe"'),
        ("\U0001f600 \u00a0", '"\U0001f600 \u00a0"'), ("\b\f\r", '"\\b\\f\\r"'),
    ],
)
# fmt: on
def test_quoted_otherwise(value: str, written: str) -> None:
    assert dump({"k": value}) == f"k: {written}\n"
    assert dump({value: 1}) == f"{written}: 1\n"


# fmt: off
@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("a\nb", "k: |-\n  a\n  b\n"),
        ("a\nb\n", "k: |\n  a\n  b\n"),
        ("a\n\n  b", "k: |-\n  a\n\n    b\n"),
        ("\na", "k: |-\n\n  a\n"),
        ("a\n\n", 'k: "a\\n\\n"\n'),
        ("\n", 'k: "\\n"\n'),
        (" a\nb", 'k: " a\\nb"\n'),
        ("a \nb", 'k: "a \\nb"\n'),
        ("a\n \nb", 'k: "a\\n \\nb"\n'),
        ("a\tb\nc", 'k: "a\\tb\\nc"\n'),
        ("a\r\nb", 'k: "a\\r\\nb"\n'),
        ("a\u2028b\nc", 'k: "a\\u2028b\\nc"\n'),
    ],
)
# fmt: on
def test_multi_line_strings(value: str, written: str) -> None:
    assert dump({"k": value}) == written
    assert fallback(written) == {"k": value}
    assert fast(written) == {"k": value}


def test_multi_line_keys_are_quoted() -> None:
    assert dump({"a\nb": 1}) == '"a\\nb": 1\n'


def test_long_keys_use_the_explicit_form() -> None:
    key = "k" * 1200
    doc = {"a": [{key: {"x": 1}, "b": [key]}], key: "v"}
    text = dump(doc)
    assert f"\n? {key}\n: v\n" in text
    assert "  - ? " in text
    assert fast(text) is yamlfast.REJECT
    assert same(load(text, path="x"), doc)


def test_layout_of_nested_collections() -> None:
    doc = {
        "m": {"a": 1, "e": {}, "l": []},
        "s": ["x", {"id": 1, "sub": {"k": "v"}, "tags": ["t"]}, ["p", ["q"]], [], {}, None],
        "lit": ["a\nb"],
    }
    assert dump(doc) == (
        "m:\n"
        "  a: 1\n"
        "  e: {}\n"
        "  l: []\n"
        "s:\n"
        "  - x\n"
        "  - id: 1\n"
        "    sub:\n"
        "      k: v\n"
        "    tags:\n"
        "      - t\n"
        "  - - p\n"
        "    - - q\n"
        "  - []\n"
        "  - {}\n"
        "  - null\n"
        "lit:\n"
        "  - |-\n"
        "    a\n"
        "    b\n"
    )
    assert same(fast(dump(doc)), doc)


def test_empty_document() -> None:
    assert dump({}) == "{}\n"
    assert fast("{}\n") == {}
    assert load("", path="x") is None
    assert load("# only a comment\n", path="x") is None


def test_key_order_is_insertion_order_never_sorted() -> None:
    text = dump({"b": 1, "a": {"z": 1, "w": 2}})
    assert text == "b: 1\na:\n  z: 1\n  w: 2\n"
    assert list(load(text, path="x")) == ["b", "a"]


# fmt: off
@pytest.mark.parametrize(
    "bad",
    [{"k": (1, 2)}, {"k": {1, 2}}, {"k": b"x"}, {"k": datetime.date(2020, 1, 1)}, {1: "x"},
     {"k": {None: 1}}, {"k": object()}],
)
# fmt: on
def test_unsupported_types_raise_type_error(bad: dict[Any, Any]) -> None:
    with pytest.raises(TypeError):
        dump(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "a\ud800b", "\udfff"])
def test_unrepresentable_values_raise_value_error(bad: Any) -> None:
    # Lone surrogates: not characters; libyaml refuses even the escaped form.
    with pytest.raises(ValueError):
        dump({"k": bad})


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(TypeError):
        dump([1, 2])  # type: ignore[arg-type]


# -- determinism and golden output --------------------------------------------------------------

GOLDEN_DOC: dict[str, Any] = {
    "schema": "securecase/case/v1",
    "key": "github/acme/shop/pr-42",
    "status": "NEW",
    "reopened": 0,
    "triage": {"assignee": None, "tags": [], "notes": "Looked at it.\n\nNot reachable.\n"},
    "gate": {"mode": "pr_gate", "decision": "block", "gate": True, "rules": ["no-critical"]},
    "findings": [
        {
            "id": "trivy:CVE-2019-1549:openssl",
            "source": "trivy",
            "severity": "MEDIUM",
            "title": "openssl: information disclosure in fork()",
            "package": {
                "name": "openssl",
                "version": "1.1.1c-r0",
                "fixed_version": "1.1.1d-r0",
                "purl": "pkg:apk/alpine/openssl@1.1.1c-r0?distro=3.10.2",
            },
            "location": {"url": "https://avd.aquasec.com/nvd/cve-2019-1549", "start_line": 12},
            "cvss": 5.3,
            "first_seen": {"commit": "abc123", "at": "2026-11-23T08:00:00Z"},
        },
        {"id": "gitleaks:aws:\u00e9t\u00e9 \x1b", "title": "yes", "package": None},
    ],
    "resolved": [],
    "created_at": "2026-11-23T08:00:00Z",
}

GOLDEN_TEXT = """\
schema: securecase/case/v1
key: github/acme/shop/pr-42
status: NEW
reopened: 0
triage:
  assignee: null
  tags: []
  notes: |
    Looked at it.

    Not reachable.
gate:
  mode: pr_gate
  decision: block
  gate: true
  rules:
    - no-critical
findings:
  - id: trivy:CVE-2019-1549:openssl
    source: trivy
    severity: MEDIUM
    title: "openssl: information disclosure in fork()"
    package:
      name: openssl
      version: "1.1.1c-r0"
      fixed_version: "1.1.1d-r0"
      purl: "pkg:apk/alpine/openssl@1.1.1c-r0?distro=3.10.2"
    location:
      url: https://avd.aquasec.com/nvd/cve-2019-1549
      start_line: 12
    cvss: 5.3
    first_seen:
      commit: abc123
      at: "2026-11-23T08:00:00Z"
  - id: "gitleaks:aws:\u00e9t\u00e9 \\u001b"
    title: "yes"
    package: null
resolved: []
created_at: "2026-11-23T08:00:00Z"
"""


def test_golden_output() -> None:
    assert dump(GOLDEN_DOC) == GOLDEN_TEXT
    assert dump(GOLDEN_DOC) == dump(GOLDEN_DOC)
    assert same(fast(GOLDEN_TEXT), GOLDEN_DOC)
    assert same(fallback(GOLDEN_TEXT), GOLDEN_DOC)


def test_same_data_same_bytes_regardless_of_object_identity() -> None:
    copy = yaml.load(GOLDEN_TEXT, Loader=FallbackLoader)
    assert dump(copy).encode("utf-8") == dump(GOLDEN_DOC).encode("utf-8")


# -- fast loader vs fallback ----------------------------------------------------------------------

# fmt: off
MUTATIONS = ["drop", "duplicate", "indent+1", "indent-1", "indent+2", "indent-2", "comment line",
             "trailing comment", "scalar", "tab", "blank line", "swap"]
REPLACEMENTS = ["yes", "'x'", "2021-01-01", "0o17", "0x1F", "~", "Null", "True", "1_000", "+1",
                "1e3", "1.0", ".5", "-.inf", '"\\x41"', '"\\/"', '"\\e"', '"\\ud83d\\ude00"',
                "&a x", "*a", "!!str 1", "[1, 2]", "{a: 1}", "|+", ">-", '"a', "a # b", "- x",
                "x: y", "a:b", "{}", "[]", "|", "", " x", "007", "-0", "1.5e+3", "1.5E+3"]
# fmt: on


def mutate(text: str, kind: str, where: int, replacement: str) -> str:
    lines = text.split("\n")[:-1]
    i = where % len(lines)
    line = lines[i]
    if kind == "drop":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, line)
    elif kind.startswith("indent"):
        delta = int(kind.removeprefix("indent"))
        lines[i] = " " * delta + line if delta > 0 else line[-delta:]
    elif kind == "comment line":
        lines.insert(i, " " * (len(line) - len(line.lstrip())) + "# note")
    elif kind == "trailing comment":
        lines[i] = line + "  # note"
    elif kind == "scalar":
        head, sep, _ = line.partition(": ")
        if sep:
            lines[i] = f"{head}: {replacement}"
        else:
            stripped = line.lstrip(" -")
            lines[i] = line[: len(line) - len(stripped)] + replacement
    elif kind == "tab":
        lines[i] = line.replace(" ", "\t", 1) if " " in line else line + "\t"
    elif kind == "blank line":
        lines.insert(i, "")
    elif kind == "swap" and i + 1 < len(lines):
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return "\n".join(lines) + "\n"


@PROPERTY
@given(
    DOCS.filter(bool),
    st.lists(
        st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 10**6), st.sampled_from(REPLACEMENTS)),
        min_size=1,
        max_size=3,
    ),
)
def test_fast_loader_agrees_with_fallback_on_mutations(
    doc: dict[str, Any], edits: list[tuple[str, int, str]]
) -> None:
    text = dump(doc)
    for kind, where, replacement in edits:
        text = mutate(text, kind, where, replacement)
    assert_fast_agrees(text)
    try:
        expected = fallback(text)
    except yaml.YAMLError:
        with pytest.raises(YamlSyntaxError):
            load(text, path="m.yaml")
    else:
        assert same(load(text, path="m.yaml"), expected)


def test_mutations_of_the_golden_document() -> None:
    accepted = 0
    for kind in MUTATIONS:
        for replacement in REPLACEMENTS if kind == "scalar" else ["x"]:
            for where in range(GOLDEN_TEXT.count("\n")):
                text = mutate(GOLDEN_TEXT, kind, where, replacement)
                assert_fast_agrees(text)
                accepted += fast(text) is not yamlfast.REJECT
    assert accepted > 100  # the property above is not vacuous


# fmt: off
FRAGMENT_KEYS = ["a", "b", '"c"', '"a: b"', "yes", "'d'", "1", "a b", "a:b", '""', "true", "~",
                 "? a", "<<", "-a", "&x a", '"\\u0041"', "a:"]
FRAGMENT_VALUES = ["x", "1", "-2", "0", "-0", "1.5", "1.0e+16", "1.0E+16", "true", "false", "null",
                   "~", "{}", "[]", "|", "|-", "|+", ">", '"q"', '"\\u0041"', '"\\x41"', "'s'",
                   "2021-01-01", "0o17", "a # c", "&a x", "*a", "!!str x", "[1]", "", " x",
                   '"a\\"b"', "a: b", "yes", "x y", "https://h/p", '"\\ud800"', "- x", "12:30"]
# fmt: on
FRAGMENT_LINES = st.builds(
    lambda indent, dashes, key, sep, value: " " * indent + "- " * dashes + key + sep + value,
    st.sampled_from([0, 0, 2, 2, 4, 6, 1, 3]),
    st.sampled_from([0, 0, 0, 1, 2]),
    st.sampled_from(FRAGMENT_KEYS),
    st.sampled_from([": ", ":", ": ", " : ", ": ", ""]),
    st.sampled_from(FRAGMENT_VALUES),
) | st.sampled_from(["", "  text", "    text", "  - item", "---", "...", "# c", "  a\tb"])


@PROPERTY
@given(st.lists(FRAGMENT_LINES, min_size=1, max_size=8), st.sampled_from(["\n", "", "\n\n"]))
def test_fast_loader_agrees_with_fallback_on_fragment_soup(lines: list[str], end: str) -> None:
    assert_fast_agrees("\n".join(lines) + end)


# fmt: off
@pytest.mark.parametrize(
    "text",
    [
        "a: 1\n", "a:\n  b: c\n", "a:\n  - b\n  - c: d\n    e: f\n", "a: |-\n  x\n\n  y\n",
        "a:\n  - - x\n    - w\n  - z\n", 'a: "\\u00e9\\n"\n', "a: {}\nb: []\n",
    ],
)
# fmt: on
def test_fast_path_accepts_emitter_style(text: str) -> None:
    assert fast(text) is not yamlfast.REJECT
    assert same(fast(text), fallback(text))


# fmt: off
@pytest.mark.parametrize(
    "text",
    [
        "a: 1 # c\n", "# c\na: 1\n", "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: [1]\n", "a: {b: 1}\n",
        "a: 'x'\n", 'a: "x\n  y"\n', 'a: "\\x41"\n', 'a: "\\e"\n', 'a: "\\/"\n', "a: yes\n",
        "a: 2021-01-01\n", "a: 0o17\n", "a: 1_0\n", "a:\tb\n", "---\na: 1\n", "a: 1\n...\n",
        "a:\n   b: 1\n", "a:\n- b\n", "a: 1\na: 2\n", "a: 1", "a: 1\n\n", "a:\n  x\n  y\n",
        "a: |+\n  x\n", "a: |2\n   x\n", "a: >\n  x\n", "a: |\n   x\n", "a: |\n  x \n",
        "a: b\r\n", "a: \"\\ud83d\\ude00\"\n", "- a\n", "a\n", "a: \"\u2028\"\n", "? a\n: b\n",
        "a: \"x\" \n", "a:  x\n", "a: -0x1\n", "a: \"\ufeff\"\n", "a: True\n", "a: Null\n",
    ],
)
# fmt: on
def test_fast_path_rejects_everything_else(text: str) -> None:
    assert fast(text) is yamlfast.REJECT


# -- fallback semantics ---------------------------------------------------------------------------


def test_fallback_keeps_dates_as_strings_without_touching_pyyaml() -> None:
    text = "d: 2027-01-31\nt: 2001-12-14t21:59:43.10-05:00\nl: [2027-01-31]\n"
    assert load(text, path="x") == {
        "d": "2027-01-31",
        "t": "2001-12-14t21:59:43.10-05:00",
        "l": ["2027-01-31"],
    }
    assert isinstance(yaml.safe_load(text)["d"], datetime.date)
    assert isinstance(yaml.load(text, Loader=yaml.CSafeLoader)["d"], datetime.date)
    assert issubclass(FallbackLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def test_fallback_reads_what_humans_write() -> None:
    text = "# comment\nbase: {x: 1}\nuse:\n  x: 1\n  y: 'two'\nflag: yes\nn: ~\n"
    expected = {"base": {"x": 1}, "use": {"x": 1, "y": "two"}, "flag": True, "n": None}
    assert load(text, path="x") == expected


# -- errors --------------------------------------------------------------------------------------


def test_invalid_yaml_reports_path_line_and_column() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load("a: 1\nb: c\n  d: e\n", path="dir/case.yaml")
    assert info.value.message.startswith("dir/case.yaml:3:")
    assert isinstance(info.value, InputError)
    assert isinstance(info.value.__cause__, yaml.YAMLError)


def test_unterminated_flow_reports_a_line() -> None:
    with pytest.raises(YamlSyntaxError, match=r"^p\.yaml:\d+:\d+: "):
        load("a: [1, 2\nb: 3\n", path="p.yaml")


@pytest.mark.parametrize(
    ("text", "line", "first"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, 1),
        ("x:\n  - k: 1\n    j: 2\n    k: 3\n", 4, 2),
        ("a: {b: 1, b: 2}\n", 1, 1),
        ("yes: 1\ntrue: 2\n", 2, 1),
    ],
)
def test_duplicate_keys_name_the_line(text: str, line: int, first: int) -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load(text, path="c.yaml")
    assert info.value.message.startswith(f"c.yaml:{line}:")
    assert "duplicate key" in info.value.message
    assert f"first defined on line {first}" in info.value.message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: &a {x: 1}\nb:\n  <<: *a\n  x: 2\n", "x:1:4: an anchor"),
        ("a: [1, *missing]\n", "x:1:8: an alias"),
    ],
)
def test_anchors_aliases_and_merge_keys_are_refused(text: str, where: str) -> None:
    # Issue 12: a human-edited file never needs them, and nested aliases are an alias bomb.
    with pytest.raises(YamlSyntaxError, match=where):
        load(text, path="x")


def test_non_utf8_bytes_report_the_byte_offset() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load(b"a: 1\nb: caf\xe9\n", path="c.yaml")
    assert info.value.message.startswith("c.yaml:2:7: ")
    assert "byte offset 11" in info.value.message


def test_bom_is_allowed() -> None:
    assert load(b"\xef\xbb\xbfa: 1\n", path="x") == {"a": 1}
    assert load("\ufeffa: 1\n", path="x") == {"a": 1}
    assert fast("\ufeffa: 1\n") == {"a": 1}
    assert fast(b"\xef\xbb\xbfa: 1\n") == {"a": 1}


def test_control_characters_are_reported_with_position() -> None:
    with pytest.raises(YamlSyntaxError, match=r"^x\.yaml:2:5: .*U\+0001"):
        load("a: 1\nb: x\x01\n", path="x.yaml")
    with pytest.raises(YamlSyntaxError, match=r"^x\.yaml:1:4: "):
        load("a: \ud800\n", path="x.yaml")


def test_several_documents_are_an_error() -> None:
    with pytest.raises(YamlSyntaxError, match=r"^x\.yaml:2:"):
        load("a: 1\n---\nb: 2\n", path="x.yaml")


def test_bad_integers_are_syntax_errors() -> None:
    with pytest.raises(YamlSyntaxError, match=r"^x\.yaml:2:4: "):
        load("a: 1\nb: 0x_\n", path="x.yaml")


def test_unknown_tags_are_syntax_errors() -> None:
    with pytest.raises(YamlSyntaxError, match=r"^x\.yaml:1:4: "):
        load("a: !!python/object:os.system x\n", path="x.yaml")


# -- locate ---------------------------------------------------------------------------------------

LOCATE_TEXT = """\
schema: v1
findings:
  - id: a
    package:
      name: x
  - id: b
    package:
      name: y
      version: "2"
    tags:
      - t1
      - t2
notes: |
  one
  two
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ([], 1),
        (["schema"], 1),
        (["findings"], 2),
        (["findings", 0], 3),
        (["findings", 1], 6),
        (["findings", 1, "package"], 7),
        (["findings", 1, "package", "version"], 9),
        (["findings", 1, "tags", 1], 12),
        (["findings", 1, "package", "missing"], 7),
        (["findings", 7, "id"], 2),
        (["notes"], 13),
        (["notes", "deeper"], 13),
    ],
)
def test_locate(path: list[str | int], line: int) -> None:
    assert locate(LOCATE_TEXT, path) == line
    assert locate(LOCATE_TEXT.encode("utf-8"), path) == line


def test_locate_on_emitter_output() -> None:
    text = dump(GOLDEN_DOC)
    assert locate(text, ["findings", 0, "first_seen", "at"]) == 34
    assert text.split("\n")[33].strip().startswith("at:")
    assert locate(text, ["findings", 1, "title"]) == 36


def test_locate_returns_none_for_unparsable_text() -> None:
    assert locate("a: [1\n", ["a"]) is None
    assert locate(b"\xff", ["a"]) is None
    assert locate("", ["a"]) is None
    assert locate("a: \ud800\n", ["a"]) is None
