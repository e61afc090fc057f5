"""``securecase report``'s history cache: a later run reads only the commits made since, and
gives what a cold run gives; a rewritten history, a merge, a corrupt or unwritable cache fall
back to reading all history; caching off writes nothing.

The cases repo is the one of ``reportrepo.py`` (built once, copied per test); which commits a
run logged is recorded by a ``git`` on PATH that notes its arguments and runs the real git
(securecase drops GIT_TRACE from git's environment).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import clean_env, git, run_cli
from reportrepo import DAY0, NOW, PR43, commit_as_human, ingest_at, report_at, stamp
from reportrepo import build as build_repo
from securecase.storage.cachedir import cache_dir


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("report-cache")
    build_repo(work)
    return work / "security-cases"


@pytest.fixture
def work(template: Path, tmp_path: Path) -> Path:
    """A work dir holding its own copy of the cases repo (``./security-cases``)."""
    shutil.copytree(template, tmp_path / "security-cases", symlinks=True)
    return tmp_path


def run_report(
    work: Path, cache: Path | None, *args: str, trace: Path | None = None, **env: str
) -> tuple[Any, str]:
    """``report --output json`` with the cache in ``cache`` (None: ``--no-cache``); returns
    the data and stderr."""
    if cache is None:
        args = ("--no-cache", *args)
    else:
        env["SECURECASE_CACHE_DIR"] = str(cache)
    if trace is not None:
        trace.unlink(missing_ok=True)
        env["PATH"] = f"{recording_git(trace.parent)}{os.pathsep}{os.environ['PATH']}"
        env["RECORDED_GIT_ARGS"] = str(trace)
    proc = run_cli("report", "--output", "json", *args, cwd=work, SECURECASE_NOW=stamp(NOW), **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def recording_git(folder: Path) -> Path:
    """A folder holding a ``git`` that appends its arguments to $RECORDED_GIT_ARGS, then runs
    the real git."""
    real = shutil.which("git")
    assert real is not None
    bin_dir = folder / "recording-bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "git"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "$RECORDED_GIT_ARGS"\nexec {real} "$@"\n')
    script.chmod(0o755)
    return bin_dir


def logged(trace: Path) -> list[str]:
    """The ``git log`` command lines recorded (none when no git ran at all)."""
    if not trace.exists():
        return []
    return [line for line in trace.read_text().splitlines() if " log " in f" {line} "]


def cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def triage(repo: Path, folder: str, moment_days: float) -> None:
    """Alice sets the case in ``folder`` to TRIAGED by a plain git commit."""
    case = repo / folder / "case.yaml"
    case.write_text(case.read_text().replace("status: NEW", "status: TRIAGED", 1))
    commit_as_human(repo, f"triage {folder}", DAY0 + timedelta(days=moment_days))


API_FOLDER = "cases/github/acme/api/branch-main"
WEB_FOLDER = "cases/github/acme/web/branch-main"


def test_incremental_run_equals_a_cold_run(work: Path, tmp_path: Path) -> None:
    repo, cache, trace = work / "security-cases", tmp_path / "cache", tmp_path / "trace"
    first, _ = run_report(work, cache)
    assert first["mtta_hours"]["count"] == 1 and first["gate"]["pr_scans"] == 3
    (saved,) = cache_files(cache)
    old_head = head(repo)
    assert json.loads(saved.read_text())["head"] == old_head
    # Since then: a bot rescan of PR 43 and Alice's triage of api (created day 0 01h).
    day20 = DAY0 + timedelta(days=20)
    assert ingest_at(work, day20, report_at(work, "npm.json", day20), *PR43, "d2000000") == 0
    triage(repo, API_FOLDER, 20)
    new_head = head(repo)

    warm, stderr = run_report(work, cache, trace=trace)
    assert stderr == ""
    (log_line,) = logged(trace)
    assert f"{old_head}..{new_head}" in log_line  # only the new commits were read
    cold, _ = run_report(work, None)
    assert warm == cold
    # The new commits count: a fourth PR scan, and api acknowledged after 479 hours.
    assert warm["gate"]["pr_scans"] == 4
    assert warm["mtta_hours"] == {"mean": 242.0, "median": 242.0, "count": 2}
    assert json.loads(saved.read_text())["head"] == new_head

    # Nothing new: the cache answers without any git log.
    again, _ = run_report(work, cache, trace=trace)
    assert again == cold and logged(trace) == []


def test_rewritten_history_reads_everything(work: Path, tmp_path: Path) -> None:
    repo, cache, trace = work / "security-cases", tmp_path / "cache", tmp_path / "trace"
    base = head(repo)
    triage(repo, API_FOLDER, 20)
    run_report(work, cache)
    # The triage of api is dropped and a different commit takes its place: web triaged.
    git(repo, "reset", "-q", "--hard", base)
    triage(repo, WEB_FOLDER, 30)

    after, stderr = run_report(work, cache, trace=trace)
    assert stderr == ""
    (log_line,) = logged(trace)
    assert ".." not in log_line and head(repo) in log_line
    cold, _ = run_report(work, None)
    assert after == cold
    # web was created day 0 02h and triaged day 30: 718 hours; api's triage is gone.
    assert after["mtta_hours"] == {"mean": 361.5, "median": 361.5, "count": 2}


def test_a_merge_since_the_cache_is_read_incrementally(work: Path, tmp_path: Path) -> None:
    repo, cache, trace = work / "security-cases", tmp_path / "cache", tmp_path / "trace"
    run_report(work, cache)
    old_head = head(repo)
    git(repo, "checkout", "-q", "-b", "side")
    triage(repo, API_FOLDER, 20)
    git(repo, "checkout", "-q", "main")
    triage(repo, WEB_FOLDER, 30)
    merge = ("-c", "user.name=Alice", "-c", "user.email=alice@example.com", "merge", "-q")
    git(repo, *merge, "--no-edit", "side")

    merged, _ = run_report(work, cache, trace=trace)
    (log_line,) = logged(trace)
    assert f"{old_head}..{head(repo)}" in log_line
    cold, _ = run_report(work, None)
    # Both triage commits count (the merge itself changes no case of its own).
    assert merged == cold and merged["mtta_hours"]["count"] == 3


def test_corrupt_cache_warns_once_and_is_replaced(work: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold, _ = run_report(work, None)
    run_report(work, cache)
    (saved,) = cache_files(cache)
    good = json.loads(saved.read_text())
    damaged = [
        b"{not json",
        json.dumps({**good, "head": 7}).encode(),
        json.dumps({**good, "times": ["2026-11-02T09:00:00"] * len(good["times"])}).encode(),
        json.dumps({**good, "acknowledges": good["acknowledges"][1:]}).encode(),
    ]
    for damage in damaged:
        saved.write_bytes(damage)
        data, stderr = run_report(work, cache)
        assert data == cold
        (line,) = stderr.splitlines()
        assert line.startswith("securecase: warning: ") and "corrupt report cache" in line
        assert json.loads(saved.read_text()) == good  # replaced by a sound one
    # A head the repo does not have (another repo's, or a history since rewritten): read
    # everything, silently.
    saved.write_text(json.dumps({**good, "head": "ab" * 20}))
    data, stderr = run_report(work, cache)
    assert data == cold and stderr == ""
    # A cache another release wrote: silently replaced.
    saved.write_text(json.dumps({**good, "version": "0.0.1", "commits": []}))
    data, stderr = run_report(work, cache)
    assert data == cold and stderr == "" and json.loads(saved.read_text()) == good


def test_unwritable_cache_warns_once(work: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be\n")
    cold, _ = run_report(work, None)
    data, stderr = run_report(work, blocker)
    assert data == cold
    # Neither reading nor writing works: still one warning only.
    (line,) = stderr.splitlines()
    assert line.startswith("securecase: warning: ") and "the report cache" in line
    assert blocker.read_text() == "a file where the cache directory should be\n"


def test_concurrent_runs_leave_one_sound_cache(work: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold, _ = run_report(work, None)
    env = clean_env(SECURECASE_NOW=stamp(NOW), SECURECASE_CACHE_DIR=str(cache))
    command = [sys.executable, "-m", "securecase", "report", "--output", "json"]
    runs = [
        subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4
    assert all(json.loads(out) == cold for out in outputs)
    (saved,) = cache_files(cache)  # no temporary file left behind
    assert json.loads(saved.read_text())["head"] == head(work / "security-cases")
    data, stderr = run_report(work, cache)
    assert data == cold and stderr == ""


def test_cache_is_per_bot_identity(work: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run_report(work, cache)
    other = ("--git-email", "someone-else@example.com")
    # With another bot identity every commit is a human's: no PR scans at all.
    data, _ = run_report(work, cache, *other)
    cold, _ = run_report(work, None, *other)
    assert data == cold and data["gate"]["pr_scans"] == 0
    assert len(cache_files(cache)) == 2


def test_caching_off_writes_nothing(work: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    first, _ = run_report(work, cache, SECURECASE_CACHE="off")
    assert cache_files(cache) == []
    second, _ = run_report(work, None, SECURECASE_CACHE_DIR=str(cache))
    assert cache_files(cache) == [] and first == second


def test_default_location_is_outside_the_work_tree(work: Path, tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    run_report(work, None)  # warms nothing
    proc = run_cli(
        "report",
        "--output",
        "json",
        cwd=work,
        SECURECASE_NOW=stamp(NOW),
        XDG_CACHE_HOME=str(home),
    )
    assert proc.returncode == 0, proc.stderr
    (saved,) = cache_files(home)
    assert saved.parent == home / "securecase" / "report-events"
    assert "security-cases" not in saved.read_text()  # no location is written
    assert git(work / "security-cases", "status", "--porcelain", "--ignored") == ""


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SECURECASE_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/c"),
        ({"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/securecase"),
        ({"XDG_CACHE_HOME": "relative", "HOME": "/h"}, "/h/.cache/securecase"),
        ({"HOME": "/h"}, "/h/.cache/securecase"),
        ({"SECURECASE_CACHE": "off", "SECURECASE_CACHE_DIR": "/c"}, None),
        ({"SECURECASE_CACHE": "OFF", "HOME": "/h"}, None),
    ],
)
def test_cache_dir_rules(environ: dict[str, str], expected: str | None) -> None:
    found = cache_dir(environ)
    assert (str(found) if found else None) == expected


@pytest.mark.parametrize(
    ("output", "loaded", "absent"),
    [
        ("json", (), ("prometheus_client", "pygal", "jinja2")),
        ("openmetrics", ("prometheus_client",), ("pygal", "jinja2")),
    ],
)
def test_report_imports_only_what_its_output_needs(
    work: Path, output: str, loaded: tuple[str, ...], absent: tuple[str, ...]
) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "securecase", "report", "--output", output],
        cwd=work,
        env=clean_env(SECURECASE_NOW=stamp(NOW), SECURECASE_CACHE="off"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "securecase" in imported
    assert set(loaded) <= imported and not set(absent) & imported
