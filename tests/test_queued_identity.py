"""A queued SARIF record lands with the finding ids its ingest decided on, checkout or not.

SARIF results without a snippet (hadolint, ruff) are identified by their flagged line read
from the scanned checkout, and ruff's absolute runner paths are cut to repo-relative ones by
looking at the files there. The record is folded later, when that checkout is gone: it keeps
what the ingest read. Real CLI in its own process, a GitHub-like bare remote with a push
budget (tests/githublike.py), GitHub's artifact API played by tests/fake_github.py.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, run_cli
from fake_github import TOKEN, FakeGitHub, serve
from githublike import GitHubLikeRemote
from securecase import limits
from securecase.domain.findings import Report, ReportFormat
from securecase.scanners.sarif_identity import line_digest
from securecase.services.keptcheckout import checkout_replays, kept_checkout
from securecase.storage.queue import RecordQueue, record_digest
from securecase.storage.schemas import RECORD, load_schema
from test_artifact_queue import PREFIX, zip_folder
from test_record_queue import HEAD, MakeRemote

REAL = FIXTURES / "realworld"
#: Three real scanner logs without snippets: hadolint (relative paths), ruff on dvpwa and ruff
#: on a settings file holding a token (both with absolute paths of a runner).
REPORTS = (
    REAL / "hadolint-dockerfile-rev1.sarif",
    REAL / "ruff-views-rev1.sarif",
    REAL / "queued-checkout" / "ruff-settings.sarif",
)
SOURCES = ("hadolint", "ruff-views", "ruff-settings")
TOKEN_LINE = (REAL / "queued-checkout" / "app" / "settings.py").read_text().splitlines()[5]
SECRET = TOKEN_LINE.split('"')[1]
KEY = "github::acme::shop::PR::7"


def runner_root(report: Path, relative: str) -> str:
    """The runner's checkout folder a report names ``relative`` under (its absolute URIs)."""
    uris = re.findall(r'"uri": "file://([^"]*)"', report.read_text())
    return next(uri for uri in uris if uri.endswith("/" + relative))[: -len(relative) - 1]


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


def make_checkout(work: Path) -> Path:
    """The scanned checkout: the files the three reports flag."""
    root = work / "checkout"
    root.mkdir()
    shutil.copy(REAL / "dockerfile-rev1" / "Dockerfile", root / "Dockerfile")
    shutil.copytree(REAL / "ruff-rev1" / "sqli", root / "sqli")
    shutil.copytree(REAL / "queued-checkout" / "app", root / "app")
    return root


