"""Which SARIF results are the same finding from one scan to the next.

A located result is identified by its tool, rule, repo-relative path and one anchor, the
first of:

1. the tool's own fingerprints (``fingerprints``, and ``partialFingerprints`` except
   ``primaryLocationStartColumnFingerprint``, which moves when a line is re-indented);
2. a logical location (``logicalLocations[0]``: its fully qualified name, else its name);
3. the flagged line's content, whitespace collapsed: the first line of the region's snippet,
   or, when the result has no snippet, that line read from the scanned checkout;
4. the message, when none of these is at hand.

Nothing else in the file joins the identity, so an edit elsewhere in a resource block or a
line shift leaves it alone. Results with one identity on different lines are told apart by
their order in the file (as GitHub's ``primaryLocationLineHash`` appends ``:N``), several on
one line by their column.

Each finding also carries the id the previous identity scheme (whole-snippet hash, path as
the scanner wrote it) gave it, so a case written before this scheme is mapped over on its
next scan instead of seeing every finding fixed and new again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from securecase.domain.findings import Finding, Location, fingerprint

#: Partial fingerprints that change without the problem changing.
IGNORED_PARTIAL_FINGERPRINTS = frozenset({"primaryLocationStartColumnFingerprint"})
#: Source files larger than this are not read for their flagged line.
LINE_SOURCE_LIMIT = 16 * 1024 * 1024
#: Examples shown per kind of dropped field; the rest are counted.
DROPPED_SHOWN = 3


def line_digest(text: str | None) -> str | None:
    """SHA-256 of a line with whitespace runs collapsed (None for a blank or missing line)."""
    if text is None:
        return None
    collapsed = " ".join(text.split())
    if not collapsed:
        return None
    return hashlib.sha256(collapsed.encode("utf-8", "replace")).hexdigest()


def first_line(snippet: str | None) -> str | None:
    """The first line of a (possibly multi-line) snippet: the flagged line."""
    if snippet is None:
        return None
    return snippet.split("\n", 1)[0].rstrip("\r")


class Dropped:
    """Harmless off-spec fields left out of a report, grouped by what was wrong with them."""

    def __init__(self) -> None:
        self._groups: dict[str, list[str]] = {}

    def add(self, path: str, reason: str) -> None:
        """Record that the field at JSON ``path`` was dropped for ``reason``."""
        self._groups.setdefault(reason, []).append(path)

    def warnings(self, origin: str) -> tuple[str, ...]:
        """One warning per reason, naming its first JSON paths and counting the others."""
        out = []
        for reason, paths in self._groups.items():
            shown = ", ".join(paths[:DROPPED_SHOWN])
            more = len(paths) - DROPPED_SHOWN
            extra = f" (and {more} more like it)" if more > 0 else ""
            out.append(f"{origin}: {shown}: {reason}; dropped, the result kept{extra}")
        return tuple(out)


@dataclass(frozen=True)
class CheckoutReplay:
    """What an ingest read from the scanned checkout, for replaying its record where the
    checkout is gone (a queued record folded later, elsewhere): the digest of each flagged
    line it read (:func:`line_digest`, by repo-relative path and line), and the path prefixes
    it inferred from the files there, in the order it inferred them."""

    digests: Mapping[tuple[str, int], str]
    prefixes: tuple[str, ...] = ()


class SourceRoot:
    """The scanned checkout: strips its root from absolute paths and reads flagged lines.

    ``given`` is ``--source-root`` or ``$GITHUB_WORKSPACE`` (trusted: paths under it are the
    repository's); ``fallback`` is the current directory, used only when every file the
    report needs read exists under it (then it is the scanned repository).

    ``read_lines`` and ``inferred`` keep what identity took from the checkout, so a record
    queued for later carries it (see :class:`CheckoutReplay`).
    """

    def __init__(
        self,
        given: str | None,
        fallback: str | None = None,
        *,
        on_disk: bool = True,
        replay: CheckoutReplay | None = None,
    ) -> None:
        """``on_disk`` False: the roots only cut paths, and no file is read or probed (a
        record replayed on another machine, whose roots name folders of that other machine).
        ``replay``: no file is read either; flagged lines and inferred prefixes are the ones
        the record's ingest read (its checkout, not this machine's disk).
        """
        self.prefixes: list[str] = []
        self.directory: Path | None = None
        self.trusted = given is not None
        self.replay = replay
        chosen = given if given is not None else fallback
        if chosen:
            absolute = os.path.abspath(chosen)
            self.prefixes.append(absolute.rstrip("/") or "/")
            if on_disk and replay is None and os.path.isdir(absolute):
                self.directory = Path(absolute)
        self._given = len(self.prefixes)
        if replay is not None:
            self.prefixes.extend(replay.prefixes)
        self._lines: dict[str, list[str] | None] = {}
        self.read_lines: dict[tuple[str, int], str] = {}

    @property
    def inferred(self) -> tuple[str, ...]:
        """The prefixes inferred from the checkout's files (not given), in inference order."""
        return tuple(self.prefixes[self._given :])

    def relative(self, path: str) -> str | None:
        """``path`` relative to the checkout, or None when it is absolute and outside it.

        An absolute path under the root as given is cut there; otherwise, when the checkout
        is on disk, the scanning machine's root is inferred as the longest prefix whose
        remainder names a file in the checkout (``<runner checkout>/src/x.py`` → ``src/x.py``
        when ``src/x.py`` exists), and reused for the report's other paths.
        """
        if not path.startswith("/"):
            return path
        for prefix in self.prefixes:
            if prefix == "/" or path.startswith(prefix + "/"):
                return path[len(prefix) :].lstrip("/")
        if self.directory is not None:
            parts = path.strip("/").split("/")
            for cut in range(1, len(parts)):
                remainder = "/".join(parts[cut:])
                if self._inside(remainder) and (self.directory / remainder).is_file():
                    self.prefixes.append("/" + "/".join(parts[:cut]))
                    return remainder
        return None

    def usable_for(self, paths: Iterable[str]) -> bool:
        """True when lines may be read from this root for a report naming ``paths``."""
        if self.replay is not None:
            # the ingest decided: the lines it did not read are absent from the replay
            return True
        if self.directory is None:
            return False
        if self.trusted:
            return True
        wanted = set(paths)
        return bool(wanted) and all(
            self._inside(p) and (self.directory / p).is_file() for p in wanted
        )

    def flagged_line(self, path: str, line: int) -> str | None:
        """Line ``line`` (1-based) of the repo-relative file ``path``, or None when unreadable."""
        if path not in self._lines:
            self._lines[path] = self._read(path)
        lines = self._lines[path]
        if lines is None or not 1 <= line <= len(lines):
            return None
        return lines[line - 1]

    def flagged_digest(self, path: str, line: int) -> str | None:
        """The identity digest of the flagged line ``line`` of ``path`` (None when it is
        unreadable or blank); the line read is kept in :attr:`read_lines`."""
        if self.replay is not None:
            return self.replay.digests.get((path, line))
        text = self.flagged_line(path, line)
        digest = line_digest(text)
        if digest is not None and text is not None:
            self.read_lines[path, line] = text
        return digest

    def _inside(self, relative: str) -> bool:
        if self.directory is None or relative.startswith("/"):
            return False
        target = (self.directory / relative).resolve()
        return target.is_relative_to(self.directory.resolve())

    def _read(self, path: str) -> list[str] | None:
        if self.directory is None or not self._inside(path):
            return None
        file = self.directory / path
        try:
            if not file.is_file() or file.stat().st_size > LINE_SOURCE_LIMIT:
                return None
            data = file.read_bytes()
        except OSError:
            return None
        return [line.rstrip("\r") for line in data.decode("utf-8", "replace").split("\n")]


