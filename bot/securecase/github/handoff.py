"""The trusted half of the ``workflow_run`` hand-off for fork and Dependabot pull requests.

A ``pull_request`` run from a fork (or from Dependabot) gets no secrets and a read-only token,
so it only scans and uploads the reports as an artifact. A ``workflow_run`` workflow, which
runs the default branch's code, downloads them and ingests. Everything in that artifact was
written by the pull request's code, so none of it may name the subject: the pull request,
its head commit and its target branch come from the event payload GitHub wrote for the
trusted run (``workflow_run.head_sha``, ``head_repository``) and from the API
(``GET /repos/{owner}/{repo}/commits/{sha}/pulls``: ``workflow_run.pull_requests`` is empty
for forks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from securecase.errors import InputError, UsageError
from securecase.github.actions import ResolvedSubject, SubjectFlags, read_event_payload
from securecase.github.port import PullRef, PullRequestPort

if TYPE_CHECKING:
    from securecase.github.client import GitHubSettings

WORKFLOW_RUN_EVENT = "workflow_run"
_SHA_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class TriggeringRun:
    """The run that scanned, as the trusted run's event payload describes it."""

    id: int
    #: The event that started the scanning run: pull_request or push.
    event: str
    head_sha: str
    head_branch: str | None
    #: ``owner/name`` the scanned commit comes from (the fork for a fork pull request).
    head_repository: str | None
    #: ``owner/name`` the workflows run in (where the check run goes).
    repository: str
    conclusion: str | None
    html_url: str | None
    #: Pull request numbers GitHub filled in (same-repository pull requests only).
    pull_requests: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class HandOffSubject:
    """What the ingest records and reports on, all from GitHub, none from the artifact."""

    repo: str
    pr: int | None
    branch: str | None
    target_branch: str | None
    head_sha: str
    run_url: str | None


def read_triggering_run(env: Mapping[str, str]) -> TriggeringRun:
    """The triggering run from ``$GITHUB_EVENT_PATH`` of a ``workflow_run`` job.

    ``UsageError`` outside such a job; ``InputError`` (with the JSON path) when the payload
    lacks what the hand-off needs.
    """
    event_name = env.get("GITHUB_EVENT_NAME", "")
    if env.get("GITHUB_ACTIONS") != "true" or event_name != WORKFLOW_RUN_EVENT:
        raise UsageError(
            "--from-workflow-run works only in a GitHub Actions job started by a workflow_run "
            f"event (this is {event_name or 'not an Actions job'})",
            hint="see examples/workflows/pr-ingest-trusted.yml",
        )
    path = env.get("GITHUB_EVENT_PATH") or ""
    if not path:
        raise InputError("GITHUB_EVENT_PATH is not set: the workflow_run event payload is missing")
    payload = read_event_payload(path)
    run = payload.get("workflow_run")
    if not isinstance(run, dict):
        raise InputError(f"GITHUB_EVENT_PATH {path}: no object at $.workflow_run")
    problems = []

    def need(value: Any, where: str, kind: type) -> Any:
        if not isinstance(value, kind) or isinstance(value, bool) or value in ("", None):
            problems.append(f"$.workflow_run.{where}: expected a {kind.__name__}")
            return None
        return value

    run_id = need(run.get("id"), "id", int)
    event = need(run.get("event"), "event", str)
    head_sha = need(run.get("head_sha"), "head_sha", str)
    if head_sha is not None and not _is_sha(head_sha):
        problems.append("$.workflow_run.head_sha: expected a 40-hex commit id")
    repository = env.get("GITHUB_REPOSITORY") or _full_name(payload.get("repository"))
    if not repository:
        problems.append("$.repository.full_name: expected the repository")
    if problems:
        raise InputError(f"GITHUB_EVENT_PATH {path}: not a workflow_run payload", problems=problems)
    pulls = run.get("pull_requests")
    numbers = tuple(
        p["number"]
        for p in (pulls if isinstance(pulls, list) else [])
        if isinstance(p, dict) and isinstance(p.get("number"), int)
    )
    return TriggeringRun(
        id=run_id,
        event=event,
        head_sha=head_sha,
        head_branch=_text(run.get("head_branch")),
        head_repository=_full_name(run.get("head_repository")),
        repository=str(repository),
        conclusion=_text(run.get("conclusion")),
        html_url=_text(run.get("html_url")),
        pull_requests=numbers,
    )


