"""Scanner reports: detect the format from the content and parse it into a :class:`Report`.

Formats: Trivy JSON, SARIF 2.1.0 (CodeQL, Semgrep, Bandit, Trivy SARIF, ...), and OWASP ZAP's
traditional JSON and XML reports.

``parse(path)`` is the one entry point the rest of securecase uses. Detection looks at the
content only, never at the file name; a report of a format this version cannot read is refused
with a message saying what it looks like.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securecase.domain.findings import Report, ReportFormat
from securecase.errors import ReportError, UsageError
from securecase.scanners import shapes, trivy
from securecase.scanners.jsonload import (
    DEFAULT_MAX_REPORT_BYTES,
    check_source_name,
    decode_json,
    first_significant_byte,
    read_report_bytes,
    short_repr,
    type_name,
)

if TYPE_CHECKING:
    from securecase.scanners.sarif_identity import CheckoutReplay

__all__ = [
    "PARSERS",
    "Parser",
    "describe",
    "detect",
    "parse",
    "parse_bytes",
    "parse_with_document",
]

#: A parser: (origin for messages, raw bytes, parsed document, source name or None) -> Report.
Parser = Callable[[str, bytes, Any, str | None], Report]


def _sarif(origin: str, data: bytes, document: Any, source: str | None) -> Report:
    from securecase.scanners import sarif  # loaded only for SARIF logs

    return sarif.parse_document(origin, data, document, source)


def _zap(origin: str, data: bytes, document: Any, source: str | None) -> Report:
    from securecase.scanners import zap  # loaded only for ZAP reports

    return zap.parse_document(origin, data, document, source)


PARSERS: dict[ReportFormat, Parser] = {
    ReportFormat.TRIVY: trivy.parse_document,
    ReportFormat.SARIF: _sarif,
    ReportFormat.ZAP: _zap,
}

SUPPORTED_HINT = (
    "securecase reads Trivy JSON (trivy ... --format json), SARIF 2.1.0 (CodeQL, Semgrep, "
    "Bandit, trivy --format sarif, ...) and OWASP ZAP traditional JSON or XML reports"
)
_SHOWN_KEYS = 8


def parse(
    path: str | Path,
    *,
    fmt: ReportFormat | None = None,
    source: str | None = None,
    source_root: str | None = None,
    fallback_root: str | None = None,
    max_bytes: int = DEFAULT_MAX_REPORT_BYTES,
) -> Report:
    """Read and parse one report file; ``fmt`` None detects the format from the content.

    ``source`` names the report's slot in the case (default derived from the scanned
    artifact, see :mod:`securecase.scanners.slots`). ``source_root`` and ``fallback_root``
    locate the scanned checkout for SARIF logs (see
    :func:`securecase.scanners.sarif.parse_document`). Raises
    :class:`~securecase.errors.ReportError` for any input problem (a file above ``max_bytes``
    included) and :class:`~securecase.errors.UsageError` for an invalid source name.
    """
    origin = str(path)
    if source is not None:
        check_source_name(source, origin)
    return parse_bytes(
        read_report_bytes(path, max_bytes=max_bytes),
        origin=origin,
        fmt=fmt,
        source=source,
        source_root=source_root,
        fallback_root=fallback_root,
    )


def parse_bytes(
    data: bytes,
    *,
    origin: str,
    fmt: ReportFormat | None = None,
    source: str | None = None,
    source_root: str | None = None,
    fallback_root: str | None = None,
    read_checkout: bool = True,
    checkout_replay: CheckoutReplay | None = None,
) -> Report:
    """Parse a report already in memory; ``origin`` (usually the path) starts every message.

    ``read_checkout`` False: the roots only cut paths, and no file of this machine is read
    (a record from another machine). ``checkout_replay``: what an earlier ingest of the
    report read from its checkout, used instead of any file (a queued record, folded)."""
    report, _ = parse_with_document(
        data,
        origin=origin,
        fmt=fmt,
        source=source,
        source_root=source_root,
        fallback_root=fallback_root,
        read_checkout=read_checkout,
        checkout_replay=checkout_replay,
    )
    return report


def parse_with_document(
    data: bytes,
    *,
    origin: str,
    fmt: ReportFormat | None = None,
    source: str | None = None,
    source_root: str | None = None,
    fallback_root: str | None = None,
    read_checkout: bool = True,
    checkout_replay: CheckoutReplay | None = None,
) -> tuple[Report, object | None]:
    """:func:`parse_bytes`, and the JSON document ``data`` decodes to: masking the stored
    report reads it instead of decoding the same bytes again. None for XML, and when the
    parser stores other bytes than ``data`` (it masked secrets in its copy of the document)."""
    if source is not None:
        check_source_name(source, origin)
    chosen = None if fmt is None else _format(fmt)
    if first_significant_byte(data) == ord("<"):
        if _looks_like_html(data):
            raise ReportError(
                f"{origin}: looks like an HTML page, not a scanner report",
                hint="often an error page saved in place of the report (a proxy, an expired "
                "artifact link) or ZAP's HTML report (-r); " + SUPPORTED_HINT,
            )
        if chosen not in (None, ReportFormat.ZAP):
            raise ReportError(
                f"{origin}: looks like XML, not a {chosen.value} report (--format {chosen.value})",
                hint=SUPPORTED_HINT,
            )
        from securecase.scanners import zap

        return zap.parse_xml(origin, data, source), None
    document = decode_json(data, origin)
    if chosen is None:
        chosen = detect(document, origin=origin)
    if chosen is ReportFormat.SARIF and (
        source_root or fallback_root or checkout_replay is not None
    ):
        from securecase.scanners import sarif

        report = sarif.parse_document(
            origin,
            data,
            document,
            source,
            source_root=source_root,
            fallback_root=fallback_root,
            read_checkout=read_checkout,
            checkout_replay=checkout_replay,
        )
    else:
        report = PARSERS[chosen](origin, data, document, source)
    return report, document if report.raw is data else None


_HTML_START = re.compile(rb"\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]", re.I | re.S)


def _looks_like_html(data: bytes) -> bool:
    """True when the bytes start (after a BOM, blanks and comments) like an HTML page: its
    doctype would be refused as a DTD and its void tags as broken XML, naming neither."""
    start = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    return _HTML_START.match(start[:4096]) is not None


def _format(fmt: ReportFormat | str) -> ReportFormat:
    try:
        return ReportFormat(fmt)
    except ValueError:
        names = ", ".join(f.value for f in ReportFormat)
        raise UsageError(
            f"unknown report format {fmt!r}", hint=f"use auto or one of: {names}"
        ) from None


def detect(document: object, *, origin: str = "report") -> ReportFormat:
    """The format of a parsed JSON document, or a :class:`ReportError` saying what it is."""
    if shapes.looks_like_sarif(document):
        from securecase.scanners import sarif

        sarif.check_document(document, origin)  # version and runs, with their JSON paths
        return ReportFormat.SARIF
    if shapes.looks_like_zap_json(document):
        return ReportFormat.ZAP
    if trivy.is_legacy(document):
        trivy.check_document(document, origin)  # raises the legacy-format error
    if trivy.looks_like_trivy(document):
        trivy.check_document(document, origin)  # schema version, cluster reports
        return ReportFormat.TRIVY
    sarif_producer = shapes.sarif_capable_json(document)
    if sarif_producer is not None:
        tool, command = sarif_producer
        raise ReportError(
            f"{origin}: this is {tool}'s JSON output, which securecase does not read",
            hint=f"run it with SARIF output ({command}) and ingest that",
        )
    if isinstance(document, dict):
        if "ClusterName" in document:
            trivy.check_document(document, origin)  # raises the cluster-report error
        other = _other_format(document)
        if other:
            raise ReportError(
                f"{origin}: looks like {other}, which securecase does not read",
                hint=SUPPORTED_HINT,
            )
    raise ReportError(
        f"{origin}: not a recognised scanner report: {describe(document)}",
        hint=SUPPORTED_HINT,
    )


def _other_format(document: dict[str, Any]) -> str | None:
    """What a well-known report or SBOM that securecase does not read looks like."""
    if "bomFormat" in document:
        return "a CycloneDX SBOM"
    if "spdxVersion" in document:
        return "an SPDX SBOM"
    if "vulnerabilities" in document and "scan" in document:
        return "a GitLab security report"
    if "vulnerabilities" in document and "packageManager" in document:
        return "a Snyk JSON report (snyk --sarif writes SARIF, which securecase reads)"
    return None


def describe(document: object) -> str:
    """A short description of a JSON document's shape, for "not recognised" messages."""
    if isinstance(document, dict):
        if not document:
            return "an empty JSON object"
        keys = [short_repr(key, 40).strip("'\"") for key in list(document)[:_SHOWN_KEYS]]
        more = len(document) - len(keys)
        shown = ", ".join(keys) + (f", … ({more} more)" if more else "")
        return f"JSON object with keys {shown}"
    if isinstance(document, list):
        return f"a JSON array of {len(document)} items"
    return f"a JSON {type_name(document)}"
