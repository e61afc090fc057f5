"""Time `securecase sweep` over a cases repo of many cases, most unchanged, against the floor.

The cases repo holds N pull request cases (a real case file, written by `securecase ingest`
from a real Trivy report, copied under N keys) plus the policy. The floor is what any tool
must pay to look at every case: start Python, `git log -1`, list the tree and read every
case.yaml once (one `git cat-file --batch`). The sweep runs without GitHub credentials (no
closing; every case is read and judged again) on the day the cases were recorded, so
nothing changes, and again with `--changed` percent of the cases holding a stale verdict,
which the sweep rewrites (one commit each, one publish). The first sweep reads and judges
every case; later ones skip the cases a local repo's sweep memo says time cannot have changed
(``services/sweepmemo.py``). Target (issue 15): the unchanged sweep <= 3x the floor.

Usage: python benchmarks/sweep_bench.py [--cases 10000] [--changed 1] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "tests" / "fixtures" / "trivy" / "issue_9092.json"
NOW = "2027-01-10T00:00:00Z"
TARGET = 3.0

FLOOR_SCRIPT = r"""
import subprocess, sys
repo = sys.argv[1]
subprocess.run(["git", "-C", repo, "log", "-1"], check=True, capture_output=True)
tree = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "HEAD", "--", "cases"],
                      check=True, capture_output=True).stdout.decode()
blobs = [line.split()[2] for line in tree.splitlines() if line.endswith("/case.yaml")]
out = subprocess.run(["git", "-C", repo, "cat-file", "--batch"], input="\n".join(blobs).encode(),
                     check=True, capture_output=True).stdout
assert len(out) > 0
"""


def env(**extra: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    clean.update(extra)
    return clean


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env(),
    ).stdout


def timed(argv: Sequence[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env(SECURECASE_NOW=NOW), capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.decode(errors='replace')}")
    return elapsed


def build_repo(where: Path, cases: int, changed_pct: float) -> Path:
    """A local cases repo with ``cases`` pull request cases in 10 repositories."""
    repo = where / "cases"
    subprocess.run(
        [sys.executable, "-m", "securecase", "ingest", str(REPORT), "--cases-repo", str(repo)]
        + ["--repo", "acme/r0", "--pr", "1", "--target-branch", "main", "--report", "none"],
        check=False,
        env=env(SECURECASE_NOW=NOW),
        capture_output=True,
    )
    template = (repo / "cases/github/acme/r0/pr-1/case.yaml").read_text()
    stale = template.replace("decision: block", "decision: pass").replace(
        "gate: true", "gate: false"
    )
    every = int(100 / changed_pct) if changed_pct else 0
    for n in range(cases):
        name, number = f"r{n % 10}", n // 10 + 1
        text = stale if every and n % every == 0 else template
        text = text.replace("github::acme::r0::PR::1", f"github::acme::{name}::PR::{number}")
        text = text.replace("repo: r0", f"repo: {name}").replace("pr: 1\n", f"pr: {number}\n")
        folder = repo / f"cases/github/acme/{name}/pr-{number}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "case.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "generated cases")
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--changed", type=float, default=1.0, help="percent of stale cases")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    where = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    try:
        built = time.perf_counter()
        repo = build_repo(where, args.cases, 0)
        print(f"{args.cases} cases generated in {time.perf_counter() - built:.1f}s")
        sweep = [sys.executable, "-m", "securecase", "sweep", "--cases-repo", str(repo)]
        floor = [sys.executable, "-c", FLOOR_SCRIPT, str(repo)]
        timed(floor, where)  # warm the page cache
        first = timed(sweep, where)  # reads and judges every case, notes the stable ones
        floors, sweeps = [], []
        for _ in range(args.repeat):
            floors.append(timed(floor, where))
            sweeps.append(timed(sweep, where))
        f, s = statistics.median(floors), statistics.median(sweeps)
        verdict = "ok" if s / f <= TARGET else "over target"
        print(f"floor (git log -1 + read every case.yaml): {f:.2f}s")
        print(f"first sweep (reads and judges every case): {first:.2f}s = {first / f:.2f}x")
        print(
            f"next sweeps, nothing changes: {s:.2f}s = {s / f:.2f}x the floor "
            f"({verdict}, <= {TARGET}x)"
        )
        if args.changed:
            shutil.rmtree(repo)
            repo = build_repo(where, args.cases, args.changed)
            sweep[-1] = str(repo)
            start = time.perf_counter()
            out = subprocess.run(
                [*sweep, "--output", "json"], env=env(SECURECASE_NOW=NOW), capture_output=True
            )
            took = time.perf_counter() - start
            commits = json.loads(out.stdout)["commits"] if out.returncode == 0 else "failed"
            print(
                f"sweep, {args.changed:g}% stale: {took:.2f}s = {took / f:.2f}x the floor, "
                f"{commits} commits"
            )
    finally:
        if args.keep:
            shutil.copytree(where, args.keep, dirs_exist_ok=True)
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
