"""Parsing many case.yaml files in worker processes (storage/caseparse.py): the same results
as in process, in order, errors naming file and line; workers that never outlive the run; a
cold listing of over a thousand cases through the real CLI that matches the in-process one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, clean_env, git, run_cli
from securecase.errors import CaseFileError
from securecase.services.catalog import CaseFilter, list_cases
from securecase.storage import caseparse
from securecase.storage.parsecache import no_cache

GOLDEN_CASE = (ROOT / "tests/golden/case/pr-42.case.yaml").read_text()
GOLDEN_FINDINGS = (ROOT / "tests/golden/case/pr-42.findings.json").read_bytes()
STATUSES = ("NEW", "TRIAGED", "IN_PROGRESS", "CLOSED")


def _case_yaml(pr: int) -> str:
    """The golden case as pull request ``pr`` of acme/shop (a valid case file of its own)."""
    text = GOLDEN_CASE.replace("shop::PR::42", f"shop::PR::{pr}").replace("pr: 42", f"pr: {pr}")
    return text.replace("status: NEW", f"status: {STATUSES[pr % len(STATUSES)]}")


#: Ways a human breaks a case.yaml, each found by a different check: YAML syntax, the schema,
#: the refusal of aliases, duplicate keys.
BREAKAGES = {
    7: lambda text: text.replace("\nstatus: ", "\nstatus: ["),
    301: lambda text: text.replace("decision: block", "decision: 12"),
    655: lambda text: text.replace("assignee: null", "assignee: &a x\n  notes_again: *a"),
    1010: lambda text: text.replace("reopened: 0", "reopened: 0\nreopened: 1"),
}


def _files(count: int) -> list[tuple[str, bytes]]:
    """(folder, case.yaml bytes) of ``count`` cases, the ones in BREAKAGES broken."""
    found = []
    for pr in range(1, count + 1):
        text = _case_yaml(pr)
        if pr in BREAKAGES:
            text = BREAKAGES[pr](text)
            assert text != _case_yaml(pr)
        found.append((f"cases/github/acme/shop/pr-{pr}", text.encode()))
    return found


def _plain(parsed: dict[str, Any] | CaseFileError | None) -> Any:
    if isinstance(parsed, CaseFileError):
        return {"error": parsed.message, "problems": list(parsed.problems), "hint": parsed.hint}
    return parsed


# Run in a process of its own: the pool forks, and pytest's process may hold threads.
POOL_SCRIPT = """
import json, multiprocessing, sys
from pathlib import Path
from securecase.errors import CaseFileError
from securecase.storage.caseparse import parse_case_yamls

listed = json.loads(Path(sys.argv[1]).read_text())
files = ((n, folder, None if text is None else text.encode(), 0) for n, (folder, text) in
         enumerate(listed))
workers, results = set(), []
for tag, parsed in parse_case_yamls(files, workers=2):
    workers.update(child.pid for child in multiprocessing.active_children())
    if isinstance(parsed, CaseFileError):
        parsed = {"error": parsed.message, "problems": list(parsed.problems),
                  "hint": parsed.hint}
    results.append([tag, parsed])
print(json.dumps({"workers": len(workers), "results": results}))
"""


def test_workers_give_the_in_process_results_in_order_errors_with_file_and_line(
    tmp_path: Path,
) -> None:
    files = _files(1200)
    # Files given without bytes (their documents cached) come back as None, in place.
    listed = [
        (folder, None if n % 50 == 3 else data.decode()) for n, (folder, data) in enumerate(files)
    ]
    (tmp_path / "files.json").write_text(json.dumps(listed))
    proc = subprocess.run(
        [sys.executable, "-c", POOL_SCRIPT, str(tmp_path / "files.json")],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
        check=True,
    )
    pooled = json.loads(proc.stdout)
    assert pooled["workers"] == 2
    in_process = [
        [n, _plain(parsed)]
        for n, parsed in caseparse.parse_case_yamls(
            (
                (n, folder, None if text is None else text.encode(), 0)
                for n, (folder, text) in enumerate(listed)
            ),
            workers=1,
        )
    ]
    assert pooled["results"] == in_process
    assert [n for n, parsed in in_process if parsed is None] == list(range(3, 1200, 50))
    errors = {n + 1: parsed for n, parsed in in_process if parsed and "error" in parsed}
    assert sorted(errors) == sorted(BREAKAGES)
    for pr, error in errors.items():
        assert error["error"].startswith(f"cases/github/acme/shop/pr-{pr}/case.yaml: ")
        assert error["problems"][0].startswith(f"cases/github/acme/shop/pr-{pr}/case.yaml:")
    # libyaml names the line where it found the sequence unclosed: the one after it.
    assert "pr-7/case.yaml:11:9: while parsing a flow sequence" in errors[7]["problems"][0]
    assert "pr-301/case.yaml:34: $.gate.decision" in errors[301]["problems"][0]
    assert "anchors and aliases" in errors[655]["problems"][0]
    assert "duplicate key 'reopened'" in errors[1010]["problems"][0]


KILL_SCRIPT = """
import multiprocessing, sys, time
from securecase.storage.caseparse import parse_case_yamls

