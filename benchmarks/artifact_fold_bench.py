"""A burst of GitHub-hosted scans whose queued records outlive their machines as artifacts.

``--scans`` real ``securecase ingest`` processes (default 50, one pull request each, a real
Trivy report) run from ``--writers`` concurrent writers (default 16) against a GitHub-like bare
remote that takes at most ``--budget`` pushes a minute (tests/githublike.py). Each scan plays a
GitHub-hosted job: its own fresh queue folder, and, when its record is queued, the entry folder
zipped as ``actions/upload-artifact`` does and stored as the artifact
``securecase-record-<entry id>`` in the local GitHub stand-in (tests/fake_github.py, every
request checked against GitHub's OpenAPI description); then the job's folder is deleted.
Then ``securecase sweep --fold-artifacts`` runs once the remote's budget has room, and once
more to show it changes nothing.

Printed: decisions reported, records queued as artifacts, records landed (each pull request's
``Securecase-Case`` trailer on ``main``), artifacts left, pushes the sweep made (the hook's
log), its API requests by operation, wall and CPU seconds (securecase and its git children) of
the burst and of each sweep, and the machine's load.

Usage: python benchmarks/artifact_fold_bench.py [--scans 50] [--writers 16] [--budget 6]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "examples" / "reports" / "trivy-debian-buster.json"
sys.path.insert(0, str(ROOT / "tests"))

from fake_github import TOKEN, FakeGitHub, serve  # noqa: E402
from githublike import githublike_remote  # noqa: E402


def env(**extra: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SECURECASE_", "GITHUB_"))
    }
    clean["SECURECASE_NOW"] = "2027-01-10T00:00:00Z"
    clean.update(extra)
    return clean


def hosted_scan(url: str, machine: Path, pr: int) -> dict[str, str]:
    """One hosted job's ingest; its JSON output (empty on a failure)."""
    machine.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "securecase", "ingest", str(REPORT), "--cases-repo", url]
        + ["--repo", "acme/shop", "--pr", str(pr), "--target-branch", "main"]
        + ["--commit", f"{pr:040x}", "--report", "none", "--output", "json"]
        + ["--push-timeout", "60"],
        env=env(SECURECASE_QUEUE_DIR=str(machine / "queue"), SECURECASE_QUEUE_ARTIFACT="true"),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        print(f"  pr {pr}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return {}
    data: dict[str, str] = json.loads(proc.stdout)
    return data


def zipped(folder: Path) -> bytes:
    """The zip actions/upload-artifact makes of a folder: its files at the root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    return buffer.getvalue()


def sweep(url: str, fake: FakeGitHub, workdir: Path) -> tuple[dict[str, object], float, float]:
    """One ``securecase sweep --fold-artifacts``: its JSON, wall and CPU seconds."""
    cpu = _children_cpu()
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "securecase", "sweep", "--cases-repo", url, "--output", "json"]
        + ["--fold-artifacts", "--queue-dir", "off", "--push-timeout", "60"],
        env=env(GITHUB_TOKEN=TOKEN, GITHUB_API_URL=fake.base_url),
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
    )
    wall = time.monotonic() - start
    if proc.returncode != 0:
        print(f"  sweep: exit {proc.returncode}: {proc.stderr.strip()[-500:]}", file=sys.stderr)
    data: dict[str, object] = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return data, wall, _children_cpu() - cpu


def landed(remote_path: Path) -> set[str]:
    out = subprocess.run(
        ["git", "-C", str(remote_path), "log", "--format=%(trailers:key=Securecase-Case,valueonly)"]
        + ["main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--budget", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        remote = githublike_remote(root / "cases.git", pushes_per_window=args.budget)
        for fake in serve(FakeGitHub()):
            cpu = _children_cpu()
            start = time.monotonic()
            with ThreadPoolExecutor(args.writers) as pool:
                results = list(
                    pool.map(
                        lambda pr: (pr, hosted_scan(remote.url, root / f"job-{pr}", pr)),
                        range(1, args.scans + 1),
                    )
                )
            burst_wall, burst_cpu = time.monotonic() - start, _children_cpu() - cpu
            queued = 0
            for pr, out in results:
                if out.get("recorded") == "queued":
                    queue = root / f"job-{pr}" / "queue"
                    folder = next(queue.glob(f"records/*/{out['queued']}"))
                    name = "securecase-record-" + out["queued"]
                    fake.add_artifact("acme", "shop", name, zipped(folder), run_id=1000 + pr)
                    queued += 1
                shutil.rmtree(root / f"job-{pr}")  # the hosted machine is gone
            decided = sum(1 for _, out in results if out.get("decision"))
            remote.wait_for_budget()
            pushes_before = remote.pushes()
            fake.requests.clear()
            first, wall, cpu_first = sweep(remote.url, fake, root)
            calls = Counter(r.operation for r in fake.requests if "artifact" in r.operation)
            pushes = remote.pushes() - pushes_before
            again, wall2, cpu_again = sweep(remote.url, fake, root)
            keys = landed(remote.path)
            assert fake.violations == [], fake.violations
            print(
                f"scans                {args.scans} from {args.writers} writers, budget "
                f"{args.budget} pushes/min"
            )
            print(f"decisions reported   {decided}/{args.scans}")
            print(f"queued as artifacts  {queued}")
            print(f"records landed       {len(keys)}/{args.scans}")
            print(f"artifacts left       {len(fake.artifacts('acme', 'shop'))}")
            print(f"burst                wall {burst_wall:.1f} s, CPU {burst_cpu:.1f} s")
            folded = first.get("artifacts", {})
            assert isinstance(folded, dict)
            print(
                f"sweep 1              wall {wall:.1f} s, CPU {cpu_first:.1f} s; "
                f"{len(folded.get('landed', []))} landed, {folded.get('commits')} commits, "
                f"{pushes} push(es); API: {dict(sorted(calls.items()))}"
            )
            folded2 = again.get("artifacts", {})
            assert isinstance(folded2, dict)
            print(
                f"sweep 2              wall {wall2:.1f} s, CPU {cpu_again:.1f} s; "
                f"{folded2.get('commits')} commits, {len(folded2.get('deleted', []))} deleted"
            )
            print(f"load                 {os.getloadavg()[0]:.1f}")


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child and the git commands it ran."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
