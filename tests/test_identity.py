"""Finding identity across real code edits, through the real CLI and real git.

Every report here is a real scanner run (tests/fixtures/MANIFEST.md, realworld section),
except hostile-object-fingerprints.sarif and the Grype/OSV-Scanner samples, which are
hand-made because no installable scanner writes them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, git, ingest_json, run_cli
from securecase.scanners import parse_bytes

REAL = FIXTURES / "realworld"
KEY = "github::acme::shop::BR::main"


def scan(work: Path, *reports: Path, root: Path | str | None = None) -> dict[str, Any]:
    """Ingest ``reports`` as the next scan of the main branch case; the JSON output."""
    extra: list[str | Path] = ["--source-root", root] if root is not None else []
    code, data, stderr = ingest_json(
        *reports,
        "--cases-repo",
        work / "cases",
        "--repo",
        "acme/shop",
        "--branch",
        "main",
        "--mode",
        "ci",
        *extra,
        cwd=work,
    )
    assert code == 0, stderr
    data["stderr"] = stderr
    return data


def case_of(work: Path) -> dict[str, Any]:
    proc = run_cli(
        "cases", "show", KEY, "--cases-repo", work / "cases", "--output", "json", cwd=work
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def by_id(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in findings}


def test_a_tag_change_inside_a_resource_changes_no_finding(work: Path) -> None:
    first = scan(work, REAL / "iac-identity" / "checkov-rev1.sarif")
    assert first["appeared"] == 31
    before = by_id(case_of(work)["findings"])
    second = scan(work, REAL / "iac-identity" / "checkov-rev2.sarif")
    assert (second["appeared"], second["fixed"]) == (0, 0)
    assert set(by_id(case_of(work)["findings"])) == set(before)


def test_a_skip_comment_suppresses_its_finding_and_leaves_the_neighbours(work: Path) -> None:
    scan(work, REAL / "iac-identity" / "checkov-rev2.sarif")
    before = by_id(case_of(work)["findings"])
    third = scan(work, REAL / "iac-identity" / "checkov-rev3.sarif")
    assert (third["appeared"], third["fixed"]) == (0, 0)
    assert third["counts"]["high"] == 30  # the skipped check no longer counts
    after = by_id(case_of(work)["findings"])
    assert set(after) == set(before)  # the same 31 findings, none re-identified
    suppressed = [f for f in after.values() if f.get("suppressed")]
    assert [(f["advisory"], f["location"]["start_line"]) for f in suppressed] == [("CKV_AWS_18", 1)]
    moved = {
        i: (before[i]["location"]["start_line"], after[i]["location"]["start_line"]) for i in after
    }
    assert (23, 24) in moved.values() and (113, 114) in moved.values()


def pipx_root(side: str) -> str:
    """The checkout root of the CI runner that scanned pipx (side a or b), as its report
    records it: the part of a result's ``file://`` URI before ``/src/``."""
    log = json.loads((REAL / "absolute-roots" / f"bandit-pipx-root-{side}.sarif").read_text())
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    return str(uri["uri"]).removeprefix("file://").partition("/src/")[0]


@pytest.mark.parametrize(
    ("report", "roots"),
    [
        ("bandit-pipx-root-{}.sarif", (pipx_root("a"), pipx_root("b"))),
        ("ruff-dvpwa-root-{}.sarif", ("dvpwa-source", "dvpwa-source")),
    ],
)
def test_the_same_code_from_two_absolute_roots_is_no_change(
    work: Path, report: str, roots: tuple[str, str]
) -> None:
    folder = REAL / "absolute-roots"
    for side, root in zip("ab", roots, strict=True):
        given_root = root if root.startswith("/") else folder / root
        result = scan(work, folder / report.format(side), root=given_root)
        if side == "b":
            assert (result["appeared"], result["fixed"]) == (0, 0)
        assert "outside the checkout" not in result["stderr"]
    paths = {f["location"]["path"] for f in case_of(work)["findings"]}
    assert paths and not any(p.startswith("/") for p in paths)


def test_an_absolute_path_outside_the_root_is_kept_and_warned_about(work: Path) -> None:
    result = scan(work, REAL / "absolute-roots" / "bandit-pipx-root-a.sarif", root="/elsewhere")
    assert "absolute path outside the checkout root" in result["stderr"]
    paths = {f["location"]["path"] for f in case_of(work)["findings"]}
    assert paths and all(p.startswith(pipx_root("a") + "/src/") for p in paths)


