"""Workflow artifacts that carry queued records: list, download, delete.

GitHub's listing filters by exact name only, and each record's artifact has a name of its own
(two jobs of one run may both queue a record, and a run's artifact names must differ), so the
listing reads every page of a repository's artifacts (100 a page) and keeps the names that
start with the records' prefix. A download is a 302 to a short-lived URL on another host: the
token goes to GitHub's API only, never to that host, and the body is read with a size cap.
Each request goes through :class:`GitHubClient`'s retry loop, so ``calls`` counts requests.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from securecase.errors import GitHubError
from securecase.github.client import GitHubClient

#: Artifacts whose name starts with this carry one queued record each; the rest of the name is
#: the record's entry id.
RECORD_ARTIFACT_PREFIX = "securecase-record-"
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class RecordArtifact:
    """One listed artifact: where it came from and what GitHub says about it."""

    repo: str
    id: int
    name: str
    size: int
    expired: bool
    #: The run that uploaded it; None when GitHub does not say.
    run_id: int | None
    #: False when the run's head repository is not the artifact's repository (a fork's
    #: pull request run), None when GitHub does not say.
    same_repository: bool | None

    @property
    def entry_id(self) -> str:
        """The queued record's entry id, from the artifact's name."""
        return self.name[len(RECORD_ARTIFACT_PREFIX) :]


class ArtifactClient(GitHubClient):
    """:class:`GitHubClient` plus the artifact calls of ``securecase sweep --fold-artifacts``."""

    def record_artifacts(self, repo: str) -> list[RecordArtifact]:
        """The artifacts of ``repo`` that carry a queued record, oldest first."""
        listing = self._repo(repo).get_artifacts()
        found: list[RecordArtifact] = []
        page = 0
        while True:
            items: list[Any] = self._call(
                "GET", "list artifacts", functools.partial(_page, listing, page)
            )
            found.extend(
                _record_artifact(repo, item.raw_data)
                for item in items
                if str(item.name).startswith(RECORD_ARTIFACT_PREFIX)
            )
            if len(items) < int(self._client().per_page):
                return sorted(found, key=lambda a: a.id)
            page += 1

    def download(self, artifact: RecordArtifact, max_bytes: int) -> bytes:
        """The zip of ``artifact``; ``GitHubError`` when it is larger than ``max_bytes``."""
        import requests

        api = self._settings.api_url.rstrip("/")
        url = f"{api}/repos/{artifact.repo}/actions/artifacts/{artifact.id}/zip"
        auth = self._client().requester.auth
        headers = {
            "Accept": "application/vnd.github+json",
            # The scheme PyGithub sends with the same credentials (``token`` for a token).
            "Authorization": f"{auth.token_type} {auth.token}" if auth is not None else "",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        timeout = self._settings.timeout

        def fetch() -> bytes:
            with requests.Session() as session:
                answer = session.get(url, headers=headers, allow_redirects=False, timeout=timeout)
                if answer.status_code != 302 or "Location" not in answer.headers:
                    raise _api_error(answer)
                # The archive's URL is signed; it gets no token (and no other header of ours).
                with session.get(
                    answer.headers["Location"], stream=True, timeout=timeout
                ) as archive:
                    if archive.status_code != 200:
                        raise _api_error(archive)
                    body = bytearray()
                    for chunk in archive.iter_content(_CHUNK):
                        body += chunk
                        if len(body) > max_bytes:
                            raise GitHubError(
                                f"artifact {artifact.name} of {artifact.repo} is larger than "
                                f"{max_bytes:,} bytes",
                                kind="invalid",
                                hint="a queued record's artifact is one scan's reports; this "
                                "one is not (delete it by hand after a look)",
                            )
                    return bytes(body)

        return self._call("GET", "download an artifact", fetch)

    def delete(self, artifact: RecordArtifact) -> None:
        """Delete ``artifact`` (its record landed)."""
        path = f"/repos/{artifact.repo}/actions/artifacts/{artifact.id}"

        def delete() -> None:
            self._client().requester.requestJsonAndCheck("DELETE", path)

        self._call("DELETE", "delete an artifact", delete)


def _page(listing: Any, page: int) -> list[Any]:
    return list(listing.get_page(page))


def _record_artifact(repo: str, data: dict[str, Any]) -> RecordArtifact:
    run = data.get("workflow_run") or {}
    home, head = run.get("repository_id"), run.get("head_repository_id")
    return RecordArtifact(
        repo=repo,
        id=int(data["id"]),
        name=str(data["name"]),
        size=int(data.get("size_in_bytes") or 0),
        expired=bool(data.get("expired")),
        run_id=int(run["id"]) if run.get("id") is not None else None,
        same_repository=None if home is None or head is None else home == head,
    )


def _api_error(answer: Any) -> Exception:
    """A failed answer as PyGithub's exception, so the retry loop classifies it as any other."""
    from github import GithubException

    try:
        data = answer.json()
    except ValueError:
        data = {"message": answer.reason or ""}
    return GithubException(answer.status_code, data, dict(answer.headers))
