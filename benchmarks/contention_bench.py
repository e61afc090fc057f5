"""Writers contending for one remote cases repo: throughput, per-ingest p50/p99, lost updates.

For each writer count W, W real ``securecase ingest`` loops run at once against one bare
repository (``file://``), each recording ``--per-writer`` scans of its own pull request from a
real Trivy report; every ingest is timed from process start to exit. Afterwards the branch's
history must hold every scan that exited 0 or 1 (its ``Securecase-Commit`` trailer): a missing
one is a lost update. Each row also gives the CPU seconds one ingest cost on average (its git
commands included: what retries add) and the machine's load average at its end.

Usage: python benchmarks/contention_bench.py [--writers 1,4,8,16] [--per-writer 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "examples" / "reports" / "trivy-debian-buster.json"


def env() -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    clean["SECURECASE_NOW"] = "2027-01-10T00:00:00Z"
    return clean


def writer(
    url: str, pr: int, count: int, times: list[float], failures: list[str], landed: list[str]
) -> None:
    for n in range(count):
        commit = f"{pr:03x}{n:04x}"
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "securecase", "ingest", str(REPORT), "--cases-repo", url]
            + [
                "--repo",
                "acme/shop",
                "--pr",
                str(pr),
                "--target-branch",
                "main",
                "--commit",
                commit,
            ]
            + ["--report", "none", "--push-timeout", "300"],
            env=env(),
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.monotonic() - start)
        if proc.returncode in (0, 1):
            landed.append(commit)
        else:
            failures.append(proc.stderr.strip().splitlines()[-1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(writers: int, per_writer: int, work: Path) -> str:
    bare = work / f"cases-{writers}.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    times: list[float] = []
    failures: list[str] = []
    succeeded: list[str] = []
    threads = [
        threading.Thread(
            target=writer,
            args=(f"file://{bare}", 1 + w, per_writer, times, failures, succeeded),
        )
        for w in range(writers)
    ]
    cpu_before = _children_cpu()
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - start
    cpu = (_children_cpu() - cpu_before) / (writers * per_writer)
    log = subprocess.run(
        ["git", "-C", str(bare), "log", "--format=%(trailers:key=Securecase-Commit,valueonly)"]
        + ["main"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    recorded = {line.strip() for line in log.splitlines() if line.strip()}
    lost = [c for c in succeeded if not any(r.startswith(c) for r in recorded)]
    for failure in failures:
        print(f"  failed: {failure}", file=sys.stderr)
    load = os.getloadavg()[0]
    return (
        f"{writers:7d}  {writers * per_writer / wall:9.2f}  {statistics.median(times):7.1f}  "
        f"{percentile(times, 0.90):7.1f}  {percentile(times, 0.99):7.1f}  {max(times):7.1f}  "
        f"{len(succeeded):6d}  {len(failures):6d}  {len(lost):4d}  {cpu:8.2f}  {load:4.1f}"
    )


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished ingest and the git commands it ran."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", default="1,4,8,16")
    parser.add_argument("--per-writer", type=int, default=5)
    args = parser.parse_args()
    print(
        "writers  ingests/s  p50 (s)  p90 (s)  p99 (s)  max (s)  landed  failed  lost  "
        "cpu/ingest  load"
    )
    with tempfile.TemporaryDirectory(prefix="contention-") as folder:
        for count in (int(w) for w in args.writers.split(",")):
            print(run(count, args.per_writer, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