def test_a_snippetless_dockerfile_lint_reads_the_flagged_lines(work: Path) -> None:
    scan(work, REAL / "hadolint-dockerfile-rev1.sarif", root=REAL / "dockerfile-rev1")
    before = by_id(case_of(work)["findings"])
    second = scan(work, REAL / "hadolint-dockerfile-rev2.sarif", root=REAL / "dockerfile-rev2")
    assert (second["appeared"], second["fixed"]) == (1, 1)
    case = case_of(work)
    [new] = [f for f in case["findings"] if f["id"] not in before]
    [fixed] = case["resolved"]
    assert (new["advisory"], new["location"]["start_line"]) == ("DL3020", 18)
    assert (fixed["advisory"], fixed["location"]["start_line"]) == ("DL3020", 19)
    moved = {
        before[i]["location"]["start_line"]: f["location"]["start_line"]
        for i, f in by_id(case["findings"]).items()
        if i in before and f["advisory"] == "DL3020"
    }
    assert moved == {18: 19, 20: 21}


def test_identical_flagged_lines_are_told_apart_by_their_order(work: Path) -> None:
    scan(work, REAL / "ruff-views-rev1.sarif", root=REAL / "ruff-rev1")
    before = by_id(case_of(work)["findings"])
    second = scan(work, REAL / "ruff-views-rev2.sarif", root=REAL / "ruff-rev2")
    assert (second["appeared"], second["fixed"]) == (1, 1)
    [new] = [f for f in case_of(work)["findings"] if f["id"] not in before]
    assert new["location"]["start_line"] == 24


@pytest.mark.parametrize(
    ("report", "expected"),
    [("semgrep-fetch_both.sarif", 2), ("bandit-fetch_both.sarif", 4), ("ruff-fetch_both.sarif", 4)],
)
def test_same_rule_results_on_one_line_are_separate_findings(
    work: Path, report: str, expected: int
) -> None:
    result = scan(work, REAL / "same-line" / report, root=REAL / "same-line")
    assert result["appeared"] == expected
    lines = {f["location"]["start_line"] for f in case_of(work)["findings"]}
    assert lines == {5}


def test_line_zero_is_dropped_with_a_warning_naming_its_path(work: Path) -> None:
    result = scan(work, REAL / "bandit17-examples.sarif")
    assert (
        "$.runs[0].results[500].locations[0].physicalLocation.region.startLine"
        in (result["stderr"])
    )
    warnings = [line for line in result["stderr"].splitlines() if "warning" in line]
    dropped = [line for line in warnings if "startLine" in line]
    assert len(dropped) == 1 and "line 0 is not a line" in dropped[0]  # one, naming its path
    # The only other warning: bandit says it could not parse a file (an error-level
    # notification), so the scan did not complete.
    [incomplete] = [line for line in warnings if line not in dropped]
    assert "source bandit: the scan did not complete" in incomplete
    [b613] = [f for f in case_of(work)["findings"] if f["advisory"] == "B613"]
    assert b613["location"]["path"] == "examples/trojansource.py"
    assert "start_line" not in b613["location"]


def test_object_fingerprints_are_dropped_with_warnings(work: Path) -> None:
    result = scan(work, REAL / "hostile-object-fingerprints.sarif")
    stderr = result["stderr"]
    assert '$.runs[0].results[0].fingerprints["matchHash/v1"]' in stderr
    assert "$.runs[0].results[0].partialFingerprints.primaryLocationLineHash" in stderr
    assert "(and 0 more" not in stderr
    assert result["appeared"] == 2


def test_the_stored_masked_log_is_valid_and_reingests(work: Path) -> None:
    original = REAL.parent / "sarif" / "gitleaks_7.5.0.sarif"
    first = scan(work, original)
    stored = work / "cases" / "cases" / "github" / "acme" / "shop" / "branch-main" / "raw"
    [raw] = list(stored.iterdir())
    document = json.loads(raw.read_text(encoding="utf-8"))
    assert shape(document) == shape(json.loads(original.read_text(encoding="utf-8")))
    assert "<masked by securecase>" in raw.read_text(encoding="utf-8")
    again = parse_bytes(raw.read_bytes(), origin=str(raw))
    assert len(again.findings) == first["appeared"]
    code, data, stderr = ingest_json(
        raw,
        "--cases-repo",
        work / "other",
        "--repo",
        "acme/shop",
        "--branch",
        "x",
        "--mode",
        "ci",
        cwd=work,
    )
    assert code == 0, stderr
    assert data["appeared"] == first["appeared"]
    assert data["counts"] == first["counts"]


