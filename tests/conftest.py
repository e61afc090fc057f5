"""Shared test helpers: run the real CLI in a subprocess, inspect real git repositories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from githublike import GitHubLikeRemote, githublike_remote
from securecase.domain.findings import Finding, Kind, Package, Severity, fingerprint

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
TRIVY = FIXTURES / "trivy"


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every securecase the suite runs keeps its cache in a temporary directory, never the
    user's: ``clean_env`` drops SECURECASE_* settings but passes ``XDG_CACHE_HOME`` on."""
    folder = tmp_path_factory.mktemp("cache-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        patch.delenv("SECURECASE_CACHE_DIR", raising=False)
        yield folder


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no inherited GIT_* or SECURECASE_* settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    env.update(extra)
    return env


def run_cli(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m securecase ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "securecase", *map(str, args)],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def ingest_json(*args: str | Path, cwd: Path) -> tuple[int, dict[str, Any], str]:
    """Run ``ingest --output json``; returns (exit code, parsed stdout, stderr)."""
    proc = run_cli("ingest", *args, "--output", "json", cwd=cwd)
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, data, proc.stderr


def trivy_rescan(report: Path, dest: Path, *fixed: str) -> Path:
    """A real Trivy report of one artifact, rescanned after the vulnerabilities ``fixed``
    (their ids) were fixed, or all of them when none is named: written to ``dest``."""
    doc = json.loads(report.read_text())
    removed = 0
    for result in doc["Results"]:
        found = result.get("Vulnerabilities") or []
        kept = [v for v in found if fixed and v["VulnerabilityID"] not in fixed]
        removed += len(found) - len(kept)
        if kept:
            result["Vulnerabilities"] = kept
        else:
            result.pop("Vulnerabilities", None)
    assert removed, f"{report}: none of {fixed} to fix"
    dest.write_text(json.dumps(doc))
    return dest


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return stdout."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout


def bare_repo(path: Path, *, head: str = "main") -> Path:
    """A new bare repository at ``path`` that serves partial-clone filters, as GitHub does
    (securecase refuses a server without them: test_remote_fetch.py)."""
    git(path.parent, "init", "-q", "--bare", "-b", head, str(path))
    git(path, "config", "uploadpack.allowFilter", "true")
    return path


def read_case_files(case_yaml: Path) -> dict[str, Any]:
    """A case folder's two files as one plain document: case.yaml's keys (read with PyYAML's
    plain safe loader, as any tool would) plus findings.json's ``findings`` and ``resolved``.

    ``case_yaml`` is the path of the case.yaml file; findings.json lies beside it.
    """
    import yaml

    doc: dict[str, Any] = yaml.safe_load(case_yaml.read_text(encoding="utf-8"))
    findings = json.loads((case_yaml.parent / "findings.json").read_text(encoding="utf-8"))
    doc["findings"] = findings["findings"]
    doc["resolved"] = findings["resolved"]
    return doc


def commit_count(repo: Path) -> int:
    """Commits on HEAD (0 for an unborn branch or a missing repo)."""
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return 0
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--count", "HEAD"],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    return int(proc.stdout.strip()) if proc.returncode == 0 else 0


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A scratch working directory for one test."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def read_github_output(path: Path) -> dict[str, str]:
    """The step outputs in a ``$GITHUB_OUTPUT`` file, as the Actions runner reads them:
    ``name=value`` lines and ``name<<DELIMITER`` blocks ending at a line that is the delimiter."""
    values: dict[str, str] = {}
    lines = iter(path.read_text().split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for item in lines:
                if item == delimiter:
                    break
                body.append(item)
            values[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            values[name] = value
    return values


def vuln_finding(
    n: int, severity: str = "HIGH", *, source: str = "trivy-image", cvss: float | None = None
) -> Finding:
    """A made-up vulnerability finding number ``n`` (id, rule and package derived from it)."""
    return Finding(
        id=fingerprint(source, "vuln", str(n)),
        source=source,
        kind=Kind.VULNERABILITY,
        advisory=f"CVE-2024-{n:04d}",
        severity=Severity(severity),
        title=f"vuln {n}",
        package=Package(f"pkg{n}", "1.0", "1.1"),
        cvss=cvss,
    )


@pytest.fixture
def githublike(tmp_path: Path) -> Callable[..., GitHubLikeRemote]:
    """Make bare remotes that enforce GitHub's limits (see tests/githublike.py): call it with
    the limits to try, e.g. ``githublike(pushes_per_window=2, window_seconds=30)``."""
    made = iter(range(1_000))

    def make(**limits: int) -> GitHubLikeRemote:
        return githublike_remote(tmp_path / f"githublike-{next(made)}.git", **limits)

    return make
