"""Trees computed in Python (gittree) against the trees git itself builds through an index."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securecase.storage.git import Git
from securecase.storage.gittree import object_id, parse_tree, tree_bytes
from securecase.storage.repos import open_store
from securecase.storage.store import Change, Plan, _tree_through_index, build_commit

WRITABLE = [
    "cases/github/acme/shop/pr-1/case.yaml",
    "cases/github/acme/shop/pr-3/case.yaml",
    "cases/github/acme/shop/pr-3/raw/z.json",
    "a/new.txt",
    "a.b",
    "a-b/c/e.txt",
    "x y/é",
    "new/deep/er/file",
    "b",
]
DELETABLE = ["a/x.txt", "a.b", "a-b/c/d.txt", "cases/github/acme/shop/pr-1", "x y/é", "policy.yaml"]


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], input=data, capture_output=True, check=True
    ).stdout.decode()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose head holds files and folders with names that sort tricky."""
    path = tmp_path_factory.mktemp("tree") / "r"
    files = {
        "a/x.txt": b"1",
        "a.b": b"2",
        "a-b/c/d.txt": b"3",
        "cases/github/acme/shop/pr-1/case.yaml": b"4",
        "cases/github/acme/shop/pr-1/raw/trivy.json": b"5",
        "cases/github/acme/shop/pr-2/case.yaml": b"6",
        "x y/é": b"7",
        "policy.yaml": b"8",
    }
    with open_store(str(path)) as store:
        store.update(lambda snap: Plan(Change(files, message="seed\n"), None))
    return path


def test_parse_and_serialize_round_trip(repo: Path) -> None:
    root = git(repo, "rev-parse", "HEAD^{tree}").strip()
    data = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "tree", root], capture_output=True, check=True
    ).stdout
    entries = parse_tree(data, 20)
    assert tree_bytes(entries) == data  # git's own order comes back
    assert object_id(b"tree", data, 40) == root


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sets(st.sampled_from(WRITABLE)), st.sets(st.sampled_from(DELETABLE)))
def test_python_trees_equal_the_trees_git_builds(
    repo: Path, tmp_path: Path, writes: set[str], deletes: set[str]
) -> None:
    deletes = {d for d in deletes if not any(w == d or w.startswith(d + "/") for w in writes)}
    if not writes and not deletes:
        return
    change = Change(
        {w: w.encode() for w in sorted(writes)}, delete=tuple(sorted(deletes)), message="m\n"
    )
    with open_store(str(repo)) as store:
        snap = store.snapshot()
        built = build_commit(Git(str(repo)), str(tmp_path), snap, change)
        # what git builds for the same blobs and removals on a private index
        from securecase.storage.store import touched_paths

        files, removed = touched_paths(snap, change)
        blobs = built.blobs if built is not None else {}
        by_git = _tree_through_index(Git(str(repo)), str(tmp_path), snap, blobs, removed)
    if built is None:  # nothing changed: git agrees the tree is the head's
        assert by_git == git(repo, "rev-parse", "HEAD^{tree}").strip()
    else:
        assert git(repo, "rev-parse", f"{built.commit}^{{tree}}").strip() == by_git
        assert subprocess.run(["git", "-C", str(repo), "fsck", "--no-dangling"]).returncode == 0


@settings(max_examples=15, deadline=None)
@given(st.sets(st.sampled_from(WRITABLE), min_size=1))
def test_a_first_commit_gets_the_trees_git_builds(writes: set[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder) / "r"
        git(Path(folder), "init", "-q", str(repo))
        change = Change({w: w.encode() for w in sorted(writes)}, message="m\n")
        with open_store(str(repo)) as store:
            snap = store.snapshot()
            assert snap.head is None
            built = build_commit(Git(str(repo)), folder, snap, change, hex_len=40)
            assert built is not None
            by_git = _tree_through_index(Git(str(repo)), folder, snap, built.blobs, ())
        assert git(repo, "rev-parse", f"{built.commit}^{{tree}}").strip() == by_git
        assert git(repo, "cat-file", "-p", f"{built.commit}").count("parent ") == 0
        assert subprocess.run(["git", "-C", str(repo), "fsck", "--no-dangling"]).returncode == 0
