"""Records queued on GitHub-hosted runners survive the machine as workflow artifacts.

The cases repo is a GitHub-like bare remote with a push budget (tests/githublike.py), GitHub
is the local stand-in (tests/fake_github.py: every request and response checked against
GitHub's OpenAPI description, downloads redirected to a signed archive URL), the artifacts are
real zips of queue entries as ``actions/upload-artifact`` makes them, and every securecase is
the real CLI in its own process.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
import subprocess
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, git, run_cli, trivy_rescan
from fake_github import TOKEN, FakeGitHub, serve
from githublike import GitHubLikeRemote
from securecase.errors import InputError
from securecase.storage.queue import RecordQueue
from securecase.storage.recordzip import unpack_record
from test_action_sweep import Runner
from test_record_queue import (
    BLOCK_MEDIUM,
    HEAD,
    REPORT,
    MakeRemote,
    case_keys_at_tip,
    ingest,
    trailers,
)

PREFIX = "securecase-record-"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


def zip_folder(folder: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """The zip ``actions/upload-artifact`` makes of a folder: its files at the zip's root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def queued_entry(work: Path, remote: GitHubLikeRemote, pr: int, *args: str) -> tuple[str, Path]:
    """Queue PR ``pr``'s record in ``work/queue`` (the remote refuses the push): its entry id
    and folder."""
    code, out, err = ingest(work, remote, pr, "--queue-dir", str(work / "queue"), *args)
    assert code in (0, 1) and out["recorded"] == "queued", err
    return out["queued"], _folder(work, remote, out["queued"])


def queue_branch_main(
    work: Path, remote: GitHubLikeRemote, repo: str
) -> subprocess.CompletedProcess[str]:
    """A real ingest of ``repo``'s main branch, queued when the remote refuses it."""
    return run_cli(
        *("ingest", REPORT, "--cases-repo", remote.url, "--repo", repo, "--branch", "main"),
        *("--commit", HEAD, "--queue-dir", work / "queue", "--output", "json"),
        cwd=work,
    )


def sweep(work: Path, remote: GitHubLikeRemote, fake: FakeGitHub, *args: str) -> Any:
    """A real ``securecase sweep --fold-artifacts --output json`` (no local queue)."""
    return run_cli(
        "sweep",
        "--cases-repo",
        remote.url,
        "--output",
        "json",
        "--queue-dir",
        "off",
        "--fold-artifacts",
        *args,
        cwd=work,
        GITHUB_TOKEN=TOKEN,
        GITHUB_API_URL=fake.base_url,
    )


def seed_policy(work: Path, remote: GitHubLikeRemote, policy: str) -> None:
    """Commit ``policy.yaml`` to the cases repo (one push), as its owners would."""
    clone = work / "seed"
    git(work, "init", "-q", "-b", "main", str(clone))
    (clone / "policy.yaml").write_text(policy)
    git(clone, "add", "policy.yaml")
    git(clone, "-c", "user.name=owner", "-c", "user.email=o@e", "commit", "-qm", "policy")
    git(clone, "push", "-q", remote.url, "main")


def medium_counts(work: Path, remote: GitHubLikeRemote) -> dict[str, int]:
    listed = run_cli("cases", "list", "--cases-repo", remote.url, "--output", "json", cwd=work)
    assert listed.returncode == 0, listed.stderr
    return {row["key"]: row["medium"] for row in json.loads(listed.stdout)}


