"""What the sweep asks of GitHub: pull request and branch listings, and playbook issues.

One listing of a repository's pull requests (all states, most recently updated first, 100 per
page, stopping as soon as every pull request asked about has been seen or the rest were last
updated before any case existed) and one of its branches, never a call per case. Each page is
one request through :class:`GitHubClient`'s retry loop, so ``calls`` counts requests.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from securecase.domain.sweep import PullState
from securecase.github.client import GitHubClient

#: The label the sweep puts on the issues it opens, to list only those.
ISSUE_LABEL = "securecase"


@dataclass(frozen=True, slots=True)
class IssueRef:
    """An issue the sweep opened earlier: number, state and body (with its marker)."""

    number: int
    open: bool
    body: str


class SweepClient(GitHubClient):
    """:class:`GitHubClient` plus the listings and issue calls of ``securecase sweep``."""

    def pull_states(
        self, repo: str, wanted: Collection[int], *, not_before: datetime | None
    ) -> dict[int, PullState]:
        """The state of the pull requests in ``wanted`` (those the listing reached).

        Pages are read newest update first; the listing stops when every wanted number has
        been seen, or at a pull request last updated before ``not_before`` (nothing older can
        have changed since the cases were recorded).
        """
        missing = set(wanted)
        found: dict[int, PullState] = {}
        pulls = self._repo(repo).get_pulls(state="all", sort="updated", direction="desc")
        page = 0
        while missing:
            items = self._page(pulls, page, "list pull requests")
            for pull in items:
                number = int(pull.number)
                if number in missing:
                    missing.discard(number)
                    found[number] = PullState(
                        number=number,
                        open=pull.state == "open",
                        merged=pull.merged_at is not None,
                        closed_at=_iso(pull.closed_at),
                        head_sha=pull.head.sha if pull.head is not None else None,
                    )
            if len(items) < self._page_size() or not items:
                break
            last = items[-1].updated_at
            if not_before is not None and last is not None and _aware(last) < not_before:
                break
            page += 1
        return found

    def branch_names(self, repo: str) -> frozenset[str]:
        """Every branch of ``repo`` (all pages)."""
        branches = self._repo(repo).get_branches()
        names: set[str] = set()
        page = 0
        while True:
            items = self._page(branches, page, "list branches")
            names.update(str(b.name) for b in items)
            if len(items) < self._page_size():
                return frozenset(names)
            page += 1

    def sweep_issues(self, repo: str) -> list[IssueRef]:
        """The issues labelled ``securecase`` in ``repo``, open and closed (pull requests
        left out)."""
        issues = self._repo(repo).get_issues(state="all", labels=[ISSUE_LABEL])
        found: list[IssueRef] = []
        page = 0
        while True:
            items = self._page(issues, page, "list issues")
            found.extend(
                IssueRef(int(i.number), i.state == "open", i.body or "")
                for i in items
                if i.pull_request is None
            )
            if len(items) < self._page_size():
                return found
            page += 1

    def open_issue(self, repo: str, *, title: str, body: str) -> int:
        """Create an issue labelled ``securecase``; its number."""

        def create() -> int:
            issue = self._repo(repo).create_issue(title=title, body=body, labels=[ISSUE_LABEL])
            return int(issue.number)

        return self._call("POST", "create an issue", create)

    def edit_issue(
        self, repo: str, number: int, *, body: str | None = None, state: str | None = None
    ) -> None:
        """Update an issue's body and/or state (``open`` or ``closed``)."""
        changes: dict[str, Any] = {}
        if body is not None:
            changes["body"] = body
        if state is not None:
            changes["state"] = state

        def edit() -> None:
            self._repo(repo).get_issue(number).edit(**changes)

        self._call("PATCH", "update an issue", edit)

    # -- plumbing ---------------------------------------------------------------------------

    def _page(self, listing: Any, page: int, what: str) -> list[Any]:
        return self._call("GET", what, lambda: list(listing.get_page(page)))

    def _page_size(self) -> int:
        return int(self._client().per_page)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
