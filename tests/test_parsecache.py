"""The parse cache of the reading commands: same answers with or without it, never stale,
never a failure (storage/parsecache.py, storage/caseread.py)."""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, clean_env, git, run_cli
from securecase import scanners
from securecase.clock import FixedClock
from securecase.domain.case import Case, GateRecord, Scan, Status, Triage, merge
from securecase.domain.findings import Report
from securecase.domain.policy import builtin_policy, load_policy
from securecase.domain.subjects import make_subject
from securecase.errors import CaseFileError, ReportError
from securecase.services import report as report_service
from securecase.services.catalog import CaseFilter, find_case, list_cases
from securecase.services.policydiff import diff_policies
from securecase.services.report import ReportRequest, build_report
from securecase.storage import caseparse, caseread, parsecache
from securecase.storage.casefile import dump_case, load_case
from securecase.storage.caseread import CaseReader, case_folders
from securecase.storage.parsecache import ParseCache, no_cache
from securecase.storage.repos import open_store

FIXTURE_REPORTS = sorted(
    [
        *(FIXTURES / "trivy").glob("*.json"),
        *(FIXTURES / "sarif").glob("*.sarif"),
        *(FIXTURES / "zap").glob("*.json"),
        *(FIXTURES / "zap").glob("*.xml"),
    ]
)
NEW_POLICY = """version: 1
mode: pr_gate
rules:
  - id: no-medium-into-main
    when: {event: pull_request, target_branches: [main]}
    block: {severity_at_least: MEDIUM}
"""
NOW = "2026-11-20T00:00:00Z"
BOT = "securecase-bot@users.noreply.github.com"


def _commit_all(repo: Path, message: str, email: str = "b@example.com") -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=B", "-c", f"user.email={email}", "commit", "-qm", message)


def _cases_repo(where: Path) -> Path:
    """A cases repo of real case files: every fixture report parsed by the real parser, merged
    and dumped by the real code, one subject each (pull requests into a main branch case of
    the same repository, some triaged, some closed), plus the golden case of the tests."""
    repo = where / "security-cases"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    placeholder = GateRecord(mode="pr_gate", decision="pass", gate=False)
    for n, report in enumerate(_readable_reports()):
        pr = None if n % 4 == 0 else 100 + n
        subject = make_subject(
            provider="github",
            repo=f"acme/svc-{n // 4}",
            pr=pr,
            branch="main" if pr is None else f"feature/{n}",
            target_branch=None if pr is None else "main",
        )
        scan = Scan(
            subject=subject,
            reports=(report,),
            received_at="2026-11-01T08:00:00Z",
            commit=hashlib.sha1(str(n).encode(), usedforsecurity=False).hexdigest(),
            raw_paths={report.source: f"{subject.folder}/raw/{report.source}.json"},
            raw_sha256={report.source: hashlib.sha256(report.raw).hexdigest()},
        )
        case = merge(None, scan, placeholder).case
        if n % 5 == 1:
            case = replace(case, status=Status.TRIAGED, triage=Triage(assignee="@ann"))
        elif n % 7 == 3:
            case = replace(case, status=Status.CLOSED)
        folder = repo / subject.folder
        folder.mkdir(parents=True)
        for name, data in dump_case(case).items():
            (folder / name).write_bytes(data)
    golden = repo / "cases/github/acme/shop/pr-42"
    golden.mkdir(parents=True)
    (golden / "case.yaml").write_bytes((ROOT / "tests/golden/case/pr-42.case.yaml").read_bytes())
    (golden / "findings.json").write_bytes(
        (ROOT / "tests/golden/case/pr-42.findings.json").read_bytes()
    )
    _commit_all(repo, "real cases", email=BOT)
    return repo


@functools.cache
def _readable_reports() -> list[Report]:
    """The fixture reports the real parser reads (some are there to be refused)."""
    found = []
    for path in FIXTURE_REPORTS:
        try:
            found.append(scanners.parse(path, fmt=None, source=None))
        except ReportError:
            continue
    return found


def _case_count() -> int:
    """How many cases the repo holds: one per readable fixture report, plus the golden case."""
    return len(_readable_reports()) + 1


@pytest.fixture
def caches(tmp_path: Path) -> Iterator[Callable[[str], ParseCache]]:
    """Parse caches in folders under ``tmp_path``, each closed when the test ends."""
    opened: list[ParseCache] = []

    def open_cache(name: str) -> ParseCache:
        opened.append(ParseCache(tmp_path / name if name else tmp_path))
        return opened[-1]

    yield open_cache
    for cache in opened:
        cache.close()


