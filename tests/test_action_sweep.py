"""The composite action's two commands, run step by step as a runner would.

``action.yml`` is read as it ships: each step's ``if`` and ``env`` expressions are evaluated
from the inputs given here (the action's defaults otherwise), the step's script runs for real
with ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY`` files, and the action's outputs are
evaluated from the steps' outputs. The cases repo is a real bare git repository, GitHub the
local stand-in, the webhook a receiver on localhost. The install step alone is replaced: its
virtual environment is a stand-in that runs this interpreter (test_action.py runs the real
install) and records its command line, so the tests can show no secret was ever on it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, clean_env, git, read_github_output
from fake_github import TOKEN, FakeGitHub, fake_sha, serve
from test_sweep import HIGH_REPORT, POLICY, SECRET_PATH, Receiver, bare_remote, case_file, ingest

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PR = "cases/github/acme/shop/pr-{}"


@dataclass
class Run:
    """One run of the action: the step that ended it, its exit code and logs, and the files."""

    failed_step: str | None
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    argv: str
    steps_run: list[str] = field(default_factory=list)


#: Plays ``actions/upload-artifact``: called with the step's evaluated ``with`` inputs.
Upload = Callable[[dict[str, str]], None]


class Runner:
    """Runs action.yml's steps in order, like the Actions runner does for a composite action.

    After a step fails, only the steps whose ``if`` holds a status function (``!cancelled()``)
    still run, and the run ends with the first failure, as on a runner. ``uses`` steps are
    skipped, except ``actions/upload-artifact`` when an ``upload`` stand-in is given.
    """

    def __init__(
        self,
        temp: Path,
        *,
        github_token: str = "",
        env: dict[str, str] | None = None,
        upload: Upload | None = None,
    ):
        self.temp = temp
        self.github_token = github_token
        self.env = env or {}
        self.upload = upload
        venv_bin = temp / "securecase-venv" / "bin"
        venv_bin.mkdir(parents=True, exist_ok=True)
        self.argv_log = temp / "argv.log"
        stand_in = venv_bin / "python"
        stand_in.write_text(
            f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{self.argv_log}"\nexec "{sys.executable}" "$@"\n'
        )
        stand_in.chmod(0o755)

    def evaluate(self, text: str, inputs: dict[str, str], steps: dict[str, dict[str, str]]) -> str:
        """``text`` with each ``${{ }}`` expression replaced by its value; an expression this
        runner does not know fails the test (the action must not grow unevaluated ones)."""
        return _EXPRESSION.sub(lambda m: self.value(m.group(1), inputs, steps), text)

    def value(
        self, expression: str, inputs: dict[str, str], steps: dict[str, dict[str, str]]
    ) -> str:
        wrapped = _EXPRESSION.fullmatch(expression.strip())
        if wrapped:
            expression = wrapped.group(1)
        if "&&" in expression:
            parts = [self.value(p.strip(), inputs, steps) for p in expression.split("&&")]
            return "true" if all(parts) else ""
        if expression == "!cancelled()":
            return "true"  # nobody cancels these runs
        if "!=" in expression:
            left, right = (p.strip() for p in expression.split("!=", 1))
            literal = re.fullmatch(r"'([^']*)'", right)
            assert literal, f"unsupported comparison {expression!r}"
            return "true" if self.value(left, inputs, steps) != literal.group(1) else ""
        if "||" in expression:
            for part in expression.split("||"):
                found = self.value(part.strip(), inputs, steps)
                if found:
                    return found
            return ""
        if "==" in expression:
            left, right = (p.strip() for p in expression.split("==", 1))
            literal = re.fullmatch(r"'([^']*)'", right)
            assert literal, f"unsupported comparison {expression!r}"
            return "true" if self.value(left, inputs, steps) == literal.group(1) else ""
        if expression.startswith("inputs."):
            return inputs[expression.removeprefix("inputs.")]
        if expression == "github.action_path":
            return str(ROOT)
        if expression == "github.token":
            return self.github_token
        step = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
        assert step, f"the test runner does not know the expression {expression!r}"
        return steps.get(step.group(1), {}).get(step.group(2), "")

    def run(self, **given: str) -> Run:
        """Run the action with ``given`` inputs (underscores for dashes)."""
        inputs = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        for name, value in given.items():
            assert name.replace("_", "-") in inputs, f"action.yml has no input {name}"
            inputs[name.replace("_", "-")] = value
        inputs = {k: self.evaluate(v, inputs, {}) for k, v in inputs.items()}
        summary = self.temp / "summary.md"
        steps: dict[str, dict[str, str]] = {}
        logs: list[tuple[str, str]] = []
        ran: list[str] = []
        failed: tuple[str, int] | None = None
        for index, step in enumerate(ACTION["runs"]["steps"]):
            condition = str(step.get("if", ""))
            if failed is not None and "cancelled()" not in condition:
                continue
            if condition and not self.value(condition, inputs, steps):
                continue
            if "uses" in step:
                # The wheel cache is left out; an upload goes to the stand-in when there is one.
                if step["uses"].startswith("actions/upload-artifact@") and self.upload:
                    with_ = step["with"].items()
                    self.upload({k: self.evaluate(str(v), inputs, steps) for k, v in with_})
                    ran.append(step["name"])
                continue
            if "install.sh" in step["run"]:
                continue  # the install is replaced (see the module docstring)
            output = self.temp / f"output-{index}"
            output.write_text("")
            env = clean_env(
                RUNNER_TEMP=str(self.temp),
                RUNNER_OS="Linux",
                RUNNER_ARCH="X64",
                GITHUB_ACTIONS="true",
                GITHUB_OUTPUT=str(output),
                GITHUB_STEP_SUMMARY=str(summary),
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                **self.env,
            )
            env.update({k: self.evaluate(str(v), inputs, steps) for k, v in step["env"].items()})
            proc = subprocess.run(
                ["bash", "-e", "-c", step["run"]],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                cwd=self.temp,
            )
            ran.append(step["name"])
            logs.append((proc.stdout, proc.stderr))
            if "id" in step:
                steps[step["id"]] = read_github_output(output)
            if proc.returncode != 0 and failed is None:
                failed = (step["name"], proc.returncode)
        if failed is not None:
            return self._result(failed[0], failed[1], logs, {}, summary, ran)
        outputs = {
            name: self.evaluate(spec["value"], inputs, steps)
            for name, spec in ACTION["outputs"].items()
        }
        return self._result(None, 0, logs, outputs, summary, ran)

    def _result(
        self,
        failed: str | None,
        code: int,
        logs: list[tuple[str, str]],
        outputs: dict[str, str],
        summary: Path,
        ran: list[str],
    ) -> Run:
        return Run(
            failed,
            code,
            "".join(out for out, _ in logs),
            "".join(err for _, err in logs),
            outputs,
            summary.read_text() if summary.exists() else "",
            self.argv_log.read_text() if self.argv_log.exists() else "",
            ran,
        )


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def sweep_runner(work: Path, fake: FakeGitHub, now: str) -> Runner:
    temp = work / f"runner-{now[:10]}-{len(list(work.iterdir()))}"
    temp.mkdir()
    return Runner(
        temp,
        github_token=TOKEN,
        env={"GITHUB_API_URL": fake.base_url, "SECURECASE_NOW": now},
    )


def test_sweep_mode_closes_rejudges_notifies_and_writes_outputs_and_summary(
    work: Path, fake: FakeGitHub, receiver: Receiver
) -> None:
    remote = bare_remote(work, POLICY)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    head = fake_sha("acme", "shop", "head", 2)
    first = ingest(work, remote, "--pr", "2", "--target-branch", "main", "--commit", head)
    assert first["decision"] == "pass"  # EXC-1 applies until 2027-01-20
    fake.add_pull("acme", "shop", 1, merged=True, closed_at="2027-01-24T08:00:00Z")
    fake.add_pull("acme", "shop", 2, head_sha=head)

    run = sweep_runner(work, fake, "2027-01-25T00:00:00Z").run(
        command="sweep", cases_repo=str(remote), notify=f"\n  {receiver.url}\n"
    )

    assert run.failed_step is None, run.stdout + run.stderr
    assert run.steps_run == ["Check the inputs", "Find the runner's Python", "Sweep the cases"]
    out = run.outputs
    assert out["command"] == "sweep"
    assert (out["closed"], out["decision_changes"], out["blocked"]) == ("1", "1", "1")
    assert (out["changed"], out["commits"]) == ("2", "2")
    assert out["cases_commit"] == git(remote, "rev-parse", "main").strip()
    assert out["api_calls"] == str(len(fake.requests)) and fake.count("pulls/list") == 1
    assert out["notified"] == str(len(receiver.bodies[0]["events"])) and len(receiver.bodies) == 1
    assert out["decision"] == "" and out["case_key"] == ""  # ingest outputs stay empty
    assert case_file(remote, PR.format(1))["closed"]["reason"] == "merged"
    assert case_file(remote, PR.format(2))["gate"]["decision"] == "block"
    [check] = fake.check_runs.values()
    assert check["head_sha"] == head and check["conclusion"] == "failure"
    assert run.summary.startswith("## securecase sweep\n")
    assert "| Closed | 1 |" in run.summary and "| Commits | 2 |" in run.summary
    assert "- `github::acme::shop::PR::1`: merged" in run.summary
    assert "- `github::acme::shop::PR::2`: pass → **block**" in run.summary
    assert "exception EXC-1 expired on 2027-01-20)" in run.summary
    # The webhook URL reached securecase through the environment only.
    secret = SECRET_PATH.rsplit("/", 1)[1]
    assert run.argv.startswith("-m securecase sweep") and secret not in run.argv
    for text in (run.stdout, run.stderr, run.summary, *run.outputs.values()):
        assert secret not in text and TOKEN not in text
    objects = subprocess.run(
        ["git", "-C", str(remote), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
        env=clean_env(),
    ).stdout
    assert secret.encode() not in objects

    again = sweep_runner(work, fake, "2027-01-25T09:00:00Z").run(
        command="sweep", cases_repo=str(remote), notify=receiver.url, output="json"
    )
    assert again.failed_step is None, again.stderr
    assert (again.outputs["commits"], again.outputs["changed"], again.outputs["notified"]) == (
        "0",
        "0",
        "0",
    )
    assert again.outputs["cases_commit"] == "" and len(receiver.bodies) == 1
    assert '"commits": 0' in again.stdout and "| Closed | 0 |" in again.summary


def test_sweep_mode_dry_run_writes_nothing_and_says_so(work: Path, fake: FakeGitHub) -> None:
    remote = bare_remote(work, POLICY)
    ingest(work, remote, "--pr", "1", "--target-branch", "main")
    fake.add_pull("acme", "shop", 1, merged=True)
    before = git(remote, "rev-parse", "main")

    run = sweep_runner(work, fake, "2027-01-12T00:00:00Z").run(
        command="sweep", cases_repo=str(remote), dry_run="true", repos="acme/*"
    )

    assert run.failed_step is None, run.stderr
    expected = "-m securecase sweep --output text --dry-run --repo acme/* --push-timeout 120"
    assert run.argv == expected + "\n"
    assert run.outputs["dry_run"] == "true" and run.outputs["changed"] == "1"
    assert run.outputs["commits"] == "0" and run.outputs["closed"] == "1"
    assert git(remote, "rev-parse", "main") == before
    assert run.summary.startswith("## securecase sweep (dry run: nothing written or sent)")
    assert "| Cases would change | 1 |" in run.summary


@pytest.mark.parametrize(
    ("command", "given", "named"),
    [
        ("sweep", {"reports": "trivy.json", "mode": "pr_gate"}, "reports mode"),
        ("sweep", {"github_app_private_key": "PEM\nsecret-pem"}, "github-app-private-key"),
        ("ingest", {"reports": "trivy.json", "notify": "https://hooks.example/s3cr3t"}, "notify"),
        ("ingest", {"reports": "trivy.json", "dry_run": "true", "repos": "a/*"}, "repos dry-run"),
    ],
)
def test_inputs_of_the_other_command_are_refused_before_anything_runs(
    work: Path, command: str, given: dict[str, str], named: str
) -> None:
    run = Runner(work).run(command=command, cases_repo=str(work / "cases"), **given)

    assert (run.failed_step, run.returncode) == ("Check the inputs", 2)
    assert run.steps_run == ["Check the inputs"]  # nothing installed, nothing run
    other = "ingest" if command == "sweep" else "sweep"
    assert (
        f"::error title=securecase::command: {command} does not take the input(s) {named}, "
        f"which belong to command: {other}"
    ) in run.stdout
    # the names of the inputs are printed, never their values (a webhook URL, a private key)
    assert "s3cr3t" not in run.stdout + run.stderr and "secret-pem" not in run.stdout + run.stderr
    assert run.argv == "" and not (work / "cases").exists()


def test_an_unknown_command_and_a_sweep_output_of_markdown_are_refused(work: Path) -> None:
    (work / "a").mkdir()
    unknown = Runner(work / "a").run(command="scan")
    assert (unknown.failed_step, unknown.returncode) == ("Check the inputs", 2)
    assert "the command input is ingest or sweep" in unknown.stdout

    remote = bare_remote(work, POLICY)
    (work / "b").mkdir()
    markdown = Runner(work / "b").run(command="sweep", cases_repo=str(remote), output="markdown")
    assert (markdown.failed_step, markdown.returncode) == ("Sweep the cases", 2)
    assert "the output input of command: sweep is text or json" in markdown.stdout
    assert markdown.argv == ""


def test_ingest_stays_the_default_command_with_its_defaults(work: Path) -> None:
    remote = bare_remote(work, POLICY)
    head = fake_sha("acme", "shop", "main", 1)
    event = {
        "SECURECASE_NOW": "2027-01-10T00:00:00Z",
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_EVENT_PATH": str(FIXTURES / "github-events" / "workflow_dispatch.json"),
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_SHA": head,
        "GITHUB_REF": "refs/heads/main",
    }
    (work / "runner").mkdir()
    run = Runner(work / "runner", env=event).run(
        reports=str(HIGH_REPORT),
        cases_repo=str(remote),
        report="none",
        output="json",
    )

    assert run.failed_step is None, run.stdout + run.stderr
    assert run.steps_run == [
        "Check the inputs",
        "Choose where a busy cases repo's record waits",
        "Find the runner's Python",
        "Ingest the reports",
    ]
    assert run.outputs["command"] == "ingest"
    assert run.outputs["case_key"] == "github::acme::shop::BR::main"
    assert run.outputs["decision"] == "pass"  # the HIGH finding is excepted by EXC-1
    assert run.outputs["counts"] and run.outputs["appeared"] == "1"
    assert run.outputs["cases_commit"] == git(remote, "rev-parse", "main").strip()
    assert run.outputs["closed"] == "" and run.outputs["commits"] == ""  # sweep outputs empty
    # The emptied defaults of report, comment, on-incomplete and from-workflow-run add no flag.
    [argv] = run.argv.splitlines()
    assert argv.startswith("-m securecase ingest --output json --report none --push-timeout 120")
    for flag in ("--comment", "--on-incomplete", "--from-workflow-run", "--policy", "--mode"):
        assert flag not in argv
