"""Through a URL, each command fetches what it reads, and a server without filters is refused.

The cases repo is served by real git servers on localhost: ``git http-backend`` (which records
every fetch request, so the tests see the ``want`` lines and the bytes answered) and ``git
daemon``. It holds real cases made by the real CLI, each with a raw report of random bytes
(incompressible) far larger than every case file together: a command that fetched one would
show it in the bytes.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import TRIVY, git, ingest_json, run_cli
from git_http import serve_git

TOKEN = "ghs_fetch0123456789abcdefTOKEN"
BIG = 400_000  # bytes of each case's extra raw report
SHOP = "cases/github/acme/shop"
PRS = (1, 2, 3)


def objects(repo: Path, rev: str, prefix: str) -> dict[str, str]:
    """Path -> object id of every file and folder under ``prefix`` at ``rev``."""
    out = git(repo, "ls-tree", "-r", "-t", "-z", rev, "--", prefix)
    found = {}
    for entry in out.split("\0"):
        if entry:
            meta, _, path = entry.partition("\t")
            found[path] = meta.split()[2]
    return found


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare cases repo: the `main` case of acme/shop and PRs 1-3, each with a large raw
    report, made by the real CLI in a local checkout and pushed."""
    base = tmp_path_factory.mktemp("seed")
    work = base / "work"
    work.mkdir()
    rng = random.Random(18)
    args = ("--repo", "acme/shop", "--report", "none")
    for case in ("main", *PRS):
        which = ("--branch", "main") if case == "main" else ("--pr", str(case))
        target = () if case == "main" else ("--target-branch", "main")
        code, _, err = ingest_json(
            TRIVY / "debian-buster.json", *args, *which, *target, "--commit", "abc1234", cwd=work
        )
        assert code in (0, 1), err
    checkout = work / "security-cases"
    for folder in ["branch-main", *(f"pr-{n}" for n in PRS)]:
        raw = checkout / SHOP / folder / "raw" / "extra.json"
        raw.write_bytes(rng.randbytes(BIG))
    git(checkout, "add", "-A")
    git(checkout, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "raw")
    bare = base / "srv" / "cases.git"
    git(base, "clone", "-q", "--bare", str(checkout), str(bare))
    return bare


def serve_copy(seeded: Path, tmp_path: Path, *, filters: bool = True) -> Path:
    """A copy of the seeded repository under ``tmp_path/srv``, filters allowed or not."""
    root = tmp_path / "srv"
    git(tmp_path, "clone", "-q", "--bare", str(seeded), str(root / "cases.git"))
    git(root / "cases.git", "config", "uploadpack.allowFilter", "true" if filters else "false")
    return root


def cli(
    server_url: str, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return run_cli(*args, "--cases-repo", server_url, cwd=work, SECURECASE_CASES_TOKEN=TOKEN, **env)


def skipped_objects(repo: Path, keep: set[str], rev: str = "main") -> set[str]:
    """Ids of the objects under cases/ at ``rev`` but at none of the paths in ``keep`` (an
    identical file elsewhere is the same object)."""
    found = objects(repo, rev, "cases")
    kept = {oid for path, oid in found.items() if path in keep}
    return {oid for oid in found.values() if oid not in kept}


def raw_blobs(repo: Path) -> set[str]:
    return {oid for path, oid in objects(repo, "main", "cases").items() if "/raw/" in path}


def test_an_ingest_fetches_its_case_files_and_its_baseline_s_only(
    seeded: Path, tmp_path: Path
) -> None:
    root = serve_copy(seeded, tmp_path)
    bare = root / "cases.git"
    before = git(bare, "rev-parse", "main").strip()
    with serve_git(root, user="x-access-token", token=TOKEN) as server:
        run = cli(
            server.url,
            tmp_path,
            "ingest",
            str(TRIVY / "debian-buster.json"),
            *("--repo", "acme/shop", "--pr", "2", "--target-branch", "main"),
            *("--commit", "def4567", "--report", "none", "--output", "json"),
        )
    assert run.returncode in (0, 1), run.stderr
    assert json.loads(run.stdout)["case_key"] == "github::acme::shop::PR::2"
    assert git(bare, "rev-parse", "main~1").strip() == before  # recorded on top
    # What it may read: policy.yaml, its own and the baseline's case files, and the folders
    # on the way to them, and the folder it writes its raw report in (the listing, to replace
    # it). Never another case's folder, never a raw report.
    on_path = {"cases/github", "cases/github/acme", SHOP, f"{SHOP}/pr-2/raw"}
    for folder in ("pr-2", "branch-main"):
        on_path |= {
            f"{SHOP}/{folder}",
            *(f"{SHOP}/{folder}/{n}" for n in ("case.yaml", "findings.json")),
        }
    at_before = skipped_objects(bare, on_path, before)
    wanted = set(server.wanted())
    assert not wanted & at_before
    assert not wanted & raw_blobs(bare)
    assert server.bytes_sent() < BIG // 2, server.bytes_sent()


def test_cases_list_fetches_trees_and_case_yaml_only(seeded: Path, tmp_path: Path) -> None:
    root = serve_copy(seeded, tmp_path)
    bare = root / "cases.git"
    with serve_git(root, user="x-access-token", token=TOKEN) as server:
        run = cli(server.url, tmp_path, "cases", "list", "--no-cache", "--output", "json")
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)) == 1 + len(PRS)
    files = {
        p: oid for p, oid in objects(bare, "main", "cases").items() if "." in p.rsplit("/", 1)[-1]
    }
    case_yaml = {oid for p, oid in files.items() if p.endswith("/case.yaml")}
    wanted_blobs = set(server.wanted()) & set(files.values())
    assert wanted_blobs == case_yaml
    assert server.bytes_sent() < BIG // 2, server.bytes_sent()


