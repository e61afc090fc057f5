"""Reading a shard file (``shards.yaml``): safe YAML, its JSON Schema, then checks that need
the whole file, all reported at once as ``file:line`` (exit 2). See README "Shards".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from securecase.domain.shards import Shard, ShardMap
from securecase.errors import InputError
from securecase.storage import schemas, yamldoc
from securecase.storage.git import redact, url_secrets
from securecase.storage.repos import is_remote
from securecase.storage.userfile import read_regular_file

SCHEMA = "shards.schema.json"
HINT = 'see README "Shards" for the file\'s format'


def load_shards(path: Path) -> ShardMap:
    """The shard map in the file at ``path``; ``InputError`` (file:line) when it is not one.

    A ``cases_repo`` that is a path is taken relative to the file's folder.
    """
    origin = str(path)
    data = read_regular_file(path, what=origin, kind="shard file")
    try:
        located = yamldoc.load_located(data, path=origin)
    except yamldoc.YamlError as exc:
        raise InputError(exc.message, hint=HINT) from exc
    return shards_from_document(located, origin=origin, folder=path.parent)


def shards_from_document(located: yamldoc.Located, *, origin: str, folder: Path) -> ShardMap:
    """Validate a parsed shard file (with its node tree, for lines) into a :class:`ShardMap`."""
    document = located.data
    if document is None:
        raise InputError(f"{origin}: the shard file is empty", hint=HINT)

    def line_of(*parts: str | int) -> int:
        return yamldoc.line_of(located.node, list(parts)) or 0

    found = schemas.problems(
        document, SCHEMA, path=origin, line_of=lambda parts: line_of(*parts) or None
    )
    if not found:
        found = _problems(document, origin, folder, line_of)
    if found:
        raise InputError(
            f"{origin}: the shard file is invalid ({len(found)} problem(s))",
            problems=found,
            hint=HINT,
        )
    return ShardMap(
        origin=origin,
        shards=tuple(
            Shard(
                name=raw["name"],
                cases_repo=_location(raw["cases_repo"], folder),
                repos=tuple(raw.get("repos", ())),
                default=bool(raw.get("default", False)),
                web_url=raw.get("web_url"),
                line=line_of("shards", index),
                masked=redact(raw["cases_repo"], url_secrets(raw["cases_repo"])),
            )
            for index, raw in enumerate(document["shards"])
        ),
    )


def _location(cases_repo: str, folder: Path) -> str:
    """A URL as written; a path joined to the shard file's folder (``~`` expanded)."""
    if is_remote(cases_repo):
        return cases_repo
    return os.path.normpath(folder / Path(cases_repo).expanduser())


def _problems(document: dict[str, Any], origin: str, folder: Path, line_of: Any) -> list[str]:
    """What the schema cannot say: unique names and cases repos, one default, patterns that
    are ``ORG/NAME`` globs, and no shard that could never be picked."""
    found: list[str] = []
    names: dict[str, int] = {}
    locations: dict[str, int] = {}
    default_at: int | None = None
    for index, raw in enumerate(document["shards"]):
        at = f"$.shards[{index}]"
        name = raw["name"]
        if name in names:
            found.append(
                f"{origin}:{line_of('shards', index, 'name')}: {at}.name: shard name {name!r} "
                f"is used twice (first at line {line_of('shards', names[name], 'name')})"
            )
        names.setdefault(name, index)
        location = _location(raw["cases_repo"], folder)
        if location in locations:
            found.append(
                f"{origin}:{line_of('shards', index, 'cases_repo')}: {at}.cases_repo: "
                f"{redact(raw['cases_repo'], url_secrets(raw['cases_repo']))!r} is already the "
                f"cases repo of shard "
                f"{document['shards'][locations[location]]['name']!r}: every case would be "
                "counted twice"
            )
        locations.setdefault(location, index)
        if raw.get("default"):
            if default_at is not None:
                found.append(
                    f"{origin}:{line_of('shards', index, 'default')}: {at}.default: only one "
                    f"shard can be the default (shard "
                    f"{document['shards'][default_at]['name']!r} already is)"
                )
            default_at = index if default_at is None else default_at
        elif not raw.get("repos"):
            found.append(
                f"{origin}:{line_of('shards', index)}: {at}: shard {name!r} has no repos "
                "patterns and is not the default: no repository would ever go there"
            )
        for number, pattern in enumerate(raw.get("repos", ())):
            problem = pattern_problem(pattern)
            if problem:
                found.append(
                    f"{origin}:{line_of('shards', index, 'repos', number)}: "
                    f"{at}.repos[{number}]: {problem}"
                )
    return found


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not an ``ORG/NAME`` glob (None when it is one)."""
    if any(c.isspace() or not c.isprintable() for c in pattern):
        return (
            f"{yamldoc.clip(repr(pattern), 80)}: a repository pattern has no spaces or "
            "control characters"
        )
    segments = pattern.split("/")
    if pattern == "**":
        return None  # every repository, nested GitLab groups too
    if len(segments) < 2 or any(not segment for segment in segments):
        return (
            f"{yamldoc.clip(repr(pattern), 80)} is not an ORG/NAME pattern "
            "(e.g. acme/shop, acme/pay-*, acme/*)"
        )
    if any(segment in {".", ".."} for segment in segments):
        return f"{yamldoc.clip(repr(pattern), 80)}: '.' and '..' are not repository names"
    return None