@dataclass(slots=True)
class Candidate:
    """One result before its id is final.

    ``anchor`` is None for package findings (identity without a place); ``line_text`` is the
    snippet's flagged line, if any. ``legacy`` is the identity the previous scheme used.
    """

    finding: Finding
    tool: str
    rule_id: str
    place: str
    prints: tuple[str, ...]
    logical: str | None
    line_text: str | None
    message: str
    line: int
    end_line: int
    column: int
    legacy: tuple[str, ...]
    located: bool
    package_identity: tuple[str, ...] | None = None


def anchor_of(candidate: Candidate, root: SourceRoot | None) -> tuple[str, ...]:
    """The identity of a located candidate (see the module docstring for the order)."""
    base = (candidate.tool, candidate.rule_id, candidate.place)
    if candidate.prints:
        return ("fp", *base, *candidate.prints)
    if candidate.logical:
        return ("logical", *base, candidate.logical)
    digest = line_digest(candidate.line_text)
    if candidate.line_text is None and root is not None and candidate.line > 0 and candidate.place:
        digest = root.flagged_digest(candidate.place, candidate.line)
    if digest is not None:
        return ("line", *base, digest)
    message = hashlib.sha256(" ".join(candidate.message.split()).encode("utf-8", "replace"))
    return ("message", *base, message.hexdigest())