def test_a_hosted_runs_record_outlives_the_machine_and_lands_with_the_sweep(
    work: Path, githublike: MakeRemote, fake: FakeGitHub
) -> None:
    remote = githublike(pushes_per_window=2, window_seconds=600)
    seed_policy(work, remote, BLOCK_MEDIUM)
    assert ingest(work, remote, 1, "--queue-dir", "off")[1]["recorded"] == "committed"
    uploads: list[dict[str, str]] = []

    def upload(given: dict[str, str]) -> None:  # actions/upload-artifact, played
        uploads.append(given)
        data = zip_folder(Path(given["path"]))
        fake.add_artifact("acme", "shop", given["name"], data, run_id=77)

    machine = work / "hosted-runner"
    machine.mkdir()
    event = FIXTURES / "github-events" / "pull_request.synchronize.json"  # PR 2
    runner = Runner(
        machine,
        github_token=TOKEN,
        upload=upload,
        env={
            "RUNNER_ENVIRONMENT": "github-hosted",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": "acme/shop",
            "GITHUB_SHA": HEAD,
            "GITHUB_REF": "refs/pull/2/merge",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": fake.base_url,
            "GITHUB_RUN_ID": "77",
            "GITHUB_RUN_ATTEMPT": "1",
        },
    )
    run = runner.run(reports=str(REPORT), cases_repo=remote.url, output="json")

    # The gate blocks (exit 1, the check run says so) and the record is kept all the same.
    assert (run.failed_step, run.returncode) == ("Ingest the reports", 1), run.stderr
    assert run.steps_run[-2:] == [
        "Name the queued record's artifact",
        "Keep the queued record as an artifact",
    ]
    [given] = uploads
    assert given["name"].startswith(PREFIX) and given["retention-days"] == "7"
    assert given["if-no-files-found"] == "error"
    assert Path(given["path"]).is_relative_to(machine / "securecase-queue")
    assert "kept as the workflow artifact " + given["name"] in run.stderr
    [check] = fake.check_runs.values()
    assert check["conclusion"] == "failure"
    assert remote.commits() == 2 and case_keys_at_tip(remote) == ["cases/github/acme/shop/pr-1"]
    shutil.rmtree(machine)  # the hosted runner is gone, and its disk with it

    remote.configure("pushesPerWindow", 10)
    pushes = remote.pushes()
    swept = sweep(work, remote, fake)
    assert swept.returncode == 0, swept.stderr
    folded = json.loads(swept.stdout)["artifacts"]
    assert folded["landed"] == [given["name"]] and folded["deleted"] == [given["name"]]
    assert folded["refused"] == [] and folded["commits"] == 1
    assert "1 record(s) kept as workflow artifacts landed" in swept.stderr
    assert fake.artifacts("acme", "shop") == []
    assert remote.pushes() == pushes + 1 and remote.commits() == 3
    assert case_keys_at_tip(remote)[-1] == "cases/github/acme/shop/pr-2"
    entry_id = given["name"].removeprefix(PREFIX)
    assert trailers(remote, "Record") == [entry_id.rsplit("-", 1)[1]]
    assert trailers(remote, "Case")[0] == "github::acme::shop::PR::2"
    # The archive host got no token; GitHub's API got it for the listing, download, delete.
    [archive] = fake.archive_requests
    assert "Authorization" not in archive.headers and archive.status == 200
    assert [r.operation for r in fake.requests if r.operation.startswith("actions/")] == [
        "actions/list-artifacts-for-repo",
        "actions/download-artifact",
        "actions/delete-artifact",
    ]

    again = sweep(work, remote, fake)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["artifacts"] == {
        "landed": [],
        "already_landed": [],
        "deleted": [],
        "refused": [],
        "commits": 0,
        "api_calls": 1,
    }
    assert remote.commits() == 3 and remote.pushes() == pushes + 1


def test_an_artifact_whose_record_landed_is_deleted_later_without_a_second_commit(
    work: Path, githublike: MakeRemote, fake: FakeGitHub
) -> None:
    remote = githublike(pushes_per_window=1, window_seconds=600)
    assert ingest(work, remote, 1, "--queue-dir", "off")[1]["recorded"] == "committed"
    entry_id, folder = queued_entry(work, remote, 2)
    fake.add_artifact("acme", "shop", PREFIX + entry_id, zip_folder(folder))
    # The sweep's token may read artifacts but not delete them (no actions: write).
    fake.fail_operation(
        "actions/delete-artifact", 403, message="Resource not accessible by integration"
    )
    remote.configure("pushesPerWindow", 10)
    first = sweep(work, remote, fake)
    assert first.returncode == 0, first.stderr
    assert "its record landed, but it could not be deleted" in first.stderr
    assert fake.artifacts("acme", "shop") == [PREFIX + entry_id] and remote.commits() == 2
    # A later rescan of PR 2 fixes CVE-2019-1549 and lands before the next sweep.
    fixed = trivy_rescan(REPORT, work / "fixed.json", "CVE-2019-1549")
    code, out, err = ingest(work, remote, 2, "--queue-dir", "off", report=fixed)
    assert code == 0 and out["recorded"] == "committed", err

    second = sweep(work, remote, fake)
    assert second.returncode == 0, second.stderr
    folded = json.loads(second.stdout)["artifacts"]
    assert folded["already_landed"] == [PREFIX + entry_id] and folded["landed"] == []
    assert folded["deleted"] == [PREFIX + entry_id] and folded["commits"] == 0
    # Not applied again: no commit, and PR 2 keeps the rescan's two findings.
    assert remote.commits() == 3 and fake.artifacts("acme", "shop") == []
    assert medium_counts(work, remote)["github::acme::shop::PR::2"] == 2
    assert trailers(remote, "Record") == [entry_id.rsplit("-", 1)[1]]


