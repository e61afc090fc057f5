"""The GitHub Action installs from its lock file only, with the runner's Python, and keeps
tokens off command lines.

The install test runs the action's own install script as a runner would: a fresh virtual
environment, `pip install --require-hashes` from the package index, then securecase from the
checkout.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
SCRIPTS = ROOT / ".github" / "action"
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")


def locked() -> dict[str, tuple[str, int]]:
    """Canonical name -> (pinned version, number of hashes) from requirements.lock."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = str(canonicalize_name(match.group(1)))
            pins[current] = (match.group(2), 0)
        elif "--hash=sha256:" in line and current is not None:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    assert pins, "requirements.lock pins nothing"
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency but not in requirements.lock (tools/lock.sh)"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside {requirement.specifier}: "
            "refresh it with tools/lock.sh"
        )
    assert all(hashes >= 1 for _, hashes in pins.values())
    assert "--index-url" not in LOCK.read_text() and "file://" not in LOCK.read_text()


def test_the_action_uses_the_runners_python_and_passes_tokens_by_environment_only() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    steps = action["runs"]["steps"]
    assert not any("setup-python" in str(step.get("uses", "")) for step in steps)
    ingest = next(step for step in steps if step.get("id") == "ingest")
    for token_input in ("cases-token", "github-token", "github-app-private-key"):
        assert f"inputs.{token_input}" not in ingest["run"]
        assert any(f"inputs.{token_input} }}" in value for value in ingest["env"].values())
    script = (SCRIPTS / "ingest.sh").read_text()
    # no token variable is ever expanded into the securecase command line
    assert "$SECURECASE_CASES_TOKEN" not in script and "$GITHUB_TOKEN" not in script
    assert "$SECURECASE_GITHUB_APP_KEY" not in script


