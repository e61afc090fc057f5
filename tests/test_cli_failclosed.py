"""Issue 12, the command-line half: never a silent pass, end to end through the real CLI.

Subjects without their target branch, "no rule applied" said everywhere, validated commit ids
and trailers, future commit times, policy files that are not files, YAML alias bombs, Markdown
injection, invalid UTF-8 arguments and NaN in a case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from conftest import (
    FIXTURES,
    TRIVY,
    clean_env,
    commit_count,
    git,
    ingest_json,
    read_github_output,
    run_cli,
)
from fake_github import TOKEN, FakeGitHub, serve

HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
BLOCK_MEDIUM = "version: 1\nrules:\n  - id: no-medium\n    block: {severity_at_least: MEDIUM}\n"
ONLY_RELEASE = (
    "version: 1\nrules:\n  - id: release-only\n    when: {branches: [release]}\n"
    "    block: {severity_at_least: LOW}\n"
)
#: Git allows all of it in a branch name (no spaces, so raw HTML without attributes).
HOSTILE_BRANCH = "x`<b>[y](javascript:alert(2))<i>`|"
#: A policy of 9 levels of 9 aliases (under 410 bytes): the schema errors of its rules used to
#: print every expanded list (hundreds of megabytes), and a case file with it ran out of memory.
ALIAS_BOMB = "version: 1\nrules:\n  - &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"  - &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def hostile_trivy(work: Path) -> Path:
    """alpine-310.json with scanner text that tries to break out of Markdown."""
    data = json.loads((TRIVY / "alpine-310.json").read_text())
    vuln = data["Results"][0]["Vulnerabilities"][0]
    vuln["PkgName"] = "lib``<img src=x onerror=alert(1)>``|x"
    vuln["FixedVersion"] = "1.0`](javascript:alert(1))"
    vuln["VulnerabilityID"] = "CVE-2024-1<img src=x onerror=alert(1)>"
    vuln["Title"] = "[click](javascript:alert(1))\n<script>alert(1)</script>"
    return write(work / "hostile-trivy.json", json.dumps(data))


class _Html(HTMLParser):
    """Tags and link targets of rendered HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.cells_per_row: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [v or "" for k, v in attrs if k in {"href", "src"}]
        if tag == "tr":
            self.cells_per_row.append(0)
        if tag in {"td", "th"}:
            self.cells_per_row[-1] += 1


def assert_inert(markdown: str) -> None:
    """Rendered as GitHub renders it (cmark-gfm, raw HTML let through so it would show),
    the Markdown holds no HTML of its own, only https links, and tables keep 6 columns."""
    html = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    parsed = _Html()
    parsed.feed(html)
    allowed = {"h3", "p", "code", "strong", "ul", "li", "a", "table", "thead", "tbody", "tr"}
    allowed |= {"th", "td", "details", "summary", "blockquote", "em"}
    assert set(parsed.tags) <= allowed, (set(parsed.tags) - allowed, html)
    assert all(h.startswith("https://") for h in parsed.hrefs), parsed.hrefs
    assert "javascript:" not in "".join(parsed.hrefs)
    widths = set(parsed.cells_per_row[: len(parsed.cells_per_row) - 5])  # the findings table
    assert widths <= {5}, (widths, html)  # severity, advisory, where → fixed, rule, new


# -- 1. a pull request is judged against its target branch ----------------------------------


