"""Trivy JSON reports (``trivy ... --format json``, SchemaVersion 2) to normalized findings.

One pass over the parsed document: every record is checked, every problem is collected with its
JSON path, and a report with any problem is refused as a whole. Findings with the same identity
collapse into one, chosen independently of report order. Secret text never leaves this module:
secrets are identified by a hash of their match and masked in the stored raw copy.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from securecase.domain.findings import (
    Finding,
    Kind,
    Location,
    Package,
    Report,
    ReportFormat,
    Severity,
    fingerprint,
)
from securecase.errors import ReportError
from securecase.scanners import slots
from securecase.scanners.jsonload import (
    Problems,
    array_member,
    check_source_name,
    problems_error,
    short_repr,
    type_name,
)
from securecase.scanners.trivy_mask import masked_copy

#: Titles are cut to this many characters (the last one an ellipsis).
TITLE_LIMIT = 500
#: Identity and stored fields (ids, package names, paths, versions) longer than this are refused.
FIELD_LIMIT = 2000

SUPPORTED_SCHEMA_VERSION = 2
LEGACY_HINT = "run trivy >= 0.20 with --format json"
REPORT_HINT = "regenerate the report with trivy ... --format json; it was not ingested"

#: Result classes that carry no security findings.
SKIPPED_CLASSES = frozenset({"license", "license-file", "custom"})

DEFAULT_SOURCES: Mapping[str, str] = {
    "container_image": "trivy-image",
    "filesystem": "trivy-fs",
    "repository": "trivy-repo",
    "cyclonedx": "trivy-sbom",
    "spdx": "trivy-sbom",
    "vm": "trivy-vm",
}

_SEVERITIES: Mapping[str, Severity] = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
    "UNKNOWN": Severity.UNKNOWN,
}
_SEVERITY_CHOICES = ", ".join(_SEVERITIES)
_MISCONF_COUNTED = frozenset({"FAIL"})
_MISCONF_SKIPPED = frozenset({"PASS", "EXCEPTION"})
#: Secret record fields that never hold secret text; everything else is masked in the raw copy.
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]{16,256}\Z")

_Where = tuple[str | int, ...]
#: One record's normalized fields, the same layout for every kind:
#: (kind, rule, severity, title, package name, installed version, fixed version, purl,
#:  path, start line, end line, cvss)
_Fields = tuple[
    Kind,
    str,
    Severity,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    int | None,
    int | None,
    float | None,
]


# --------------------------------------------------------------------------- document shape


def looks_like_trivy(document: object) -> bool:
    """True for a JSON object that claims to be a Trivy report (any schema version)."""
    return (
        isinstance(document, dict)
        and "SchemaVersion" in document
        and ("Results" in document or "ArtifactName" in document)
    )


def is_legacy(document: object) -> bool:
    """True for the pre-SchemaVersion-2 shape: ``null`` or a bare list of results."""
    if document is None:
        return True
    if not isinstance(document, list):
        return False
    return all(isinstance(item, dict) and "Target" in item for item in document[:20])


def check_document(document: object, origin: str) -> dict[str, Any]:
    """The document as a Trivy v2 report object, or a :class:`ReportError` saying why not."""
    if is_legacy(document):
        raise ReportError(
            f"{origin}: Trivy report in the legacy format (before SchemaVersion 2); "
            "this version of securecase reads SchemaVersion 2 only",
            hint=LEGACY_HINT,
        )
    if not isinstance(document, dict):
        raise ReportError(
            f"{origin}: not a Trivy JSON report: the document is a JSON {type_name(document)}, "
            "expected an object",
            hint=REPORT_HINT,
        )
    if "ClusterName" in document:
        raise ReportError(
            f"{origin}: Trivy Kubernetes cluster report (trivy k8s, ClusterName); "
            "cluster reports are not supported by this version of securecase",
            hint="scan each workload image with trivy image --format json and ingest those "
            "reports, one source per image",
        )
    if "SchemaVersion" not in document:
        raise ReportError(
            f"{origin}: not a Trivy JSON report: $.SchemaVersion is missing",
            hint=REPORT_HINT,
        )
    version = document["SchemaVersion"]
    if type(version) is not int or version != SUPPORTED_SCHEMA_VERSION:
        raise ReportError(
            f"{origin}: unsupported Trivy schema version {short_repr(version)} "
            f"(this version of securecase reads SchemaVersion {SUPPORTED_SCHEMA_VERSION})",
            hint=LEGACY_HINT
            if type(version) is int and version < SUPPORTED_SCHEMA_VERSION
            else "use a securecase release that supports this Trivy version",
        )
    return document


def default_source(artifact_type: str | None) -> str:
    """The per-type slot name of cases written before slots were derived from the artifact."""
    return DEFAULT_SOURCES.get(artifact_type or "", "trivy")


def derived_source(artifact_type: str | None, artifact_name: str | None) -> str:
    """The default slot of a report: its per-type name plus the scanned artifact (an image
    without its tag, a path), e.g. ``trivy-image-ghcr.io-acme-shop``; ``.`` adds nothing."""
    if artifact_type == "container_image" and artifact_name:
        artifact_name = slots.image_name(artifact_name)
    if artifact_name in (None, "", ".", "./"):
        return default_source(artifact_type)
    return slots.slot_name(default_source(artifact_type), artifact_name)


# --------------------------------------------------------------------------- field checks


def _identity(
    record: dict[str, Any], key: str, where: _Where, problems: Problems, *, required: bool = True
) -> str | None:
    """A non-empty string of at most ``FIELD_LIMIT`` characters (identity and stored fields)."""
    value = record.get(key)
    if type(value) is str and value and len(value) <= FIELD_LIMIT:
        if value.isascii() or _valid_unicode(value) is value:
            return value
        problems.add((*where, key), "not valid Unicode (a lone surrogate escape such as \\ud800)")
        return None
    if value is None or value == "":
        if required:
            problems.add((*where, key), "missing" if value is None else "empty")
        return None
    if type(value) is not str:
        problems.add((*where, key), f"expected a string, got {type_name(value)}")
    else:
        problems.add(
            (*where, key),
            f"{len(value)} characters, longer than the {FIELD_LIMIT} allowed for this field",
        )
    return None


def _text(record: dict[str, Any], key: str, where: _Where, problems: Problems) -> str | None:
    """An optional string of any length (hashed, never stored); None when absent."""
    value = record.get(key)
    if value is None or type(value) is str:
        return value
    problems.add((*where, key), f"expected a string, got {type_name(value)}")
    return None


def _title(value: object, where: _Where, problems: Problems) -> str | None:
    """A display title: cut to ``TITLE_LIMIT`` characters, whitespace runs made single spaces."""
    if value is None or value == "":
        return None
    if type(value) is not str:
        problems.add(where, f"expected a string, got {type_name(value)}")
        return None
    if len(value) > TITLE_LIMIT:
        value = value[: TITLE_LIMIT - 1]
        value = " ".join(value.split()) + "…"
    elif not value.isprintable() or "  " in value:
        value = " ".join(value.split())
    return _valid_unicode(value) or None


def _valid_unicode(value: str) -> str:
    """Lone surrogates (possible from JSON ``\\ud800`` escapes) cannot be written as UTF-8."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _severity(record: dict[str, Any], where: _Where, problems: Problems) -> Severity | None:
    value = record.get("Severity")
    severity = _SEVERITIES.get(value) if type(value) is str else None
    if severity is None:
        if value is None:
            problems.add((*where, "Severity"), f"missing (expected one of {_SEVERITY_CHOICES})")
        elif type(value) is not str:
            problems.add(
                (*where, "Severity"),
                f"expected one of {_SEVERITY_CHOICES}, got {type_name(value)}",
            )
        else:
            problems.add(
                (*where, "Severity"),
                f"expected one of {_SEVERITY_CHOICES}, got {short_repr(value)}",
            )
    return severity


