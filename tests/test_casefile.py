"""Case files: case.yaml + findings.json, deterministic bytes, round trip, located errors,
golden files, the first layout, and the size of a rescan's diff."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FIXTURES, TRIVY, git, ingest_json, read_case_files, run_cli
from reportgen import big_report
from securecase.clock import FixedClock
from securecase.domain.case import GateRecord, Scan, merge
from securecase.domain.subjects import make_subject
from securecase.errors import CaseFileError
from securecase.scanners import parse
from securecase.services.ingest import IngestRequest, ingest
from securecase.storage.casefile import (
    CASE_FILE,
    FINDINGS_FILE,
    CaseLayoutError,
    canonical_json,
    case_data,
    dump_case,
    load_case,
    load_case_header,
)
from securecase.storage.store import GitIdentity

GOLDEN = Path(__file__).parent / "golden" / "case"
FIRST_LAYOUT = FIXTURES / "case_v1" / "pr-42.case.yaml"
FOLDER = "cases/github/acme/shop/pr-42"
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
TRIVY_NAMES = sorted(p.name for p in TRIVY.glob("*.json"))


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


def loaded(files: dict[str, bytes]):
    return load_case(files[CASE_FILE], files[FINDINGS_FILE], folder=FOLDER)


def test_dump_round_trips_and_the_header_agrees():
    case = sample_case("misconfigurations_and_secrets.json", "alpine-310.json")
    files = dump_case(case)
    assert set(files) == {CASE_FILE, FINDINGS_FILE}
    assert loaded(files) == case
    header = load_case_header(files[CASE_FILE], folder=FOLDER)
    assert header.counts == case.counts and header.max_severity == case.max_severity
    assert (header.key, header.status, header.gate) == (case.key, case.status, case.gate)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(TRIVY_NAMES), min_size=1, max_size=3, unique=True))
def test_same_case_same_bytes(names: list[str]):
    """Determinism: equal cases give equal bytes, and a read-back case writes the same bytes."""
    try:
        case = sample_case(*names)
    except Exception:  # a fixture the parser refuses, or two filling one source slot
        return
    files = dump_case(case)
    assert files == dump_case(sample_case(*names))
    assert dump_case(loaded(files)) == files


def test_findings_json_is_canonical():
    case = sample_case("misconfigurations_and_secrets.json", "alpine-310.json", "pip.json")
    text = dump_case(case)[FINDINGS_FILE].decode("utf-8")
    doc = json.loads(text)
    assert list(doc) == ["schema", "findings", "resolved"]
    ids = [f["id"] for f in doc["findings"]]
    assert ids == sorted(ids) and len(ids) == len(case.findings)
    assert text == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert list(doc["findings"][0])[:6] == ["id", "source", "kind", "advisory", "severity", "title"]


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=0, max_value=100).map(lambda tenths: tenths / 10)  # CVSS scores
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_TEXT, _VALUES, max_size=6))
def testcanonical_json_is_the_standard_librarys_indented_form(doc: dict[str, object]) -> None:
    """findings.json bytes stay what ``json.dumps(indent=2, ensure_ascii=False)`` wrote, so a
    case written by an earlier version rescans without a byte of churn."""
    expected = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    assert canonical_json(doc) == expected


def test_a_line_number_beyond_64_bits_is_refused_naming_the_finding(work: Path) -> None:
    region = {"startLine": 10**20}
    result = {
        "ruleId": "B101",
        "level": "warning",
        "message": {"text": "assert used"},
        "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": "a.py"}, "region": region}}
        ],
    }
    log = {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "bandit", "rules": []}}, "results": [result]}],
    }
    (work / "big.sarif").write_text(json.dumps(log))
    proc = run_cli(
        "ingest", "big.sarif", "--cases-repo", "cases", "--repo", "acme/shop",
        "--branch", "main", "--commit", "c1000000", cwd=work,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "finding B101 of source bandit: $.location.start_line" in proc.stderr
    assert "100000000000000000000" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((work / "cases").rglob("findings.json"))


def test_case_yaml_keys_follow_the_contract_and_hold_no_findings():
    keys = list(yaml.safe_load(dump_case(sample_case("pip.json"))[CASE_FILE]))
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
        "created_at",
        "updated_at",
    ]


def test_cases_show_json_holds_the_whole_case():
    case = sample_case("pip.json")
    data = case_data(case)
    assert data["key"] == case.key and len(data["findings"]) == len(case.findings)


def test_invalid_yaml_is_located():
    files = dump_case(sample_case("pip.json"))
    text = files[CASE_FILE].replace(b"status: NEW", b"status: [NEW")
    with pytest.raises(CaseFileError) as info:
        load_case(text, files[FINDINGS_FILE], folder="cases/x")
    line = text.decode().splitlines().index("status: [NEW") + 2  # the parser stops after it
    assert f"cases/x/case.yaml:{line}:" in info.value.problems[0]


def test_schema_problems_in_case_yaml_name_file_line_and_path():
    files = dump_case(sample_case("pip.json"))
    text = files[CASE_FILE].decode().replace("decision: block", "decision: maybe")
    line = text.splitlines().index("  decision: maybe") + 1
    with pytest.raises(CaseFileError) as info:
        load_case(text.encode(), files[FINDINGS_FILE], folder="cases/x")
    assert info.value.problems[0].startswith(f"cases/x/case.yaml:{line}: $.gate.decision:")


def test_schema_problems_in_findings_json_name_the_json_path():
    files = dump_case(sample_case("pip.json"))
    doc = json.loads(files[FINDINGS_FILE])
    doc["findings"][1]["severity"] = "SEVERE"
    with pytest.raises(CaseFileError) as info:
        load_case(files[CASE_FILE], json.dumps(doc).encode(), folder="cases/x")
    assert info.value.problems[0].startswith("cases/x/findings.json: $.findings[1].severity:")
    with pytest.raises(CaseFileError, match=r"cases/x/findings.json: not valid JSON"):
        load_case(files[CASE_FILE], b'{"findings": [', folder="cases/x")
    with pytest.raises(CaseFileError, match=r"cases/x/findings.json: missing"):
        load_case(files[CASE_FILE], None, folder="cases/x")


def test_a_source_name_that_is_not_a_string_is_refused_with_its_line() -> None:
    files = dump_case(sample_case("pip.json"))
    text = files[CASE_FILE].replace(b"  trivy-repo-testdata-fixtures-repo-pip:\n", b"  123:\n")
    assert b"  123:\n" in text
    with pytest.raises(CaseFileError) as caught:
        load_case(text, files[FINDINGS_FILE], folder="cases/x")
    line = text.decode().splitlines().index("  123:") + 1
    assert caught.value.problems[0].startswith(f"cases/x/case.yaml:{line}:")


def test_golden_case_files(tmp_path: Path):
    """The files written for real reports, byte for byte (regenerate: SECURECASE_REGEN=1)."""
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
    folder = (tmp_path / "cases" / result.case_path).parent
    for name in (CASE_FILE, FINDINGS_FILE):
        written = (folder / name).read_bytes()
        golden = GOLDEN / f"pr-42.{name}"
        if os.environ.get("SECURECASE_REGEN"):
            golden.write_bytes(written)
        assert written == golden.read_bytes(), name


# -- the first layout ----------------------------------------------------------------------


def test_readers_refuse_the_first_layout_with_what_to_do():
    data = FIRST_LAYOUT.read_bytes()
    with pytest.raises(CaseLayoutError) as info:
        load_case(data, None, folder=FOLDER)
    assert info.value.message.startswith(f"{FOLDER}: the case is in the first layout")
    assert "securecase ingest" in (info.value.hint or "")
    with pytest.raises(CaseLayoutError):
        load_case_header(data, folder=FOLDER)


def _first_layout_repo(work: Path) -> tuple[Path, Path]:
    """A cases repo whose pr-42 case a human put back in the first layout."""
    code, _, err = ingest_json(TRIVY / "misconfigurations_and_secrets.json", *PR42, cwd=work)
    assert code == 1, err
    repo = work / "security-cases"
    folder = repo / FOLDER
    (folder / FINDINGS_FILE).unlink()
    shutil.copyfile(FIRST_LAYOUT, folder / CASE_FILE)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Old", "-c", "user.email=o@example.com", "commit", "-qm", "v1")
    return repo, folder


PR42 = ("--repo", "acme/shop", "--pr", "42", "--target-branch", "main", "--branch", "feat/x")


def test_cli_names_the_folder_and_ingest_migrates_every_finding(work: Path):
    repo, folder = _first_layout_repo(work)
    old = yaml.safe_load(FIRST_LAYOUT.read_text())
    for args in (("cases", "show", "github::acme::shop::PR::42"), ("cases", "list")):
        proc = run_cli(*args, cwd=work)
        assert proc.returncode == 2, proc.stderr
        assert f"{FOLDER}: the case is in the first layout" in proc.stderr

    # Only trivy-fs re-runs: trivy-image's findings must come over exactly as they were.
    code, out, err = ingest_json(
        TRIVY / "misconfigurations_and_secrets.json", *PR42, "--commit", "c2000000", cwd=work
    )
    assert code == 1, err and out["committed"] is True
    new = read_case_files(folder / CASE_FILE)
    assert new["schema"] == "securecase/case/v2"
    assert json.loads((folder / FINDINGS_FILE).read_text())["schema"] == "securecase/findings/v1"
    kept = {f["id"]: f for f in new["findings"] if f["source"] == "trivy-image"}
    assert kept == {f["id"]: f for f in old["findings"] if f["source"] == "trivy-image"}
    assert {f["id"] for f in new["findings"]} == {f["id"] for f in old["findings"]}
    assert {f["id"]: f["first_seen"] for f in new["findings"]} == {
        f["id"]: f["first_seen"] for f in old["findings"]
    }
    assert run_cli("cases", "show", "github::acme::shop::PR::42", cwd=work).returncode == 0


# -- a human-broken case.yaml --------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("status: NEW", "status: NEW\nstatus: TRIAGED"), "duplicate key 'status'"),
        (("status: NEW", "status: &s NEW"), "anchors and aliases"),
        (("reopened: 0", "reopened: zero"), "$.reopened"),
    ],
)
def test_a_broken_case_yaml_is_located_and_never_overwritten(work: Path, edit, expected):
    ingest_json(TRIVY / "pip.json", *PR42, cwd=work)
    repo = work / "security-cases"
    path = repo / FOLDER / CASE_FILE
    text = path.read_text().replace(*edit)
    path.write_text(text)
    git(repo, "-c", "user.name=B", "-c", "user.email=b@example.com", "commit", "-qam", "edit")
    head = git(repo, "rev-parse", "HEAD")
    proc = run_cli("ingest", TRIVY / "npm.json", *PR42, cwd=work)
    assert proc.returncode == 2
    assert f"{FOLDER}/{CASE_FILE}:" in proc.stderr and expected in proc.stderr
    assert path.read_text() == text and git(repo, "rev-parse", "HEAD") == head


# -- the size of a rescan ------------------------------------------------------------------


def test_a_rescan_adding_one_finding_to_1000_changes_at_most_30_lines(work: Path):
    base, plus_one = work / "base.json", work / "plus.json"
    base.write_bytes(big_report(1000))
    plus_one.write_bytes(big_report(1000, extra=1))
    args = ("--repo", "acme/shop", "--branch", "main")
    assert ingest_json(base, *args, "--commit", "c1000000", cwd=work)[0] == 0
    code, out, err = ingest_json(plus_one, *args, "--commit", "c2000000", cwd=work)
    assert code == 0 and out["appeared"] == 1, err
    numstat = git(work / "security-cases", "diff", "--numstat", "HEAD~1", "HEAD").splitlines()
    outside_raw = [line.split("\t") for line in numstat if "/raw/" not in line]
    assert len(outside_raw) == 2
    # A line replaced by another counts once (it is one changed line in a review): the new
    # finding's block plus latest, counts, the source record and updated_at.
    changed = sum(max(int(added), int(deleted)) for added, deleted, _ in outside_raw)
    assert changed <= 30, numstat
    assert sum(int(deleted) for _, deleted, _ in outside_raw) <= 8, numstat


def test_history_reads_first_layout_versions(work: Path):
    _first_layout_repo(work)
    proc = run_cli("cases", "history", "github::acme::shop::PR::42", "--output", "json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)["entries"]
    human = entries[-1]
    assert human["author"]["kind"] == "human" and human["problem"] is None
    assert human["counts"]["critical"] == 3 and human["decision"] == "block"


def test_sweep_fields_round_trip_in_contract_order() -> None:
    from dataclasses import replace

    from securecase.domain.case import Closed, CloseReason, SlaMark, Status

    case = sample_case("pip.json")
    first, *rest = case.findings
    swept = replace(
        case,
        status=Status.CLOSED,
        closed=Closed(CloseReason.MERGED, "2027-01-09T08:00:00Z"),
        notified=("closed:merged:2027-01-09T08:00:00Z",),
        findings=(replace(first, sla=SlaMark("2027-02-09", True)), *rest),
    )
    files = dump_case(swept)
    assert load_case(files[CASE_FILE], files[FINDINGS_FILE], folder=FOLDER) == swept
    doc = yaml.safe_load(files[CASE_FILE])
    keys = list(doc)
    assert keys.index("status") + 1 == keys.index("closed")
    assert keys.index("notified") == keys.index("created_at") - 1
    assert doc["closed"] == {"reason": "merged", "at": "2027-01-09T08:00:00Z"}
    findings = json.loads(files[FINDINGS_FILE])["findings"]
    marked = next(f for f in findings if f["id"] == first.finding.id)
    assert marked["sla"] == {"due": "2027-02-09", "breached": True}
    header = load_case_header(files[CASE_FILE], folder=FOLDER)
    assert header.closed == swept.closed and header.notified == swept.notified


def test_an_incomplete_source_round_trips_and_a_complete_one_writes_no_key():
    failed = parse(FIXTURES / "realworld" / "failed-scans" / "bandit-mistyped-path.sarif")
    complete = parse(TRIVY / "pip.json")
    assert failed.incomplete and not complete.incomplete
    scan = Scan(
        subject=SUBJECT,
        reports=(failed, complete),
        received_at="2026-11-23T08:00:00Z",
        commit="abc",
        raw_paths={failed.source: "raw/bandit.sarif", complete.source: "raw/pip.json"},
        raw_sha256={failed.source: "1" * 64, complete.source: "2" * 64},
    )
    case = merge(None, scan, GATE).case
    files = dump_case(case)
    assert loaded(files) == case
    assert loaded(files).sources[failed.source].incomplete == failed.incomplete
    doc = yaml.safe_load(files[CASE_FILE])
    assert doc["sources"][failed.source]["incomplete"] == list(failed.incomplete)
    assert "incomplete" not in doc["sources"][complete.source]
