"""`securecase cases validate`, and a broken case that stops nothing but its own subject."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import TRIVY, git, run_cli

POLICY = (
    "version: 1\nrules:\n  - id: no-high\n    block: {severity_at_least: HIGH, new_only: true}\n"
)
SHOP_MAIN = "cases/github/acme/shop/branch-main"
WEB_MAIN = "cases/github/acme/web/branch-main"


def ingest(work: Path, *args: str | Path) -> tuple[int, str]:
    proc = run_cli(
        "ingest",
        *args,
        "--cases-repo",
        work / "cases-repo",
        "--policy",
        work / "policy.yaml",
        cwd=work,
    )
    return proc.returncode, proc.stderr


@pytest.fixture
def repo(work: Path) -> Path:
    """A cases repo with three cases made by real ingests."""
    (work / "policy.yaml").write_text(POLICY)
    for args in (
        ("--repo", "acme/shop", "--branch", "main"),
        ("--repo", "acme/web", "--branch", "main"),
        ("--repo", "acme/shop", "--pr", "3", "--branch", "feature", "--target-branch", "main"),
    ):
        code, err = ingest(work, TRIVY / "pip.json", *args)
        assert code in (0, 1), err
    return work / "cases-repo"


def edit(repo: Path, path: str, old: str, new: str) -> None:
    """A human's edit of a case file, committed."""
    file = repo / path
    text = file.read_text()
    assert old in text, text
    file.write_text(text.replace(old, new, 1))
    git(repo, "commit", "-qam", f"hand edit of {path}")


def validate(work: Path, repo: Path, *paths: str, output: str = "text") -> tuple[int, str, str]:
    proc = run_cli("cases", "validate", *paths, "--cases-repo", repo, "--output", output, cwd=work)
    return proc.returncode, proc.stdout, proc.stderr


def line_of(repo: Path, path: str, text: str) -> int:
    lines = (repo / path).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


def test_a_clean_repo_is_valid(work: Path, repo: Path) -> None:
    code, out, err = validate(work, repo, output="json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["valid"] is True and report["problems"] == []
    assert report["checked"] == [
        "cases/github/acme/shop/branch-main",
        "cases/github/acme/shop/pr-3",
        WEB_MAIN,
    ]


def test_one_broken_case_exits_2_with_file_line_and_stops_no_other_subject(
    work: Path, repo: Path
) -> None:
    edit(repo, f"{SHOP_MAIN}/case.yaml", "status: NEW", "status: TRIAGE")
    code, out, _ = validate(work, repo)
    assert code == 2
    line = line_of(repo, f"{SHOP_MAIN}/case.yaml", "status:")
    assert re.search(rf"^{SHOP_MAIN}/case.yaml:{line}: .*status", out, re.M), out
    assert "acme/web" not in out and "pr-3" not in out

    # Only the given folder: the broken one is not among them, so it passes.
    assert validate(work, repo, WEB_MAIN)[0] == 0
    assert validate(work, repo, f"{SHOP_MAIN}/case.yaml")[0] == 2

    # Listing goes on without it, with a warning naming the file.
    listing = run_cli("cases", "list", "--cases-repo", repo, "--output", "json", cwd=work)
    assert listing.returncode == 0, listing.stderr
    keys = [row["key"] for row in json.loads(listing.stdout)]
    assert keys == ["github::acme::shop::PR::3", "github::acme::web::BR::main"]
    assert f"{SHOP_MAIN}/case.yaml" in listing.stderr and "warning" in listing.stderr

    # Another repository's ingest is untouched.
    assert ingest(work, TRIVY / "fluentd-gems.json", "--repo", "acme/web", "--branch", "main")[
        0
    ] in (0, 1)
    # A pull request into the broken branch warns and judges every finding as new.
    code, err = ingest(
        work,
        TRIVY / "fluentd-gems.json",
        *("--repo", "acme/shop", "--pr", "3", "--branch", "feature", "--target-branch", "main"),
    )
    assert code == 1, err
    assert "target branch's case is broken" in err and f"{SHOP_MAIN}/case.yaml" in err
    # The broken subject's own ingest still fails closed, and nothing overwrites the file.
    before = (repo / SHOP_MAIN / "case.yaml").read_bytes()
    code, err = ingest(work, TRIVY / "pip.json", "--repo", "acme/shop", "--branch", "main")
    assert code == 2 and f"{SHOP_MAIN}/case.yaml" in err
    assert (repo / SHOP_MAIN / "case.yaml").read_bytes() == before


def test_counts_that_disagree_with_the_findings_are_reported(work: Path, repo: Path) -> None:
    path = f"{WEB_MAIN}/case.yaml"
    text = (repo / path).read_text()
    high = re.search(r"^  high: (\d+)$", text, re.M)
    assert high is not None
    edit(repo, path, high.group(0), f"  high: {int(high.group(1)) + 5}")
    code, out, _ = validate(work, repo)
    assert code == 2
    line = line_of(repo, path, "  high:")
    assert f"{path}:{line}: $.counts.high: {int(high.group(1)) + 5} but the findings hold" in out


def test_a_case_in_the_wrong_folder_and_a_changed_raw_report(work: Path, repo: Path) -> None:
    moved = "cases/github/acme/shop/branch-release"
    shutil.copytree(repo / SHOP_MAIN, repo / moved)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "copy a case")
    raw = next((repo / WEB_MAIN / "raw").iterdir())
    raw.write_bytes(raw.read_bytes() + b"\n")
    code, out, _ = validate(work, repo)
    assert code == 2
    key_line = line_of(repo, f"{moved}/case.yaml", "key:")
    assert f"{moved}/case.yaml:{key_line}: $.key: 'github::acme::shop::BR::main' belongs in" in out
    assert f"{WEB_MAIN}/case.yaml:" in out and "sha256" in out


def test_paths_outside_the_cases_folder_are_a_usage_error(work: Path, repo: Path) -> None:
    code, _, err = validate(work, repo, "policy.yaml")
    assert code == 2 and "not inside cases/" in err


def test_findings_json_that_disagrees_with_case_yaml(work: Path, repo: Path) -> None:
    findings = repo / WEB_MAIN / "findings.json"
    doc = json.loads(findings.read_text())
    high = [f for f in doc["findings"] if f["severity"] == "HIGH"]
    assert high, doc
    doc["findings"] = [f for f in doc["findings"] if f["severity"] != "HIGH"]
    findings.write_text(json.dumps(doc, indent=2) + "\n")
    code, out, _ = validate(work, repo)
    assert code == 2
    path = f"{WEB_MAIN}/case.yaml"
    line = line_of(repo, path, "  high:")
    assert f"{path}:{line}: $.counts.high: {len(high)} but the findings hold 0 active" in out

    findings.write_text("{ not json")
    code, out, _ = validate(work, repo, WEB_MAIN)
    assert code == 2
    assert f"{WEB_MAIN}/findings.json" in out
