"""The fast validator (jsonschema-rs) and the reporting one (jsonschema) must agree."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TRIVY
from securecase import schemas
from securecase.case import GateRecord, Scan, merge
from securecase.casefile import dump_case
from securecase.keys import make_subject
from securecase.reports import parse

SUBJECT = make_subject(provider="github", repo="acme/shop", pr=1, branch=None, target_branch="main")


def valid_case() -> dict[str, Any]:
    reports = (parse(TRIVY / "misconfigurations_and_secrets.json"),)
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
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


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
    action = data.draw(st.sampled_from(["replace", "delete", "extra"]))
    if action == "delete":
        del parent[target[-1]]
    elif action == "extra" and isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=4))] = data.draw(junk)
    else:
        parent[target[-1]] = data.draw(junk)
    return doc


def agree(doc: Any, name: str) -> None:
    slow = not list(jsonschema.Draft202012Validator(schemas.load_schema(name)).iter_errors(doc))
    assert schemas.is_valid(doc, name) == slow


def test_valid_documents_pass_both():
    assert schemas.is_valid(BASE, schemas.CASE) and schemas.is_valid(POLICY, schemas.POLICY)
    agree(BASE, schemas.CASE)


@settings(max_examples=150)
@given(st.data())
def test_validators_agree_on_mutated_cases(data):
    agree(mutate(BASE, data), schemas.CASE)


@settings(max_examples=150)
@given(st.data())
def test_validators_agree_on_mutated_policies(data):
    agree(mutate(POLICY, data), schemas.POLICY)


def test_schemas_are_valid_draft_2020_12():
    for name in (schemas.CASE, schemas.POLICY):
        jsonschema.Draft202012Validator.check_schema(schemas.load_schema(name))
