"""The trees of the store's commits: what git lists at the new head is exactly what was asked."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import bare_repo
from securecase.storage.repos import open_store
from securecase.storage.store import Change, Plan, build_commit

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
SEED = {
    "a/x.txt": b"1",
    "a.b": b"2",
    "a-b/c/d.txt": b"3",
    "cases/github/acme/shop/pr-1/case.yaml": b"4",
    "cases/github/acme/shop/pr-1/raw/trivy.json": b"5",
    "cases/github/acme/shop/pr-2/case.yaml": b"6",
    "x y/é": b"7",
    "policy.yaml": b"8",
}


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout


def files_at(repo: Path, rev: str) -> dict[str, bytes]:
    """Every file of ``rev``'s tree with its content, as git lists them."""
    names = git(repo, "ls-tree", "-r", "-z", "--name-only", rev).decode().split("\0")
    return {name: git(repo, "cat-file", "blob", f"{rev}:{name}") for name in names if name}


def fsck(repo: Path) -> None:
    checked = subprocess.run(["git", "-C", str(repo), "fsck", "--strict", "--no-dangling"])
    assert checked.returncode == 0


def commit(location: str, change: Change, paths: list[str] | None = None) -> str | None:
    with open_store(location, paths=paths) as store:
        return store.update(lambda snap: Plan(change, None)).commit


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose head holds files and folders with names that sort tricky."""
    path = tmp_path_factory.mktemp("tree") / "r"
    assert commit(str(path), Change(SEED, message="seed\n"))
    return path


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sets(st.sampled_from(WRITABLE)), st.sets(st.sampled_from(DELETABLE)))
def test_a_commit_holds_the_parent_s_files_with_the_change_applied(
    template: Path, writes: set[str], deletes: set[str]
) -> None:
    deletes = {d for d in deletes if not any(w == d or w.startswith(d + "/") for w in writes)}
    with tempfile.TemporaryDirectory() as folder:
        repo = Path(folder) / "r"
        shutil.copytree(template, repo)
        head = git(repo, "rev-parse", "HEAD").decode().strip()
        expected = {
            path: data
            for path, data in SEED.items()
            if not any(path == d or path.startswith(d + "/") for d in deletes)
        }
        expected.update({w: w.encode() for w in writes})
        made = commit(
            str(repo),
            Change({w: w.encode() for w in writes}, delete=tuple(deletes), message="m\n"),
        )
        if expected == SEED:  # nothing changed: no commit
            assert made is None
            assert git(repo, "rev-parse", "HEAD").decode().strip() == head
            return
        assert made is not None
        assert git(repo, "rev-parse", f"{made}^").decode().strip() == head
        assert files_at(repo, made) == expected
        assert git(repo, "status", "--porcelain") == b""  # work tree and index followed
        fsck(repo)


def index_tree(repo: Path, head: str, blobs: dict[str, str], removed: tuple[str, ...]) -> str:
    """The tree git's own index makes of ``head`` with ``blobs`` written and ``removed`` gone."""
    with tempfile.TemporaryDirectory() as folder:
        env = {"GIT_INDEX_FILE": str(Path(folder) / "index"), "PATH": os.environ["PATH"]}

        def run(*args: str, given: bytes = b"") -> bytes:
            done = subprocess.run(args, cwd=repo, env=env, input=given, capture_output=True)
            assert done.returncode == 0, done.stderr
            return done.stdout

        run("git", "read-tree", head)
        info = [f"0 {'0' * len(head)}\t{path}\0" for path in removed]
        info += [f"100644 {oid}\t{path}\0" for path, oid in blobs.items()]
        run("git", "update-index", "-z", "--index-info", given="".join(info).encode())
        return run("git", "write-tree").decode().strip()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sets(st.sampled_from(WRITABLE)), st.sets(st.sampled_from(DELETABLE)))
def test_rewriting_only_the_folders_on_the_paths_makes_the_tree_the_index_makes(
    template: Path, writes: set[str], deletes: set[str]
) -> None:
    """Folders rewritten one by one with mktree give the tree, by id, that git's index gives."""
    deletes = {d for d in deletes if not any(w == d or w.startswith(d + "/") for w in writes)}
    change = Change({w: w.encode() for w in writes}, delete=tuple(deletes), message="m\n")
    with open_store(str(template)) as store, tempfile.TemporaryDirectory() as folder:
        backend: Any = store._backend
        snap = store.snapshot()
        assert snap.head is not None
        built = build_commit(backend.git, folder, snap, change)
        if built is None:
            assert not writes and not any(snap.list_files(d) for d in deletes)
            return
        made = git(template, "rev-parse", f"{built.commit}^{{tree}}").decode().strip()
        assert made == index_tree(template, snap.head, dict(built.blobs), built.removed)