def test_find_python_checks_the_version_and_keys_the_cache_on_the_lock(tmp_path: Path) -> None:
    output = tmp_path / "output"
    env = {
        **os.environ,
        "ACTION_PATH": str(ROOT),
        "RUNNER_TEMP": str(tmp_path),
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
        "GITHUB_OUTPUT": str(output),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    subprocess.run(["bash", str(SCRIPTS / "find-python.sh")], env=env, check=True)
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert values["cache-key"] == f"securecase-Linux-X64-py{version}-{digest}"
    assert values["wheel-cache"] == f"{tmp_path}/securecase-wheels"
    assert Path(values["python"]).name.startswith("python3")


def test_find_python_refuses_a_python_older_than_3_11(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    python3 = fake / "python3"
    # a stand-in interpreter that reports itself as 3.10 and fails the version check
    python3.write_text(
        '#!/bin/sh\ncase "$2" in *version_info\\ \\<*) exit 1 ;; *) echo 3.10 ;; esac\n'
    )
    python3.chmod(0o755)
    env = {
        **os.environ,
        "ACTION_PATH": str(ROOT),
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "PATH": f"{fake}{os.pathsep}/usr/bin{os.pathsep}/bin",
    }
    run = subprocess.run(
        ["bash", str(SCRIPTS / "find-python.sh")], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "needs Python 3.11 or newer" in run.stdout and "3.10" in run.stdout


def runner_env(tmp_path: Path) -> dict[str, str]:
    """The environment a runner gives the install script: securecase's checkout (this one),
    the job's temporary folder, the Python to use, and no virtual environment active."""
    env = {
        **os.environ,
        "ACTION_PATH": str(ROOT),
        "RUNNER_TEMP": str(tmp_path),
        "SC_PYTHON": sys.executable,
        "PIP_CACHE_DIR": str(tmp_path / "wheels"),
    }
    env.pop("VIRTUAL_ENV", None)
    return env


def test_the_action_installs_with_require_hashes_on_a_fresh_environment(tmp_path: Path) -> None:
    env = runner_env(tmp_path)
    install = subprocess.run(
        ["bash", str(SCRIPTS / "install.sh")], env=env, capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-3000:]
    assert install.stdout.strip().startswith("securecase, version")
    python = tmp_path / "securecase-venv" / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import securecase; print(securecase.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(ROOT / "bot")
    # exactly the locked distributions are installed, besides what venv seeds (pip, and
    # setuptools before Python 3.12) and the checkout's own metadata of an editable install
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    seeded = {"pip", "setuptools", "securecase"}
    installed = {
        str(canonicalize_name(name)): version
        for name, _, version in (line.partition("==") for line in listed)
        if canonicalize_name(name) not in seeded
    }
    assert installed == {name: version for name, (version, _) in locked().items()}


WORKFLOWS = sorted([*(ROOT / "examples" / "workflows").glob("*.yml"), ROOT / "action.yml"])
WORKFLOWS += sorted((ROOT / ".github" / "workflows").glob("*.yml"))
_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def test_workflows_parse_pin_every_action_by_commit_and_start_with_no_permissions() -> None:
    action_inputs = set(yaml.safe_load((ROOT / "action.yml").read_text())["inputs"])
    for path in WORKFLOWS:
        text = path.read_text()
        doc = yaml.safe_load(text)
        steps = (
            doc["runs"]["steps"]
            if path.name == "action.yml"
            else [s for job in doc["jobs"].values() for s in job.get("steps", [])]
        )
        for step in steps:
            if "uses" not in step:
                continue
            uses = step["uses"]
            assert _PINNED.fullmatch(uses), f"{path.name}: {uses} is not pinned to a commit"
            line = next(ln for ln in text.splitlines() if f"uses: {uses}" in ln)
            assert re.search(r"# (v\d+(\.\d+)*|SECURECASE_SHA)$", line), f"{path.name}: {line}"
            if uses.startswith("securecase/securecase@"):
                given = set(step.get("with", {}))
                assert given <= action_inputs, f"{path.name}: unknown inputs {given}"
        if path.name == "action.yml":
            continue
        assert doc["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}"
        for name, job in doc["jobs"].items():
            assert "permissions" in job, f"{path.name}: job {name} sets no permissions"


EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))


def _job_steps(path: Path) -> dict[str, list[Any]]:
    jobs = yaml.safe_load(path.read_text())["jobs"]
    return {name: job.get("steps", []) for name, job in jobs.items()}


def test_examples_install_securecase_from_the_lock_with_hashes_only() -> None:
    checked = 0
    for path in EXAMPLES:
        for job, steps in _job_steps(path).items():
            runs = [str(step.get("run", "")) for step in steps]
            for run in runs:
                assert "pip install" not in run or "--require-hashes" in run, f"{path.name}: {run}"
                assert "git+https" not in run, f"{path.name}: {job} installs from git unlocked"
            calls = [i for i, run in enumerate(runs) if re.search(r"^\s*securecase ", run, re.M)]
            if not calls:
                continue
            installs = [i for i, run in enumerate(runs) if ".github/action/install.sh" in run]
            assert installs and installs[0] < calls[0], f"{path.name}: {job} runs securecase first"
            tool = next(
                step
                for step in steps
                if str(step.get("uses", "")).startswith("actions/checkout@")
                and step.get("with", {}).get("repository") == "securecase/securecase"
            )
            assert re.fullmatch(r"[0-9a-f]{40}", str(tool["with"]["ref"]))
            checked += 1
    assert checked >= 2  # the cases repo's CI and the dashboard job


def test_the_examples_install_step_gives_a_securecase_command(tmp_path: Path) -> None:
    steps = _job_steps(ROOT / "examples" / "workflows" / "scheduled-sweep.yml")["dashboard"]
    install = next(step for step in steps if ".github/action/install.sh" in str(step.get("run")))
    github_path = tmp_path / "github_path"
    env = {**runner_env(tmp_path), "GITHUB_PATH": str(github_path)}
    done = subprocess.run(
        ["bash", "-c", str(install["run"])], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [bin_dir] = github_path.read_text().split()
    version = subprocess.run(
        [str(Path(bin_dir) / "securecase"), "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("securecase, version")
    help_text = subprocess.run(
        [str(Path(bin_dir) / "securecase"), "report", "--help"], capture_output=True, text=True
    )
    assert "--html" in help_text.stdout


def test_the_scheduled_example_sweeps_then_publishes_the_dashboard_with_least_permissions() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "workflows" / "scheduled-sweep.yml").read_text())
    jobs = doc["jobs"]
    assert list(jobs) == ["sweep", "dashboard", "deploy"]
    [sweep] = [s for s in jobs["sweep"]["steps"] if s.get("id") == "sweep"]
    assert sweep["with"]["command"] == "sweep"
    assert jobs["sweep"]["permissions"] == {"contents": "write"}
    assert jobs["dashboard"]["needs"] == "sweep"
    assert jobs["dashboard"]["permissions"] == {"contents": "read"}
    build = "\n".join(s.get("run", "") for s in jobs["dashboard"]["steps"])
    assert "securecase report" in build and "--html _site" in build
    uses = [s.get("uses", "").split("@")[0] for s in jobs["dashboard"]["steps"]]
    assert "actions/upload-pages-artifact" in uses
    assert jobs["deploy"]["needs"] == "dashboard"
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert jobs["deploy"]["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in jobs["deploy"]["steps"]] == ["actions/deploy-pages"]
    # secrets reach the action as inputs (hence environment variables), not in a run: line
    assert "secrets." not in build


def test_the_action_passes_sweep_secrets_by_environment_only() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    sweep = next(step for step in action["runs"]["steps"] if step.get("id") == "sweep")
    assert sweep["env"]["SECURECASE_NOTIFY"] == "${{ inputs.notify }}"
    for token_input in ("cases-token", "github-token", "notify"):
        assert f"inputs.{token_input}" not in sweep["run"]
    script = (SCRIPTS / "sweep.sh").read_text()
    for variable in ("$SECURECASE_NOTIFY", "$SECURECASE_CASES_TOKEN", "$GITHUB_TOKEN"):
        assert variable not in script
