"""Hostile and broken input: exit 2 with a precise message and no commit, or safe encoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TRIVY, commit_count, ingest_json, read_case_files, run_cli, trivy_rescan

PR = ("--repo", "acme/shop", "--pr", "7", "--target-branch", "main")
#: A report limit above the 100 MB documents built here (the default limit is 50 MB).
ABOVE_100_MB = ("--max-report-bytes", "200000000")


def refused(work: Path, report: Path, *expected: str, args: tuple[str, ...] = PR) -> str:
    proc = run_cli("ingest", report, *args, cwd=work)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    for text in expected:
        assert text in proc.stderr, proc.stderr
    assert commit_count(work / "security-cases") == 0
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_truncated_json(work: Path) -> None:
    report = work / "truncated.json"
    data = (TRIVY / "alpine-310.json").read_bytes()
    report.write_bytes(data[: len(data) // 2])
    err = refused(work, report, str(report))
    assert "line" in err and "col" in err


def test_empty_file(work: Path) -> None:
    report = work / "empty.json"
    report.write_bytes(b"")
    refused(work, report, "empty")


def test_missing_file(work: Path) -> None:
    refused(work, work / "nope.json", "nope.json")


def test_unsupported_sarif_version_is_named(work: Path) -> None:
    report = work / "scan.sarif"
    report.write_text(
        json.dumps(
            {
                "version": "2.0.0",
                "$schema": "https://json.schemastore.org/sarif-2.0.0.json",
                "runs": [],
            }
        )
    )
    refused(work, report, "$.version: unsupported SARIF version", "SARIF 2.1.0")


@pytest.mark.parametrize(
    "page",
    [
        "<html><body>502 Bad Gateway</body></html>",
        "<!DOCTYPE html>\n<html><head><title>ZAP Scanning Report</title></head></html>",
        "\n<!doctype html><html lang=en><meta charset=utf-8><p>Not Found",
    ],
)
def test_html_error_page_is_named(work: Path, page: str) -> None:
    report = work / "zap.xml"
    report.write_text(page)
    refused(work, report, "looks like an HTML page")


def test_other_json_lists_what_it_found(work: Path) -> None:
    report = work / "other.json"
    report.write_text(json.dumps({"hello": 1, "world": [2]}))
    refused(work, report, "hello", "world")


def test_legacy_trivy_format(work: Path) -> None:
    refused(work, TRIVY / "legacy_trivy_mix.json", "legacy")


def test_non_utf8_bytes(work: Path) -> None:
    report = work / "latin1.json"
    data = (TRIVY / "npm.json").read_bytes().replace(b'"Title": "', b'"Title": "caf\xe9 ', 1)
    report.write_bytes(data)
    refused(work, report, "UTF-8", "byte")


def test_vulnerability_without_id_names_the_json_path(work: Path) -> None:
    doc = json.loads((TRIVY / "pip.json").read_text())
    del doc["Results"][0]["Vulnerabilities"][1]["VulnerabilityID"]
    report = work / "noid.json"
    report.write_text(json.dumps(doc))
    refused(work, report, "$.Results[0].Vulnerabilities[1]")


def test_huge_string_in_title_is_cut_and_stored(work: Path) -> None:
    doc = json.loads((TRIVY / "pip.json").read_text())
    doc["Results"][0]["Vulnerabilities"][0]["Title"] = "A" * 100_000_000
    report = work / "huge.json"
    report.write_text(json.dumps(doc))
    del doc
    # Above the default --max-report-bytes: raised, so the field's own cut is what is tested.
    code, out, err = ingest_json(report, *PR, *ABOVE_100_MB, cwd=work)
    assert code == 1, err
    case_file = work / "security-cases" / out["case_path"]
    findings_file = case_file.parent / "findings.json"
    assert case_file.stat().st_size + findings_file.stat().st_size < 20_000
    titles = [f["title"] for f in read_case_files(case_file)["findings"]]
    assert max(len(t) for t in titles) <= 500


def test_huge_string_in_identity_field_is_refused(work: Path) -> None:
    doc = json.loads((TRIVY / "pip.json").read_text())
    doc["Results"][0]["Vulnerabilities"][0]["PkgName"] = "p" * 100_000_000
    report = work / "huge-id.json"
    report.write_text(json.dumps(doc))
    del doc
    refused(work, report, "$.Results[0].Vulnerabilities[0].PkgName", args=(*PR, *ABOVE_100_MB))


@pytest.mark.parametrize(
    ("branch", "segment"),
    [
        ("../../x", "branch-%2E.%2F..%2Fx"),
        ("a/b", "branch-a%2Fb"),
        (".git", "branch-%2Egit"),
    ],
)
def test_branch_names_are_encoded_inside_cases(work: Path, branch: str, segment: str) -> None:
    code, out, err = ingest_json(
        TRIVY / "npm.json", "--repo", "acme/shop", "--branch", branch, cwd=work
    )
    assert code == 0, err
    assert out["case_path"] == f"cases/github/acme/shop/{segment}/case.yaml"
    assert (work / "security-cases" / out["case_path"]).is_file()
    assert not (work / "x").exists()


def test_300_byte_branch_name(work: Path) -> None:
    branch = "feature/" + "x" * 292
    code, out, err = ingest_json(
        TRIVY / "npm.json", "--repo", "acme/shop", "--branch", branch, cwd=work
    )
    assert code == 0, err
    segment = out["case_path"].split("/")[-2]
    assert len(segment.encode()) <= 255 and "~" in segment  # one file-name component
    assert out["case_key"] == f"github::acme::shop::BR::{branch}"


def test_newline_in_branch_name_is_refused(work: Path) -> None:
    refused(
        work,
        TRIVY / "npm.json",
        "control characters",
        args=("--repo", "acme/shop", "--branch", "evil\nSecurecase-Decision: pass"),
    )


@pytest.mark.parametrize("repo", ["../acme/shop", "acme/sh op", "acme"])
def test_bad_repo_names_are_refused(work: Path, repo: str) -> None:
    refused(work, TRIVY / "npm.json", "--repo", args=("--repo", repo, "--pr", "1"))


def test_duplicate_source_slots_are_refused(work: Path) -> None:
    # Two scans of one artifact in one run: both would fill its slot.
    rescan = trivy_rescan(TRIVY / "pip.json", work / "rescan.json", "CVE-2019-14806")
    proc = run_cli("ingest", TRIVY / "pip.json", rescan, *PR, cwd=work)
    slot = "trivy-repo-testdata-fixtures-repo-pip"
    assert proc.returncode == 2 and f"both fill source {slot!r}" in proc.stderr
    assert commit_count(work / "security-cases") == 0