def ingest(work: Path, cases_repo: str, checkout: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """A real ``securecase ingest`` of the three reports into PR 7's case."""
    sources = [arg for source in SOURCES for arg in ("--source", source)]
    proc = run_cli(
        "ingest",
        *REPORTS,
        *sources,
        *("--cases-repo", cases_repo, "--repo", "acme/shop", "--pr", "7"),
        *("--target-branch", "main", "--commit", HEAD, "--mode", "ci"),
        *("--source-root", str(checkout), "--output", "json", *args),
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def finding_ids(work: Path, cases_repo: str) -> dict[str, tuple[str, str, int]]:
    """PR 7's findings: id -> (advisory, path, line)."""
    proc = run_cli("cases", "show", KEY, "--cases-repo", cases_repo, "--output", "json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return {
        f["id"]: (f["advisory"], f["location"]["path"], f["location"]["start_line"])
        for f in json.loads(proc.stdout)["findings"]
    }


def direct_ids(work: Path) -> dict[str, tuple[str, str, int]]:
    """The ids a direct ingest of the same reports gives, with its checkout present."""
    folder = work / "direct"
    folder.mkdir()
    ingest(folder, str(folder / "cases"), make_checkout(folder))
    return finding_ids(folder, str(folder / "cases"))


def queued_from_checkout(work: Path, githublike: MakeRemote) -> tuple[GitHubLikeRemote, Any]:
    """Ingest from a fresh checkout into a remote that refuses every push: the remote, and
    the one record queued."""
    remote = githublike(pushes_per_window=0, window_seconds=600)
    make_checkout(work)
    _, out = ingest(work, remote.url, work / "checkout", "--queue-dir", str(work / "queue"))
    assert out["recorded"] == "queued"
    [entry] = RecordQueue(work / "queue", remote.url).entries()
    return remote, entry


def local_sweep(work: Path, remote: GitHubLikeRemote) -> Any:
    return run_cli(
        *("sweep", "--cases-repo", remote.url, "--queue-dir", str(work / "queue")),
        *("--output", "json"),
        cwd=work,
    )


def artifact_sweep(work: Path, remote: GitHubLikeRemote, fake: FakeGitHub) -> Any:
    return run_cli(
        *("sweep", "--cases-repo", remote.url, "--queue-dir", "off", "--fold-artifacts"),
        *("--repo", "acme/shop"),
        *("--output", "json"),
        cwd=work,
        GITHUB_TOKEN=TOKEN,
        GITHUB_API_URL=fake.base_url,
    )


def rewrite(folder: Path, change: dict[str, Any], drop: tuple[str, ...] = ()) -> Path:
    """The entry ``folder`` with ``record.json`` changed, renamed to the digest of its new
    contents (as the version that wrote it would name it); its new folder."""
    record = json.loads((folder / "record.json").read_text())
    record = {k: v for k, v in {**record, **change}.items() if k not in drop}
    (folder / "record.json").write_text(json.dumps(record, sort_keys=True, indent=2) + "\n")
    inputs = {k: v for k, v in record.items() if k not in ("schema", "reports")}
    reports = [(folder / f"report-{n}").read_bytes() for n in range(record["reports"])]
    renamed = folder.with_name(folder.name.rsplit("-", 1)[0] + "-" + record_digest(inputs, reports))
    folder.rename(renamed)
    return renamed


def test_a_queued_record_folded_without_its_checkout_keeps_the_ingests_ids(
    work: Path, githublike: MakeRemote
) -> None:
    expected = direct_ids(work)
    remote, entry = queued_from_checkout(work, githublike)
    record_text = (entry.folder / "record.json").read_text()

    shutil.rmtree(work / "checkout")  # the runner's workspace is cleaned
    remote.configure("pushesPerWindow", 10)
    swept = local_sweep(work, remote)
    assert swept.returncode == 0, swept.stderr
    assert "1 queued record(s) of earlier ingests landed" in swept.stderr
    landed = finding_ids(work, remote.url)
    assert landed == expected
    assert len(landed) == 17  # 7 hadolint, 7 ruff F821, 3 ruff on settings.py

    # The record kept the lines identity read, the token's only as its digest.
    assert SECRET not in record_text and SECRET[4:12] not in record_text
    assert json.loads(record_text)["schema"] == 2
    kept = json.loads(record_text)["checkout"]
    by_place = {(e["path"], e["line"]): e for e in kept["flagged_lines"]}
    assert by_place["Dockerfile", 18]["text"] == "ADD ./run.py /app"
    assert set(by_place["app/settings.py", 6]) == {"path", "line", "sha256"}
    assert by_place["app/settings.py", 11]["text"] == "    return eval(host)"
    assert kept["path_prefixes"] == [
        [],
        [runner_root(REPORTS[1], "sqli/views.py")],
        [runner_root(REPORTS[2], "app/settings.py")],
    ]
    assert all(not path.startswith("/") for _, path, _ in landed.values())


def test_an_artifact_record_lands_with_the_ingests_ids_on_the_sweeps_machine(
    work: Path, githublike: MakeRemote, fake: FakeGitHub
) -> None:
    expected = direct_ids(work)
    remote, entry = queued_from_checkout(work, githublike)
    fake.add_artifact("acme", "shop", PREFIX + entry.entry_id, zip_folder(entry.folder))
    shutil.rmtree(work / "checkout")
    shutil.rmtree(work / "queue")  # a hosted runner: its disk is gone
    remote.configure("pushesPerWindow", 10)
    swept = artifact_sweep(work, remote, fake)
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout)["artifacts"]["landed"] == [PREFIX + entry.entry_id]
    assert finding_ids(work, remote.url) == expected


def test_a_record_queued_by_the_previous_version_still_folds_reading_the_checkout(
    work: Path, githublike: MakeRemote
) -> None:
    expected = direct_ids(work)
    remote, entry = queued_from_checkout(work, githublike)
    # record.json as the previous version wrote it: version 1, nothing of the checkout.
    rewrite(entry.folder, {"schema": 1}, drop=("checkout",))
    [old] = RecordQueue(work / "queue", remote.url).entries()
    assert old.fields["schema"] == 1 and "checkout" not in old.fields
    remote.configure("pushesPerWindow", 10)
    swept = local_sweep(work, remote)
    assert swept.returncode == 0, swept.stderr
    # As before: the checkout is read when the fold runs (it is still there).
    assert finding_ids(work, remote.url) == expected
    assert RecordQueue(work / "queue", remote.url).entries() == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda c: c["flagged_lines"][0].update(line="18"),
            '$.checkout.flagged_lines[0].line: "18" is not of type "integer"',
        ),
        (
            lambda c: c["flagged_lines"][0].update(text="x" * 401),
            "$.checkout.flagged_lines[0].text: 401 characters, more than the 400 allowed",
        ),
        (
            lambda c: c["flagged_lines"][0].update(sha256="0" * 64),
            "$.checkout.flagged_lines[0]: ",
        ),
        (
            lambda c: c.update(flagged_lines=c["flagged_lines"] * 2),
            "Dockerfile line 3 appears twice",
        ),
        (
            lambda c: c["path_prefixes"].pop(),
            "$.checkout.path_prefixes: 2 list(s) for 3 report(s): expected one per report",
        ),
    ],
)
def test_a_local_record_whose_kept_lines_are_wrong_is_named_and_kept(
    work: Path, githublike: MakeRemote, change: Any, said: str
) -> None:
    remote, entry = queued_from_checkout(work, githublike)
    checkout = json.loads(json.dumps(entry.fields["checkout"]))
    change(checkout)
    folder = rewrite(entry.folder, {"checkout": checkout})
    remote.configure("pushesPerWindow", 10)
    swept = local_sweep(work, remote)
    assert swept.returncode == 2, swept.stderr
    assert said in swept.stderr and str(folder / "record.json") in swept.stderr
    assert "1 queued record(s) cannot be read and stay queued" in swept.stderr
    assert [e.folder for e in RecordQueue(work / "queue", remote.url).entries()] == [folder]
    assert remote.commits() == 0


