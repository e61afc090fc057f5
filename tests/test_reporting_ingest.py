"""Publishing decisions without the CLI: credentials, whether to post, and ``publish_ingest``.

``publish_ingest`` runs on a real ingest (a Trivy fixture into a temporary local cases repo) and
posts through the real adapter to the local fake GitHub, which validates every request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXTURES, TRIVY, read_github_output
from fake_github import TOKEN, FakeGitHub, serve
from securecase.clock import FixedClock
from securecase.domain.subjects import make_subject
from securecase.errors import UsageError
from securecase.github.actions import ActionsContext, read_context
from securecase.github.client import GitHubSettings, RetryPolicy, settings_from_options
from securecase.github.outputs import warning_line
from securecase.github.publish import (
    FORK_PR_WARNING,
    UNKNOWN_COMMIT_WARNING,
    PostingPlan,
    plan_posting,
    publish_ingest,
)
from securecase.services.ingest import IngestRequest, IngestResult, ingest
from securecase.storage.store import GitIdentity

EVENTS = FIXTURES / "github-events"
PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
API = "https://ghe.example/api/v3"


# -- credentials ------------------------------------------------------------------------------


def settings_for(
    *,
    token: str | None = None,
    app_id: str | None = None,
    app_key_file: Path | None = None,
    app_installation_id: int | None = None,
) -> GitHubSettings | None:
    return settings_from_options(
        api_url=API,
        token=token,
        app_id=app_id,
        app_key_file=app_key_file,
        app_installation_id=app_installation_id,
        max_wait=7.5,
    )


def test_a_token_gives_token_settings_with_the_wait_budget() -> None:
    settings = settings_for(token="t0ken")
    assert settings == GitHubSettings(api_url=API, token="t0ken", retry=RetryPolicy(max_wait=7.5))


@pytest.mark.parametrize("token", [None, ""])
def test_no_credentials_means_no_settings(token: str | None) -> None:
    assert settings_for(token=token) is None


def test_app_credentials_read_the_key_and_win_over_a_token(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nnot a real key\n")
    settings = settings_for(token="t0ken", app_id="12", app_key_file=key, app_installation_id=34)
    assert settings is not None and settings.token is None
    assert settings.app is not None
    assert (settings.app.app_id, settings.app.installation_id) == ("12", 34)
    assert settings.app.private_key == key.read_text()
    assert settings.api_url == API and settings.retry.max_wait == 7.5


@pytest.mark.parametrize(
    "given", [["app_id"], ["app_key_file"], ["app_installation_id"], ["app_id", "app_key_file"]]
)
def test_partial_app_options_are_a_usage_error(tmp_path: Path, given: list[str]) -> None:
    values: dict[str, Any] = {
        "app_id": "12",
        "app_key_file": tmp_path / "app.pem",
        "app_installation_id": 34,
    }
    with pytest.raises(UsageError) as caught:
        settings_for(token="t0ken", **{name: values[name] for name in given})
    assert caught.value.message == (
        "GitHub App auth needs --github-app-id, the key (--github-app-key-file or "
        "$SECURECASE_GITHUB_APP_KEY) and --github-app-installation-id together"
    )


@pytest.mark.parametrize("content", [None, b"\xff\xfe not utf-8"])
def test_an_unreadable_app_key_is_a_usage_error(tmp_path: Path, content: bytes | None) -> None:
    key = tmp_path / "app.pem"
    if content is not None:
        key.write_bytes(content)
    with pytest.raises(UsageError) as caught:
        settings_for(app_id="12", app_key_file=key, app_installation_id=34)
    assert caught.value.message == f"--github-app-key-file {key}: cannot read the key"


# -- whether to post --------------------------------------------------------------------------

SETTINGS = GitHubSettings(token="t0ken")


@pytest.mark.parametrize(
    ("report_to", "settings", "provider", "post", "explicit"),
    [
        (None, SETTINGS, "github", True, False),
        (None, None, "github", False, False),
        ("github", SETTINGS, "github", True, True),
        ("none", SETTINGS, "github", False, False),
        (None, SETTINGS, "gitlab", False, False),
        ("github", SETTINGS, "generic", False, True),
    ],
)
def test_plan_posting(
    report_to: str | None,
    settings: GitHubSettings | None,
    provider: str,
    post: bool,
    explicit: bool,
) -> None:
    plan = plan_posting(report_to, settings, provider=provider)
    assert plan == PostingPlan(post=post, explicit=explicit, settings=settings)


def test_report_github_without_credentials_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        plan_posting("github", None, provider="github")
    assert caught.value.message == "--report github needs GitHub credentials"
    assert caught.value.hint == (
        "pass --github-token (default $GITHUB_TOKEN) or the --github-app-* options"
    )


# -- warning lines ----------------------------------------------------------------------------


def test_warning_lines() -> None:
    assert warning_line("50% done", actions=False) == "securecase: warning: 50% done"
    assert (
        warning_line("50% done\r\n::error::x", actions=True)
        == "::warning title=securecase::50%25 done%0D%0A::error::x"
    )


# -- publish_ingest ----------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    """One real ingest of a Trivy report into a local cases repo (pip.json: one HIGH)."""
    cases = tmp_path_factory.mktemp("reporting") / "security-cases"
    request = IngestRequest(
        reports=(TRIVY / "pip.json",),
        subject=make_subject(
            provider="github", repo="acme/shop", pr=2, branch=None, target_branch="master"
        ),
        cases_repo=str(cases),
        identity=GitIdentity("securecase-bot", "securecase-bot@users.noreply.github.com"),
        commit=PR_HEAD,
    )
    return ingest(request, clock=FixedClock(NOW))


def actions_context(
    tmp_path: Path,
    *,
    event: str = "pull_request",
    fork: bool = False,
    server_url: str = "https://github.com",
) -> ActionsContext:
    payload = json.loads((EVENTS / "pull_request.synchronize.json").read_text())
    if fork:
        payload["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps(payload))
    return read_context(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REPOSITORY": "Codertocat/Hello-World",
            "GITHUB_SERVER_URL": server_url,
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        }
    )


def github_plan(fake: FakeGitHub, *, explicit: bool = False, token: str = TOKEN) -> PostingPlan:
    retry = RetryPolicy(max_wait=1, first_backoff=0.01)
    return PostingPlan(
        post=True,
        explicit=explicit,
        settings=GitHubSettings(api_url=fake.base_url, token=token, retry=retry),
    )


def step_outputs(tmp_path: Path) -> dict[str, str]:
    return read_github_output(tmp_path / "output.txt")


def run_publish(
    result: IngestResult,
    plan: PostingPlan,
    context: ActionsContext | None,
    *,
    head_sha: str | None = PR_HEAD,
    cases_repo: str = "./security-cases",
    cases_web_url: str | None = None,
) -> tuple[str, ...]:
    published = publish_ingest(
        result,
        plan,
        repo="acme/shop",
        head_sha=head_sha,
        run_url="https://github.com/acme/shop/actions/runs/77",
        cases_repo=cases_repo,
        cases_web_url=cases_web_url,
        context=context,
        now=NOW,
    )
    assert published.internal_error is None
    return published.warnings


def test_posts_a_check_run_on_the_head_and_links_the_case(
    tmp_path: Path, fake: FakeGitHub, result: IngestResult
) -> None:
    context = actions_context(tmp_path, server_url="https://ghe.example")
    warnings = run_publish(
        result, github_plan(fake), context, cases_repo="git@ghe.example:acme/cases.git"
    )
    assert warnings == ()
    [run] = fake.check_runs.values()
    case_url = f"https://ghe.example/acme/cases/blob/{result.cases_commit}/{result.case_path}"
    assert run["head_sha"] == PR_HEAD and run["details_url"] == case_url
    values = step_outputs(tmp_path)
    assert values["published_to"] == "check_run" and values["case_url"] == case_url
    assert "securecase" in (tmp_path / "summary.md").read_text()


def test_an_explicit_web_url_wins_over_the_cases_repo_url(
    tmp_path: Path, fake: FakeGitHub, result: IngestResult
) -> None:
    web = "https://code.example/sec/cases"
    run_publish(
        result,
        github_plan(fake),
        actions_context(tmp_path),
        cases_repo="https://github.com/acme/security-cases.git",
        cases_web_url=web,
    )
    [run] = fake.check_runs.values()
    assert run["details_url"] == f"{web}/blob/{result.cases_commit}/{result.case_path}"


def test_a_fork_pull_request_only_gets_the_job_summary(
    tmp_path: Path, fake: FakeGitHub, result: IngestResult
) -> None:
    warnings = run_publish(result, github_plan(fake), actions_context(tmp_path, fork=True))
    assert warnings == (FORK_PR_WARNING,)
    assert fake.requests == []
    assert step_outputs(tmp_path)["published_to"] == "none"
    assert "securecase" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize(
    ("event", "explicit"), [("pull_request", True), ("pull_request_target", False)]
)
def test_a_fork_is_posted_when_asked_or_under_pull_request_target(
    tmp_path: Path, fake: FakeGitHub, result: IngestResult, event: str, explicit: bool
) -> None:
    context = actions_context(tmp_path, event=event, fork=True)
    assert run_publish(result, github_plan(fake, explicit=explicit), context) == ()
    [run] = fake.check_runs.values()
    assert run["head_sha"] == PR_HEAD


@pytest.mark.parametrize("in_actions", [True, False])
def test_an_unknown_commit_is_not_posted(
    tmp_path: Path, fake: FakeGitHub, result: IngestResult, in_actions: bool
) -> None:
    context = actions_context(tmp_path) if in_actions else None
    warnings = run_publish(result, github_plan(fake), context, head_sha=None)
    assert warnings == (UNKNOWN_COMMIT_WARNING,)
    assert fake.requests == []


def test_not_posting_sends_nothing(tmp_path: Path, fake: FakeGitHub, result: IngestResult) -> None:
    plan = PostingPlan(post=False, explicit=False, settings=github_plan(fake).settings)
    assert run_publish(result, plan, actions_context(tmp_path)) == ()
    assert fake.requests == []
    assert step_outputs(tmp_path)["published_to"] == "none"


def test_a_rejected_token_is_a_warning(
    tmp_path: Path, fake: FakeGitHub, result: IngestResult
) -> None:
    wrong = "ghp_revoked_SECRET_123"
    [warning] = run_publish(result, github_plan(fake, token=wrong), actions_context(tmp_path))
    assert "rejected the token" in warning and wrong not in warning
    assert step_outputs(tmp_path)["published_to"] == "job_summary"


def test_a_plan_without_credentials_fails_reporting_not_the_run(
    fake: FakeGitHub, result: IngestResult
) -> None:
    plan = PostingPlan(post=True, explicit=False, settings=None)
    assert run_publish(result, plan, None) == ("publishing failed: no GitHub credentials",)
    assert fake.requests == []


def test_a_bug_in_reporting_becomes_a_warning_and_keeps_the_exception(
    tmp_path: Path, result: IngestResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    from securecase.github import links as caselink

    def broken(cases_repo: str, *, server_url: str = "") -> str | None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(caselink, "repo_web_base", broken)
    published = publish_ingest(
        result,
        PostingPlan(post=False, explicit=False, settings=None),
        repo="acme/shop",
        head_sha=PR_HEAD,
        run_url=None,
        cases_repo="./security-cases",
        cases_web_url=None,
        context=actions_context(tmp_path, fork=True),
        now=NOW,
    )
    assert published.warnings == (
        "publishing failed (internal error ZeroDivisionError); see --verbose",
    )
    assert isinstance(published.internal_error, ZeroDivisionError)


def test_the_job_summary_stays_within_what_the_step_left_of_its_limit(
    tmp_path: Path, result: IngestResult
) -> None:
    from securecase.github import checks as checkrun

    # An earlier command of the same step already wrote most of the 1 MiB the step may have.
    summary = tmp_path / "summary.md"
    summary.write_bytes(b"x" * (checkrun.STEP_SUMMARY_LIMIT - 250) + b"\n")
    not_posting = PostingPlan(post=False, explicit=False, settings=None)
    warnings = run_publish(result, not_posting, actions_context(tmp_path))
    assert warnings == ()
    assert checkrun.STEP_SUMMARY_LIMIT - 250 < summary.stat().st_size <= checkrun.STEP_SUMMARY_LIMIT
    assert summary.read_text().endswith(checkrun.TRUNCATION_NOTE)
    # Nothing left: the summary is skipped with a warning, the file is not overgrown.
    summary.write_bytes(b"x" * checkrun.STEP_SUMMARY_LIMIT)
    warnings = run_publish(result, not_posting, actions_context(tmp_path))
    assert summary.stat().st_size == checkrun.STEP_SUMMARY_LIMIT
    assert any("job summary" in w and "full" in w for w in warnings)
    assert step_outputs(tmp_path)["decision"] == result.decision.decision  # outputs still written


def test_step_outputs_count_new_and_appeared_as_the_summary_does(tmp_path: Path) -> None:
    # master has pip.json's findings; a pull request into master first sends npm.json, then
    # both: pip.json's findings appear since the last scan but are not new (master has them).
    cases = str(tmp_path / "security-cases")
    identity = GitIdentity("securecase-bot", "securecase-bot@users.noreply.github.com")

    def scan(
        subject_pr: int | None, reports: tuple[str, ...], sources: tuple[str, ...]
    ) -> IngestResult:
        subject = make_subject(
            provider="github",
            repo="acme/shop",
            pr=subject_pr,
            branch=None if subject_pr else "master",
            target_branch="master" if subject_pr else None,
        )
        request = IngestRequest(
            reports=tuple(TRIVY / r for r in reports),
            subject=subject,
            cases_repo=cases,
            identity=identity,
            sources=sources,
            commit=PR_HEAD,
        )
        return ingest(request, clock=FixedClock(NOW))

    scan(None, ("pip.json",), ("py",))
    scan(7, ("npm.json",), ("js",))
    result = scan(7, ("pip.json", "npm.json"), ("py", "js"))
    run_publish(
        result, PostingPlan(post=False, explicit=False, settings=None), actions_context(tmp_path)
    )

    values = step_outputs(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    new_row = re.search(r"^\| new \|.* (\d+) \|$", summary, re.MULTILINE)
    existing_row = re.search(r"^\| existing \|.* (\d+) \|$", summary, re.MULTILINE)
    assert new_row is not None and existing_row is not None
    appeared = re.search(r"(\d+) appeared and (\d+) fixed since the last scan", summary)
    assert appeared is not None
    assert values["new"] == new_row.group(1)
    assert values["appeared"] == appeared.group(1) and values["fixed"] == appeared.group(2)
    # the two words count different things here: npm.json's findings are new, pip.json's appeared
    assert int(values["new"]) > 0 and int(values["appeared"]) > 0
    assert values["appeared"] == existing_row.group(1) != values["new"]
    assert values["appeared"] == str(len(result.appeared))
