"""End-to-end: Trivy, SARIF and ZAP reports in one case, cross-scanner duplicates, a live
bandit scan, and malformed SARIF refused without a commit. Real CLI, real git."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import (
    FIXTURES,
    TRIVY,
    clean_env,
    commit_count,
    git,
    ingest_json,
    read_case_files,
    run_cli,
)

SARIF = FIXTURES / "sarif"
ZAP = FIXTURES / "zap"
SAMPLES = Path(__file__).resolve().parent / "samples"
PR42 = ("--repo", "acme/shop", "--pr", "42", "--target-branch", "main")
CASE = "cases/github/acme/shop/pr-42/case.yaml"
#: The default slots of alpine-310's Trivy JSON and of its Trivy SARIF: named after the image.
ALPINE_TRIVY = "trivy-image-testdata-fixtures-images-alpine-310.tar.gz"
ALPINE_SARIF = "trivy-testdata-fixtures-images-alpine-310.tar.gz"


def cases_repo(work: Path) -> Path:
    return work / "security-cases"


def read_case(work: Path) -> dict[str, Any]:
    return read_case_files(cases_repo(work) / CASE)


def policy(tmp_path: Path, rules: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nmode: pr_gate\nrules:\n" + rules)
    return path


def test_three_scanners_one_commit_one_decision(work: Path) -> None:
    code, out, err = ingest_json(
        TRIVY / "alpine-310.json",
        SARIF / "codeQL-output.sarif",
        ZAP / "owasp_zap.json",
        *PR42,
        "--commit",
        "c1000000",
        cwd=work,
    )
    assert code == 1, err  # CodeQL's HIGH findings block the PR into main
    assert out["sources"] == {"codeql": 72, ALPINE_TRIVY: 4, "zap": 4}
    assert out["counts"] == {
        "critical": 0,
        "high": 11,
        "medium": 4 + 4 + 1,
        "low": 57,
        "info": 3,
        "unknown": 0,
    }
    repo = cases_repo(work)
    assert commit_count(repo) == 1
    files = sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert files == [
        CASE,
        "cases/github/acme/shop/pr-42/findings.json",
        "cases/github/acme/shop/pr-42/raw/codeql.sarif",
        f"cases/github/acme/shop/pr-42/raw/{ALPINE_TRIVY}.json",
        "cases/github/acme/shop/pr-42/raw/zap.json",
    ]
    case = read_case(work)
    assert {s["format"] for s in case["sources"].values()} == {"trivy", "sarif", "zap"}
    assert case["sources"]["codeql"]["tool"] == "CodeQL"
    kinds = {f["kind"] for f in case["findings"]}
    assert kinds == {"vulnerability", "code", "dast"}
    dast = next(f for f in case["findings"] if f["kind"] == "dast")
    assert dast["location"]["url"] == "https://example-backend.example.com"
    assert dast["instances"] and dast["instance_count"] >= len(dast["instances"])
    assert dast["confidence"] in {"low", "medium", "high"}
    code_finding = next(f for f in case["findings"] if f["advisory"] == "py/sql-injection")
    assert code_finding["cwe"] == ["CWE-89"] and code_finding["location"]["start_line"]

    # a later run of one scanner replaces only that scanner's findings
    code, out, err = ingest_json(
        ZAP / "zap-results-first-scan.xml", *PR42, "--commit", "c2000000", cwd=work
    )
    assert code == 1, err
    assert commit_count(repo) == 2
    assert out["sources"] == {"codeql": 72, ALPINE_TRIVY: 4, "zap": 15}
    assert out["fixed"] == 4 and out["appeared"] == 15
    case = read_case(work)
    assert case["sources"]["codeql"]["commit"] == "c1000000"
    assert case["sources"][ALPINE_TRIVY]["commit"] == "c1000000"
    assert case["sources"]["zap"]["commit"] == "c2000000"
    assert case["sources"]["zap"]["raw"].endswith("raw/zap.xml")
    by_source: dict[str, set[str]] = {}
    for finding in case["findings"]:
        by_source.setdefault(finding["source"], set()).add(finding["first_seen"].get("commit"))
    assert by_source == {"codeql": {"c1000000"}, ALPINE_TRIVY: {"c1000000"}, "zap": {"c2000000"}}
    assert {f["source"] for f in case["resolved"]} == {"zap"}
    assert out["counts"]["high"] == 11 + 4  # ZAP's four HIGH alerts join CodeQL's

    # the second ZAP scan updates the same alerts: only the new ones are new
    code, out, err = ingest_json(
        ZAP / "zap-results-second-scan.xml", *PR42, "--commit", "c3000000", cwd=work
    )
    assert code == 1, err
    assert (out["appeared"], out["fixed"]) == (4, 1)


def test_sources_and_kinds_conditions_across_scanners(work: Path, tmp_path: Path) -> None:
    rules = (
        "  - id: no-high-dast\n"
        "    block: {kinds: [dast], severity_at_least: HIGH}\n"
        "    max_allowed: 0\n"
        "  - id: codeql-budget\n"
        "    block: {sources: [codeql], severity_at_least: MEDIUM}\n"
        "    max_allowed: 20\n"
        "  - id: image-vulns\n"
        "    block: {kinds: [vulnerability], sources: ['trivy*']}\n"
        "    max_allowed: 3\n"
    )
    code, out, err = ingest_json(
        TRIVY / "alpine-310.json",
        SARIF / "alpine-310.sarif",
        SARIF / "codeQL-output.sarif",
        ZAP / "zap-results-first-scan.xml",
        *PR42,
        "--policy",
        policy(tmp_path, rules),
        cwd=work,
    )
    assert code == 1, err
    assert out["rules"] == ["no-high-dast", "image-vulns"]
    # eight vulnerability findings in the case (two scanners), four counted
    assert "image-vulns: 4 vulnerability findings from trivy*" in out["reasons"][1]
    assert "no-high-dast: 4 dast findings at HIGH or above" in out["reasons"][0]


def test_same_cve_from_two_scanners_counts_once(work: Path, tmp_path: Path) -> None:
    budget = policy(
        tmp_path,
        "  - id: four-medium\n    block: {severity_at_least: MEDIUM}\n    max_allowed: 4\n",
    )
    code, out, err = ingest_json(
        TRIVY / "alpine-310.json", SARIF / "alpine-310.sarif", *PR42, "--policy", budget, cwd=work
    )
    assert code == 0, err  # eight findings, four distinct: within the budget
    assert out["counts"]["medium"] == 4
    assert out["sources"] == {ALPINE_SARIF: 4, ALPINE_TRIVY: 4}
    case = read_case(work)
    assert case["counts"]["medium"] == 4
    pairs = sorted((f["source"], f["advisory"], f["package"]["name"]) for f in case["findings"])
    assert len(pairs) == 8  # both scanners stay visible in the case
    from_sarif = {p[1:] for p in pairs if p[0] == ALPINE_SARIF}
    assert from_sarif == {p[1:] for p in pairs if p[0] == ALPINE_TRIVY} and len(from_sarif) == 4


def test_suppressed_results_are_kept_but_neither_counted_nor_gated(
    work: Path, tmp_path: Path
) -> None:
    strict = policy(
        tmp_path, "  - id: two-medium\n    block: {severity_at_least: MEDIUM}\n    max_allowed: 2\n"
    )
    code, out, err = ingest_json(
        SARIF / "suppression_test.sarif", *PR42, "--policy", strict, cwd=work
    )
    assert code == 0, err
    assert out["counts"]["medium"] == 2
    case = read_case(work)
    assert len(case["findings"]) == 5
    assert sum(f.get("suppressed", False) for f in case["findings"]) == 3
    assert case["status"] == "NEW"


def test_only_suppressed_findings_resolve_the_case(work: Path, tmp_path: Path) -> None:
    doc = json.loads((SARIF / "suppression_test.sarif").read_bytes())
    results = doc["runs"][0]["results"]
    doc["runs"][0]["results"] = [r for r in results if r.get("suppressions")]
    report = tmp_path / "suppressed.sarif"
    report.write_text(json.dumps(doc))
    code, out, err = ingest_json(report, *PR42, cwd=work)
    assert code == 0, err
    assert out["status"] == "RESOLVED" and out["max_severity"] is None


def test_secrets_never_reach_the_cases_repo(work: Path) -> None:
    code, out, err = ingest_json(SARIF / "gitleaks_7.5.0.sarif", *PR42, cwd=work)
    assert code == 0, err  # MEDIUM secrets: the default gate blocks HIGH and above
    repo = cases_repo(work)
    stored = (repo / "cases/github/acme/shop/pr-42/raw/gitleaks.sarif").read_text()
    assert "AKIAIOSFODNN7EXAMPLE" not in stored
    assert "AKIAIOSFODNN7EXAMPLE" not in (repo / CASE).read_text()
    assert "AKIAIOSFODNN7EXAMPLE" not in git(repo, "log", "-p")


def test_live_bandit_scan_is_ingested(work: Path, tmp_path: Path) -> None:
    log = tmp_path / "bandit.sarif"
    scan = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", "vulnerable_app", "-f", "sarif", "-o", str(log)],
        cwd=SAMPLES,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert scan.returncode == 1, scan.stderr  # bandit exits 1 when it found issues
    code, out, err = ingest_json(log, *PR42, "--commit", "115e1000", cwd=work)
    assert code == 1, err  # shell=True and md5 are HIGH: the PR into main is blocked
    assert list(out["sources"]) == ["bandit"]
    case = read_case(work)
    rules = {f["advisory"] for f in case["findings"]}
    assert {"B602", "B307", "B301", "B105", "B104", "B324"} <= rules
    assert all(f["location"]["path"] == "vulnerable_app/app.py" for f in case["findings"])
    kinds = {f["advisory"]: f["kind"] for f in case["findings"]}
    assert kinds.pop("B105") == "secret"  # a hard-coded password: masked like any secret
    assert set(kinds.values()) == {"code"}
    repo = cases_repo(work)
    assert "hunter2" in (SAMPLES / "vulnerable_app/app.py").read_text()
    assert "hunter2" not in (repo / CASE).read_text()
    assert "hunter2" not in (repo / "cases/github/acme/shop/pr-42/raw/bandit.sarif").read_text()
    assert "hunter2" not in git(repo, "log", "-p")
    assert out["counts"]["high"] >= 2
    assert case["sources"]["bandit"]["tool"] == "Bandit"
    assert case["sources"]["bandit"]["version"]

    # the same scan again: same findings, no new commit
    before = commit_count(cases_repo(work))
    code, out, _ = ingest_json(log, *PR42, "--commit", "115e1000", cwd=work)
    assert out["committed"] is False and commit_count(cases_repo(work)) == before


def _minimal_log(**run: Any) -> dict[str, Any]:
    return {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "Scanner", "rules": [{"id": "R1"}]}},
                "results": [{"ruleId": "R1", "message": {"text": "x"}}],
                **run,
            }
        ],
    }


MALFORMED: dict[str, tuple[str, str]] = {
    "wrong-version": (
        json.dumps({**_minimal_log(), "version": "2.0.0"}),
        "$.version: unsupported SARIF version",
    ),
    "missing-runs": (
        json.dumps(
            {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0"}
        ),
        "$.runs: missing",
    ),
    "results-not-a-list": (
        json.dumps(_minimal_log(results={"ruleId": "R1"})),
        "$.runs[0].results: expected an array, got object",
    ),
    "rule-index-out-of-range": (
        json.dumps(_minimal_log(results=[{"ruleId": "R1", "ruleIndex": 5, "message": {}}])),
        "$.runs[0].results[0].ruleIndex: 5 is out of range",
    ),
    "absurd-nesting": (
        json.dumps(_minimal_log(properties="DEEP")).replace(
            '"DEEP"', '{"a": [' * 2000 + "1" + "]}" * 2000
        ),
        "nested too deeply to be a scanner report at $.runs[0].properties.a[0].a[0]",
    ),
}


def test_malformed_sarif_exits_2_with_the_json_path_and_no_commit(
    work: Path, tmp_path: Path
) -> None:
    for name, (text, path) in MALFORMED.items():
        report = tmp_path / f"{name}.sarif"
        report.write_text(text)
        proc = run_cli("ingest", report, *PR42, cwd=work)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert path in proc.stderr, (name, proc.stderr)
        assert str(report) in proc.stderr
        assert commit_count(cases_repo(work)) == 0, name


def test_a_malformed_report_among_good_ones_commits_nothing(work: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sarif"
    bad.write_text(MALFORMED["rule-index-out-of-range"][0])
    proc = run_cli("ingest", TRIVY / "alpine-310.json", ZAP / "juicy2.xml", bad, *PR42, cwd=work)
    assert proc.returncode == 2 and "ruleIndex" in proc.stderr
    assert commit_count(cases_repo(work)) == 0


def test_xml_entity_tricks_exit_2(work: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil.xml"
    evil.write_bytes(
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        b'<OWASPZAPReport version="2.10.0"><site name="&b;"><alerts/></site></OWASPZAPReport>\n'
    )
    proc = run_cli("ingest", evil, *PR42, cwd=work)
    assert proc.returncode == 2 and "XML refused" in proc.stderr
    assert commit_count(cases_repo(work)) == 0


def test_forced_format_and_help(work: Path) -> None:
    code, out, err = ingest_json(ZAP / "owasp_zap.json", *PR42, "--format", "zap", cwd=work)
    assert code == 0, err
    assert out["sources"] == {"zap": 4}
    proc = run_cli("ingest", ZAP / "owasp_zap.json", *PR42, "--format", "sarif", cwd=work)
    assert proc.returncode == 2 and "$.version" in proc.stderr
    help_text = run_cli("ingest", "--help", cwd=work).stdout
    assert "[auto|trivy|sarif|zap]" in help_text


def test_cases_show_marks_suppressed_findings(work: Path) -> None:
    code, _, err = ingest_json(
        SARIF / "suppression_test.sarif", ZAP / "juicy2.xml", *PR42, cwd=work
    )
    assert code == 0, err
    shown = run_cli("cases", "show", "github::acme::shop::PR::42", cwd=work)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("(suppressed by the scanner, not counted)") == 3
    assert "at https://juice-shop.herokuapp.com" in shown.stdout