text = open(sys.argv[1], "rb").read()

def files():
    for n in range(150):
        yield n, f"cases/github/acme/shop/pr-{n}", text, 0
    # The first chunk went to the workers; the reader now waits on its input (as on git).
    print(" ".join(str(c.pid) for c in multiprocessing.active_children()), flush=True)
    time.sleep(600)
    yield from ()

for _ in parse_case_yamls(files(), workers=2):
    pass
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_workers_end_when_the_process_that_started_them_is_killed(
    tmp_path: Path, how: signal.Signals
) -> None:
    (tmp_path / "case.yaml").write_text(_case_yaml(1))
    with subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "case.yaml")],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    ) as proc:
        try:
            assert proc.stdout is not None
            workers = [int(pid) for pid in proc.stdout.readline().split()]
            assert len(workers) == 2 and all(_running(pid) for pid in workers)
            os.kill(proc.pid, how)
            proc.wait(timeout=30)
            deadline = time.monotonic() + 20
            while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not [pid for pid in workers if _running(pid)]
        finally:
            if proc.poll() is None:
                proc.kill()


def _cases_repo(where: Path, count: int) -> Path:
    """A cases repo of ``count`` case folders (four of them broken), written by fast-import."""
    repo = where / "security-cases"
    git(where, "init", "-q", "-b", "main", str(repo))
    stream = [b"blob\nmark :1\ndata %d\n" % len(GOLDEN_FINDINGS) + GOLDEN_FINDINGS + b"\n"]
    entries = []
    for mark, (folder, data) in enumerate(_files(count), start=2):
        stream.append(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
        entries.append(f"M 100644 :{mark} {folder}/case.yaml\nM 100644 :1 {folder}/findings.json\n")
    message = b"cases\n"
    stream.append(
        b"commit refs/heads/main\ncommitter B <b@example.com> 1793520000 +0000\n"
        + b"data %d\n" % len(message)
        + message
        + "".join(entries).encode()
    )
    subprocess.run(
        ["git", "-C", str(repo), "fast-import", "--quiet"],
        input=b"".join(stream),
        check=True,
        env=clean_env(),
    )
    git(repo, "checkout", "-q", "main")
    return repo


def test_a_cold_listing_of_many_cases_matches_the_in_process_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _cases_repo(tmp_path, 1200)
    # The CLI parses 1,200 files in workers (where there are 2 cores or more); this process
    # parses them itself.
    monkeypatch.setattr(caseparse, "POOL_MINIMUM", 10**9)
    expected = list_cases(str(repo), CaseFilter(), cache=no_cache())
    assert len(expected.cases) == 1200 - len(BREAKAGES) and len(expected.broken) == 4

    def listing(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            *("cases", "list", "--output", "json", "--cases-repo", str(repo), *extra),
            cwd=tmp_path,
            XDG_CACHE_HOME=str(tmp_path / "cache"),
        )

    for extra in ((), ("--no-cache",)):
        cold = listing(*extra)
        assert cold.returncode == 0, cold.stderr
        assert [row["key"] for row in json.loads(cold.stdout)] == [c.key for c in expected.cases]
        warned = [line for line in cold.stderr.splitlines() if "broken case file" in line]
        assert warned == [
            f"securecase: warning: skipped a broken case file: {broken}"
            for broken in expected.broken
        ]
    warm = listing()
    assert warm.stdout == cold.stdout and warm.stderr == cold.stderr

    # A case folder of the first layout fails the listing (exit 2), naming the folder.
    path = repo / "cases/github/acme/shop/pr-900/case.yaml"
    path.write_text(path.read_text().replace("securecase/case/v2", "securecase/case/v1"))
    git(repo, "-c", "user.name=B", "-c", "user.email=b@example.com", "commit", "-qam", "old")
    refused = run_cli(
        "cases", "list", "--cases-repo", repo, cwd=tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache")
    )
    assert refused.returncode == 2 and refused.stdout == ""
    assert "cases/github/acme/shop/pr-900: the case is in the first layout" in refused.stderr
