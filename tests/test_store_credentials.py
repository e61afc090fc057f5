"""Credentials for an https cases repo reach git through the environment only.

A real git server over HTTP (``git http-backend`` behind Basic authentication) checks what
the client sends; the tests look for the token in everything the run prints and in every file
it leaves, including while it is half-way through a push.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from conftest import bare_repo
from git_http import GitHttpServer, serve_git
from securecase.storage.git import remote_credentials

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "examples" / "reports" / "trivy-debian-buster.json"
TOKEN = "ghs_test0123456789abcdefTOKEN"


def bare(tmp_path: Path) -> Path:
    root = tmp_path / "srv"
    root.mkdir()
    bare_repo(root / "cases.git")
    return root


def ingest(url: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "securecase",
            "ingest",
            str(REPORT),
            "--repo",
            "acme/shop",
            "--branch",
            "main",
            "--commit",
            "3f1c2a9",
            "--cases-repo",
            url,
            "--report",
            "none",
        ],
        env={**os.environ, "TMPDIR": str(scratch), "SECURECASE_NOW": "2026-12-01T00:00:00Z", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def files_holding(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def commits(server: GitHttpServer) -> int:
    found = subprocess.run(
        ["git", "-C", str(server.root / "cases.git"), "rev-list", "--count", "--all"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(found.stdout or 0)


def test_a_token_in_the_environment_authenticates_and_is_never_printed_or_stored(
    tmp_path: Path,
) -> None:
    with serve_git(bare(tmp_path), user="x-access-token", token=TOKEN) as server:
        run = ingest(server.url, tmp_path, SECURECASE_CASES_TOKEN=TOKEN)
        assert run.returncode == 0, run.stderr
        assert commits(server) == 1
        assert server.refused == 0  # sent up front, on every request
        assert all("Authorization" in headers for _, headers in server.requests)
    assert TOKEN not in run.stdout + run.stderr
    assert files_holding(tmp_path, TOKEN) == []
    assert list((tmp_path / "tmp").rglob("run-*")) == []  # the temporary clone is gone


def test_a_token_in_the_url_is_moved_out_of_it(tmp_path: Path) -> None:
    with serve_git(bare(tmp_path), user="bot", token=TOKEN) as server:
        url = server.url.replace("http://", f"http://bot:{TOKEN}@")
        run = ingest(url, tmp_path)
        assert run.returncode == 0, run.stderr
        assert commits(server) == 1
    assert TOKEN not in run.stdout + run.stderr
    assert files_holding(tmp_path, TOKEN) == []


def test_no_file_holds_the_token_while_a_push_is_in_flight(tmp_path: Path) -> None:
    with serve_git(bare(tmp_path), user="x-access-token", token=TOKEN) as server:
        server.hold_pushes = True
        outcome: list[subprocess.CompletedProcess[str]] = []
        runner = threading.Thread(
            target=lambda: outcome.append(
                ingest(server.url, tmp_path, SECURECASE_CASES_TOKEN=TOKEN)
            )
        )
        runner.start()
        try:
            assert server.pushing.wait(timeout=90), "the ingest never pushed"
            clones = [p for p in (tmp_path / "tmp").rglob("config") if ".git" in p.parts]
            assert clones, "the temporary clone should exist mid-run"
            assert files_holding(tmp_path, TOKEN) == []
        finally:
            server.release.set()
            runner.join(timeout=120)
        assert outcome and outcome[0].returncode == 0, outcome[0].stderr if outcome else ""


def test_a_wrong_token_fails_with_exit_3_and_is_not_printed(tmp_path: Path) -> None:
    with serve_git(bare(tmp_path), user="x-access-token", token=TOKEN) as server:
        run = ingest(server.url, tmp_path, SECURECASE_CASES_TOKEN="ghs_wrong_token_value")
        assert run.returncode == 3
        assert commits(server) == 0
    assert "ghs_wrong_token_value" not in run.stdout + run.stderr
    assert "cannot use the cases repo" in run.stderr


def test_remote_credentials_leave_other_urls_alone_and_scope_the_header() -> None:
    assert remote_credentials("git@github.com:acme/cases.git", {}).config == ()
    assert remote_credentials("/srv/cases.git", {"SECURECASE_CASES_TOKEN": TOKEN}).config == ()
    creds = remote_credentials(
        "https://github.com/acme/cases.git", {"SECURECASE_CASES_TOKEN": TOKEN}
    )
    assert creds.url == "https://github.com/acme/cases.git"
    ((key, value),) = creds.config
    assert key == "http.https://github.com/acme/cases.git.extraHeader"
    assert value.startswith("Authorization: Basic ") and TOKEN not in value
    assert TOKEN in creds.secrets and value.split()[-1] in creds.secrets
