"""Reporting through the real adapter (real PyGithub, real HTTP) against the local fake GitHub.

Every request and response is validated against GitHub's OpenAPI description by the server;
the fixture fails a test that caused any violation.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from fake_github import SECONDARY_MESSAGE, TOKEN, FakeGitHub, serve
from securecase.domain.findings import Finding, Kind, Package, Severity
from securecase.domain.outcome import BlockingFinding
from securecase.errors import GitHubError
from securecase.github import checks as checkrun
from securecase.github.checks import Annotation, AnnotationLevel, CheckContent
from securecase.github.client import AppCredentials, GitHubClient, GitHubSettings, RetryPolicy
from securecase.github.publish import Channel, CheckTarget, post_check
from securecase.render.markdown import Summary

REPO = "acme/shop"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
TARGET = CheckTarget(REPO, HEAD)
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ZERO = {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0, "unknown": 0}


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


class Sleeps:
    """A real sleep that remembers how long it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def client(
    fake: FakeGitHub, *, max_wait: float = 5.0, token: str = TOKEN, sleeps: Sleeps | None = None
) -> GitHubClient:
    retry = RetryPolicy(max_wait=max_wait, first_backoff=0.01)
    settings = GitHubSettings(api_url=fake.base_url, token=token, retry=retry)
    return GitHubClient(settings, sleep=sleeps or Sleeps())


def summary_input(annotations: int = 0, *, gate: bool = True, fails: bool = True) -> CheckContent:
    summary = Summary(
        case_key="github::acme::shop::PR::42",
        verdict=("BLOCK" if fails else "BLOCK (reported only: mode ci)") if gate else "PASS",
        status="NEW",
        mode="pr_gate" if fails or not gate else "ci",
        gate=gate,
        fails=fails,
        reasons=("no-high-into-main: 1 finding at HIGH or above (at most 0 allowed)",)
        if gate
        else (),
        appeared=1,
        fixed=1,
        counts={
            "new": {**ZERO, "high": 1},
            "existing": {**ZERO, "medium": 2},
            "fixed": {**ZERO, "low": 1},
            "excepted": ZERO,
        },
        blocking=(),
        target_branch="main",
        notes=(),
        incomplete=(),
        policy_origin="policy.yaml",
        policy_blob="feedfacefeedface",
        case_path="cases/github/acme/shop/pr-42/case.yaml",
        cases_commit="0123456789abcdef0123456789abcdef01234567",
        case_url="https://github.com/acme/security-cases/blob/0123/cases/github/acme/shop/pr-42/case.yaml",
        run_url="https://github.com/acme/shop/actions/runs/1",
    )
    return CheckContent(
        summary=summary,
        annotations=tuple(
            Annotation(f"src/m{i % 7}.py", i + 1, i + 1, AnnotationLevel.WARNING, f"m{i}", f"t{i}")
            for i in range(annotations)
        ),
    )


def check_run_writes(fake: FakeGitHub) -> tuple[int, int]:
    return len(fake.calls("POST", r"/check-runs$")), len(fake.calls("PATCH", r"/check-runs/\d+$"))


@pytest.mark.parametrize("count", [0, 1, 50, 51, 500])
def test_annotations_go_out_in_batches_of_fifty(fake: FakeGitHub, count: int) -> None:
    outcome = post_check(client(fake), TARGET, summary_input(count), now=NOW)
    assert outcome.channel is Channel.CHECK_RUN and outcome.warnings == ()
    posts, patches = check_run_writes(fake)
    assert posts == 1
    assert patches == max(0, math.ceil((count - 50) / 50))
    assert posts + patches == 1 + max(0, math.ceil((count - 50) / 50))
    run = fake.check_runs[outcome.check_run_id or 0]
    assert run["output"]["annotations_count"] == count
    assert [a["message"] for a in fake.annotations[run["id"]]] == [f"m{i}" for i in range(count)]
    assert run["status"] == "completed" and run["conclusion"] == "failure"
    assert run["head_sha"] == HEAD and run["name"] == "securecase"
    assert run["external_id"] == "github::acme::shop::PR::42"
    assert run["details_url"].startswith("https://github.com/acme/security-cases/blob/")
    assert run["output"]["title"].startswith("Blocked: no-high-into-main")
    # Each batch request carried at most 50 annotations.
    for call in fake.calls("POST", r"/check-runs$") + fake.calls("PATCH", r"/check-runs/"):
        assert len(call.body["output"].get("annotations", [])) <= 50


