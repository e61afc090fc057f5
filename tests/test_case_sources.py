"""Cases of several sources (pure, in-code): cross-scanner duplicates counted once, suppressed
findings kept but inactive, the new finding fields through case.yaml and back."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from sarifgen import big_sarif, findings_per_copy
from securecase.domain.case import GateRecord, Scan, distinct_findings, merge
from securecase.domain.findings import (
    Finding,
    Instance,
    Kind,
    Location,
    Package,
    Report,
    ReportFormat,
    Severity,
    fingerprint,
)
from securecase.domain.policy import builtin_policy, evaluate
from securecase.domain.subjects import Provider, Subject
from securecase.scanners import parse
from securecase.storage.casefile import dump_case, load_case

SUBJECT = Subject(Provider.GITHUB, "acme", "shop", pr=42, target_branch="main")
GATE = GateRecord(mode="pr_gate", decision="pass", gate=False)


def vuln(cve: str, package: str, source: str, severity: str = "HIGH") -> Finding:
    return Finding(
        id=fingerprint(source, cve, package),
        source=source,
        kind=Kind.VULNERABILITY,
        advisory=cve,
        severity=Severity(severity),
        title=cve,
        package=Package(package, "1.0"),
    )


def code(n: int, source: str = "codeql", **extra: object) -> Finding:
    finding = Finding(
        id=fingerprint(source, "code", str(n)),
        source=source,
        kind=Kind.CODE,
        advisory="py/sql-injection",
        severity=Severity.HIGH,
        title="SQL injection",
        location=Location(path="app.py", start_line=n),
    )
    return replace(finding, **extra)  # type: ignore[arg-type]


def report(source: str, findings: list[Finding], fmt: ReportFormat) -> Report:
    return Report(
        format=fmt,
        source=source,
        tool=source,
        tool_version=None,
        scanned_at="2026-11-01T00:00:00Z",
        artifact_name=None,
        artifact_type=None,
        image_digest=None,
        findings=tuple(findings),
        raw=b"{}",
        raw_suffix=".json",
        path=source,
    )


def scan(*reports: Report) -> Scan:
    return Scan(
        subject=SUBJECT,
        reports=reports,
        received_at="2026-11-01T00:00:00Z",
        commit="c1",
        raw_paths={r.source: f"raw/{r.source}.json" for r in reports},
        raw_sha256={r.source: "0" * 64 for r in reports},
    )


def test_same_cve_and_package_from_two_sources_counts_once() -> None:
    image = [vuln("CVE-1", "openssl", "trivy-image"), vuln("CVE-2", "zlib", "trivy-image")]
    sarif = [vuln("CVE-1", "openssl", "trivy"), vuln("CVE-3", "curl", "trivy")]
    case = merge(
        None,
        scan(
            report("trivy-image", image, ReportFormat.TRIVY),
            report("trivy", sarif, ReportFormat.SARIF),
        ),
        GATE,
    ).case
    assert len(case.findings) == 4
    assert case.counts["high"] == 3
    distinct = distinct_findings(case.active)
    assert sorted((f.advisory, f.source) for f in distinct) == [
        ("CVE-1", "trivy"),  # the alphabetically first source keeps the shared one
        ("CVE-2", "trivy-image"),
        ("CVE-3", "trivy"),
    ]


def test_the_worse_duplicate_is_the_one_counted() -> None:
    low = vuln("CVE-1", "openssl", "a-scanner", "LOW")
    high = vuln("CVE-1", "openssl", "b-scanner", "HIGH")
    assert distinct_findings([low, high]) == (high,)


def test_duplicates_within_one_source_all_count() -> None:
    # the same package in two lock files: two findings of one source
    one = vuln("CVE-1", "lodash", "trivy-fs")
    other = replace(one, id=fingerprint("trivy-fs", "other lock file"))
    assert len(distinct_findings([one, other])) == 2


def test_findings_without_a_package_are_never_merged() -> None:
    a, b = code(1), code(2, source="semgrep")
    assert distinct_findings([a, b, replace(b, advisory=a.advisory)]) == (
        a,
        b,
        replace(b, advisory=a.advisory),
    )


_vulns = st.lists(
    st.builds(
        vuln,
        st.sampled_from(["CVE-1", "CVE-2", "CVE-3"]),
        st.sampled_from(["openssl", "zlib"]),
        st.sampled_from(["trivy-image", "trivy", "grype"]),
        st.sampled_from(["CRITICAL", "HIGH", "LOW"]),
    ),
    max_size=12,
    unique_by=lambda f: f.id,
)


@given(_vulns, st.randoms())
def test_distinct_findings_properties(findings: list[Finding], rng: random.Random) -> None:
    kept = distinct_findings(findings)
    shuffled = list(findings)
    rng.shuffle(shuffled)
    assert set(distinct_findings(shuffled)) == set(kept)  # the input order never matters
    assert [f for f in findings if f in kept] == list(kept)  # kept in the order given
    keys = {(f.advisory, f.package.name) for f in findings if f.package}
    assert {(f.advisory, f.package.name) for f in kept if f.package} == keys  # nothing vanishes
    for key in keys:
        sources = {f.source for f in kept if f.package and (f.advisory, f.package.name) == key}
        assert len(sources) == 1  # one source per vulnerability and package
        worst = max(
            f.severity.rank for f in findings if f.package and (f.advisory, f.package.name) == key
        )
        assert any(
            f.severity.rank == worst
            for f in kept
            if f.package and (f.advisory, f.package.name) == key
        )


def test_suppressed_findings_are_kept_but_not_active() -> None:
    findings = [code(1), code(2, suppressed=True)]
    case = merge(None, scan(report("codeql", findings, ReportFormat.SARIF)), GATE).case
    assert len(case.findings) == 2
    assert [f.id for f in case.active] == [findings[0].id]
    assert case.counts["high"] == 1
    decision = evaluate(builtin_policy(), SUBJECT, case.active)
    assert len(decision.outcomes[0].matched) == 1


def test_a_case_with_only_suppressed_findings_is_resolved() -> None:
    findings = [code(1, suppressed=True)]
    case = merge(None, scan(report("codeql", findings, ReportFormat.SARIF)), GATE).case
    assert case.status.value == "RESOLVED" and case.max_severity is None


def test_new_fields_round_trip_through_case_yaml() -> None:
    dast = Finding(
        id=fingerprint("zap", "10098", "https://shop.example.com"),
        source="zap",
        kind=Kind.DAST,
        advisory="10098",
        severity=Severity.MEDIUM,
        title="Cross-Domain Misconfiguration",
        location=Location(url="https://shop.example.com"),
        confidence="medium",
        cwe=("CWE-264",),
        wasc="WASC-14",
        instances=(
            Instance("GET", "https://shop.example.com/a?x=", "x"),
            Instance(uri="https://shop.example.com/b"),
        ),
        instance_count=7,
    )
    suppressed = code(3, suppressed=True, confidence="high", cwe=("CWE-89",))
    case = merge(
        None,
        scan(
            report("zap", [dast], ReportFormat.ZAP),
            report("codeql", [suppressed], ReportFormat.SARIF),
        ),
        GATE,
    ).case
    files = dump_case(case)
    loaded = load_case(files["case.yaml"], files["findings.json"], folder="cases/x")
    assert dump_case(loaded) == files
    assert {t.finding for t in loaded.findings} == {dast, suppressed}
    findings_text = files["findings.json"].decode()
    assert '"suppressed": true' in findings_text and '"instance_count": 7' in findings_text
    text = files["case.yaml"].decode()
    assert "format: zap" in text and "format: sarif" in text


def test_generated_benchmark_log_parses_to_the_expected_findings(tmp_path) -> None:
    path = tmp_path / "big.sarif"
    path.write_bytes(big_sarif(3))
    assert len(parse(path).findings) == 3 * findings_per_copy()
