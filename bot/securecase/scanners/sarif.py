"""SARIF 2.1.0 logs (CodeQL, Semgrep, Bandit, Trivy ``--format sarif``, ...) to findings.

One pass over every run and result: problems are collected with their JSON path and a log
with any problem is refused as a whole. The rules of a result come from the driver or an
extension (``ruleIndex``, ``rule.toolComponent``, ``ruleId``). Identity prefers the scanner's
own ``partialFingerprints``/``fingerprints``; without them it is rule + path + a hash of the
region's snippet (or the message) and an occurrence number, never the bare line number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from securecase.domain.findings import (
    Finding,
    Kind,
    Location,
    Report,
    ReportFormat,
    Severity,
)
from securecase.errors import ReportError
from securecase.scanners import sarif_fields as fields
from securecase.scanners import sarif_invocations as invocations
from securecase.scanners import sarif_meta as meta
from securecase.scanners import slots
from securecase.scanners.jsonload import (
    NESTING_SHOWN,
    Problems,
    check_source_name,
    nesting_path,
    problems_error,
    short_repr,
    type_name,
)
from securecase.scanners.sarif_fields import Where
from securecase.scanners.sarif_identity import (
    Candidate,
    CheckoutReplay,
    Dropped,
    SourceRoot,
    first_line,
    identified,
    identity_prints,
    legacy_identity,
    with_path,
)
from securecase.scanners.sarif_mask import mask_invocations, masked_copy
from securecase.scanners.sarif_run import WEB_SCHEMES, Run, tool_slug
from securecase.scanners.urls import without_query_values

SUPPORTED_VERSION = "2.1.0"
REPORT_HINT = "regenerate the log with the scanner's SARIF 2.1.0 output; it was not ingested"
#: For a SARIF log whose content breaks the format where it decides: regenerating as SARIF
#: would not help, the scanner (or what edited the log) has to.
INVALID_HINT = (
    "the log is SARIF, but these fields would change a finding's identity, severity or place; "
    "fix or update what wrote it (harmless off-spec fields are only warned about); "
    "it was not ingested"
)

_LEVELS: Mapping[str, Severity] = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "note": Severity.LOW,
    "none": Severity.INFO,
}
#: Result kinds that say the check passed or did not apply: no finding.
_NOT_PROBLEMS = frozenset({"pass", "notApplicable"})
_KINDS = frozenset({"pass", "notApplicable", "fail", "informational", "review", "open"})
_TRIVY_RULE_KINDS: Mapping[str, Kind] = {
    "OsPackageVulnerability": Kind.VULNERABILITY,
    "LanguageSpecificPackageVulnerability": Kind.VULNERABILITY,
    "Misconfiguration": Kind.MISCONFIGURATION,
    "Secret": Kind.SECRET,
}
_TRIVY_SKIPPED_RULES = frozenset({"License"})
#: Hard-coded password, cryptographic key, credentials: the result's text quotes a secret, so
#: whatever tool found it (Bandit B105, njsscan, CodeQL, Semgrep), it is a secret finding.
_CREDENTIAL_CWES = frozenset({"CWE-259", "CWE-321", "CWE-798"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


def check_document(document: object, origin: str) -> dict[str, Any]:
    """The document as a SARIF 2.1.0 log object, or a :class:`ReportError` saying why not."""
    if not isinstance(document, dict):
        raise ReportError(
            f"{origin}: $: not a SARIF log: expected an object, got {type_name(document)}",
            hint=REPORT_HINT,
        )
    version = document.get("version")
    if version != SUPPORTED_VERSION:
        got = "missing" if version is None else f"got {short_repr(version)}"
        raise ReportError(
            f"{origin}: $.version: unsupported SARIF version: {got} "
            f"(securecase reads SARIF {SUPPORTED_VERSION})",
            hint=REPORT_HINT,
        )
    runs = document.get("runs")
    if runs is None:
        raise ReportError(
            f"{origin}: $.runs: missing (a SARIF log lists the runs of its tools)",
            hint=REPORT_HINT,
        )
    if not isinstance(runs, list):
        raise ReportError(
            f"{origin}: $.runs: expected an array, got {type_name(runs)}", hint=REPORT_HINT
        )
    return document


# --------------------------------------------------------------------------- one result


def _result(
    run: Run, result: object, where: Where, source: str, problems: Problems, dropped: Dropped
) -> tuple[Candidate | None, bool]:
    """One result as a candidate finding (None when it is not a problem or is invalid), and
    whether its text must be masked in the stored copy."""
    if not isinstance(result, dict):
        problems.add(where, f"expected an object, got {type_name(result)}")
        return None, False
    before = len(problems.items)
    kind_word = fields.string(result, "kind", where, problems)
    if kind_word is not None and kind_word not in _KINDS:
        problems.add((*where, "kind"), f"unknown result kind {short_repr(kind_word)}")
    if kind_word in _NOT_PROBLEMS:
        return None, False
    rule_id, rule = run.rule(result, where, problems)
    rule_name = rule.get("name") if isinstance(rule.get("name"), str) else None
    kind = run.kind
    if run.tool.lower() == "trivy" and rule_name:
        if rule_name in _TRIVY_SKIPPED_RULES:
            return None, False
        kind = _TRIVY_RULE_KINDS.get(rule_name, kind)
    message = fields.message_text(result, rule, where, problems)
    level = fields.level(result, rule, kind_word, where, problems)
    suppressed = fields.suppressed(result, where, problems)
    place = _location(run, result, where, problems, dropped)
    prints = fields.fingerprints(result, where, problems, dropped)
    if len(problems.items) != before:
        return None, kind is Kind.SECRET
    path = place.path
    url = None
    if path is not None and urlsplit(path).scheme in WEB_SCHEMES:
        # a DAST result at a tested URL: its query values may be tokens and vary per scan
        url, path = without_query_values(path)[: fields.FIELD_LIMIT], None
    rule_props = meta.properties(rule)
    result_props = meta.properties(result)
    cwe = meta.merged_cwes(run.rule_cwes(rule, rule_props), meta.cwes(result_props))
    if kind is Kind.CODE and _CREDENTIAL_CWES.intersection(cwe):
        kind = Kind.SECRET
    rule_id = rule_id or _rule_named_in(message, run, secret=kind is Kind.SECRET)
    rule_id = rule_id or "unknown-rule"
    score = meta.security_severity(rule_props)
    if score is None:
        score = meta.security_severity(result_props)
    severity = meta.severity_of_score(score) if score is not None else _LEVELS[level]
    package = meta.trivy_package(message) if kind is Kind.VULNERABILITY else None
    if kind is Kind.VULNERABILITY and package is None:
        kind = Kind.CODE
    title = meta.title(rule, message, rule_id, secret=kind is Kind.SECRET)
    tool = run.tool.lower()
    start, end = place.start, place.end
    finding = Finding(
        id="",
        source=source,
        kind=kind,
        advisory=rule_id[: fields.FIELD_LIMIT],
        severity=severity,
        title=title,
        package=package,
        location=Location(path=path, start_line=start, end_line=end, url=url)
        if place.located
        else None,
        cvss=score,
        suppressed=suppressed,
        confidence=meta.confidence(rule_props, result_props),
        cwe=cwe,
    )
    spot = path or url or ""
    candidate = Candidate(
        finding=finding,
        tool=tool,
        rule_id=rule_id,
        place=spot,
        prints=identity_prints(prints),
        logical=place.logical,
        line_text=first_line(place.snippet),
        message=message,
        line=start or 0,
        end_line=end or start or 0,
        column=place.column or 0,
        legacy=legacy_identity(tool, rule_id, spot, prints, place.snippet, message),
        located=package is None,
        package_identity=("vuln", tool, rule_id, package.name) if package is not None else None,
    )
    return candidate, kind is Kind.SECRET


@dataclass(frozen=True, slots=True)
class _Place:
    """What a result's first location says."""

    located: bool = False
    path: str | None = None
    start: int | None = None
    end: int | None = None
    column: int | None = None
    snippet: str | None = None
    logical: str | None = None


