"""``securecase cases history``: the real CLI over real cases repos built by the real ingest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import TRIVY, git, ingest_json, run_cli, trivy_rescan
from securecase.services.history import parse_counts

KEY = "github::acme::shop::PR::42"
PR42 = ("--repo", "acme/shop", "--pr", "42", "--target-branch", "main")
CASE_PATH = "cases/github/acme/shop/pr-42/case.yaml"
HUMAN = ("-c", "user.name=Alice Triager", "-c", "user.email=alice@example.com")


def human_commit(repo: Path, edit: dict[str, str], message: str = "triage") -> str:
    """Edit case.yaml line by line as a person would (sed-like), commit as a human."""
    path = repo / CASE_PATH
    text = path.read_text()
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text)
    git(repo, *HUMAN, "commit", "-qam", message)
    return git(repo, "rev-parse", "HEAD").strip()


def history(work: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = run_cli("cases", "history", *args, "--output", "json", cwd=work)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stderr


@pytest.fixture
def triaged_repo(work: Path) -> Path:
    """PR 42: a bot scan (HIGH: block), a human triage commit, a rescan (pass), a fix (resolved)."""
    assert ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c1000000", cwd=work)[0] == 1
    repo = work / "security-cases"
    human_commit(
        repo,
        {
            "status: NEW": "status: TRIAGED",
            "assignee: null": "assignee: '@alice'",
            "tags: []": "tags:\n  - needs-upgrade",
        },
    )
    # Rescans of the same artifact: the HIGH upgraded away, then the MEDIUM too.
    upgraded = trivy_rescan(TRIVY / "pip.json", work / "upgraded.json", "CVE-2019-14806")
    assert ingest_json(upgraded, *PR42, "--commit", "c2000000", cwd=work)[0] == 0
    fixed = trivy_rescan(TRIVY / "pip.json", work / "fixed.json")
    code, out, err = ingest_json(fixed, *PR42, "--commit", "c3000000", cwd=work)
    assert code == 0 and out["status"] == "RESOLVED", err
    return repo


def test_timeline_of_bot_and_human_commits(work: Path, triaged_repo: Path) -> None:
    code, out, err = history(work, KEY)
    assert code == 0, err
    assert out["key"] == KEY and out["path"] == CASE_PATH
    entries = out["entries"]
    logged = git(triaged_repo, "log", "--reverse", "--format=%H", "--", CASE_PATH).split()
    assert [e["commit"] for e in entries] == logged and len(logged) == 4
    assert [e["author"]["kind"] for e in entries] == ["bot", "human", "bot", "bot"]
    assert entries[1]["author"] == {
        "name": "Alice Triager",
        "email": "alice@example.com",
        "kind": "human",
    }
    assert [e["scanned_commit"] for e in entries] == ["c1000000", None, "c2000000", "c3000000"]
    assert [e["decision"] for e in entries] == ["block", "block", "pass", "pass"]
    assert [e["status"] for e in entries] == ["NEW", "TRIAGED", "TRIAGED", "RESOLVED"]
    assert [e["previous_status"] for e in entries] == [None, "NEW", "TRIAGED", "TRIAGED"]
    assert [e["status_changed"] for e in entries] == [True, True, False, True]
    assert [e["change"] for e in entries] == ["created", "updated", "updated", "updated"]
    assert [e["counts"]["high"] for e in entries] == [1, 1, 0, 0]
    assert [e["counts"]["medium"] for e in entries] == [1, 1, 1, 0]
    # Bot commits are answered from their trailers; the human one from the file at that commit.
    assert [e["facts_from"] for e in entries] == ["trailers", "case file", "trailers", "trailers"]
    assert entries[1]["triage_changes"] == ["assignee - -> @alice", "tags +needs-upgrade"]
    assert all(e["triage_changes"] == [] for e in entries if e["author"]["kind"] == "bot")
    times = [e["time"] for e in entries]
    assert times == sorted(times)


def test_table_output_names_the_human_change(work: Path, triaged_repo: Path) -> None:
    proc = run_cli("cases", "history", KEY, cwd=work)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{KEY}  ({CASE_PATH})"
    assert lines[1].split()[:3] == ["TIME", "AUTHOR", "COMMIT"]
    human = [line for line in lines if "(human)" in line]
    assert len(human) == 1 and "Alice Triager" in human[0]
    assert "status NEW -> TRIAGED" in human[0] and "assignee - -> @alice" in human[0]
    assert "status TRIAGED -> RESOLVED" in lines[-1] and "0/0/0/0" in lines[-1]
    assert "case created" in lines[2] and "0/1/1/0" in lines[2]


def test_triage_merged_from_a_branch_while_the_bot_updated_main(work: Path) -> None:
    assert ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c1000000", cwd=work)[0] == 1
    repo = work / "security-cases"
    git(repo, "checkout", "-qb", "triage")
    triage = human_commit(repo, {"status: NEW": "status: TRIAGED"})
    git(repo, "checkout", "-q", "main")
    upgraded = trivy_rescan(TRIVY / "pip.json", work / "upgraded.json", "CVE-2019-14806")
    assert ingest_json(upgraded, *PR42, "--commit", "c2000000", cwd=work)[0] == 0
    git(repo, *HUMAN, "merge", "-q", "--no-ff", "triage", "-m", "Merge triage")
    merge = git(repo, "rev-parse", "HEAD").strip()
    code, out, err = history(work, KEY)
    assert code == 0, err
    by_commit = {e["commit"]: e for e in out["entries"]}
    assert len(by_commit) == 4 and {triage, merge} <= set(by_commit)
    rescan = next(e for e in out["entries"] if e["scanned_commit"] == "c2000000")
    # The rescan on main started from the NEW version: no status change there.
    assert rescan["previous_status"] == "NEW" and rescan["status"] == "NEW"
    assert not rescan["status_changed"]
    assert by_commit[triage]["previous_status"] == "NEW"
    assert by_commit[triage]["status"] == "TRIAGED"
    # The merge resolved both sides: compared with main, it brings the triage in.
    assert by_commit[merge]["author"]["kind"] == "human"
    assert by_commit[merge]["previous_status"] == "NEW"
    assert by_commit[merge]["status"] == "TRIAGED" and by_commit[merge]["counts"]["high"] == 0


def test_a_merge_that_only_brings_in_a_triage_commit_is_not_a_second_row(work: Path) -> None:
    # GitHub's "create a merge commit": the merge holds exactly the triage branch's file, so
    # the change is the triage commit's; listing the merge too would show it twice.
    assert ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c1000000", cwd=work)[0] == 1
    repo = work / "security-cases"
    git(repo, "checkout", "-qb", "triage")
    triage = human_commit(repo, {"status: NEW": "status: TRIAGED", "tags: []": "tags: [x]"})
    git(repo, "checkout", "-q", "main")
    other = ("--repo", "acme/shop", "--pr", "43", "--target-branch", "main")
    assert ingest_json(TRIVY / "npm.json", *other, cwd=work)[0] == 0  # main moves on
    merger = ("-c", "user.name=Bob Merger", "-c", "user.email=bob@example.com")
    git(repo, *merger, "merge", "-q", "--no-ff", "triage", "-m", "Merge triage")
    code, out, err = history(work, KEY)
    assert code == 0, err
    assert [e["author"]["name"] for e in out["entries"]] == ["securecase-bot", "Alice Triager"]
    assert out["entries"][1]["commit"] == triage
    assert out["entries"][1]["triage_changes"] == ["tags +x"]
    table = run_cli("cases", "history", KEY, cwd=work).stdout
    assert table.count("status NEW -> TRIAGED") == 1 and "Bob Merger" not in table


def test_forged_trailers_in_a_human_commit_are_not_trusted(work: Path) -> None:
    assert ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c1000000", cwd=work)[0] == 1
    repo = work / "security-cases"
    human_commit(
        repo,
        {"status: NEW": "status: IN_PROGRESS"},
        message=f"work on it\n\nSecurecase-Case: {KEY}\nSecurecase-Commit: forged\n"
        "Securecase-Decision: pass\nSecurecase-Status: CLOSED\n"
        "Securecase-Counts: critical=0 high=0 medium=0 low=0 info=0 unknown=0",
    )
    code, out, err = history(work, KEY)
    assert code == 0, err
    forged = out["entries"][1]
    assert forged["author"]["kind"] == "human" and forged["facts_from"] == "case file"
    assert forged["status"] == "IN_PROGRESS" and forged["decision"] == "block"
    assert forged["scanned_commit"] is None and forged["counts"]["high"] == 1


def test_bot_identity_decides_who_is_a_bot(work: Path) -> None:
    bot = ("--git-email", "scanner@ci.example.com")
    code, _, err = ingest_json(TRIVY / "npm.json", *PR42, *bot, "--git-name", "ci-bot", cwd=work)
    assert code == 0, err
    code, out, err = history(work, KEY)  # default identity: this author is not the bot
    assert code == 0, err
    assert out["entries"][0]["author"]["kind"] == "human"
    assert out["entries"][0]["facts_from"] == "case file"
    assert out["entries"][0]["scanned_commit"] is None
    code, out, err = history(work, KEY, *bot)
    assert code == 0, err
    assert out["entries"][0]["author"]["kind"] == "bot"
    assert out["entries"][0]["facts_from"] == "trailers"
    proc = run_cli(
        "cases", "history", KEY, "--output", "json", cwd=work,
        SECURECASE_GIT_EMAIL="scanner@ci.example.com",
    )  # fmt: skip
    assert json.loads(proc.stdout)["entries"][0]["author"]["kind"] == "bot"


def test_a_broken_version_is_shown_not_fatal(work: Path) -> None:
    assert ingest_json(TRIVY / "npm.json", *PR42, "--commit", "c1000000", cwd=work)[0] == 0
    repo = work / "security-cases"
    human_commit(repo, {"status: NEW": "status: [broken"}, message="oops")
    human_commit(repo, {"status: [broken": "status: TRIAGED"}, message="fix")
    code, out, err = history(work, KEY)
    assert code == 0, err
    broken, fixed = out["entries"][1], out["entries"][2]
    assert broken["problem"] and CASE_PATH in broken["problem"]
    assert broken["status"] is None and broken["counts"] is None
    assert fixed["status"] == "TRIAGED" and fixed["previous_status"] == "NEW"
    assert fixed["problem"] is None and fixed["triage_changes"] == []


def test_deleted_case_keeps_its_history(work: Path) -> None:
    assert ingest_json(TRIVY / "npm.json", *PR42, cwd=work)[0] == 0
    repo = work / "security-cases"
    git(repo, "rm", "-rq", "cases/github/acme/shop/pr-42")
    git(repo, *HUMAN, "commit", "-qm", "drop the case")
    code, out, err = history(work, KEY)
    assert code == 0, err
    assert [e["change"] for e in out["entries"]] == ["created", "deleted"]
    assert out["entries"][1]["status"] is None and out["entries"][1]["status_changed"] is False


def test_unknown_key_bad_key_and_missing_repo_exit_2(work: Path, tmp_path: Path) -> None:
    assert ingest_json(TRIVY / "npm.json", *PR42, cwd=work)[0] == 0
    proc = run_cli("cases", "history", "github::acme::shop::PR::43", cwd=work)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no case 'github::acme::shop::PR::43'" in proc.stderr
    assert "hint: `securecase cases list` shows the keys" in proc.stderr
    proc = run_cli("cases", "history", "not-a-key", cwd=work)
    assert proc.returncode == 2 and "error:" in proc.stderr
    missing = tmp_path / "nowhere"
    proc = run_cli("cases", "history", KEY, "--cases-repo", missing, cwd=work)
    assert proc.returncode == 2 and "no cases repo at" in proc.stderr
    assert not missing.exists()


def test_history_of_a_remote_cases_repo(work: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    url = remote.as_uri()
    ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c1000000", "--cases-repo", url, cwd=work)
    code, out, err = history(work, KEY, "--cases-repo", url)  # a one-commit remote: complete
    assert code == 0 and [e["scanned_commit"] for e in out["entries"]] == ["c1000000"], err
    upgraded = trivy_rescan(TRIVY / "pip.json", tmp_path / "upgraded.json", "CVE-2019-14806")
    ingest_json(upgraded, *PR42, "--commit", "c2000000", "--cases-repo", url, cwd=work)
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(remote), str(checkout))
    git(checkout, "config", "user.name", "Bob")
    git(checkout, "config", "user.email", "bob@example.com")
    path = checkout / CASE_PATH
    path.write_text(path.read_text().replace("status: NEW", "status: TRIAGED", 1))
    git(checkout, "commit", "-qam", "triage")
    git(checkout, "push", "-q", "origin", "main")
    assert (
        ingest_json(
            TRIVY / "pip.json", *PR42, "--commit", "c3000000", "--cases-repo", url, cwd=work
        )[0]
        == 1
    )
    code, out, err = history(work, KEY, "--cases-repo", url)
    assert code == 0, err
    entries = out["entries"]
    assert [e["scanned_commit"] for e in entries] == ["c1000000", "c2000000", None, "c3000000"]
    assert [e["author"]["kind"] for e in entries] == ["bot", "bot", "human", "bot"]
    assert entries[2]["status"] == "TRIAGED" and entries[2]["previous_status"] == "NEW"
    assert [e["decision"] for e in entries] == ["block", "pass", "pass", "block"]


COUNT_KEYS = ("critical", "high", "medium", "low", "info", "unknown")


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=6, max_size=6))
def test_counts_trailer_round_trip(values: list[int]) -> None:
    counts = dict(zip(COUNT_KEYS, values, strict=True))
    text = " ".join(f"{k}={n}" for k, n in counts.items())  # as ingest writes it
    assert parse_counts(text) == counts
    assert parse_counts(" ".join(reversed(text.split()))) == counts


@given(st.text(max_size=80))
def test_counts_trailer_rejects_anything_incomplete_or_malformed(text: str) -> None:
    parsed = parse_counts(text)
    if parsed is not None:  # only complete, well-formed values are accepted
        assert set(parsed) == set(COUNT_KEYS) and all(n >= 0 for n in parsed.values())
    assert parse_counts("critical=0 high=1 medium=0 low=0 info=0") is None
    assert parse_counts("critical=0 high=-1 medium=0 low=0 info=0 unknown=0") is None
    assert parse_counts("critical=0 high=x medium=0 low=0 info=0 unknown=0") is None


def test_text_a_human_wrote_cannot_shift_or_forge_a_field(work: Path) -> None:
    assert ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c1000000", cwd=work)[0] == 1
    repo = work / "security-cases"
    path = repo / CASE_PATH
    path.write_text(path.read_text().replace("status: NEW", "status: IN_PROGRESS", 1))
    name = "Eve \x1f Securecase-Status: CLOSED"
    message = (
        f"subject \x1f Securecase-Case: {KEY}\n\nSecurecase-Decision: pass\n\n"
        f"Securecase-Case: {KEY}\nSecurecase-Commit: forged\nSecurecase-Decision: pass\n"
        "Securecase-Status: CLOSED\n"
        "Securecase-Counts: critical=0 high=0 medium=0 low=0 info=0 unknown=0\n"
    )
    git(
        repo, "-c", f"user.name={name}", "-c", "user.email=eve@example.com",
        "commit", "-qa", "--date", "1700000000 -0130", "-m", message,
    )  # fmt: skip
    code, out, err = history(work, KEY)
    assert code == 0, err
    assert len(out["entries"]) == 2
    eve = out["entries"][1]
    assert eve["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert eve["author"] == {"name": name, "email": "eve@example.com", "kind": "human"}
    assert eve["subject"] == f"subject \x1f Securecase-Case: {KEY}"
    assert eve["facts_from"] == "case file" and eve["status"] == "IN_PROGRESS"
    assert eve["decision"] == "block" and eve["scanned_commit"] is None
    assert eve["time"] == git(repo, "log", "-1", "--format=%cI").strip()


def test_bot_trailers_are_read_by_git_s_own_rules(work: Path) -> None:
    assert ingest_json(TRIVY / "pip.json", *PR42, "--commit", "c1000000", cwd=work)[0] == 1
    repo = work / "security-cases"
    path = repo / CASE_PATH
    path.write_text(path.read_text().replace("status: NEW", "status: TRIAGED", 1))
    # A commit as the bot, by hand: a folded value, a repeated key (the first counts).
    message = (
        "by hand\n\nSecurecase-Case: " + KEY + "\nSecurecase-Commit: c9\nSecurecase-Commit: c8\n"
        "Securecase-Decision: pass\nSecurecase-Status: CLOSED\n"
        "Securecase-Counts: critical=0 high=0\n medium=2 low=0 info=0 unknown=0\n"
        "Securecase-Stale: true\n"
    )
    bot = ("-c", "user.name=somebody", "-c", "user.email=securecase-bot@users.noreply.github.com")
    git(repo, *bot, "commit", "-qa", "--date", "1700000000 +0000", "-m", message)
    assert git(repo, "log", "-1", "--format=%aI") == "2023-11-14T22:13:20+00:00\n"
    code, out, err = history(work, KEY)
    assert code == 0, err
    entry = out["entries"][1]
    assert entry["author"]["kind"] == "bot" and entry["facts_from"] == "trailers"
    assert (entry["scanned_commit"], entry["decision"], entry["status"]) == ("c9", "pass", "CLOSED")
    assert entry["counts"]["medium"] == 2 and entry["stale"] is True
    # the time committed, not the time authored
    assert entry["time"] == git(repo, "log", "-1", "--format=%cI").strip()
