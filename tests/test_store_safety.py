"""A cases checkout shared with a human, stale locks, killed runs: nothing lost, nothing wedged.

Real CLI processes and real git commands race in one checkout; real lock files are left by
real processes that are then gone.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import TRIVY, bare_repo, clean_env, run_cli
from git_http import serve_git
from reportgen import TEMPLATE_FILES, big_report
from securecase.errors import ReportError
from securecase.storage.rawfile import GZIP_ABOVE, RawPacker, packed_raw, read_raw, stored_path
from securecase.storage.secrets import find_secrets, fingerprint_digest, masked_file

TOKEN = "ghs_test0123456789abcdefKILLED"
HUMAN = {
    **clean_env(),
    "GIT_AUTHOR_NAME": "Human",
    "GIT_AUTHOR_EMAIL": "human@example.com",
    "GIT_COMMITTER_NAME": "Human",
    "GIT_COMMITTER_EMAIL": "human@example.com",
}


def human_git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], env=HUMAN, capture_output=True, text=True, check=False
    )
    if check and proc.returncode:
        raise AssertionError(f"git {args}: {proc.stderr}")
    return proc


def commit_id(label: str) -> str:
    """A git commit id of its own for each label (the CLI takes hex ids only)."""
    return hashlib.sha1(label.encode()).hexdigest()


def ingest(cases: Path | str, report: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    given = list(args)
    for n, arg in enumerate(given[:-1]):
        if arg == "--commit":
            given[n + 1] = commit_id(given[n + 1])
    if "--pr" in given:
        given += ["--target-branch", "main"]
    return subprocess.Popen(
        [sys.executable, "-m", "securecase", "ingest", str(report), "--cases-repo", str(cases)]
        + ["--repo", "acme/shop", "--report", "none", "--output", "json", *given],
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def a_dead_pid() -> int:
    """The id of a process that existed and is gone (reaped)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def human_loop(repo: Path, stop: threading.Event, landed: list[str], failures: list[str]) -> None:
    """Commit unrelated files one by one until told to stop, retrying as a person would."""
    n = 0
    while not stop.is_set() or n < 5:
        name = f"notes/human-{n}.txt"
        (repo / "notes").mkdir(exist_ok=True)
        (repo / name).write_text(f"note {n}\n")
        for _ in range(400):
            added = human_git(repo, "add", "--", name, check=False)
            if added.returncode == 0:
                done = human_git(repo, "commit", "-q", "-m", f"human {n}", check=False)
                if done.returncode == 0:
                    landed.append(name)
                    break
                failures.append(done.stderr.strip().splitlines()[-1] if done.stderr else "")
            time.sleep(0.02)
        else:
            raise AssertionError(f"the human could never commit {name}")
        n += 1


def test_forty_ingests_race_a_human_committing_in_the_same_checkout(tmp_path: Path) -> None:
    repo = tmp_path / "cases"
    repo.mkdir()
    human_git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("our cases\n")
    human_git(repo, "add", "README.md")
    human_git(repo, "commit", "-q", "-m", "start")
    stop, landed, failures = threading.Event(), list[str](), list[str]()
    human = threading.Thread(target=human_loop, args=(repo, stop, landed, failures))
    human.start()
    # 40 runs: 20 pull requests of their own, and 20 runs sharing 4 pull requests (new sources
    # and rescans of the same case), at most 6 processes at a time on this small machine.
    runs: list[tuple[str, ...]] = [("--pr", str(100 + n), "--commit", f"c{n}") for n in range(20)]
    runs += [
        ("--pr", str(1 + n % 4), "--source", f"scan-{n % 3}", "--commit", f"s{n}")
        for n in range(20)
    ]
    results = []
    try:
        pending = list(enumerate(runs))
        active: list[subprocess.Popen[str]] = []
        while pending or active:
            while pending and len(active) < 6:
                n, args = pending.pop(0)
                # one artifact per source slot: a slot's report is always the same image's
                report = TEMPLATE_FILES[n % 5 if n < 20 else (n - 20) % 3]
                active.append(ingest(repo, TRIVY / report, *args))
            proc = active.pop(0)
            out, err = proc.communicate(timeout=300)
            results.append((proc.returncode, out, err))
    finally:
        stop.set()
        human.join(timeout=300)
    assert [err for code, _, err in results if code not in (0, 1)] == []
    commits = [json.loads(out)["cases_commit"] for _, out, _ in results]
    assert all(json.loads(out)["committed"] for _, out, _ in results)
    # every bot update is in HEAD's history ...
    history = set(human_git(repo, "rev-list", "HEAD").stdout.split())
    assert set(commits) <= history and len(set(commits)) == 40
    # ... and in the final tree: no human commit changed a case file (a revert would)
    for line in human_git(repo, "log", "--author=Human", "--format=%H").stdout.split():
        changed = human_git(
            repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "--root", line
        ).stdout.split()
        assert all(not path.startswith("cases/") for path in changed), changed
    # the human's commits all landed, and index and work tree match HEAD
    assert len(landed) >= 5
    tree = set(human_git(repo, "ls-tree", "-r", "--name-only", "HEAD").stdout.split())
    assert set(landed) <= tree
    assert human_git(repo, "status", "--porcelain").stdout == ""
    assert not (repo / ".git" / "index.lock").exists()


