"""A year of an organisation's scans in one cases repo, with and without retirement (issue 18).

The organisation: ``--repos`` repositories (200 in the issue), each scanned 10 times a day
(2,000 scans a day for 200): every day each repository opens 2 or 3 pull requests (2.5 on
average), each scanned on the day it opens and the two days after, and its ``main`` branch is
scanned 2 or 3 times. A pull request merges after its third scan; the daily sweep closes its
case, and, with retirement on, removes the folder of every case CLOSED for ``--retire-after``
days (30, the sweep's default).

The case files come from the real code: the real Trivy parser on real fixtures (the same
reports as ``policy_diff_bench.py``), the real case merge on every scan (so rescans keep
``first_seen``, and a rescan with another report resolves findings), the real policy, the
real sweep judgement that closes a pull request's case (``domain.sweep.sweep_case``), the
real retirement rule (``domain.retirement.retirement``) and the real dumper. Only git is
replaced: each scan, closing and retirement is one commit written with ``git fast-import``
(one commit per ingest and per swept case, as securecase commits), not 730,000 ingest
processes. The sweep's own retirement pass (``securecase sweep --dry-run``, a real process)
is then timed on the final repository.

Printed for each mode: commits; the tip's case folders, files and bytes; the largest
directory at the tip (entries in one tree); the tip's trees as a depth-1 ``blob:none`` fetch
would send them (``pack-objects`` of the tip commit's trees); the repository after ``git gc``
(``size-pack``); wall and CPU seconds (this process plus git children) of the build, and of
the real sweep pass on the result.

Scaled down by default (5 repositories, the same 10 scans a day each, a whole year): the
tip's folders and bytes, the commits and the repository size grow with the number of
repositories and are extrapolated ×(200 / repos); the largest directory (one repository's
folder) does not depend on it. ``--repos 200`` runs the issue's full size (long).

Usage: python benchmarks/growth_year_bench.py [--repos 5] [--days 365] [--retire-after 30]
       [--modes on,off] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from policy_diff_bench import FIXTURES, SMALL_REPORTS  # noqa: E402

FULL_REPOS = 200
SCANS_PER_REPO_DAY = 10
PR_SCANS = 3  # a pull request is scanned on the day it opens and the two days after
START = date(2026, 1, 1)
BOT = b"securecase-bot <securecase-bot@users.noreply.github.com>"


def env(**extra: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    clean.update(extra)
    return clean


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (git) so far."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Open:
    """A case at the tip and what the simulation knows of it."""

    case: Any
    raw_path: str
    scans: int = 0
    report: int = 0


@dataclass
class Stats:
    commits: int = 0
    scans: int = 0
    closed: int = 0
    retired: int = 0
    files: Counter[str] = field(default_factory=Counter)


class Writer:
    """One ``git fast-import`` stream: each call to :meth:`commit` is one commit on main."""

    def __init__(self, repo: Path) -> None:
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env())
        self.proc = subprocess.Popen(
            ["git", "-C", str(repo), "fast-import", "--quiet", "--done"],
            stdin=subprocess.PIPE,
            env=env(),
        )
        assert self.proc.stdin is not None
        self.out: IO[bytes] = self.proc.stdin
        self.marks: dict[bytes, int] = {}  # identical contents are one blob, as in git
        self.first = True

    def commit(
        self, when: datetime, message: str, files: dict[str, bytes], delete: tuple[str, ...] = ()
    ) -> None:
        lines = []
        for path, data in files.items():
            digest = hashlib.sha256(data).digest()
            mark = self.marks.get(digest)
            if mark is None:
                mark = self.marks[digest] = len(self.marks) + 1
                self.out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
            lines.append(f"M 100644 :{mark} {path}\n".encode())
        lines.extend(f"D {path}\n".encode() for path in delete)
        stamp = int(when.timestamp())
        text = message.encode()
        self.out.write(b"commit refs/heads/main\n")
        self.out.write(b"committer %s %d +0000\n" % (BOT, stamp))
        self.out.write(b"data %d\n%s\n" % (len(text), text))
        self.out.writelines(lines)
        self.out.write(b"\n")

    def close(self) -> None:
        self.out.write(b"done\n")
        self.out.close()
        if self.proc.wait() != 0:
            raise SystemExit("git fast-import failed")


def message(key: str, what: str, extra: str = "") -> str:
    return f"securecase: {key}: {what}\n\nSecurecase-Case: {key}\nSecurecase-Sweep: {what}\n{extra}"


def simulate(repo: Path, repos: int, days: int, retire_after: int | None) -> Stats:
    """Build the year in ``repo`` (see the module docstring); returns what it wrote."""
    from securecase import scanners
    from securecase.domain.case import GateRecord, Scan, merge
    from securecase.domain.policy import builtin_policy, evaluate
    from securecase.domain.retirement import retirement
    from securecase.domain.subjects import make_subject
    from securecase.domain.sweep import PullState, RepoState, sweep_case
    from securecase.storage.casefile import dump_case

    policy = builtin_policy()
    parsed = [scanners.parse(FIXTURES / name) for name in SMALL_REPORTS]
    rng = random.Random(20261203)
    writer = Writer(repo)
    writer.commit(
        datetime(2025, 12, 31, tzinfo=UTC),
        "policy",
        {"policy.yaml": (ROOT / "bot/securecase/data/default-policy.yaml").read_bytes()},
    )
    stats = Stats(commits=1)
    tip: dict[str, Open] = {}  # folder -> case
    closed: dict[str, Any] = {}  # folder -> CLOSED case at the tip
    next_pr = Counter[str]()
    pending: dict[str, list[int]] = {}  # repository -> its open pull requests
    merged: list[str] = []

    def folder_of(org_repo: str, pr: int) -> str:
        return make_subject(
            provider="github", repo=org_repo, pr=pr, branch=f"feature/{pr}", target_branch="main"
        ).folder

    def scan(org_repo: str, pr: int | None, when: datetime) -> None:
        if pr is None:
            subject = make_subject(
                provider="github", repo=org_repo, pr=None, branch="main", target_branch=None
            )
        else:
            subject = make_subject(
                provider="github",
                repo=org_repo,
                pr=pr,
                branch=f"feature/{pr}",
                target_branch="main",
            )
        known = tip.get(subject.folder)
        choice = known.report if known else rng.randrange(len(parsed))
        if known and rng.random() < 0.3:  # a rescan after a change: another report
            choice = rng.randrange(len(parsed))
        report = parsed[choice]
        raw_path = f"{subject.folder}/raw/{report.source}{report.raw_suffix}"
        at = when.isoformat().replace("+00:00", "Z")
        commit = hashlib.sha1(f"{subject.key}{at}".encode(), usedforsecurity=False).hexdigest()
        result = merge(
            known.case if known else None,
            Scan(
                subject=subject,
                reports=(report,),
                received_at=at,
                commit=commit,
                raw_paths={report.source: raw_path},
                raw_sha256={report.source: hashlib.sha256(report.raw).hexdigest()},
                report_times={report.source: at},
            ),
            GateRecord(mode="pr_gate", decision="pass", gate=False),
        )
        decision = evaluate(policy, subject, result.case.active)
        case = replace(result.case, gate=decision.gate_record(policy))
        files = {f"{subject.folder}/{name}": data for name, data in dump_case(case).items()}
        files[raw_path] = report.raw
        delete: tuple[str, ...] = ()
        if known and known.raw_path != raw_path:
            delete = (known.raw_path,)
        writer.commit(when, message(subject.key, "scan"), files, delete)
        entry = known or Open(case, raw_path)
        entry.case, entry.raw_path, entry.report = case, raw_path, choice
        entry.scans += 1
        tip[subject.folder] = entry
        stats.commits += 1
        stats.scans += 1

    for day_number in range(days):
        day = START + timedelta(days=day_number)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        for index in range(repos):
            org_repo = f"acme/svc-{index:03d}"
            opened = 2 + (rng.random() < 0.5)
            for pr in pending.get(org_repo, []):  # the open pull requests' rescans
                scan(org_repo, pr, noon)
            for _ in range(opened):
                next_pr[org_repo] += 1
                scan(org_repo, next_pr[org_repo], noon)
                pending.setdefault(org_repo, []).append(next_pr[org_repo])
            # The main branch's scans make up the day's ten (2.5 a day on average).
            for _ in range(max(1, SCANS_PER_REPO_DAY - PR_SCANS * opened)):
                scan(org_repo, None, noon)
        # The nightly sweep: close the pull requests scanned three times, then retire.
        night = datetime(day.year, day.month, day.day, 23, tzinfo=UTC)
        now = night.isoformat().replace("+00:00", "Z")
        for org_repo, prs in sorted(pending.items()):
            for pr in [n for n in prs if tip[folder_of(org_repo, n)].scans >= PR_SCANS]:
                prs.remove(pr)
                merged.append(folder_of(org_repo, pr))
        for folder in merged:
            entry = tip[folder]
            case = entry.case
            pull = PullState(case.subject.pr, open=False, merged=True, closed_at=now, head_sha=None)
            swept = sweep_case(
                case,
                policy,
                today=day,
                now=now,
                state=RepoState(pulls={case.subject.pr: pull}, branches=None),
                baseline=None,
            )
            entry.case = swept.case
            files = {f"{folder}/{name}": data for name, data in dump_case(swept.case).items()}
            writer.commit(night, message(case.key, "closed (merged)"), files)
            closed[folder] = swept.case
            stats.commits += 1
            stats.closed += 1
        merged.clear()
        if retire_after is not None:
            for folder, case in sorted(closed.items()):
                due = retirement(case, days=retire_after, today=day, last_human_change=None)
                if due is None:
                    continue
                what = f"retired from the tip (closed, left alone {due.idle_days} day(s))"
                writer.commit(
                    night,
                    message(case.key, what, f"Securecase-Retired: {folder}\n"),
                    {},
                    (folder,),
                )
                del closed[folder], tip[folder]
                stats.commits += 1
                stats.retired += 1
    writer.close()
    return stats


def git(repo: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, env=env(), **kwargs
    )


def measure(repo: Path) -> dict[str, float]:
    """The tip and the repository, as the module docstring lists them."""
    listing = git(repo, "ls-tree", "-r", "-t", "-l", "-z", "main").stdout.split(b"\0")
    files = bytes_ = 0
    children: Counter[str] = Counter()
    folders = 0
    for entry in filter(None, listing):
        meta, _, path = entry.partition(b"\t")
        kind, size = meta.split()[1], meta.split()[3]
        name = path.decode()
        children[name.rpartition("/")[0]] += 1
        if kind == b"blob":
            files += 1
            bytes_ += int(size)
            folders += name.endswith("/case.yaml")
    largest, count = children.most_common(1)[0]
    objects = git(
        repo, "rev-list", "--objects", "--no-object-names", "--filter=blob:none", "--max-count=1",
        "main",
    ).stdout  # fmt: skip
    packed = git(repo, "pack-objects", "--stdout", "-q", input=objects).stdout
    git(repo, "gc", "-q", "--prune=now")
    sizes = dict(
        line.split(": ")
        for line in git(repo, "count-objects", "-v").stdout.decode().splitlines()
        if ": " in line
    )
    return {
        "folders": folders,
        "files": files,
        "bytes": bytes_,
        "largest_dir_entries": count,
        "largest_dir": largest,  # type: ignore[dict-item]
        "tip_trees_bytes": len(packed),
        "size_pack_kib": int(sizes["size-pack"]),
    }


def sweep_pass(repo: Path, work: Path, retire_after: int, days: int) -> tuple[float, float, str]:
    """Wall and CPU seconds of a real ``securecase sweep --dry-run`` on the result, and its
    summary line about retirement."""
    wall = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "securecase", "sweep", "--cases-repo", str(repo), "--dry-run"]
        + ["--retire-after", str(retire_after)],
        capture_output=True,
        text=True,
        env=env(
            SECURECASE_NOW=f"{START + timedelta(days=days - 1)}T23:30:00Z",
            SECURECASE_CACHE_DIR=str(work / "cache"),
            PYTHONPATH=str(ROOT / "bot"),
        ),
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - wall
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed: {proc.stderr}")
    line = next((x for x in proc.stdout.splitlines() if "the tip" in x), "nothing to retire")
    return wall, cpu, line


def run(mode: str, args: argparse.Namespace, work: Path) -> Iterator[str]:
    repo = work / f"cases-{mode}"
    retire = args.retire_after if mode == "on" else None
    wall, cpu = time.perf_counter(), cpu_seconds()
    stats = simulate(repo, args.repos, args.days, retire)
    built_wall, built_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    sweep_wall, sweep_cpu, sweep_line = sweep_pass(repo, work, args.retire_after, args.days)
    wall, cpu = time.perf_counter(), cpu_seconds()
    found = measure(repo)
    measure_wall, measure_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    scale = FULL_REPOS / args.repos
    yield f"## retirement {mode} ({args.repos} repositories, {args.days} days)"
    yield (
        f"scans {stats.scans:,}, commits {stats.commits:,}, closed {stats.closed:,}, "
        f"retired {stats.retired:,}"
    )
    yield (
        f"tip: {found['folders']:,} case folders, {found['files']:,} files, "
        f"{found['bytes'] / 1e6:,.1f} MB (x{scale:g}: {found['folders'] * scale:,.0f} folders, "
        f"{found['bytes'] * scale / 1e6:,.0f} MB)"
    )
    yield (
        f"largest directory: {found['largest_dir']} with {found['largest_dir_entries']:,} "
        "entries (per repository: does not grow with the number of repositories)"
    )
    yield (
        f"tip trees (depth-1 blob:none fetch): {found['tip_trees_bytes'] / 1e6:,.2f} MB "
        f"(x{scale:g}: {found['tip_trees_bytes'] * scale / 1e6:,.1f} MB)"
    )
    yield (
        f"after git gc: size-pack {found['size_pack_kib'] / 1024:,.1f} MiB "
        f"(x{scale:g}: {found['size_pack_kib'] * scale / 1024 / 1024:,.2f} GiB)"
    )
    yield (
        f"build {built_wall:,.0f} s wall / {built_cpu:,.0f} s CPU; measure + gc "
        f"{measure_wall:,.0f} s wall / {measure_cpu:,.0f} s CPU"
    )
    yield (
        f"real `sweep --dry-run --retire-after {args.retire_after}` on the result: "
        f"{sweep_wall:,.1f} s wall / {sweep_cpu:,.1f} s CPU: {sweep_line.strip()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=5)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--retire-after", type=int, default=30)
    parser.add_argument("--modes", default="on,off")
    parser.add_argument("--keep", type=Path, help="build the repositories here and keep them")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "bot"))
    work = args.keep or Path(tempfile.mkdtemp(prefix="growth-year-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for mode in args.modes.split(","):
            for line in run(mode, args, work):
                print(line, flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