def test_artifacts_whose_kept_lines_break_the_caps_are_refused_and_kept(
    work: Path, githublike: MakeRemote, fake: FakeGitHub
) -> None:
    remote, entry = queued_from_checkout(work, githublike)
    checkout = entry.fields["checkout"]
    lines = checkout["flagged_lines"]
    over = [{"path": f"f{n}.py", "line": 1, "text": "x"} for n in range(limits.MAX_KEPT_LINES)]
    long_lines = rewrite(
        shutil.copytree(entry.folder, work / "a" / entry.entry_id),
        {"checkout": {**checkout, "flagged_lines": [{**lines[0], "text": "y" * 401}]}},
    )
    too_many = rewrite(
        shutil.copytree(entry.folder, work / "b" / entry.entry_id),
        {"checkout": {**checkout, "flagged_lines": lines + over}},
    )
    many_prefixes = [[f"/r{n}" for n in range(60)], [], [f"/s{n}" for n in range(41)]]
    prefixes = rewrite(
        shutil.copytree(entry.folder, work / "c" / entry.entry_id),
        {"checkout": {**checkout, "path_prefixes": many_prefixes}},
    )
    for folder in (long_lines, too_many, prefixes):
        fake.add_artifact("acme", "shop", PREFIX + folder.name, zip_folder(folder))
    remote.configure("pushesPerWindow", 10)
    swept = artifact_sweep(work, remote, fake)
    assert swept.returncode == 2, swept.stderr
    reasons = {r["name"]: r["reason"] for r in json.loads(swept.stdout)["artifacts"]["refused"]}
    assert "$.checkout.flagged_lines[0].text: " in reasons[PREFIX + long_lines.name]
    assert "401 characters, more than the 400 allowed" in reasons[PREFIX + long_lines.name]
    assert "$.checkout.flagged_lines: " in reasons[PREFIX + too_many.name]
    size = len(lines) + limits.MAX_KEPT_LINES
    assert f"{size:,} items, more than the 50,000 allowed" in reasons[PREFIX + too_many.name]
    assert (
        "$.checkout.path_prefixes: 101 prefixes, above the 100 kept"
        in reasons[PREFIX + prefixes.name]
    )
    assert "3 record artifact(s) were not folded and are kept" in swept.stderr
    assert len(fake.artifacts("acme", "shop")) == 3 and remote.commits() == 0


def test_the_record_schema_holds_the_same_caps_as_the_code() -> None:
    schema = load_schema(RECORD)
    line = schema["$defs"]["flagged_line"]["properties"]
    kept = schema["properties"]["checkout"]["properties"]
    assert kept["flagged_lines"]["maxItems"] == limits.MAX_KEPT_LINES
    assert line["text"]["maxLength"] == limits.MAX_KEPT_LINE_CHARS
    assert kept["path_prefixes"]["items"]["maxItems"] == limits.MAX_KEPT_PREFIXES


def _report(lines: list[tuple[str, int, str]], prefixes: tuple[str, ...] = ()) -> Report:
    return Report(
        format=ReportFormat.SARIF,
        source="ruff",
        tool="ruff",
        tool_version=None,
        scanned_at=None,
        artifact_name=None,
        artifact_type=None,
        image_digest=None,
        findings=(),
        raw=b"{}",
        raw_suffix=".sarif",
        path="ruff.sarif",
        checkout_lines=tuple(lines),
        checkout_prefixes=prefixes,
    )


def test_kept_lines_replay_to_the_digests_identity_took_secrets_and_long_lines_hashed() -> None:
    long_line = "x = [" + ", ".join(str(n) for n in range(200)) + "]"
    lines = [("app/settings.py", 6, TOKEN_LINE), ("app/big.py", 1, long_line)]
    lines.append(("Dockerfile", 18, "ADD ./run.py /app"))
    field, warnings = kept_checkout([_report(lines, ("/w/a",)), _report(lines[:1])])
    assert warnings == ()
    stored = json.dumps(field)
    assert SECRET not in stored and long_line not in stored
    assert "ADD ./run.py /app" in stored
    first, second = checkout_replays(field, 2, "record.json")
    assert first.digests == {(p, n): line_digest(t) for p, n, t in lines}
    assert (first.prefixes, second.prefixes) == (("/w/a",), ())


def test_an_ingest_that_read_more_lines_than_kept_says_so() -> None:
    many = [(f"src/m{n}.py", 1, f"call({n})") for n in range(limits.MAX_KEPT_LINES + 5)]
    field, warnings = kept_checkout([_report(many)])
    assert len(field["flagged_lines"]) == limits.MAX_KEPT_LINES
    [said] = warnings
    assert f"keeps {limits.MAX_KEPT_LINES:,} of the {len(many):,} flagged lines" in said
    assert "may get other ids when it lands" in said