@pytest.fixture(scope="module")
def cases_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cases_repo(tmp_path_factory.mktemp("parsecache"))


def _every_case(repo: Path, cache: ParseCache) -> list[tuple[str, Case | CaseFileError]]:
    with open_store(str(repo)) as store:
        reader = CaseReader(store, cache)
        folders = case_folders(store, store.snapshot().head)
        found = [(f.folder, c) for f, c in reader.cases(folders)]
        reader.finish()
    return found


def _folder_bytes(repo: Path, folder: str) -> tuple[bytes, bytes]:
    return (repo / folder / "case.yaml").read_bytes(), (
        repo / folder / "findings.json"
    ).read_bytes()


def test_cached_reads_equal_the_direct_parse_of_every_real_case_file(
    cases_repo: Path, tmp_path: Path, caches: Callable[[str], ParseCache]
) -> None:
    cache = caches("cache")
    cold = _every_case(cases_repo, cache)
    warm = _every_case(cases_repo, caches("cache"))
    assert len(cold) == _case_count()
    for (folder, cold_case), (_, warm_case) in zip(cold, warm, strict=True):
        case_yaml, findings = _folder_bytes(cases_repo, folder)
        direct = load_case(case_yaml, findings, folder=folder)
        assert cold_case == direct, folder
        assert warm_case == direct, folder
    assert cache.path is not None
    with closing(sqlite3.connect(cache.path)) as db, db:
        stored = dict(db.execute("SELECT kind, count(*) FROM parsed GROUP BY kind").fetchall())
    assert stored["case"] == len(cold) and stored["findings"] >= 1


def test_a_warm_read_parses_no_yaml(
    cases_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caches: Callable[[str], ParseCache],
) -> None:
    _every_case(cases_repo, caches("cache"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached case.yaml was parsed again")

    monkeypatch.setattr(caseread, "case_yaml_document", refuse)
    monkeypatch.setattr(caseparse, "case_yaml_document", refuse)
    warm = _every_case(cases_repo, caches("cache"))
    assert all(not isinstance(case, CaseFileError) for _, case in warm)


def test_every_reading_command_answers_the_same_cold_warm_and_without_cache(
    cases_repo: Path, tmp_path: Path, caches: Callable[[str], ParseCache]
) -> None:
    old, new = builtin_policy(), load_policy(NEW_POLICY.encode(), origin="new.yaml")
    clock = FixedClock(datetime.fromisoformat(NOW))

    def answers(cache: ParseCache) -> tuple[object, ...]:
        listing = list_cases(str(cases_repo), CaseFilter(), cache=cache)
        exposed = list_cases(str(cases_repo), CaseFilter(advisory="CVE-*"), cache=cache)
        shown = [find_case(str(cases_repo), c.key, cache=cache).case for c in listing.cases]
        diff = diff_policies(str(cases_repo), old, new, today=date(2026, 11, 20), cache=cache)
        report = build_report(ReportRequest(str(cases_repo)), clock=clock, parse_cache=cache)
        cache.flush()
        return listing, exposed, shown, diff, report.metrics

    uncached = answers(no_cache())
    assert answers(caches("c")) == uncached  # cold: fills the cache
    assert answers(caches("c")) == uncached  # warm: reads it
    listing, exposed, _, diff, _ = uncached
    assert len(listing.cases) == _case_count() and not listing.broken  # type: ignore[attr-defined]
    assert 0 < len(exposed.cases) < len(listing.cases)  # type: ignore[attr-defined]
    assert diff.open_cases > 0 and diff.flips  # type: ignore[attr-defined]


def _report(repo: Path, cache: ParseCache) -> object:
    clock = FixedClock(datetime.fromisoformat(NOW))
    found = build_report(ReportRequest(str(repo)), clock=clock, parse_cache=cache)
    cache.flush()
    return found


def test_a_warm_report_reads_what_the_metrics_need_from_the_cache_alone(
    cases_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caches: Callable[[str], ParseCache],
) -> None:
    uncached = _report(cases_repo, no_cache())
    assert _report(cases_repo, caches("c")) == uncached
    cache_file = caches("c").path
    assert cache_file is not None
    with closing(sqlite3.connect(cache_file)) as db, db:
        facts = db.execute("SELECT count(*) FROM parsed WHERE kind = 'facts'").fetchone()[0]
    assert facts == _case_count()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a case was read from its files on a warm report")

    monkeypatch.setattr(report_service, "case_facts", refuse)
    monkeypatch.setattr(caseread, "case_yaml_document", refuse)
    monkeypatch.setattr(caseparse, "case_yaml_document", refuse)
    assert _report(cases_repo, caches("c")) == uncached


def test_a_damaged_facts_entry_is_read_from_the_files_again(
    cases_repo: Path, tmp_path: Path, caches: Callable[[str], ParseCache]
) -> None:
    uncached = _report(cases_repo, no_cache())
    _report(cases_repo, caches("c"))
    cache_file = caches("c").path
    assert cache_file is not None
    damaged = ['{"key": "github::acme::x::PR::1"}', "[]", '{"not json', None]
    with closing(sqlite3.connect(cache_file)) as db, db:
        blobs = [b for (b,) in db.execute("SELECT blob FROM parsed WHERE kind = 'facts'")]
        for blob, value in zip(blobs, damaged, strict=False):
            if value is None:  # a finding's row of the wrong length
                doc = json.loads(
                    db.execute(
                        "SELECT value FROM parsed WHERE kind = 'facts' AND blob = ?", (blob,)
                    ).fetchone()[0]
                )
                doc["resolved"] = doc["findings"] = [["HIGH", "2026-11-01T00:00:00Z"]]
                value = json.dumps(doc)
            db.execute(
                "UPDATE parsed SET value = ? WHERE kind = 'facts' AND blob = ?", (value, blob)
            )
    assert len(blobs) >= len(damaged)
    assert _report(cases_repo, caches("c")) == uncached


def test_a_damaged_cases_entry_is_read_folder_by_folder(
    cases_repo: Path, caches: Callable[[str], ParseCache]
) -> None:
    uncached = _report(cases_repo, no_cache())
    _report(cases_repo, caches("c"))
    cache_file = caches("c").path
    assert cache_file is not None
    with closing(sqlite3.connect(cache_file)) as db, db:
        ((good,),) = db.execute("SELECT value FROM parsed WHERE kind = 'cases-facts'").fetchall()
    doc = json.loads(good)
    cases = len(doc["keys"])
    assert cases == _case_count()
    damaged = [
        '{"not json',
        "[]",
        json.dumps({**doc, "keys": doc["keys"][1:]}),  # the fields differ in length
        json.dumps({**doc, "counts": [len(doc["tallies"])] * cases}),  # beyond its table
        json.dumps({**doc, "statuses": ["OPENISH"] * cases}),
        json.dumps({key: value for key, value in doc.items() if key != "times"}),
    ]
    for value in damaged:
        with closing(sqlite3.connect(cache_file)) as db, db:
            db.execute("UPDATE parsed SET value = ? WHERE kind = 'cases-facts'", (value,))
        assert _report(cases_repo, caches("c")) == uncached


# -- through the CLI ----------------------------------------------------------------------


def _list(repo: Path, cache_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "cases",
        "list",
        "--output",
        "json",
        "--cases-repo",
        repo,
        *extra,
        cwd=repo.parent,
        XDG_CACHE_HOME=str(cache_dir),
    )


def _cache_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "securecase").glob("parsed-*.sqlite3"))