def shape(value: object) -> object:
    """The JSON structure without the text: types, keys and lengths."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def test_a_case_written_with_the_old_identity_sees_no_change(work: Path) -> None:
    cases = work / "cases"
    folder = cases / "cases" / "github" / "acme" / "shop" / "branch-main"
    folder.mkdir(parents=True)
    # case.yaml as securecase at fa6c469 (the earlier identity) wrote it for these reports
    shutil.copy(FIXTURES / "identity-migration" / "case.yaml", folder / "case.yaml")
    git(cases, "init", "-q", "-b", "main")
    git(cases, "add", "-A")
    git(cases, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "old")
    # read as written: this version shows a case of the first layout only after its next scan
    written = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
    old = by_id(written["findings"])
    assert len(old) == 62  # 31 checkov, 24 bandit, 7 ruff
    reports = (
        REAL / "iac-identity" / "checkov-rev1.sarif",
        REAL / "absolute-roots" / "bandit-pipx-root-a.sarif",
        REAL / "ruff-views-rev1.sarif",
    )
    result = scan(work, *reports, root=pipx_root("a"))
    assert (result["appeared"], result["fixed"]) == (0, 0)
    new = case_of(work)["findings"]
    assert len(new) == len(old)
    first_seen = sorted(json.dumps(f["first_seen"]) for f in new)
    assert first_seen == sorted(json.dumps(f["first_seen"]) for f in old.values())
    # and the next scan, under the new identity only, still sees no change
    again = scan(work, *reports, root=pipx_root("a"))
    assert (again["appeared"], again["fixed"]) == (0, 0)


@pytest.mark.parametrize(
    ("report", "command"),
    [
        ("detection/checkov-cfngoat.json", "checkov -o sarif"),
        ("iac-identity/checkov-rev1.json", "checkov -o sarif"),
        ("detection/grype-minimal.json", "grype -o sarif"),
        ("detection/osv-scanner-minimal.json", "osv-scanner --format sarif"),
    ],
)
def test_json_of_sarif_capable_scanners_says_how_to_get_sarif(
    work: Path, report: str, command: str
) -> None:
    proc = run_cli(
        "ingest",
        REAL / report,
        "--cases-repo",
        work / "cases",
        "--repo",
        "a/b",
        "--branch",
        "m",
        cwd=work,
    )
    assert proc.returncode == 2
    assert f"({command})" in proc.stderr
    assert not (work / "cases").exists() or not list((work / "cases").glob("cases/*"))


def test_an_invalid_sarif_log_is_not_told_to_become_sarif(tmp_path: Path) -> None:
    bad = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "x"}},
                "results": [{"ruleId": "R", "level": "fatal", "message": {"text": "m"}}],
            }
        ],
    }
    proc = run_cli(
        "ingest",
        write(tmp_path, bad),
        "--cases-repo",
        tmp_path / "c",
        "--repo",
        "a/b",
        "--branch",
        "m",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "$.runs[0].results[0].level" in proc.stderr
    assert "regenerate" not in proc.stderr


def write(folder: Path, document: object) -> Path:
    path = folder / "report.sarif"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _log(lines: list[str], flagged: list[int]) -> bytes:
    results = [
        {
            "ruleId": "R1",
            "level": "error",
            "message": {"text": "same message"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "f.py"},
                        "region": {"startLine": n, "snippet": {"text": lines[n - 1] + "\n"}},
                    }
                }
            ],
        }
        for n in flagged
    ]
    doc = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}}, "results": results}]}
    return json.dumps(doc).encode()


@settings(max_examples=60, deadline=None)
@given(
    body=st.lists(
        st.sampled_from(["a = 1", "b = f(x)", "eval(x)", "run(y)"]), min_size=1, max_size=12
    ),
    inserted=st.lists(st.sampled_from(["", "pass", "# note"]), min_size=1, max_size=5),
    at=st.integers(min_value=0, max_value=12),
)
def test_inserting_unflagged_lines_keeps_every_identity(
    body: list[str], inserted: list[str], at: int
) -> None:
    at = min(at, len(body))
    shifted = body[:at] + inserted + body[at:]
    flagged = list(range(1, len(body) + 1))
    moved = [n if n <= at else n + len(inserted) for n in flagged]
    before = parse_bytes(_log(body, flagged), origin="before")
    after = parse_bytes(_log(shifted, moved), origin="after")
    assert {f.id for f in before.findings} == {f.id for f in after.findings}
    assert len(before.findings) == len(set(flagged))
