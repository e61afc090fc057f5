"""End-to-end: the real CLI inside a simulated GitHub Actions job, reporting to the fake GitHub."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FIXTURES, TRIVY, clean_env, commit_count, git, read_github_output, run_cli
from fake_github import TOKEN, FakeGitHub, serve

EVENTS = FIXTURES / "github-events"
PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
MERGE_SHA = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"
BLOCK_HIGH = "version: 1\nrules:\n  - id: no-high\n    block: {severity_at_least: HIGH}\n"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


def actions_env(
    work: Path, fake: FakeGitHub, event: str, payload: Path, **extra: str
) -> dict[str, str]:
    values = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(payload),
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_SHA": MERGE_SHA,
        "GITHUB_REF": "refs/pull/2/merge",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": fake.base_url,
        "GITHUB_RUN_ID": "77",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
        "GITHUB_OUTPUT": str(work / "output.txt"),
    }
    values.update(extra)
    return values


def policy(work: Path) -> Path:
    path = work / "policy.yaml"
    path.write_text(BLOCK_HIGH)
    return path


def test_pull_request_job_needs_no_subject_flags(work: Path, fake: FakeGitHub) -> None:
    proc = run_cli(
        "ingest",
        TRIVY / "misconfigurations_and_secrets.json",
        "--policy",
        policy(work),
        "--cases-web-url",
        "https://github.com/acme/security-cases",
        "--output",
        "json",
        cwd=work,
        **actions_env(work, fake, "pull_request", EVENTS / "pull_request.synchronize.json"),
    )
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["case_key"] == "github::acme::shop::PR::2"
    cases = work / "security-cases"
    head = git(cases, "rev-parse", "HEAD").strip()
    assert out["cases_commit"] == head
    assert "Securecase-Commit: " + PR_HEAD in git(cases, "log", "-1", "--format=%B")
    [run] = fake.check_runs.values()
    assert run["head_sha"] == PR_HEAD  # the PR head, not the merge commit
    assert run["conclusion"] == "failure" and run["external_id"] == "github::acme::shop::PR::2"
    case_url = (
        f"https://github.com/acme/security-cases/blob/{head}/cases/github/acme/shop/pr-2/case.yaml"
    )
    assert run["details_url"] == case_url
    assert case_url in run["output"]["summary"]
    assert run["output"]["annotations_count"] == 2  # the two findings with file and line
    summary = (work / "summary.md").read_text()
    assert summary.strip() == run["output"]["summary"].strip()
    values = read_github_output(work / "output.txt")
    assert values["decision"] == "block" and values["gate"] == "true"
    assert values["case_path"] == "cases/github/acme/shop/pr-2/case.yaml"
    assert values["cases_commit"] == head and values["case_url"] == case_url
    assert json.loads(values["counts"]) == out["counts"]
    assert values["critical"] == str(out["counts"]["critical"])
    assert values["published_to"] == "check_run"
    assert TOKEN not in proc.stdout + proc.stderr


def test_bad_token_is_a_warning_and_the_case_stays_committed(work: Path, fake: FakeGitHub) -> None:
    wrong = "ghp_revokedtoken_SECRET_000111"
    proc = run_cli(
        "ingest",
        TRIVY / "pip.json",
        "--policy",
        policy(work),
        cwd=work,
        **actions_env(
            work, fake, "pull_request", EVENTS / "pull_request.synchronize.json", GITHUB_TOKEN=wrong
        ),
    )
    assert proc.returncode == 1, proc.stderr  # the gate blocks; reporting does not change it
    assert "::warning title=securecase::" in proc.stderr
    assert "rejected the token" in proc.stderr and "401" in proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    assert commit_count(work / "security-cases") == 1
    assert fake.check_runs == {} and fake.statuses == []
    assert "securecase" in (work / "summary.md").read_text()
    assert read_github_output(work / "output.txt")["published_to"] == "job_summary"


def test_passing_push_job_reports_success(work: Path, fake: FakeGitHub) -> None:
    proc = run_cli(
        "ingest",
        TRIVY / "pip.json",
        cwd=work,
        **actions_env(
            work, fake, "push", EVENTS / "push.with-new-branch.json", GITHUB_REF="refs/heads/master"
        ),
    )
    assert proc.returncode == 0, proc.stderr
    [run] = fake.check_runs.values()
    assert run["conclusion"] == "success"
    assert run["head_sha"] == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert run["external_id"] == "github::acme::shop::BR::master"
    assert run["details_url"] == "https://github.com/acme/shop/actions/runs/77"  # local cases repo


def test_forbidden_check_run_falls_back_to_a_status(work: Path, fake: FakeGitHub) -> None:
    fake.fail("POST", r"/check-runs$", 403, "Resource not accessible by integration")
    proc = run_cli(
        "ingest",
        TRIVY / "pip.json",
        "--policy",
        policy(work),
        "--mode",
        "ci",
        cwd=work,
        **actions_env(work, fake, "pull_request", EVENTS / "pull_request.synchronize.json"),
    )
    assert proc.returncode == 0, proc.stderr  # ci mode
    [status] = fake.statuses
    assert status["state"] == "success" and status["sha"] == PR_HEAD
    assert "commit status instead" in proc.stderr


def test_outside_actions_repo_is_required(work: Path) -> None:
    proc = run_cli("ingest", TRIVY / "pip.json", "--pr", "1", cwd=work)
    assert proc.returncode == 2
    assert "--repo ORG/NAME is required outside GitHub Actions" in proc.stderr
    assert commit_count(work / "security-cases") == 0


def test_report_github_without_credentials_fails_before_committing(work: Path) -> None:
    proc = run_cli(
        "ingest", TRIVY / "pip.json", "--repo", "acme/shop", "--branch", "main",
        "--report", "github", cwd=work,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--report github needs GitHub credentials" in proc.stderr
    assert commit_count(work / "security-cases") == 0


def test_report_none_posts_nothing(work: Path, fake: FakeGitHub) -> None:
    proc = run_cli(
        "ingest",
        TRIVY / "pip.json",
        "--report",
        "none",
        cwd=work,
        **actions_env(work, fake, "pull_request", EVENTS / "pull_request.synchronize.json"),
    )
    assert proc.returncode == 0, proc.stderr
    assert fake.requests == []
    assert read_github_output(work / "output.txt")["published_to"] == "none"


def test_version_imports_the_cli_only() -> None:
    # `securecase --version` is the start-up benchmark's measure (issue 11: at most 1.5x
    # `import click`); PyGithub, the storage, YAML and retry libraries belong to the commands
    # that use them.
    code = (
        "import sys\nfrom securecase import cli\ntry:\n    cli.main(['--version'])\n"
        "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] "
        "in ('github', 'requests', 'yaml', 'tenacity', 'jsonschema_rs', 'orjson') "
        "or m.startswith(('securecase.storage', 'securecase.services', 'securecase.domain'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), check=True
    )
    assert proc.stdout.strip().endswith("[]"), proc.stdout


def test_fork_pull_request_goes_to_the_job_summary_only(work: Path, fake: FakeGitHub) -> None:
    payload = json.loads((EVENTS / "pull_request.synchronize.json").read_text())
    payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    event = work / "event.json"
    event.write_text(json.dumps(payload))
    proc = run_cli(
        "ingest",
        TRIVY / "pip.json",
        cwd=work,
        **actions_env(work, fake, "pull_request", event),
    )
    assert proc.returncode == 0, proc.stderr
    assert fake.requests == []
    assert "pull request from a fork" in proc.stderr
    assert "securecase" in (work / "summary.md").read_text()


def test_help_never_shows_the_token(work: Path) -> None:
    proc = run_cli("ingest", "--help", cwd=work, GITHUB_TOKEN=TOKEN)
    assert proc.returncode == 0
    assert "--github-token" in proc.stdout and "--report [github|none]" in proc.stdout
    assert TOKEN not in proc.stdout + proc.stderr


def test_the_actions_ingest_script(work: Path, fake: FakeGitHub) -> None:
    """Run action.yml's ingest step with bash, as the runner would, against the fake GitHub."""
    remote = work / "cases.git"
    git(work, "init", "--quiet", "--bare", str(remote))
    env = actions_env(work, fake, "pull_request", EVENTS / "pull_request.synchronize.json")
    proc = run_action_ingest_step(
        work,
        env,
        reports=f"\n  {TRIVY / 'pip.json'}  \n\n{TRIVY / 'npm.json'}\n",
        sources="python-deps\n node-deps \n",
        report="github",
        **{"cases-repo": str(remote), "policy": str(policy(work))},
    )
    assert proc.returncode == 1, proc.stderr  # pip.json has a HIGH finding: blocked
    values = read_github_output(work / "output.txt")
    assert values["decision"] == "block" and values["published_to"] == "check_run"
    [branch_head] = git(remote, "for-each-ref", "--format=%(objectname)", "refs/heads").split()
    assert values["cases_commit"] == branch_head
    stored = git(remote, "ls-tree", "-r", "--name-only", branch_head).split()
    assert "cases/github/acme/shop/pr-2/raw/python-deps.json" in stored
    assert "cases/github/acme/shop/pr-2/raw/node-deps.json" in stored
    [run] = fake.check_runs.values()
    assert run["head_sha"] == PR_HEAD and run["conclusion"] == "failure"


