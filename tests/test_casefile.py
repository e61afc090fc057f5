"""case.yaml: deterministic bytes, round trip, validation with file:line, golden output."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from conftest import TRIVY
from securecase.clock import FixedClock
from securecase.domain.case import GateRecord, Scan, merge
from securecase.domain.subjects import make_subject
from securecase.errors import CaseFileError
from securecase.scanners import parse
from securecase.services.ingest import IngestRequest, ingest
from securecase.storage.casefile import case_from_dict, case_to_dict, dump_case, load_case
from securecase.storage.store import GitIdentity

GOLDEN = Path(__file__).parent / "golden" / "case"
REALWORLD = Path(__file__).parent / "fixtures" / "realworld"
SUBJECT = make_subject(
    provider="github", repo="acme/shop", pr=42, branch="feat/x", target_branch="main"
)
GATE = GateRecord(
    mode="pr_gate",
    decision="block",
    gate=True,
    policy_path="policy.yaml",
    policy_blob="0" * 40,
    rules=("r",),
    reasons=("r: 1 findings",),
)


def sample_case(*names: str):
    reports = tuple(parse(TRIVY / name) for name in names)
    scan = Scan(
        subject=SUBJECT,
        reports=reports,
        received_at="2026-11-23T08:00:00Z",
        commit="abc",
        raw_paths={r.source: f"raw/{r.source}.json" for r in reports},
        raw_sha256={r.source: "1" * 64 for r in reports},
    )
    return merge(None, scan, GATE).case


def test_dump_is_deterministic_and_round_trips():
    case = sample_case("misconfigurations_and_secrets.json", "alpine-310.json")
    first = dump_case(case)
    assert first == dump_case(case)
    assert case_from_dict(yaml.safe_load(first)) == case
    assert load_case(first, path="case.yaml") == case
    assert list(yaml.safe_load(first)) == list(case_to_dict(case))


def test_an_incomplete_source_round_trips_and_a_complete_one_writes_no_key():
    from dataclasses import replace

    from securecase.scanners import parse as parse_report

    failed = parse_report(REALWORLD / "failed-scans" / "bandit-mistyped-path.sarif")
    assert failed.incomplete
    scan = Scan(
        subject=SUBJECT,
        reports=(failed, replace(parse(TRIVY / "pip.json"))),
        received_at="2026-11-23T08:00:00Z",
        commit="abc",
        raw_paths={
            failed.source: "raw/bandit.sarif",
            "trivy-repo-testdata-fixtures-repo-pip": "raw/p",
        },
        raw_sha256={failed.source: "1" * 64, "trivy-repo-testdata-fixtures-repo-pip": "2" * 64},
    )
    case = merge(None, scan, GATE).case
    text = dump_case(case)
    loaded = load_case(text, path="case.yaml")
    assert loaded == case
    assert loaded.sources[failed.source].incomplete == failed.incomplete
    doc = yaml.safe_load(text)
    assert doc["sources"][failed.source]["incomplete"] == list(failed.incomplete)
    assert "incomplete" not in doc["sources"]["trivy-repo-testdata-fixtures-repo-pip"]
    # the schema refuses an empty list: a complete source writes no key at all
    doc["sources"][failed.source]["incomplete"] = []
    with pytest.raises(CaseFileError):
        load_case(yaml.safe_dump(doc, sort_keys=False), path="case.yaml")


def test_key_order_follows_the_contract():
    keys = list(yaml.safe_load(dump_case(sample_case("pip.json"))))
    assert keys == [
        "schema",
        "key",
        "subject",
        "status",
        "reopened",
        "triage",
        "latest",
        "counts",
        "max_severity",
        "gate",
        "sources",
        "findings",
        "resolved",
        "created_at",
        "updated_at",
    ]


def test_invalid_yaml_is_located():
    text = dump_case(sample_case("pip.json")).replace(b"status: NEW", b"status: [NEW")
    with pytest.raises(CaseFileError) as info:
        load_case(text, path="cases/x/case.yaml")
    assert "cases/x/case.yaml:" in " ".join(info.value.problems) + info.value.message


def test_schema_problems_are_located():
    text = dump_case(sample_case("pip.json")).decode()
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("severity:"))
    lines[index] = lines[index].replace("severity: HIGH", "severity: SEVERE")
    with pytest.raises(CaseFileError) as info:
        load_case("\n".join(lines).encode(), path="case.yaml")
    assert any(
        p.startswith(f"case.yaml:{index + 1}: $.findings[0].severity") for p in info.value.problems
    ), info.value.problems


def test_golden_case_file(tmp_path: Path):
    """The case written for a real report, byte for byte (regenerate: SECURECASE_REGEN=1)."""
    request = IngestRequest(
        reports=(TRIVY / "misconfigurations_and_secrets.json", TRIVY / "debian-buster.json"),
        subject=SUBJECT,
        cases_repo=str(tmp_path / "cases"),
        identity=GitIdentity("t", "t@example.com"),
        commit="0123456789abcdef0123456789abcdef01234567",
        run_url="https://ci.example.com/run/1",
        image="registry.example.com:5000/acme/shop:1.2",
    )
    result = ingest(request, clock=FixedClock(datetime(2026, 11, 23, 8, 0, tzinfo=UTC)))
    written = (tmp_path / "cases" / result.case_path).read_bytes()
    golden = GOLDEN / "pr-42.case.yaml"
    if os.environ.get("SECURECASE_REGEN"):
        golden.write_bytes(written)
    assert written == golden.read_bytes()


def test_a_source_name_that_is_not_a_string_is_refused_with_its_line() -> None:
    slot = b"  trivy-repo-testdata-fixtures-repo-pip:\n"
    text = dump_case(sample_case("pip.json")).replace(slot, b"  123:\n")
    assert b"  123:\n" in text
    with pytest.raises(CaseFileError) as caught:
        load_case(text, path="cases/x/case.yaml")
    line = text.decode().splitlines().index("sources:") + 1
    assert str(caught.value).startswith(f"cases/x/case.yaml:{line}: $.sources:")