@pytest.mark.parametrize(
    ("gate", "fails", "expected"),
    [(False, False, "success"), (True, True, "failure"), (True, False, "neutral")],
)
def test_conclusion_follows_gate_and_mode(
    fake: FakeGitHub, gate: bool, fails: bool, expected: str
) -> None:
    outcome = post_check(client(fake), TARGET, summary_input(gate=gate, fails=fails), now=NOW)
    assert fake.check_runs[outcome.check_run_id or 0]["conclusion"] == expected


def test_summary_over_the_limit_is_truncated_not_rejected(fake: FakeGitHub) -> None:
    data = summary_input()
    huge = tuple(
        BlockingFinding(
            Finding(
                f"id{i}",
                "trivy-image",
                Kind.VULNERABILITY,
                f"CVE-2099-{i:06d}",
                Severity.HIGH,
                "t" * 200,
                package=Package("x" * 150, "1", "2"),
            ),
            ("no-high-into-main",),
            True,
        )
        for i in range(2000)
    )
    from dataclasses import replace

    facts = replace(data.summary, blocking=huge, notes=tuple("n" * 500 for _ in range(300)))
    data = replace(data, summary=facts)
    outcome = post_check(client(fake), TARGET, data, now=NOW)
    assert outcome.channel is Channel.CHECK_RUN
    summary = fake.check_runs[outcome.check_run_id or 0]["output"]["summary"]
    assert len(summary.encode("utf-8")) <= checkrun.SUMMARY_LIMIT
    assert "summary truncated" in summary


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (403, "Resource not accessible by personal access token"),
        (403, "You must authenticate via a GitHub App."),
        (404, "Not Found"),
        (422, "Validation Failed"),
    ],
)
def test_forbidden_check_run_falls_back_to_commit_status(
    fake: FakeGitHub, code: int, message: str
) -> None:
    fake.fail("POST", r"/check-runs$", code, message)
    outcome = post_check(client(fake), TARGET, summary_input(51), now=NOW)
    assert outcome.channel is Channel.COMMIT_STATUS
    assert fake.check_runs == {}
    [status] = fake.statuses
    assert status["context"] == "securecase" and status["state"] == "failure"
    assert status["sha"] == HEAD
    assert 0 < len(status["description"]) <= 140
    assert status["target_url"].startswith("https://github.com/acme/security-cases/blob/")
    assert any(f"({code}: {message})" in w for w in outcome.warnings)
    assert any("commit status instead" in w for w in outcome.warnings)


def test_ci_mode_block_posts_a_success_status(fake: FakeGitHub) -> None:
    fake.fail("POST", r"/check-runs$", 404, "Not Found")
    outcome = post_check(client(fake), TARGET, summary_input(gate=True, fails=False), now=NOW)
    assert outcome.channel is Channel.COMMIT_STATUS
    assert fake.statuses[0]["state"] == "success"
    assert "ci mode" in fake.statuses[0]["description"]


def test_both_refused_leaves_the_job_summary_only(fake: FakeGitHub) -> None:
    fake.fail("POST", r"/check-runs$", 403, "Resource not accessible by integration")
    fake.fail("POST", r"/statuses/", 403, "Resource not accessible by integration")
    outcome = post_check(client(fake), TARGET, summary_input(3), now=NOW)
    assert outcome.channel is Channel.JOB_SUMMARY
    assert fake.check_runs == {} and fake.statuses == []
    assert any("only in the job summary" in w for w in outcome.warnings)


def test_server_error_then_success_creates_one_run(fake: FakeGitHub) -> None:
    fake.fail("POST", r"/check-runs$", 502, "Server Error")
    sleeps = Sleeps()
    outcome = post_check(client(fake, sleeps=sleeps), TARGET, summary_input(1), now=NOW)
    assert outcome.channel is Channel.CHECK_RUN and outcome.warnings == ()
    assert len(fake.check_runs) == 1
    assert [c.status for c in fake.calls("POST", r"/check-runs$")] == [502, 201]
    assert len(sleeps.waits) == 1


