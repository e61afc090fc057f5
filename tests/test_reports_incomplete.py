"""Unit tests: what each parser says about a scan that did not complete, and derived slots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from securecase.errors import ReportError
from securecase.scanners import parse, parse_bytes

FAILED = Path(__file__).parent / "fixtures" / "realworld" / "failed-scans"


def sarif(**invocation: object) -> bytes:
    run = {"tool": {"driver": {"name": "bandit"}}, "results": [], "invocations": [invocation]}
    return json.dumps({"version": "2.1.0", "runs": [run]}).encode()


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("bandit-mistyped-path.sarif", "error: No such file or directory ('sqlli')"),
        ("semgrep-invalid-root.sarif", "error: Invalid scanning root: sqlli"),
        ("bandit-newer-syntax.sarif", "syntax error while parsing AST from file"),
        ("bandit-merge-conflict.sarif", "('sqli/dao/user.py')"),
    ],
)
def test_real_failed_scans_are_incomplete(name: str, needle: str) -> None:
    (reason,) = parse(FAILED / name).incomplete
    assert reason.startswith("$.runs[0].invocations[0].tool") and needle in reason


def test_a_recovered_syntax_warning_is_complete() -> None:
    assert parse(FAILED / "semgrep-merge-conflict.sarif").incomplete == ()


def test_execution_unsuccessful_names_the_exit_code() -> None:
    report = parse_bytes(sarif(executionSuccessful=False, exitCode=2), origin="x.sarif")
    assert report.incomplete == (
        "$.runs[0].invocations[0].executionSuccessful: false (exitCode 2)",
    )


def test_absent_results_are_incomplete() -> None:
    doc = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "bandit"}}}]}
    report = parse_bytes(json.dumps(doc).encode(), origin="x.sarif")
    assert report.incomplete == ("$.runs[0].results: absent: the tool did not run to completion",)


def test_reasons_are_capped_and_messages_cut() -> None:
    notes = [{"level": "error", "message": {"text": "x" * 5000}}] * 30
    (report) = parse_bytes(
        sarif(executionSuccessful=True, toolExecutionNotifications=notes), origin="x"
    )
    assert len(report.incomplete) == 10
    assert report.incomplete[-1] == "... and 21 more"
    assert all(len(r) < 300 for r in report.incomplete)


@pytest.mark.parametrize(
    ("invocation", "problem"),
    [
        ({"executionSuccessful": "no"}, "executionSuccessful: expected a boolean, got string"),
        ({"toolExecutionNotifications": {}}, "toolExecutionNotifications: expected an array"),
        ({"toolExecutionNotifications": [{"level": "fatal"}]}, "expected one of error, warning"),
    ],
)
def test_ill_typed_invocations_are_refused(invocation: dict, problem: str) -> None:
    with pytest.raises(ReportError) as info:
        parse_bytes(sarif(**invocation), origin="x.sarif")
    assert any(problem in p for p in info.value.problems)


def test_sarif_category_names_the_slot() -> None:
    doc = json.loads(sarif(executionSuccessful=True))
    doc["runs"][0]["automationDetails"] = {"id": "backend/api/run-7"}
    report = parse_bytes(json.dumps(doc).encode(), origin="x.sarif")
    assert report.source == "bandit-backend-api"
    assert report.legacy_source == "bandit"
    doc["runs"][0]["automationDetails"] = {"id": "run-7"}  # an instance id, no category
    assert parse_bytes(json.dumps(doc).encode(), origin="x.sarif").source == "bandit"


def test_zap_json_without_sites_is_incomplete() -> None:
    doc = {"@programName": "OWASP ZAP", "@version": "2.14.0", "site": []}
    report = parse_bytes(json.dumps(doc).encode(), origin="z.json")
    assert report.incomplete == ("$.site: no site was scanned (ZAP reached no target)",)


def test_zap_xml_without_sites_is_incomplete() -> None:
    xml = b"<?xml version='1.0'?><OWASPZAPReport version='2.14.0'></OWASPZAPReport>"
    report = parse_bytes(xml, origin="z.xml")
    assert report.incomplete == (
        "/OWASPZAPReport/site: no site was scanned (ZAP reached no target)",
    )
