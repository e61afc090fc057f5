"""yamldoc: deterministic dump, round trip, strict load with path:line:col errors."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli
from securecase.storage.yamldoc import YamlError, dump, line_of, load, load_located

# Text YAML can hold exactly: no lone surrogates, no characters outside YAML's printable set
# (PyYAML escapes those), which st.characters' categories below keep out.
text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn", "Zl", "Zp"))
    | st.sampled_from("\n\t "),
    max_size=30,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
documents = st.dictionaries(
    text.filter(bool),
    st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(text.filter(bool), inner, max_size=4)
        ),
        max_leaves=12,
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_round_trip_and_determinism(doc: dict[str, Any]) -> None:
    written = dump(doc)
    assert load(written, path="x.yaml") == doc
    assert dump(load(written, path="x.yaml")) == written  # same data, same text
    assert list(load(written, path="x.yaml")) == list(doc)  # insertion order kept


def test_shape_block_style_no_folding_no_aliases_unicode_kept() -> None:
    shared = {"x": 1}
    long = "word " * 100
    written = dump({"a": [shared, shared], "long": long, "notes": "one\ntwo\n", "u": "é ☃"})
    assert "&" not in written and "*" not in written
    assert written == (f"a:\n- x: 1\n- x: 1\nlong: '{long}'\nnotes: |\n  one\n  two\nu: é ☃\n")


def test_timestamps_stay_strings() -> None:
    assert load("at: 2026-01-31T10:00:00Z\nday: 2026-01-31\n", path="p") == {
        "at": "2026-01-31T10:00:00Z",
        "day": "2026-01-31",
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a: 1\nb:\n  c: 2\n  c: 3\n", "p.yaml:4:3: duplicate key 'c' (first at line 3)"),
        ("a: &x 1\nb: *x\n", "p.yaml:1:4: anchors and aliases"),
        ("a: [1, *x]\n", "p.yaml:1:8: anchors and aliases"),
        ("<<: {a: 1}\n", "p.yaml:1:1: merge keys"),
        ("123: x\n", "p.yaml:1:1: mapping keys must be strings"),
        ("a: 1\n---\nb: 2\n", "p.yaml:2:1: expected a single document"),
        ("a: !!python/object:os.system x\n", "p.yaml:1:4: could not determine a constructor"),
        ("a: [1\n", "p.yaml:2:1:"),
        ("a: b: c\n", "p.yaml:1:5:"),
    ],
)
def test_refusals_name_path_line_and_column(source: str, expected: str) -> None:
    with pytest.raises(YamlError) as info:
        load(source, path="p.yaml")
    assert info.value.message.startswith(expected), info.value.message


def test_bytes_must_be_utf8_and_a_bom_is_allowed() -> None:
    with pytest.raises(YamlError, match=r"p.yaml:2: not valid UTF-8 \(byte 0xff"):
        load(b"a: 1\nb: \xff\n", path="p.yaml")
    assert load("\ufeffa: 1\n".encode(), path="p.yaml") == {"a": 1}
    assert load(b"", path="p.yaml") is None


def test_error_messages_are_capped() -> None:
    huge = "k" * 100_000
    with pytest.raises(YamlError) as info:
        load(f"{huge}: 1\n{huge}: 2\n", path="p.yaml")
    assert len(info.value.message) < 200


def _bomb(levels: int) -> str:
    first = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
    rest = [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join([first, *rest]) + "\n"


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    started = time.perf_counter()
    with pytest.raises(YamlError, match="anchors and aliases"):
        load(_bomb(12), path="bomb.yaml")  # 9**12 strings if it were expanded
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (["a"], 1),
        (["a", "b"], 2),
        (["a", "b", 1], 4),
        (["a", "b", 1, "y"], 4),
        (["a", "b", 7], 2),  # outside the list: the deepest node that exists
        (["z"], 1),
        ([], 1),
    ],
)
def test_line_of(path: list[str | int], line: int) -> None:
    node = load_located("a:\n  b:\n  - x\n  - y: 1\n", path="p").node
    assert line_of(node, path) == line


def test_line_of_an_empty_document() -> None:
    assert line_of(load_located("", path="p").node, ["a"]) is None


# -- through the CLI: a hostile policy file is refused quickly with exit 2 -----------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (_bomb(12), "policy.yaml:1:5: anchors and aliases"),
        ("version: 1\nrules: []\nrules: []\n", "policy.yaml:3:1: duplicate key 'rules'"),
    ],
)
def test_cli_refuses_hostile_policy_yaml_with_exit_2(work, policy: str, expected: str) -> None:
    (work / "policy.yaml").write_text(policy)
    started = time.perf_counter()
    proc = run_cli("policy", "validate", work / "policy.yaml", cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert time.perf_counter() - started < 10  # a whole process start; the bomb never expands
