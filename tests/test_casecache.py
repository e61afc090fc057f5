"""The parsed-case cache: hits only for the exact bytes, every fault is a miss, bounded size."""

from __future__ import annotations

import marshal
import os
import time
from pathlib import Path

import yaml

from conftest import TRIVY, git, ingest_json
from securecase import casecache
from securecase.casecache import CaseCache
from securecase.casefile import case_to_dict, dump_case, load_case
from test_casefile import sample_case

CASE_PATH = "cases/github/acme/shop/pr-42/case.yaml"
PR42 = ("--cases-repo", "cases", "--repo", "acme/shop", "--pr", "42", "--target-branch", "main")


def test_a_stored_document_comes_back_for_the_same_bytes_only(tmp_path: Path) -> None:
    cache = CaseCache(str(tmp_path / "cache"))
    data = dump_case(sample_case("pip.json"))
    doc = yaml.safe_load(data)
    assert cache.get(data) is None
    cache.put(data, doc)
    assert cache.get(data) == doc
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
        assert cache.get(first) == {"n": -1}  # used again (now): kept
    names = list(folder.iterdir())
    assert len(names) == casecache.MAX_ENTRIES
    assert cache.get(b"0") is None and cache.get(first) == {"n": -1}
    assert not [p for p in names if p.name.endswith(".tmp")]


def test_load_case_uses_a_hit_and_survives_a_foreign_document(tmp_path: Path) -> None:
    cache = CaseCache(str(tmp_path / "cache"))
    case = sample_case("pip.json", "alpine-310.json")
    data = dump_case(case, cache=cache)
    assert cache.get(data) == case_to_dict(case)  # written while dumping
    assert load_case(data, path="case.yaml", cache=cache) == case
    # An entry this version cannot read (not a case document) is parsed over, not trusted.
    cache.put(data, {"schema": "something else"})
    assert load_case(data, path="case.yaml", cache=cache) == case
    assert cache.get(data) == case_to_dict(case)  # and replaced by the validated document


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
    doc = cache.get(data)
    assert doc is not None and doc == yaml.safe_load(data)
    # Proof the next run takes the cached document instead of the file: a note only the
    # cached copy holds shows up in the case it writes.
    doc["triage"]["notes"] = "seen through the cache"
    cache.put(data, doc)
    code, _, err = ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c2", cwd=work)
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
    code, _, err = ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c2", cwd=work)
    assert code == 1, err
    assert yaml.safe_load(path.read_text())["triage"]["notes"] == "written by a person"
