"""URL clean-up shared by the parsers of web findings (ZAP instances, SARIF result URLs)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: ``;name=value`` in a URI path (matrix or session parameters): the value goes.
_PATH_PARAMETER_VALUE = re.compile(r"(;[^;/=?#]*=)[^;/?#]*")


def without_query_values(uri: str) -> str:
    """The URI with query parameter values, path parameter values (``;jsessionid=...``),
    user info (``user:password@``) and the fragment removed: they may be secrets (tokens,
    session ids, credentials) and they vary between scans of the same problem."""
    try:
        split = urlsplit(uri)
    except ValueError:
        return _PATH_PARAMETER_VALUE.sub(r"\1", uri.split("?", 1)[0].split("#", 1)[0])
    split = split._replace(
        netloc=split.netloc.rpartition("@")[2],
        path=_PATH_PARAMETER_VALUE.sub(r"\1", split.path),
        fragment="",
    )
    if not split.query:
        return urlunsplit(split)
    names = [(name, "") for name, _ in parse_qsl(split.query, keep_blank_values=True)]
    return urlunsplit(split._replace(query=urlencode(names)))
