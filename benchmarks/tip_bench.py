"""What an ingest, `cases list` and `cases history` fetch through a URL as the tip grows (issue 18).

Cases repos of 1,000 / 10,000 / 100,000 cases at the tip are built with `git fast-import` in
bare repositories: 1,000 real case folders made by the real code (`policy_diff_bench.py`'s
generator: real Trivy reports, the real merge, policy and dumper, each folder with its
`case.yaml`, `findings.json` and raw report), repeated under other repository names for the
larger repos (the repository name rewritten inside the case files, so every folder is a
valid case of its own). The repo then gets `--history` more commits, one an hour, each adding a
file to the raw folder of a random case (a busy repo's history, without touching case files).

They are served over real HTTP (`git http-backend` behind Basic auth, as in the tests, with
filters allowed like GitHub), and the real CLI runs against the URL as a process:

- `ingest` of a real Trivy report into a new pull request of an existing repository (its
  `main` case is the baseline), `--repeat` times: bytes the server sent, wall and CPU seconds
  (the process and its git children, from `wait4`: what the load of a shared machine does not
  inflate). Target (issue 18): flat within 2x from 1,000 to 100,000 cases.
- on the 10,000-case repo: `cases list --no-cache` and `cases history` of one case (all of
  it, then `--since` the last day), with their bytes.

`--baseline DIR` runs the same with the package in DIR (e.g. an older commit's `bot` folder).

`--repos-per-org N` spreads the repositories over organisations of N (default: all 10,000 in
one organisation, whose folder then lists them all).

Usage: python benchmarks/tip_bench.py [--sizes 1000,10000,100000] [--repeat 3]
       [--history 200] [--repos-per-org 0] [--keep DIR] [--baseline /path/to/old/bot]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
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
sys.path.insert(0, str(ROOT / "tests"))
from git_http import GitHttpServer, serve_git  # noqa: E402
from policy_diff_bench import PRS_PER_REPO, generate_cases  # noqa: E402

TOKEN = "ghs_bench0123456789abcdef"
REPORT = ROOT / "tests" / "fixtures" / "trivy" / "debian-buster.json"
POOL = 1000  # real case folders generated; larger repos repeat them under other names


def env(**extra: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    clean.update(extra)
    return clean


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=data, capture_output=True, check=True, env=env()
    )
    return done.stdout.decode().strip()


def org_of(repo_index: int, per_org: int) -> str:
    """The organisation of the ``repo_index``-th repository: all in ``acme`` (per_org 0),
    else ``per_org`` repositories in each ``org-NNNN``."""
    return "acme" if per_org == 0 else f"org-{repo_index // per_org:04d}"


def renamed(data: bytes, old: tuple[str, str], new: tuple[str, str]) -> bytes:
    """A case file of repository ``old`` (org, name) made one of ``new``: the key, the
    subject's fields and the paths that name them."""
    for before, after in [
        ("::{}::{}::", "::{}::{}::"),
        ("/{}/{}/", "/{}/{}/"),
    ]:
        data = data.replace(before.format(*old).encode(), after.format(*new).encode())
    data = data.replace(f"org: {old[0]}\n".encode(), f"org: {new[0]}\n".encode())
    return data.replace(f"repo: {old[1]}\n".encode(), f"repo: {new[1]}\n".encode())


