"""The GitHub adapter: the only module that imports PyGithub (lazily, inside functions).

Retries are ours, not PyGithub's: its ``GithubRetry`` never retries PATCH (check-run updates),
retries 5xx immediately without backoff, and sleeps for any ``Retry-After`` without a bound.
Here every call (GET, POST and PATCH alike) is retried on 5xx, network errors and rate limits,
honouring ``Retry-After`` and ``x-ratelimit-reset``, within one total wait budget per client.
A create that may have reached GitHub before a 5xx is looked up before it is sent again, so a
retry never duplicates the check run.

Error messages are built from the HTTP status and GitHub's message only and are scrubbed of
the token, so no token reaches a log, a message or an exception.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from securecase.errors import GitHubError, UsageError

if TYPE_CHECKING:
    from github import Github
    from securecase.github.checks import Annotation
    from securecase.github.port import (
        CheckRunFields,
        CommitStatusFields,
        ExistingCheckRun,
        IssueComment,
        PullRef,
    )

DEFAULT_API_URL = "https://api.github.com"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep trying: attempts per call and seconds slept in total per client."""

    attempts: int = 4
    max_wait: float = 60.0
    #: GitHub: without Retry-After or a reset time, wait at least a minute after a secondary
    #: rate limit.
    secondary_wait: float = 60.0
    first_backoff: float = 1.0


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """GitHub App installation auth: app id, PEM private key, installation id."""

    app_id: str
    #: Kept out of ``repr`` so no log or traceback of the settings shows the key.
    private_key: str = field(repr=False)
    installation_id: int


@dataclass(frozen=True, slots=True)
class GitHubSettings:
    """How to reach GitHub: API URL and one of a token or App credentials."""

    api_url: str = DEFAULT_API_URL
    #: Kept out of ``repr`` (and so out of every dataclass that holds these settings).
    token: str | None = field(default=None, repr=False)
    app: AppCredentials | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout: float = 15.0


def settings_from_options(
    *,
    api_url: str,
    token: str | None,
    app_id: str | None,
    app_key_file: Path | None,
    app_installation_id: int | None,
    max_wait: float,
    app_key: str | None = None,
) -> GitHubSettings | None:
    """How to reach GitHub from the ``ingest`` options; None when no credentials are given.

    App credentials win over a token. The three App options go together, and the private key
    is read here, so a bad combination or an unreadable key is a ``UsageError`` before the
    ingest commits anything. The key comes from ``app_key_file`` or, as PEM text, from
    ``app_key`` ($SECURECASE_GITHUB_APP_KEY: it stays in memory, never on disk); not both.
    """
    retry = RetryPolicy(max_wait=max_wait)
    app_key = app_key if app_key and app_key.strip() else None
    if app_key is not None and app_key_file is not None:
        raise UsageError(
            "the GitHub App key is given twice: --github-app-key-file and "
            "$SECURECASE_GITHUB_APP_KEY",
            hint="keep one of them",
        )
    key_given = app_key is not None or app_key_file is not None
    app_given = [app_id is not None, key_given, app_installation_id is not None]
    if any(app_given):
        if not all(app_given) or app_id is None or app_installation_id is None:
            raise UsageError(
                "GitHub App auth needs --github-app-id, the key (--github-app-key-file or "
                "$SECURECASE_GITHUB_APP_KEY) and --github-app-installation-id together"
            )
        if app_key is not None:
            key = app_key
        else:
            assert app_key_file is not None
            try:
                key = app_key_file.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(
                    f"--github-app-key-file {app_key_file}: cannot read the key"
                ) from exc
        app = AppCredentials(app_id, key, app_installation_id)
        return GitHubSettings(api_url=api_url, app=app, retry=retry)
    if token:
        return GitHubSettings(api_url=api_url, token=token, retry=retry)
    return None


class _Retryable(Exception):
    def __init__(self, error: GitHubError, wait: float) -> None:
        super().__init__(error.message)
        self.error = error
        self.wait = wait