def _line(record: object, key: str, where: _Where, problems: Problems) -> int | None:
    """A 1-based line number; 0 or absent means "no line"."""
    if not isinstance(record, dict):
        return None
    value = record.get(key)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        problems.add((*where, key), f"expected a line number, got {short_repr(value)}")
        return None
    return value or None


def _cvss(record: dict[str, Any], where: _Where, problems: Problems) -> float | None:
    """The highest CVSS v3 base score any vendor gives."""
    table = record.get("CVSS")
    if table is None:
        return None
    if not isinstance(table, dict):
        problems.add((*where, "CVSS"), f"expected an object, got {type_name(table)}")
        return None
    best: float | None = None
    for vendor, entry in table.items():
        if not isinstance(entry, dict):
            problems.add((*where, "CVSS", vendor), f"expected an object, got {type_name(entry)}")
            continue
        score = entry.get("V3Score")
        if score is None:
            continue
        if type(score) not in (int, float) or not math.isfinite(score) or not 0 <= score <= 10:
            problems.add(
                (*where, "CVSS", vendor, "V3Score"),
                f"expected a score from 0 to 10, got {short_repr(score)}",
            )
            continue
        if best is None or score > best:
            best = float(score)
    return best


def _preference(fields: _Fields) -> tuple[Any, ...]:
    """Among records of one identity the smallest key wins: worst severity first, then every
    other field, so the choice never depends on report order."""
    _, _, severity, title, _, version, fixed, purl, path, start, end, cvss = fields
    return (
        -severity.rank,
        path or "",
        version or "",
        start or 0,
        end or 0,
        fixed or "",
        purl or "",
        title,
        -(cvss if cvss is not None else -1.0),
    )