def test_a_failed_update_is_retried_too(fake: FakeGitHub) -> None:
    # PyGithub never retries PATCH; the adapter does.
    fake.fail("PATCH", r"/check-runs/\d+$", 500, "Server Error")
    outcome = post_check(client(fake), TARGET, summary_input(120), now=NOW)
    assert outcome.warnings == ()
    assert fake.check_runs[outcome.check_run_id or 0]["output"]["annotations_count"] == 120
    assert [c.status for c in fake.calls("PATCH", r"/check-runs/")] == [500, 200, 200]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_write_applied_before_a_502_is_not_duplicated_by_the_retry(
    fake: FakeGitHub, method: str
) -> None:
    # GitHub did the work but the answer was lost: the retry must not add a second run nor
    # append the same annotations again.
    path = r"/check-runs$" if method == "POST" else r"/check-runs/\d+$"
    fake.fail(method, path, 502, "Bad Gateway", applied=True)
    outcome = post_check(client(fake), TARGET, summary_input(120), now=NOW)
    assert outcome.channel is Channel.CHECK_RUN and outcome.warnings == ()
    assert len(fake.check_runs) == 1
    messages = [a["message"] for a in fake.annotations[outcome.check_run_id or 0]]
    assert sorted(messages) == sorted(f"m{i}" for i in range(120))


def test_secondary_rate_limit_waits_for_retry_after(fake: FakeGitHub) -> None:
    fake.fail("POST", r"/check-runs$", 403, SECONDARY_MESSAGE, headers={"Retry-After": "1"})
    sleeps = Sleeps()
    outcome = post_check(client(fake, sleeps=sleeps), TARGET, summary_input(2), now=NOW)
    assert outcome.channel is Channel.CHECK_RUN and outcome.warnings == ()
    assert sleeps.waits == [1.0]
    assert [c.status for c in fake.calls("POST", r"/check-runs$")] == [403, 201]


def test_rate_limit_beyond_the_wait_budget_gives_up_without_waiting(fake: FakeGitHub) -> None:
    fake.fail("POST", r"/check-runs$", 429, SECONDARY_MESSAGE, headers={"Retry-After": "120"})
    sleeps = Sleeps()
    outcome = post_check(
        client(fake, max_wait=0.5, sleeps=sleeps), TARGET, summary_input(), now=NOW
    )
    assert sleeps.waits == []
    # The status endpoint is not limited here, so the result still reaches the commit.
    assert outcome.channel is Channel.COMMIT_STATUS
    assert any("rate limit" in w and "120s" in w for w in outcome.warnings)


def test_429_without_retry_after_is_a_rate_limit_and_retried(fake: FakeGitHub) -> None:
    # Not every 429 carries Retry-After or a rate-limit message; it is still a rate limit.
    fake.fail("POST", r"/check-runs$", 429, "Too Many Requests")
    sleeps = Sleeps()
    retry = RetryPolicy(max_wait=5, first_backoff=0.01, secondary_wait=0.05)
    settings = GitHubSettings(api_url=fake.base_url, token=TOKEN, retry=retry)
    outcome = post_check(GitHubClient(settings, sleep=sleeps), TARGET, summary_input(), now=NOW)
    assert outcome.channel is Channel.CHECK_RUN and outcome.warnings == ()
    assert sleeps.waits == [0.05]
    assert len(fake.check_runs) == 1 and fake.statuses == []


def test_bad_token_warns_and_never_shows_the_token(fake: FakeGitHub) -> None:
    wrong = "ghp_wrongtoken_SECRET_987654321"
    outcome = post_check(client(fake, token=wrong), TARGET, summary_input(), now=NOW)
    assert outcome.channel is Channel.JOB_SUMMARY
    assert fake.statuses == [] and fake.check_runs == {}
    text = "\n".join(outcome.warnings)
    assert "token" in text and "401" in text
    assert wrong not in text and TOKEN not in text
    # The adapter's own errors never carry the token either.
    with pytest.raises(GitHubError) as raised:
        client(fake, token=wrong).find_check_runs(REPO, HEAD, "securecase")
    assert raised.value.kind == "auth"
    assert wrong not in str(raised.value) and wrong not in (raised.value.hint or "")


def test_settings_repr_never_shows_the_token_or_the_app_key() -> None:
    from securecase.github.publish import plan_posting

    key = "-----BEGIN PRIVATE KEY-----SECRETKEYBYTES"
    settings = GitHubSettings(token=TOKEN, app=AppCredentials("12345", key, installation_id=7))
    plan = plan_posting("github", settings, provider="github")
    for text in (repr(settings), repr(settings.app), repr(plan), str(plan)):
        assert TOKEN not in text and "SECRETKEYBYTES" not in text
    assert "12345" in repr(settings)  # the rest still shows, for diagnostics