class GitHubClient:
    """Implements ``GitHubPort`` with PyGithub over ``requests``."""

    def __init__(
        self, settings: GitHubSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if not settings.token and settings.app is None:
            raise UsageError(
                "no GitHub credentials",
                hint="pass --github-token (default $GITHUB_TOKEN) or the --github-app-* options",
            )
        self._settings = settings
        self._sleep = sleep
        self._waited = 0.0
        from securecase.storage.git import url_secrets

        # The token, and any credentials a user put into the API URL itself.
        self._secrets = tuple(s for s in (settings.token, *url_secrets(settings.api_url)) if s)
        self._github: Github | None = None
        #: Requests sent, for the caller's diagnostics: (method, operation) pairs.
        self.calls: list[tuple[str, str]] = []

    # -- the port ---------------------------------------------------------------------------

    def find_check_runs(self, repo: str, head_sha: str, name: str) -> list[ExistingCheckRun]:
        from securecase.github.port import ExistingCheckRun

        def list_runs() -> list[ExistingCheckRun]:
            commit = self._repo(repo).get_commit(head_sha)
            found = []
            for run in commit.get_check_runs(check_name=name):
                output = run.output
                count = getattr(output, "annotations_count", 0) if output is not None else 0
                found.append(ExistingCheckRun(run.id, run.external_id, int(count or 0)))
            return found

        return self._call("GET", "list check runs", list_runs)

    def pull_target_branch(self, repo: str, number: int) -> str:
        """The branch pull request ``number`` merges into (``base.ref`` of ``GET pulls/{n}``)."""

        def get_base() -> str:
            ref = self._repo(repo).get_pull(number).base.ref
            if not isinstance(ref, str) or not ref:
                raise GitHubError(
                    f"GitHub gave no base branch for pull request {number}", kind="invalid"
                )
            return ref

        return self._call("GET", f"read pull request {number}", get_base)

    def create_check_run(self, repo: str, fields: CheckRunFields) -> int:
        attempt = {"n": 0}

        def create() -> int:
            attempt["n"] += 1
            if attempt["n"] > 1:
                # The previous POST may have been applied before the error: never duplicate.
                for run in self.find_check_runs(repo, fields.head_sha, fields.name):
                    if run.external_id == fields.external_id:
                        return run.id
            kwargs = _check_run_kwargs(fields)
            run = self._repo(repo).create_check_run(**kwargs)
            return int(run.id)

        return self._call("POST", "create check run", create)

    def update_check_run(self, repo: str, check_run_id: int, fields: CheckRunFields) -> None:
        attempt = {"n": 0}

        def update() -> None:
            attempt["n"] += 1
            batch = fields
            if attempt["n"] > 1 and fields.annotations:
                # The previous PATCH may have been applied before the error, and GitHub
                # appends annotations: resend only those the run does not hold yet.
                batch = replace(fields, annotations=self._missing(repo, check_run_id, fields))
            # Built from the id, so no GET is needed before the PATCH.
            run = self._check_run(repo, check_run_id)
            kwargs = _check_run_kwargs(batch)
            kwargs.pop("head_sha")
            run.edit(**kwargs)

        self._call("PATCH", "update check run", update)

    def _missing(
        self, repo: str, check_run_id: int, fields: CheckRunFields
    ) -> tuple[Annotation, ...]:
        present = Counter(self.list_annotations(repo, check_run_id))
        missing = []
        for annotation in fields.annotations:
            if present[annotation] > 0:
                present[annotation] -= 1
            else:
                missing.append(annotation)
        return tuple(missing)

    def list_annotations(self, repo: str, check_run_id: int) -> list[Annotation]:
        from securecase.github.checks import Annotation, AnnotationLevel

        def list_all() -> list[Annotation]:
            found = []
            for item in self._check_run(repo, check_run_id).get_annotations():
                try:
                    level = AnnotationLevel(item.annotation_level or "")
                except ValueError:
                    continue  # not a level securecase sends, so not one of ours
                found.append(
                    Annotation(
                        path=item.path,
                        start_line=int(item.start_line),
                        end_line=int(item.end_line),
                        level=level,
                        message=item.message or "",
                        title=item.title or "",
                    )
                )
            return found

        return self._call("GET", "list check-run annotations", list_all)

    def create_commit_status(self, repo: str, fields: CommitStatusFields) -> None:
        def create() -> None:
            commit = self._repo(repo).get_commit(fields.sha)
            extra: dict[str, Any] = {}
            if fields.target_url:
                extra["target_url"] = fields.target_url
            commit.create_status(
                fields.state, description=fields.description, context=fields.context, **extra
            )

        self._call("POST", "create commit status", create)

    # -- pull requests and comments -------------------------------------------------------

    def pulls_for_commit(self, repo: str, sha: str) -> list[PullRef]:
        from securecase.github.port import PullRef

        def list_pulls() -> list[PullRef]:
            found = []
            for pull in self._repo(repo).get_commit(sha).get_pulls():
                head_repo = pull.head.repo.full_name if pull.head.repo is not None else None
                found.append(
                    PullRef(
                        number=int(pull.number),
                        state=str(pull.state),
                        head_sha=str(pull.head.sha),
                        head_ref=str(pull.head.ref),
                        head_repo=head_repo,
                        base_ref=str(pull.base.ref),
                        base_repo=str(pull.base.repo.full_name),
                    )
                )
            return found

        return self._call("GET", "list the pull requests of a commit", list_pulls)

    def list_issue_comments(self, repo: str, number: int) -> list[IssueComment]:
        from securecase.github.port import IssueComment

        def list_all() -> list[IssueComment]:
            return [
                IssueComment(
                    id=int(item.id),
                    body=item.body or "",
                    author_is_bot=item.user is not None and item.user.type == "Bot",
                )
                for item in self._repo(repo).get_issue(number).get_comments()
            ]

        return self._call("GET", "list pull-request comments", list_all)

    def create_issue_comment(self, repo: str, number: int, body: str) -> int:
        attempt = {"n": 0}

        def create() -> int:
            attempt["n"] += 1
            if attempt["n"] > 1:
                # The previous POST may have been applied before the error: never duplicate.
                for comment in self.list_issue_comments(repo, number):
                    if comment.body == body:
                        return comment.id
            return int(self._repo(repo).get_issue(number).create_comment(body).id)

        return self._call("POST", "create a pull-request comment", create)

    def update_issue_comment(self, repo: str, number: int, comment_id: int, body: str) -> None:
        def update() -> None:
            self._repo(repo).get_issue(number).get_comment(comment_id).edit(body)

        self._call("PATCH", "update a pull-request comment", update)

    def delete_issue_comment(self, repo: str, number: int, comment_id: int) -> None:
        def delete() -> None:
            self._repo(repo).get_issue(number).get_comment(comment_id).delete()

        self._call("DELETE", "delete a pull-request comment", delete)

    # -- plumbing ---------------------------------------------------------------------------

    def _client(self) -> Github:
        if self._github is None:
            from github import Auth, Github

            auth: Any
            if self._settings.app is not None:
                app = self._settings.app
                auth = Auth.AppAuth(app.app_id, app.private_key).get_installation_auth(
                    app.installation_id
                )
            else:
                auth = Auth.Token(self._settings.token or "")
            self._github = Github(
                auth=auth,
                base_url=self._settings.api_url.rstrip("/"),
                timeout=int(self._settings.timeout),
                retry=None,
                # The retry loop below spaces retries; the normal path makes few requests.
                seconds_between_requests=None,
                seconds_between_writes=None,
                lazy=True,
                # Lists (check runs, annotations) in as few pages as GitHub allows.
                per_page=100,
            )
        return self._github

    def _repo(self, repo: str) -> Any:
        return self._client().get_repo(repo)

    def _check_run(self, repo: str, check_run_id: int) -> Any:
        # With lazy=True this builds the object from its URL without a GET.
        return self._repo(repo).get_check_run(check_run_id)

    def _call(self, method: str, what: str, action: Callable[[], T]) -> T:
        policy = self._settings.retry
        attempt = 0
        while True:
            attempt += 1
            self.calls.append((method, what))
            try:
                return action()
            except GitHubError:
                raise
            except Exception as exc:  # mapped below; nothing unknown escapes unscrubbed
                try:
                    raise self._classify(exc, what, attempt) from None
                except _Retryable as retry:
                    remaining = policy.max_wait - self._waited
                    if attempt >= policy.attempts:
                        raise retry.error from None
                    if retry.wait > remaining:
                        raise GitHubError(
                            f"{retry.error.message}; a retry would wait {retry.wait:.0f}s, over "
                            f"the remaining wait budget of {max(remaining, 0):.0f}s",
                            kind=retry.error.kind,
                            status=retry.error.status,
                            hint="GitHub asked us to slow down; raise --github-max-wait to "
                            "wait longer",
                        ) from None
                    self._waited += retry.wait
                    self._sleep(retry.wait)

    def _classify(self, exc: Exception, what: str, attempt: int) -> Exception:
        """Map a PyGithub/requests failure to GitHubError, or _Retryable with its wait."""
        import requests

        from github import GithubException

        policy = self._settings.retry
        backoff = policy.first_backoff * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
        if isinstance(exc, requests.RequestException):
            error = GitHubError(
                self._scrub(f"cannot reach GitHub to {what}: {type(exc).__name__}"),
                kind="network",
                hint=f"check --github-api-url ({self._settings.api_url}) and the network",
            )
            return _Retryable(error, backoff)
        if not isinstance(exc, GithubException):
            return GitHubError(
                self._scrub(f"GitHub request to {what} failed: {type(exc).__name__}: {exc}"),
                kind="invalid",
            )
        status = int(exc.status or 0)
        message = self._scrub(_api_message(exc))
        headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
        text = f"GitHub refused to {what} ({status}: {message})"
        # 429 is always a rate limit, with or without a Retry-After header or a clear message.
        if status == 429 or (status == 403 and _is_rate_limit(headers, message)):
            error = GitHubError(
                f"GitHub rate limit hit while trying to {what} ({status}: {message})",
                kind="rate_limit",
                status=status,
            )
            return _Retryable(error, _rate_limit_wait(headers, policy.secondary_wait))
        if status >= 500:
            error = GitHubError(
                f"GitHub failed to {what} ({status}: {message})", kind="server", status=status
            )
            return _Retryable(error, backoff)
        if status == 401:
            return GitHubError(
                f"GitHub rejected the token ({status}: {message}) while trying to {what}",
                kind="auth",
                status=status,
                hint="the GitHub token is invalid, expired or for another host: check "
                "--github-token / $GITHUB_TOKEN (or the App credentials) and --github-api-url",
            )
        if status in (403, 404):
            return GitHubError(
                text,
                kind="forbidden",
                status=status,
                hint="check runs need a GitHub App token (GITHUB_TOKEN with checks: write); "
                "personal tokens and fork pull requests cannot create them",
            )
        return GitHubError(text, kind="invalid", status=status)

    def _scrub(self, text: str) -> str:
        from securecase.storage.git import redact

        for secret in self._secrets:  # also the short ones redact() leaves alone
            text = text.replace(secret, "***")
        return redact(text, self._secrets)


def lookup_target_branch(settings: GitHubSettings, repo: str, pr: int) -> str:
    """The target branch of pull request ``pr`` of ``repo``, read through the API.

    Raises ``UsageError`` (exit 2, nothing committed) when GitHub cannot tell: a pull request
    without its target branch is never judged.
    """
    try:
        return GitHubClient(settings).pull_target_branch(repo, pr)
    except GitHubError as exc:
        raise UsageError(
            f"--pr {pr}: cannot read the pull request's target branch from GitHub ({exc.message})",
            hint="pass --target-branch NAME (the branch the pull request merges into)",
        ) from exc


def _api_message(exc: Any) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        message = data["message"]
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
            detail = first.get("message") if isinstance(first, dict) else str(first)
            if detail:
                message = f"{message}: {detail}"
        return " ".join(str(message).split())[:300]
    return "no message"


def _is_rate_limit(headers: Mapping[str, str], message: str) -> bool:
    return (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining") == "0"
        or "rate limit" in message.lower()
    )


def _rate_limit_wait(headers: Mapping[str, str], secondary_wait: float) -> float:
    """GitHub's rules: Retry-After, else the reset time when none remain, else a minute."""
    retry_after = headers.get("retry-after", "")
    if retry_after.strip().isdigit():
        return float(retry_after.strip())
    reset = headers.get("x-ratelimit-reset", "")
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(float(reset) - time.time(), 0.0) + 1.0
    return secondary_wait


def _check_run_kwargs(fields: CheckRunFields) -> dict[str, Any]:
    from datetime import UTC

    output: dict[str, Any] = {"title": fields.title, "summary": fields.summary}
    if fields.annotations:
        output["annotations"] = [_annotation(a) for a in fields.annotations]
    kwargs: dict[str, Any] = {
        "name": fields.name,
        "head_sha": fields.head_sha,
        "status": "completed",
        "conclusion": fields.conclusion.value,
        # PyGithub formats with a literal Z and ignores the zone: pass UTC.
        "completed_at": fields.completed_at.astimezone(UTC),
        "output": output,
    }
    if fields.details_url:
        kwargs["details_url"] = fields.details_url
    if fields.external_id:
        kwargs["external_id"] = fields.external_id
    return kwargs


def _annotation(annotation: Annotation) -> dict[str, Any]:
    return {
        "path": annotation.path,
        "start_line": annotation.start_line,
        "end_line": annotation.end_line,
        "annotation_level": annotation.level.value,
        "message": annotation.message,
        "title": annotation.title,
    }
