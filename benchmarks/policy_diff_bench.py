"""Time `securecase policy diff` on a cases repo with 1,000 realistic cases.

The cases repo is built with the real code path minus git per case: the real Trivy parser
reads real fixtures (and larger reports made from them by tests/reportgen.py), the real case
merge and policy build each case, the real dumper writes case.yaml next to its raw report, and
one commit records them all. Subjects are a realistic mix: per repository a `main` branch case
and pull requests into main (which get the branch case as their baseline); some cases are
RESOLVED or CLOSED (not evaluated), some TRIAGED by a human.

Target: `policy diff` over 1,000 cases in under 5 s on the project's CI-sized machine.

Usage: python benchmarks/policy_diff_bench.py [--cases 1000] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from reportgen import big_report  # noqa: E402

TARGET_SECONDS = 5.0
FIXTURES = ROOT / "tests" / "fixtures" / "trivy"
SMALL_REPORTS = (
    "alpine-310.json",
    "debian-buster.json",
    "centos-7.json",
    "npm.json",
    "pip.json",
    "gomod.json",
    "fluentd-gems.json",
    "distroless-python27.json",
    "spring4shell-jre11.json",
    "dockerfile.json",
    "secrets.json",
    "misconfigurations_and_secrets.json",
    "scheme_2_no_vuln.json",
)
BIG_SIZES = (40, 120, 300)  # findings in the larger image reports
PRS_PER_REPO = 9  # + one main branch case = 10 cases per repository
NEW_POLICY = """version: 1
mode: pr_gate
rules:
  - id: no-high-into-main
    when: {event: pull_request, target_branches: [main]}
    block: {severity_at_least: HIGH}
  - id: fixable-medium-on-main
    description: the default branch may not keep fixable MEDIUM findings
    when: {event: push, branches: [main]}
    block: {severity_at_least: MEDIUM, fixable_only: true}
    max_allowed: 3