# -- stale locks ----------------------------------------------------------------------------

TAKE_AND_DIE = """
import os, signal, sys
from securecase.storage.locks import GitLock
repo, path = sys.argv[1], sys.argv[2]
lock = GitLock(os.path.join(repo, ".git", "index"),
               os.path.join(repo, ".git", "securecase-index-owner.json"), repo + "-scratch")
lock.acquire(float("inf"), what="test"); lock.note("0" * 40, (path,))
print(os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_index_lock_left_by_a_dead_run_is_removed_and_said(tmp_path: Path) -> None:
    repo, case = tmp_path / "cases", "cases/github/acme/shop/pr-1"
    first = ingest(repo, TRIVY / TEMPLATE_FILES[0], "--pr", "1", "--commit", "a1")
    assert first.communicate(timeout=120) and first.returncode in (0, 1)
    (tmp_path / "cases-scratch").mkdir()
    died = subprocess.run(
        [sys.executable, "-c", TAKE_AND_DIE, str(repo), f"{case}/case.yaml"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    pid = int(died.stdout)
    lock = repo / ".git" / "index.lock"
    assert died.returncode == -9 and lock.exists()
    # a human's git command is refused by it, as by any index.lock
    assert human_git(repo, "add", "README.md", check=False).returncode != 0
    second = ingest(repo, TRIVY / TEMPLATE_FILES[1], "--pr", "1", "--commit", "a2")
    out, err = second.communicate(timeout=120)
    assert second.returncode in (0, 1), err
    assert f"removed {lock} left by securecase run {pid} (no longer running)" in err
    assert json.loads(out)["committed"] and not lock.exists()
    assert human_git(repo, "status", "--porcelain").stdout == ""


def test_a_bare_repo_with_a_stale_ref_lock_names_the_file(tmp_path: Path) -> None:
    bare = tmp_path / "cases.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    first = ingest(bare, TRIVY / TEMPLATE_FILES[0], "--pr", "1", "--commit", "a1")
    assert first.communicate(timeout=120) and first.returncode in (0, 1)
    lock = bare / "refs" / "heads" / "main.lock"
    lock.write_text("")
    os.utime(lock, (time.time() - 600, time.time() - 600))
    start = time.monotonic()
    run = ingest(bare, TRIVY / TEMPLATE_FILES[1], "--pr", "2", "--push-timeout", "2")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 3 and time.monotonic() - start < 60
    assert re.search(re.escape(str(lock)) + r" \(6\d\ds old\) in the bare repository blocks", err)


def test_a_committed_symlink_is_refused_with_that_reason(tmp_path: Path) -> None:
    repo = tmp_path / "cases"
    first = ingest(repo, TRIVY / TEMPLATE_FILES[0], "--pr", "1", "--commit", "a1")
    out, err = first.communicate(timeout=120)
    assert first.returncode in (0, 1), err
    folder = json.loads(out)["case_path"].rsplit("/", 1)[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    human_git(repo, "rm", "-r", "-q", folder)
    (repo / folder).parent.mkdir(parents=True, exist_ok=True)
    (repo / folder).symlink_to(elsewhere)
    human_git(repo, "add", folder)
    human_git(repo, "commit", "-q", "-m", "a link")
    run = ingest(repo, TRIVY / TEMPLATE_FILES[1], "--pr", "1", "--commit", "a2")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 3, err
    assert f"{folder} is a symbolic link committed in the cases repo" in err
    assert "uncommitted changes" not in err
    assert list(elsewhere.iterdir()) == []  # nothing written through the link


def test_the_securecase_lock_names_its_holder(tmp_path: Path) -> None:
    repo = tmp_path / "cases"
    first = ingest(repo, TRIVY / TEMPLATE_FILES[0], "--pr", "1", "--commit", "a1")
    assert first.communicate(timeout=120) and first.returncode in (0, 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RUN_LOCK, str(repo / ".git" / "securecase.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        run = ingest(repo, TRIVY / TEMPLATE_FILES[1], "--pr", "2", "--push-timeout", "1")
        _, err = run.communicate(timeout=60)
    finally:
        holder.kill()
        holder.communicate()
    assert run.returncode == 3
    assert f"(pid {holder.pid} on " in err and "securecase.lock (" in err


HOLD_RUN_LOCK = """
import fcntl, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\\n".encode(), 0)
print("held", flush=True)
time.sleep(120)
"""


# -- temporary clones of killed runs ------------------------------------------------------------


def test_a_killed_remote_ingest_leaves_a_clone_the_next_run_removes(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    bare_repo(root / "cases.git")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch), "SECURECASE_CASES_TOKEN": TOKEN}
    with serve_git(root, user="x-access-token", token=TOKEN) as server:
        server.hold_pushes = True
        victim = ingest(server.url, TRIVY / TEMPLATE_FILES[0], "--pr", "1", **env)
        assert server.pushing.wait(timeout=120), "the ingest never pushed"
        runs = list(scratch.glob(f"securecase-{os.getuid()}/run-{victim.pid}-*"))
        assert len(runs) == 1 and (runs[0] / "repo" / ".git").is_dir()
        victim.kill()
        victim.communicate()
        server.hold_pushes = False
        server.release.set()
        time.sleep(0.5)  # the orphaned git push finishes (or fails) on its own
        assert runs[0].exists()  # nothing cleaned up after the kill
        after = ingest(server.url, TRIVY / TEMPLATE_FILES[1], "--pr", "2", **env)
        out, err = after.communicate(timeout=120)
    assert after.returncode in (0, 1), err
    assert f"removed {runs[0]}, the temporary clone of a run (pid {victim.pid})" in err
    assert list(scratch.rglob("run-*")) == []
    parent = scratch / f"securecase-{os.getuid()}"
    assert parent.stat().st_mode & 0o777 == 0o700
    assert [p for p in scratch.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()] == []


# -- secrets in every stored byte -----------------------------------------------------------

REALWORLD = Path(__file__).parent / "fixtures" / "realworld"
EXAMPLE_KEYS = [
    b"AKIAIOSFODNN7EXAMPLE",
    b"AKIAIOSFODNN7EXAMAAA",
    b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMAAAKEY",
]


def all_object_bytes(repo: Path) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
        env=clean_env(),
    ).stdout


@pytest.mark.parametrize("kind", ["local", "remote"])
def test_no_key_byte_of_real_iac_reports_reaches_the_cases_repo(tmp_path: Path, kind: str) -> None:
    if kind == "remote":
        repo = tmp_path / "cases.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    else:
        repo = tmp_path / "cases"
    history = sorted((REALWORLD / "checkov-terragoat-history").glob("*.sarif"))
    reports = [*history[:3], history[16]]  # AWS example keys inside non-secret results
    assert all(any(key in r.read_bytes() for key in EXAMPLE_KEYS) for r in reports)
    for n, report in enumerate(reports):
        run = ingest(repo, report, "--branch", "main", "--commit", f"c{n}")
        _, err = run.communicate(timeout=180)
        assert run.returncode in (0, 1), err
    stored = all_object_bytes(repo)
    assert [key for key in EXAMPLE_KEYS if key in stored] == []
    assert b"AKIA****************" in stored  # masked, not dropped
    # the stored raw reports are still the scanner's format, every result kept
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    raws = [p for p in listed if "/raw/" in p]
    assert raws
    for path in raws:
        blob = subprocess.run(
            ["git", "-C", str(repo), "show", f"main:{path}"], capture_output=True, check=True
        ).stdout
        doc = json.loads(blob)
        assert doc  # valid JSON after masking
    if kind == "local":  # the digest a case records is the stored (masked) report's
        valid = run_cli("cases", "validate", "--cases-repo", repo, cwd=repo.parent)
        assert valid.returncode == 0, valid.stdout + valid.stderr


def test_secret_fingerprints_are_hashed_and_files_stay_valid() -> None:
    log = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "gitleaks"}},
                "results": [
                    {
                        "ruleId": "aws-access-token",
                        "message": {"text": "key AKIAIOSFODNN7EXAMPLE found"},
                        "partialFingerprints": {"secret/v1": "AKIAIOSFODNN7EXAMPLE:cfg.env:3"},
                    },
                    {
                        "ruleId": "generic-secret",
                        "message": {"text": "a secret"},
                        "partialFingerprints": {"commitSha": "fp-of-a-secret-rule"},
                    },
                    {
                        "ruleId": "CKV_AWS_1",
                        "message": {"text": "open bucket"},
                        "partialFingerprints": {"hash": "kept-as-is"},
                    },
                ],
            }
        ],
    }
    stored = masked_file("raw/gitleaks.sarif", json.dumps(log, indent=1).encode())
    doc = json.loads(stored)
    results = doc["runs"][0]["results"]
    assert b"AKIAIOSFODNN7EXAMPLE" not in stored
    assert results[0]["message"]["text"] == "key AKIA**************** found"
    assert results[0]["partialFingerprints"]["secret/v1"] == fingerprint_digest(
        "AKIAIOSFODNN7EXAMPLE:cfg.env:3"
    )
    assert results[1]["partialFingerprints"]["commitSha"].startswith("sha256:")
    assert results[2]["partialFingerprints"]["hash"] == "kept-as-is"
    xml = b'<r><alert evidence="AKIAIOSFODNN7EXAMPLE">x</alert></r>'
    assert (
        masked_file("raw/zap.xml", xml)
        == b'<r><alert evidence="AKIA****************">x</alert></r>'
    )
    yml = b"title: 'token AKIAIOSFODNN7EXAMPLE'\n"
    assert masked_file("c/case.yaml", yml) == b"title: 'token AKIA****************'\n"
    unchanged = b'{"a": "nothing to see"}'
    assert masked_file("raw/x.json", unchanged) is unchanged


def test_hundreds_of_distinct_keys_are_all_masked_in_one_report() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_uppercase + string.digits
    keys = ["AKIA" + "".join(rng.choice(alphabet) for _ in range(16)) for _ in range(300)]
    data = json.dumps({"results": [{"code": f"key = {k}", "n": n} for n, k in enumerate(keys)]})
    stored = masked_file("raw/x.json", data.encode())
    assert [k for k in keys if k.encode() in stored] == []
    assert stored.count(b"AKIA****************") == 300
    assert len(json.loads(stored)["results"]) == 300


def test_a_report_that_is_not_utf8_is_scanned_and_its_other_bytes_kept() -> None:
    latin1 = "café: AWS key AKIAIOSFODNN7EXAMPLE, résumé\n".encode("latin-1")
    assert masked_file("raw/x.txt", latin1) == (
        "café: AWS key AKIA****************, résumé\n".encode("latin-1")
    )


def test_quoted_values_assigned_to_password_names_are_found_in_any_case() -> None:
    assert find_secrets('DB_PassWord = "s3cr3tValue!"') == {"s3cr3tValue!"}
    assert find_secrets("hardcoded password: 'this cool password'") == {"this cool password"}
    assert find_secrets('title = "s3cr3tValue!"') == set()


# -- growth -------------------------------------------------------------------------------------


def test_large_raw_reports_are_stored_gzip_compressed_and_deterministic(tmp_path: Path) -> None:
    report = tmp_path / "big.json"
    report.write_bytes(big_report(3000))
    assert report.stat().st_size > GZIP_ABOVE
    repo = tmp_path / "cases"
    blobs = []
    for commit in ("a1", "a2"):
        run = ingest(repo, report, "--branch", "main", "--commit", commit)
        out, err = run.communicate(timeout=300)
        assert run.returncode in (0, 1), err
        case = json.loads(out)["case_path"].rsplit("/", 1)[0]
        raws = list((repo / case / "raw").iterdir())
        assert len(raws) == 1 and raws[0].name.endswith(".json.gz")
        blobs.append(human_git(repo, "rev-parse", f"HEAD:{case}/raw/{raws[0].name}").stdout)
        stored = raws[0].read_bytes()
        assert stored[4:8] == b"\0\0\0\0"  # gzip MTIME 0: no time stamp
        assert json.loads(read_raw(raws[0].name, stored)) == json.loads(report.read_bytes())
        assert len(stored) < report.stat().st_size / 5
    assert blobs[0] == blobs[1]  # same report, same bytes
    # cases validate checks the report's digest through gzip, as received.
    valid = run_cli("cases", "validate", "--cases-repo", repo, cwd=repo.parent)
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_a_report_too_large_even_compressed_is_refused_with_a_hint() -> None:
    noise = os.urandom(1_500_000)  # does not compress
    assert stored_path("c/raw/trivy.json", noise) == "c/raw/trivy.json.gz"
    with pytest.raises(ReportError) as info:
        packed_raw(noise, origin="report trivy", limit=1_000_000)
    assert "report trivy" in str(info.value) and "split the scan" in (info.value.hint or "")
    assert info.value.exit_code == 2
    assert stored_path("c/raw/trivy.json", b"{}") == "c/raw/trivy.json"


def test_a_report_compressed_in_the_background_is_the_one_stored() -> None:
    report = big_report(3000)
    masked = bytes(report)  # equal bytes, another object: what masking returns unchanged
    packer = RawPacker()
    packer.start(report)
    packed = packer.packed(masked)
    assert gzip.decompress(packed) == report
    assert packed == packed_raw(report, origin="report trivy")  # the same deterministic bytes
    changed = report.replace(b"CVE-", b"CVX-")
    assert gzip.decompress(packer.packed(changed)) == changed  # not the background result
    packer.start(b"{}")  # small: stored as it is, nothing started
    assert gzip.decompress(packer.packed(b"{}")) == b"{}"
