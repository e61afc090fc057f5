"""The parsed-case cache: hits only for the exact bytes, every fault is a miss, bounded size."""

from __future__ import annotations

import marshal
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TRIVY, git, ingest_json
from securecase.domain.case import ExceptionRef, Seen, Tracked
from securecase.domain.findings import Severity
from securecase.storage import casecache
from securecase.storage.casecache import CaseCache
from securecase.storage.casefile import case_to_dict, dump_case, load_case
from test_casefile import sample_case

CASE_PATH = "cases/github/acme/shop/pr-42/case.yaml"
PR42 = ("--cases-repo", "cases", "--repo", "acme/shop", "--pr", "42", "--target-branch", "main")


def test_a_stored_document_comes_back_for_the_same_bytes_only(tmp_path: Path) -> None:
    cache = CaseCache(str(tmp_path / "cache"))
    data = dump_case(sample_case("pip.json"))
    doc = yaml.safe_load(data)
    assert cache.get(data) is None
    cache.put(data, doc)
    assert cache.get(data) == (doc, False)
    assert cache.get(data + b"\n") is None
    assert cache.get(data.replace(b"status: NEW", b"status: TRIAGED")) is None


def test_no_folder_means_no_cache(tmp_path: Path) -> None:
    cache = CaseCache(None)
    cache.put(b"x", {"a": 1})
    assert cache.get(b"x") is None