def build(bare: Path, count: int, history: int, per_org: int, work: Path) -> None:
    """A bare repo of ``count`` cases in one commit, then ``history`` small commits."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True, env=env())
    git(bare, "config", "uploadpack.allowFilter", "true")
    pool = list(generate_cases(min(count, POOL), work))
    proc = subprocess.Popen(
        ["git", "-C", str(bare), "fast-import", "--quiet"], stdin=subprocess.PIPE, env=env()
    )
    assert proc.stdin is not None
    out = proc.stdin
    marks: dict[bytes, int] = {}

    def blob(data: bytes) -> int:
        digest = hashlib.sha256(data).digest()
        if digest not in marks:
            marks[digest] = len(marks) + 1
            out.write(b"blob\nmark :%d\ndata %d\n" % (marks[digest], len(data)) + data + b"\n")
        return marks[digest]

    entries = []
    folders = []
    for index in range(count):
        made = pool[index % len(pool)]
        # The same slot (main or PR n) of another repository: its names rewritten throughout.
        old = ("acme", f"svc-{(index % len(pool)) // (PRS_PER_REPO + 1):03d}")
        repo_index = index // (PRS_PER_REPO + 1)
        new = (org_of(repo_index, per_org), f"svc-{repo_index:03d}")
        folder = made.folder.replace("/{}/{}/".format(*old), "/{}/{}/".format(*new))
        folders.append(folder)
        raw_path = made.raw_path.replace("/{}/{}/".format(*old), "/{}/{}/".format(*new))
        entries.append(b"M 100644 :%d %s\n" % (blob(made.raw), raw_path.encode()))
        for name, data in made.files.items():
            mark = blob(renamed(data, old, new))
            entries.append(b"M 100644 :%d %s/%s\n" % (mark, folder.encode(), name.encode()))
    policy = blob((ROOT / "bot/securecase/data/default-policy.yaml").read_bytes())
    entries.append(b"M 100644 :%d policy.yaml\n" % policy)
    stamp = 1793520000
    message = f"{count:,} cases\n".encode()
    out.write(b"commit refs/heads/main\ncommitter bench <bench@example.com> %d +0000\n" % stamp)
    out.write(b"data %d\n" % len(message) + message)
    out.writelines(entries)
    rng = random.Random(18)
    for n in range(history):
        folder = rng.choice(folders)
        message = f"note {n}\n".encode()
        note = blob(f'{{"note": {n}, "pad": "{rng.randbytes(300).hex()}"}}\n'.encode())
        out.write(
            b"commit refs/heads/main\ncommitter bench <bench@example.com> %d +0000\n"
            % (stamp + 3600 * (n + 1))
        )
        out.write(b"data %d\n" % len(message) + message)
        out.write(b"M 100644 :%d %s/raw/note-%d.json\n" % (note, folder.encode(), n))
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    down: int  # bytes the server sent
    out: bytes


def run(argv: list[str], server: GitHttpServer, work: Path, bot: Path | None) -> Run:
    """One CLI process against the server, to its end."""
    extra = {"SECURECASE_CASES_TOKEN": TOKEN, "TMPDIR": str(work)}
    if bot is not None:
        extra["PYTHONPATH"] = str(bot)
    before = server.bytes_sent()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "securecase", *argv, "--cases-repo", server.url],
            cwd=work,
            env=env(**extra),
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            err.seek(0)
            raise SystemExit(f"{argv[:3]} failed ({code}): {err.read()[-800:]!r}")
        out.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, server.bytes_sent() - before, out.read())


def ingest_args(pr: int, org: str) -> list[str]:
    return [
        "ingest",
        str(REPORT),
        *("--repo", f"{org}/svc-000", "--pr", str(pr), "--target-branch", "main"),
        *("--commit", hashlib.sha1(str(pr).encode(), usedforsecurity=False).hexdigest()),
        *("--report", "none"),
    ]


def fmt(runs: list[Run]) -> str:
    wall = statistics.median(r.wall for r in runs)
    cpu = statistics.median(r.cpu for r in runs)
    down = statistics.median(r.down for r in runs)
    return f"{down / 1024:9.1f} KiB  {wall:6.2f} s wall  {cpu:6.2f} s CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--history", type=int, default=200, help="commits after the big one")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--baseline", type=Path, help="a package folder to time as 'before'")
    parser.add_argument(
        "--repos-per-org",
        type=int,
        default=0,
        help="spread the repositories over organisations of this many (0: all in one)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    keep = args.keep or Path(tempfile.mkdtemp(prefix="tip-bench-"))
    srv = keep / "srv"
    srv.mkdir(parents=True, exist_ok=True)
    work = keep / "work"
    work.mkdir(exist_ok=True)
    versions = [("after", None)] + ([("before", args.baseline)] if args.baseline else [])
    ingest: dict[tuple[str, int], list[Run]] = {}
    try:
        for size in sizes:
            spread = f"-{args.repos_per_org}-per-org" if args.repos_per_org else ""
            bare = srv / f"tip-{size}{spread}.git"
            if not bare.exists():
                start = time.perf_counter()
                with tempfile.TemporaryDirectory(dir=keep) as scratch:
                    build(bare, size, args.history, args.repos_per_org, Path(scratch))
                print(f"built {size:,} cases in {time.perf_counter() - start:.0f} s", flush=True)
            # the server serves "cases.git": this size's repository, reset after the runs
            link = srv / "cases.git"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(bare.name)
            tip = git(bare, "rev-parse", "main")
            org = org_of(0, args.repos_per_org)
            key = f"github::{org}::svc-000::PR::101"
            with serve_git(srv, user="x-access-token", token=TOKEN) as server:
                for label, bot in versions:
                    runs = [
                        run(ingest_args(9000 + n, org), server, work, bot)
                        for n in range(args.repeat)
                    ]
                    ingest[label, size] = runs
                    print(f"{label:6} ingest  {size:>7,} cases  {fmt(runs)}", flush=True)
                    git(bare, "update-ref", "refs/heads/main", tip)
                    if size == 10_000:
                        for name, argv in [
                            ("cases list", ["cases", "list", "--no-cache"]),
                            ("history", ["cases", "history", key]),
                            (
                                "history --since",
                                ["cases", "history", key, "--since", "2026-11-08"],
                            ),
                        ]:
                            if bot is not None and "--since" in argv:
                                continue  # an option the baseline may not have
                            print(f"{label:6} {name:15} {fmt([run(argv, server, work, bot)])}")
            link.unlink()
    finally:
        if args.keep is None:
            shutil.rmtree(keep, ignore_errors=True)
    for label, _ in versions:
        downs = [statistics.median(r.down for r in ingest[label, s]) for s in sizes]
        walls = [statistics.median(r.wall for r in ingest[label, s]) for s in sizes]
        print(
            f"{label}: ingest bytes {sizes[-1]:,}/{sizes[0]:,} = {downs[-1] / downs[0]:.2f}x, "
            f"wall {walls[-1] / walls[0]:.2f}x (target <= 2x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
