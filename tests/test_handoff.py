"""End-to-end: the workflow_run hand-off (fork and Dependabot pull requests) and the sticky PR
comment, through the real CLI against the GitHub stand-in over HTTP (OpenAPI-validated)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, TRIVY, git, read_github_output, run_cli
from fake_github import TOKEN, FakeGitHub, fake_sha, serve

BLOCK_HIGH = "version: 1\nrules:\n  - id: no-high\n    block: {severity_at_least: HIGH}\n"
PASS_ALL = "version: 1\nrules: []\n"
FORK_HEAD = fake_sha("fork", "head")
OTHER_SHA = fake_sha("other", "head")
DEFAULT_BRANCH_SHA = fake_sha("acme", "shop", "main")
RUN_ID = 9001


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


def workflow_run_payload(
    *,
    head_sha: str,
    head_repo: str = "mallory/shop",
    event: str = "pull_request",
    conclusion: str = "success",
    pull_requests: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The parts of a ``workflow_run`` (completed) event the hand-off reads, as GitHub sends
    them for a fork pull request (``pull_requests`` empty)."""
    return {
        "action": "completed",
        "repository": {"full_name": "acme/shop"},
        "workflow_run": {
            "id": RUN_ID,
            "event": event,
            "status": "completed",
            "conclusion": conclusion,
            "head_sha": head_sha,
            "head_branch": "patch-1",
            "head_repository": {"full_name": head_repo},
            "html_url": f"https://github.com/acme/shop/actions/runs/{RUN_ID}",
            "pull_requests": pull_requests or [],
        },
    }


def trusted_env(work: Path, fake: FakeGitHub, payload: dict[str, Any], **extra: str) -> dict:
    event = work / "event.json"
    event.write_text(json.dumps(payload))
    values = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "workflow_run",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "acme/shop",
        # The trusted run checks out the default branch: never the scanned commit.
        "GITHUB_SHA": DEFAULT_BRANCH_SHA,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": fake.base_url,
        "GITHUB_RUN_ID": "9100",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
        "GITHUB_OUTPUT": str(work / "output.txt"),
    }
    values.update(extra)
    return values


def hostile_artifact(work: Path) -> Path:
    """What a fork's pull_request run might upload: a real Trivy report, plus files and
    fields naming another pull request and another commit."""
    artifact = work / "artifact"
    artifact.mkdir()
    (artifact / "trivy-repo.json").write_bytes((TRIVY / "pip.json").read_bytes())
    (artifact / "pr-number.txt").write_text("99\n")
    (artifact / "event.json").write_text(
        json.dumps({"pull_request": {"number": 99, "head": {"sha": OTHER_SHA}}})
    )
    sarif = json.loads((FIXTURES / "sarif" / "appendix_k.sarif").read_text())
    sarif["runs"][0]["versionControlProvenance"] = [
        {
            "repositoryUri": "https://github.com/acme/shop",
            "revisionId": OTHER_SHA,
            "branch": "refs/pull/99/head",
        }
    ]
    (artifact / "code.sarif").write_text(json.dumps(sarif))
    return artifact


def ingest(work: Path, env: dict, *reports: Path, extra: tuple[str, ...] = ()) -> Any:
    return run_cli(
        "ingest",
        *reports,
        "--from-workflow-run",
        "--policy",
        work / "policy.yaml",
        "--output",
        "json",
        *extra,
        cwd=work,
        **env,
    )


def test_fork_pr_is_found_through_the_api_and_gets_the_check_run(
    work: Path, fake: FakeGitHub
) -> None:
    (work / "policy.yaml").write_text(BLOCK_HIGH)
    fake.add_pull("acme", "shop", 7, head_sha=FORK_HEAD, head_repo="mallory/shop", base_ref="main")
    # Another open pull request, the one the artifact names.
    fake.add_pull("acme", "shop", 99, head_sha=OTHER_SHA, base_ref="release")
    artifact = hostile_artifact(work)
    proc = ingest(
        work,
        trusted_env(work, fake, workflow_run_payload(head_sha=FORK_HEAD)),
        artifact / "trivy-repo.json",
        artifact / "code.sarif",
    )
    assert proc.returncode == 1, proc.stderr  # pip.json has HIGH findings: blocked
    out = json.loads(proc.stdout)
    assert out["case_key"] == "github::acme::shop::PR::7"
    assert fake.count("repos/list-pull-requests-associated-with-commit") == 1
    [call] = fake.calls_to("repos/list-pull-requests-associated-with-commit")
    assert FORK_HEAD in call.path and OTHER_SHA not in call.path
    [run] = fake.check_runs.values()
    assert run["head_sha"] == FORK_HEAD  # the PR head found through the API
    assert run["external_id"] == "github::acme::shop::PR::7"
    assert run["conclusion"] == "failure"
    cases = work / "security-cases"
    message = git(cases, "log", "-1", "--format=%B")
    assert f"Securecase-Commit: {FORK_HEAD}" in message
    case = (cases / "cases/github/acme/shop/pr-7/case.yaml").read_text()
    assert "target_branch: main" in case and OTHER_SHA not in case
    assert not (cases / "cases/github/acme/shop/pr-99").exists()
    assert f"actions/runs/{RUN_ID}" in case  # the scanning run, from the event
    assert read_github_output(work / "output.txt")["published_to"] == "check_run"
    assert TOKEN not in proc.stdout + proc.stderr


