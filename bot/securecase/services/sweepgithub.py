"""What the sweep does on GitHub besides listing: playbook issues and new check runs.

Both run after the sweep decided what changed; every failure becomes a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from securecase.domain.policy import Policy
from securecase.domain.subjects import Provider
from securecase.domain.sweep import CaseSweep, Event, EventKind, RepoState
from securecase.errors import GitHubError, SecurecaseError
from securecase.storage.casefile import CASE_FILE

if TYPE_CHECKING:
    from securecase.github.listing import IssueRef, SweepClient

#: The hidden marker that finds a case's issue again.
ISSUE_MARKER = "<!-- securecase:case={key} -->"


def playbook_issues(client: SweepClient, repo: str, events: Sequence[Event]) -> list[str]:
    """Open or update one issue per case that newly blocks or breaches its SLA; close the
    issue of a case that closed. Issues are found again by a hidden marker in their body."""
    by_case: dict[str, list[Event]] = {}
    for event in events:
        by_case.setdefault(event.case_key, []).append(event)
    urgent = {
        k: v
        for k, v in by_case.items()
        if any(e.kind in (EventKind.BLOCKED, EventKind.SLA_BREACHED) for e in v)
    }
    closing = {k for k, v in by_case.items() if any(e.kind is EventKind.CLOSED for e in v)}
    if not urgent and not closing:
        return []
    try:
        existing: dict[str, IssueRef] = {}
        for listed in client.sweep_issues(repo):
            for key in set(urgent) | closing:
                if ISSUE_MARKER.format(key=key) in listed.body:
                    existing[key] = listed
        for key, found in sorted(urgent.items()):
            body = _issue_body(key, found)
            known = existing.get(key)
            if known is None:
                client.open_issue(repo, title=f"securecase: {key}", body=body)
            else:
                client.edit_issue(repo, known.number, body=body, state="open")
        for key in sorted(closing):
            known = existing.get(key)
            if known is not None and known.open:
                client.edit_issue(repo, known.number, state="closed")
    except GitHubError as error:
        return [f"--open-issues {repo}: {error.message}"]
    return []


def _issue_body(key: str, events: Iterable[Event]) -> str:
    lines = [ISSUE_MARKER.format(key=key), f"Security case `{key}` needs attention:", ""]
    lines += [f"- {e.text}" for e in events]
    return "\n".join(lines) + "\n"


def post_check_runs(
    client: SweepClient,
    final: Mapping[str, CaseSweep],
    states: Mapping[tuple[str, str], RepoState],
    policy: Policy,
    *,
    head: str | None,
    web_base: str | None,
    now: datetime,
) -> list[str]:
    """A new check run on the head commit of each pull request whose decision changed."""
    from securecase.domain.outcome import IngestResult
    from securecase.github.links import case_file_url
    from securecase.github.publish import CheckTarget, check_content, post_check

    warnings = []
    for folder, swept in sorted(final.items()):
        if not swept.decision_changed or swept.decision is None or swept.closed is not None:
            continue
        subject = swept.case.subject
        if not subject.is_pr or subject.pr is None or subject.provider is not Provider.GITHUB:
            continue
        state = states.get((subject.org, subject.repo))
        pull = state.pulls.get(subject.pr) if state and state.pulls else None
        if pull is None or not pull.head_sha:
            warnings.append(f"{swept.case.key}: no head commit known, no check run posted")
            continue
        case_path = f"{folder}/{CASE_FILE}"
        result = IngestResult(
            case=swept.case,
            decision=swept.decision,
            policy=policy,
            case_path=case_path,
            cases_commit=head,
            committed=head is not None,
            stale=False,
            appeared=(),
            fixed=(),
        )
        data = check_content(
            result, case_url=case_file_url(web_base, head, case_path), run_url=None
        )
        try:
            outcome = post_check(client, CheckTarget(subject.slug, pull.head_sha), data, now=now)
        except SecurecaseError as error:
            warnings.append(f"{swept.case.key}: check run not posted: {error.message}")
            continue
        warnings.extend(f"{swept.case.key}: {w}" for w in outcome.warnings)
    return warnings
