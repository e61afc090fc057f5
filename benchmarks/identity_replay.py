"""Replay real project history through `securecase ingest` and count spurious new/fixed.

Each commit's report of a series in tests/fixtures/realworld (checkov over terragoat,
bandit over pipx) is ingested, in order, as the next scan of one branch case, by the real CLI
into a real git cases repo. The case's "appeared" and "fixed" counts are set against the true
counts that tests/fixtures/MANIFEST.md gives per commit; what exceeds them is spurious (a
finding re-identified shows as one spurious new plus one spurious fixed).

Usage: python benchmarks/identity_replay.py [--series checkov-terragoat-history,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REALWORLD = ROOT / "tests" / "fixtures" / "realworld"
MANIFEST = ROOT / "tests" / "fixtures" / "MANIFEST.md"
SERIES = ("checkov-terragoat-history", "bandit-pipx-history")
_ROW = re.compile(r"^\| (\d\d) \| ([0-9a-f]{40}) \| [^|]* \| ([^|]*) \|")


def true_counts(series: str) -> dict[str, tuple[int, int] | None]:
    """NN → (true new, true fixed) from the series' table in the MANIFEST (None: first scan)."""
    text = MANIFEST.read_text(encoding="utf-8")
    section = text.split(f"### {series}", 1)[1].split("\n### ", 1)[0]
    counts: dict[str, tuple[int, int] | None] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            cell = match.group(3).strip()
            if "/" in cell:
                new, fixed = (int(part) for part in cell.split("/"))
                counts[match.group(1)] = (new, fixed)
            else:
                counts[match.group(1)] = None
    return counts


def replay(series: str, cases: Path) -> list[tuple[str, int, int, tuple[int, int] | None]]:
    """(report name, appeared, fixed, true counts) per commit of ``series``."""
    truth = true_counts(series)
    rows = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITHUB_"))}
    for report in sorted((REALWORLD / series).glob("*.sarif")):
        proc = subprocess.run(
            [sys.executable, "-m", "securecase", "ingest", str(report), "--cases-repo",
             str(cases), "--repo", "replay/" + series, "--branch", "main", "--mode", "ci",
             "--output", "json"],
            capture_output=True, text=True, env=env, cwd=cases.parent, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"{report.name}: exit {proc.returncode}\n{proc.stderr}")
        data = json.loads(proc.stdout)
        rows.append((report.name, data["appeared"], data["fixed"], truth[report.name[:2]]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", default=",".join(SERIES))
    args = parser.parse_args()
    for series in args.series.split(","):
        with tempfile.TemporaryDirectory() as scratch:
            rows = replay(series, Path(scratch) / "cases")
        print(f"\n{series}")
        print("report               appeared fixed  true   spurious new/fixed")
        total = [0, 0, 0, 0]
        for name, appeared, fixed, truth in rows:
            if truth is None:
                print(f"{name:<20} {appeared:>8} {fixed:>5}  (first scan)")
                continue
            extra_new, extra_fixed = max(0, appeared - truth[0]), max(0, fixed - truth[1])
            total = [total[0] + appeared, total[1] + fixed, total[2] + extra_new,
                     total[3] + extra_fixed]  # fmt: skip
            print(
                f"{name:<20} {appeared:>8} {fixed:>5}  {truth[0]}/{truth[1]:<4} "
                f"{extra_new}/{extra_fixed}"
            )
        print(f"after the first scan: {total[0]} appeared / {total[1]} fixed; "
              f"spurious {total[2]} new / {total[3]} fixed")  # fmt: skip


if __name__ == "__main__":
    main()
