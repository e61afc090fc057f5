"""Time `securecase ingest` of a >= 50 MB SARIF log against the floor, side by side.

The log is built from the real SARIF fixtures (`tests/sarifgen.py`). The floor is what any
tool must pay for the same job: start Python, json.load the log, write the same bytes into a
git work tree, `git add` and `git commit`. Reported: median wall time of the first ingest
and of a rescan (one more copy of the results), the ratio to the floor, peak RSS of each
child process (wait4), and in-process parse time against a bare json.loads.

Usage: python benchmarks/sarif_bench.py [--megabytes 50] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ingest_bench import first_and_rescan  # noqa: E402
from sarifgen import copies_for, findings_per_copy  # noqa: E402

GENERATE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from sarifgen import big_sarif
with open(sys.argv[2], "wb") as out:
    out.write(big_sarif(int(sys.argv[3])))
"""


def generate(path: Path, copies: int) -> None:
    """Write a big log from a child process: a child's peak RSS (wait4) counts the memory of
    the parent it was forked from, so this process must stay small."""
    tests = str(ROOT / "tests")
    subprocess.run([sys.executable, "-c", GENERATE, tests, str(path), str(copies)], check=True)


def bench(work: Path, megabytes: int, repeat: int) -> None:
    copies = copies_for(megabytes * 1_000_000)
    base = work / "big.sarif"
    plus = work / "big-plus.sarif"
    generate(base, copies)
    generate(plus, copies + 1)
    size = base.stat().st_size / 1e6
    findings = copies * findings_per_copy()

    timings = first_and_rescan(work, base, plus, repeat, "r.sarif")
    (floor1, floor1_rss, _), (ing1, ing1_rss, _), (floor2, floor2_rss, _), (ing2, ing2_rss, _) = (
        timings
    )
    print(f"\nSARIF log {size:.1f} MB, {copies} copies, {findings:,} findings, median of {repeat}:")
    print(
        f"  first ingest  {ing1:6.2f} s  floor {floor1:6.2f} s  ratio {ing1 / floor1:4.2f}"
        f"  peak RSS {ing1_rss / 1024:.0f} MiB (floor {floor1_rss / 1024:.0f} MiB)"
    )
    print(
        f"  rescan        {ing2:6.2f} s  floor {floor2:6.2f} s  ratio {ing2 / floor2:4.2f}"
        f"  peak RSS {ing2_rss / 1024:.0f} MiB (floor {floor2_rss / 1024:.0f} MiB)"
    )
    parse_breakdown(base)


def parse_breakdown(path: Path) -> None:
    """In-process: bare json.loads of the log against securecase's whole parse."""
    from securecase.scanners import parse

    data = path.read_bytes()
    gc.collect()
    start = time.perf_counter()
    gc.disable()
    json.loads(data)
    gc.enable()
    loads = time.perf_counter() - start
    gc.collect()
    start = time.perf_counter()
    report = parse(path)
    whole = time.perf_counter() - start
    print(
        f"  in-process: json.loads {loads:.2f} s, securecase parse (read + decode + "
        f"normalize {len(report.findings):,} findings) {whole:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    args = parser.parse_args()
    # as an install would: compile the package once so no run pays for it
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bot")], check=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="securecase-sarif-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        bench(work, args.megabytes, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