def _keep(
    chosen: dict[tuple[str, ...], _Fields], identity: tuple[str, ...], fields: _Fields
) -> None:
    held = chosen.get(identity)
    if held is None or (held != fields and _preference(fields) < _preference(held)):
        chosen[identity] = fields


def _finding(source: str, identity: tuple[str, ...], fields: _Fields) -> Finding:
    kind, rule, severity, title, name, version, fixed, purl, path, start, end, cvss = fields
    if kind is Kind.VULNERABILITY:
        assert name is not None
        package: Package | None = Package(name, version, fixed, purl)
        location = Location(path=path, start_line=start, end_line=end) if path else None
    else:
        package = None
        location = Location(path=path, start_line=start, end_line=end)
    return Finding(
        id=fingerprint(source, *identity),
        source=source,
        kind=kind,
        advisory=rule,
        severity=severity,
        title=title,
        package=package,
        location=location,
        cvss=cvss,
    )


# --------------------------------------------------------------------------- the parser


def parse_document(origin: str, data: bytes, document: object, source: str | None = None) -> Report:
    """Normalize a parsed Trivy report; ``data`` are the bytes it was parsed from."""
    doc = check_document(document, origin)
    problems = Problems()

    trivy_info = doc.get("Trivy")
    tool_version = None
    if isinstance(trivy_info, dict):
        tool_version = _identity(trivy_info, "Version", ("Trivy",), problems, required=False)
    elif trivy_info is not None:
        problems.add(("Trivy",), f"expected an object, got {type_name(trivy_info)}")
    created = _identity(doc, "CreatedAt", (), problems, required=False)
    artifact_name = _identity(doc, "ArtifactName", (), problems, required=False)
    artifact_type = _identity(doc, "ArtifactType", (), problems, required=False)
    image_digest = _image_digest(doc, problems)

    legacy = None
    if source is None:
        legacy = default_source(artifact_type)
        source = derived_source(artifact_type, artifact_name)
    source = check_source_name(source, origin)

    results = doc.get("Results")
    if results is None:
        if not artifact_type:
            # Trivy leaves out an empty Results list, never the ArtifactType beside it
            problems.add(
                ("Results",),
                "missing, and no ArtifactType says what was scanned: no Trivy scan result",
            )
        results = []
    elif not isinstance(results, list):
        problems.add(("Results",), f"expected an array, got {type_name(results)}")
        results = []

    chosen: dict[tuple[str, ...], _Fields] = {}
    has_secrets = False
    for r_index, result in enumerate(results):
        where: _Where = ("Results", r_index)
        if not isinstance(result, dict):
            problems.add(where, f"expected an object, got {type_name(result)}")
            continue
        if result.get("Secrets"):
            has_secrets = True
        cls = _identity(result, "Class", where, problems, required=False) or ""
        if cls in SKIPPED_CLASSES:
            continue
        rtype = _identity(result, "Type", where, problems, required=False) or ""
        vulns = array_member(result, "Vulnerabilities", where, problems)
        misconfs = array_member(result, "Misconfigurations", where, problems)
        secrets = array_member(result, "Secrets", where, problems)
        # misconfigurations and secrets are located (and identified) by their file
        target = _identity(result, "Target", where, problems, required=bool(misconfs or secrets))
        if vulns:
            lines = _package_lines(result) if cls == "lang-pkgs" else {}
            _vulnerabilities(vulns, where, cls, rtype, target, chosen, problems, lines)
        if misconfs:
            _misconfigurations(misconfs, where, rtype, target or "", chosen, problems)
        if secrets:
            _secrets(secrets, where, target or "", chosen, problems)

    if problems.items:
        raise problems_error(origin, "invalid Trivy report", problems.items, hint=REPORT_HINT)

    findings = [_finding(source, identity, fields) for identity, fields in chosen.items()]
    findings.sort(key=lambda f: (-f.severity.rank, f.id))

    return Report(
        format=ReportFormat.TRIVY,
        source=source,
        tool="trivy",
        tool_version=tool_version,
        scanned_at=_utc(created) if created else None,
        artifact_name=artifact_name,
        artifact_type=artifact_type,
        image_digest=image_digest,
        findings=tuple(findings),
        raw=masked_copy(doc) if has_secrets else data,
        raw_suffix=".json",
        path=origin,
        legacy_source=legacy if legacy != source else None,
    )