def resolve_handoff(run: TriggeringRun, github: PullRequestPort) -> HandOffSubject:
    """The subject of the scan the triggering run made, checked against the API.

    A ``pull_request`` run: the open pull request of ``run.repository`` whose head is
    ``run.head_sha`` (coming from ``run.head_repository``), found through the API. A ``push``
    run: the pushed branch, for pushes to ``run.repository`` itself. Fails closed
    (``InputError``, exit 2) when the run did not succeed, or when no pull request, or more
    than one, matches.
    """
    if run.conclusion != "success":
        raise InputError(
            f"the triggering run {run.id} ended with {run.conclusion or 'no conclusion'}, "
            "not success: its reports may be missing or partial",
            hint="run the ingest job only for successful scans (if: "
            "github.event.workflow_run.conclusion == 'success')",
        )
    if run.event == "push":
        if run.head_repository != run.repository or not run.head_branch:
            raise InputError(f"the triggering push run {run.id} is not a push to {run.repository}")
        return HandOffSubject(
            repo=run.repository,
            pr=None,
            branch=run.head_branch,
            target_branch=None,
            head_sha=run.head_sha,
            run_url=run.html_url,
        )
    if run.event != "pull_request":
        raise InputError(
            f"the triggering run {run.id} was started by {run.event!r}; the hand-off takes "
            "pull_request and push runs",
            hint="trigger the ingest workflow on the scan workflow of pull requests only",
        )
    pulls = [p for p in github.pulls_for_commit(run.repository, run.head_sha) if _made_by(p, run)]
    if not pulls:
        raise InputError(
            f"no open pull request of {run.repository} has head commit {run.head_sha} "
            f"(triggering run {run.id})",
            hint="the pull request may have been closed, or pushed to again since the scan; "
            "the next scan is ingested normally",
        )
    if len(pulls) > 1:
        numbers = ", ".join(f"#{p.number}" for p in pulls)
        raise InputError(
            f"head commit {run.head_sha} belongs to several open pull requests ({numbers}); "
            "the hand-off cannot tell which one this scan was for"
        )
    [pull] = pulls
    return HandOffSubject(
        repo=run.repository,
        pr=pull.number,
        branch=pull.head_ref,
        target_branch=pull.base_ref,
        head_sha=pull.head_sha,
        run_url=run.html_url,
    )


def _made_by(pull: PullRef, run: TriggeringRun) -> bool:
    """The pull request the run scanned: open, into this repository, head at the run's commit,
    from the run's head repository (when the payload names it)."""
    return (
        pull.state == "open"
        and pull.base_repo.lower() == run.repository.lower()
        and pull.head_sha == run.head_sha
        and (
            run.head_repository is None
            or (pull.head_repo or "").lower() == run.head_repository.lower()
        )
    )


def _full_name(value: Any) -> str | None:
    return _text(value.get("full_name")) if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_sha(value: str) -> bool:
    return len(value) == 40 and set(value) <= _SHA_CHARS


def subject_from_workflow_run(
    given: SubjectFlags, settings: GitHubSettings | None, env: Mapping[str, str]
) -> ResolvedSubject:
    """``ingest --from-workflow-run``: the subject from the triggering run and the API.

    Subject options on the command line are refused (the hand-off decides them), except
    ``--run-url``. Credentials are required: the pull request is looked up through the API.
    """
    from securecase.github.actions import read_context
    from securecase.github.client import GitHubClient

    named = [
        flag
        for flag, value in (
            ("--repo", given.repo),
            ("--pr", given.pr),
            ("--branch", given.branch),
            ("--target-branch", given.target_branch),
            ("--commit", given.commit),
        )
        if value is not None
    ]
    if named:
        raise UsageError(
            f"--from-workflow-run takes the subject from GitHub; drop {', '.join(named)}"
        )
    run = read_triggering_run(env)
    if settings is None:
        raise UsageError(
            "--from-workflow-run needs GitHub credentials to find the pull request",
            hint="pass --github-token (default $GITHUB_TOKEN) or the --github-app-* options",
        )
    subject = resolve_handoff(run, GitHubClient(settings))
    flags = SubjectFlags(
        repo=subject.repo,
        pr=subject.pr,
        branch=subject.branch,
        target_branch=subject.target_branch,
        commit=subject.head_sha,
        run_url=given.run_url or subject.run_url,
    )
    # The trusted run's own context: its job summary, step outputs and server URL.
    return ResolvedSubject(repo=subject.repo, flags=flags, context=read_context(env))