def test_a_corrupt_cache_file_is_ignored_with_one_warning(cases_repo: Path, tmp_path: Path) -> None:
    expected = _list(cases_repo, tmp_path / "fresh")
    assert expected.returncode == 0 and expected.stderr == "", expected.stderr
    (cache_file,) = _cache_files(tmp_path / "fresh")
    cache_file.write_bytes(b"this is not a database\n" * 200)
    corrupt = _list(cases_repo, tmp_path / "fresh")
    assert corrupt.returncode == 0, corrupt.stderr
    assert corrupt.stdout == expected.stdout
    warnings = [line for line in corrupt.stderr.splitlines() if "parse cache" in line]
    assert len(warnings) == 1 and str(cache_file) in warnings[0], corrupt.stderr
    assert corrupt.stderr.count("warning") == 1


def test_an_unwritable_cache_folder_is_ignored_with_one_warning(
    cases_repo: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "xdg"
    blocked.mkdir()
    (blocked / "securecase").write_text("a file where the cache folder would be\n")
    proc = _list(cases_repo, blocked)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == _case_count()
    assert proc.stderr.count("warning: the parse cache") == 1, proc.stderr


def test_a_damaged_entry_is_parsed_again(cases_repo: Path, tmp_path: Path) -> None:
    expected = _list(cases_repo, tmp_path)
    (cache_file,) = _cache_files(tmp_path)
    with closing(sqlite3.connect(cache_file)) as db, db:
        db.execute("UPDATE parsed SET value = '{\"not json' WHERE kind = 'case'")
    again = _list(cases_repo, tmp_path)
    assert again.returncode == 0 and again.stdout == expected.stdout and again.stderr == ""


def test_an_edited_case_yaml_is_read_again_never_answered_from_the_cache(
    tmp_path: Path,
) -> None:
    repo = _cases_repo(tmp_path)
    first = json.loads(_list(repo, tmp_path / "xdg").stdout)
    shop = next(row for row in first if row["key"] == "github::acme::shop::PR::42")
    assert shop["status"] == "NEW"
    path = repo / "cases/github/acme/shop/pr-42/case.yaml"
    path.write_text(path.read_text().replace("status: NEW", "status: IN_PROGRESS"))
    _commit_all(repo, "working on it")
    second = json.loads(_list(repo, tmp_path / "xdg").stdout)
    assert next(r for r in second if r["key"] == shop["key"])["status"] == "IN_PROGRESS"
    # Broken by hand next: reported broken on every run, the valid old version never served.
    path.write_text(path.read_text().replace("status: IN_PROGRESS", "status: &s IN_PROGRESS"))
    _commit_all(repo, "an anchor")
    for _ in range(2):
        broken = _list(repo, tmp_path / "xdg")
        assert broken.returncode == 0
        assert shop["key"] not in broken.stdout
        assert "pr-42/case.yaml:" in broken.stderr and "anchors and aliases" in broken.stderr


def test_an_alias_is_refused_cold_and_warm(tmp_path: Path) -> None:
    repo = _cases_repo(tmp_path)
    path = repo / "cases/github/acme/shop/pr-42/case.yaml"
    text = path.read_text()
    path.write_text(
        text.replace("status: NEW", "status: &s NEW").replace("assignee: null", "assignee: *s")
    )
    _commit_all(repo, "an alias")
    for _ in range(2):
        proc = run_cli(
            "cases",
            "show",
            "github::acme::shop::PR::42",
            "--cases-repo",
            repo,
            cwd=tmp_path,
            XDG_CACHE_HOME=str(tmp_path / "xdg"),
        )
        assert proc.returncode == 2, proc.stderr
        assert "case.yaml:" in proc.stderr and "anchors and aliases" in proc.stderr


def test_no_cache_and_cache_off_write_no_cache_file(cases_repo: Path, tmp_path: Path) -> None:
    expected = _list(cases_repo, tmp_path / "on")
    off = _list(cases_repo, tmp_path / "flag", "--no-cache")
    env_off = run_cli(
        "cases",
        "list",
        "--output",
        "json",
        "--cases-repo",
        cases_repo,
        cwd=tmp_path,
        XDG_CACHE_HOME=str(tmp_path / "env"),
        SECURECASE_CACHE="off",
    )
    assert off.stdout == env_off.stdout == expected.stdout
    assert _cache_files(tmp_path / "on")
    assert not (tmp_path / "flag").exists() and not (tmp_path / "env").exists()


def test_processes_listing_at_once_share_one_cache(cases_repo: Path, tmp_path: Path) -> None:
    expected = _list(cases_repo, tmp_path / "alone").stdout
    argv = [sys.executable, "-m", "securecase", "cases", "list", "--output", "json"]
    procs = [
        subprocess.Popen(
            [*argv, "--cases-repo", str(cases_repo)],
            cwd=tmp_path,
            env=clean_env(XDG_CACHE_HOME=str(tmp_path / "shared")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0]
    assert all(out == expected and err == "" for out, err in results), results
    (cache_file,) = _cache_files(tmp_path / "shared")
    with closing(sqlite3.connect(cache_file)) as db, db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = dict(db.execute("SELECT kind, count(*) FROM parsed GROUP BY kind").fetchall())
        assert stored == {"case": _case_count(), "summary": _case_count()}
    warm = _list(cases_repo, tmp_path / "shared")
    assert warm.stdout == expected and warm.stderr == ""


def test_another_parser_version_never_reads_the_entries(
    cases_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caches: Callable[[str], ParseCache],
) -> None:
    cache = caches("")
    _every_case(cases_repo, cache)
    assert cache.path is not None and cache.path.exists()
    monkeypatch.setattr(parsecache, "ENTRY_FORMAT", parsecache.ENTRY_FORMAT + 1)
    newer = caches("")
    assert newer.path != cache.path
    blobs = [folder.case_blob for folder in _folders(cases_repo)]
    assert newer.documents(parsecache.CASE_DOC, blobs) == {}
    assert len(cache.documents(parsecache.CASE_DOC, blobs)) == len(blobs)


def _folders(repo: Path) -> list[caseread.CaseFolder]:
    with open_store(str(repo)) as store:
        return case_folders(store, store.snapshot().head)