EXCEPTION_POLICY = (
    BLOCK_HIGH.replace(
        "block: {severity_at_least: HIGH}\n", "block: {severity_at_least: HIGH, new_only: true}\n"
    )
    + """exceptions:
  - id: EXC-9
    match: {rule: DS002, path: Dockerfile}
    reason: the image runs as root on purpose, in a sandbox
    approved_by: "@acme/security"
    expires: 2026-12-01
"""
)


def test_summary_splits_new_existing_and_excepted(work: Path, fake: FakeGitHub) -> None:
    path = work / "policy.yaml"
    path.write_text(EXCEPTION_POLICY)
    # the target branch's case (master in the event payload) already has every finding
    main = ("--repo", "acme/shop", "--branch", "master", "--policy", path)
    base = run_cli(
        "ingest",
        TRIVY / "misconfigurations_and_secrets.json",
        *main,
        "--source",
        "trivy-image",
        cwd=work,
    )
    assert base.returncode in (0, 1), base.stderr
    proc = run_cli(
        "ingest",
        TRIVY / "misconfigurations_and_secrets.json",
        "--policy",
        path,
        "--source",
        "trivy-image",
        cwd=work,
        SECURECASE_NOW="2026-11-23T12:00:00Z",
        **actions_env(work, fake, "pull_request", EVENTS / "pull_request.synchronize.json"),
    )
    [run] = fake.check_runs.values()
    summary = run["output"]["summary"]
    # everything is on the target branch already: nothing new, so new_only passes
    assert proc.returncode == 0, proc.stderr
    assert "| new | 0 | 0 | 0 | 0 | 0 | 0 | 0 |" in summary
    assert "| excepted | 0 | 1 | 0 | 0 | 0 | 0 | 1 |" in summary  # DS002, HIGH
    assert "| existing | 2 | 1 | 1 | 0 | 0 | 0 | 4 |" in summary
    assert "exception EXC-9 expires on 2026-12-01" in summary  # within 14 days