def _location(
    run: Run, result: dict[str, Any], where: Where, problems: Problems, dropped: Dropped
) -> _Place:
    """The result's first location: path, lines, start column, snippet, logical name."""
    locations = fields.array(result, "locations", where, problems)
    if not locations:
        return _Place()
    first = locations[0]
    l_where: Where = (*where, "locations", 0)
    if not isinstance(first, dict):
        problems.add(l_where, f"expected an object, got {type_name(first)}")
        return _Place()
    logical = _logical_name(first)
    physical = fields.obj(first, "physicalLocation", l_where, problems)
    if physical is None:
        return _Place(logical=logical)
    p_where: Where = (*l_where, "physicalLocation")
    path = run.path(physical, p_where, problems)
    region = fields.obj(physical, "region", p_where, problems)
    start = end = column = None
    snippet = None
    if region is not None:
        r_where: Where = (*p_where, "region")
        start = fields.region_line(region, "startLine", r_where, problems, dropped)
        end = fields.region_line(region, "endLine", r_where, problems, dropped)
        if start is None:
            end = None  # an end without its start places nothing
        raw_column = region.get("startColumn")
        column = raw_column if type(raw_column) is int and raw_column > 0 else None
        snippet_obj = fields.obj(region, "snippet", r_where, problems)
        if snippet_obj is not None:
            snippet = fields.string(snippet_obj, "text", (*r_where, "snippet"), problems)
    located = path is not None or start is not None
    return _Place(located, path, start, end, column, snippet, logical)