"""


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_"))}


@dataclass(frozen=True)
class GeneratedCase:
    """One generated case folder: its files and its raw report (relative paths)."""

    folder: str
    files: dict[str, bytes]  # file name -> bytes (case.yaml, findings.json)
    raw_path: str
    raw: bytes
    findings: int
    open: bool


def generate_cases(count: int, work: Path) -> Iterator[GeneratedCase]:
    """``count`` realistic case folders from the real parser, merge, policy and dumper."""
    from securecase import scanners as reports
    from securecase.domain.case import GateRecord, Scan, Status, Triage, merge
    from securecase.domain.policy import builtin_policy, evaluate
    from securecase.domain.subjects import make_subject
    from securecase.storage.casefile import dump_case

    policy = builtin_policy()
    rng = random.Random(20261123)
    sources = [FIXTURES / name for name in SMALL_REPORTS]
    for size in BIG_SIZES:
        path = work / f"image-{size}.json"
        path.write_bytes(big_report(size))
        sources.append(path)
    parsed = {path: reports.parse(path) for path in sources}
    weights = [3] * len(SMALL_REPORTS) + [2, 1, 1]
    placeholder = GateRecord(mode="pr_gate", decision="pass", gate=False)
    for index in range(count):
        org_repo = f"acme/svc-{index // (PRS_PER_REPO + 1):03d}"
        slot = index % (PRS_PER_REPO + 1)
        if slot == 0:
            subject = make_subject(
                provider="github", repo=org_repo, pr=None, branch="main", target_branch=None
            )
        else:
            subject = make_subject(
                provider="github",
                repo=org_repo,
                pr=100 + slot,
                branch=f"feature/{slot}",
                target_branch="main",
            )
        report = parsed[rng.choices(sources, weights)[0]]
        raw_rel = f"{subject.folder}/raw/{report.source}{report.raw_suffix}"
        scan = Scan(
            subject=subject,
            reports=(report,),
            received_at="2026-11-01T08:00:00Z",
            commit=hashlib.sha1(str(index).encode(), usedforsecurity=False).hexdigest(),
            raw_paths={report.source: raw_rel},
            raw_sha256={report.source: hashlib.sha256(report.raw).hexdigest()},
        )
        case = merge(None, scan, placeholder).case
        decision = evaluate(policy, case.subject, case.active)
        gate = GateRecord(
            mode=decision.mode.value,
            decision=decision.decision,
            gate=decision.gate,
            policy_path="policy.yaml",
            policy_blob=policy.blob,
            rules=decision.blocking_rules,
            reasons=decision.reasons,
        )
        case = replace(case, gate=gate)
        roll = rng.random()
        if roll < 0.10:
            case = replace(case, status=Status.CLOSED)
        elif roll < 0.25:
            case = replace(
                case,
                status=Status.TRIAGED,
                triage=Triage(assignee="@alice", tags=("upgrade",), notes="base image bump"),
            )
        yield GeneratedCase(
            folder=subject.folder,
            files=dump_case(case),
            raw_path=raw_rel,
            raw=report.raw,
            findings=len(case.findings),
            open=case.status.coarse == "OPEN",
        )


def build_cases_repo(repo: Path, count: int, work: Path) -> dict[str, int]:
    """Write ``count`` case folders with the real parser, merge and dumper; commit once."""
    stats = {"cases": 0, "findings": 0, "open": 0}
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env())
    for made in generate_cases(count, work):
        folder = repo / made.folder
        (folder / "raw").mkdir(parents=True, exist_ok=True)
        for name, data in made.files.items():
            (folder / name).write_bytes(data)
        (repo / made.raw_path).write_bytes(made.raw)
        stats["cases"] += 1
        stats["findings"] += made.findings
        stats["open"] += made.open
    (repo / "policy.yaml").write_bytes(
        (ROOT / "bot/securecase/data/default-policy.yaml").read_bytes()
    )
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    subprocess.run([*git, "add", "-A"], check=True, env=env())
    subprocess.run([*git, "commit", "-qm", f"{count:,} cases"], check=True, env=env())
    return stats


def timed_diff(argv: list[str], cwd: Path) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    # The parse cache lives in the work folder: the first run of each kind fills it (cold),
    # the later ones read it (warm); never the user's own cache.
    environ = {**env(), "SECURECASE_CACHE_DIR": str(cwd / "parse-cache")}
    proc = subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}):\n{proc.stderr}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return elapsed, data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "bot" / "securecase")], check=True
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="securecase-diffbench-"))
    if args.keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        repo = work / "security-cases"
        start = time.perf_counter()
        stats = build_cases_repo(repo, args.cases, work)
        print(
            f"built {stats['cases']:,} cases ({stats['open']:,} open, {stats['findings']:,} "
            f"findings) in {time.perf_counter() - start:.1f} s"
        )
        (work / "new.yaml").write_text(NEW_POLICY)
        (repo / "policy.yaml").write_text(NEW_POLICY)  # the policy PR's working change
        bare = work / "remote.git"
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True, env=env()
        )
        old_policy = str(ROOT / "bot/securecase/data/default-policy.yaml")
        runs = {
            "OLD NEW files": ([old_policy, str(work / "new.yaml")], str(repo)),
            "--base-ref main": (["--base-ref", "main"], str(repo)),
            "remote URL, --base-ref main NEW": (
                ["--base-ref", "main", str(work / "new.yaml")],
                bare.as_uri(),
            ),
        }
        worst = 0.0
        for label, (extra, location) in runs.items():
            argv = [sys.executable, "-m", "securecase", "policy", "diff", *extra]
            argv += ["--cases-repo", location, "--output", "json"]
            results = [timed_diff(argv, work) for _ in range(args.repeat)]
            times = sorted(r[0] for r in results)
            data = results[0][1]
            median = statistics.median(times)
            worst = max(worst, times[-1])
            print(
                f"policy diff ({label}): median {median:.2f} s, min {times[0]:.2f} s, "
                f"max {times[-1]:.2f} s over {args.repeat} runs; "
                f"{data['open_cases']} open cases judged, "
                f"{len(data['new_blocks'])} new blocks, "
                f"{len(data['unblocked'])} unblocked"
            )
        verdict = "OK" if worst < TARGET_SECONDS else "TOO SLOW"
        print(f"slowest run {worst:.2f} s, target < {TARGET_SECONDS:.0f} s: {verdict}")
        return 0 if worst < TARGET_SECONDS else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
