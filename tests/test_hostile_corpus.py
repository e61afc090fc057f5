"""The hostile-input corpus (tests/hostile/, listed in its README) run through the real CLI.

Every entry runs against its own copy of a real cases repo that already holds two cases. An
entry is either refused (exit 2, no new commit, no traceback) or handled (an exit code it
names, no traceback). With ``pytest -s`` the module prints one table: tried, refused
correctly, handled correctly, wrong exit, committed anyway, traceback.

``INPUT_REFUSALS`` holds the refusals of malformed report input (duplicate keys, NaN,
non-regular and oversized reports, empty containers, deep ZAP XML).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import TRIVY, clean_env, commit_count, git, ingest_json

CORPUS = Path(__file__).resolve().parent / "hostile"
SHOP = "cases/github/acme/shop/branch-main/case.yaml"
WEB = "cases/github/acme/web/branch-main/case.yaml"
BASE = ("--repo", "acme/shop", "--branch", "main")
PR = ("--repo", "acme/shop", "--pr", "7", "--target-branch", "main")
GOOD = TRIVY / "pip.json"

#: argv parts are str, or bytes for arguments that are not UTF-8.
Argv = list[str | bytes]


@dataclass(frozen=True)
class Entry:
    """One corpus entry: how to run it and what must happen."""

    id: str
    #: Builds the ``securecase`` arguments in the work folder (and may prepare files there or
    #: commit a human edit to the cases repo, which is then not counted against the entry).
    argv: Callable[[Path, Path], Argv]
    #: "refuse": exit 2 and no commit; "handle": one of ``exits``.
    expect: str = "refuse"
    exits: tuple[int, ...] = (2,)
    #: Text stderr must hold (the reason, named).
    says: str = ""


@dataclass
class Tally:
    tried: int = 0
    refused: int = 0
    handled: int = 0
    wrong_exit: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)
    traceback: list[str] = field(default_factory=list)


TALLIES: dict[str, Tally] = {}


def report(name: str) -> Callable[[Path, Path], Argv]:
    return lambda work, repo: ["ingest", str(CORPUS / "reports" / name), *BASE]


def policy(name: str) -> Callable[[Path, Path], Argv]:
    return lambda work, repo: [
        "ingest",
        str(GOOD),
        *BASE,
        "--policy",
        str(CORPUS / "policies" / name),
    ]


def args(*extra: str | bytes, report_path: Path = GOOD) -> Callable[[Path, Path], Argv]:
    return lambda work, repo: ["ingest", str(report_path), *extra]


def human_commit(repo: Path, relpath: str, data: bytes) -> None:
    target = repo / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=human", "-c", "user.email=h@example.com", "commit", "-qm", "edit")


def repo_file(relpath: str, source: Path) -> Callable[[Path, Path], Argv]:
    def build(work: Path, repo: Path) -> Argv:
        human_commit(repo, relpath, source.read_bytes())
        return ["ingest", str(TRIVY / "npm.json"), *BASE]

    return build


def wrong_key_case(work: Path, repo: Path) -> Argv:
    human_commit(repo, SHOP, (repo / WEB).read_bytes())
    return ["ingest", str(TRIVY / "npm.json"), *BASE]


def repo_policy_folder(work: Path, repo: Path) -> Argv:
    human_commit(repo, "policy.yaml/README.md", b"the policy moved\n")
    return ["ingest", str(GOOD), *BASE]


def policy_made(kind: str) -> Callable[[Path, Path], Argv]:
    def build(work: Path, repo: Path) -> Argv:
        path = work / "policy.yaml"
        if kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path = Path("/dev/zero")
        return ["ingest", str(GOOD), *BASE, "--policy", str(path)]

    return build


def report_made(kind: str) -> Callable[[Path, Path], Argv]:
    def build(work: Path, repo: Path) -> Argv:
        path = work / "report.json"
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dev-zero":
            path = Path("/dev/zero")
        elif kind == "huge":
            # A valid, empty Trivy report padded to 60 MB (the raw copy would be committed).
            with path.open("w") as handle:
                handle.write('{"SchemaVersion": 2, "ArtifactName": "x", "Results": []')
                handle.write(" " * 60_000_000 + "}\n")
        elif kind == "zap-deep":
            path = work / "zap.xml"
            depth = 200_000
            path.write_text(
                '<?xml version="1.0"?><OWASPZAPReport version="2.11.1" generated="now">'
                + "<x>" * depth
                + "</x>" * depth
                + "</OWASPZAPReport>\n"
            )
        return ["ingest", str(path), *BASE]

    return build


ENTRIES = [
    # reports
    Entry("report/truncated-trivy", report("truncated-trivy.json"), says="truncated-trivy.json"),
    Entry("report/html-error-page", report("html-error-page.json"), says="HTML"),
    Entry("report/not-utf8", report("not-utf8.json"), says="UTF-8"),
    Entry("report/empty", report("empty.json"), says="empty"),
    Entry("report/json-array", report("json-array.json")),
    Entry("report/json-scalar", report("json-scalar.json")),
    Entry("report/missing", args(*BASE, report_path=CORPUS / "reports" / "absent.json")),
    Entry(
        "report/markup-injection",
        report("trivy-markup-injection.json"),
        expect="handle",
        exits=(0, 1),
    ),
    # arguments
    Entry("args/commit-newline-forges-trailer",
          args(*BASE, "--commit", "abc1234\nSecurecase-Decision: pass"), says="hex digits"),
    Entry("args/commit-not-hex", args(*BASE, "--commit", "HEAD"), says="hex digits"),
    Entry("args/commit-too-long", args(*BASE, "--commit", "a" * 65), says="hex digits"),
    Entry("args/commit-time-not-a-time", args(*BASE, "--commit-time", "yesterday")),
    Entry("args/commit-time-huge", args(*BASE, "--commit-time", "9" * 100_000)),
    Entry("args/commit-time-far-future",
          args(*BASE, "--commit", "a" * 40, "--commit-time", "2999-01-01T00:00:00Z"),
          expect="handle", exits=(0, 1), says="is in the future"),
    Entry("args/branch-not-utf8", args("--repo", "acme/shop", "--branch", b"feat\xff"),
          says="not UTF-8"),
    Entry("args/branch-newline", args("--repo", "acme/shop", "--branch", "a\nb")),
    Entry("args/branch-empty", args("--repo", "acme/shop", "--branch", "")),
    Entry("args/repo-traversal", args("--repo", "../etc", "--branch", "main")),
    Entry("args/repo-three-parts", args("--repo", "a/b/c", "--branch", "main")),
    Entry("args/pr-without-target-branch", args("--repo", "acme/shop", "--pr", "7"),
          says="needs --target-branch"),
    Entry("args/pr-zero", args("--repo", "acme/shop", "--pr", "0", "--target-branch", "main")),
    Entry("args/target-branch-on-a-branch", args(*BASE, "--target-branch", "main")),
    Entry("args/source-with-newline", args(*BASE, "--source", "a\nSecurecase-Decision: pass")),
    Entry("args/source-traversal", args(*BASE, "--source", "../../policy")),
    # policies given with --policy
    Entry("policy/alias-bomb", policy("alias-bomb.yaml"), says="anchor"),
    Entry("policy/duplicate-keys", policy("duplicate-keys.yaml"), says="duplicate"),
    Entry("policy/unknown-key", policy("unknown-key.yaml"), says="max_alowed"),
    Entry("policy/not-a-mapping", policy("not-a-mapping.yaml")),
    Entry("policy/python-tag", policy("python-tag.yaml")),
    Entry("policy/huge-rule-id", policy("huge-rule-id.yaml")),
    Entry("policy/folder", policy_made("folder"), says="a folder"),
    Entry("policy/fifo", policy_made("fifo"), says="named pipe"),
    Entry("policy/dev-zero", policy_made("dev-zero"), says="character device"),
    # files in the cases repo, as a human committed them
    Entry("repo/policy-alias-bomb", repo_file("policy.yaml", CORPUS / "policies/alias-bomb.yaml"),
          says="anchor"),
    Entry("repo/policy-is-a-folder", repo_policy_folder, says="is a folder"),
    Entry("case/alias-bomb", repo_file(SHOP, CORPUS / "cases/alias-bomb.case.yaml"), says="anchor"),
    Entry("case/not-yaml", repo_file(SHOP, CORPUS / "cases/not-yaml.case.yaml")),
    Entry("case/wrong-key", wrong_key_case, says="expected 'github::acme::shop::BR::main'"),
]  # fmt: skip

INPUT_REFUSALS = [
    Entry("report/trivy-duplicate-results", report("trivy-duplicate-results.json"), says="Results"),
    Entry("report/trivy-duplicate-severity", report("trivy-duplicate-severity.json"),
          says="Severity"),
    Entry("report/sarif-duplicate-runs", report("sarif-duplicate-runs.json"), says="runs"),
    Entry("report/trivy-nan-in-unchecked-field", report("trivy-nan-in-unchecked-field.json"),
          says="NaN"),
    # Trivy leaves `Results` out of a clean scan: an image report without it is no findings.
    Entry(
        "report/trivy-no-results-container",
        report("trivy-no-results-container.json"),
        expect="handle",
        exits=(0,),
    ),
    Entry("report/fifo", report_made("fifo")),
    Entry("report/dev-zero", report_made("dev-zero")),
    Entry("report/huge-60mb", report_made("huge")),
    Entry("report/zap-deep-xml", report_made("zap-deep")),
]  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cases repo with two cases, made once and copied for each entry."""
    work = tmp_path_factory.mktemp("template")
    for repo in ("acme/shop", "acme/web"):
        code, _, err = ingest_json(GOOD, "--repo", repo, "--branch", "main", cwd=work)
        assert code in (0, 1), err
    return work / "security-cases"


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    yield
    if not TALLIES:
        return
    print("\n\nhostile corpus (tests/hostile/README.md):")
    print(f"{'list':<22} tried  refused  handled  wrong-exit  committed  traceback")
    for name, t in TALLIES.items():
        print(
            f"{name:<22} {t.tried:>5}  {t.refused:>7}  {t.handled:>7}  {len(t.wrong_exit):>10}  "
            f"{len(t.committed):>9}  {len(t.traceback):>9}"
        )
        for label, ids in (
            ("wrong exit", t.wrong_exit),
            ("committed anyway", t.committed),
            ("traceback", t.traceback),
        ):
            if ids:
                print(f"  {label}: {', '.join(ids)}")


