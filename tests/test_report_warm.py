"""``securecase report`` warm: what the caches keep (the history folded per day and case, the
facts of every case under one ``cases/`` tree id) gives what a cold run gives, after new
commits too, in every output; and folding a history in stretches, as the cache does, equals
folding it whole."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import git, run_cli
from reportrepo import DAY0, NOW, PR43, commit_as_human, ingest_at, report_at, stamp
from reportrepo import build as build_repo
from securecase.domain.metrics import AuthorKind, CommitEvent, Window, fold_history, gate
from test_report_cache import logged, recording_git

OUTPUTS = ("text", "json", "csv", "openmetrics")
PR44 = ("--repo", "acme/cart", "--pr", "44", "--target-branch", "main", "--commit")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("report-warm")
    build_repo(work)
    return work / "security-cases"


@pytest.fixture
def work(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "security-cases", symlinks=True)
    return tmp_path


def reports(work: Path, cache: Path | None, trace: Path | None = None) -> dict[str, str]:
    """stdout of ``report`` in every output (``cache`` None: ``--no-cache``, a cold run)."""
    env = {"SECURECASE_NOW": stamp(NOW)}
    args: tuple[str, ...] = ("--no-cache",) if cache is None else ()
    if cache is not None:
        env["SECURECASE_CACHE_DIR"] = str(cache)
    if trace is not None:
        trace.unlink(missing_ok=True)
        env["PATH"] = f"{recording_git(trace.parent)}{os.pathsep}{os.environ['PATH']}"
        env["RECORDED_GIT_ARGS"] = str(trace)
    found = {}
    for output in OUTPUTS:
        proc = run_cli("report", "--output", output, *args, cwd=work, **env)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        found[output] = proc.stdout
    return found


def listed_folders(trace: Path) -> bool:
    """Whether a recorded git run listed the case folders (``ls-tree -r``)."""
    return trace.exists() and any(
        "ls-tree" in line and " -r " in f" {line} " for line in trace.read_text().splitlines()
    )


def cases_entries(cache: Path) -> int:
    """How many entries of all cases under one tree the parse cache holds."""
    (path,) = cache.glob("parsed-*.sqlite3")
    with sqlite3.connect(path) as db:
        return int(
            db.execute("SELECT count(*) FROM parsed WHERE kind = 'cases-facts'").fetchone()[0]
        )


def test_warm_runs_equal_cold_runs_after_new_commits(work: Path, tmp_path: Path) -> None:
    repo, cache, trace = work / "security-cases", tmp_path / "cache", tmp_path / "trace"
    cold = reports(work, None)
    before = json.loads(cold["json"])
    assert reports(work, cache) == cold  # fills the caches
    # The same commit again: the cases come from one cache entry (no folder listed), the
    # history from its cache (no git log).
    assert reports(work, cache, trace) == cold
    assert not listed_folders(trace) and logged(trace) == []

    # One new commit: the bot records a new pull request that the gate blocks on day 20.
    day20 = DAY0 + timedelta(days=20)
    assert ingest_at(work, day20, report_at(work, "pip.json", day20), *PR44, "e1000000") == 1
    warm, cold = reports(work, cache, trace), reports(work, None)
    assert warm == cold
    # A new tree: only what changed since the cached one is looked at (one diff of the two
    # trees), no folder listed.
    assert not listed_folders(trace) and any(
        "diff-tree" in line and "--stdin" not in line for line in trace.read_text().splitlines()
    )
    data = json.loads(warm["json"])
    assert data["gate"]["pr_scans"] == before["gate"]["pr_scans"] + 1
    assert data["open_cases"] == before["open_cases"] + 1
    assert cases_entries(cache) == 1  # the old tree's entry made way for the new one

    # Then a human triage, and a bot rescan the next day: an acknowledgement and a scan.
    case = repo / "cases/github/acme/cart/pr-44/case.yaml"
    case.write_text(case.read_text().replace("status: NEW", "status: TRIAGED", 1))
    commit_as_human(repo, "triage PR 44", day20 + timedelta(hours=3))
    day21 = DAY0 + timedelta(days=21)
    assert ingest_at(work, day21, report_at(work, "npm.json", day21), *PR43, "d2000000") == 0
    warm, cold = reports(work, cache), reports(work, None)
    assert warm == cold
    data = json.loads(warm["json"])
    assert data["gate"]["pr_scans"] == before["gate"]["pr_scans"] + 2
    assert data["mtta_hours"]["count"] == before["mtta_hours"]["count"] + 1
    assert reports(work, cache, trace) == cold and not listed_folders(trace)


def test_a_rewritten_history_gives_the_cold_answer(work: Path, tmp_path: Path) -> None:
    repo, cache = work / "security-cases", tmp_path / "cache"
    base = git(repo, "rev-parse", "HEAD").strip()
    day20 = DAY0 + timedelta(days=20)
    assert ingest_at(work, day20, report_at(work, "pip.json", day20), *PR44, "e1000000") == 1
    reports(work, cache)
    git(repo, "reset", "-q", "--hard", base)  # the scan of PR 44 is gone, its case too
    warm, cold = reports(work, cache), reports(work, None)
    assert warm == cold and json.loads(warm["json"])["gate"]["pr_scans"] == 3
    assert "acme/cart" not in warm["json"]


# -- folding -----------------------------------------------------------------------------

KEYS = ("github::acme::a::PR::1", "github::acme::b::PR::2", "github::acme::a::BR::main")
BASE = datetime(2026, 11, 1, tzinfo=UTC)


@st.composite
def histories(draw: st.DrawFn) -> list[CommitEvent]:
    """Events in ``git log`` order (newest first) around midnights, in several UTC offsets."""
    count = draw(st.integers(0, 30))
    events = []
    for n in range(count):
        offset = timedelta(hours=draw(st.sampled_from([-5, 0, 2, 9])))
        at = BASE + timedelta(minutes=draw(st.integers(-3000, 3000)))
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()):
            trailers = {"decision": draw(st.sampled_from(["pass", "block"]))}
            if draw(st.booleans()):
                trailers["rules"] = draw(st.sampled_from(["r1", "r1 r2", "r2 r2"]))
            if draw(st.integers(0, 5)) == 0:
                trailers[draw(st.sampled_from(["stale", "sweep", "retired"]))] = "true"
            events.append(
                CommitEvent(f"b{n}", AuthorKind.BOT, at.astimezone(timezone(offset)), key, trailers)
            )
        else:
            acknowledges = draw(st.booleans())
            events.append(
                CommitEvent(
                    f"h{n}",
                    AuthorKind.HUMAN,
                    at.astimezone(timezone(offset)),
                    key,
                    acknowledges=acknowledges,
                )
            )
    return events


@settings(max_examples=200, deadline=None)
@given(histories(), st.integers(0, 30), st.integers(-2, 2), st.integers(0, 2))
def test_folding_in_stretches_equals_folding_whole(
    events: list[CommitEvent], split: int, first: int, days: int
) -> None:
    cut = min(split, len(events))
    whole = fold_history(events)
    assert fold_history(events[:cut], fold_history(events[cut:])) == whole
    # The gate over the folded history counts what it counts over the events themselves: PR
    # scans at moments inside the window (its days are UTC days).
    since = BASE.date() + timedelta(days=first)
    window = Window(since, since + timedelta(days=days))
    scans = [
        e
        for e in events
        if e.author is AuthorKind.BOT
        and window.holds(e.at)
        and "::PR::" in e.case_key
        and "decision" in e.trailers
        and not {"stale", "sweep"} & set(e.trailers)
    ]
    line = gate(whole, window)
    assert line.pr_scans == len(scans)
    blocked = [e for e in scans if e.trailers["decision"] == "block"]
    assert line.blocked == len(blocked)
    rules = Counter(r for e in blocked for r in set(e.trailers.get("rules", "").split()))
    assert dict(line.top_rules) == dict(rules)
    # Each case's first acknowledgement and every retirement stay, in log order.
    acks: dict[str, CommitEvent] = {}
    for e in events:
        if e.author is AuthorKind.HUMAN and e.acknowledges:
            if e.case_key not in acks or e.at < acks[e.case_key].at:
                acks[e.case_key] = e
    kept = [e for e in events if e in acks.values() or "retired" in e.trailers]
    assert list(whole.events) == kept
