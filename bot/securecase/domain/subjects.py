"""Case subjects, case keys, and their safe folder names in the cases repo.

A case key reads ``<provider>::<org>::<repo>::PR::<n>`` or ``...::BR::<branch>``. The folder is
``cases/<provider>/<org>/<repo>/pr-<n>`` or ``.../branch-<encoded branch>``, where every name is
encoded into one path segment that cannot escape ``cases/`` whatever the input.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

from securecase.errors import UsageError

CASES_ROOT = "cases"
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
_COMMIT_RE = re.compile(r"[0-9A-Fa-f]{7,64}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Filesystems cap one path component at 255 bytes; longer encodings are shortened with a hash.
_MAX_SEGMENT = 200


class Provider(StrEnum):
    """Where the scanned repository is hosted."""

    GITHUB = "github"
    GITLAB = "gitlab"
    GENERIC = "generic"


@dataclass(frozen=True, slots=True)
class Subject:
    """What a case is about: one repository plus one pull request or one branch.

    For a pull request, ``branch`` is its head branch (optional) and ``target_branch`` the
    branch it merges into.
    """

    provider: Provider
    org: str
    repo: str
    pr: int | None = None
    branch: str | None = None
    target_branch: str | None = None

    @property
    def is_pr(self) -> bool:
        return self.pr is not None

    @property
    def slug(self) -> str:
        """``org/repo``, the form policies match repository globs against."""
        return f"{self.org}/{self.repo}"

    @property
    def key(self) -> str:
        """The case key (stable across scans of the same PR or branch)."""
        base = f"{self.provider.value}::{self.org}::{self.repo}"
        if self.pr is not None:
            return f"{base}::PR::{self.pr}"
        return f"{base}::BR::{self.branch}"

    @property
    def folder(self) -> str:
        """The case folder, relative to the cases repo root."""
        base = f"{CASES_ROOT}/{self.provider.value}/{encode_segment(self.org)}"
        base = f"{base}/{encode_segment(self.repo)}"
        if self.pr is not None:
            return f"{base}/pr-{self.pr}"
        return f"{base}/branch-{encode_segment(self.branch or '')}"


def make_subject(
    *,
    provider: str,
    repo: str,
    pr: int | None,
    branch: str | None,
    target_branch: str | None,
) -> Subject:
    """Validate the subject flags and build a :class:`Subject` (UsageError when invalid)."""
    try:
        prov = Provider(provider)
    except ValueError:
        choices = ", ".join(p.value for p in Provider)
        raise UsageError(f"unknown provider {provider!r}; expected one of {choices}") from None
    org, sep, name = repo.partition("/")
    if not sep:
        raise UsageError(
            f"--repo {repo!r} is not of the form ORG/NAME", hint="for example --repo acme/shop"
        )
    # GitLab groups nest (group/subgroup/project): the last segment is the project.
    if "/" in name:
        if prov is not Provider.GITLAB:
            raise UsageError(f"--repo {repo!r}: expected exactly one '/' (ORG/NAME)")
        org, _, name = repo.rpartition("/")
    for part in (*org.split("/"), name):
        if not _NAME_RE.fullmatch(part) or part in {".", ".."}:
            raise UsageError(
                f"--repo {repo!r}: {part!r} is not a valid name",
                hint="names use letters, digits, '.', '_' and '-'",
            )
    if pr is None and branch is None:
        raise UsageError(
            "no subject: pass --pr N (a pull request) or --branch NAME",
            hint="inside GitHub Actions these come from the event; elsewhere pass them",
        )
    if pr is not None and pr <= 0:
        raise UsageError(f"--pr {pr}: a pull request number is a positive integer")
    for flag, value in (("--branch", branch), ("--target-branch", target_branch)):
        if value is not None:
            check_branch_name(value, flag)
    if pr is None and target_branch is not None:
        raise UsageError("--target-branch only applies to a pull request (--pr)")
    return Subject(prov, org, name, pr, branch, target_branch)


def check_branch_name(name: str, flag: str = "--branch") -> None:
    """Refuse names git itself would refuse in ways that matter to us (empty, control chars)."""
    if not name:
        raise UsageError(f"{flag}: the branch name is empty")
    if any("\udc80" <= c <= "\udcff" for c in name):
        # Python hands undecodable argument bytes over as lone surrogates.
        raise UsageError(
            f"{flag} {name.encode('utf-8', 'surrogateescape')!r}: the branch name is not UTF-8",
            hint="pass the branch name as git shows it (UTF-8)",
        )
    if _CONTROL_RE.search(name):
        raise UsageError(
            f"{flag} {name!r}: a branch name cannot contain control characters (newline, tab...)"
        )
    if len(name.encode("utf-8", "surrogatepass")) > 1024:
        raise UsageError(f"{flag}: the branch name is longer than 1024 bytes")


def check_commit_id(value: str, flag: str = "--commit") -> str:
    """The scanned commit's id, lower-cased: 7 to 64 hex digits (UsageError otherwise).

    The id goes into commit trailers and file names, so nothing but hex digits is let through
    (a newline would let an argument forge trailers).
    """
    if not _COMMIT_RE.fullmatch(value):
        shown = value if len(value) <= 80 else value[:80] + "..."
        raise UsageError(
            f"{flag} {shown!r}: expected a git commit id (7 to 64 hex digits)",
            hint='pass the full id, e.g. --commit "$(git rev-parse HEAD)"',
        )
    return value.lower()


def encode_segment(name: str) -> str:
    """Encode any name into one safe path segment, reversibly while it stays short.

    Every byte outside ``[A-Za-z0-9._-]`` (``/`` included) and a leading ``.`` become ``%XX``.
    Encodings longer than 200 bytes keep a readable prefix plus ``~`` and a hash of the name;
    ``~`` never appears in a short encoding, so the two cannot collide.
    """
    raw = name.encode("utf-8", "surrogatepass")
    out = []
    for index, byte in enumerate(raw):
        if byte in _SAFE_BYTES and not (index == 0 and byte == 0x2E):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    encoded = "".join(out)
    if len(encoded) <= _MAX_SEGMENT:
        return encoded
    digest = hashlib.sha256(raw).hexdigest()[:32]
    prefix = encoded[: _MAX_SEGMENT - 33]
    # Never cut a %XX escape in half.
    cut = prefix.rfind("%", len(prefix) - 2)
    if cut != -1:
        prefix = prefix[:cut]
    return f"{prefix}~{digest}"


def decode_segment(segment: str) -> str | None:
    """Invert :func:`encode_segment`; None for a hashed (long) segment, which is one-way."""
    if "~" in segment:
        return None
    out = bytearray()
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "%":
            out.append(int(segment[index + 1 : index + 3], 16))
            index += 3
        else:
            out.append(ord(char))
            index += 1
    return out.decode("utf-8", "surrogatepass")


def parse_key(key: str) -> Subject:
    """Parse a case key back into a subject (UsageError when malformed)."""
    parts = key.split("::", 4)
    if len(parts) != 5 or parts[3] not in {"PR", "BR"}:
        raise UsageError(
            f"{key!r} is not a case key",
            hint="keys look like github::acme::shop::PR::42 or github::acme::shop::BR::main",
        )
    provider, org, repo, kind, rest = parts
    repo_arg = f"{org}/{repo}"
    if kind == "PR":
        if not rest.isdigit():
            raise UsageError(f"{key!r}: the pull request number {rest!r} is not a number")
        return make_subject(
            provider=provider, repo=repo_arg, pr=int(rest), branch=None, target_branch=None
        )
    return make_subject(provider=provider, repo=repo_arg, pr=None, branch=rest, target_branch=None)
