"""A local GitHub REST server (real sockets, one thread) for the securecase reporting tests.

It speaks the endpoints securecase uses (check runs create/update/get/list for a ref, commit
statuses, App installation tokens) and validates EVERY request and response against GitHub's
OpenAPI description in ``tests/github/openapi-subset.json`` (see ``tests/github/README.md``).
Anything that does not validate is recorded in ``violations``; the ``fake_github`` fixture
fails the test when the list is not empty. Rules GitHub enforces but the description only
states in prose (140-character status description, annotation title and message sizes) are
checked by hand.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SPEC_PATH = Path(__file__).resolve().parent / "github" / "openapi-subset.json"
TOKEN = "ghp_testtoken_0123456789abcdefSECRET"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


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


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Fault:
    """A scripted failure for the next ``times`` matching requests."""

    method: str
    pattern: re.Pattern[str]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int
    #: Carry the request out before answering with the error (a reply lost on the way back).
    applied: bool = False


@dataclass
class FakeGitHub:
    """State and scripted behaviour of the fake API; see :func:`serve`."""

    token: str = TOKEN
    base_url: str = ""
    app_id: str | None = None
    app_public_key: Any = None
    installation_token: str = "ghs_installationtoken_0123456789SECRET"
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

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

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """Requests with this method whose path matches the regex."""
        regex = re.compile(pattern)
        return [r for r in self.requests if r.method == method and regex.search(r.path)]


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
        with fake.lock:
            fake.requests.append(record)
            status, payload, headers = _respond(fake, method, parts.path, record, raw)
        record.status = status
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        _validate_exchange(fake, method, self.path, dict(self.headers), raw, status, data)
        self.send_response(status)
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


class _Server(ThreadingHTTPServer):
    fake: FakeGitHub
    daemon_threads = True


def serve(fake: FakeGitHub) -> Iterator[FakeGitHub]:
    """Run ``fake`` on 127.0.0.1 (a free port) while the generator is suspended."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


_CHECK_RUNS = re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs$")
_CHECK_RUN = re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs/(\d+)$")
_LIST_FOR_REF = re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([^/]+)/check-runs$")
_ANNOTATIONS = re.compile(r"^/repos/([^/]+)/([^/]+)/check-runs/(\d+)/annotations$")
_STATUSES = re.compile(r"^/repos/([^/]+)/([^/]+)/statuses/([^/]+)$")
_ACCESS_TOKENS = re.compile(r"^/app/installations/(\d+)/access_tokens$")
_NOW = "2026-11-23T10:00:00Z"


def _error(status: int, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return status, {"message": message, "documentation_url": "https://docs.github.com/rest"}, {}


def _respond(
    fake: FakeGitHub, method: str, path: str, record: Recorded, raw: bytes
) -> tuple[int, Any, dict[str, str]]:
    token_match = _ACCESS_TOKENS.match(path)
    if token_match and method == "POST":
        return _installation_token(fake, record, int(token_match[1]))
    auth = record.headers.get("Authorization", "")
    allowed = {f"token {fake.token}"}
    if fake.app_id is not None:
        allowed.add(f"token {fake.installation_token}")
    if auth not in allowed:
        return _error(401, "Bad credentials")
    for fault in fake.faults:
        if fault.times > 0 and fault.method == method and fault.pattern.search(path):
            fault.times -= 1
            if fault.applied:
                _serve(fake, method, path, record)
            return fault.status, fault.body, fault.headers
    return _serve(fake, method, path, record)


def _serve(
    fake: FakeGitHub, method: str, path: str, record: Recorded
) -> tuple[int, Any, dict[str, str]]:
    body = record.body if isinstance(record.body, dict) else {}
    if (m := _CHECK_RUNS.match(path)) and method == "POST":
        return _create_check_run(fake, m[1], m[2], body)
    if (m := _CHECK_RUN.match(path)) and method == "PATCH":
        return _update_check_run(fake, int(m[3]), body)
    if (m := _CHECK_RUN.match(path)) and method == "GET":
        run = fake.check_runs.get(int(m[3]))
        return (200, run, {}) if run else _error(404, "Not Found")
    if (m := _LIST_FOR_REF.match(path)) and method == "GET":
        name = record.query.get("check_name", [None])[0]
        runs = [
            r
            for r in sorted(fake.check_runs.values(), key=lambda r: -r["id"])
            if r["head_sha"] == m[3] and (name is None or r["name"] == name)
        ]
        page, links = _paginate(fake, path, record, runs)
        return 200, {"total_count": len(runs), "check_runs": page}, links
    if (m := _ANNOTATIONS.match(path)) and method == "GET":
        if int(m[3]) not in fake.check_runs:
            return _error(404, "Not Found")
        items = [_annotation_out(fake, m[1], m[2], a) for a in fake.annotations[int(m[3])]]
        page, links = _paginate(fake, path, record, items)
        return 200, page, links
    if (m := _STATUSES.match(path)) and method == "POST":
        return _create_status(fake, m[1], m[2], m[3], body)
    return _error(404, "Not Found")


def _paginate(
    fake: FakeGitHub, path: str, record: Recorded, items: list[Any]
) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items`` as GitHub serves it: ``per_page`` (default 30), ``Link`` next."""
    per_page = int(record.query.get("per_page", ["30"])[0])
    page = int(record.query.get("page", ["1"])[0])
    start = (page - 1) * per_page
    headers = {}
    if start + per_page < len(items):
        query = {k: v[0] for k, v in record.query.items()}
        query.update(per_page=str(per_page), page=str(page + 1))
        url = f"{fake.base_url}{path}?" + "&".join(f"{k}={v}" for k, v in query.items())
        headers["Link"] = f'<{url}>; rel="next"'
    return items[start : start + per_page], headers


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
) -> None:
    """Validate the request and the response against the OpenAPI description."""
    import requests
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    openapi = _openapi()
    url = f"http://127.0.0.1{target}"
    request = requests.Request(method, url, headers=headers, data=raw or None)
    wrapped = RequestsOpenAPIRequest(request)
    label = f"{method} {urlsplit(target).path} -> {status}"
    try:
        openapi.validate_request(wrapped)
    except Exception as exc:
        fake.violations.append(f"request {label}: {_describe(exc)}")
    response = requests.Response()
    response.status_code = status
    response._content = data
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    if status >= 400 and not _documented(method, urlsplit(target).path, status):
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


def _documented(method: str, path: str, status: int) -> bool:
    for template, item in _path_items().items():
        regex = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(regex, path) and method.lower() in item:
            return str(status) in item[method.lower()]["responses"]
    return False


@functools.cache
def _path_items() -> dict[str, Any]:
    paths: dict[str, Any] = json.loads(SPEC_PATH.read_text("utf-8"))["paths"]
    return paths


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
