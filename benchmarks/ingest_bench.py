"""Time `securecase ingest` against the floor, side by side in one run.

The floor is what any tool must pay for the same job: start Python, json.load the report,
write the same bytes into a git work tree, `git add` and `git commit`. Ceilings (ratios, since
absolute times drift between runs): 10,000 and 1,000 findings <= 3x the floor,
first ingest and rescan alike; `securecase --version` <= 1.5x `python -c "import click"`.

Usage: python benchmarks/ingest_bench.py [--sizes 1000,10000] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TARGETS = {1000: 3.0, 10000: 3.0}
Timing = tuple[float, int, float]  # wall seconds, peak RSS (KiB), CPU seconds
VERSION_TARGET = 1.5

FLOOR_SCRIPT = r"""
import json, subprocess, sys
report, repo, dest = sys.argv[1:4]
data = open(report, "rb").read()
json.loads(data)
with open(f"{repo}/{dest}", "wb") as out:
    out.write(data)
git = ["git", "-C", repo, "-c", "user.name=b", "-c", "user.email=b@b"]
subprocess.run(git + ["add", dest], check=True)
subprocess.run(git + ["commit", "-qm", "floor"], check=True)
"""


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_"))}
    return clean


def timed(argv: Sequence[str], cwd: Path) -> tuple[float, int, float]:
    """Wall time, peak RSS (KiB) and CPU seconds (its own and its git children's) of one child
    process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"{argv} failed ({proc.returncode}): "
            + (proc.stderr.read().decode(errors="replace") if proc.stderr else "")
        )
    return elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def side_by_side(
    repeat: int, floor: Callable[[], Timing], ours: Callable[[], Timing]
) -> tuple[Timing, Timing]:
    """Alternate floor and measured runs so that drift in machine load hits both alike."""
    pairs = [(floor(), ours()) for _ in range(repeat)]
    return (
        (
            statistics.median(p[0][0] for p in pairs),
            max(p[0][1] for p in pairs),
            statistics.median(p[0][2] for p in pairs),
        ),
        (
            statistics.median(p[1][0] for p in pairs),
            max(p[1][1] for p in pairs),
            statistics.median(p[1][2] for p in pairs),
        ),
    )


def fresh_repo(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env())
    return path


def securecase_argv() -> list[str]:
    """How users run securecase: the console script installed next to this Python (else
    ``python -m securecase``)."""
    script = Path(sys.executable).with_name("securecase")
    return [str(script)] if script.exists() else [sys.executable, "-m", "securecase"]


def ingest_argv(report: Path, repo: Path, commit: str) -> list[str]:
    return [
        *securecase_argv(),
        "ingest",
        str(report),
        "--cases-repo",
        str(repo),
        "--repo",
        "acme/shop",
        "--pr",
        "1",
        "--target-branch",
        "main",
        "--commit",
        commit,
        "--output",
        "json",
    ]


def bench_size(size: int, work: Path, repeat: int) -> dict[str, float]:
    base = work / f"report-{size}.json"
    plus = work / f"report-{size}-plus1.json"
    # Reports are built and the breakdown measured in child processes: memory this process
    # held would show up in every later child's peak RSS (a forked child starts with it).
    in_child("generate", str(size), "0", str(base))
    in_child("generate", str(size), "1", str(plus))
    mb = base.stat().st_size / 1e6

    (
        (floor1, floor1_rss, floor1_cpu),
        (ing1, ing1_rss, ing1_cpu),
        (floor2, _, floor2_cpu),
        (
            ing2,
            ing2_rss,
            ing2_cpu,
        ),
    ) = first_and_rescan(work, base, plus, repeat, "r.json")
    target = TARGETS.get(size, 3.0)
    print(f"\n{size:,} findings ({mb:.1f} MB report), median of {repeat}:")
    print(
        f"  first ingest  {ing1:6.2f} s  floor {floor1:6.2f} s  ratio {ing1 / floor1:4.2f}"
        f"  (target <= {target})  peak RSS {ing1_rss / 1024:.0f} MiB"
        f" (floor {floor1_rss / 1024:.0f} MiB)"
    )
    print(
        f"                CPU {ing1_cpu:6.2f} s  floor {floor1_cpu:6.2f} s  ratio"
        f" {ing1_cpu / floor1_cpu:4.2f}"
    )
    print(
        f"  rescan        {ing2:6.2f} s  floor {floor2:6.2f} s  ratio {ing2 / floor2:4.2f}"
        f"  (target <= {target})  peak RSS {ing2_rss / 1024:.0f} MiB"
    )
    print(
        f"                CPU {ing2_cpu:6.2f} s  floor {floor2_cpu:6.2f} s  ratio"
        f" {ing2_cpu / floor2_cpu:4.2f}"
    )
    in_child("breakdown", str(base), str(plus))
    return {"first": ing1 / floor1, "rescan": ing2 / floor2}


def first_and_rescan(
    work: Path, base: Path, plus: Path, repeat: int, dest: str
) -> tuple[Timing, Timing, Timing, Timing]:
    """(floor, ingest) of a first ingest of ``base``, then of a rescan with ``plus``, each
    measured side by side; ``dest`` names the report's file in the floor's repository."""

    def floor_first() -> Timing:
        repo = fresh_repo(work / "floor")
        return timed([sys.executable, "-c", FLOOR_SCRIPT, str(base), str(repo), dest], work)

    def floor_rescan() -> Timing:
        repo = fresh_repo(work / "floor")
        subprocess.run(
            [sys.executable, "-c", FLOOR_SCRIPT, str(base), str(repo), dest], check=True, env=env()
        )
        return timed([sys.executable, "-c", FLOOR_SCRIPT, str(plus), str(repo), dest], work)

    def first() -> Timing:
        # Into an empty repository made beforehand, like the floor's: both time the job, not
        # `git init`.
        repo = fresh_repo(work / "cases")
        return timed(ingest_argv(base, repo, "c1000001"), work)

    def rescan() -> Timing:
        repo = work / "cases"
        if repo.exists():
            shutil.rmtree(repo)
        subprocess.run(
            ingest_argv(base, repo, "c1000001"), cwd=work, env=env(), stdout=subprocess.DEVNULL
        )
        return timed(ingest_argv(plus, repo, "c2000002"), work)

    floor1, ing1 = side_by_side(repeat, floor_first, first)
    floor2, ing2 = side_by_side(repeat, floor_rescan, rescan)
    return floor1, ing1, floor2, ing2


