"""Web links to a case file at the exact cases-repo commit.

A link exists only when the cases repo is known to be browsable: a GitHub https or ssh URL
(github.com, or the Actions server's host for GitHub Enterprise), or an explicit web base URL.
Credentials in the URL never reach the link.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

_SCP_RE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def repo_web_base(cases_repo: str, *, server_url: str = "https://github.com") -> str | None:
    """``https://HOST/OWNER/NAME`` for a GitHub cases-repo URL, else None (local paths...)."""
    allowed = {"github.com", (urlsplit(server_url).hostname or "").lower()}
    if "://" in cases_repo:
        parts = urlsplit(cases_repo)
        if parts.scheme not in {"https", "http", "ssh", "git"}:
            return None
        host, path = (parts.hostname or "").lower(), parts.path
    else:
        match = _SCP_RE.match(cases_repo)
        if match is None:
            return None
        host, path = match["host"].lower(), match["path"]
    if host not in allowed:
        return None
    segments = [s for s in path.strip("/").split("/") if s]
    if len(segments) != 2:
        return None
    owner, name = segments[0], segments[1].removesuffix(".git")
    if not owner or not name:
        return None
    scheme = "https" if host == "github.com" else (urlsplit(server_url).scheme or "https")
    return f"{scheme}://{host}/{owner}/{name}"


def case_file_url(web_base: str | None, commit: str | None, path: str) -> str | None:
    """The blob URL of ``path`` at ``commit`` under a repository web base URL."""
    if not web_base or not commit:
        return None
    return f"{web_base.rstrip('/')}/blob/{quote(commit, safe='')}/{quote(path, safe='/')}"
