"""Parse raw git commit objects: author, committer time, subject and trailers.

``cases history`` reads commits as objects (``git cat-file``) instead of through a
``git log --format`` string, because a format's field separators could appear in a message a
human wrote and forge a record; an object's header lines cannot be forged from its message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

_PERSON = re.compile(r"^(?P<name>.*?) ?<(?P<email>[^<>]*)> (?P<ts>-?\d+) (?P<tz>[+-]\d{4})$")
_TRAILER = re.compile(r"^(?P<key>[A-Za-z0-9][A-Za-z0-9-]*): ?(?P<value>.*)$")


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """What a timeline needs from a commit object."""

    author_name: str
    author_email: str
    committed_at: str  # ISO 8601 with the committer's offset
    subject: str
    trailers: dict[str, str]  # last-paragraph ``Key: value`` lines; key as written


def parse_commit(data: bytes) -> CommitInfo:
    """Parse a commit object (ValueError when it has no author or committer line)."""
    text = data.decode("utf-8", "replace")
    header, _, message = text.partition("\n\n")
    author = committer = None
    for line in header.split("\n"):
        if line.startswith(" "):
            continue  # continuation of a multi-line header (gpgsig, mergetag)
        name, _, value = line.partition(" ")
        if name == "author" and author is None:
            author = _PERSON.match(value)
        elif name == "committer" and committer is None:
            committer = _PERSON.match(value)
    if author is None or committer is None:
        raise ValueError("not a commit object with author and committer")
    return CommitInfo(
        author_name=author["name"],
        author_email=author["email"],
        committed_at=_iso(int(committer["ts"]), committer["tz"]),
        subject=message.split("\n", 1)[0].strip(),
        trailers=trailers(message),
    )


def trailers(message: str) -> dict[str, str]:
    """The trailer block: the message's last paragraph when every line is ``Key: value``."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}  # a subject alone carries no trailers
    found: dict[str, str] = {}
    for line in paragraphs[-1].split("\n"):
        match = _TRAILER.match(line.rstrip())
        if match is None:
            return {}
        found.setdefault(match["key"], match["value"].strip())
    return found


def _iso(timestamp: int, offset: str) -> str:
    sign = -1 if offset[0] == "-" else 1
    delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])) * sign
    moment = datetime.fromtimestamp(timestamp, UTC).astimezone(timezone(delta))
    return moment.isoformat()
