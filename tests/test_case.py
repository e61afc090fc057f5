"""Merging scans into cases: first_seen, resolved, lifecycle, stale scans (pure, in-code)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import vuln_finding
from securecase.domain.case import (
    GateRecord,
    Scan,
    Status,
    Triage,
    is_stale,
    merge,
    record_stale,
    same_content,
)
from securecase.domain.findings import Finding, Report, ReportFormat, Severity
from securecase.domain.subjects import Provider, Subject

SUBJECT = Subject(Provider.GITHUB, "acme", "shop", pr=42, target_branch="main")
GATE = GateRecord(mode="pr_gate", decision="pass", gate=False)


def vuln(n: int, severity: str = "HIGH", source: str = "trivy-image") -> Finding:
    return vuln_finding(n, severity, source=source)


def report(findings, source="trivy-image", scanned_at="2026-11-01T00:00:00Z") -> Report:
    return Report(
        format=ReportFormat.TRIVY,
        source=source,
        tool="trivy",
        tool_version="0.50.0",
        scanned_at=scanned_at,
        artifact_name="img",
        artifact_type="container_image",
        image_digest=None,
        findings=tuple(findings),
        raw=b"{}",
        raw_suffix=".json",
        path=f"{source}.json",
    )


def scan(*reports: Report, commit="c1", at="2026-11-01T00:00:00Z", committed_at=None) -> Scan:
    return Scan(
        subject=SUBJECT,
        reports=reports,
        received_at=at,
        commit=commit,
        committed_at=committed_at,
        raw_paths={r.source: f"raw/{r.source}.json" for r in reports},
        raw_sha256={r.source: "0" * 64 for r in reports},
    )


def test_new_case_with_findings_is_new_and_sorted_worst_first():
    result = merge(None, scan(report([vuln(1, "LOW"), vuln(2, "CRITICAL"), vuln(3)])), GATE)
    case = result.case
    assert case.status is Status.NEW
    assert [t.finding.severity.value for t in case.findings] == ["CRITICAL", "HIGH", "LOW"]
    assert case.counts == {"critical": 1, "high": 1, "medium": 0, "low": 1, "info": 0, "unknown": 0}
    assert case.max_severity is Severity.CRITICAL
    assert len(result.appeared) == 3 and result.fixed == ()


def test_clean_first_scan_is_resolved():
    assert merge(None, scan(report([])), GATE).case.status is Status.RESOLVED


def test_rescan_keeps_first_seen_and_resolves_missing():
    first = merge(None, scan(report([vuln(1), vuln(2)]), commit="c1"), GATE).case
    second = merge(
        first, scan(report([vuln(1)], scanned_at="2026-11-02T00:00:00Z"), commit="c2"), GATE
    )
    case = second.case
    assert [t.finding.id for t in case.findings] == [vuln(1).id]
    assert case.findings[0].first_seen.commit == "c1"
    assert second.fixed == (vuln(2).id,)
    assert case.resolved[0].finding.id == vuln(2).id
    assert case.resolved[0].resolved is not None and case.resolved[0].resolved.commit == "c2"


def test_returning_finding_keeps_its_original_first_seen_and_leaves_resolved():
    a = merge(None, scan(report([vuln(1), vuln(2)]), commit="c1"), GATE).case
    b = merge(a, scan(report([vuln(1)]), commit="c2", at="2026-11-02T00:00:00Z"), GATE).case
    c = merge(b, scan(report([vuln(1), vuln(2)]), commit="c3", at="2026-11-03T00:00:00Z"), GATE)
    assert {t.finding.id for t in c.case.findings} == {vuln(1).id, vuln(2).id}
    assert c.case.resolved == ()
    returned = next(t for t in c.case.findings if t.finding.id == vuln(2).id)
    assert returned.first_seen.commit == "c1"


def test_other_sources_keep_their_findings_and_commit():
    a = merge(
        None,
        scan(report([vuln(1)]), report([vuln(9, source="trivy-fs")], "trivy-fs"), commit="c1"),
        GATE,
    ).case
    b = merge(a, scan(report([]), commit="c2"), GATE).case
    assert [t.finding.source for t in b.findings] == ["trivy-fs"]
    assert b.sources["trivy-fs"].commit == "c1" and b.sources["trivy-image"].commit == "c2"


def test_lifecycle_resolve_and_reopen_and_human_status_kept():
    a = merge(None, scan(report([vuln(1)])), GATE).case
    triaged = replace(a, status=Status.TRIAGED, triage=Triage("alice", ("ops",), "look"))
    b = merge(triaged, scan(report([vuln(1), vuln(2)]), commit="c2"), GATE).case
    assert b.status is Status.TRIAGED and b.triage == Triage("alice", ("ops",), "look")
    c = merge(b, scan(report([]), commit="c3"), GATE).case
    assert c.status is Status.RESOLVED and c.reopened == 0
    d = merge(c, scan(report([vuln(3)]), commit="c4"), GATE).case
    assert d.status is Status.NEW and d.reopened == 1
    assert d.triage.assignee == "alice"


@pytest.mark.parametrize("closed_as", [Status.CLOSED, Status.RESOLVED])
def test_a_human_close_holds_until_a_finding_appears(closed_as):
    a = merge(None, scan(report([vuln(1), vuln(2)])), GATE).case
    closed = replace(a, status=closed_as)  # accepted with findings still open
    same = merge(closed, scan(report([vuln(1), vuln(2)]), commit="c2"), GATE).case
    assert same.status is closed_as and same.reopened == 0
    fewer = merge(same, scan(report([vuln(1)]), commit="c3"), GATE).case
    assert fewer.status is closed_as
    back = merge(fewer, scan(report([vuln(1), vuln(2)]), commit="c4"), GATE).case
    assert back.status is Status.NEW and back.reopened == 1  # vuln 2 returned


def test_stale_scan_does_not_roll_back():
    newer = merge(
        None, scan(report([vuln(1)]), commit="new", committed_at="2026-11-02T00:00:00Z"), GATE
    ).case
    late = scan(
        report([vuln(1), vuln(2)]),
        commit="old",
        committed_at="2026-11-01T00:00:00Z",
        at="2026-11-03T00:00:00Z",
    )
    assert is_stale(newer, late)
    recorded = record_stale(newer, late)
    assert recorded.findings == newer.findings and recorded.latest == newer.latest
    assert recorded.stale_scans[-1].commit == "old"
    assert record_stale(recorded, late) is recorded  # a re-sent late scan changes nothing
    same_commit = scan(report([]), commit="new", committed_at="2026-11-01T00:00:00Z")
    assert not is_stale(newer, same_commit)


def test_stale_by_scan_time_when_commit_times_are_unknown():
    newer = merge(
        None, scan(report([vuln(1)], scanned_at="2026-11-05T00:00:00Z"), commit="b"), GATE
    ).case
    older = scan(report([], scanned_at="2026-11-04T00:00:00Z"), commit="a")
    assert is_stale(newer, older)


def test_resend_is_same_content():
    a = merge(None, scan(report([vuln(1)])), GATE).case
    b = merge(a, scan(report([vuln(1)]), at="2026-11-09T00:00:00Z"), GATE).case
    assert same_content(b, a)


@given(st.lists(st.integers(0, 50), unique=True), st.lists(st.integers(0, 50), unique=True))
def test_every_finding_is_either_open_or_resolved(first_ids, second_ids):
    a = merge(None, scan(report([vuln(i) for i in first_ids])), GATE).case
    b = merge(a, scan(report([vuln(i) for i in second_ids]), commit="c2"), GATE).case
    open_ids = {t.finding.id for t in b.findings}
    resolved_ids = {t.finding.id for t in b.resolved}
    assert open_ids == {vuln(i).id for i in second_ids}
    assert resolved_ids == {vuln(i).id for i in set(first_ids) - set(second_ids)}
    assert not open_ids & resolved_ids