def identified(
    source: str, candidates: Sequence[Candidate], root: SourceRoot | None
) -> tuple[tuple[Finding, ...], tuple[tuple[str, str], ...]]:
    """Final findings, worst first, and (new id, previous scheme's id) where they differ."""
    groups: dict[tuple[str, ...], list[Candidate]] = {}
    for candidate in candidates:
        if candidate.package_identity is not None:
            key = candidate.package_identity
        else:
            key = anchor_of(candidate, root)
        groups.setdefault(key, []).append(candidate)

    chosen: list[tuple[Finding, Candidate]] = []
    for identity, group in groups.items():
        if not group[0].located:
            best = min(group, key=lambda c: _preference(c.finding))
            chosen.append((replace(best.finding, id=fingerprint(source, *identity)), best))
            continue
        by_line: dict[int, dict[int, Candidate]] = {}
        for candidate in group:
            on_line = by_line.setdefault(candidate.line, {})
            held = on_line.get(candidate.column)
            if held is None or _preference(candidate.finding) < _preference(held.finding):
                on_line[candidate.column] = candidate
        for occurrence, line in enumerate(sorted(by_line)):
            parts = identity if occurrence == 0 else (*identity, str(occurrence))
            columns = by_line[line]
            for column in sorted(columns):
                # the column joins only to tell apart results sharing rule, file and line
                own = parts if len(columns) == 1 else (*parts, f"column={column}")
                candidate = columns[column]
                chosen.append((replace(candidate.finding, id=fingerprint(source, *own)), candidate))

    former = _legacy_ids(source, chosen)
    findings = sorted((f for f, _ in chosen), key=lambda f: (-f.severity.rank, f.id))
    return tuple(findings), former


def _legacy_ids(
    source: str, chosen: Sequence[tuple[Finding, Candidate]]
) -> tuple[tuple[str, str], ...]:
    """The previous scheme's id of each final finding: equal identities ordered by
    (start line, end line), one finding per place, the first keeping the bare identity."""
    groups: dict[tuple[str, ...], dict[tuple[int, int], list[Finding]]] = {}
    for finding, candidate in chosen:
        if candidate.package_identity is not None or not candidate.located:
            continue
        places = groups.setdefault(candidate.legacy, {})
        places.setdefault((candidate.line, candidate.end_line), []).append(finding)
    former: list[tuple[str, str]] = []
    for identity, places in groups.items():
        for occurrence, place in enumerate(sorted(places)):
            parts = identity if occurrence == 0 else (*identity, str(occurrence))
            old_id = fingerprint(source, *parts)
            former.extend((f.id, old_id) for f in places[place] if f.id != old_id)
    return tuple(sorted(former))


def legacy_identity(
    tool: str,
    rule_id: str,
    raw_place: str,
    prints: Sequence[str],
    snippet: str | None,
    message: str,
) -> tuple[str, ...]:
    """The identity the previous scheme gave a located result: all fingerprints, else a hash
    of the whole snippet (or the message), with the path as the scanner wrote it."""
    if prints:
        return ("fp", tool, rule_id, raw_place, *prints)
    anchor = snippet if snippet is not None else message
    digest = hashlib.sha256(" ".join(anchor.split()).encode("utf-8", "replace"))
    return ("loc", tool, rule_id, raw_place, digest.hexdigest())


def with_path(finding: Finding, path: str | None) -> Finding:
    """``finding`` located at ``path`` (its other location fields kept)."""
    location = finding.location or Location()
    return replace(finding, location=replace(location, path=path))


def identity_prints(prints: Sequence[str]) -> tuple[str, ...]:
    """The fingerprints (``table:name=value``) that join the identity."""
    ignored = tuple(f"partialFingerprints:{name}=" for name in IGNORED_PARTIAL_FINGERPRINTS)
    return tuple(p for p in prints if not p.startswith(ignored))


def _preference(finding: Finding) -> tuple[Any, ...]:
    location = finding.location or Location()
    return (
        -finding.severity.rank,
        finding.suppressed,
        location.path or "",
        location.start_line or 0,
        location.end_line or 0,
        finding.title,
    )
