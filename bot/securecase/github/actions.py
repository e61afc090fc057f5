"""Who and what is being scanned inside GitHub Actions: the environment plus the event payload.

For pull requests ``GITHUB_SHA`` is a test merge commit that reviewers never see; the check run
belongs on the PR head, ``pull_request.head.sha`` in the payload at ``GITHUB_EVENT_PATH``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from securecase.domain.subjects import check_commit_id
from securecase.errors import InputError, UsageError

PR_EVENTS = frozenset({"pull_request", "pull_request_target"})
_ZERO_SHA = "0" * 40


@dataclass(frozen=True, slots=True)
class ActionsContext:
    """What one Actions run scans; ``None`` where the event does not say."""

    event_name: str
    repository: str | None
    pr: int | None
    head_sha: str | None
    branch: str | None
    target_branch: str | None
    run_url: str | None
    server_url: str
    api_url: str
    #: True when a pull request comes from a fork (its token is read-only).
    from_fork: bool
    step_summary_path: str | None
    output_path: str | None
    #: The ref the event names (``refs/heads/x``, ``refs/tags/v1``...), for messages.
    ref: str | None = None


def in_actions(env: Mapping[str, str]) -> bool:
    """True inside a GitHub Actions job."""
    return env.get("GITHUB_ACTIONS") == "true"


def read_context(env: Mapping[str, str]) -> ActionsContext:
    """Build the context from the Actions environment (and the event file it names)."""
    event_name = env.get("GITHUB_EVENT_NAME", "")
    payload = read_event_payload(env.get("GITHUB_EVENT_PATH"))
    repository = env.get("GITHUB_REPOSITORY") or _get(payload, "repository", "full_name")
    server_url = (env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
    pr = head_sha = branch = target = None
    ref: str | None = env.get("GITHUB_REF") or _str(payload.get("ref"))
    from_fork = False
    if event_name in PR_EVENTS and isinstance(payload.get("pull_request"), dict):
        number = _get(payload, "pull_request", "number")
        pr = number if isinstance(number, int) else None
        head_sha = _commit_of(
            _str(_get(payload, "pull_request", "head", "sha")), "event pull_request.head.sha"
        )
        branch = _str(_get(payload, "pull_request", "head", "ref")) or env.get("GITHUB_HEAD_REF")
        target = _str(_get(payload, "pull_request", "base", "ref")) or env.get("GITHUB_BASE_REF")
        head_repo = _str(_get(payload, "pull_request", "head", "repo", "full_name"))
        base_repo = _str(_get(payload, "repository", "full_name")) or repository
        from_fork = head_repo is None or head_repo != base_repo
    elif event_name == "push":
        after = _commit_of(_str(payload.get("after")), "event push.after")
        head_sha = after if after and after != _ZERO_SHA else None
        if head_sha is None and not payload.get("deleted"):
            head_sha = _commit_of(env.get("GITHUB_SHA"), "GITHUB_SHA")
        ref = _str(payload.get("ref")) or env.get("GITHUB_REF")
        branch = _branch_of(ref)
    else:
        # schedule, workflow_dispatch and the rest: the commit and branch the run checked out.
        head_sha = _commit_of(env.get("GITHUB_SHA"), "GITHUB_SHA")
        branch = _branch_of(env.get("GITHUB_REF") or _str(payload.get("ref")))
    return ActionsContext(
        event_name=event_name,
        repository=repository,
        pr=pr,
        head_sha=head_sha,
        branch=branch,
        target_branch=target,
        run_url=_run_url(env, server_url, repository),
        server_url=server_url,
        api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        from_fork=from_fork,
        step_summary_path=env.get("GITHUB_STEP_SUMMARY") or None,
        output_path=env.get("GITHUB_OUTPUT") or None,
        ref=ref,
    )


def _commit_of(value: str | None, where: str) -> str | None:
    """A commit id from the environment or the event, checked like ``--commit``: it ends up
    in commit trailers and API paths, so anything but hex digits is refused."""
    return check_commit_id(value, where) if value else None


def read_event_payload(path: str | None) -> dict[str, Any]:
    """The event payload at ``$GITHUB_EVENT_PATH`` (empty when no path is set); an unreadable
    file or one that is not a JSON object is an ``InputError`` naming the path."""
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise InputError(
            f"GITHUB_EVENT_PATH {path}: cannot read the event payload ({exc.strerror})"
        ) from exc
    except ValueError as exc:
        raise InputError(f"GITHUB_EVENT_PATH {path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"GITHUB_EVENT_PATH {path}: expected a JSON object at $")
    return data


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _branch_of(ref: str | None) -> str | None:
    if ref and ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :] or None
    return None


def _run_url(env: Mapping[str, str], server_url: str, repository: str | None) -> str | None:
    run_id = env.get("GITHUB_RUN_ID")
    if not run_id or not repository:
        return None
    url = f"{server_url}/{repository}/actions/runs/{run_id}"
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    if attempt and attempt != "1":
        url += f"/attempts/{attempt}"
    return url


@dataclass(frozen=True, slots=True)
class SubjectFlags:
    """The subject options of ``ingest`` as given on the command line (None = not given)."""

    repo: str | None
    pr: int | None
    branch: str | None
    target_branch: str | None
    commit: str | None
    run_url: str | None


def with_context_defaults(flags: SubjectFlags, context: ActionsContext) -> SubjectFlags:
    """Fill what the command line left out from the Actions context; given flags win.

    The subject (``--pr`` / ``--branch``) is taken from the event only when neither was given,
    so an explicit ``--branch`` on a pull_request run still means that branch.
    """
    pr, branch, target = flags.pr, flags.branch, flags.target_branch
    if pr is None and branch is None:
        pr, branch = context.pr, context.branch
        if target is None and pr is not None:
            target = context.target_branch
    return SubjectFlags(
        repo=flags.repo or context.repository,
        pr=pr,
        branch=branch,
        target_branch=target,
        commit=flags.commit or context.head_sha,
        run_url=flags.run_url or context.run_url,
    )


@dataclass(frozen=True, slots=True)
class ResolvedSubject:
    """The subject options after the Actions defaults; ``context`` is None outside Actions."""

    #: The scanned repository, ``ORG/NAME``: always known once resolved.
    repo: str
    flags: SubjectFlags
    context: ActionsContext | None


def resolve_subject(flags: SubjectFlags, env: Mapping[str, str]) -> ResolvedSubject:
    """Complete the subject options from the Actions context when ``env`` is an Actions job.

    Raises ``UsageError`` when the repository is still unknown (outside Actions without
    ``--repo``) and ``InputError`` when the event payload cannot be read.
    """
    if flags.commit is not None:
        flags = replace(flags, commit=check_commit_id(flags.commit, "--commit"))
    context = read_context(env) if in_actions(env) else None
    if context is not None:
        flags = with_context_defaults(flags, context)
    if flags.repo is None:
        raise UsageError(
            "--repo ORG/NAME is required outside GitHub Actions",
            hint="inside Actions it defaults to $GITHUB_REPOSITORY",
        )
    if context is not None and flags.pr is None and flags.branch is None:
        # A tag push, or a run started on a tag: a case belongs to a pull request or branch.
        where = f" on {context.ref}" if context.ref else ""
        raise UsageError(
            f"this {context.event_name or 'Actions'} run{where} names no pull request or branch",
            hint="pass --branch NAME (the branch the scanned commit belongs to) or --pr N",
        )
    return ResolvedSubject(repo=flags.repo, flags=flags, context=context)