def test_damaged_entries_are_misses(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    cache = CaseCache(str(folder))
    data = b"schema: securecase/case/v1\n"
    cache.put(data, {"schema": "securecase/case/v1"})
    entry = folder / cache.key(data)
    stored = entry.read_bytes()
    entry.write_bytes(stored[:-1] + bytes([stored[-1] ^ 1]))  # one flipped bit
    assert cache.get(data) is None
    entry.write_bytes(stored[: len(stored) // 2])  # cut short
    assert cache.get(data) is None
    entry.write_bytes(b"")
    assert cache.get(data) is None
    # A well-formed entry that holds no mapping is not a case document either.
    payload = marshal.dumps([1, 2])
    entry.write_bytes(casecache._MAGIC + casecache._digest(payload) + payload)
    assert cache.get(data) is None


def test_unwritable_folder_is_ignored(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = CaseCache(str(blocker / "cache"))
    cache.put(b"x", {"a": 1})  # no exception: the cache is only a hint
    assert cache.get(b"x") is None


def test_least_recently_used_entries_are_pruned(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    cache = CaseCache(str(folder))
    first = b"first"
    cache.put(first, {"n": -1})
    past = time.time() - 1000
    for n in range(casecache.MAX_ENTRIES + 5):
        cache.put(str(n).encode(), {"n": n})
        # Entries made a second apart (file times can be too coarse to order quick writes).
        os.utime(folder / cache.key(str(n).encode()), (past + n, past + n))
        assert cache.get(first) == ({"n": -1}, False)  # used again (now): kept
    names = list(folder.iterdir())
    assert len(names) == casecache.MAX_ENTRIES
    assert cache.get(b"0") is None and cache.get(first) == ({"n": -1}, False)
    assert not [p for p in names if p.name.endswith(".tmp")]


def test_the_cache_stays_within_its_size(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    cache = CaseCache(str(folder), max_bytes=250_000)
    past = time.time() - 1000
    for n in range(5):
        data = str(n).encode()
        cache.put(data, {"blob": "x" * 100_000})
        os.utime(folder / cache.key(data), (past + n, past + n))
    assert sorted(p.stat().st_mtime for p in folder.iterdir()) == [past + 3, past + 4]
    cache = CaseCache(str(folder), max_bytes=1)
    cache.put(b"big", {"blob": "y" * 100_000})
    assert [p.name for p in folder.iterdir()] == [cache.key(b"big")]  # the newest stays


def test_load_case_uses_a_hit_and_survives_a_foreign_document(tmp_path: Path) -> None:
    cache = CaseCache(str(tmp_path / "cache"))
    case = sample_case("pip.json", "alpine-310.json")
    data = dump_case(case, cache=cache)
    assert cache.get(data) == (case_to_dict(case), True)  # written while dumping
    assert load_case(data, path="case.yaml", cache=cache) == case
    # An entry this version cannot read (not a case document) is parsed over, not trusted.
    cache.put(data, {"schema": "something else"})
    assert load_case(data, path="case.yaml", cache=cache) == case
    assert cache.get(data) == (case_to_dict(case), False)  # replaced by the checked document


def test_a_file_read_without_an_entry_is_validated_and_then_cached(tmp_path: Path) -> None:
    cache = CaseCache(str(tmp_path / "cache"))
    case = sample_case("pip.json")
    data = dump_case(case)
    assert cache.get(data) is None
    assert load_case(data, path="case.yaml", cache=cache) == case
    assert cache.get(data) is not None


def test_rescans_read_the_previous_case_from_the_cache(work: Path) -> None:
    code, _, err = ingest_json(TRIVY / "pip.json", *PR42, cwd=work)
    assert code == 1, err
    repo = work / "cases"
    folder = repo / ".git" / "securecase-cache"
    data = (repo / CASE_PATH).read_bytes()
    cache = CaseCache(str(folder))
    entry = cache.get(data)
    assert entry is not None and entry == (yaml.safe_load(data), True)
    doc = entry[0]
    # Proof the next run takes the cached document instead of the file: a note only the
    # cached copy holds shows up in the case it writes.
    doc["triage"]["notes"] = "seen through the cache"
    cache.put(data, doc)
    code, _, err = ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c2000000", cwd=work)
    assert code == 1, err
    assert yaml.safe_load((repo / CASE_PATH).read_text())["triage"]["notes"] == (
        "seen through the cache"
    )
    assert git(repo, "status", "--porcelain") == ""


def test_a_human_edit_is_read_from_the_file(work: Path) -> None:
    ingest_json(TRIVY / "pip.json", *PR42, cwd=work)
    repo = work / "cases"
    path = repo / CASE_PATH
    doc = yaml.safe_load(path.read_text())
    doc["triage"]["notes"] = "written by a person"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    git(repo, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-qam", "triage")
    code, _, err = ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c2000000", cwd=work)
    assert code == 1, err
    assert yaml.safe_load(path.read_text())["triage"]["notes"] == "written by a person"


# -- findings copied from the previous file ---------------------------------------------------

BASE_CASE = sample_case("pip.json", "alpine-310.json", "misconfigurations_and_secrets.json")


def changed_finding(tracked: Tracked, how: str) -> Tracked:
    finding = tracked.finding
    if how == "title":
        finding = replace(finding, title=finding.title + " (updated)")
    elif how == "severity":
        finding = replace(finding, severity=Severity.LOW)
    elif how == "line" and finding.location is not None:
        location = replace(finding.location, start_line=(finding.location.start_line or 0) + 1)
        finding = replace(finding, location=location)
    elif how == "cvss":
        finding = replace(finding, cvss=7.0)
    elif how == "new":
        return replace(tracked, new=not tracked.new)
    elif how == "exception":
        return replace(tracked, exception=ExceptionRef("EXC-1", "2027-01-01"))
    elif how == "resolved":
        return replace(tracked, resolved=Seen("c9", "2026-11-24T00:00:00Z"))
    return replace(tracked, finding=finding)


CHANGES = ["same", "same", "same", "title", "severity", "line", "cvss", "new", "exception", "drop"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_copied_findings_give_the_bytes_of_a_full_write(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as folder:
        cache = CaseCache(folder)
        previous = dump_case(BASE_CASE, cache=cache)
        assert load_case(previous, path="case.yaml", cache=cache) == BASE_CASE  # served
        findings = []
        for tracked in BASE_CASE.findings:
            how = data.draw(st.sampled_from(CHANGES))
            if how != "drop":
                findings.append(changed_finding(tracked, how))
        resolved = [changed_finding(t, "resolved") for t in BASE_CASE.findings[:2]]
        extra = sample_case("npm.json").findings[: data.draw(st.integers(0, 3))]
        case = replace(
            BASE_CASE,
            findings=tuple(findings) + extra,
            resolved=tuple(resolved[: data.draw(st.integers(0, 2))]),
        )
        assert dump_case(case, cache=cache, previous=previous) == dump_case(case)


def test_a_changed_finding_is_still_checked_against_the_schema(tmp_path: Path) -> None:
    cache = CaseCache(str(tmp_path / "cache"))
    previous = dump_case(BASE_CASE, cache=cache)
    load_case(previous, path="case.yaml", cache=cache)
    first, *rest = BASE_CASE.findings
    broken = replace(first, finding=replace(first.finding, id="not-a-fingerprint"))
    with pytest.raises(AssertionError, match="invalid case"):
        dump_case(replace(BASE_CASE, findings=(broken, *rest)), cache=cache, previous=previous)


def test_only_the_emitters_own_text_is_copied(tmp_path: Path) -> None:
    # A file a person wrote (same document, other layout, read by PyYAML) is not cached, and
    # its text is never copied into the next file: that would break "same case, same bytes".
    cache = CaseCache(str(tmp_path / "cache"))
    by_hand = yaml.safe_dump(case_to_dict(BASE_CASE), sort_keys=False).encode()
    assert load_case(by_hand, path="case.yaml", cache=cache) == BASE_CASE
    assert cache.get(by_hand) is None and cache.emitted(by_hand) is None
    assert dump_case(BASE_CASE, cache=cache, previous=by_hand) == dump_case(BASE_CASE)
    written = dump_case(BASE_CASE, cache=cache)
    assert cache.emitted(written) is None  # stored, but not read back in this process yet
    load_case(written, path="case.yaml", cache=cache)
    assert cache.emitted(written) == case_to_dict(BASE_CASE)


def test_an_entry_the_case_reader_refuses_steers_nothing(tmp_path: Path) -> None:
    cache = CaseCache(str(tmp_path / "cache"))
    data = dump_case(BASE_CASE, cache=cache)
    foreign = yaml.safe_load(data)
    del foreign["status"]  # not a case document: the file is parsed instead
    foreign["findings"].reverse()  # and its items do not line up with the text
    cache.put(data, foreign, written=True)
    assert load_case(data, path="case.yaml", cache=cache) == BASE_CASE
    assert cache.emitted(data) is None
    updated = replace(BASE_CASE, updated_at="2027-01-01T00:00:00Z")
    assert dump_case(updated, cache=cache, previous=data) == dump_case(updated)


def test_the_key_covers_the_code_that_reads_and_writes_case_files() -> None:
    here = Path(casecache.__file__).parent
    assert all((here / name).is_file() for name in casecache.DEPENDS_ON)
    for module in ("yamlio", "yamlfast", "casefile", "schemacheck", "casecache"):
        assert f"{module}.py" in casecache.DEPENDS_ON


def test_an_integer_written_as_a_float_is_read_as_an_integer() -> None:
    # Equal documents must have equal types for copied text to match a full write.
    doc = case_to_dict(BASE_CASE)
    located = next(
        i for i, f in enumerate(doc["findings"]) if "start_line" in f.get("location", {})
    )
    doc["findings"][located]["location"]["start_line"] = 5.0
    case = load_case(yaml.safe_dump(doc, sort_keys=False).encode(), path="case.yaml")
    line = case.findings[located].finding.location
    assert line is not None and line.start_line == 5 and type(line.start_line) is int
