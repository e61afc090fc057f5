"""The local GitHub stand-in itself, over real HTTP: listings, state filters, comments, issues.

Other tests trust ``fake_github`` to answer as GitHub does and to refuse what GitHub refuses;
these tests hold it to that. Every exchange is validated against the OpenAPI subset, and the
fixture fails a test that left any violation it did not expect.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import github
from fake_github import APP_LOGIN, MAX_PER_PAGE, TOKEN, TOKEN_LOGIN, FakeGitHub, fake_sha, serve

OWNER, REPO = "acme", "shop"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    for server in serve(FakeGitHub()):
        yield server
        assert server.violations == [], "\n".join(server.violations)


def call(
    fake: FakeGitHub, method: str, path: str, body: Any = None, *, token: str = TOKEN
) -> tuple[int, dict[str, str], Any]:
    """One request; returns status, headers and the decoded JSON body (None when empty)."""
    url = path if path.startswith("http") else fake.base_url + path
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"token {token}")
    request.add_header("Accept", "application/vnd.github+json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    return status, headers, json.loads(raw) if raw else None


def links(headers: dict[str, str]) -> dict[str, str]:
    """The ``Link`` header as {rel: url}."""
    found = re.findall(r'<([^>]+)>; rel="(\w+)"', headers.get("Link", ""))
    return {rel: url for url, rel in found}


def walk(fake: FakeGitHub, path: str) -> list[Any]:
    """Every item of a listing, following ``rel="next"`` as a client does."""
    items: list[Any] = []
    url: str | None = path
    while url:
        status, headers, page = call(fake, "GET", url)
        assert status == 200, page
        items.extend(page)
        url = links(headers).get("next")
    return items


def seed_pulls(fake: FakeGitHub, count: int) -> None:
    """Pull requests 1..count: every third merged, every fifth closed unmerged, others open."""
    for number in range(1, count + 1):
        merged = number % 3 == 0
        state = "closed" if merged or number % 5 == 0 else "open"
        fake.add_pull(OWNER, REPO, number, state=state, merged=merged)


def test_pull_listing_pages_with_link_headers_and_at_most_100_a_page(fake: FakeGitHub) -> None:
    seed_pulls(fake, 250)

    status, headers, first = call(
        fake, "GET", f"/repos/{OWNER}/{REPO}/pulls?state=all&per_page=500"
    )
    assert status == 200
    assert len(first) == MAX_PER_PAGE
    rels = links(headers)
    assert set(rels) == {"next", "last"}
    assert "page=3" in rels["last"] and "per_page=100" in rels["last"]

    everything = walk(fake, f"/repos/{OWNER}/{REPO}/pulls?state=all&per_page=100")
    assert sorted(p["number"] for p in everything) == list(range(1, 251))
    # Newest first, GitHub's default order for sort=created.
    assert [p["number"] for p in everything[:3]] == [250, 249, 248]
    assert fake.count("pulls/list") == 4


def test_pull_listing_default_page_size_is_30(fake: FakeGitHub) -> None:
    seed_pulls(fake, 40)
    status, headers, page = call(fake, "GET", f"/repos/{OWNER}/{REPO}/pulls?state=all")
    assert status == 200 and len(page) == 30
    _, headers, second = call(fake, "GET", links(headers)["next"])
    assert len(second) == 10
    assert set(links(headers)) == {"first", "prev"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [14, 13, 11, 8, 7, 4, 2, 1]),
        ("?state=open", [14, 13, 11, 8, 7, 4, 2, 1]),
        ("?state=closed", [15, 12, 10, 9, 6, 5, 3]),
        ("?state=all", list(range(15, 0, -1))),
    ],
)
def test_pull_listing_filters_by_state(fake: FakeGitHub, query: str, expected: list[int]) -> None:
    seed_pulls(fake, 15)
    assert [p["number"] for p in walk(fake, f"/repos/{OWNER}/{REPO}/pulls{query}")] == expected


def test_merged_and_closed_pulls_say_which(fake: FakeGitHub) -> None:
    fake.add_pull(OWNER, REPO, 1, merged=True, updated_at="2026-11-01T08:00:00Z")
    fake.add_pull(OWNER, REPO, 2, state="closed", updated_at="2026-11-02T08:00:00Z")
    fake.add_pull(OWNER, REPO, 3, head_sha="a" * 40, head_ref="feature", base_ref="develop")

    merged = call(fake, "GET", f"/repos/{OWNER}/{REPO}/pulls/1")[2]
    assert (merged["state"], merged["merged"]) == ("closed", True)
    assert merged["merged_at"] == merged["closed_at"] == "2026-11-01T08:00:00Z"
    closed = call(fake, "GET", f"/repos/{OWNER}/{REPO}/pulls/2")[2]
    assert (closed["state"], closed["merged"], closed["merged_at"]) == ("closed", False, None)
    assert closed["closed_at"] == "2026-11-02T08:00:00Z"
    open_pull = call(fake, "GET", f"/repos/{OWNER}/{REPO}/pulls/3")[2]
    assert open_pull["head"]["sha"] == "a" * 40
    assert (open_pull["head"]["ref"], open_pull["base"]["ref"]) == ("feature", "develop")
    assert open_pull["closed_at"] is None

    status, _, missing = call(fake, "GET", f"/repos/{OWNER}/{REPO}/pulls/99")
    assert status == 404 and missing["message"] == "Not Found"


def test_pull_listing_sorts_by_update_time(fake: FakeGitHub) -> None:
    fake.add_pull(OWNER, REPO, 1, updated_at="2026-11-03T00:00:00Z")
    fake.add_pull(OWNER, REPO, 2, updated_at="2026-11-01T00:00:00Z")
    fake.add_pull(OWNER, REPO, 3, updated_at="2026-11-02T00:00:00Z")
    path = f"/repos/{OWNER}/{REPO}/pulls?sort=updated&direction=desc"
    assert [p["number"] for p in walk(fake, path)] == [1, 3, 2]
    ascending = f"/repos/{OWNER}/{REPO}/pulls?sort=updated"
    assert [p["number"] for p in walk(fake, ascending)] == [2, 3, 1]


def test_pygithub_reads_every_pull_in_one_call_per_hundred(fake: FakeGitHub) -> None:
    seed_pulls(fake, 230)
    auth = github.Auth.Token(TOKEN)
    client = github.Github(auth=auth, base_url=fake.base_url, per_page=100, lazy=True)
    repo = client.get_repo(f"{OWNER}/{REPO}")

    pulls = list(repo.get_pulls(state="all"))

    assert len(pulls) == 230
    assert sum(p.merged_at is not None for p in pulls) == 76
    assert fake.count("pulls/list") == 3
    assert fake.counts() == {"pulls/list": 3}


def test_branches_list_pages_filter_and_disappear(fake: FakeGitHub) -> None:
    for index in range(120):
        fake.add_branch(OWNER, REPO, f"feature/{index:03d}")
    fake.add_branch(OWNER, REPO, "main", sha="b" * 40, protected=True)

    names = [b["name"] for b in walk(fake, f"/repos/{OWNER}/{REPO}/branches?per_page=100")]
    assert len(names) == 121 and names == sorted(names)
    protected = walk(fake, f"/repos/{OWNER}/{REPO}/branches?protected=true")
    assert protected == [
        {
            "name": "main",
            "commit": {"sha": "b" * 40, "url": protected[0]["commit"]["url"]},
            "protected": True,
            "protection_url": protected[0]["protection_url"],
        }
    ]

    fake.delete_branch(OWNER, REPO, "feature/007")
    names = [b["name"] for b in walk(fake, f"/repos/{OWNER}/{REPO}/branches?per_page=100")]
    assert "feature/007" not in names and len(names) == 120
    assert fake.count("repos/list-branches") == 5


def test_fork_run_names_no_pull_but_its_commit_does(fake: FakeGitHub) -> None:
    head = fake_sha("fork", "head")
    fake.add_pull(OWNER, REPO, 7, head_sha=head, head_repo="mallory/shop", head_ref="main")
    fake.add_pull(OWNER, REPO, 8)
    fake.add_workflow_run(OWNER, REPO, 555, head_sha=head, head_repo="mallory/shop")
    fake.add_workflow_run(
        OWNER, REPO, 556, head_sha=fake.pull(OWNER, REPO, 8)["head"]["sha"], pull_requests=[8]
    )

    status, _, run = call(fake, "GET", f"/repos/{OWNER}/{REPO}/actions/runs/555")
    assert status == 200
    assert run["pull_requests"] == [] and run["head_sha"] == head
    assert run["head_repository"]["full_name"] == "mallory/shop"
    assert run["head_repository"]["fork"] is True

    same_repo = call(fake, "GET", f"/repos/{OWNER}/{REPO}/actions/runs/556")[2]
    assert [p["number"] for p in same_repo["pull_requests"]] == [8]
    excluded = call(
        fake, "GET", f"/repos/{OWNER}/{REPO}/actions/runs/556?exclude_pull_requests=true"
    )
    assert excluded[2]["pull_requests"] == []

    status, _, pulls = call(fake, "GET", f"/repos/{OWNER}/{REPO}/commits/{head}/pulls")
    assert status == 200
    assert [(p["number"], p["head"]["repo"]["full_name"]) for p in pulls] == [(7, "mallory/shop")]
    assert call(fake, "GET", f"/repos/{OWNER}/{REPO}/commits/{'c' * 40}/pulls")[2] == []
    assert call(fake, "GET", f"/repos/{OWNER}/{REPO}/actions/runs/1")[0] == 404


def test_comment_is_created_edited_and_deleted(fake: FakeGitHub) -> None:
    fake.add_pull(OWNER, REPO, 4)
    comments = f"/repos/{OWNER}/{REPO}/issues/4/comments"

    status, headers, created = call(
        fake, "POST", comments, {"body": "<!-- securecase -->\nBlocked"}
    )
    assert status == 201
    assert headers["Location"] == created["url"]
    assert created["user"]["login"] == TOKEN_LOGIN
    assert created["issue_url"].endswith(f"/repos/{OWNER}/{REPO}/issues/4")

    fake.now = "2026-11-24T09:00:00Z"
    edited_path = f"/repos/{OWNER}/{REPO}/issues/comments/{created['id']}"
    status, _, edited = call(fake, "PATCH", edited_path, {"body": "<!-- securecase -->\nPassed"})
    assert status == 200 and edited["id"] == created["id"]
    assert edited["updated_at"] == "2026-11-24T09:00:00Z" != edited["created_at"]
    assert [c["body"] for c in walk(fake, comments)] == ["<!-- securecase -->\nPassed"]
    assert [c["body"] for c in fake.comments(OWNER, REPO, 4)] == ["<!-- securecase -->\nPassed"]
    assert call(fake, "GET", f"/repos/{OWNER}/{REPO}/pulls/4")[2]["comments"] == 1

    status, headers, nothing = call(fake, "DELETE", edited_path)
    assert (status, nothing) == (204, None)
    assert fake.comments(OWNER, REPO, 4) == []
    assert call(fake, "DELETE", edited_path)[0] == 404
    assert call(fake, "PATCH", edited_path, {"body": "again"})[0] == 404


def test_comment_listing_pages_oldest_first(fake: FakeGitHub) -> None:
    fake.add_issue(OWNER, REPO, title="tracking")
    for index in range(45):
        fake.add_comment(OWNER, REPO, 1, f"comment {index}", user="someone")
    listed = walk(fake, f"/repos/{OWNER}/{REPO}/issues/1/comments?per_page=20")
    assert [c["body"] for c in listed] == [f"comment {i}" for i in range(45)]
    assert fake.count("issues/list-comments") == 3


def test_comment_on_a_missing_issue_is_not_found(fake: FakeGitHub) -> None:
    status, _, body = call(fake, "POST", f"/repos/{OWNER}/{REPO}/issues/9/comments", {"body": "x"})
    assert status == 404 and body["message"] == "Not Found"
    assert call(fake, "GET", f"/repos/{OWNER}/{REPO}/issues/9/comments")[0] == 404


def test_issue_is_created_found_by_label_and_closed(fake: FakeGitHub) -> None:
    fake.add_pull(OWNER, REPO, 1)
    new_issue = {
        "title": "SLA breached: acme/shop#1",
        "body": "<!-- case -->",
        "labels": ["security"],
    }
    status, headers, issue = call(fake, "POST", f"/repos/{OWNER}/{REPO}/issues", new_issue)
    assert status == 201 and headers["Location"] == issue["url"]
    # Issues and pull requests share one sequence of numbers.
    assert issue["number"] == 2 and issue["state"] == "open"
    assert [label["name"] for label in issue["labels"]] == ["security"]
    call(fake, "POST", f"/repos/{OWNER}/{REPO}/issues", {"title": "unrelated"})

    labelled = walk(fake, f"/repos/{OWNER}/{REPO}/issues?labels=security")
    assert [i["number"] for i in labelled] == [2]
    # The issues listing shows pull requests too, marked by a pull_request key.
    listed = walk(fake, f"/repos/{OWNER}/{REPO}/issues")
    assert [(i["number"], "pull_request" in i) for i in listed] == [
        (3, False),
        (2, False),
        (1, True),
    ]

    fake.now = "2026-11-25T00:00:00Z"
    close = {"state": "closed", "state_reason": "completed", "body": "resolved"}
    status, _, closed = call(fake, "PATCH", f"/repos/{OWNER}/{REPO}/issues/2", close)
    assert status == 200
    assert (closed["state"], closed["state_reason"], closed["closed_at"]) == (
        "closed",
        "completed",
        "2026-11-25T00:00:00Z",
    )
    assert [i["number"] for i in walk(fake, f"/repos/{OWNER}/{REPO}/issues?labels=security")] == []
    everything = walk(fake, f"/repos/{OWNER}/{REPO}/issues?state=all&labels=security")
    assert [i["number"] for i in everything] == [2]
    assert [(i["number"], i["state"], i["body"]) for i in fake.issues(OWNER, REPO)] == [
        (2, "closed", "resolved"),
        (3, "open", None),
    ]
    reopened = call(fake, "PATCH", f"/repos/{OWNER}/{REPO}/issues/2", {"state": "open"})[2]
    assert (reopened["state"], reopened["state_reason"], reopened["closed_at"]) == (
        "open",
        "reopened",
        None,
    )
    assert call(fake, "PATCH", f"/repos/{OWNER}/{REPO}/issues/77", {"title": "x"})[0] == 404


def test_issues_listed_since_a_time(fake: FakeGitHub) -> None:
    fake.now = "2026-11-01T00:00:00Z"
    fake.add_issue(OWNER, REPO, title="old", user=APP_LOGIN)
    fake.now = "2026-11-20T00:00:00Z"
    fake.add_issue(OWNER, REPO, title="recent", user=APP_LOGIN)
    recent = walk(fake, f"/repos/{OWNER}/{REPO}/issues?since=2026-11-10T00:00:00Z")
    assert [i["title"] for i in recent] == ["recent"]
    assert recent[0]["user"]["type"] == "Bot"


def test_an_endpoint_fails_twice_then_succeeds(fake: FakeGitHub) -> None:
    fake.add_pull(OWNER, REPO, 3)
    fake.fail_operation("issues/create-comment", 502, message="Bad Gateway", times=2)
    path = f"/repos/{OWNER}/{REPO}/issues/3/comments"

    answers = [call(fake, "POST", path, {"body": "hello"})[0] for _ in range(3)]

    assert answers == [502, 502, 201]
    assert fake.count("issues/create-comment") == 3
    assert [r.status for r in fake.calls_to("issues/create-comment")] == [502, 502, 201]
    assert len(fake.comments(OWNER, REPO, 3)) == 1


def test_a_failure_that_was_applied_still_takes_effect(fake: FakeGitHub) -> None:
    fake.add_pull(OWNER, REPO, 3)
    fake.fail_operation("issues/create-comment", 502, applied=True)
    status, _, _ = call(fake, "POST", f"/repos/{OWNER}/{REPO}/issues/3/comments", {"body": "hi"})
    assert status == 502
    assert [c["body"] for c in fake.comments(OWNER, REPO, 3)] == ["hi"]


def test_failing_an_unknown_operation_is_refused(fake: FakeGitHub) -> None:
    with pytest.raises(ValueError, match="not an operation"):
        fake.fail_operation("issues/lock", 500)


def test_calls_are_counted_per_operation_not_per_case(fake: FakeGitHub) -> None:
    repositories = ["one", "two", "three"]
    for repo in repositories:
        for number in range(1, 101):
            fake.add_pull(OWNER, repo, number, state="closed" if number % 2 else "open")
        fake.add_branch(OWNER, repo, "main")
    for repo in repositories:
        walk(fake, f"/repos/{OWNER}/{repo}/pulls?state=all&per_page=100")
        walk(fake, f"/repos/{OWNER}/{repo}/branches?per_page=100")
    assert fake.counts() == {"pulls/list": 3, "repos/list-branches": 3}


def test_wrong_body_type_is_refused_by_the_description(fake: FakeGitHub) -> None:
    fake.add_pull(OWNER, REPO, 3)
    call(fake, "POST", f"/repos/{OWNER}/{REPO}/issues/3/comments", {"body": 42})
    call(fake, "POST", f"/repos/{OWNER}/{REPO}/issues", {"body": "no title"})
    call(fake, "PATCH", f"/repos/{OWNER}/{REPO}/issues/3", {"state": "merged"})
    call(fake, "GET", f"/repos/{OWNER}/{REPO}/pulls?state=merged")

    refused = [v for v in fake.violations if v.startswith("request ")]
    assert len(refused) == 4, fake.violations
    assert "POST /repos/acme/shop/issues/3/comments" in refused[0]
    assert "42 is not of type 'string'" in refused[0]
    assert "'title' is a required property" in refused[1]
    assert "'merged' is not one of" in refused[2]
    assert "GET /repos/acme/shop/pulls" in refused[3]
    fake.violations.clear()


def test_unknown_and_unserved_routes_fail_the_test(fake: FakeGitHub) -> None:
    status, _, _ = call(fake, "GET", f"/repos/{OWNER}/{REPO}/releases")
    assert status == 404
    call(fake, "GET", f"/repos/{OWNER}/{REPO}")
    assert any("no operation of openapi-subset.json matches" in v for v in fake.violations)
    assert any(
        "repos/get is in the subset but the fake does not serve it" in v for v in fake.violations
    )
    assert fake.counts() == {"": 1, "repos/get": 1}
    fake.violations.clear()


def test_a_body_over_githubs_limit_is_refused(fake: FakeGitHub) -> None:
    fake.add_pull(OWNER, REPO, 3)
    path = f"/repos/{OWNER}/{REPO}/issues/3/comments"
    status, _, answer = call(fake, "POST", path, {"body": "x" * 65537})
    assert status == 422
    assert answer["errors"][0]["message"] == "Body is too long (maximum is 65536 characters)"
    assert fake.violations == [f"POST {path}: body longer than 65536 characters"]
    fake.violations.clear()
    assert call(fake, "POST", path, {"body": "x" * 65536})[0] == 201


def test_a_bad_token_is_refused(fake: FakeGitHub) -> None:
    fake.add_issue(OWNER, REPO, title="t")
    status, _, answer = call(fake, "GET", f"/repos/{OWNER}/{REPO}/issues", token="wrong")
    assert (status, answer["message"]) == (401, "Bad credentials")