def test_rerun_on_the_same_commit_updates_the_run(fake: FakeGitHub) -> None:
    first = post_check(client(fake), TARGET, summary_input(60), now=NOW)
    second = post_check(client(fake), TARGET, summary_input(60, gate=False), now=NOW)
    assert len(fake.check_runs) == 1
    assert second.check_run_id == first.check_run_id and second.updated_existing
    run = fake.check_runs[first.check_run_id or 0]
    assert run["conclusion"] == "success"
    # Annotations already on the run are not appended a second time.
    assert run["output"]["annotations_count"] == 60
    assert check_run_writes(fake) == (1, 2)


def test_a_run_we_may_not_update_is_replaced_by_a_new_one(fake: FakeGitHub) -> None:
    # The earlier run was posted by another App (only its creator may update a check run).
    first = post_check(client(fake), TARGET, summary_input(60), now=NOW)
    fake.fail("PATCH", r"/check-runs/\d+$", 403, "Resource not accessible by integration")
    second = post_check(client(fake), TARGET, summary_input(60, gate=False), now=NOW)
    assert second.channel is Channel.CHECK_RUN and second.warnings == ()
    assert second.check_run_id != first.check_run_id and not second.updated_existing
    run = fake.check_runs[second.check_run_id or 0]
    assert run["conclusion"] == "success" and run["output"]["annotations_count"] == 60
    assert fake.statuses == []


def test_rerun_with_other_findings_sends_exactly_the_missing_annotations(
    fake: FakeGitHub,
) -> None:
    from dataclasses import replace

    # A second report joins the case on the same commit: its findings sort in among the
    # first ones, so the run's annotations are not a prefix of the new list.
    first = summary_input(120)
    joined = replace(first, annotations=summary_input(150).annotations[::-1])
    one = post_check(client(fake), TARGET, first, now=NOW)
    two = post_check(client(fake), TARGET, joined, now=NOW)
    assert two.check_run_id == one.check_run_id and two.updated_existing
    assert two.warnings == ()
    sent = sorted(a["message"] for a in fake.annotations[one.check_run_id or 0])
    assert sent == sorted(f"m{i}" for i in range(150))  # each once, none missing
    # Read back over pages (100 per page), then 30 new ones in one update.
    assert len(fake.calls("GET", r"/check-runs/\d+/annotations$")) == 2
    assert check_run_writes(fake) == (1, 2 + 1)


def test_rerun_finds_its_run_beyond_the_first_page(fake: FakeGitHub) -> None:
    import copy

    first = post_check(client(fake), TARGET, summary_input(1), now=NOW)
    template = fake.check_runs[first.check_run_id or 0]
    # 120 newer runs of other cases on the same commit: ours is on the second page.
    for n in range(2, 122):
        run = copy.deepcopy(template)
        run.update(id=n, external_id=f"github::acme::shop::BR::b{n}")
        run["url"] = template["url"].rsplit("/", 1)[0] + f"/{n}"
        fake.check_runs[n] = run
        fake.annotations[n] = []
    again = post_check(client(fake), TARGET, summary_input(1), now=NOW)
    assert again.check_run_id == first.check_run_id and again.updated_existing
    pages = fake.calls("GET", r"/commits/[0-9a-f]+/check-runs$")[1:]
    assert [c.query.get("page", ["1"])[0] for c in pages] == ["1", "2"]
    assert all(c.query["check_name"] == ["securecase"] for c in pages)
    assert len(fake.check_runs) == 121


def test_network_failure_is_reported_not_raised() -> None:
    # A port nothing listens on: connection refused on every attempt.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = GitHubSettings(
        api_url=f"http://127.0.0.1:{port}",
        token=TOKEN,
        retry=RetryPolicy(attempts=2, max_wait=1, first_backoff=0.01),
    )
    outcome = post_check(GitHubClient(settings), TARGET, summary_input(), now=NOW)
    assert outcome.channel is Channel.JOB_SUMMARY
    assert any("cannot reach GitHub" in w for w in outcome.warnings)
    assert all(TOKEN not in w for w in outcome.warnings)