def runner_commands(log: str) -> list[str]:
    """The workflow commands the Actions runner would run from ``log`` (stop-commands kept)."""
    run: list[str] = []
    stopped: str | None = None
    for line in log.splitlines():
        text = line.lstrip()  # the runner ignores leading whitespace before "::"
        if stopped is not None:
            if text == f"::{stopped}::":
                stopped = None
            continue
        if text.startswith("::stop-commands::"):
            stopped = text[len("::stop-commands::") :]
        elif text.startswith("::"):
            run.append(text)
    return run


@pytest.mark.parametrize("output", ["text", "markdown"])
def test_scanned_file_names_cannot_inject_workflow_commands(work: Path, output: str) -> None:
    # A file name in the scanned pull request may contain newlines; the scanner reports it and
    # the ingest prints it. In the log it must not become a workflow command.
    sarif = json.loads((FIXTURES / "sarif" / "semgrep.sarif").read_text())
    for result in sarif["runs"][0]["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        location["uri"] = "src/a\n::set-output name=decision::pass\n::add-mask::HIGH\n.tsx"
    report = work / "semgrep.sarif"
    report.write_text(json.dumps(sarif))
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(EVENTS / "pull_request.synchronize.json"),
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_SHA": MERGE_SHA,
    }
    block_medium = work / "medium.yaml"
    block_medium.write_text(BLOCK_HIGH.replace("HIGH", "MEDIUM"))
    proc = run_cli("ingest", report, "--policy", block_medium, "--output", output, cwd=work, **env)
    assert proc.returncode == 1, proc.stderr
    assert "::set-output name=decision::pass" in proc.stdout  # printed, but inert
    assert runner_commands(proc.stdout) == []


