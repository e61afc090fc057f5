"""How much a cases repo grows: bytes added per changed rescan and per new case.

Ingests generated Trivy image reports (``tests/reportgen.py``, built from real fixtures) of
each size into a fresh local cases repo with real ``securecase ingest`` processes:

- new cases: ``--cases`` pull requests, each with its own report;
- rescans: ``--rescans`` scans of one branch, each report with one more finding than the last
  (so every rescan commits a changed raw report and case).

After each phase the repository is packed (``git gc --aggressive --prune=now``, as a server
eventually stores it) and measured with ``git count-objects -v`` (``size-pack``). It prints the
bytes added per new case and per rescan, packed and as loose objects (what one push sends is
close to the loose figure: git's pack of one commit has no older version to delta against),
and the raw report's stored size (gzip above 1 MB) against its size as received.

Usage: python benchmarks/growth_bench.py [--sizes 100,1000,10000] [--cases 5] [--rescans 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reportgen import big_report  # noqa: E402 - the tests' report generator


def env() -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    clean["SECURECASE_NOW"] = "2027-01-10T00:00:00Z"
    return clean


def ingest(repo: Path, report: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "securecase", "ingest", str(report), "--cases-repo", str(repo)]
        + ["--repo", "acme/shop", "--report", "none", "--output", "json", *args]
        + (["--target-branch", "main"] if "--pr" in args else []),
        env=env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr)


def packed_kib(repo: Path) -> tuple[int, int]:
    """(loose KiB, packed KiB) of the repository's objects."""
    out = subprocess.run(
        ["git", "-C", str(repo), "count-objects", "-v"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(": ") for line in out.splitlines())
    return int(fields["size"]), int(fields["size-pack"])


def gc(repo: Path) -> int:
    subprocess.run(
        ["git", "-C", str(repo), "gc", "-q", "--aggressive", "--prune=now"],
        check=True,
        env=env(),
    )
    return packed_kib(repo)[1]


def measure(size: int, cases: int, rescans: int, work: Path) -> dict[str, float]:
    repo = work / f"cases-{size}"
    # Distinct reports for every ingest: the same report would store the same blob again,
    # which git keeps once (deterministic gzip included), hiding the growth measured.
    reports = []
    for n in range(cases + rescans + 2):
        path = work / f"report-{size}-{n}.json"
        path.write_bytes(big_report(size, extra=n))
        reports.append(path)
    rescan_reports = reports[cases + 1 :]
    ingest(repo, reports[0], "--pr", "1", "--commit", "1111111")
    start = gc(repo)
    loose_new = 0
    for n in range(1, cases + 1):
        ingest(repo, reports[n], "--pr", str(1 + n), "--commit", f"{n:07x}")
        loose_new += packed_kib(repo)[0]
        gc(repo)
    after_cases = gc(repo)
    ingest(repo, rescan_reports[0], "--branch", "main", "--commit", "a000000")
    base = gc(repo)
    loose_rescan = 0
    for n in range(1, rescans + 1):
        ingest(repo, rescan_reports[n], "--branch", "main", "--commit", f"a{n:06x}")
        loose_rescan += packed_kib(repo)[0]
        gc(repo)
    after_rescans = gc(repo)
    raw = next((repo / "cases/github/acme/shop/branch-main/raw").iterdir())
    return {
        "report_kib": reports[0].stat().st_size / 1024,
        "stored_raw_kib": raw.stat().st_size / 1024,
        "new_case_packed": (after_cases - start) / cases,
        "new_case_loose": loose_new / cases,
        "rescan_packed": (after_rescans - base) / rescans,
        "rescan_loose": loose_rescan / rescans,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--rescans", type=int, default=5)
    args = parser.parse_args()
    print("findings  report KiB  stored raw KiB  per new case KiB (push/packed)  per rescan KiB")
    with tempfile.TemporaryDirectory(prefix="growth-") as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            got = measure(size, args.cases, args.rescans, Path(folder))
            print(
                f"{size:8d}  {got['report_kib']:10.0f}  {got['stored_raw_kib']:14.0f}  "
                f"{got['new_case_loose']:12.0f} / {got['new_case_packed']:<12.0f}  "
                f"{got['rescan_loose']:8.0f} / {got['rescan_packed']:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