def in_child(*args: str) -> None:
    """Run this script's helper mode ``args`` in a fresh process."""
    subprocess.run([sys.executable, __file__, "--helper", *args], check=True, env=env())


def generate(size: int, extra: int, path: Path) -> None:
    """Write a report of ``size`` findings (plus ``extra``) built from the real fixtures."""
    sys.path.insert(0, str(ROOT / "tests"))
    from reportgen import big_report

    path.write_bytes(big_report(size, extra=extra))


#: The steps of a rescan the breakdown times: (label, module, function). Everything else the
#: run does (waiting on git processes started earlier, output) is reported as the rest.
STEPS = [
    ("parse report", "securecase.services.ingest", "_read_reports"),
    ("open store (probe)", "securecase.services.ingest", "open_store"),
    ("read previous case (YAML + JSON)", "securecase.services.ingest", "_read_case"),
    ("mask the raw report (gzip runs in a thread)", "securecase.services.ingest", "_stored_report"),
    ("merge", "securecase.services.ingest", "merge"),
    ("evaluate policy", "securecase.services.ingest", "evaluate_case"),
    ("write case files (check, dump)", "securecase.services.ingest", "dump_case"),
    ("git: check work tree", "securecase.storage.local", "LocalBackend.prepare"),
    ("git: objects + commit", "securecase.storage.store", "build_commit"),
    ("git: move branch", "securecase.storage.local", "LocalBackend.publish"),
    ("git: sync work tree", "securecase.storage.local", "LocalBackend.after_publish"),
]


def breakdown(base: Path, plus: Path) -> None:
    """Where the time of a real rescan goes: the CLI run in this (fresh) process, its main
    steps timed by wrapping them. The first ingest runs in another process beforehand, so the
    rescan finds what a real one finds (the previous case)."""
    import importlib

    repo = Path(tempfile.mkdtemp()) / "cases"
    first = subprocess.run(
        ingest_argv(base, repo, "c1000001"), env=env(), stdout=subprocess.DEVNULL
    )
    if first.returncode not in (0, 1):
        raise SystemExit(f"the first ingest failed ({first.returncode})")
    spent: dict[str, float] = {}
    start = time.perf_counter()
    # The module, not the package's `main` function that shadows it as an attribute.
    cli_main = importlib.import_module("securecase.cli.main")
    from securecase.render import text as render  # noqa: F401 (render: imported by the run)

    def timed_step(label: str, function: Callable[..., object]) -> Callable[..., object]:
        def step(*args: object, **kwargs: object) -> object:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - began

        return step

    for label, module_name, name in STEPS:
        owner: object = importlib.import_module(module_name)
        *path, attribute = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, attribute, timed_step(label, getattr(owner, attribute)))
    spent["imports"] = time.perf_counter() - start
    argv = ingest_argv(plus, repo, "c2000002")[len(securecase_argv()) :]
    began = time.perf_counter()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        code = cli_main._run(argv)
    if code not in (0, 1):
        raise SystemExit(f"the rescan failed ({code})")
    spent["rest (git processes waited on, output)"] = (
        time.perf_counter() - began - sum(v for k, v in spent.items() if k != "imports")
    )
    shutil.rmtree(repo.parent)
    print("  rescan breakdown (one run, in-process, after Python's own start-up):")
    for label, seconds in spent.items():
        print(f"    {label:<46}{seconds * 1000:6.1f} ms")


def bench_startup(work: Path, repeat: int) -> float:
    def version() -> Timing:
        return timed([*securecase_argv(), "--version"], work)

    def click_only() -> Timing:
        return timed([sys.executable, "-c", "import click"], work)

    # Start-up takes tens of milliseconds, so one busy moment moves a small sample's median:
    # alternate many short runs.
    (base, _, base_cpu), (ours, _, ours_cpu) = side_by_side(
        max(repeat * 3, 15), click_only, version
    )
    print(
        f"\nstart-up: securecase --version {ours * 1000:.0f} ms, python -c 'import click' "
        f"{base * 1000:.0f} ms, ratio {ours / base:.2f} (target <= {VERSION_TARGET});"
        f" CPU {ours_cpu * 1000:.0f} ms vs {base_cpu * 1000:.0f} ms"
    )
    return ours / base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    parser.add_argument("--helper", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.helper:
        mode, *rest = args.helper
        if mode == "generate":
            generate(int(rest[0]), int(rest[1]), Path(rest[2]))
        else:
            breakdown(Path(rest[0]), Path(rest[1]))
        return
    # An installed package has its bytecode compiled (pip does it); without it every run would
    # recompile the package (~70 ms), e.g. under PYTHONDONTWRITEBYTECODE=1. Compile it once.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bot")], check=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="securecase-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ratio = bench_startup(work, args.repeat)
        ok = ratio <= VERSION_TARGET
        for size in (int(s) for s in args.sizes.split(",")):
            ratios = bench_size(size, work, args.repeat)
            ok &= all(r <= TARGETS.get(size, 3.0) for r in ratios.values())
        print("\nall targets met" if ok else "\nsome targets missed")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