def test_pull_requests_named_in_the_payload_are_checked_against_the_api(
    work: Path, fake: FakeGitHub
) -> None:
    # A Dependabot pull request from the repository itself: GitHub fills pull_requests, and
    # the hand-off still takes number, head and base from the API.
    (work / "policy.yaml").write_text(PASS_ALL)
    head = fake_sha("dependabot", "head")
    fake.add_pull("acme", "shop", 12, head_sha=head, head_ref="dependabot/pip/x", base_ref="dev")
    payload = workflow_run_payload(
        head_sha=head, head_repo="acme/shop", pull_requests=[{"number": 12}]
    )
    proc = ingest(work, trusted_env(work, fake, payload), TRIVY / "pip.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["case_key"] == "github::acme::shop::PR::12"
    [run] = fake.check_runs.values()
    assert run["head_sha"] == head and run["conclusion"] == "success"
    case = (work / "security-cases/cases/github/acme/shop/pr-12/case.yaml").read_text()
    assert "target_branch: dev" in case


@pytest.mark.parametrize(
    ("pull_head", "pull_repo", "conclusion", "expected"),
    [
        # Pushed to again since the scan: the scanned commit is no PR's head any more.
        (OTHER_SHA, "mallory/shop", "success", "no open pull request of acme/shop has head"),
        # Same commit from another fork than the one that ran the scan.
        (FORK_HEAD, "eve/shop", "success", "no open pull request of acme/shop has head"),
        (FORK_HEAD, "mallory/shop", "failure", "ended with failure, not success"),
    ],
)
def test_no_matching_pull_request_fails_closed_without_a_commit(
    work: Path,
    fake: FakeGitHub,
    pull_head: str,
    pull_repo: str,
    conclusion: str,
    expected: str,
) -> None:
    (work / "policy.yaml").write_text(BLOCK_HIGH)
    fake.add_pull("acme", "shop", 7, head_sha=pull_head, head_repo=pull_repo)
    payload = workflow_run_payload(head_sha=FORK_HEAD, conclusion=conclusion)
    proc = ingest(work, trusted_env(work, fake, payload), TRIVY / "pip.json")
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert not (work / "security-cases").exists()
    assert fake.check_runs == {}


def test_subject_options_are_refused_with_the_hand_off(work: Path, fake: FakeGitHub) -> None:
    (work / "policy.yaml").write_text(BLOCK_HIGH)
    payload = workflow_run_payload(head_sha=FORK_HEAD)
    env = trusted_env(work, fake, payload)
    proc = ingest(work, env, TRIVY / "pip.json", extra=("--pr", "99", "--commit", OTHER_SHA))
    assert proc.returncode == 2
    assert "drop --pr, --commit" in proc.stderr
    outside = ingest(
        work, trusted_env(work, fake, payload, GITHUB_EVENT_NAME="pull_request"), TRIVY / "pip.json"
    )
    assert outside.returncode == 2
    assert "only in a GitHub Actions job started by a workflow_run event" in outside.stderr


def sticky_run(work: Path, fake: FakeGitHub, head: str, report: Path, mode: str) -> Any:
    fake.add_pull("acme", "shop", 7, head_sha=head, head_repo="mallory/shop")
    payload = workflow_run_payload(head_sha=head)
    return ingest(work, trusted_env(work, fake, payload), report, extra=("--comment", mode))


def our_comments(fake: FakeGitHub) -> list[dict[str, Any]]:
    return [
        c
        for c in fake.comments("acme", "shop", 7)
        if c["body"].startswith("<!-- securecase:comment -->")
    ]


def test_sticky_comment_is_created_once_edited_then_deleted_on_pass(
    work: Path, fake: FakeGitHub
) -> None:
    (work / "policy.yaml").write_text(BLOCK_HIGH)
    fake.add_pull("acme", "shop", 7, head_sha=FORK_HEAD, head_repo="mallory/shop")
    fake.add_comment("acme", "shop", 7, "looks good to me", user="octocat")
    first = sticky_run(work, fake, FORK_HEAD, TRIVY / "pip.json", "on-block")
    assert first.returncode == 1, first.stderr
    [comment] = our_comments(fake)
    assert "github::acme::shop::PR::7" in comment["body"].split("\n", 1)[0]
    assert "Blocked" in comment["body"] or "block" in comment["body"]
    assert fake.count("issues/create-comment") == 1

    # The next push: a new head, another report; the same comment is edited in place.
    second_head = fake_sha("fork", "head", 2)
    second = sticky_run(work, fake, second_head, TRIVY / "fluentd-gems.json", "on-block")
    assert second.returncode == 1, second.stderr
    [edited] = our_comments(fake)
    assert edited["id"] == comment["id"] and edited["body"] != comment["body"]
    assert fake.count("issues/create-comment") == 1
    assert fake.count("issues/update-comment") == 1
    assert len(fake.comments("acme", "shop", 7)) == 2  # ours and the reviewer's

    # The pull request passes: under on-block the comment goes away, the reviewer's stays.
    (work / "policy.yaml").write_text(PASS_ALL)
    third = sticky_run(work, fake, fake_sha("fork", "head", 3), TRIVY / "npm.json", "on-block")
    assert third.returncode == 0, third.stderr
    assert our_comments(fake) == []
    assert [c["body"] for c in fake.comments("acme", "shop", 7)] == ["looks good to me"]
    assert fake.count("issues/delete-comment") == 1
    assert fake.count("issues/create-comment") == 1


def test_always_mode_edits_the_comment_to_say_it_passes(work: Path, fake: FakeGitHub) -> None:
    (work / "policy.yaml").write_text(BLOCK_HIGH)
    blocked = sticky_run(work, fake, FORK_HEAD, TRIVY / "pip.json", "always")
    assert blocked.returncode == 1, blocked.stderr
    [before] = our_comments(fake)
    (work / "policy.yaml").write_text(PASS_ALL)
    passed = sticky_run(work, fake, fake_sha("fork", "head", 2), TRIVY / "pip.json", "always")
    assert passed.returncode == 0, passed.stderr
    [after] = our_comments(fake)
    assert after["id"] == before["id"]
    assert "securecase: pass" in after["body"].lower() or "passed" in after["body"].lower()
    assert fake.counts().get("issues/create-comment") == 1
    assert fake.counts().get("issues/update-comment") == 1
    assert fake.count("issues/delete-comment") == 0


def test_app_key_from_the_environment_is_used_and_never_lands_on_disk(
    work: Path, fake: FakeGitHub
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    fake.app_id = "12345"
    fake.app_public_key = key.public_key()
    (work / "policy.yaml").write_text(BLOCK_HIGH)
    fake.add_pull("acme", "shop", 7, head_sha=FORK_HEAD, head_repo="mallory/shop")
    env = trusted_env(
        work,
        fake,
        workflow_run_payload(head_sha=FORK_HEAD),
        GITHUB_TOKEN="",
        SECURECASE_GITHUB_APP_ID="12345",
        SECURECASE_GITHUB_APP_INSTALLATION_ID="77",
        SECURECASE_GITHUB_APP_KEY=pem,
    )
    proc = ingest(work, env, TRIVY / "pip.json")
    assert proc.returncode == 1, proc.stderr
    [run] = fake.check_runs.values()
    assert run["head_sha"] == FORK_HEAD
    # One installation token for the pull-request look-up, one for publishing.
    assert fake.count("apps/create-installation-access-token") == 2
    [lookup] = fake.calls_to("repos/list-pull-requests-associated-with-commit")
    assert lookup.headers["Authorization"] == f"token {fake.installation_token}"
    body = pem.splitlines()[1]
    assert body not in proc.stdout + proc.stderr
    for path in work.rglob("*"):
        if path.is_file():
            assert body.encode() not in path.read_bytes(), path
