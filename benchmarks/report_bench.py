"""Time `securecase report` (cold) on a generated cases repo, as a ratio to a floor:
`git log --format=%(trailers)` over the same repo.

The cases repo is written with `git fast-import`: one real case (the real Trivy parser, merge
and dumper on a real fixture) is cloned into --cases subjects over a few dozen repositories;
--commits commits then rewrite case files, most as the bot (the ingest's trailers, a PR scan
that blocks one time in four), one in twenty as a human who triages the case.

Target (issue 16): 10,000 cases and 50,000 commits, cold run within 5x the floor.

Usage: python benchmarks/report_bench.py [--cases 10000] [--commits 50000] [--keep DIR]
       (small and quick: --cases 500 --commits 2500)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 5.0
START = datetime(2026, 9, 1, tzinfo=UTC)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_"))}


def template_case() -> object:
    from securecase import scanners
    from securecase.domain.case import GateRecord, Scan, merge
    from securecase.domain.subjects import make_subject

    report = scanners.parse(ROOT / "tests/fixtures/trivy/pip.json", fmt=None, source=None)
    subject = make_subject(
        provider="github", repo="acme/r0", pr=1, branch=None, target_branch="main"
    )
    scan = Scan(
        subject=subject,
        reports=(report,),
        received_at="2026-09-01T00:00:00Z",
        raw_paths={report.source: "raw.json"},
        raw_sha256={report.source: "0" * 64},
    )
    return merge(None, scan, GateRecord(mode="pr_gate", decision="block", gate=True)).case


def build(repo: Path, cases: int, commits: int) -> None:
    from securecase.domain.case import Status, Triage
    from securecase.domain.subjects import make_subject
    from securecase.storage.casefile import dump_case

    base = template_case()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=_env())
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=_env()
    )
    assert proc.stdin is not None
    out = proc.stdin

    def data(payload: bytes) -> None:
        out.write(b"data %d\n" % len(payload) + payload + b"\n")

    for n in range(commits):
        index = n % cases if n < cases else (n * 7919) % cases
        subject = make_subject(
            provider="github",
            repo=f"acme/r{index % 40}",
            pr=index + 1,
            branch=None,
            target_branch="main",
        )
        at = START + timedelta(minutes=3 * n)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        human = n >= cases and n % 20 == 0
        case = replace(
            base,  # type: ignore[type-var]
            subject=subject,
            created_at=START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            updated_at=stamp,
            status=Status.TRIAGED if human else Status.NEW,
            triage=Triage(assignee="@alice") if human else Triage(),
        )
        blocked = n % 4 == 0
        if human:
            who, message = "Alice <alice@example.com>", f"triage {subject.key}\n"
        else:
            who = "securecase-bot <securecase-bot@users.noreply.github.com>"
            decision = "block" if blocked else "pass"
            message = (
                f"securecase: {subject.key}: {decision}\n\nSources: trivy-repo (2).\n\n"
                f"Securecase-Case: {subject.key}\nSecurecase-Commit: c{n}\n"
                f"Securecase-Decision: {decision}\nSecurecase-Status: NEW\n"
                "Securecase-Counts: critical=0 high=1 medium=1 low=0 info=0 unknown=0\n"
                + ("Securecase-Rules: no-high-into-main\n" if blocked else "")
            )
        seconds = int(at.timestamp())
        out.write(b"commit refs/heads/main\n")
        out.write(f"author {who} {seconds} +0000\ncommitter {who} {seconds} +0000\n".encode())
        data(message.encode())
        for name, content in dump_case(case).items():  # type: ignore[arg-type]
            out.write(f"M 100644 inline {subject.folder}/{name}\n".encode())
            data(content)
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True, env=_env())


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed: {proc.stderr.decode()[-500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="build the cases repo here and keep it")
    args = parser.parse_args()
    if args.commits < args.cases:
        parser.error("--commits must be at least --cases (every case has a first commit)")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="report-bench-"))
    repo = folder / "security-cases"
    try:
        began = time.perf_counter()
        build(repo, args.cases, args.commits)
        print(
            f"built {args.cases} cases, {args.commits} commits "
            f"in {time.perf_counter() - began:.1f}s"
        )
        env = {
            **_env(),
            "SECURECASE_NOW": (START + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        floor = timed(["git", "-C", str(repo), "log", "--format=%(trailers)"], folder, env)
        report = timed(
            [
                sys.executable,
                "-m",
                "securecase",
                "report",
                "--output",
                "json",
                "--cases-repo",
                str(repo),
            ],
            folder,
            env,
        )
        ratio = report / floor
        print(f"floor git log --format=%(trailers): {floor:.2f}s")
        print(
            f"securecase report (cold):          {report:.2f}s  ratio {ratio:.1f}x "
            f"(target <= {TARGET_RATIO:.0f}x)"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