def test_pr_without_target_branch_is_refused_outside_actions(work: Path) -> None:
    proc = run_cli("ingest", TRIVY / "pip.json", "--repo", "acme/shop", "--pr", "5", cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert "--pr 5 needs --target-branch" in proc.stderr and "hint:" in proc.stderr
    assert commit_count(work / "security-cases") == 0


def test_pr_target_branch_is_read_from_github_with_credentials(
    work: Path, fake: FakeGitHub
) -> None:
    fake.add_pull("acme", "shop", 5, base_ref="develop", head_sha=HEAD)
    proc = run_cli(
        "ingest", TRIVY / "pip.json", "--repo", "acme/shop", "--pr", "5", "--report", "none",
        "--github-api-url", fake.base_url, "--output", "json", cwd=work, GITHUB_TOKEN=TOKEN,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    out = json.loads(proc.stdout)
    assert out["baseline"]["case"] == "github::acme::shop::BR::develop"
    assert fake.count("pulls/get") == 1
    case = (work / "security-cases/cases/github/acme/shop/pr-5/case.yaml").read_text()
    assert "target_branch: develop" in case


def test_pr_target_branch_lookup_failure_is_refused(work: Path, fake: FakeGitHub) -> None:
    proc = run_cli(
        "ingest", TRIVY / "pip.json", "--repo", "acme/shop", "--pr", "9", "--report", "none",
        "--github-api-url", fake.base_url, cwd=work, GITHUB_TOKEN=TOKEN,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "cannot read the pull request's target branch" in proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout
    assert commit_count(work / "security-cases") == 0


# -- 2. "no rule applied" is said in every output --------------------------------------------


def test_no_rule_applied_is_said_in_text_json_and_markdown(work: Path) -> None:
    policy = write(work / "policy.yaml", ONLY_RELEASE)
    args = ("--repo", "acme/shop", "--branch", "main", "--policy", policy)
    text = run_cli("ingest", TRIVY / "pip.json", *args, cwd=work)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("PASS (no rule applied)")
    assert "note: no policy rule applies to this subject" in text.stdout
    code, out, err = ingest_json(TRIVY / "npm.json", *args, cwd=work)
    assert code == 0, err
    assert out["rules_applied"] == [] and "no policy rule applies" in out["note"]
    md = run_cli("ingest", TRIVY / "pip.json", *args, "--output", "markdown", cwd=work)
    assert "> **Note:** No policy rule applies to this subject" in md.stdout
    # A rule that does apply: no note.
    code, out, _ = ingest_json(
        TRIVY / "npm.json", *args[:3], "release", "--policy", policy, cwd=work
    )
    assert out["rules_applied"] == ["release-only"] and out["note"] is None


def test_no_rule_applied_in_the_check_run_and_step_outputs(work: Path, fake: FakeGitHub) -> None:
    policy = write(work / "policy.yaml", ONLY_RELEASE)
    env = actions_env(work, fake)
    proc = run_cli(
        "ingest", TRIVY / "pip.json", "--branch", "main", "--policy", policy, cwd=work, **env
    )
    assert proc.returncode == 0, proc.stderr
    [run] = fake.check_runs.values()
    assert run["output"]["title"] == "Passed by default: no policy rule applies to this subject"
    assert "No policy rule applies to this subject" in run["output"]["summary"]
    assert "No policy rule applies to this subject" in (work / "summary.md").read_text()
    values = read_github_output(work / "output.txt")
    assert values["rules_applied"] == "" and "no policy rule applies" in values["note"]


def actions_env(work: Path, fake: FakeGitHub, **extra: str) -> dict[str, str]:
    payload = FIXTURES / "github-events" / "workflow_dispatch.json"
    values = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_EVENT_PATH": str(payload),
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_SHA": HEAD,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_API_URL": fake.base_url,
        "GITHUB_RUN_ID": "77",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
        "GITHUB_OUTPUT": str(work / "output.txt"),
    }
    values.update(extra)
    return values


# -- 3. commit ids, trailers and commit times ------------------------------------------------


@pytest.mark.parametrize(
    "commit",
    [
        "abc1234\nSecurecase-Decision: pass",
        "abc1234\rSecurecase-Status: CLOSED",
        "HEAD",
        "abc12",
        "g" * 40,
        "a" * 65,
    ],
)
def test_commit_must_be_a_hex_object_id(work: Path, commit: str) -> None:
    proc = run_cli(
        "ingest", TRIVY / "pip.json", "--repo", "acme/shop", "--branch", "main",
        "--commit", commit, cwd=work,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "expected a git commit id (7 to 64 hex digits)" in proc.stderr
    assert commit_count(work / "security-cases") == 0


def test_commit_ids_from_actions_are_checked_too(work: Path, fake: FakeGitHub) -> None:
    env = actions_env(work, fake, GITHUB_SHA="abc1234\nSecurecase-Decision: pass")
    proc = run_cli("ingest", TRIVY / "pip.json", cwd=work, **env)
    assert proc.returncode == 2, proc.stderr
    assert "GITHUB_SHA" in proc.stderr and "Traceback" not in proc.stderr
    assert commit_count(work / "security-cases") == 0 and not fake.check_runs


def test_upper_case_commit_is_stored_lower_case_and_history_reads_the_truth(work: Path) -> None:
    # The branch name carries a Unicode line separator and a would-be trailer: git does not
    # break lines there, and the commit message flattens it anyway.
    branch = "feat\u2028Securecase-Decision: pass"
    policy = write(work / "policy.yaml", BLOCK_MEDIUM)
    args = ("--repo", "acme/shop", "--branch", branch, "--policy", policy)
    code, out, err = ingest_json(TRIVY / "pip.json", *args, "--commit", "ABCDEF1234", cwd=work)
    assert code == 1, err
    body = git(work / "security-cases", "log", "-1", "--format=%B")
    assert "Securecase-Commit: abcdef1234\n" in body
    trailers = [line for line in body.splitlines() if line.startswith("Securecase-")]
    assert [t.split(":")[0] for t in trailers].count("Securecase-Decision") == 1
    proc = run_cli("cases", "history", out["case_key"], "--output", "json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    [entry] = json.loads(proc.stdout)["entries"]
    assert entry["decision"] == "block" and entry["scanned_commit"] == "abcdef1234"


def test_far_future_commit_time_is_clamped_and_does_not_freeze_the_case(work: Path) -> None:
    args = ("--repo", "acme/shop", "--branch", "main")
    now = {"SECURECASE_NOW": "2027-01-10T09:00:00Z"}
    first = run_cli(
        "ingest", TRIVY / "pip.json", *args, "--commit", "a" * 40, "--commit-time",
        "2999-01-01T00:00:00Z", "--output", "json", cwd=work, **now,
    )  # fmt: skip
    out = json.loads(first.stdout)
    assert any("--commit-time 2999-01-01T00:00:00Z is in the future" in w for w in out["warnings"])
    assert "is in the future" in first.stderr
    case = (work / "security-cases/cases/github/acme/shop/branch-main/case.yaml").read_text()
    assert "2999" not in case
    body = git(work / "security-cases", "log", "-1", "--format=%B")
    assert "Warning: --commit-time 2999-01-01T00:00:00Z is in the future" in body
    # The next commit, made an hour later, is applied: the case was not frozen in 2999.
    later = {"SECURECASE_NOW": "2027-01-10T10:00:00Z"}
    second = run_cli(
        "ingest", TRIVY / "scheme_2_no_vuln.json", *args, "--source", "trivy-image",
        "--commit", "b" * 40, "--commit-time", "2027-01-10T09:30:00Z", "--output", "json",
        cwd=work, **later,
    )  # fmt: skip
    out = json.loads(second.stdout)
    assert out["stale"] is False and out["warnings"] == [], second.stderr


def test_commit_time_within_the_skew_is_kept(work: Path) -> None:
    proc = run_cli(
        "ingest", TRIVY / "pip.json", "--repo", "acme/shop", "--branch", "main",
        "--commit", "a" * 40, "--commit-time", "2027-01-10T09:05:00Z", "--output", "json",
        cwd=work, SECURECASE_NOW="2027-01-10T09:00:00Z",
    )  # fmt: skip
    assert json.loads(proc.stdout)["warnings"] == []
    case = (work / "security-cases/cases/github/acme/shop/branch-main/case.yaml").read_text()
    assert "2027-01-10T09:05:00Z" in case


# -- 4. policy files and YAML -----------------------------------------------------------------


def commit_file(repo: Path, relpath: str, text: str) -> None:
    write(repo / relpath, text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=h", "-c", "user.email=h@example.com", "commit", "-qm", "edit")


def cases_repo_with_a_case(work: Path) -> Path:
    code, _, err = ingest_json(
        TRIVY / "pip.json", "--repo", "acme/shop", "--branch", "main", cwd=work
    )
    assert code in (0, 1), err
    return work / "security-cases"


def test_policy_yaml_that_is_a_folder_is_an_error_not_the_builtin_policy(work: Path) -> None:
    repo = cases_repo_with_a_case(work)
    commit_file(repo, "policy.yaml/README", "not a policy\n")
    before = commit_count(repo)
    proc = run_cli("ingest", TRIVY / "npm.json", "--repo", "acme/shop", "--branch", "dev", cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert "policy.yaml: is a folder in the cases repo" in proc.stderr
    assert commit_count(repo) == before


@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "missing"])
def test_policy_option_must_name_a_regular_file(work: Path, kind: str) -> None:
    path = work / "policy.yaml"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    proc = subprocess.run(
        [sys.executable, "-m", "securecase", "ingest", str(TRIVY / "pip.json"), "--repo",
         "acme/shop", "--branch", "main", "--policy", str(path)],
        cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    expected = {
        "folder": "not a regular file (it is a folder)",
        "fifo": "not a regular file (it is a named pipe)",
        "device": "not a regular file (it is a character device)",
        "missing": "cannot read the policy file (No such file or directory)",
    }[kind]
    assert expected in proc.stderr
    assert commit_count(work / "security-cases") == 0
    validate = run_cli("policy", "validate", path, cwd=work)
    assert validate.returncode == 2 and expected in validate.stderr


def test_alias_bomb_in_policy_yaml_is_refused_with_a_short_message(work: Path) -> None:
    assert len(ALIAS_BOMB) < 410
    repo = cases_repo_with_a_case(work)
    commit_file(repo, "policy.yaml", ALIAS_BOMB)
    before = commit_count(repo)
    proc = run_cli("ingest", TRIVY / "npm.json", "--repo", "acme/shop", "--branch", "dev", cwd=work)
    assert proc.returncode == 2, proc.stderr[:2000]
    assert len(proc.stderr) < 2000 and re.search(r"policy\.yaml:3:\d+: .*anchor", proc.stderr)
    assert commit_count(repo) == before
    listed = run_cli("cases", "list", "--output", "json", cwd=work)
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1


def test_alias_bomb_in_a_case_file_breaks_only_that_case(work: Path) -> None:
    repo = cases_repo_with_a_case(work)
    code, _, err = ingest_json(
        TRIVY / "npm.json", "--repo", "acme/web", "--branch", "main", cwd=work
    )
    assert code in (0, 1), err
    commit_file(repo, "cases/github/acme/shop/branch-main/case.yaml", ALIAS_BOMB)
    before = commit_count(repo)
    proc = run_cli(
        "ingest", TRIVY / "npm.json", "--repo", "acme/shop", "--branch", "main", cwd=work
    )
    assert proc.returncode == 2 and len(proc.stderr) < 2000, proc.stderr[:2000]
    assert re.search(r"case\.yaml:3:\d+: .*anchor", proc.stderr) and "Traceback" not in proc.stderr
    assert commit_count(repo) == before
    listed = run_cli("cases", "list", "--output", "json", cwd=work)
    assert [row["key"] for row in json.loads(listed.stdout)] == ["github::acme::web::BR::main"]
    assert (
        listed.returncode == 0 and "cases/github/acme/shop/branch-main/case.yaml" in listed.stderr
    )
    assert "warning" in listed.stderr
    assert len(listed.stderr) < 2000


def test_error_messages_are_capped(work: Path) -> None:
    proc = run_cli(
        "ingest", TRIVY / "pip.json", "--repo", "acme/shop", "--branch", "main",
        "--commit-time", "x" * 100_000, cwd=work,
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr) < 2500 and "more characters cut" in proc.stderr


# -- 5. Markdown cannot be broken out of ------------------------------------------------------


def test_markdown_output_escapes_scanner_and_human_text(work: Path) -> None:
    policy = write(work / "policy.yaml", BLOCK_MEDIUM)
    proc = run_cli(
        "ingest", hostile_trivy(work), "--repo", "acme/shop", "--branch", HOSTILE_BRANCH,
        "--policy", policy, "--output", "markdown", "--run-url", "javascript:alert(3)", cwd=work,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "onerror=alert(1)" in proc.stdout and "javascript:alert(2)" in proc.stdout  # as text
    assert_inert(proc.stdout)


def test_check_run_and_job_summaries_escape_scanner_and_human_text(
    work: Path, fake: FakeGitHub
) -> None:
    policy = write(work / "policy.yaml", BLOCK_MEDIUM)
    env = actions_env(work, fake, GITHUB_REF=f"refs/heads/{HOSTILE_BRANCH}")
    proc = run_cli("ingest", hostile_trivy(work), "--policy", policy, cwd=work, **env)
    assert proc.returncode == 1, proc.stderr
    [run] = fake.check_runs.values()
    assert "<img" in run["output"]["summary"] or "&lt;img" in run["output"]["summary"]
    assert_inert(run["output"]["summary"])
    assert_inert((work / "summary.md").read_text())


def test_markdown_renderer_escapes_every_hostile_string() -> None:
    from securecase.render.markdown import code, link, text

    hostile = [
        "a`b", "``x``", "`", "<img src=x onerror=alert(1)>", "[x](javascript:alert(1))",
        "![i](https://evil/x.png)", "a|b", "line\n# heading\n<script>", "&lt;b&gt;", "- item",
        "1. item", "$x$", "**bold**", "<https://evil>",
    ]  # fmt: skip
    for value in hostile:
        for rendered in (text(value), code(value), f"|{code(value, cell=True)}|x|\n|-|-|"):
            html = cmarkgfm.github_flavored_markdown_to_html(
                "- " + rendered, options=Options.CMARK_OPT_UNSAFE
            )
            parsed = _Html()
            parsed.feed(html)
            assert set(parsed.tags) <= {"ul", "li", "code", "p", "table", "thead", "tr", "th"}, (
                value,
                html,
            )
            assert not parsed.hrefs, (value, html)
    assert link("run", "javascript:alert(1)") == "`run` (`javascript:alert(1)`)"
    assert link("run", "https://github.com/acme/shop/actions/runs/1") == (
        "[run](https://github.com/acme/shop/actions/runs/1)"
    )


# -- 6. small ones --------------------------------------------------------------------------


def test_invalid_utf8_branch_from_a_bytes_argv_is_exit_2(work: Path) -> None:
    report = str(TRIVY / "pip.json").encode()
    argv = [sys.executable.encode(), b"-m", b"securecase", b"ingest", report]
    argv += [b"--repo", b"acme/shop", b"--branch", b"feat\xff\xfe"]
    proc = subprocess.run(argv, cwd=work, env=clean_env(), capture_output=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert b"the branch name is not UTF-8" in proc.stderr and b"Traceback" not in proc.stderr
    assert commit_count(work / "security-cases") == 0


def test_the_case_writer_refuses_nan(work: Path) -> None:
    from dataclasses import replace

    from securecase.errors import CaseFileError
    from securecase.storage.casefile import dump_case, load_case

    repo = cases_repo_with_a_case(work)
    folder = repo / "cases/github/acme/shop/branch-main"
    case = load_case(
        (folder / "case.yaml").read_bytes(),
        (folder / "findings.json").read_bytes(),
        folder="cases/github/acme/shop/branch-main",
    )
    first = case.findings[0]
    broken = replace(first, finding=replace(first.finding, cvss=float("nan")))
    with pytest.raises(CaseFileError, match="CVSS score nan is not a finite number"):
        dump_case(replace(case, findings=(broken, *case.findings[1:])))


def test_ingest_json_lists_the_blocking_findings(work: Path) -> None:
    policy = write(work / "policy.yaml", BLOCK_MEDIUM)
    code, out, err = ingest_json(
        TRIVY / "alpine-310.json", "--repo", "acme/shop", "--branch", "main", "--policy", policy,
        cwd=work,
    )  # fmt: skip
    assert code == 1, err
    assert len(out["blocking"]) == 4
    first = out["blocking"][0]
    assert set(first) == {"id", "advisory", "severity", "package", "rules", "new"}
    assert first["rules"] == ["no-medium"] and first["severity"] == "MEDIUM"
    assert first["package"]["name"] and first["advisory"].startswith("CVE-")
