"""Real concurrent processes and killed processes against real git repositories."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TRIVY, clean_env, git, ingest_json, read_case_files
from reportgen import TEMPLATE_FILES, big_report

REPORTS = TEMPLATE_FILES  # real Trivy reports of images and lockfiles


def start_ingest(work: Path, cases: str, report: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "securecase",
            "ingest",
            str(report),
            "--cases-repo",
            cases,
            "--output",
            "json",
            *args,
        ],
        cwd=work,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("kind", ["remote", "local"])
def test_concurrent_ingests_lose_no_update(work: Path, kind: str) -> None:
    if kind == "remote":
        location = work / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(location)], check=True)
    else:
        location = work / "local-cases"
    # Five different pull requests, and five runs on one shared pull request, each with its
    # own source slot, all at once.
    subjects: list[tuple[str, ...]] = [
        ("--pr", str(100 + n), "--target-branch", "main", "--commit", f"b{n}000000")
        for n in range(5)
    ]
    subjects += [
        ("--pr", "7", "--target-branch", "main", "--source", f"scan-{n}", "--commit", "54a0ed00")
        for n in range(5)
    ]
    procs = [
        start_ingest(work, str(location), TRIVY / REPORTS[n % 5], "--repo", "acme/shop", *args)
        for n, args in enumerate(subjects)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode in (0, 1), err
    if kind == "remote":
        checkout = work / "checkout"
        subprocess.run(
            ["git", "clone", "-q", str(location), str(checkout)], check=True, env=clean_env()
        )
    else:
        checkout = location
    assert int(git(checkout, "rev-list", "--count", "HEAD")) == 10
    for n in range(5):
        assert (checkout / f"cases/github/acme/shop/pr-{100 + n}/case.yaml").is_file()
    shared = read_case_files(checkout / "cases/github/acme/shop/pr-7/case.yaml")
    assert sorted(shared["sources"]) == [f"scan-{n}" for n in range(5)]
    logged = git(checkout, "log", "--format=%(trailers:key=Securecase-Case,valueonly)")
    assert logged.split().count("github::acme::shop::PR::7") == 5
    fsck = subprocess.run(
        ["git", "-C", str(location), "fsck", "--strict"],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert fsck.returncode == 0, fsck.stderr


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_killed_ingest_leaves_a_usable_repo(work: Path, tmp_path: Path, kind: str) -> None:
    report = tmp_path / "big.json"
    report.write_bytes(big_report(3000))
    if kind == "remote":
        location = work / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(location)], check=True)
    else:
        location = work / "cases"
    rng = random.Random(7)
    args = ("--repo", "acme/shop", "--branch", "main")
    for attempt in range(6):
        proc = start_ingest(work, str(location), report, *args, "--commit", f"a{attempt}000000")
        time.sleep(rng.uniform(0.2, 1.6))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    code, out, err = ingest_json(
        report, *args, "--cases-repo", location, "--commit", "f10a1000", cwd=work
    )
    assert code == 0, err
    assert out["cases_commit"]
    fsck = subprocess.run(
        ["git", "-C", str(location), "fsck", "--strict"],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert fsck.returncode == 0, fsck.stderr
    if kind == "local":
        case = read_case_files(location / out["case_path"])
        assert case["latest"]["commit"] == "f10a1000" and len(case["findings"]) == 3000
        assert git(location, "status", "--porcelain", "--", "cases") == ""
