"""Shards: an organisation's cases spread over several cases repos, chosen by repository.

A shard map is an ordered list of shards, each a cases repo and ``ORG/NAME`` globs. A
repository belongs to the first shard with a matching glob, else to the default shard (at most
one), else to none. A case key must live in one shard only; when a pattern changes, a copy can
be left in the shard that held it before, and :func:`owner` says which copy counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from securecase.domain.policy.evaluate import glob_match


@dataclass(frozen=True, slots=True)
class Shard:
    """One cases repo of a shard map and the repositories it takes."""

    name: str
    cases_repo: str  # a git URL, or a path already resolved against the shard file's folder
    repos: tuple[str, ...] = ()
    default: bool = False
    web_url: str | None = None
    line: int = 0  # where the shard is written in its file (for messages)
    masked: str = ""  # cases_repo with any credentials in it masked

    @property
    def shown(self) -> str:
        """The cases repo as messages and outputs show it (credentials masked)."""
        return self.masked or self.cases_repo


@dataclass(frozen=True, slots=True)
class ShardMap:
    """The shards of one shard file, in file order; ``origin`` names the file."""

    origin: str
    shards: tuple[Shard, ...]

    def pick(self, slug: str) -> Shard | None:
        """The shard of repository ``org/name``: the first whose glob matches (any case), else
        the default shard, else None."""
        for shard in self.shards:
            if any(glob_match(pattern, slug, ignore_case=True) for pattern in shard.repos):
                return shard
        return self.default

    @property
    def default(self) -> Shard | None:
        """The shard marked ``default: true``, if any."""
        return next((shard for shard in self.shards if shard.default), None)

    def named(self, name: str) -> Shard:
        """The shard called ``name`` (KeyError when there is none)."""
        for shard in self.shards:
            if shard.name == name:
                return shard
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A case found in several shards: which hold a copy and which copy counts."""

    key: str
    slug: str
    holders: tuple[str, ...]  # shard names, in file order
    owner: str


def owner(shards: ShardMap, slug: str, holders: Sequence[str]) -> str:
    """Which of the shards holding a case (by name, any order) has the copy that counts: the
    shard the map picks for its repository when that one holds it (new scans go there), else
    the first holder in file order."""
    picked = shards.pick(slug)
    if picked is not None and picked.name in holders:
        return picked.name
    order = [shard.name for shard in shards.shards]
    return min(holders, key=order.index)


def duplicates(shards: ShardMap, found: Sequence[tuple[str, str, str]]) -> tuple[Duplicate, ...]:
    """The cases held by more than one shard, from ``(shard name, case key, org/name)`` triples
    (one per copy), sorted by key."""
    holders: dict[str, list[str]] = {}
    slugs: dict[str, str] = {}
    for shard_name, key, slug in found:
        holders.setdefault(key, []).append(shard_name)
        slugs[key] = slug
    order = [shard.name for shard in shards.shards]
    found_twice = []
    for key, names in sorted(holders.items()):
        distinct = sorted(set(names), key=order.index)
        if len(distinct) > 1:
            slug = slugs[key]
            found_twice.append(Duplicate(key, slug, tuple(distinct), owner(shards, slug, distinct)))
    return tuple(found_twice)


def duplicate_warning(shards: ShardMap, dup: Duplicate) -> str:
    """One line on a case held by several shards: where, which copy counts, what to do."""
    where = ", ".join(f"{name} ({shards.named(name).shown})" for name in dup.holders)
    stale = [name for name in dup.holders if name != dup.owner]
    return (
        f"case {dup.key} is in {len(dup.holders)} shards: {where}; only the copy in shard "
        f"{dup.owner} counts; remove the copy in {', '.join(stale)} (a pattern of "
        f"{shards.origin} changed?)"
    )
