"""Time `securecase report` on a generated cases repo, cold and warm, as a ratio to a floor:
`git log --format=%(trailers)` over the same repo.

The cases repo is written with `git fast-import`: one real case (the real Trivy parser, merge
and dumper on a real fixture) is cloned into --cases subjects over a few dozen repositories;
--commits commits then rewrite case files, most as the bot (the ingest's trailers, a PR scan
that blocks one time in four), one in twenty as a human who triages the case.

A cold run starts with an empty cache directory ($SECURECASE_CACHE_DIR); the warm run is the
same call again (the history and parse caches filled by the cold run); then a human triages
one case in a new commit and the call runs once more (the repo is reset afterwards). The
breakdown times the steps of a cold report in this process: the cases at HEAD (read and
parse, then again from the parse cache, as a warm run reads them), the `git log` of the
history, deriving the commit events from it and folding them, the metrics, and saving and
loading the history cache.

Target (issue 16): 10,000 cases and 50,000 commits, cold run within 5x the floor, warm <= 1 s.

Usage: python benchmarks/report_bench.py [--cases 10000] [--commits 50000] [--keep DIR]
       [--repeat N]   (small and quick: --cases 500 --commits 2500; --keep DIR reuses a repo
       built there earlier)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
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


def triage_one(repo: Path, commits: int) -> str:
    """Commit, as a human, the triage of one NEW case (a case file changed, an
    acknowledgement); returns the commit it was made on (to reset the repo to)."""
    git = ["git", "-C", str(repo)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, env=_env())
    found = subprocess.run(
        [*git, "grep", "-l", "--max-count=1", "^status: NEW", "--", "cases"],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
    )
    case = repo / found.stdout.splitlines()[0]
    case.write_text(case.read_text().replace("status: NEW", "status: IN_PROGRESS", 1))
    at = int((START + timedelta(minutes=3 * commits)).timestamp())
    who = {"NAME": "Alice", "EMAIL": "alice@example.com", "DATE": f"{at} +0000"}
    env = {**_env(), **{f"GIT_{r}_{k}": v for r in ("AUTHOR", "COMMITTER") for k, v in who.items()}}
    subprocess.run([*git, "commit", "-qam", "triage one case"], check=True, env=env)
    return head.stdout.decode().strip()


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of a command, and the CPU seconds it and its children used (the
    latter barely moves with the load other processes put on the machine)."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:6.2f}s wall {self.cpu:6.2f}s cpu"


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed: {proc.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def _cpu() -> float:
    """CPU seconds used so far by this process and the git processes it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def breakdown(repo: Path, now: datetime, cache: Path) -> dict[str, Timing]:
    """Wall and CPU seconds per step of a cold report, measured in this process."""
    from securecase.domain.metrics import compute, fold_history
    from securecase.services import report as service
    from securecase.services.eventcache import EventCache
    from securecase.storage.git import DEFAULT_IDENTITY
    from securecase.storage.parsecache import ParseCache
    from securecase.storage.repos import open_store

    steps: dict[str, Timing] = {}
    mark = [time.perf_counter(), _cpu()]

    def step(name: str) -> None:
        wall, cpu = time.perf_counter(), _cpu()
        steps[name] = Timing(wall - mark[0], cpu - mark[1])
        mark[:] = [time.perf_counter(), _cpu()]

    with open_store(str(repo), paths=[service.POLICY_FILE, "cases"]) as store:
        step("open the store")
        snapshot = store.snapshot()
        head = str(snapshot.head)
        policy = service._policy(snapshot.read(service.POLICY_FILE))
        step("policy")
        parsed = ParseCache(cache / "parsed")
        cases, _ = service._cases_at(store, snapshot, parsed)
        parsed.close()
        step("cases at HEAD (read + parse + cache)")
        parsed = ParseCache(cache / "parsed")
        warm, _ = service._cases_at(store, snapshot, parsed)
        parsed.close()
        step("cases at HEAD from the cache (warm)")
        assert warm == cases
        out = store.log(["-z", f"--format={service._LOG_FORMAT}", head])
        step("git log of the history")
        entries = service.parse_log(out)
        step("parse the log")
        humans = [e.commit for e in entries if "alice" in e.email]
        store.changed_files(humans, "cases")
        step("git diff-tree of human commits")
        events = service._derive_events(store, head, DEFAULT_IDENTITY)
        step("all events (the three above + human files)")
        history = fold_history(events)
        step("fold the events")
        window = service.window_for(None, None, now.date())
        compute(
            cases,
            history,
            window=window,
            now=now,
            sla_days=policy.sla_days,
            exceptions=policy.exceptions,
        )
        step("metrics")
        identity = service.repo_identity(str(repo))
        EventCache(cache, identity, DEFAULT_IDENTITY.email).save(head, history)
        step("save the history cache")
        loaded = EventCache(cache, identity, DEFAULT_IDENTITY.email).load()
        step("load the history cache")
        assert loaded is not None and loaded.history == history
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="build the cases repo here (or reuse it)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    args = parser.parse_args()
    if args.commits < args.cases:
        parser.error("--commits must be at least --cases (every case has a first commit)")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="report-bench-"))
    repo = folder / "security-cases"
    try:
        if (repo / ".git").is_dir():
            print(f"reusing the cases repo built earlier in {repo}")
        else:
            began = time.perf_counter()
            build(repo, args.cases, args.commits)
            print(
                f"built {args.cases} cases, {args.commits} commits "
                f"in {time.perf_counter() - began:.1f}s"
            )
        # An installed package has its bytecode compiled (pip does it); without it every run
        # would recompile the package, e.g. under PYTHONDONTWRITEBYTECODE=1. Compile it once.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bot")], check=True)
        now = START + timedelta(days=60)
        env = {**_env(), "SECURECASE_NOW": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        command = [sys.executable, "-m", "securecase", "report", "--output", "json"]
        command += ["--cases-repo", str(repo)]
        floors, colds, warms, nexts = [], [], [], []
        for _ in range(max(1, args.repeat)):
            floors.append(
                timed(["git", "-C", str(repo), "log", "--format=%(trailers)"], folder, env)
            )
            with tempfile.TemporaryDirectory(prefix="report-bench-cache-") as cache:
                cached = {**env, "SECURECASE_CACHE_DIR": cache}
                colds.append(timed(command, folder, cached))
                warms.append(timed(command, folder, cached))
                before = triage_one(repo, args.commits)
                try:
                    nexts.append(timed(command, folder, cached))
                finally:
                    subprocess.run(
                        ["git", "-C", str(repo), "reset", "-q", "--hard", before],
                        check=True,
                        env=_env(),
                    )
        floor, cold, warm, after = (
            min(t, key=lambda x: x.wall) for t in (floors, colds, warms, nexts)
        )
        print(f"floor git log --format=%(trailers): {floor}")
        print(
            f"securecase report (cold):          {cold}  ratio {cold.wall / floor.wall:.1f}x "
            f"wall, {cold.cpu / floor.cpu:.1f}x cpu (target <= {TARGET_RATIO:.0f}x)"
        )
        print(f"securecase report (warm):          {warm}  (target <= 1 s)")
        print(f"warm after one more commit:        {after}")
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        with tempfile.TemporaryDirectory(prefix="report-bench-cache-") as cache:
            steps = breakdown(repo, now, Path(cache))
        print("breakdown of a cold report, in process:")
        for name, seconds in steps.items():
            print(f"  {name:<44} {seconds}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