@pytest.mark.parametrize("url", ["http://admin:s3cretpw@127.0.0.1:{port}", "http://s3cretpw@[::1"])
def test_credentials_in_the_api_url_are_never_shown(url: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = GitHubSettings(
        api_url=url.format(port=port),
        token=TOKEN,
        retry=RetryPolicy(attempts=1, max_wait=1, first_backoff=0.01),
    )
    outcome = post_check(GitHubClient(settings), TARGET, summary_input(), now=NOW)
    assert outcome.warnings and outcome.channel is Channel.JOB_SUMMARY
    assert all("s3cretpw" not in w and TOKEN not in w for w in outcome.warnings)


def test_github_app_installation_auth(fake: FakeGitHub) -> None:
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
    fake.token = "not-used-with-app-auth"
    settings = GitHubSettings(
        api_url=fake.base_url, app=AppCredentials("12345", pem, installation_id=77)
    )
    outcome = post_check(GitHubClient(settings), TARGET, summary_input(1), now=NOW)
    assert outcome.channel is Channel.CHECK_RUN
    [token_call] = fake.calls("POST", r"^/app/installations/77/access_tokens$")
    assert token_call.headers["Authorization"].startswith("Bearer ")
    run_call = fake.calls("POST", r"/check-runs$")[0]
    assert run_call.headers["Authorization"] == f"token {fake.installation_token}"


def test_another_case_on_the_same_commit_gets_its_own_run(fake: FakeGitHub) -> None:
    from dataclasses import replace

    pr = post_check(client(fake), TARGET, summary_input(1), now=NOW)
    pr_content = summary_input(1)
    branch_case = replace(
        pr_content,
        summary=replace(pr_content.summary, case_key="github::acme::shop::BR::feature"),
    )
    branch = post_check(client(fake), TARGET, branch_case, now=NOW)
    assert pr.check_run_id != branch.check_run_id and not branch.updated_existing
    assert {r["external_id"] for r in fake.check_runs.values()} == {
        "github::acme::shop::PR::42",
        "github::acme::shop::BR::feature",
    }


def test_primary_rate_limit_waits_until_the_reset_time_within_budget(fake: FakeGitHub) -> None:
    reset = str(int(time.time()) + 3600)
    fake.fail(
        "POST",
        r"/check-runs$",
        403,
        "API rate limit exceeded for installation ID 1.",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
    )
    sleeps = Sleeps()
    outcome = post_check(client(fake, max_wait=5, sleeps=sleeps), TARGET, summary_input(), now=NOW)
    assert sleeps.waits == []  # an hour is over the budget: give up at once
    assert outcome.channel is Channel.COMMIT_STATUS
    [warning] = [w for w in outcome.warnings if "rate limit" in w]
    assert re.search(r"would wait 3[56]\d\ds", warning), warning


def test_the_fake_server_rejects_requests_that_break_the_description() -> None:
    # The validation the other tests rely on really validates: bad bodies are recorded.
    import requests

    annotation: dict[str, Any] = {
        "path": "src/a.py",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "warning",
        "message": "m",
    }
    good: dict[str, Any] = {
        "name": "securecase",
        "head_sha": HEAD,
        "status": "completed",
        "conclusion": "success",
        "output": {"title": "t", "summary": "s", "annotations": [annotation]},
    }
    bad: dict[str, dict[str, Any]] = {
        "51 annotations": {**good, "output": {**good["output"], "annotations": [annotation] * 51}},
        "level error": {
            **good,
            "output": {
                **good["output"],
                "annotations": [{**annotation, "annotation_level": "error"}],
            },
        },
        "completed without conclusion": {k: v for k, v in good.items() if k != "conclusion"},
        "summary over 65535": {**good, "output": {"title": "t", "summary": "x" * 65536}},
        "annotation without end_line": {
            **good,
            "output": {**good["output"], "annotations": [{**annotation, "end_line": None}]},
        },
    }
    headers = {"Authorization": f"token {TOKEN}"}
    for server in serve(FakeGitHub()):
        url = f"{server.base_url}/repos/{REPO}/check-runs"
        assert requests.post(url, json=good, headers=headers, timeout=10).status_code == 201
        assert server.violations == []
        for label, body in bad.items():
            requests.post(url, json=body, headers=headers, timeout=10)
            assert len(server.violations) == 1, label
            assert server.violations[0].startswith("request POST"), server.violations
            server.violations.clear()
        status_url = f"{server.base_url}/repos/{REPO}/statuses/{HEAD}"
        requests.post(status_url, json={"state": "passed"}, headers=headers, timeout=10)
        requests.post(
            status_url,
            json={"state": "success", "description": "d" * 141},
            headers=headers,
            timeout=10,
        )
        assert len(server.violations) == 2, server.violations
        server.violations.clear()
        # Responses are validated too: a stored run that lost a required field is caught.
        del server.check_runs[1]["head_sha"]
        requests.get(f"{url}/1", headers=headers, timeout=10)
        assert [v.split(":")[0] for v in server.violations] == [
            "response GET /repos/acme/shop/check-runs/1 -> 200"
        ]
        server.violations.clear()
