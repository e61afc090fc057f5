"""Time the reading commands on a cases repo of 10,000 realistic cases (issue 17).

The cases are made by the real code, as `policy_diff_bench.py` makes them (the real Trivy
parser on real fixtures and larger reports built from them, the real merge, policy and
dumper), and written with `git fast-import` in one commit: per repository a `main` branch case
and 9 pull requests into main, about 10% CLOSED and 15% TRIAGED, each folder with its
`case.yaml`, `findings.json` and raw report. Then, as real processes, with the peak RSS of each
(`wait4`):

- `cases list` cold (an empty parse cache directory) and warm (the cache the cold run left);
- `cases list --output json`, cold and warm;
- `policy diff --base-ref main` (the working policy.yaml adds a rule), cold and warm;
- `cases list --no-cache`, for the parse without any cache.

Targets (issue 17): `cases list` <= 10 s cold and <= 1 s warm, `policy diff` <= 20 s, peak RSS
<= 300 MB. `--baseline DIR` also times the same commands with the package in DIR (e.g. a
checkout of an older commit's `bot` folder) for a before/after table.

Usage: python benchmarks/scale_bench.py [--cases 10000] [--repeat 3] [--keep DIR]
       [--baseline /path/to/old/bot]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from policy_diff_bench import NEW_POLICY, generate_cases  # noqa: E402

TARGETS = {"list": 10.0, "list warm": 1.0, "diff": 20.0}
RSS_TARGET_MB = 300


def env(**extra: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    clean.update(extra)
    return clean


def build(repo: Path, count: int, work: Path) -> dict[str, int]:
    """One commit of ``count`` case folders (and the default policy), through fast-import."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env())
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=env()
    )
    assert proc.stdin is not None
    out = proc.stdin
    marks: dict[bytes, int] = {}  # by digest: identical contents are one blob, as in git
    entries: list[bytes] = []  # the commit's file lines, naming blobs by mark

    def blob(path: str, data: bytes) -> None:
        digest = hashlib.sha256(data).digest()
        mark = marks.get(digest)
        if mark is None:
            mark = marks[digest] = len(marks) + 1
            out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
        entries.append(f"M 100644 :{mark} {path}\n".encode())

    stats = {"cases": 0, "findings": 0, "open": 0}
    for made in generate_cases(count, work):
        blob(made.raw_path, made.raw)
        for name, data in made.files.items():
            blob(f"{made.folder}/{name}", data)
        stats["cases"] += 1
        stats["findings"] += made.findings
        stats["open"] += made.open
    blob("policy.yaml", (ROOT / "bot/securecase/data/default-policy.yaml").read_bytes())
    message = f"{count:,} cases\n".encode()
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer bench <bench@example.com> 1793520000 +0000\n")
    out.write(b"data %d\n" % len(message) + message)
    out.writelines(entries)
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True, env=env())
    return stats


@dataclass(frozen=True)
class Run:
    """One child process: wall seconds, CPU seconds (its own and its git children's, user +
    system: what a shared machine's load does not inflate), peak RSS in MiB, stdout."""

    wall: float
    cpu: float
    rss: float
    out: bytes


def run(argv: list[str], cwd: Path, environ: dict[str, str]) -> Run:
    """Run one child process to its end."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=environ, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            err.seek(0)
            raise SystemExit(f"{argv[3:6]} failed ({proc.returncode}): {err.read()[-800:]!r}")
        out.seek(0)
        return Run(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs (median)")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--baseline", type=Path, help="a package folder to time as 'before'")
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "bot" / "securecase")], check=True
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="securecase-scalebench-"))
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "security-cases"
    try:
        if not (repo / ".git").exists():
            start = time.perf_counter()
            stats = build(repo, args.cases, work)
            print(
                f"built {stats['cases']:,} cases ({stats['open']:,} open, "
                f"{stats['findings']:,} findings) in {time.perf_counter() - start:.1f} s"
            )
        (repo / "policy.yaml").write_text(NEW_POLICY)  # the policy change under review
        cli = [sys.executable, "-m", "securecase"]
        commands = {
            "list": [*cli, "cases", "list", "--cases-repo", str(repo)],
            "list --output json": [
                *cli,
                *("cases", "list", "--output", "json", "--cases-repo", str(repo)),
            ],
            "diff": [*cli, "policy", "diff", "--base-ref", "main", "--cases-repo", str(repo)],
        }
        print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
        outputs: dict[str, bytes] = {}
        for label, argv in commands.items():
            cache = work / f"cache-{label.replace(' ', '_')}"
            shutil.rmtree(cache, ignore_errors=True)
            environ = env(SECURECASE_CACHE_DIR=str(cache))
            cold = run(argv, work, environ)
            outputs[label] = cold.out
            warm = [run(argv, work, environ) for _ in range(args.repeat)]
            assert all(w.out == cold.out for w in warm), f"{label}: warm output differs"
            wall = statistics.median(w.wall for w in warm)
            cpu = statistics.median(w.cpu for w in warm)
            rss = max([cold.rss, *(w.rss for w in warm)])
            print(
                f"{label:18} cold {cold.wall:6.2f} s (cpu {cold.cpu:5.2f} s)   warm median "
                f"{wall:5.2f} s (cpu {cpu:5.2f} s) of {args.repeat}   peak RSS {rss:4.0f} MiB"
                + _verdict(label, cold.wall, wall, rss)
            )
        uncached = run(
            [*commands["list"], "--no-cache"], work, env(SECURECASE_CACHE_DIR=str(work / "x"))
        )
        assert uncached.out == outputs["list"], "--no-cache lists differently"
        print(
            f"{'list --no-cache':18}      {uncached.wall:6.2f} s (cpu {uncached.cpu:5.2f} s)"
            f"   peak RSS {uncached.rss:4.0f} MiB"
        )
        if args.baseline is not None:
            old = env(PYTHONPATH=str(args.baseline))
            for label, argv in commands.items():
                before = run(argv, work, old)
                same = "same output" if before.out == outputs[label] else "OUTPUT DIFFERS"
                print(
                    f"before: {label:18} {before.wall:6.2f} s (cpu {before.cpu:5.2f} s)   "
                    f"peak RSS {before.rss:4.0f} MiB, {same}"
                )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _verdict(label: str, cold: float, warm: float, rss: float) -> str:
    notes = []
    if label in TARGETS:
        notes.append(
            f"cold target {TARGETS[label]:.0f} s: {'ok' if cold <= TARGETS[label] else 'OVER'}"
        )
    if label == "list":
        notes.append(f"warm target 1 s: {'ok' if warm <= TARGETS['list warm'] else 'OVER'}")
    notes.append(f"RSS target {RSS_TARGET_MB} MiB: {'ok' if rss <= RSS_TARGET_MB else 'OVER'}")
    return "   [" + "; ".join(notes) + "]"


if __name__ == "__main__":
    raise SystemExit(main())
