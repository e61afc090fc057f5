"""End to end: scans that did not complete, colliding slots and refused input, on a real cases
repo. Every refusal exits 2 and leaves the cases repo's history as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import TRIVY, commit_count, ingest_json, read_case_files, run_cli

FAILED = Path(__file__).parent / "fixtures" / "realworld" / "failed-scans"
PR42 = ("--repo", "acme/shop", "--pr", "42", "--target-branch", "main", "--commit", "abc1234")
CASE = Path("cases/github/acme/shop/pr-42/case.yaml")


def cases(work: Path) -> Path:
    return work / "security-cases"


def args(work: Path) -> tuple[str, ...]:
    return (*PR42, "--cases-repo", str(cases(work)))


def read_case(work: Path) -> dict:
    return read_case_files(cases(work) / CASE)


# ---------------------------------------------------------------- scans that did not complete


def test_a_failed_bandit_run_after_a_block_still_blocks(work: Path) -> None:
    code, first, err = ingest_json(FAILED / "bandit-dvpwa-complete.sarif", *args(work), cwd=work)
    assert code == 1, err
    assert first["high"] == 1
    before = commit_count(cases(work))
    # the same PR, bandit now run on a mistyped path: exit 0, no results, an error notification
    code, out, err = ingest_json(FAILED / "bandit-mistyped-path.sarif", *args(work), cwd=work)
    assert code == 1, err
    assert out["decision"] == "block" and out["high"] == 1
    assert out["fixed"] == 0
    assert out["incomplete_sources"] == ["bandit"]
    (reason,) = out["incomplete"]["bandit"]
    assert reason.startswith("$.runs[0].invocations[0].toolConfigurationNotifications[0]: error:")
    assert "No such file or directory" in reason and "sqlli" in reason
    assert "did not complete" in err  # the warning
    assert commit_count(cases(work)) == before + 1  # recorded
    case = read_case(work)
    assert len(case["findings"]) == 2 and case["resolved"] == []
    assert case["sources"]["bandit"]["incomplete"] == [reason]


def test_text_and_markdown_say_the_source_is_incomplete(work: Path) -> None:
    ingest_json(FAILED / "bandit-dvpwa-complete.sarif", *args(work), cwd=work)
    text = run_cli("ingest", FAILED / "semgrep-invalid-root.sarif", *args(work), cwd=work)
    assert text.returncode == 1, text.stderr
    assert "incomplete: the scanner of source semgrep-oss reported" in text.stdout
    assert "Invalid scanning root: sqlli" in text.stdout
    markdown = run_cli(
        "ingest",
        FAILED / "bandit-mistyped-path.sarif",
        *args(work),
        "--output",
        "markdown",
        cwd=work,
    )
    assert markdown.returncode == 1
    assert "Incomplete: the scanner of sources `bandit`, `semgrep-oss`" in markdown.stdout


def test_on_incomplete_fail_exits_2_after_recording(work: Path) -> None:
    ingest_json(FAILED / "bandit-dvpwa-complete.sarif", *args(work), cwd=work)
    before = commit_count(cases(work))
    proc = run_cli(
        "ingest",
        FAILED / "bandit-newer-syntax-utils.sarif",
        *args(work),
        "--on-incomplete",
        "fail",
        cwd=work,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--on-incomplete fail" in proc.stderr
    assert commit_count(cases(work)) == before + 1
    assert read_case(work)["sources"]["bandit"]["incomplete"]
    # a complete rescan clears the mark and passes on to the normal exit code
    proc = run_cli(
        "ingest",
        FAILED / "bandit-dvpwa-complete.sarif",
        *args(work),
        "--on-incomplete",
        "fail",
        cwd=work,
    )
    assert proc.returncode == 1
    assert "incomplete" not in read_case(work)["sources"]["bandit"]


def test_on_incomplete_has_no_laxer_setting(work: Path) -> None:
    proc = run_cli(
        "ingest",
        FAILED / "bandit-mistyped-path.sarif",
        *args(work),
        "--on-incomplete",
        "ignore",
        cwd=work,
    )
    assert proc.returncode == 2
    assert commit_count(cases(work)) == 0


def test_a_warning_notification_does_not_make_a_scan_incomplete(work: Path) -> None:
    code, out, err = ingest_json(FAILED / "semgrep-merge-conflict.sarif", *args(work), cwd=work)
    assert code == 0, err
    assert out["incomplete_sources"] == []


# ---------------------------------------------------------------- source slots


def image_report(tmp: Path, name: str, image: str) -> Path:
    doc = json.loads((TRIVY / "debian-buster.json").read_text())
    doc["ArtifactName"] = image
    path = tmp / name
    path.write_text(json.dumps(doc))
    return path


def test_two_image_scans_in_separate_runs_fill_two_slots(work: Path) -> None:
    shop = image_report(work, "shop.json", "ghcr.io/acme/shop:pr-42")
    worker = image_report(work, "worker.json", "ghcr.io/acme/worker:pr-42")
    clean = json.loads(worker.read_text())
    for result in clean["Results"]:
        result.pop("Vulnerabilities", None)
    worker.write_text(json.dumps(clean))
    code, first, _ = ingest_json(shop, *args(work), cwd=work)
    assert code == 1 and first["critical"] > 0
    code, second, err = ingest_json(worker, *args(work), cwd=work)
    assert code == 1, err  # the shop image's CRITICALs still count
    assert second["fixed"] == 0 and second["critical"] == first["critical"]
    assert set(read_case(work)["sources"]) == {
        "trivy-image-ghcr.io-acme-shop",
        "trivy-image-ghcr.io-acme-worker",
    }


def test_a_named_slot_holding_another_artifact_is_refused(work: Path) -> None:
    shop = image_report(work, "shop.json", "ghcr.io/acme/shop:1")
    worker = image_report(work, "worker.json", "ghcr.io/acme/worker:1")
    assert ingest_json(shop, *args(work), "--source", "images", cwd=work)[0] == 1
    before = commit_count(cases(work))
    proc = run_cli("ingest", worker, *args(work), "--source", "images", cwd=work)
    assert proc.returncode == 2
    assert "source 'images'" in proc.stderr and "ghcr.io/acme/shop:1" in proc.stderr
    assert "--source" in proc.stderr  # the hint
    assert commit_count(cases(work)) == before
    # a rebuild of the same image (another tag) is the same artifact
    rebuilt = image_report(work, "shop2.json", "ghcr.io/acme/shop:2")
    assert ingest_json(rebuilt, *args(work), "--source", "images", cwd=work)[0] == 1


def test_a_case_with_the_old_per_type_slot_keeps_using_it(work: Path) -> None:
    shop = image_report(work, "shop.json", "ghcr.io/acme/shop:1")
    # the case an older securecase wrote: slot trivy-image (simulated with --source)
    code, first, _ = ingest_json(shop, *args(work), "--source", "trivy-image", cwd=work)
    ids = {f["id"] for f in read_case(work)["findings"]}
    rebuilt = image_report(work, "shop2.json", "ghcr.io/acme/shop:2")
    code, out, err = ingest_json(rebuilt, *args(work), cwd=work)
    assert code == 1, err
    assert out["appeared"] == 0 and out["fixed"] == 0
    case = read_case(work)
    assert set(case["sources"]) == {"trivy-image"}
    assert {f["id"] for f in case["findings"]} == ids
    # another image does not take the old slot over: it gets its own
    worker = image_report(work, "worker.json", "ghcr.io/acme/worker:1")
    code, out, err = ingest_json(worker, *args(work), cwd=work)
    assert code == 1, err and out["fixed"] == 0
    assert set(read_case(work)["sources"]) == {"trivy-image", "trivy-image-ghcr.io-acme-worker"}


# ---------------------------------------------------------------- refused input, no commit


def refused(work: Path, report: Path | str, *extra: str) -> str:
    assert ingest_json(FAILED / "bandit-dvpwa-complete.sarif", *args(work), cwd=work)[0] == 1
    before = commit_count(cases(work))
    proc = run_cli("ingest", report, *args(work), *extra, cwd=work)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert commit_count(cases(work)) == before
    return proc.stderr


def test_duplicate_keys_are_refused(work: Path) -> None:
    text = (TRIVY / "pip.json").read_text()
    path = work / "dup.json"
    path.write_text(text.replace('"Results": [', '"Results": [], "Results": [', 1))
    err = refused(work, path)
    assert "$.Results: duplicate key 'Results'" in err


def test_duplicate_severity_is_refused_with_its_path(work: Path) -> None:
    text = (TRIVY / "pip.json").read_text()
    path = work / "dup.json"
    path.write_text(text.replace('"Severity": "HIGH"', '"Severity": "HIGH", "Severity": "LOW"', 1))
    err = refused(work, path)
    assert "$.Results[0].Vulnerabilities[" in err and "duplicate key 'Severity'" in err


def test_two_runs_keys_in_sarif_are_refused(work: Path) -> None:
    path = work / "dup.sarif"
    path.write_text('{"version": "2.1.0", "runs": [], "runs": []}')
    assert "$.runs: duplicate key 'runs'" in refused(work, path)


def test_nan_is_refused(work: Path) -> None:
    text = (TRIVY / "pip.json").read_text()
    path = work / "nan.json"
    path.write_text(text.replace('"SchemaVersion": 2', '"SchemaVersion": 2, "X": NaN', 1))
    assert "$.X: NaN is not a JSON number" in refused(work, path)


def test_a_fifo_is_refused_without_blocking(work: Path) -> None:
    fifo = work / "report.fifo"
    os.mkfifo(fifo)
    assert "not a regular file (a named pipe (FIFO))" in refused(work, fifo)


@pytest.mark.parametrize("path", ["/dev/zero", "."])
def test_devices_and_directories_are_refused(work: Path, path: str) -> None:
    assert "not a regular file" in refused(work, path)


def test_a_report_above_the_size_limit_is_refused(work: Path) -> None:
    err = refused(work, TRIVY / "pip.json", "--max-report-bytes", "1000")
    assert "above the limit of 1,000 (--max-report-bytes)" in err
    assert "filter at the scanner" in err


def test_a_case_above_max_findings_is_refused(work: Path) -> None:
    err = refused(work, TRIVY / "distroless-python27.json", "--max-findings", "3")
    assert "--max-findings" in err and "filter at the scanner" in err


def test_findings_kept_in_the_case_count_toward_the_limit(work: Path) -> None:
    # 2 bandit findings are in the case; 2 more from pip.json make 4 > 3
    err = refused(work, TRIVY / "pip.json", "--max-findings", "3")
    assert "the case would hold 4 findings" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"version": "2.1.0", "runs": []}', "$.runs: empty"),
        ('{"@programName": "OWASP ZAP", "@version": "2.14.0"}', "$.site: missing"),
        ('{"SchemaVersion": 2}', "not a recognised scanner report"),
        ('{"SchemaVersion": 2, "ArtifactName": "x"}', "$.Results: missing"),
    ],
)
def test_no_container_of_results_is_an_error(work: Path, text: str, message: str) -> None:
    path = work / "empty.json"
    path.write_text(text)
    assert message in refused(work, path)


def test_zap_xml_of_nested_unknown_elements_is_refused(work: Path) -> None:
    path = work / "zap.xml"
    depth = 200_000
    path.write_text(
        "<?xml version='1.0'?><OWASPZAPReport version='2.14.0'>"
        + "<x>" * depth
        + "</x>" * depth
        + "</OWASPZAPReport>"
    )
    assert "/OWASPZAPReport/x[0]: unknown element" in refused(work, path)


def test_zap_xml_with_only_unknown_children_is_refused(work: Path) -> None:
    path = work / "zap.xml"
    path.write_text(
        "<?xml version='1.0'?><OWASPZAPReport version='2.14.0'>"
        "<site name='https://shop'><alerts><alertitem><pluginid>1</pluginid><riskcode>3"
        "</riskcode></alertitem></alerts><extra/></site></OWASPZAPReport>"
    )
    assert "/OWASPZAPReport/site[0]/extra[0]: unknown element" in refused(work, path)