def _vulnerabilities(
    records: list[Any],
    where_result: _Where,
    cls: str,
    rtype: str,
    target: str | None,
    chosen: dict[tuple[str, ...], _Fields],
    problems: Problems,
    lines: dict[str, tuple[int, int | None]],
) -> None:
    lang = cls == "lang-pkgs"
    default_path = target if lang else None
    for index, record in enumerate(records):
        where: _Where = (*where_result, "Vulnerabilities", index)
        fields = _vulnerability_checked(record, where, lang, default_path, problems)
        if fields is None:
            continue
        if lines:
            found = lines.get(_package_key(record))
            if found is not None:
                fields = (*fields[:9], found[0], found[1], fields[11])
        _keep(chosen, ("vuln", cls, rtype, fields[4] or "", fields[1]), fields)


def _package_key(record: dict[str, Any]) -> str:
    """How a vulnerability names its package in the result's package list."""
    ident = record.get("PkgIdentifier")
    uid = ident.get("UID") if type(ident) is dict else None
    return f"uid:{uid}" if type(uid) is str else f"id:{record.get('PkgID')}"


def _package_lines(result: dict[str, Any]) -> dict[str, tuple[int, int | None]]:
    """Where each package stands in its lockfile (``--list-all-pkgs`` reports carry it).

    Only a location hint for annotations, never part of a finding's identity; entries that
    do not have the expected shape are passed over.
    """
    found: dict[str, tuple[int, int | None]] = {}
    packages = result.get("Packages")
    if type(packages) is not list:
        return found
    for package in packages:
        if type(package) is not dict:
            continue
        spots = package.get("Locations")
        if type(spots) is not list or not spots or type(spots[0]) is not dict:
            continue
        start, end = spots[0].get("StartLine"), spots[0].get("EndLine")
        if type(start) is not int or start < 1:
            continue
        span = (start, end if type(end) is int and end >= start else None)
        ident = package.get("Identifier")
        uid = ident.get("UID") if type(ident) is dict else None
        if type(uid) is str:
            found.setdefault(f"uid:{uid}", span)
        if type(package.get("ID")) is str:
            found.setdefault(f"id:{package['ID']}", span)
    return found


def _vulnerability_checked(
    record: object, where: _Where, lang: bool, default_path: str | None, problems: Problems
) -> _Fields | None:
    """The fields of one vulnerability record, or None: a VEX ``not_affected`` statement, or a
    record with problems (every one recorded with its JSON path)."""
    if not isinstance(record, dict):
        problems.add(where, f"expected an object, got {type_name(record)}")
        return None
    before = len(problems.items)
    status = _text(record, "Status", where, problems)
    if status == "not_affected":
        return None
    vuln_id = _identity(record, "VulnerabilityID", where, problems)
    name = _identity(record, "PkgName", where, problems)
    severity = _severity(record, where, problems)
    title = _title(record.get("Title"), (*where, "Title"), problems)
    version = _identity(record, "InstalledVersion", where, problems, required=False)
    fixed = _identity(record, "FixedVersion", where, problems, required=False)
    path = _identity(record, "PkgPath", where, problems, required=False) if lang else None
    purl = None
    ident = record.get("PkgIdentifier")
    if isinstance(ident, dict):
        purl = _identity(ident, "PURL", (*where, "PkgIdentifier"), problems, required=False)
    elif ident is not None:
        problems.add((*where, "PkgIdentifier"), f"expected an object, got {type_name(ident)}")
    cvss = _cvss(record, where, problems)
    if len(problems.items) != before or vuln_id is None or name is None or severity is None:
        return None
    return (
        Kind.VULNERABILITY,
        vuln_id,
        severity,
        title or vuln_id,
        name,
        version,
        fixed,
        purl,
        path or default_path or None,
        None,
        None,
        cvss,
    )


