"""``securecase sweep --fold-artifacts``: the records GitHub-hosted ingests kept as workflow
artifacts, folded in before the sweep (see :mod:`securecase.services.artifactfold`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from securecase.github.client import GitHubSettings
    from securecase.services.artifactfold import ArtifactFoldResult


def fold_artifacts_into(
    cases_repo: str,
    named: str | None,
    repo_glob: str | None,
    github: GitHubSettings,
    git_name: str,
    git_email: str,
    push_timeout: float,
) -> ArtifactFoldResult:
    """Fold the records kept as workflow artifacts into ``cases_repo`` (one push)."""
    from securecase.domain.policy.evaluate import glob_match
    from securecase.github.artifacts import ArtifactClient
    from securecase.services.artifactfold import (
        ArtifactFoldRequest,
        fold_artifacts,
        repos_with_cases,
    )
    from securecase.storage.store import GitIdentity

    repos = repos_with_cases(cases_repo)
    if repo_glob:
        repos = [r for r in repos if glob_match(repo_glob, r, ignore_case=True)]
    # A repository named outright (``named``: --repo without wildcards) is read even before its
    # first case landed: its first record may be the one waiting in an artifact.
    if named and not any(c in named for c in "*?[") and named.lower() not in map(str.lower, repos):
        repos.append(named)
    request = ArtifactFoldRequest(
        cases_repo=cases_repo,
        repos=tuple(repos),
        identity=GitIdentity(git_name, git_email),
        push_timeout=push_timeout,
    )
    return fold_artifacts(request, ArtifactClient(github))


def artifact_notes(folded: ArtifactFoldResult) -> list[str]:
    """What folding the artifacts did, as warnings (the refused ones end the sweep later)."""
    notes = list(folded.warnings)
    if folded.landed:
        notes.insert(0, f"{len(folded.landed)} record(s) kept as workflow artifacts landed")
    if folded.already_landed:
        notes.append(
            f"{len(folded.already_landed)} record artifact(s) had landed before; deleted"
            if len(folded.deleted) >= len(folded.already_landed)
            else f"{len(folded.already_landed)} record artifact(s) had landed before"
        )
    return notes


def artifact_data(results: Sequence[ArtifactFoldResult]) -> dict[str, Any]:
    """The ``artifacts`` key of ``sweep --output json`` with ``--fold-artifacts``."""
    return {
        "landed": [n for r in results for n in r.landed],
        "already_landed": [n for r in results for n in r.already_landed],
        "deleted": [n for r in results for n in r.deleted],
        "refused": [
            {"repo": x.repo, "name": x.name, "reason": x.reason} for r in results for x in r.refused
        ],
        "commits": sum(r.commits for r in results),
        "api_calls": sum(r.api_calls for r in results),
    }
