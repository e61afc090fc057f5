"""A git server over real HTTP for tests: ``git http-backend`` behind Basic authentication.

Every request must carry ``Authorization: Basic`` for the configured user and token; the
server records each request's path and headers, so tests can check what a client sent.
"""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class GitHttpServer:
    """A bare repository served over HTTP; ``url`` is its clone URL (no credentials)."""

    root: Path
    user: str
    token: str
    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    refused: int = 0
    #: Each fetch (``git-upload-pack``) request's body, decompressed, and the bytes answered.
    fetches: list[tuple[bytes, int]] = field(default_factory=list)
    #: When set, a push waits for ``release`` (after setting ``pushing``): a test can look at
    #: the client's files while it is half-way through its run.
    hold_pushes: bool = False
    pushing: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cases.git"

    def wanted(self) -> list[str]:
        """The object ids the clients asked for (``want`` lines), in order."""
        return [
            line.split()[1].decode()
            for body, _ in self.fetches
            for line in pkt_lines(body)
            if line.startswith(b"want ")
        ]

    def bytes_sent(self) -> int:
        """Bytes of every answer to a fetch."""
        return sum(size for _, size in self.fetches)


def pkt_lines(data: bytes) -> list[bytes]:
    """The payloads of git's pkt-line stream (4 hex digits of length, then the payload)."""
    lines, pos = [], 0
    while pos + 4 <= len(data):
        size = int(data[pos : pos + 4], 16)
        if size < 4:  # flush, delimiter and response-end packets carry nothing
            pos += 4
            continue
        lines.append(data[pos + 4 : pos + size].rstrip(b"\n"))
        pos += size
    return lines


def _handler(server: GitHttpServer) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{server.user}:{server.token}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet: tests read ``server.requests`` instead."""

        def _serve(self) -> None:
            server.requests.append((self.path, dict(self.headers.items())))
            if self.headers.get("Authorization") != expected:
                server.refused += 1
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="cases"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            if server.hold_pushes and path.endswith("/git-receive-pack"):
                server.pushing.set()
                server.release.wait(timeout=60)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": server.user,
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
            out = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            ).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            if path.endswith("/git-upload-pack") and self.command == "POST":
                gzipped = self.headers.get("Content-Encoding", "") == "gzip"
                server.fetches.append((gzip.decompress(body) if gzipped else body, len(payload)))
            status = 200
            headers = []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve

    return Handler


@contextmanager
def serve_git(root: Path, *, user: str, token: str) -> Iterator[GitHttpServer]:
    """Serve the bare repositories under ``root`` (``cases.git`` among them) on localhost."""
    server = GitHttpServer(root, user, token)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()