def _logical_name(location: dict[str, Any]) -> str | None:
    """The first logical location's fully qualified name, else its name (a function, a
    class, a cloud resource such as ``aws_s3_bucket.data``)."""
    logical = location.get("logicalLocations")
    first = logical[0] if isinstance(logical, list) and logical else None
    if not isinstance(first, dict):
        return None
    for key in ("fullyQualifiedName", "name"):
        value = first.get(key)
        if isinstance(value, str) and 0 < len(value) <= fields.FIELD_LIMIT:
            return value
    return None


def _rule_named_in(message: str, run: Run, *, secret: bool) -> str | None:
    """For results without a rule id (gitleaks 7): the longest rule id the message starts
    with ("AWS Access Key secret detected" → "AWS Access Key"), else the message's start —
    but never for a secret, whose message may quote the secret."""
    for length in run.rule_id_lengths:
        if length <= len(message) and message[:length] in run.rules_by_id:
            return message[:length]
    return None if secret else fields.clip(message.split("\n", 1)[0].strip(), 200)


# --------------------------------------------------------------------------- the parser


def parse_document(
    origin: str,
    data: bytes,
    document: object,
    source: str | None = None,
    *,
    source_root: str | None = None,
    fallback_root: str | None = None,
    read_checkout: bool = True,
    checkout_replay: CheckoutReplay | None = None,
) -> Report:
    """Normalize a parsed SARIF log; ``data`` are the bytes it was parsed from.

    ``source_root`` is the scanned checkout (``--source-root``, ``$GITHUB_WORKSPACE``):
    its root is cut from absolute paths and, for results without a snippet, the flagged line
    is read from it. ``fallback_root`` (the current directory) serves the same way only when
    every file the log names exists under it. ``read_checkout`` False: the roots only cut
    paths; no file of this machine is read. ``checkout_replay``: nor is any read, and the
    flagged lines and path prefixes are those an earlier ingest of this log read from its
    checkout (a queued record), so its findings get the ids that ingest gave them."""
    doc = check_document(document, origin)
    problems = Problems()
    dropped = Dropped()
    runs: list[Run] = []
    for index, run in enumerate(doc["runs"]):
        if not isinstance(run, dict):
            problems.add(("runs", index), f"expected an object, got {type_name(run)}")
            continue
        runs.append(Run(run, index, problems))
    if not doc["runs"]:
        raise ReportError(
            f"{origin}: $.runs: empty: the log holds no run of any tool, so no results to read",
            hint="a scanner that ran writes one run (with its results, or an empty results "
            "array); check the scan step's log",
        )
    incomplete = invocations.incomplete_reasons(doc["runs"], problems)
    if problems.items:
        raise problems_error(origin, "invalid SARIF log", problems.items, hint=INVALID_HINT)

    tools = list(dict.fromkeys(r.tool for r in runs))
    legacy = "-".join(tool_slug(t) for t in tools)[:63].strip("-._") or "sarif"
    categories = invocations.categories(doc["runs"])
    image = _run_property(doc["runs"][0], "imageName")
    if source is None:
        derived = slots.slot_name(legacy, *categories, slots.image_name(image) if image else None)
        source = check_source_name(derived, origin)
    else:
        legacy = source

    candidates: list[Candidate] = []
    masked: set[tuple[int, int]] = set()
    for run in runs:
        run_doc = doc["runs"][run.index]
        results = run_doc.get("results")
        if results is None:
            continue  # the tool did not run to completion: no results to read
        if not isinstance(results, list):
            problems.add(
                ("runs", run.index, "results"), f"expected an array, got {type_name(results)}"
            )
            continue
        for r_index, result in enumerate(results):
            where: Where = ("runs", run.index, "results", r_index)
            candidate, secret = _result(run, result, where, source, problems, dropped)
            if secret:
                masked.add((run.index, r_index))
            if candidate is not None:
                candidates.append(candidate)
    if problems.items:
        raise problems_error(origin, "invalid SARIF log", problems.items, hint=INVALID_HINT)

    checkout = SourceRoot(source_root, fallback_root, on_disk=read_checkout, replay=checkout_replay)
    root, outside = _repo_relative(candidates, checkout)
    findings, former_ids = identified(source, candidates, root)
    warnings = dropped.warnings(origin) + _outside_warning(origin, outside)
    build_secrets = mask_invocations(doc)
    first = runs[0] if runs else None
    run_docs = doc["runs"]
    return Report(
        format=ReportFormat.SARIF,
        source=source,
        tool=", ".join(tools) if tools else "sarif",
        tool_version=_tool_version(run_docs),
        scanned_at=_scanned_at(run_docs),
        artifact_name=image or ("/".join(categories) if categories else None),
        artifact_type=None,
        image_digest=_image_digest(run_docs[0]) if first else None,
        findings=findings,
        raw=_masked_raw(origin, data, doc, masked) if masked or build_secrets else data,
        raw_suffix=".sarif",
        path=origin,
        incomplete=incomplete,
        legacy_source=legacy if legacy != source else None,
        warnings=warnings,
        former_ids=former_ids,
        checkout_lines=tuple(sorted((p, n, t) for (p, n), t in checkout.read_lines.items())),
        checkout_prefixes=checkout.inferred,
    )


