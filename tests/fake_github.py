"""A local GitHub REST server (real sockets) for the securecase tests.

It serves, from in-memory state a test seeds and inspects, the endpoints securecase uses:
check runs (create, update, get, list for a ref, annotations), commit statuses, App
installation tokens, pull requests (list, get, those of a commit), branches, workflow runs,
issues (list, get, create, update), issue comments (list, create, edit, delete) and
workflow artifacts (list, download through a redirect to a signed archive URL, delete). EVERY
request and response is validated against GitHub's OpenAPI description in
``tests/github/openapi-subset.json`` (see ``tests/github/README.md``); anything that does not
validate, a route no operation of the subset describes, or an operation the server does not
serve is recorded in ``violations``, and the test fixtures fail the test when that list is not
empty. Rules GitHub enforces but the description only states in prose (140-character status
description, annotation title and message sizes, 65,536-character issue and comment bodies)
are checked by hand.

Listings paginate as GitHub does: ``per_page`` (default 30, at most 100), ``page``, and a
``Link`` header with ``next``/``last`` (and ``first``/``prev`` past page 1). Every request is
logged with its ``operationId`` (:meth:`FakeGitHub.count`), and :meth:`FakeGitHub.fail` /
:meth:`FakeGitHub.fail_operation` script failures for retry tests.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

SPEC_PATH = Path(__file__).resolve().parent / "github" / "openapi-subset.json"
TOKEN = "ghp_testtoken_0123456789abcdefSECRET"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
#: The account a personal token acts as; an installation token acts as ``securecase[bot]``.
TOKEN_LOGIN = "securecase-tester"
APP_LOGIN = "securecase[bot]"
#: GitHub's limit on issue and comment bodies, stated nowhere in the description: a longer
#: body gets 422 "Body is too long (maximum is 65536 characters)".
BODY_LIMIT = 65536
#: GitHub ignores a larger ``per_page`` and serves at most 100 items a page.
MAX_PER_PAGE = 100
_WEB = "https://github.example"
#: Where a download's redirect points: GitHub's storage host, played by this server.
ARCHIVE_PATH = "/_archives/artifacts/"
_NOW = "2026-11-23T10:00:00Z"

Reply = tuple[int, Any, dict[str, str]]


@functools.cache
def _openapi() -> Any:
    """The description, patched for openapi-core as NOTES-style pitfalls require."""
    from openapi_core import OpenAPI

    spec = json.loads(SPEC_PATH.read_text("utf-8"))
    # The server is local: match paths against any host.
    spec["servers"] = [{"url": "/"}]

    def patch(node: Any) -> None:
        if isinstance(node, dict):
            # openapi-core resolves a discriminator over an inline oneOf to a missing
            # component and rejects every checks/create body; the oneOf alone is GitHub's rule.
            node.pop("discriminator", None)
            # nullable enums list no null; openapi-core then rejects a documented null.
            if node.get("nullable") and "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
            for value in node.values():
                patch(value)
        elif isinstance(node, list):
            for value in node:
                patch(value)

    patch(spec)
    return OpenAPI.from_dict(spec)


@functools.cache
def _basic_error_validator() -> Any:
    import jsonschema

    spec = json.loads(SPEC_PATH.read_text("utf-8"))
    return jsonschema.Draft7Validator(spec["components"]["schemas"]["basic-error"])


@dataclass(frozen=True)
class Route:
    """One operation of the subset: method, path template as a regex, documented statuses."""

    method: str
    template: str
    regex: re.Pattern[str]
    operation: str
    statuses: frozenset[str]


@functools.cache
def _routes() -> tuple[Route, ...]:
    """Every operation of the subset, the most literal templates first."""
    paths: dict[str, Any] = json.loads(SPEC_PATH.read_text("utf-8"))["paths"]
    routes = []
    for template, item in paths.items():
        # Multi-segment parameters (a ref, a file path) arrive with their slashes
        # percent-encoded, so one segment per parameter matches them too.
        regex = "^" + re.sub(r"\{([^}]+)\}", r"(?P<\1>[^/]+)", template) + "$"
        for method, operation in item.items():
            statuses = frozenset(operation["responses"])
            route = Route(
                method.upper(), template, re.compile(regex), operation["operationId"], statuses
            )
            routes.append(route)
    routes.sort(key=lambda r: -len(re.sub(r"\{[^}]+\}", "", r.template)))
    return tuple(routes)


def find_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The subset's operation for ``method path`` and its path parameters, or None."""
    for route in _routes():
        match = route.regex.match(path)
        if route.method == method and match:
            return route, match.groupdict()
    return None


@dataclass
class Recorded:
    """One request as the server saw it; ``operation`` is the subset's operationId ("" if none)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0
    operation: str = ""


@dataclass
class Fault:
    """A scripted failure for the next ``times`` matching requests."""

    method: str
    pattern: re.Pattern[str] | None
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int
    #: Carry the request out before answering with the error (a reply lost on the way back).
    applied: bool = False
    #: Match by operationId instead of method and path.
    operation: str | None = None

    def matches(self, method: str, path: str, operation: str) -> bool:
        """Whether this fault answers the request."""
        if self.times <= 0:
            return False
        if self.operation is not None:
            return self.operation == operation
        return (
            self.method == method and self.pattern is not None and bool(self.pattern.search(path))
        )


@dataclass
class PullRecord:
    """A pull request as the fake keeps it; rendered to GitHub's shapes on the way out."""

    owner: str
    repo: str
    number: int
    state: str
    merged: bool
    head_sha: str
    head_ref: str
    head_repo: str
    base_ref: str
    base_sha: str
    title: str
    body: str | None
    user: str
    created_at: str
    updated_at: str
    closed_at: str | None
    merged_at: str | None
    merge_commit_sha: str | None


@dataclass
class IssueRecord:
    """An issue (not a pull request) as the fake keeps it."""

    owner: str
    repo: str
    number: int
    title: str
    body: str | None
    state: str
    state_reason: str | None
    labels: list[str]
    user: str
    created_at: str
    updated_at: str
    closed_at: str | None


@dataclass
class CommentRecord:
    """A comment on an issue or a pull request (issue comments API)."""

    owner: str
    repo: str
    number: int
    id: int
    body: str
    user: str
    created_at: str
    updated_at: str


@dataclass
class BranchRecord:
    """A branch: its name, head commit and protection flag."""

    name: str
    sha: str
    protected: bool


@dataclass
class RunRecord:
    """A GitHub Actions workflow run, as a ``workflow_run`` event names it."""

    owner: str
    repo: str
    id: int
    head_sha: str
    head_branch: str
    head_repo: str
    event: str
    status: str
    conclusion: str | None
    pull_requests: list[int]
    name: str
    path: str


@dataclass
class ArtifactRecord:
    """A workflow artifact: its zip's bytes and the run that uploaded it."""

    owner: str
    repo: str
    id: int
    name: str
    data: bytes
    run_id: int
    head_repo: str
    expired: bool
    created_at: str


