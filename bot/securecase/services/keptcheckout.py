"""What a queued record keeps of the scanned checkout, so its fold gives the same finding ids.

A SARIF result without a snippet is identified by its flagged line read from the checkout
(:mod:`securecase.scanners.sarif_identity`); a queued record is folded later, often on another
machine, when that checkout is gone or has moved on. So the record keeps what its ingest read
there, as ``record.json``'s ``checkout``::

    "checkout": {
      "flagged_lines": [{"path": "Dockerfile", "line": 18, "text": "ADD ./migrations /app"},
                        {"path": "app/settings.py", "line": 3, "sha256": "<64 hex>"}],
      "path_prefixes": [["<the runner's checkout folder>"], []]
    }

``flagged_lines`` holds the lines of results without a snippet only. A line is kept as text
when the store's secret masking leaves it unchanged and it is short; otherwise as the digest
identity computes of it (a masked line would give another id, and the id is a hash of that
digest already, so the digest tells no more than the id the cases repo stores).
``path_prefixes`` lists, per report, the checkout roots its ingest inferred from the files
present (absolute paths written on a runner cut to repo-relative ones); they are prefixes of
the report's own paths, which the record holds already.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from securecase.domain.findings import Report
from securecase.errors import InputError
from securecase.limits import (
    MAX_KEPT_CHARS,
    MAX_KEPT_LINE_CHARS,
    MAX_KEPT_LINES,
    MAX_KEPT_PREFIXES,
)
from securecase.scanners.sarif_identity import CheckoutReplay, line_digest
from securecase.storage.secrets import masked_text


def kept_checkout(reports: Sequence[Report]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The ``checkout`` field of a record of ``reports`` (one per report given, in order),
    and a warning when it could not keep everything (above its caps)."""
    lines: dict[tuple[str, int], str] = {}
    for report in reports:
        for path, number, text in report.checkout_lines:
            lines.setdefault((path, number), text)
    ordered = sorted(lines.items())
    texts = [text for _, text in ordered]
    # One call for all: masking scans each distinct line alone (as in a plain-text file), so
    # joined by newlines they come back one for one.
    masked = masked_text("\n".join(texts)).split("\n") if texts else []
    assert len(masked) == len(texts)
    kept: list[dict[str, Any]] = []
    chars = 0
    left_out = 0
    for ((path, number), text), shown in zip(ordered, masked, strict=True):
        entry: dict[str, Any] = {"path": path, "line": number}
        if shown == text and len(text) <= MAX_KEPT_LINE_CHARS:
            entry["text"] = text
        else:
            entry["sha256"] = line_digest(text)
        size = len(path) + len(entry.get("text") or entry["sha256"])
        if len(kept) >= MAX_KEPT_LINES or chars + size > MAX_KEPT_CHARS:
            left_out += 1
            continue
        chars += size
        kept.append(entry)
    prefixes: list[list[str]] = []
    room = MAX_KEPT_PREFIXES
    for report in reports:
        prefixes.append(list(report.checkout_prefixes[:room]))
        room -= len(prefixes[-1])
    inferred = sum(len(report.checkout_prefixes) for report in reports)
    warnings: tuple[str, ...] = ()
    if left_out or inferred > MAX_KEPT_PREFIXES:
        warnings = (
            f"the queued record keeps {len(kept):,} of the {len(ordered):,} flagged lines and "
            f"{min(inferred, MAX_KEPT_PREFIXES)} of the {inferred} path prefixes its reports "
            f"took from the checkout (at most {MAX_KEPT_LINES:,} lines, "
            f"{MAX_KEPT_CHARS:,} characters, {MAX_KEPT_PREFIXES} prefixes): findings on the "
            "others may get other ids when it lands",
        )
    return {"flagged_lines": kept, "path_prefixes": prefixes}, warnings


def checkout_replays(
    field: Mapping[str, Any], reports: int, origin: str
) -> tuple[CheckoutReplay, ...]:
    """One replay per report of a record's ``checkout`` field (checked against its schema
    before): its caps and its consistency, or an :class:`InputError` naming the JSON path."""
    where = f"{origin}: $.checkout"
    lines = field["flagged_lines"]
    prefixes = field["path_prefixes"]
    if len(prefixes) != reports:
        raise InputError(
            f"{where}.path_prefixes: {len(prefixes)} list(s) for {reports} report(s): "
            "expected one per report"
        )
    inferred = sum(len(listed) for listed in prefixes)
    if inferred > MAX_KEPT_PREFIXES:
        raise InputError(
            f"{where}.path_prefixes: {inferred} prefixes, above the {MAX_KEPT_PREFIXES} kept"
        )
    if len(lines) > MAX_KEPT_LINES:
        raise InputError(
            f"{where}.flagged_lines: {len(lines):,} lines, above the {MAX_KEPT_LINES:,} kept"
        )
    digests: dict[tuple[str, int], str] = {}
    chars = 0
    for index, entry in enumerate(lines):
        path, number = entry["path"], entry["line"]
        text = entry.get("text")
        digest = line_digest(text) if text is not None else entry["sha256"]
        if digest is None:
            raise InputError(
                f"{where}.flagged_lines[{index}].text: blank; a blank line is never kept"
            )
        if (path, number) in digests:
            raise InputError(f"{where}.flagged_lines[{index}]: {path} line {number} appears twice")
        digests[path, number] = digest
        chars += len(path) + len(text if text is not None else digest)
    if chars > MAX_KEPT_CHARS:
        raise InputError(
            f"{where}.flagged_lines: {chars:,} characters of paths and lines, above the "
            f"{MAX_KEPT_CHARS:,} kept"
        )
    return tuple(CheckoutReplay(digests, tuple(listed)) for listed in prefixes)