def run_entry(entry: Entry, tally: Tally, template: Path, work: Path) -> None:
    repo = work / "security-cases"
    shutil.copytree(template, repo, symlinks=True)
    argv = entry.argv(work, repo)
    before = commit_count(repo)
    tally.tried += 1
    try:
        proc = subprocess.run(
            [sys.executable.encode(), b"-m", b"securecase"]
            + [a if isinstance(a, bytes) else a.encode("utf-8", "surrogateescape") for a in argv],
            cwd=work,
            env=clean_env(SECURECASE_NOW="2027-01-10T09:00:00Z"),
            capture_output=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        tally.wrong_exit.append(entry.id)
        pytest.fail(f"{entry.id}: still running after 120 s (a hang is never a refusal)")
    stderr = proc.stderr.decode("utf-8", "replace")
    problems = []
    if "Traceback" in stderr:
        tally.traceback.append(entry.id)
        problems.append("traceback")
    committed = commit_count(repo) > before
    if proc.returncode not in entry.exits:
        tally.wrong_exit.append(entry.id)
        problems.append(f"exit {proc.returncode}, expected {entry.exits}")
    if entry.expect == "refuse" and committed:
        tally.committed.append(entry.id)
        problems.append("committed although refused")
    if entry.says and entry.says not in stderr:
        problems.append(f"stderr does not say {entry.says!r}")
    if len(stderr) > 5000:
        problems.append(f"{len(stderr)} characters of stderr")
    if not problems:
        if entry.expect == "refuse":
            tally.refused += 1
        else:
            tally.handled += 1
    assert not problems, (entry.id, problems, stderr[:3000])


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_hostile_corpus(entry: Entry, template: Path, work: Path) -> None:
    run_entry(entry, TALLIES.setdefault("securecase", Tally()), template, work)


@pytest.mark.parametrize("entry", INPUT_REFUSALS, ids=[e.id for e in INPUT_REFUSALS])
def test_hostile_corpus_input_refusals(entry: Entry, template: Path, work: Path) -> None:
    run_entry(entry, TALLIES.setdefault("securecase", Tally()), template, work)


def test_every_corpus_file_is_used_and_listed_in_the_readme() -> None:
    readme = (CORPUS / "README.md").read_text()
    files = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file())
    files.remove("README.md")
    source = Path(__file__).read_text()
    for relpath in files:
        assert relpath in readme, relpath
        assert Path(relpath).name in source, relpath
    for entry in ENTRIES + INPUT_REFUSALS:
        assert f"`{entry.id}`" in readme, entry.id