def fake_sha(*parts: object) -> str:
    """A stable 40-hex commit id made from ``parts`` (tests that need one by name)."""
    return hashlib.sha1("/".join(map(str, parts)).encode("utf-8")).hexdigest()


@dataclass
class FakeGitHub:
    """State and scripted behaviour of the fake API; see :func:`serve`."""

    token: str = TOKEN
    base_url: str = ""
    app_id: str | None = None
    app_public_key: Any = None
    installation_token: str = "ghs_installationtoken_0123456789SECRET"
    #: The time the server stamps on what it creates or changes (ISO 8601, UTC).
    now: str = _NOW
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    pull_records: dict[tuple[str, str, int], PullRecord] = field(default_factory=dict)
    issue_records: dict[tuple[str, str, int], IssueRecord] = field(default_factory=dict)
    comment_records: dict[int, CommentRecord] = field(default_factory=dict)
    branch_records: dict[tuple[str, str], dict[str, BranchRecord]] = field(default_factory=dict)
    run_records: dict[tuple[str, str, int], RunRecord] = field(default_factory=dict)
    artifact_records: dict[int, ArtifactRecord] = field(default_factory=dict)
    #: Downloads of artifact archives from the storage host the API redirects to (not API
    #: requests: never validated against the description, never authenticated).
    archive_requests: list[Recorded] = field(default_factory=list)

    # -- scripted failures -------------------------------------------------------------

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        applied: bool = False,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and path regex with an error.

        ``applied``: the request takes effect all the same, as when GitHub did the work but
        the answer was a 502 from a proxy.
        """
        body = {"message": message, "documentation_url": "https://docs.github.com/rest"}
        fault = Fault(method, re.compile(pattern), status, body, headers or {}, times, applied)
        self.faults.append(fault)

    def fail_operation(
        self,
        operation: str,
        status: int,
        *,
        message: str = "Server Error",
        headers: dict[str, str] | None = None,
        times: int = 1,
        applied: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` (an operationId) with ``status``."""
        if not any(route.operation == operation for route in _routes()):
            raise ValueError(f"{operation!r} is not an operation of {SPEC_PATH.name}")
        body = {"message": message, "documentation_url": "https://docs.github.com/rest"}
        fault = Fault("", None, status, body, headers or {}, times, applied, operation)
        self.faults.append(fault)

    # -- request log -------------------------------------------------------------------

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """Requests with this method whose path matches the regex."""
        regex = re.compile(pattern)
        return [r for r in self.requests if r.method == method and regex.search(r.path)]

    def calls_to(self, operation: str) -> list[Recorded]:
        """Requests of one operation (operationId, e.g. ``"pulls/list"``), in order."""
        return [r for r in self.requests if r.operation == operation]

    def count(self, operation: str) -> int:
        """How many requests of ``operation`` the server received (failed ones included)."""
        return len(self.calls_to(operation))

    def counts(self) -> dict[str, int]:
        """Requests received per operationId ("" for requests no operation describes)."""
        return dict(Counter(r.operation for r in self.requests))

    # -- pull requests -----------------------------------------------------------------

    def add_pull(
        self,
        owner: str,
        repo: str,
        number: int,
        *,
        state: str = "open",
        merged: bool = False,
        head_sha: str | None = None,
        head_ref: str | None = None,
        head_repo: str | None = None,
        base_ref: str = "main",
        title: str | None = None,
        user: str = "octocat",
        created_at: str | None = None,
        updated_at: str | None = None,
        closed_at: str | None = None,
    ) -> dict[str, Any]:
        """Create (or replace) pull request ``number``; return it as ``pulls/get`` shows it.

        ``merged`` implies ``state="closed"``. ``head_repo`` is ``"fork-owner/name"`` for a
        pull request from a fork (default: the repository itself). Times default to ``now``.
        """
        if state not in ("open", "closed"):
            raise ValueError(f"state must be open or closed, not {state!r}")
        with self.lock:
            self._claim_number(owner, repo, number, kind="pull")
            closed = "closed" if merged else state
            stamp = updated_at or self.now
            record = PullRecord(
                owner=owner,
                repo=repo,
                number=number,
                state=closed,
                merged=merged,
                head_sha=head_sha or fake_sha(owner, repo, "pull", number),
                head_ref=head_ref or f"pr-{number}",
                head_repo=head_repo or f"{owner}/{repo}",
                base_ref=base_ref,
                base_sha=fake_sha(owner, repo, "branch", base_ref),
                title=title or f"Pull request {number}",
                body=None,
                user=user,
                created_at=created_at or self.now,
                updated_at=stamp,
                closed_at=(closed_at or stamp) if closed == "closed" else None,
                merged_at=(closed_at or stamp) if merged else None,
                merge_commit_sha=fake_sha(owner, repo, "merge", number) if merged else None,
            )
            self.pull_records[(owner, repo, number)] = record
            return _pull_out(self, record)

    def pull(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        """Pull request ``number`` as ``pulls/get`` shows it (KeyError if absent)."""
        with self.lock:
            return _pull_out(self, self.pull_records[(owner, repo, number)])

    # -- branches ----------------------------------------------------------------------

    def add_branch(
        self, owner: str, repo: str, name: str, *, sha: str | None = None, protected: bool = False
    ) -> dict[str, Any]:
        """Create (or move) branch ``name``; return it as ``repos/list-branches`` shows it."""
        with self.lock:
            record = BranchRecord(name, sha or fake_sha(owner, repo, "branch", name), protected)
            self.branch_records.setdefault((owner, repo), {})[name] = record
            return _branch_out(self, owner, repo, record)

    def delete_branch(self, owner: str, repo: str, name: str) -> None:
        """Remove branch ``name`` (KeyError if absent)."""
        with self.lock:
            del self.branch_records[(owner, repo)][name]

    def branches(self, owner: str, repo: str) -> list[str]:
        """The names of the repository's branches, sorted."""
        with self.lock:
            return sorted(self.branch_records.get((owner, repo), {}))

    # -- workflow runs -----------------------------------------------------------------

    def add_workflow_run(
        self,
        owner: str,
        repo: str,
        run_id: int,
        *,
        head_sha: str,
        head_branch: str = "main",
        head_repo: str | None = None,
        event: str = "pull_request",
        pull_requests: Sequence[int] = (),
        status: str = "completed",
        conclusion: str | None = "success",
        name: str = "scan",
        path: str = ".github/workflows/scan.yml",
    ) -> dict[str, Any]:
        """Create workflow run ``run_id``; return it as ``actions/get-workflow-run`` shows it.

        ``pull_requests`` are numbers of pull requests seeded in this repository; leave it
        empty for a run from a fork, as GitHub does. ``head_repo`` is ``"owner/name"`` of the
        fork (default: the repository itself).
        """
        with self.lock:
            record = RunRecord(
                owner=owner,
                repo=repo,
                id=run_id,
                head_sha=head_sha,
                head_branch=head_branch,
                head_repo=head_repo or f"{owner}/{repo}",
                event=event,
                status=status,
                conclusion=conclusion,
                pull_requests=list(pull_requests),
                name=name,
                path=path,
            )
            self.run_records[(owner, repo, run_id)] = record
            return _run_out(self, record, include_pulls=True)

    # -- issues and comments -----------------------------------------------------------

    # -- workflow artifacts ------------------------------------------------------------

    def add_artifact(
        self,
        owner: str,
        repo: str,
        name: str,
        data: bytes,
        *,
        run_id: int = 1,
        head_repo: str | None = None,
        expired: bool = False,
    ) -> int:
        """Store an artifact (``data``: its zip) as a run of ``owner/repo`` uploaded it; its id.
        ``head_repo="fork/name"`` makes it the artifact of a fork's pull request run."""
        with self.lock:
            artifact_id = max(self.artifact_records, default=100) + 1
            self.artifact_records[artifact_id] = ArtifactRecord(
                owner,
                repo,
                artifact_id,
                name,
                data,
                run_id,
                head_repo or f"{owner}/{repo}",
                expired,
                self.now,
            )
            return artifact_id

    def artifacts(self, owner: str, repo: str) -> list[str]:
        """The names of the artifacts ``owner/repo`` still has, oldest first."""
        with self.lock:
            return [
                a.name
                for _, a in sorted(self.artifact_records.items())
                if (a.owner, a.repo) == (owner, repo)
            ]

    def add_issue(
        self,
        owner: str,
        repo: str,
        *,
        title: str,
        body: str | None = None,
        labels: Sequence[str] = (),
        state: str = "open",
        user: str = APP_LOGIN,
        number: int | None = None,
    ) -> dict[str, Any]:
        """Create an issue (next free number unless given); return it as ``issues/get`` shows it."""
        with self.lock:
            number = number or self._next_number(owner, repo)
            self._claim_number(owner, repo, number, kind="issue")
            record = IssueRecord(
                owner=owner,
                repo=repo,
                number=number,
                title=title,
                body=body,
                state=state,
                state_reason="completed" if state == "closed" else None,
                labels=list(labels),
                user=user,
                created_at=self.now,
                updated_at=self.now,
                closed_at=self.now if state == "closed" else None,
            )
            self.issue_records[(owner, repo, number)] = record
            return _issue_out(self, record)

    def issues(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """Every issue of the repository (open and closed, no pull requests), by number."""
        with self.lock:
            records = [r for k, r in self.issue_records.items() if k[:2] == (owner, repo)]
            return [_issue_out(self, r) for r in sorted(records, key=lambda r: r.number)]

    def add_comment(
        self, owner: str, repo: str, number: int, body: str, *, user: str = APP_LOGIN
    ) -> dict[str, Any]:
        """Add a comment to issue or pull request ``number``; return it as the API shows it."""
        with self.lock:
            if not self._numbered(owner, repo, number):
                raise KeyError(f"{owner}/{repo} has no issue or pull request {number}")
            return _comment_out(self, self._new_comment(owner, repo, number, body, user))

    def comments(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        """The comments on issue or pull request ``number``, oldest first."""
        with self.lock:
            records = [
                c
                for c in self.comment_records.values()
                if (c.owner, c.repo, c.number) == (owner, repo, number)
            ]
            return [_comment_out(self, c) for c in sorted(records, key=lambda c: c.id)]

    # -- internals ---------------------------------------------------------------------

    def _numbered(self, owner: str, repo: str, number: int) -> bool:
        key = (owner, repo, number)
        return key in self.pull_records or key in self.issue_records

    def _next_number(self, owner: str, repo: str) -> int:
        # Issues and pull requests share one sequence of numbers per repository.
        taken = [k[2] for k in (*self.pull_records, *self.issue_records) if k[:2] == (owner, repo)]
        return max(taken, default=0) + 1

    def _claim_number(self, owner: str, repo: str, number: int, *, kind: str) -> None:
        other = self.issue_records if kind == "pull" else self.pull_records
        if (owner, repo, number) in other:
            raise ValueError(
                f"{owner}/{repo}#{number} is already taken by another issue or pull request"
            )

    def _new_comment(
        self, owner: str, repo: str, number: int, body: str, user: str
    ) -> CommentRecord:
        comment_id = max(self.comment_records, default=1000) + 1
        record = CommentRecord(owner, repo, number, comment_id, body, user, self.now, self.now)
        self.comment_records[comment_id] = record
        return record


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        record = Recorded(method, parts.path, parse_qs(parts.query), dict(self.headers), body)
        if parts.path.startswith(ARCHIVE_PATH):
            self._archive(fake, record)
            return
        found = find_route(method, parts.path)
        record.operation = found[0].operation if found else ""
        with fake.lock:
            fake.requests.append(record)
            try:
                status, payload, headers = _respond(fake, method, parts.path, record)
            except Exception as exc:  # a bug in the fake must fail the test, not hang the client
                fake.violations.append(f"{method} {parts.path}: the fake server failed: {exc!r}")
                status, payload, headers = _error(500, "fake server error")
        record.status = status
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        _validate_exchange(fake, method, self.path, dict(self.headers), raw, status, data, headers)
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        rate = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": str(int(time.time()) + 3600),
        }
        rate.update({k.lower(): v for k, v in headers.items() if k.lower() in rate})
        for name, value in rate.items():
            self.send_header(name, value)
        for name, value in headers.items():
            if name.lower() in rate:
                continue
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _archive(self, fake: FakeGitHub, record: Recorded) -> None:
        """Serve an artifact's zip as the storage host GitHub redirects a download to: the
        signed URL alone grants access."""
        with fake.lock:
            fake.archive_requests.append(record)
            match = re.fullmatch(rf"{ARCHIVE_PATH}(\d+)\.zip", record.path)
            artifact = fake.artifact_records.get(int(match.group(1))) if match else None
            signed = artifact is not None and record.query.get("sig") == [_signature(artifact)]
        record.status = 200 if signed and artifact is not None else 403
        data = artifact.data if signed and artifact is not None else b"AuthenticationFailed"
        self.send_response(record.status)
        self.send_header("Content-Type", "application/zip" if signed else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    fake: FakeGitHub
    daemon_threads = True


def serve(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    """Run ``fake`` on 127.0.0.1 (a free port) while the generator is suspended."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutting down waits for one poll, after every test.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _error(status: int, message: str) -> Reply:
    return status, {"message": message, "documentation_url": "https://docs.github.com/rest"}, {}


def _invalid(resource: str, field_name: str, message: str) -> Reply:
    """A 422 as GitHub words a refused field."""
    error = {"resource": resource, "code": "custom", "field": field_name, "message": message}
    body = {
        "message": "Validation Failed",
        "errors": [error],
        "documentation_url": "https://docs.github.com/rest",
    }
    return 422, body, {}


def _respond(fake: FakeGitHub, method: str, path: str, record: Recorded) -> Reply:
    found = find_route(method, path)
    if found is None:
        fake.violations.append(
            f"{method} {path}: no operation of {SPEC_PATH.name} matches this request"
        )
        return _error(404, "Not Found")
    route, params = found
    if route.operation == "apps/create-installation-access-token":
        return _installation_token(fake, record, int(params["installation_id"]))
    if _actor(fake, record) is None:
        return _error(401, "Bad credentials")
    for fault in fake.faults:
        if fault.matches(method, path, route.operation):
            fault.times -= 1
            if fault.applied:
                _serve(fake, route, params, record)
            return fault.status, fault.body, fault.headers
    return _serve(fake, route, params, record)


def _actor(fake: FakeGitHub, record: Recorded) -> str | None:
    """The login the request's credentials act as, or None when they are not accepted."""
    auth = record.headers.get("Authorization", "")
    if auth == f"token {fake.token}":
        return TOKEN_LOGIN
    if fake.app_id is not None and auth == f"token {fake.installation_token}":
        return APP_LOGIN
    return None


def _serve(fake: FakeGitHub, route: Route, params: dict[str, str], record: Recorded) -> Reply:
    handler = _HANDLERS.get(route.operation)
    if handler is None:
        fake.violations.append(
            f"{route.method} {record.path}: {route.operation} is in the subset but the fake "
            "does not serve it"
        )
        return _error(404, "Not Found")
    return handler(fake, params, record)


def _query(record: Recorded, name: str, default: str | None = None) -> str | None:
    return record.query.get(name, [default])[0]


def _paginate(
    fake: FakeGitHub, path: str, record: Recorded, items: list[Any]
) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items`` as GitHub serves it: ``per_page`` (default 30, max 100), ``Link``."""
    per_page = min(max(int(_query(record, "per_page", "30") or 30), 1), MAX_PER_PAGE)
    page = max(int(_query(record, "page", "1") or 1), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    start = (page - 1) * per_page

    def url(number: int) -> str:
        query = {k: v[0] for k, v in record.query.items()}
        query.update(per_page=str(per_page), page=str(number))
        return f"{fake.base_url}{path}?{urlencode(query)}"

    links = []
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(1)}>; rel="first"', f'<{url(min(page - 1, last))}>; rel="prev"']
    headers = {"Link": ", ".join(links)} if links else {}
    return items[start : start + per_page], headers


def _sorted(items: list[Any], key: Callable[[Any], Any], direction: str) -> list[Any]:
    return sorted(items, key=key, reverse=direction == "desc")


# -- GitHub's shapes --------------------------------------------------------------------


def _stable_id(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode("utf-8")) + 1


def _user(fake: FakeGitHub, login: str) -> dict[str, Any]:
    """A ``simple-user``; logins ending in ``[bot]`` are Bots."""
    user_id = _stable_id("user", login)
    api = f"{fake.base_url}/users/{login}"
    return {
        "login": login,
        "id": user_id,
        "node_id": f"U_{user_id}",
        "avatar_url": f"{_WEB}/avatars/u/{user_id}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{_WEB}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "site_admin": False,
    }


#: URL templates of a repository, relative to its API URL (as GitHub spells them).
_REPO_URLS = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def _repository(fake: FakeGitHub, full_name: str, *, fork: bool = False) -> dict[str, Any]:
    """A ``repository`` (also a valid ``minimal-repository``) for ``owner/name``."""
    owner, name = full_name.split("/", 1)
    repo_id = _stable_id("repo", full_name)
    api = f"{fake.base_url}/repos/{full_name}"
    repository = {
        "id": repo_id,
        "node_id": f"R_{repo_id}",
        "name": name,
        "full_name": full_name,
        "owner": _user(fake, owner),
        "private": False,
        "html_url": f"{_WEB}/{full_name}",
        "description": None,
        "fork": fork,
        "url": api,
        **{key: api + suffix for key, suffix in _REPO_URLS.items()},
        "git_url": f"git://github.example/{full_name}.git",
        "ssh_url": f"git@github.example:{full_name}.git",
        "clone_url": f"{_WEB}/{full_name}.git",
        "svn_url": f"{_WEB}/{full_name}",
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "license": None,
        "forks": 0,
        "forks_count": 0,
        "stargazers_count": 0,
        "watchers": 0,
        "watchers_count": 0,
        "size": 0,
        "default_branch": "main",
        "open_issues": 0,
        "open_issues_count": 0,
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": False,
        "archived": False,
        "disabled": False,
        "pushed_at": fake.now,
        "created_at": fake.now,
        "updated_at": fake.now,
    }
    return repository


def _pull_simple(fake: FakeGitHub, pull: PullRecord) -> dict[str, Any]:
    """A ``pull-request-simple`` (the items of ``pulls/list``)."""
    base_name = f"{pull.owner}/{pull.repo}"
    api = f"{fake.base_url}/repos/{base_name}"
    url = f"{api}/pulls/{pull.number}"
    html = f"{_WEB}/{base_name}/pull/{pull.number}"
    head_owner = pull.head_repo.split("/", 1)[0]
    statuses = f"{api}/statuses/{pull.head_sha}"
    return {
        "url": url,
        "id": _stable_id("pull", base_name, pull.number),
        "node_id": f"PR_{_stable_id('pull', base_name, pull.number)}",
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{api}/issues/{pull.number}",
        "commits_url": f"{url}/commits",
        "review_comments_url": f"{url}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{pull.number}/comments",
        "statuses_url": statuses,
        "number": pull.number,
        "state": pull.state,
        "locked": False,
        "title": pull.title,
        "user": _user(fake, pull.user),
        "body": pull.body,
        "labels": [],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "merged_at": pull.merged_at,
        "merge_commit_sha": pull.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": {
            "label": f"{head_owner}:{pull.head_ref}",
            "ref": pull.head_ref,
            "sha": pull.head_sha,
            "user": _user(fake, head_owner),
            "repo": _repository(fake, pull.head_repo, fork=pull.head_repo != base_name),
        },
        "base": {
            "label": f"{pull.owner}:{pull.base_ref}",
            "ref": pull.base_ref,
            "sha": pull.base_sha,
            "user": _user(fake, pull.owner),
            "repo": _repository(fake, base_name),
        },
        "_links": {
            "self": {"href": url},
            "html": {"href": html},
            "issue": {"href": f"{api}/issues/{pull.number}"},
            "comments": {"href": f"{api}/issues/{pull.number}/comments"},
            "review_comments": {"href": f"{url}/comments"},
            "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
            "commits": {"href": f"{url}/commits"},
            "statuses": {"href": statuses},
        },
        "author_association": "CONTRIBUTOR",
        "auto_merge": None,
        "draft": False,
    }


def _pull_out(fake: FakeGitHub, pull: PullRecord) -> dict[str, Any]:
    """A ``pull-request`` (``pulls/get``)."""
    comments = sum(
        1
        for c in fake.comment_records.values()
        if (c.owner, c.repo, c.number) == (pull.owner, pull.repo, pull.number)
    )
    return {
        **_pull_simple(fake, pull),
        "merged": pull.merged,
        "mergeable": None if pull.state == "closed" else True,
        "mergeable_state": "unknown" if pull.state == "closed" else "clean",
        "merged_by": _user(fake, pull.owner) if pull.merged else None,
        "comments": comments,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": 1,
        "additions": 1,
        "deletions": 0,
        "changed_files": 1,
    }


def _branch_out(fake: FakeGitHub, owner: str, repo: str, branch: BranchRecord) -> dict[str, Any]:
    """A ``short-branch`` (the items of ``repos/list-branches``)."""
    api = f"{fake.base_url}/repos/{owner}/{repo}"
    return {
        "name": branch.name,
        "commit": {"sha": branch.sha, "url": f"{api}/commits/{branch.sha}"},
        "protected": branch.protected,
        "protection_url": f"{api}/branches/{branch.name}/protection",
    }


def _label(fake: FakeGitHub, owner: str, repo: str, name: str) -> dict[str, Any]:
    label_id = _stable_id("label", owner, repo, name)
    return {
        "id": label_id,
        "node_id": f"LA_{label_id}",
        "url": f"{fake.base_url}/repos/{owner}/{repo}/labels/{name}",
        "name": name,
        "description": None,
        "color": "ededed",
        "default": False,
    }


def _issue_shape(
    fake: FakeGitHub, owner: str, repo: str, number: int, *, user: str, title: str
) -> dict[str, Any]:
    api = f"{fake.base_url}/repos/{owner}/{repo}"
    url = f"{api}/issues/{number}"
    comments = sum(
        1
        for c in fake.comment_records.values()
        if (c.owner, c.repo, c.number) == (owner, repo, number)
    )
    issue_id = _stable_id("issue", owner, repo, number)
    return {
        "id": issue_id,
        "node_id": f"I_{issue_id}",
        "url": url,
        "repository_url": api,
        "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments",
        "events_url": f"{url}/events",
        "html_url": f"{_WEB}/{owner}/{repo}/issues/{number}",
        "number": number,
        "title": title,
        "user": _user(fake, user),
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "comments": comments,
        "author_association": "NONE",
    }


def _issue_out(fake: FakeGitHub, issue: IssueRecord) -> dict[str, Any]:
    """An ``issue``."""
    shape = _issue_shape(
        fake, issue.owner, issue.repo, issue.number, user=issue.user, title=issue.title
    )
    return {
        **shape,
        "body": issue.body,
        "state": issue.state,
        "state_reason": issue.state_reason,
        "labels": [_label(fake, issue.owner, issue.repo, name) for name in issue.labels],
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
    }


def _pull_as_issue(fake: FakeGitHub, pull: PullRecord) -> dict[str, Any]:
    """A pull request as the issues API shows it (every pull request is an issue)."""
    shape = _issue_shape(fake, pull.owner, pull.repo, pull.number, user=pull.user, title=pull.title)
    html = f"{_WEB}/{pull.owner}/{pull.repo}/pull/{pull.number}"
    return {
        **shape,
        "html_url": html,
        "body": pull.body,
        "state": pull.state,
        "state_reason": None,
        "labels": [],
        "created_at": pull.created_at,
        "updated_at": pull.updated_at,
        "closed_at": pull.closed_at,
        "pull_request": {
            "url": f"{fake.base_url}/repos/{pull.owner}/{pull.repo}/pulls/{pull.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": pull.merged_at,
        },
    }


def _comment_out(fake: FakeGitHub, comment: CommentRecord) -> dict[str, Any]:
    """An ``issue-comment``."""
    api = f"{fake.base_url}/repos/{comment.owner}/{comment.repo}"
    kind = (
        "pull" if (comment.owner, comment.repo, comment.number) in fake.pull_records else "issues"
    )
    html = f"{_WEB}/{comment.owner}/{comment.repo}/{kind}/{comment.number}"
    return {
        "id": comment.id,
        "node_id": f"IC_{comment.id}",
        "url": f"{api}/issues/comments/{comment.id}",
        "html_url": f"{html}#issuecomment-{comment.id}",
        "body": comment.body,
        "user": _user(fake, comment.user),
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "issue_url": f"{api}/issues/{comment.number}",
        "author_association": "NONE",
    }


def _run_out(fake: FakeGitHub, run: RunRecord, *, include_pulls: bool) -> dict[str, Any]:
    """A ``workflow-run``."""
    full_name = f"{run.owner}/{run.repo}"
    api = f"{fake.base_url}/repos/{full_name}"
    url = f"{api}/actions/runs/{run.id}"
    pulls = []
    for number in run.pull_requests if include_pulls else []:
        pull = fake.pull_records[(run.owner, run.repo, number)]
        repo_ref = {"id": _stable_id("repo", full_name), "url": api, "name": run.repo}
        head_ref = {
            "id": _stable_id("repo", pull.head_repo),
            "url": f"{fake.base_url}/repos/{pull.head_repo}",
            "name": pull.head_repo.split("/", 1)[1],
        }
        pulls.append(
            {
                "id": _stable_id("pull", full_name, number),
                "number": number,
                "url": f"{api}/pulls/{number}",
                "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": head_ref},
                "base": {"ref": pull.base_ref, "sha": pull.base_sha, "repo": repo_ref},
            }
        )
    return {
        "id": run.id,
        "name": run.name,
        "node_id": f"WFR_{run.id}",
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": run.path,
        "display_title": run.name,
        "run_number": run.id,
        "run_attempt": 1,
        "event": run.event,
        "status": run.status,
        "conclusion": run.conclusion,
        "workflow_id": _stable_id("workflow", full_name, run.path),
        "check_suite_id": _stable_id("suite", full_name, run.id),
        "url": url,
        "html_url": f"{_WEB}/{full_name}/actions/runs/{run.id}",
        "pull_requests": pulls,
        "created_at": fake.now,
        "updated_at": fake.now,
        "jobs_url": f"{url}/jobs",
        "logs_url": f"{url}/logs",
        "check_suite_url": f"{api}/check-suites/{_stable_id('suite', full_name, run.id)}",
        "artifacts_url": f"{url}/artifacts",
        "cancel_url": f"{url}/cancel",
        "rerun_url": f"{url}/rerun",
        "workflow_url": f"{api}/actions/workflows/{_stable_id('workflow', full_name, run.path)}",
        "head_commit": {
            "id": run.head_sha,
            "tree_id": fake_sha("tree", run.head_sha),
            "message": "Change",
            "timestamp": fake.now,
            "author": {"name": "Octo Cat", "email": "octocat@example.com"},
            "committer": {"name": "Octo Cat", "email": "octocat@example.com"},
        },
        "repository": _repository(fake, full_name),
        "head_repository": _repository(fake, run.head_repo, fork=run.head_repo != full_name),
    }


# -- operations ---------------------------------------------------------------------------


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _created(status: int, payload: dict[str, Any]) -> Reply:
    return status, payload, {"Location": payload["url"]}


def _list_pulls(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    owner, repo = params["owner"], params["repo"]
    state = _query(record, "state", "open")
    head = _query(record, "head")
    base = _query(record, "base")
    sort = _query(record, "sort", "created") or "created"
    direction = _query(record, "direction") or ("desc" if sort == "created" else "asc")
    pulls = [
        p
        for p in fake.pull_records.values()
        if (p.owner, p.repo) == (owner, repo)
        and state in ("all", p.state)
        and (head is None or f"{p.head_repo.split('/', 1)[0]}:{p.head_ref}" == head)
        and (base is None or p.base_ref == base)
    ]
    key: Callable[[PullRecord], Any] = {
        "updated": lambda p: (_when(p.updated_at), p.number),
        "popularity": lambda p: (_comment_count(fake, owner, repo, p.number), p.number),
    }.get(sort, lambda p: (_when(p.created_at), p.number))
    ordered = _sorted(pulls, key, direction)
    page, links = _paginate(fake, record.path, record, [_pull_simple(fake, p) for p in ordered])
    return 200, page, links


def _comment_count(fake: FakeGitHub, owner: str, repo: str, number: int) -> int:
    return sum(
        1
        for c in fake.comment_records.values()
        if (c.owner, c.repo, c.number) == (owner, repo, number)
    )


def _get_pull(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    pull = fake.pull_records.get((params["owner"], params["repo"], int(params["pull_number"])))
    return (200, _pull_out(fake, pull), {}) if pull else _error(404, "Not Found")


def _pulls_of_commit(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    # A pull request is associated with a commit that is its head, or its merge commit.
    owner, repo, sha = params["owner"], params["repo"], params["commit_sha"]
    pulls = [
        p
        for p in fake.pull_records.values()
        if (p.owner, p.repo) == (owner, repo) and sha in (p.head_sha, p.merge_commit_sha)
    ]
    ordered = sorted(pulls, key=lambda p: -p.number)
    page, links = _paginate(fake, record.path, record, [_pull_simple(fake, p) for p in ordered])
    return 200, page, links


def _list_branches(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    owner, repo = params["owner"], params["repo"]
    protected = _query(record, "protected")
    branches = [
        b
        for name, b in sorted(fake.branch_records.get((owner, repo), {}).items())
        if protected is None or b.protected == (protected == "true")
    ]
    items = [_branch_out(fake, owner, repo, b) for b in branches]
    page, links = _paginate(fake, record.path, record, items)
    return 200, page, links


def _get_run(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    run = fake.run_records.get((params["owner"], params["repo"], int(params["run_id"])))
    if run is None:
        return _error(404, "Not Found")
    exclude = _query(record, "exclude_pull_requests") == "true"
    return 200, _run_out(fake, run, include_pulls=not exclude), {}


def _list_issues(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    owner, repo = params["owner"], params["repo"]
    state = _query(record, "state", "open")
    labels = {name for name in (_query(record, "labels") or "").split(",") if name}
    since = _query(record, "since")
    creator = _query(record, "creator")
    sort = _query(record, "sort", "created") or "created"
    direction = _query(record, "direction", "desc") or "desc"
    shown: list[dict[str, Any]] = [
        _issue_out(fake, i)
        for i in fake.issue_records.values()
        if (i.owner, i.repo) == (owner, repo)
    ]
    shown += [
        _pull_as_issue(fake, p)
        for p in fake.pull_records.values()
        if (p.owner, p.repo) == (owner, repo)
    ]
    chosen = [
        i
        for i in shown
        if state in ("all", i["state"])
        and labels <= {label["name"] for label in i["labels"]}
        and (since is None or _when(i["updated_at"]) >= _when(since))
        and (creator is None or i["user"]["login"] == creator)
    ]
    key: Callable[[dict[str, Any]], Any] = {
        "updated": lambda i: (_when(i["updated_at"]), i["number"]),
        "comments": lambda i: (i["comments"], i["number"]),
    }.get(sort, lambda i: (_when(i["created_at"]), i["number"]))
    page, links = _paginate(fake, record.path, record, _sorted(chosen, key, direction))
    return 200, page, links


def _get_issue(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    key = (params["owner"], params["repo"], int(params["issue_number"]))
    if key in fake.issue_records:
        return 200, _issue_out(fake, fake.issue_records[key]), {}
    if key in fake.pull_records:
        return 200, _pull_as_issue(fake, fake.pull_records[key]), {}
    return _error(404, "Not Found")


def _body_too_long(fake: FakeGitHub, record: Recorded, resource: str, body: Any) -> Reply | None:
    if isinstance(body, str) and len(body) > BODY_LIMIT:
        fake.violations.append(
            f"{record.method} {record.path}: body longer than {BODY_LIMIT} characters"
        )
        return _invalid(resource, "data", f"Body is too long (maximum is {BODY_LIMIT} characters)")
    return None


def _label_names(sent: Any) -> list[str]:
    return [label if isinstance(label, str) else str(label.get("name")) for label in sent or []]


def _create_issue(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    owner, repo = params["owner"], params["repo"]
    body = record.body if isinstance(record.body, dict) else {}
    refused = _body_too_long(fake, record, "Issue", body.get("body"))
    if refused:
        return refused
    issue = IssueRecord(
        owner=owner,
        repo=repo,
        number=fake._next_number(owner, repo),
        title=str(body.get("title")),
        body=body.get("body"),
        state="open",
        state_reason=None,
        labels=_label_names(body.get("labels")),
        user=_actor(fake, record) or TOKEN_LOGIN,
        created_at=fake.now,
        updated_at=fake.now,
        closed_at=None,
    )
    fake.issue_records[(owner, repo, issue.number)] = issue
    return _created(201, _issue_out(fake, issue))


def _update_issue(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    key = (params["owner"], params["repo"], int(params["issue_number"]))
    body = record.body if isinstance(record.body, dict) else {}
    refused = _body_too_long(fake, record, "Issue", body.get("body"))
    if refused:
        return refused
    target: IssueRecord | PullRecord | None = fake.issue_records.get(key) or fake.pull_records.get(
        key
    )
    if target is None:
        return _error(404, "Not Found")
    if body.get("title") is not None:
        target.title = str(body["title"])
    if "body" in body:
        target.body = body["body"]
    state = body.get("state")
    if isinstance(target, IssueRecord):
        if "labels" in body:
            target.labels = _label_names(body["labels"])
        if state in ("open", "closed") and state != target.state:
            reason = body.get("state_reason")
            target.state_reason = reason or ("completed" if state == "closed" else "reopened")
    if state in ("open", "closed") and state != target.state:
        if isinstance(target, PullRecord) and target.merged:
            return _invalid("PullRequest", "state", "A merged pull request cannot be reopened")
        target.state = state
        target.closed_at = fake.now if state == "closed" else None
    target.updated_at = fake.now
    if isinstance(target, IssueRecord):
        return 200, _issue_out(fake, target), {}
    return 200, _pull_as_issue(fake, target), {}


def _list_comments(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    owner, repo, number = params["owner"], params["repo"], int(params["issue_number"])
    if not fake._numbered(owner, repo, number):
        return _error(404, "Not Found")
    since = _query(record, "since")
    comments = [
        c
        for c in sorted(fake.comment_records.values(), key=lambda c: c.id)
        if (c.owner, c.repo, c.number) == (owner, repo, number)
        and (since is None or _when(c.updated_at) >= _when(since))
    ]
    page, links = _paginate(fake, record.path, record, [_comment_out(fake, c) for c in comments])
    return 200, page, links


def _create_comment(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    owner, repo, number = params["owner"], params["repo"], int(params["issue_number"])
    if not fake._numbered(owner, repo, number):
        return _error(404, "Not Found")
    body = record.body if isinstance(record.body, dict) else {}
    refused = _body_too_long(fake, record, "IssueComment", body.get("body"))
    if refused:
        return refused
    comment = fake._new_comment(
        owner, repo, number, str(body.get("body")), _actor(fake, record) or TOKEN_LOGIN
    )
    return _created(201, _comment_out(fake, comment))


def _comment_of(fake: FakeGitHub, params: dict[str, str]) -> CommentRecord | None:
    comment = fake.comment_records.get(int(params["comment_id"]))
    if comment is None or (comment.owner, comment.repo) != (params["owner"], params["repo"]):
        return None
    return comment


def _update_comment(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    comment = _comment_of(fake, params)
    if comment is None:
        return _error(404, "Not Found")
    body = record.body if isinstance(record.body, dict) else {}
    refused = _body_too_long(fake, record, "IssueComment", body.get("body"))
    if refused:
        return refused
    comment.body = str(body.get("body"))
    comment.updated_at = fake.now
    return 200, _comment_out(fake, comment), {}


def _delete_comment(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    comment = _comment_of(fake, params)
    if comment is None:
        return _error(404, "Not Found")
    del fake.comment_records[comment.id]
    return 204, None, {}


def _check_run_create(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    body = record.body if isinstance(record.body, dict) else {}
    return _create_check_run(fake, params["owner"], params["repo"], body)


def _check_run_update(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    body = record.body if isinstance(record.body, dict) else {}
    return _update_check_run(fake, int(params["check_run_id"]), body)


def _check_run_get(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    run = fake.check_runs.get(int(params["check_run_id"]))
    return (200, run, {}) if run else _error(404, "Not Found")


def _check_runs_for_ref(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    name = _query(record, "check_name")
    runs = [
        r
        for r in sorted(fake.check_runs.values(), key=lambda r: -r["id"])
        if r["head_sha"] == params["ref"] and (name is None or r["name"] == name)
    ]
    page, links = _paginate(fake, record.path, record, runs)
    return 200, {"total_count": len(runs), "check_runs": page}, links


def _check_run_annotations(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    run_id = int(params["check_run_id"])
    if run_id not in fake.check_runs:
        return _error(404, "Not Found")
    items = [
        _annotation_out(fake, params["owner"], params["repo"], a) for a in fake.annotations[run_id]
    ]
    page, links = _paginate(fake, record.path, record, items)
    return 200, page, links


def _commit_status(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    body = record.body if isinstance(record.body, dict) else {}
    return _create_status(fake, params["owner"], params["repo"], params["sha"], body)


def _artifact_out(fake: FakeGitHub, artifact: ArtifactRecord) -> dict[str, Any]:
    api = f"{fake.base_url}/repos/{artifact.owner}/{artifact.repo}/actions/artifacts/{artifact.id}"
    return {
        "id": artifact.id,
        "node_id": f"MDg6QXJ0aWZhY3Q{artifact.id}",
        "name": artifact.name,
        "size_in_bytes": len(artifact.data),
        "url": api,
        "archive_download_url": f"{api}/zip",
        "expired": artifact.expired,
        "created_at": artifact.created_at,
        "expires_at": "2027-03-01T00:00:00Z",
        "updated_at": artifact.created_at,
        "digest": "sha256:" + hashlib.sha256(artifact.data).hexdigest(),
        "workflow_run": {
            "id": artifact.run_id,
            "repository_id": _stable_id("repo", f"{artifact.owner}/{artifact.repo}"),
            "head_repository_id": _stable_id("repo", artifact.head_repo),
            "head_branch": "main",
            "head_sha": fake_sha("artifact", artifact.id),
        },
    }


def _signature(artifact: ArtifactRecord) -> str:
    return hashlib.sha256(f"signed:{artifact.id}:{artifact.name}".encode()).hexdigest()[:32]


def _list_artifacts(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    owner, repo = params["owner"], params["repo"]
    name = _query(record, "name")
    # Newest first, as GitHub lists them; the name filter matches the whole name only.
    found = [
        a
        for _, a in sorted(fake.artifact_records.items(), reverse=True)
        if (a.owner, a.repo) == (owner, repo) and (name is None or a.name == name)
    ]
    page, links = _paginate(fake, record.path, record, [_artifact_out(fake, a) for a in found])
    return 200, {"total_count": len(found), "artifacts": page}, links


def _artifact_of(fake: FakeGitHub, params: dict[str, str]) -> ArtifactRecord | None:
    artifact = fake.artifact_records.get(int(params["artifact_id"]))
    if artifact is None or (artifact.owner, artifact.repo) != (params["owner"], params["repo"]):
        return None
    return artifact


def _download_artifact(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    artifact = _artifact_of(fake, params)
    if artifact is None or params["archive_format"] != "zip":
        return _error(404, "Not Found")
    if artifact.expired:
        return _error(410, "Artifact has expired")
    location = f"{fake.base_url}{ARCHIVE_PATH}{artifact.id}.zip?sig={_signature(artifact)}"
    return 302, None, {"Location": location}


def _delete_artifact(fake: FakeGitHub, params: dict[str, str], record: Recorded) -> Reply:
    artifact = _artifact_of(fake, params)
    if artifact is None:
        return _error(404, "Not Found")
    del fake.artifact_records[artifact.id]
    return 204, None, {}


Handler = Callable[[FakeGitHub, dict[str, str], Recorded], Reply]

#: The operations the fake serves, by operationId; any other route is a test failure.
_HANDLERS: dict[str, Handler] = {
    "checks/create": _check_run_create,
    "checks/update": _check_run_update,
    "checks/get": _check_run_get,
    "checks/list-for-ref": _check_runs_for_ref,
    "checks/list-annotations": _check_run_annotations,
    "repos/create-commit-status": _commit_status,
    "pulls/list": _list_pulls,
    "pulls/get": _get_pull,
    "repos/list-pull-requests-associated-with-commit": _pulls_of_commit,
    "repos/list-branches": _list_branches,
    "actions/get-workflow-run": _get_run,
    "issues/list-for-repo": _list_issues,
    "issues/get": _get_issue,
    "issues/create": _create_issue,
    "issues/update": _update_issue,
    "issues/list-comments": _list_comments,
    "issues/create-comment": _create_comment,
    "issues/update-comment": _update_comment,
    "issues/delete-comment": _delete_comment,
    "actions/list-artifacts-for-repo": _list_artifacts,
    "actions/download-artifact": _download_artifact,
    "actions/delete-artifact": _delete_artifact,
}


def _annotation_out(fake: FakeGitHub, owner: str, repo: str, sent: dict[str, Any]) -> Any:
    """An annotation as GET .../annotations shows it (every field present, nulls included)."""
    return {
        "path": sent["path"],
        "blob_href": f"https://github.example/{owner}/{repo}/blob/HEAD/{sent['path']}",
        "start_line": sent["start_line"],
        "end_line": sent["end_line"],
        "start_column": sent.get("start_column"),
        "end_column": sent.get("end_column"),
        "annotation_level": sent["annotation_level"],
        "title": sent.get("title"),
        "message": sent["message"],
        "raw_details": sent.get("raw_details"),
    }


def _hand_rules(fake: FakeGitHub, body: dict[str, Any]) -> str | None:
    """Limits GitHub states only in prose; None when the body keeps them."""
    output = body.get("output") or {}
    for index, item in enumerate(output.get("annotations") or []):
        if len(str(item.get("title") or "")) > 255:
            return f"output.annotations[{index}].title is longer than 255 characters"
        if len(str(item.get("message") or "").encode("utf-8")) > 64 * 1024:
            return f"output.annotations[{index}].message is larger than 64 KB"
    return None


def _create_check_run(
    fake: FakeGitHub, owner: str, repo: str, body: dict[str, Any]
) -> tuple[int, Any, dict[str, str]]:
    problem = _hand_rules(fake, body)
    if problem:
        fake.violations.append(f"POST check-runs: {problem}")
        return _error(422, problem)
    run_id = len(fake.check_runs) + 1
    url = f"{fake.base_url}/repos/{owner}/{repo}/check-runs/{run_id}"
    run = {
        "id": run_id,
        "node_id": f"CR_{run_id}",
        "head_sha": body.get("head_sha"),
        "name": body.get("name"),
        "external_id": body.get("external_id"),
        "url": url,
        "html_url": f"https://github.example/{owner}/{repo}/runs/{run_id}",
        "details_url": body.get("details_url"),
        "status": body.get("status", "queued"),
        "conclusion": body.get("conclusion"),
        "started_at": _NOW,
        "completed_at": body.get("completed_at"),
        "output": {
            "title": None,
            "summary": None,
            "text": None,
            "annotations_count": 0,
            "annotations_url": f"{url}/annotations",
        },
        "check_suite": {"id": 1},
        "app": None,
        "pull_requests": [],
    }
    fake.check_runs[run_id] = run
    fake.annotations[run_id] = []
    _apply_output(fake, run, body)
    return 201, run, {}


def _update_check_run(
    fake: FakeGitHub, run_id: int, body: dict[str, Any]
) -> tuple[int, Any, dict[str, str]]:
    run = fake.check_runs.get(run_id)
    if run is None:
        return _error(404, "Not Found")
    problem = _hand_rules(fake, body)
    if problem:
        fake.violations.append(f"PATCH check-runs/{run_id}: {problem}")
        return _error(422, problem)
    for key in ("name", "details_url", "external_id", "status", "conclusion", "completed_at"):
        if key in body:
            run[key] = body[key]
    if "conclusion" in body:
        run["status"] = "completed"
    _apply_output(fake, run, body)
    return 200, run, {}


def _apply_output(fake: FakeGitHub, run: dict[str, Any], body: dict[str, Any]) -> None:
    output = body.get("output")
    if not isinstance(output, dict):
        return
    for key in ("title", "summary", "text"):
        if key in output:
            run["output"][key] = output[key]
    # GitHub appends annotations on every update.
    fake.annotations[run["id"]].extend(copy.deepcopy(output.get("annotations") or []))
    run["output"]["annotations_count"] = len(fake.annotations[run["id"]])


def _create_status(
    fake: FakeGitHub, owner: str, repo: str, sha: str, body: dict[str, Any]
) -> tuple[int, Any, dict[str, str]]:
    description = body.get("description")
    if description is not None and len(description) > 140:
        fake.violations.append("POST statuses: description longer than 140 characters")
        return _error(422, "description is too long (maximum is 140 characters)")
    status_id = len(fake.statuses) + 1
    status = {
        "url": f"{fake.base_url}/repos/{owner}/{repo}/statuses/{sha}",
        "avatar_url": None,
        "id": status_id,
        "node_id": f"SC_{status_id}",
        "state": body.get("state"),
        "description": description,
        "target_url": body.get("target_url"),
        "context": body.get("context", "default"),
        "created_at": _NOW,
        "updated_at": _NOW,
        "creator": None,
        "sha": sha,
    }
    fake.statuses.append(status)
    return 201, status, {}


def _installation_token(
    fake: FakeGitHub, record: Recorded, installation_id: int
) -> tuple[int, Any, dict[str, str]]:
    import jwt

    auth = record.headers.get("Authorization", "")
    if fake.app_id is None or not auth.startswith("Bearer "):
        return _error(401, "A JSON web token could not be decoded")
    try:
        claims = jwt.decode(auth[len("Bearer ") :], fake.app_public_key, algorithms=["RS256"])
    except jwt.PyJWTError:
        return _error(401, "A JSON web token could not be decoded")
    if str(claims.get("iss")) != fake.app_id:
        return _error(401, "'Issuer' claim ('iss') must be the app id")
    body = {
        "token": fake.installation_token,
        "expires_at": "2099-01-01T00:00:00Z",
        "permissions": {"checks": "write", "statuses": "write"},
        "repository_selection": "all",
    }
    return 201, body, {}


def _validate_exchange(
    fake: FakeGitHub,
    method: str,
    target: str,
    headers: dict[str, str],
    raw: bytes,
    status: int,
    data: bytes,
    response_headers: dict[str, str],
) -> None:
    """Validate the request and the response against the OpenAPI description."""
    import requests
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    openapi = _openapi()
    url = f"http://127.0.0.1{target}"
    request = requests.Request(method, url, headers=headers, data=raw or None)
    wrapped = RequestsOpenAPIRequest(request)
    path = urlsplit(target).path
    label = f"{method} {path} -> {status}"
    try:
        openapi.validate_request(wrapped)
    except Exception as exc:
        fake.violations.append(f"request {label}: {_describe(exc)}")
    response = requests.Response()
    response.status_code = status
    response._content = data
    response.headers.update(response_headers)
    if data:
        response.headers["Content-Type"] = "application/json; charset=utf-8"
    found = find_route(method, path)
    if status >= 400 and not (found and str(status) in found[0].statuses):
        # GitHub answers errors the description does not list for every operation
        # (401, 403, 5xx); they all carry the basic-error shape.
        errors = list(_basic_error_validator().iter_errors(json.loads(data or b"{}")))
        if errors:
            fake.violations.append(f"response {label}: not a basic-error: {errors[0].message}")
        return
    try:
        openapi.validate_response(wrapped, RequestsOpenAPIResponse(response))
    except Exception as exc:
        fake.violations.append(f"response {label}: {_describe(exc)}")


def _describe(exc: Exception) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__
    while cause is not None:
        details = getattr(cause, "schema_errors", None)
        if details:
            parts.extend(str(getattr(e, "message", e))[:300] for e in details)
        else:
            parts.append(str(cause)[:300])
        cause = cause.__cause__
    return " | ".join(parts)