def _misconfigurations(
    records: list[Any],
    where_result: _Where,
    rtype: str,
    target: str,
    chosen: dict[tuple[str, ...], _Fields],
    problems: Problems,
) -> None:
    for index, record in enumerate(records):
        where: _Where = (*where_result, "Misconfigurations", index)
        if not isinstance(record, dict):
            problems.add(where, f"expected an object, got {type_name(record)}")
            continue
        before = len(problems.items)
        status = _text(record, "Status", where, problems)
        if status in _MISCONF_SKIPPED:
            continue
        if status is not None and status not in _MISCONF_COUNTED:
            problems.add(
                (*where, "Status"), f"expected FAIL, PASS or EXCEPTION, got {short_repr(status)}"
            )
        check_id = _identity(record, "ID", where, problems)
        severity = _severity(record, where, problems)
        title = _title(record.get("Title"), (*where, "Title"), problems)
        message = _text(record, "Message", where, problems) or ""
        cause = record.get("CauseMetadata")
        if cause is not None and not isinstance(cause, dict):
            problems.add((*where, "CauseMetadata"), f"expected an object, got {type_name(cause)}")
        start = _line(cause, "StartLine", (*where, "CauseMetadata"), problems)
        end = _line(cause, "EndLine", (*where, "CauseMetadata"), problems)
        if len(problems.items) != before or check_id is None or severity is None:
            continue
        fields: _Fields = (
            Kind.MISCONFIGURATION,
            check_id,
            severity,
            title or check_id,
            None,
            None,
            None,
            None,
            target,
            start,
            end,
            None,
        )
        _keep(chosen, ("misconf", rtype, target, check_id, message), fields)


def _secrets(
    records: list[Any],
    where_result: _Where,
    target: str,
    chosen: dict[tuple[str, ...], _Fields],
    problems: Problems,
) -> None:
    for index, record in enumerate(records):
        where: _Where = (*where_result, "Secrets", index)
        if not isinstance(record, dict):
            problems.add(where, f"expected an object, got {type_name(record)}")
            continue
        before = len(problems.items)
        rule = _identity(record, "RuleID", where, problems)
        severity = _severity(record, where, problems)
        title = _title(record.get("Title"), (*where, "Title"), problems)
        start = _line(record, "StartLine", where, problems)
        end = _line(record, "EndLine", where, problems)
        match = _text(record, "Match", where, problems) or ""
        if len(problems.items) != before or rule is None or severity is None:
            continue
        digest = hashlib.sha256(match.encode("utf-8", "surrogatepass")).hexdigest()
        fields: _Fields = (
            Kind.SECRET,
            rule,
            severity,
            title or rule,
            None,
            None,
            None,
            None,
            target,
            start,
            end,
            None,
        )
        _keep(chosen, ("secret", target, rule, digest), fields)


# --------------------------------------------------------------------------- metadata


def _image_digest(doc: dict[str, Any], problems: Problems) -> str | None:
    """``sha256:...`` of the first RepoDigests entry, else Metadata.ImageID, else None."""
    metadata = doc.get("Metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        problems.add(("Metadata",), f"expected an object, got {type_name(metadata)}")
        return None
    digests = metadata.get("RepoDigests")
    if digests is not None and not isinstance(digests, list):
        problems.add(("Metadata", "RepoDigests"), f"expected an array, got {type_name(digests)}")
        digests = None
    for entry in digests or ():
        if type(entry) is str and "@" in entry:
            digest = entry.rpartition("@")[2]
            if _DIGEST.match(digest):
                return digest
    image_id = metadata.get("ImageID")
    if type(image_id) is str and _DIGEST.match(image_id):
        return image_id
    return None


def _utc(value: str) -> str:
    """An ISO 8601 time with an offset as ``YYYY-MM-DDTHH:MM:SSZ``; anything else unchanged."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
