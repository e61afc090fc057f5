"""The quick check (securecase.storage.schemacheck) and the reporting validator (jsonschema) agree."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, TRIVY
from securecase.domain.case import GateRecord, Scan, merge
from securecase.domain.subjects import make_subject
from securecase.scanners import parse
from securecase.storage import schemacheck, schemas
from securecase.storage.casefile import dump_case

SUBJECT = make_subject(provider="github", repo="acme/shop", pr=1, branch=None, target_branch="main")


def valid_case() -> dict[str, Any]:
    reports = (
        parse(TRIVY / "misconfigurations_and_secrets.json"),
        parse(TRIVY / "pip.json"),
        parse(FIXTURES / "sarif" / "bandit.sarif"),
        parse(FIXTURES / "zap" / "owasp_zap.json"),
    )
    scan = Scan(
        subject=SUBJECT,
        reports=reports,
        received_at="2026-01-01T00:00:00Z",
        commit="c",
        raw_paths={r.source: "raw" for r in reports},
        raw_sha256={r.source: "a" * 64 for r in reports},
    )
    case = merge(None, scan, GateRecord("pr_gate", "pass", False)).case
    doc: dict[str, Any] = yaml.safe_load(dump_case(case))
    # Every part of the schema within reach of the mutations: a resolved finding, a stale
    # scan, an excepted and a new finding.
    gone = {**doc["findings"][-1], "resolved": {"commit": "d", "at": "2026-01-02T00:00:00Z"}}
    doc["resolved"] = [gone]
    doc["stale_scans"] = [{"commit": "b", "received_at": "2026-01-03T00:00:00Z", "sources": ["x"]}]
    doc["findings"][0]["exception"] = {"id": "EXC-1", "expires": "2026-12-31"}
    doc["findings"][1]["new"] = True
    assert schemas.is_valid(doc, schemas.CASE)
    return doc


BASE = valid_case()
POLICY = {
    "version": 1,
    "mode": "ci",
    "rules": [
        {
            "id": "r",
            "when": {"event": "push", "repos": ["a/*"]},
            "block": {"severity_at_least": "HIGH"},
            "max_allowed": 0,
        }
    ],
}
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 1.5, -1.0, 10.0, 10.5, math.nan, math.inf, 2**53 + 0.0]),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def near_miss(value: Any, data: st.DataObject) -> Any:
    """A value close to ``value``: the same text with a line break or a space, the number as
    a float or a boolean, a one-character change."""
    if isinstance(value, str):
        return data.draw(
            st.sampled_from(
                [value + "\n", "\n" + value, value + " ", value[:-1], value.upper(), "", value * 2]
            )
        )
    if isinstance(value, bool):
        return data.draw(st.sampled_from([int(value), float(value), str(value).lower()]))
    if isinstance(value, int | float):
        return data.draw(st.sampled_from([float(value), value + 0.5, -value - 1, True, False]))
    return data.draw(junk)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += paths(value, (*prefix, index))
    return found


def mutate(doc: Any, data: st.DataObject) -> Any:
    doc = copy.deepcopy(doc)
    target = data.draw(st.sampled_from(paths(doc)))
    parent = doc
    for part in target[:-1]:
        parent = parent[part]
    action = data.draw(st.sampled_from(["replace", "near", "delete", "extra"]))
    if action == "delete":
        del parent[target[-1]]
    elif action == "extra" and isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=4))] = data.draw(junk)
    elif action == "near":
        parent[target[-1]] = near_miss(parent[target[-1]], data)
    else:
        parent[target[-1]] = data.draw(junk)
    return doc


def agree(doc: Any, name: str) -> bool:
    slow = not list(schemas.reporting_validator(schemas.load_schema(name)).iter_errors(doc))
    assert schemas.is_valid(doc, name) == slow
    return slow


def test_valid_documents_pass_both():
    assert schemas.is_valid(BASE, schemas.CASE) and schemas.is_valid(POLICY, schemas.POLICY)
    agree(BASE, schemas.CASE)


@settings(max_examples=400)
@given(st.data())
def test_validators_agree_on_mutated_cases(data):
    doc = BASE
    for _ in range(data.draw(st.integers(1, 3))):
        doc = mutate(doc, data)
    agree(doc, schemas.CASE)


@settings(max_examples=400)
@given(st.data())
def test_validators_agree_on_mutated_policies(data):
    doc = POLICY
    for _ in range(data.draw(st.integers(1, 3))):
        doc = mutate(doc, data)
    agree(doc, schemas.POLICY)


def test_json_semantics_of_numbers_booleans_and_patterns():
    finding = BASE["findings"][0]
    cases: list[tuple[str, Any, bool]] = [
        ("reopened", 2.0, True),  # an integer written as a float is an integer
        ("reopened", 2.5, False),
        ("reopened", True, False),  # booleans are not numbers
        ("reopened", math.nan, False),
        ("reopened", -1, False),
    ]
    for key, value, valid in cases:
        assert agree({**BASE, key: value}, schemas.CASE) is valid, (key, value)
    bad_id = {**finding, "id": finding["id"] + "\n"}  # "$" ends the string, no line break
    assert agree({**BASE, "findings": [bad_id]}, schemas.CASE) is False
    policy_version_true = {**POLICY, "version": True}  # const 1 is not true
    assert agree(policy_version_true, schemas.POLICY) is False
    assert agree({**POLICY, "version": 1.0}, schemas.POLICY) is True


def test_an_invalid_document_always_has_a_reported_problem():
    doc = {**BASE, "findings": [{**BASE["findings"][0], "id": "0" * 16 + "\n"}]}
    found = schemas.problems(doc, schemas.CASE, text="", path="case.yaml")
    assert found and "does not match" in found[0]


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "string", "format": "email"}, "unsupported keyword"),
        ({"type": "string", "pattern": "^a.b$"}, "escapes and '.'"),
        ({"type": "string", "pattern": "^\\d+$"}, "escapes and '.'"),
        ({"type": "string", "pattern": "^(?i)a$"}, "'(?'"),
        ({"$ref": "other.json#/x"}, "only #/$defs/NAME"),
        ({"$ref": "#/$defs/missing"}, "only #/$defs/NAME"),
        ({"type": "decimal"}, "unknown type"),
        ({"items": 3}, "must be an object or a boolean"),
    ],
)
def test_schemas_outside_the_subset_are_refused(schema: dict[str, Any], why: str):
    with pytest.raises(schemacheck.UnsupportedSchema, match=re.escape(why)):
        schemacheck.compile_schema(schema)


def test_recursive_definitions_and_boolean_schemas():
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "kids": {"items": {"$ref": "#/$defs/node"}},
                },
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    }
    check = schemacheck.compile_schema(tree)
    assert check({"name": "a", "kids": [{"name": "b", "kids": []}]})
    assert not check({"name": "a", "kids": [{"kids": []}]})
    assert schemacheck.compile_schema(True)(object()) and not schemacheck.compile_schema(False)(1)
    valid = not list(jsonschema.Draft202012Validator(tree).iter_errors({"name": "a", "kids": [{}]}))
    assert check({"name": "a", "kids": [{}]}) is valid


def test_schemas_are_valid_draft_2020_12():
    for name in (schemas.CASE, schemas.POLICY):
        jsonschema.Draft202012Validator.check_schema(schemas.load_schema(name))