def test_bad_artifacts_are_named_kept_and_fail_the_sweep_while_good_ones_land(
    work: Path, githublike: MakeRemote, fake: FakeGitHub
) -> None:
    remote = githublike(pushes_per_window=1, window_seconds=600)
    assert ingest(work, remote, 1, "--queue-dir", "off")[1]["recorded"] == "committed"
    two, two_folder = queued_entry(work, remote, 2)
    four, four_folder = queued_entry(work, remote, 4)
    other_run = queue_branch_main(work, remote, "acme/other")
    other = json.loads(other_run.stdout)["queued"]
    other_folder = _folder(work, remote, other)
    made_up = [f"20261203T180000Z-{n:020d}-{'0' * 20}" for n in (1, 2, 3)]

    tampered = work / "tampered"
    shutil.copytree(two_folder, tampered)
    original = (two_folder / "report-0").read_bytes()
    (tampered / "report-0").write_bytes(original.replace(b"3.1", b"3.2"))
    unknown = work / "unknown"
    shutil.copytree(two_folder, unknown)
    record = json.loads((unknown / "record.json").read_text())
    (unknown / "record.json").write_text(json.dumps({**record, "trust_me": True}))
    bad = {
        "zip-slip": (made_up[0], zip_folder(two_folder, {"../../escaped": b"x"}), None),
        "tampered": (two, zip_folder(tampered), None),
        "schema": (made_up[1], zip_folder(unknown), None),
        "not-a-zip": (made_up[2], b"<html>not a zip</html>", None),
        "other-repo": (other, zip_folder(other_folder), None),
        "fork": (four, zip_folder(four_folder), "someone/shop"),
    }
    names = {label: PREFIX + entry_id for label, (entry_id, _, _) in bad.items()}
    for label, (_, data, head_repo) in bad.items():
        fake.add_artifact("acme", "shop", names[label], data, head_repo=head_repo)
    good = PREFIX + four
    fake.add_artifact("acme", "shop", good, zip_folder(four_folder))
    remote.configure("pushesPerWindow", 10)

    swept = sweep(work, remote, fake)

    assert swept.returncode == 2, swept.stderr  # fail closed
    folded = json.loads(swept.stdout)["artifacts"]
    reasons = {r["reason"] for r in folded["refused"]}
    assert len(folded["refused"]) == 6
    assert any("member '../../escaped' is not a file of a queued record" in r for r in reasons)
    assert any("do not match the digest in its name" in r for r in reasons)
    assert any("record.json is not a queued record" in r and "trust_me" in r for r in reasons)
    assert any("not a zip archive" in r for r in reasons)
    assert any("its record is for github acme/other, not acme/shop" in r for r in reasons)
    assert any("from a fork: not trusted" in r for r in reasons)
    assert "6 record artifact(s) were not folded and are kept" in swept.stderr
    for label in ("zip-slip", "tampered", "schema", "not-a-zip", "other-repo"):
        assert names[label] in swept.stderr
    # The good record landed, and only its artifact is gone.
    assert folded["landed"] == [good] and folded["deleted"] == [good]
    assert "cases/github/acme/shop/pr-4" in case_keys_at_tip(remote)
    assert "cases/github/acme/shop/pr-2" not in case_keys_at_tip(remote)
    assert "cases/github/acme/other/branch-main" not in case_keys_at_tip(remote)
    assert len(fake.artifacts("acme", "shop")) == 6