def _repo_relative(
    candidates: list[Candidate], root: SourceRoot
) -> tuple[SourceRoot | None, list[str]]:
    """Make every candidate's path repo-relative (in place) under ``root``; the root to read
    flagged lines from, if any, and the absolute paths left outside the checkout."""
    outside: list[str] = []
    for candidate in candidates:
        location = candidate.finding.location
        if location is None or location.path is None:
            continue
        relative = root.relative(location.path)
        if relative is None:
            outside.append(location.path)
            continue
        if relative != location.path:
            candidate.place = relative
            candidate.finding = with_path(candidate.finding, relative or None)
    unread = {
        c.place for c in candidates if c.located and c.line_text is None and c.place and c.line
    }
    return (root if root.usable_for(p for p in unread if not p.startswith("/")) else None), outside


def _outside_warning(origin: str, outside: list[str]) -> tuple[str, ...]:
    """One warning for absolute paths outside the checkout: kept as they are, so the same
    code scanned from another directory will not match them."""
    if not outside:
        return ()
    distinct = sorted(set(outside))
    more = f" (and {len(distinct) - 1} more)" if len(distinct) > 1 else ""
    return (
        f"{origin}: {distinct[0]}{more}: absolute path outside the checkout root, kept "
        "absolute; give --source-root (the checkout the scanner ran in) to make it "
        "repo-relative",
    )


def _masked_raw(
    origin: str, data: bytes, doc: dict[str, Any], masked: set[tuple[int, int]]
) -> bytes:
    """The log to store, its secret results masked; a log nested too deeply for masking and
    re-serializing (hundreds of levels, which no scanner writes) is refused with the path."""
    try:
        return masked_copy(doc, masked)
    except RecursionError:
        where = nesting_path(data.decode("utf-8", "replace"), NESTING_SHOWN)
        raise ReportError(
            f"{origin}: JSON nested too deeply to be a scanner report"
            + (f" at {where}" if where else ""),
            hint=REPORT_HINT,
        ) from None


def _tool_version(runs: list[Any]) -> str | None:
    for run in runs:
        driver = run.get("tool", {}).get("driver", {}) if isinstance(run, dict) else {}
        for key in ("semanticVersion", "version"):
            value = driver.get(key) if isinstance(driver, dict) else None
            if isinstance(value, str) and 0 < len(value) <= 200:
                return value
    return None


def _scanned_at(runs: list[Any]) -> str | None:
    for run in runs:
        invocations = run.get("invocations") if isinstance(run, dict) else None
        if not isinstance(invocations, list):
            continue
        for invocation in invocations:
            if not isinstance(invocation, dict):
                continue
            for key in ("endTimeUtc", "startTimeUtc"):
                value = invocation.get(key)
                moment = fields.utc(value) if isinstance(value, str) and len(value) <= 64 else None
                if moment is not None:
                    return moment
    return None


def _run_property(run: object, key: str) -> str | None:
    properties = run.get("properties") if isinstance(run, dict) else None
    value = properties.get(key) if isinstance(properties, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 2000 else None


def _image_digest(run: object) -> str | None:
    value = _run_property(run, "imageID")
    return value if value and _DIGEST.match(value) else None