@pytest.mark.parametrize(
    "command",
    [
        ("cases", "show", "github::acme::shop::PR::2"),
        ("cases", "show", "github::acme::shop::PR::2", "--output", "yaml"),
        ("cases", "list"),
        ("cases", "list", "--output", "csv"),
        ("cases", "history", "github::acme::shop::PR::2"),
    ],
)
def test_reading_commands_cannot_inject_workflow_commands(
    work: Path, command: tuple[str, ...]
) -> None:
    sarif = json.loads((FIXTURES / "sarif" / "semgrep.sarif").read_text())
    for result in sarif["runs"][0]["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        location["uri"] = "src/a\n::add-mask::HIGH\n.tsx"
    report = work / "semgrep.sarif"
    report.write_text(json.dumps(sarif))
    subject = ("--repo", "acme/shop", "--pr", "2", "--target-branch", "main")
    assert run_cli("ingest", report, *subject, cwd=work).returncode in (0, 1)
    cases = work / "security-cases"
    case_file = cases / "cases/github/acme/shop/pr-2/case.yaml"
    # a person's triage note may hold anything too
    case_file.write_text(
        case_file.read_text().replace("notes: null", 'notes: "x\\n::add-mask::notes"', 1)
    )
    git(cases, "-c", "user.name=A", "-c", "user.email=a@x", "commit", "-qam", "triage")
    proc = run_cli(*command, cwd=work, GITHUB_ACTIONS="true")
    assert proc.returncode == 0, proc.stderr
    assert "::add-mask::" in proc.stdout or command[1] != "show"  # printed, but inert
    assert proc.stdout.startswith("::stop-commands::")
    assert runner_commands(proc.stdout) == []


def run_action_ingest_step(
    work: Path, env: dict[str, str], **inputs: str
) -> subprocess.CompletedProcess[str]:
    """action.yml's ingest step as the runner runs it: its ``env`` mapping evaluated with the
    given inputs (the action's defaults for the others), then its script under bash, with the
    private environment's python standing in for the installed one."""
    import re

    import yaml

    root = Path(__file__).resolve().parents[1]
    action = yaml.safe_load((root / "action.yml").read_text())
    [step] = [s for s in action["runs"]["steps"] if s.get("id") == "ingest"]
    runner_temp = work / "runner-temp"
    bin_dir = runner_temp / "securecase-venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    context = {"github.action_path": str(root)}
    for name, spec in action["inputs"].items():
        default = str(spec.get("default", ""))
        if "github.token" in default:  # the job's token, as the runner fills it in
            default = env.get("GITHUB_TOKEN", "")
        context[f"inputs.{name}"] = inputs.get(name, default)
    # What the queue step writes on a runner that is not GitHub-hosted: the queue-dir input.
    context["steps.queue.outputs.dir"] = context["inputs.queue-dir"]
    context["steps.queue.outputs.artifact"] = "false"
    for name, template in step["env"].items():
        env[name] = re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: context[m.group(1)], template)
    env["RUNNER_TEMP"] = str(runner_temp)
    return subprocess.run(
        ["bash", "-c", step["run"]],
        cwd=work,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_action_by_default_leaves_fork_pull_requests_to_the_job_summary(
    work: Path, fake: FakeGitHub
) -> None:
    payload = json.loads((EVENTS / "pull_request.synchronize.json").read_text())
    payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    event = work / "event.json"
    event.write_text(json.dumps(payload))
    env = actions_env(work, fake, "pull_request", event)
    proc = run_action_ingest_step(
        work,
        env,
        reports=str(TRIVY / "pip.json"),
        **{"cases-repo": str(work / "cases"), "policy": str(policy(work))},
    )
    assert proc.returncode == 1, proc.stderr  # the gate still decides the exit code
    assert fake.requests == []  # a read-only token: nothing is tried
    assert "pull request from a fork" in proc.stderr
    assert (
        read_github_output(work / "output.txt")["published_to"] == "none"
    )  # not posted: summary only
    # Asked for explicitly, it is tried (and here, with a token that may, it works).
    proc = run_action_ingest_step(
        work,
        env,
        reports=str(TRIVY / "pip.json"),
        report="github",
        **{"cases-repo": str(work / "cases"), "policy": str(policy(work))},
    )
    assert proc.returncode == 1, proc.stderr
    assert len(fake.check_runs) == 1
    bad = run_action_ingest_step(work, env, reports=str(TRIVY / "pip.json"), report="yes")
    assert bad.returncode == 2 and "auto, github or none" in bad.stdout


def test_the_action_masks_the_cases_token_and_never_prints_it(work: Path, fake: FakeGitHub) -> None:
    secret = "ghs_casesrepotoken_SECRET_0123456789"
    with socket.socket() as sock:  # a port nothing listens on: the clone fails
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = actions_env(work, fake, "pull_request", EVENTS / "pull_request.synchronize.json")
    proc = run_action_ingest_step(
        work,
        env,
        reports=str(TRIVY / "pip.json"),
        **{"cases-repo": f"https://127.0.0.1:{port}/acme/cases.git", "cases-token": secret},
    )
    assert proc.returncode == 3, proc.stderr  # the cases repo cannot be reached
    # The token stays in the environment: no output line, error or URL carries it.
    assert secret not in proc.stdout + proc.stderr
    assert "securecase: error:" in proc.stderr
    assert f"https://127.0.0.1:{port}/acme/cases.git" in proc.stderr  # still says where


def test_markdown_redirected_to_a_file_is_not_wrapped(work: Path) -> None:
    # `ingest --output markdown >> file` writes plain Markdown: the runner never reads a file.
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(EVENTS / "pull_request.synchronize.json"),
        "GITHUB_REPOSITORY": "acme/shop",
    }
    target = work / "out.md"
    with target.open("w") as handle:
        proc = subprocess.run(
            [sys.executable, "-m", "securecase", "ingest", str(TRIVY / "pip.json")]
            + ["--policy", str(policy(work)), "--output", "markdown"],
            cwd=work,
            env=clean_env(**env),
            stdout=handle,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 1, proc.stderr
    text = target.read_text()
    assert text.startswith("### securecase:") and "::stop-commands::" not in text
