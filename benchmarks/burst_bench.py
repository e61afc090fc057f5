"""A burst of scans into one cases repo that takes at most 6 pushes a minute.

``--scans`` real ``securecase ingest`` processes (default 50, one pull request each, a real
Trivy report) run from ``--writers`` concurrent writers (default 16) against a GitHub-like bare
remote (tests/githublike.py: its pre-receive hook refuses pushes beyond 6 in any rolling
minute, GitHub's recommended maximum, and logs every push it lets through). Every ingest has a
record queue (``--queue-dir``): when its push is refused it still decides, reports and exits
with the gate's code, and its record waits. Then, as a scheduled job would, ``securecase
sweep`` runs as soon as the remote's budget has room: it folds the waiting records in one
push; it runs again while records wait.

Printed: decisions reported (exit 0 or 1 with a decision), their p50/p99 latency (process start
to exit), records landed (each scan's ``Securecase-Case`` trailer in the remote's history)
and their latency (from the ingest's exit to the end of the push that carried the record:
0 for a record the ingest pushed itself), pushes (the hook's log), throughput, wall time and
CPU seconds of every process (securecase and its git children) with the machine's load.

Usage: python benchmarks/burst_bench.py [--scans 50] [--writers 16] [--budget 6] [--window 60]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "examples" / "reports" / "trivy-debian-buster.json"
sys.path.insert(0, str(ROOT / "tests"))

from githublike import GitHubLikeRemote, githublike_remote  # noqa: E402


def env(queue: Path | None) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    clean["SECURECASE_NOW"] = "2027-01-10T00:00:00Z"
    clean["SECURECASE_QUEUE_DIR"] = str(queue) if queue is not None else "off"
    return clean


@dataclass(frozen=True)
class Scan:
    """One ingest of the burst: its pull request, exit code, what it said, when it ended."""

    pr: int
    code: int
    decision: str | None
    recorded: str | None
    seconds: float
    ended: float


def one_scan(url: str, queue: Path | None, pr: int) -> Scan:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "securecase", "ingest", str(REPORT), "--cases-repo", url]
        + ["--repo", "acme/shop", "--pr", str(pr), "--target-branch", "main"]
        + ["--commit", f"{pr:040x}", "--report", "none", "--output", "json"]
        + ["--push-timeout", "60"],
        env=env(queue),
        capture_output=True,
        text=True,
        check=False,
    )
    ended = time.monotonic()
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode not in (0, 1):
        print(f"  pr {pr}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}", file=sys.stderr)
    return Scan(
        pr, proc.returncode, data.get("decision"), data.get("recorded"), ended - start, ended
    )


def fold(remote: GitHubLikeRemote, queue: Path | None) -> tuple[float, float]:
    """One ``securecase sweep`` once the budget has room; when it started and ended."""
    remote.wait_for_budget()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "securecase", "sweep", "--cases-repo", remote.url]
        + ["--output", "json", "--push-timeout", "60"],
        env=env(queue),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"  sweep: exit {proc.returncode}: {proc.stderr.strip()[-300:]}", file=sys.stderr)
    return started, time.monotonic()


def landed_keys(remote: GitHubLikeRemote) -> dict[str, str]:
    """Case key -> the commit that recorded it, from the remote's history."""
    out = subprocess.run(
        [
            "git",
            "-C",
            str(remote.path),
            "log",
            "--format=%H %(trailers:key=Securecase-Case,valueonly,separator=)",
            "main",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        commit, _, key = line.partition(" ")
        if key.strip():
            found.setdefault(key.strip(), commit)
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--budget", type=int, default=6, help="pushes per window")
    parser.add_argument("--window", type=int, default=60, help="seconds")
    parser.add_argument(
        "--no-queue", action="store_true", help="queueing off: what a busy repo did before"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="burst-") as folder:
        work = Path(folder)
        remote = githublike_remote(
            work / "cases.git", pushes_per_window=args.budget, window_seconds=args.window
        )
        queue = None if args.no_queue else work / "queue"
        cpu_before = _children_cpu()
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.writers) as pool:
            scans = list(
                pool.map(lambda pr: one_scan(remote.url, queue, pr), range(1, args.scans + 1))
            )
        burst_end = time.monotonic()
        pushes_in_burst = remote.pushes()
        queued = [s for s in scans if s.recorded == "queued"]
        folds: list[tuple[float, float]] = []
        landed_at: dict[int, float] = {s.pr: s.ended for s in scans if s.recorded == "committed"}
        for _ in range(0 if queue is None else 10):
            keys = landed_keys(remote)
            if all(f"github::acme::shop::PR::{s.pr}" in keys for s in scans):
                break
            started, ended = fold(remote, queue)
            folds.append((started - start, ended - start))
            keys = landed_keys(remote)
            for scan in queued:
                if scan.pr not in landed_at and f"github::acme::shop::PR::{scan.pr}" in keys:
                    landed_at[scan.pr] = ended
        wall = time.monotonic() - start
        cpu = _children_cpu() - cpu_before
        keys = landed_keys(remote)
        decided = [s for s in scans if s.code in (0, 1) and s.decision in ("pass", "block")]
        gate_codes = all(s.code == (1 if s.decision == "block" else 0) for s in decided)
        landed = [s for s in scans if f"github::acme::shop::PR::{s.pr}" in keys]
        record_latency = [landed_at[s.pr] - s.ended for s in scans if s.pr in landed_at]
        decision_latency = [s.seconds for s in scans]
        print(
            f"scans {args.scans}, writers {args.writers}, budget {args.budget} pushes per "
            f"{args.window} s (GitHub-like pre-receive hook)"
        )
        print(
            f"decisions reported   {len(decided)}/{args.scans} "
            f"(exit code = the gate's: {gate_codes})"
        )
        failed = sum(s.code not in (0, 1) for s in scans)
        print(
            f"  recorded at once   {args.scans - len(queued) - failed}, queued {len(queued)}, "
            f"failed (exit 3) {failed}"
        )
        print(
            f"decision latency     p50 {statistics.median(decision_latency):.1f} s, "
            f"p99 {percentile(decision_latency, 0.99):.1f} s, "
            f"max {max(decision_latency):.1f} s"
        )
        print(f"records landed       {len(landed)}/{args.scans}, {len(set(keys))} cases in history")
        if record_latency:
            print(
                f"record latency       p50 {statistics.median(record_latency):.1f} s, "
                f"p99 {percentile(record_latency, 0.99):.1f} s, "
                f"max {max(record_latency):.1f} s"
            )
        print(
            f"pushes (hook log)    {remote.pushes()} ({pushes_in_burst} during the burst, "
            f"{len(folds)} folding sweep(s) at "
            + ", ".join(f"{a:.0f}-{b:.0f} s" for a, b in folds)
            + ")"
        )
        print(f"commits on main      {remote.commits()}")
        print(
            f"burst wall           {burst_end - start:.1f} s "
            f"({args.scans / (burst_end - start):.2f} decisions/s)"
        )
        print(
            f"total wall           {wall:.1f} s; CPU {cpu:.1f} s "
            f"({cpu / args.scans:.2f} s per scan, sweeps included); "
            f"load {os.getloadavg()[0]:.1f}"
        )


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child and the git commands it ran."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