def test_a_repository_named_outright_is_read_before_its_first_case_landed(
    work: Path, githublike: MakeRemote, fake: FakeGitHub
) -> None:
    remote = githublike(pushes_per_window=1, window_seconds=600)
    assert ingest(work, remote, 1, "--queue-dir", "off")[1]["recorded"] == "committed"
    out = queue_branch_main(work, remote, "acme/new")
    entry = json.loads(out.stdout)
    assert entry["recorded"] == "queued", out.stderr
    data = zip_folder(_folder(work, remote, entry["queued"]))
    fake.add_artifact("acme", "new", PREFIX + entry["queued"], data)
    remote.configure("pushesPerWindow", 10)
    # acme/new has no folder in the cases repo yet: a glob does not find it, its name does.
    # A listing GitHub refuses (a token without actions: read there) is a warning.
    fake.fail_operation("actions/list-artifacts-for-repo", 403, message="Must have admin rights")
    globbed = sweep(work, remote, fake, "--repo", "acme/*")
    assert globbed.returncode == 0, globbed.stderr
    assert "cannot list the artifacts of acme/shop" in globbed.stderr
    assert "actions: read" in globbed.stderr and fake.artifacts("acme", "new") != []
    lapsed = PREFIX + "20261203T180000Z-00000000000000000009-" + "0" * 20
    fake.add_artifact("acme", "new", lapsed, b"", expired=True)
    named = sweep(work, remote, fake, "--repo", "acme/new")
    assert named.returncode == 0, named.stderr
    # An artifact GitHub let expire cannot be folded: said, not dropped in silence.
    assert f"artifact {lapsed} of acme/new expired before a sweep folded it" in named.stderr
    assert fake.artifacts("acme", "new") == [lapsed]
    assert "cases/github/acme/new/branch-main" in case_keys_at_tip(remote)


def _folder(work: Path, remote: GitHubLikeRemote, entry_id: str) -> Path:
    [found] = [
        e.folder
        for e in RecordQueue(work / "queue", remote.url).entries()
        if e.entry_id == entry_id
    ]
    return found


def test_without_a_token_fold_artifacts_is_bad_usage(work: Path, githublike: MakeRemote) -> None:
    remote = githublike()
    proc = run_cli(
        "sweep", "--cases-repo", remote.url, "--fold-artifacts", "--queue-dir", "off", cwd=work
    )
    assert proc.returncode == 2 and "--fold-artifacts needs a GitHub token" in proc.stderr


# -- reading one artifact's zip --------------------------------------------------------------


@pytest.fixture
def entry(work: Path, githublike: MakeRemote) -> tuple[str, Path]:
    remote = githublike(pushes_per_window=0, window_seconds=600)
    return queued_entry(work, remote, 2)


def _unpack(
    data: bytes,
    entry_id: str,
    into: Path,
    max_report_bytes: int = 10_000_000,
    max_total_bytes: int = 30_000_000,
) -> Any:
    return unpack_record(
        data,
        entry_id,
        into,
        max_report_bytes=max_report_bytes,
        max_total_bytes=max_total_bytes,
        origin="artifact A",
    )


def test_a_good_zip_reads_back_as_the_same_entry(work: Path, entry: tuple[str, Path]) -> None:
    entry_id, folder = entry
    read = _unpack(zip_folder(folder), entry_id, work / "out")
    assert read.entry_id == entry_id and read.reports[0].read_bytes() == REPORT.read_bytes()
    assert sorted(p.name for p in (work / "out").iterdir()) == sorted(
        p.name for p in folder.iterdir()
    )