def test_a_commit_through_a_remote_reads_no_tree_off_its_paths(tmp_path: Path) -> None:
    remote = bare_repo(tmp_path / "remote.git")
    assert commit(str(remote), Change(SEED, message="seed\n"))
    case = "cases/github/acme/shop/pr-3"
    with open_store(f"file://{remote}", paths=[f"{case}/case.yaml"]) as store:
        made = store.update(
            lambda snap: Plan(Change({f"{case}/case.yaml": b"9"}, message="m\n"), None)
        ).commit
        held = git(Path(store.workdir), "cat-file", "--batch-all-objects", "--batch-check")
    assert made is not None
    # Below cases/<provider>/<owner>/ (the first four levels come with the tip), folders come
    # only on the case's path, and files only when read.
    skipped = [
        git(remote, "rev-parse", f"{made}:{path}").decode().strip()
        for path in [
            "cases/github/acme/shop/pr-1",
            "cases/github/acme/shop/pr-2",
            *(p for p in SEED if p.count("/") >= 3),
        ]
    ]
    assert not any(oid.encode() in held for oid in skipped)
    assert files_at(remote, made) == {**SEED, f"{case}/case.yaml": b"9"}
    fsck(remote)


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_first_commit_on_an_unborn_branch(tmp_path: Path, object_format: str) -> None:
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", f"--object-format={object_format}", "-b", "trunk", str(repo))
    files = {w: w.encode() for w in WRITABLE}
    # deleting what is not there yet is nothing to do, and an empty change makes no commit
    assert commit(str(repo), Change({}, delete=("cases",), message="m\n")) is None
    made = commit(str(repo), Change(files, delete=("nowhere",), message="first\n"))
    assert made is not None and len(made) == (64 if object_format == "sha256" else 40)
    assert git(repo, "rev-parse", "refs/heads/trunk").decode().strip() == made
    assert b"parent " not in git(repo, "cat-file", "commit", made)
    assert files_at(repo, made) == files
    assert git(repo, "status", "--porcelain") == b""
    fsck(repo)


def test_folder_deleted_in_a_sha256_repository(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", "--object-format=sha256", "-b", "main", str(repo))
    assert commit(str(repo), Change(SEED, message="seed\n"))
    case = "cases/github/acme/shop/pr-1"
    made = commit(str(repo), Change({"policy.yaml": b"9"}, delete=(case,), message="m\n"))
    assert made is not None
    expected = {p: d for p, d in SEED.items() if not p.startswith(case + "/")}
    assert files_at(repo, made) == {**expected, "policy.yaml": b"9"}
    assert not (repo / case).exists()
    fsck(repo)


def test_deleting_every_file_commits_an_empty_tree(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    assert commit(str(repo), Change(SEED, message="seed\n"))
    made = commit(str(repo), Change({}, delete=tuple(sorted({p.split("/")[0] for p in SEED}))))
    assert made is not None
    assert files_at(repo, made) == {}
    assert sorted(p.name for p in repo.iterdir()) == [".git"]
    assert git(repo, "status", "--porcelain") == b""
    fsck(repo)


def test_commit_on_a_partial_clone_fetches_no_other_file(tmp_path: Path) -> None:
    rng = random.Random(3)
    big = {f"cases/github/other/big/raw/r{i}.json": rng.randbytes(200_000) for i in range(3)}
    remote = bare_repo(tmp_path / "remote.git")
    assert commit(str(remote), Change({**SEED, **big}, message="seed\n"))
    case = "cases/github/acme/shop/pr-1"
    change = Change(
        {f"{case}/case.yaml": b"new"},
        delete=("cases/github/other/big", f"{case}/raw"),
        message="m\n",
    )
    big_ids = {git(remote, "rev-parse", f"main:{p}").decode().strip() for p in big}
    with open_store(f"file://{remote}", paths=[case]) as store:
        clone = Path(store.workdir)
        made = store.update(lambda snap: Plan(change, None)).commit
        assert made is not None
        listing = git(clone, "rev-list", "--objects", "--missing=print", "--all").decode()
        missing = {line[1:] for line in listing.split() if line.startswith("?")}
        assert big_ids <= missing  # removed without ever being fetched
    expected = {p: d for p, d in SEED.items() if not p.startswith(f"{case}/raw/")}
    assert files_at(remote, "main") == {**expected, f"{case}/case.yaml": b"new"}
    fsck(remote)