def test_report_fetches_trees_and_the_two_case_files_only(seeded: Path, tmp_path: Path) -> None:
    root = serve_copy(seeded, tmp_path)
    bare = root / "cases.git"
    with serve_git(root, user="x-access-token", token=TOKEN) as server:
        run = cli(server.url, tmp_path, "report", "--no-cache", "--output", "json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["open_cases"] == 1 + len(PRS)
    files = {
        p: oid for p, oid in objects(bare, "main", "cases").items() if "." in p.rsplit("/", 1)[-1]
    }
    case_files = {oid for p, oid in files.items() if p.endswith(("/case.yaml", "/findings.json"))}
    assert set(server.wanted()) & set(files.values()) == case_files
    assert not set(server.wanted()) & raw_blobs(bare)
    # the case files in one request, not one by one as the clone misses them
    asking = [body for body, _ in server.fetches if any(oid.encode() in body for oid in case_files)]
    assert len(asking) == 1
    assert server.bytes_sent() < BIG // 2, server.bytes_sent()


def test_cases_show_fetches_its_two_files_only(seeded: Path, tmp_path: Path) -> None:
    root = serve_copy(seeded, tmp_path)
    bare = root / "cases.git"
    folder = f"{SHOP}/pr-1"
    with serve_git(root, user="x-access-token", token=TOKEN) as server:
        run = cli(server.url, tmp_path, "cases", "show", "github::acme::shop::PR::1")
    assert run.returncode == 0, run.stderr
    assert "github::acme::shop::PR::1" in run.stdout
    mine = {f"{folder}/case.yaml", f"{folder}/findings.json"}
    on_path = {"cases/github", "cases/github/acme", SHOP, folder, *mine}
    assert not set(server.wanted()) & skipped_objects(bare, on_path)
    assert server.bytes_sent() < BIG // 2, server.bytes_sent()


def test_cases_history_fetches_the_trees_on_its_path_only(seeded: Path, tmp_path: Path) -> None:
    root = serve_copy(seeded, tmp_path)
    bare = root / "cases.git"
    with serve_git(root, user="x-access-token", token=TOKEN) as server:
        run = cli(
            server.url,
            tmp_path,
            "cases",
            "history",
            "github::acme::shop::PR::3",
            "--output",
            "json",
        )
        assert run.returncode == 0, run.stderr
        entries = json.loads(run.stdout)["entries"]
        assert [e["change"] for e in entries] == ["created"]
        assert server.bytes_sent() < BIG // 2, server.bytes_sent()
        # --since a day after every commit: the case exists, nothing to show, little fetched
        later = cli(
            server.url,
            tmp_path,
            "cases",
            "history",
            "github::acme::shop::PR::3",
            "--since",
            "2030-01-01",
            "--output",
            "json",
        )
        table = cli(
            server.url,
            tmp_path,
            *("cases", "history", "github::acme::shop::PR::3", "--since", "2030-01-01"),
        )
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["entries"] == []
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split()[:2] == ["TIME", "AUTHOR"]
    assert len(table.stdout.splitlines()) == 2  # the headings, no row
    folder = f"{SHOP}/pr-3"
    on_path = {"cases/github", "cases/github/acme", SHOP, folder, f"{folder}/case.yaml"}
    assert not set(server.wanted()) & skipped_objects(bare, on_path)


def test_a_server_without_filters_is_refused_unless_a_full_clone_is_allowed(
    seeded: Path, tmp_path: Path
) -> None:
    root = serve_copy(seeded, tmp_path, filters=False)
    bare = root / "cases.git"
    before = git(bare, "rev-parse", "main").strip()
    ingest = (
        "ingest",
        str(TRIVY / "debian-buster.json"),
        *("--repo", "acme/shop", "--pr", "9", "--target-branch", "main"),
        *("--commit", "def4567", "--report", "none"),
    )
    with serve_git(root, user="x-access-token", token=TOKEN) as server:
        refused = cli(server.url, tmp_path, *ingest)
        assert refused.returncode == 3, refused.stderr
        assert "ignores partial-clone filters" in refused.stderr
        assert "hint: enable uploadpack.allowFilter" in refused.stderr
        assert "--allow-full-clone (env SECURECASE_ALLOW_FULL_CLONE=1)" in refused.stderr
        assert git(bare, "rev-parse", "main").strip() == before  # nothing recorded
        listing = cli(server.url, tmp_path, "cases", "list")
        assert listing.returncode == 3 and "ignores partial-clone filters" in listing.stderr
        allowed = cli(server.url, tmp_path, *ingest, SECURECASE_ALLOW_FULL_CLONE="1")
        listed = cli(server.url, tmp_path, "cases", "list", "--allow-full-clone", "--no-cache")
    assert allowed.returncode in (0, 1), allowed.stderr
    assert git(bare, "rev-parse", "main~1").strip() == before
    assert listed.returncode == 0, listed.stderr
    assert "github::acme::shop::PR::9" in listed.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def git_daemon(root: Path) -> Iterator[str]:
    """``git daemon`` serving the repositories under ``root``; the URL of cases.git."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={root}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(root),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    "git daemon did not start"
                )
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/cases.git"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("filters", [True, False])
def test_git_daemon_with_and_without_filters(seeded: Path, tmp_path: Path, filters: bool) -> None:
    root = serve_copy(seeded, tmp_path, filters=filters)
    with git_daemon(root) as url:
        run = cli(url, tmp_path, "cases", "show", "github::acme::shop::PR::2")
        if filters:
            assert run.returncode == 0, run.stderr
            assert "github::acme::shop::PR::2" in run.stdout
        else:
            assert run.returncode == 3, run.stderr
            assert "ignores partial-clone filters" in run.stderr
            allowed = cli(
                url,
                tmp_path,
                "cases",
                "show",
                "github::acme::shop::PR::2",
                SECURECASE_ALLOW_FULL_CLONE="1",
            )
            assert allowed.returncode == 0, allowed.stderr


def test_a_case_gone_from_the_tip_is_shown_through_a_url_without_its_raw_reports(
    seeded: Path, tmp_path: Path
) -> None:
    root = serve_copy(seeded, tmp_path)
    bare = root / "cases.git"
    kept = objects(bare, "main", f"{SHOP}/pr-3")
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(bare), str(checkout))
    git(checkout, "rm", "-rq", f"{SHOP}/pr-3")
    git(checkout, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "gone")
    git(checkout, "push", "-q", "origin", "main")
    removal = git(bare, "rev-parse", "main").strip()
    with serve_git(root, user="x-access-token", token=TOKEN) as server:
        shown = cli(
            server.url, tmp_path, "cases", "show", "github::acme::shop::PR::3", "--output", "json"
        )
        assert shown.returncode == 0, shown.stderr
        case = json.loads(shown.stdout)
        assert case["key"] == "github::acme::shop::PR::3"
        assert case["retired"]["commit"] == removal and case["retired"]["by_sweep"] is False
        assert (
            case["counts"]
            == json.loads(
                cli(
                    server.url,
                    tmp_path,
                    "cases",
                    "show",
                    "github::acme::shop::PR::2",
                    "--output",
                    "json",
                ).stdout
            )["counts"]
        )  # the same report made both cases
        # The case's two files came from history; its raw reports never did.
        raw = {oid for path, oid in kept.items() if "/raw/" in path}
        assert not set(server.wanted()) & raw