def _with_member(folder: Path, info: zipfile.ZipInfo, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
        with warnings.catch_warnings():
            # A duplicate name is one of the hostile zips made here on purpose.
            warnings.simplefilter("ignore", UserWarning)
            archive.writestr(info, data)
    return buffer.getvalue()


def test_links_folders_duplicates_and_oversize_members_are_refused(
    work: Path, entry: tuple[str, Path]
) -> None:
    entry_id, folder = entry
    link = zipfile.ZipInfo("policy")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(InputError, match="member 'policy' is not a regular file"):
        _unpack(_with_member(folder, link, b"/etc/passwd"), entry_id, work / "a")
    with pytest.raises(InputError, match="member 'report-0/' is not a file of a queued record"):
        _unpack(_with_member(folder, zipfile.ZipInfo("report-0/"), b""), entry_id, work / "b")
    with pytest.raises(InputError, match="member 'report-0' appears twice"):
        _unpack(_with_member(folder, zipfile.ZipInfo("report-0"), b"{}"), entry_id, work / "c")
    with pytest.raises(InputError, match="member 'report-0' is larger than 1,000 bytes"):
        _unpack(zip_folder(folder), entry_id, work / "d", max_report_bytes=1_000)
    with pytest.raises(InputError, match="is not a queued record's id"):
        _unpack(zip_folder(folder), "../" + entry_id, work / "e")
    size = (folder / "report-0").stat().st_size
    with pytest.raises(InputError, match=f"its files hold more than {size:,} bytes"):
        _unpack(zip_folder(folder), entry_id, work / "f", max_total_bytes=size)
    assert not any((work / name).exists() for name in "abcdef")


def test_a_member_larger_than_its_header_says_is_cut_at_the_cap(
    work: Path, entry: tuple[str, Path]
) -> None:
    entry_id, folder = entry
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(folder / "record.json", "record.json")
        archive.writestr("report-0", b"\0" * 50_000_000)  # 50 MB of zeros, ~50 KB zipped
    data = bomb.getvalue()
    assert len(data) < 200_000
    with pytest.raises(InputError, match="member 'report-0' is larger than 1,000,000 bytes"):
        _unpack(data, entry_id, work / "out", max_report_bytes=1_000_000)


def test_the_fake_archive_host_wants_the_signed_url(fake: FakeGitHub) -> None:
    import requests

    artifact = fake.add_artifact("acme", "shop", PREFIX + "x", b"PK")
    answer = requests.get(
        f"{fake.base_url}/repos/acme/shop/actions/artifacts/{artifact}/zip",
        headers={"Authorization": f"token {TOKEN}"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302
    unsigned = answer.headers["Location"].split("?")[0]
    assert requests.get(unsigned, timeout=10).status_code == 403
    assert requests.get(answer.headers["Location"], timeout=10).content == b"PK"


def test_the_action_passes_fold_artifacts_to_the_sweep(work: Path) -> None:
    runner = Runner(work)
    refused = runner.run(command="sweep", cases_repo=str(work / "cases"), fold_artifacts="yes")
    assert refused.returncode == 2 and "the fold-artifacts input is true or false" in refused.stdout
    wrong = Runner(work).run(command="ingest", cases_repo="x", reports="r", fold_artifacts="true")
    assert wrong.returncode == 2 and "fold-artifacts" in wrong.stdout
    subprocess.run(["git", "init", "-q", "-b", "main", str(work / "cases")], check=True)
    ran = Runner(work).run(command="sweep", cases_repo=str(work / "cases"), fold_artifacts="true")
    assert "--fold-artifacts" in ran.argv and "needs a GitHub token" in ran.stderr


@pytest.mark.parametrize(
    ("runner", "given", "expected"),
    [
        ("github-hosted", {}, ("{temp}/securecase-queue", "true")),
        ("github-hosted", {"SC_QUEUE_DIR": "/persisted"}, ("/persisted", "false")),
        ("github-hosted", {"SC_RECORD_ARTIFACTS": "false"}, ("", "false")),
        ("self-hosted", {}, ("", "false")),
    ],
)
def test_the_action_queues_under_the_runners_temp_on_hosted_runners_only(
    work: Path, runner: str, given: dict[str, str], expected: tuple[str, str]
) -> None:
    output = work / "output.txt"
    proc = subprocess.run(
        ["bash", str(Path(__file__).resolve().parents[1] / ".github/action/queue-dir.sh")],
        env={
            "PATH": "/usr/bin:/bin",
            "RUNNER_ENVIRONMENT": runner,
            "RUNNER_TEMP": str(work),
            "GITHUB_OUTPUT": str(output),
            **given,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dir_, artifact = expected
    assert output.read_text() == f"dir={dir_.format(temp=work)}\nartifact={artifact}\n"


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"SC_RECORD_ARTIFACTS": "yes"}, "the record-artifacts input is true or false"),
        ({"SC_RECORD_RETENTION_DAYS": "91"}, "a number of days from 1 to 90"),
        ({"SC_RECORD_RETENTION_DAYS": "0"}, "a number of days from 1 to 90"),
    ],
)
def test_the_action_refuses_bad_record_inputs(work: Path, given: dict[str, str], said: str) -> None:
    proc = subprocess.run(
        ["bash", str(Path(__file__).resolve().parents[1] / ".github/action/queue-dir.sh")],
        env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(work / "out"), **given},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and said in proc.stdout


def test_a_record_from_elsewhere_reads_no_file_of_the_sweeps_machine(work: Path) -> None:
    from securecase.scanners.sarif_identity import SourceRoot

    (work / "src").mkdir()
    (work / "src" / "app.py").write_text("token = 'on this machine'\n")
    here = SourceRoot(str(work))
    assert here.relative(f"{work}/src/app.py") == "src/app.py"
    assert here.flagged_line("src/app.py", 1) == "token = 'on this machine'"
    # The roots a record names are another machine's: they cut paths, nothing is read.
    foreign = SourceRoot("/", str(work), on_disk=False)
    assert foreign.relative("/etc/hostname") == "etc/hostname"
    assert foreign.flagged_line("etc/hostname", 1) is None
    assert not foreign.usable_for(["etc/hostname"])
