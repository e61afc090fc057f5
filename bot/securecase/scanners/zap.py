"""OWASP ZAP traditional reports (JSON and XML) to findings: one per alert and site.

An alert is identified by its ``alertRef`` (else its ``pluginid``) and the site, so a rescan
that finds the same problem on other URLs updates one finding. Its instances (method, URI with
the query values removed, parameter) are listed, deduplicated, sorted and capped. XML is read
with defusedxml: a DTD or entity declaration (billion laughs, external entities) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from securecase.domain.findings import (
    Finding,
    Instance,
    Kind,
    Location,
    Report,
    ReportFormat,
    Severity,
    fingerprint,
)
from securecase.errors import ReportError
from securecase.scanners.jsonload import (
    check_source_name,
    json_path,
    problems_error,
    short_repr,
    type_name,
)
from securecase.scanners.shapes import looks_like_zap_json
from securecase.scanners.urls import without_query_values
from securecase.scanners.zap_mask import masked_json, masked_xml

DEFAULT_SOURCE = "zap"
REPORT_HINT = (
    "regenerate the report with ZAP's traditional JSON or XML report "
    "(zap-baseline.py -J report.json or -x report.xml); it was not ingested"
)
#: Instances listed per finding; ``instance_count`` keeps the full number.
INSTANCE_LIMIT = 20
TITLE_LIMIT = 500
FIELD_LIMIT = 2000

_RISKS: Mapping[str, Severity] = {
    "3": Severity.HIGH,
    "2": Severity.MEDIUM,
    "1": Severity.LOW,
    "0": Severity.INFO,
}
_CONFIDENCES: Mapping[str, str] = {
    "0": "false-positive",
    "1": "low",
    "2": "medium",
    "3": "high",
    "4": "confirmed",
}


@dataclass(frozen=True, slots=True)
class _Alert:
    """One alert of one site, as either report format gives it (plain strings)."""

    where: str
    site: str
    fields: Mapping[str, str | None]
    instances: tuple[Mapping[str, str | None], ...]


# --------------------------------------------------------------------------- JSON


def parse_document(origin: str, data: bytes, document: object, source: str | None = None) -> Report:
    """Normalize a parsed ZAP JSON report; ``data`` are the bytes it was parsed from."""
    if not looks_like_zap_json(document) or not isinstance(document, dict):
        raise ReportError(
            f"{origin}: $: not an OWASP ZAP JSON report (expected an object with a site array)",
            hint=REPORT_HINT,
        )
    problems: list[str] = []
    alerts: list[_Alert] = []
    sites = document.get("site")
    if sites is None:
        raise ReportError(
            f"{origin}: $.site: missing: no list of scanned sites, so no alerts to read",
            hint=REPORT_HINT,
        )
    if not isinstance(sites, list):
        problems.append(f"$.site: expected an array, got {type_name(sites)}")
        sites = []
    for s_index, site in enumerate(sites):
        where: tuple[str | int, ...] = ("site", s_index)
        if not isinstance(site, dict):
            problems.append(f"{json_path(*where)}: expected an object, got {type_name(site)}")
            continue
        name = _json_text(site, "@name", where, problems)
        items = site.get("alerts")
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(f"{json_path(*where, 'alerts')}: expected an array")
            continue
        for a_index, item in enumerate(items):
            a_where = (*where, "alerts", a_index)
            if not isinstance(item, dict):
                problems.append(f"{json_path(*a_where)}: expected an object, got {type_name(item)}")
                continue
            values = {
                key: _json_text(item, key, a_where, problems)
                for key in ("pluginid", "alertRef", "alert", "name", "riskcode", "confidence")
                + ("cweid", "wascid")
            }
            instances = item.get("instances") or []
            if not isinstance(instances, list):
                problems.append(f"{json_path(*a_where, 'instances')}: expected an array")
                instances = []
            listed = []
            for i_index, instance in enumerate(instances):
                i_where = (*a_where, "instances", i_index)
                if not isinstance(instance, dict):
                    problems.append(f"{json_path(*i_where)}: expected an object")
                    continue
                listed.append(
                    {key: _json_text(instance, key, i_where, problems) for key in _INSTANCE_KEYS}
                )
            if not listed and isinstance(item.get("uri"), str):  # reports before ZAP 2.8
                listed.append(
                    {key: _json_text(item, key, a_where, problems) for key in _INSTANCE_KEYS}
                )
            alerts.append(_Alert(json_path(*a_where), name or "", values, tuple(listed)))
    version = document.get("@version")
    raw = data if problems else masked_json(document, without_query_values) or data
    return _report(
        origin,
        raw,
        alerts,
        problems,
        source,
        version=version if isinstance(version, str) else None,
        suffix=".json",
        sites=(len(sites), "$.site"),
    )


_INSTANCE_KEYS = ("uri", "method", "param")


def _json_text(
    record: Mapping[str, Any], key: str, where: tuple[str | int, ...], problems: list[str]
) -> str | None:
    value = record.get(key)
    if value is None or type(value) is str:
        return value
    if type(value) is int:  # some ZAP versions write codes as numbers
        return str(value)
    problems.append(f"{json_path(*where, key)}: expected a string, got {type_name(value)}")
    return None


# --------------------------------------------------------------------------- XML


def parse_xml(origin: str, data: bytes, source: str | None = None) -> Report:
    """Parse a ZAP traditional XML report (``OWASPZAPReport``) with defusedxml."""
    from xml.etree.ElementTree import ParseError

    import defusedxml
    from defusedxml import ElementTree as SafeTree

    try:
        root = SafeTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise ReportError(
            f"{origin}: XML refused: {exc.__class__.__name__} "
            "(a DTD or entity declaration; scanner reports never need one)",
            hint="entity tricks (billion laughs, external entities) are not read; "
            "ingest the report ZAP wrote",
        ) from None
    except ParseError as exc:
        line, column = exc.position
        raise ReportError(
            f"{origin}:{line}:{column + 1}: invalid XML: {exc.msg}", hint=REPORT_HINT
        ) from None
    if root.tag != "OWASPZAPReport":
        raise ReportError(
            f"{origin}: XML with root element <{short_repr(root.tag, 40).strip(chr(39))}>; "
            "the only XML report securecase reads is OWASP ZAP's (<OWASPZAPReport>)",
            hint=REPORT_HINT,
        )
    try:
        problems = _xml_structure(root)
    except _TooDeep:
        raise ReportError(
            f"{origin}: XML nested too deeply to be a scanner report at "
            f"{_deep_path(root, XML_DEPTH_LIMIT + 1)} "
            f"(a ZAP report nests at most {XML_DEPTH_LIMIT} levels)",
            hint=REPORT_HINT,
        ) from None
    if problems:
        raise problems_error(origin, "not an OWASP ZAP report", problems, hint=REPORT_HINT)
    alerts: list[_Alert] = []
    for s_index, site in enumerate(root.findall("site")):
        where = f"/OWASPZAPReport/site[{s_index}]"
        name = site.get("name") or ""
        for a_index, item in enumerate(site.findall("alerts/alertitem")):
            a_where = f"{where}/alerts/alertitem[{a_index}]"
            values = {
                key: _xml_text(item.find(key))
                for key in ("pluginid", "alertRef", "alert", "name", "riskcode", "confidence")
                + ("cweid", "wascid")
            }
            listed = tuple(
                {key: _xml_text(instance.find(key)) for key in _INSTANCE_KEYS}
                for instance in item.findall("instances/instance")
            )
            if not listed and item.find("uri") is not None:  # reports before ZAP 2.8
                listed = ({key: _xml_text(item.find(key)) for key in _INSTANCE_KEYS},)
            alerts.append(_Alert(a_where, name, values, listed))
    version = root.get("version")
    try:
        raw = data if problems else masked_xml(root, without_query_values) or data
    except RecursionError:  # re-serializing the masked tree recurses once per level
        raise ReportError(
            f"{origin}: XML nested too deeply to be a scanner report at {_deep_path(root)}",
            hint=REPORT_HINT,
        ) from None
    sites = (len(root.findall("site")), "/OWASPZAPReport/site")
    return _report(
        origin, raw, alerts, problems, source, version=version, suffix=".xml", sites=sites
    )


#: Where ZAP's XML report puts its elements: the children each level may have. Below
#: ``alertitem`` ZAP writes one or two more levels (instances), at most 6 in all.
_XML_CHILDREN: Mapping[str, frozenset[str]] = {
    "OWASPZAPReport": frozenset({"site"}),
    "site": frozenset({"alerts"}),
    "alerts": frozenset({"alertitem"}),
}
#: Levels below the root an XML report may nest: ZAP writes 6.
XML_DEPTH_LIMIT = 12


class _TooDeep(Exception):
    """The XML nests deeper than a ZAP report does."""


def _xml_structure(root: Any) -> list[str]:
    """Problems with the report's shape: an element ZAP does not write where the alerts are
    looked for, or nesting deeper than ``XML_DEPTH_LIMIT`` (walked without recursion)."""
    problems: list[str] = []
    stack: list[tuple[Any, str, int]] = [(root, "/OWASPZAPReport", 0)]
    while stack and len(problems) < 10:
        element, where, depth = stack.pop()
        allowed = _XML_CHILDREN.get(str(element.tag)) if depth < 3 else None
        counts: dict[str, int] = {}
        for child in element:
            tag = str(child.tag)
            position = counts[tag] = counts.get(tag, -1) + 1
            child_where = f"{where}/{short_repr(tag, 40).strip(chr(39))}[{position}]"
            if allowed is not None and tag not in allowed:
                problems.append(
                    f"{child_where}: unknown element (a ZAP report has "
                    f"{', '.join(sorted(allowed))} here)"
                )
                continue
            if depth + 1 > XML_DEPTH_LIMIT:
                raise _TooDeep
            stack.append((child, child_where, depth + 1))
    return problems


#: Element depth at which :func:`_deep_path` names where a document goes deep.
_DEPTH_SHOWN = 100
_PATH_PARTS_SHOWN = 12


def _deep_path(root: Any, depth: int = _DEPTH_SHOWN) -> str:
    """The path of the first element ``depth`` levels deep (found without recursion),
    its first steps shown and the rest counted."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(root, (str(root.tag),))]
    while stack:
        element, steps = stack.pop()
        if len(steps) >= depth:
            shown = "/" + "/".join(steps[:_PATH_PARTS_SHOWN])
            return f"{shown}… ({len(steps) - _PATH_PARTS_SHOWN} more levels)"
        stack.extend((child, (*steps, str(child.tag))) for child in reversed(list(element)))
    return "/" + str(root.tag)


def _xml_text(element: Any) -> str | None:
    if element is None or element.text is None:
        return None
    return str(element.text).strip()


# --------------------------------------------------------------------------- both formats


def _report(
    origin: str,
    data: bytes,
    alerts: list[_Alert],
    problems: list[str],
    source: str | None,
    *,
    version: str | None,
    suffix: str,
    sites: tuple[int, str],
) -> Report:
    """The report of a parsed ZAP document; ``sites`` is (how many sites it lists, where).
    A report that lists no site scanned nothing: it is incomplete, never "all fixed"."""
    source = check_source_name(source or DEFAULT_SOURCE, origin)
    merged: dict[tuple[str, str], Finding] = {}
    members: dict[tuple[str, str], list[_Alert]] = {}
    for alert in alerts:
        finding = _finding(alert, source, problems)
        if finding is None:
            continue
        key = (finding.advisory, alert.site)
        held = merged.get(key)
        merged[key] = finding if held is None else _combined(held, finding)
        members.setdefault(key, []).append(alert)
    if problems:
        raise problems_error(origin, "invalid OWASP ZAP report", problems, hint=REPORT_HINT)
    for key, group in members.items():
        if len(group) > 1:  # list and count the instances of all its alerts, each once
            everything = sorted(
                set(_instances(r for alert in group for r in alert.instances)), key=_instance_key
            )
            merged[key] = replace(
                merged[key],
                instances=tuple(everything[:INSTANCE_LIMIT]),
                instance_count=len(everything),
            )
    findings = sorted(merged.values(), key=lambda f: (-f.severity.rank, f.id))
    return Report(
        incomplete=()
        if sites[0]
        else (f"{sites[1]}: no site was scanned (ZAP reached no target)",),
        format=ReportFormat.ZAP,
        source=source,
        tool="zap",
        tool_version=version if version and len(version) <= 100 else None,
        scanned_at=None,
        artifact_name=None,
        artifact_type=None,
        image_digest=None,
        findings=tuple(findings),
        raw=data,
        raw_suffix=suffix,
        path=origin,
    )


def _finding(alert: _Alert, source: str, problems: list[str]) -> Finding | None:
    values = alert.fields
    rule = values.get("alertRef") or values.get("pluginid")
    if not rule:
        problems.append(f"{alert.where}: the alert has neither alertRef nor pluginid")
        return None
    if len(rule) > FIELD_LIMIT or len(alert.site) > FIELD_LIMIT:
        problems.append(f"{alert.where}: alert id or site longer than {FIELD_LIMIT} characters")
        return None
    risk = values.get("riskcode")
    severity = _RISKS.get(risk or "")
    if severity is None:
        problems.append(f"{alert.where}/riskcode: expected 0, 1, 2 or 3, got {short_repr(risk)}")
        return None
    confidence = _CONFIDENCES.get(values.get("confidence") or "")
    title = " ".join((values.get("alert") or values.get("name") or rule).split())
    if len(title) > TITLE_LIMIT:
        title = title[: TITLE_LIMIT - 1] + "…"
    instances = sorted(set(_instances(alert.instances)), key=_instance_key)
    return Finding(
        id=fingerprint(source, "zap", rule, alert.site),
        source=source,
        kind=Kind.DAST,
        advisory=rule,
        severity=severity,
        title=title,
        location=Location(url=alert.site) if alert.site else None,
        # ZAP's confidence 0 is the analyst marking the alert a false positive
        suppressed=confidence == "false-positive",
        confidence=confidence,
        cwe=_classified("CWE", values.get("cweid")),
        wasc=next(iter(_classified("WASC", values.get("wascid"))), None),
        instances=tuple(instances[:INSTANCE_LIMIT]),
        instance_count=len(instances),
    )


def _combined(a: Finding, b: Finding) -> Finding:
    """Two alerts of one id on one site (older reports without alertRef): one finding (its
    instances are then listed from all the alerts, see :func:`_report`)."""
    worst, other = (a, b) if a.severity.rank >= b.severity.rank else (b, a)
    return replace(
        worst,
        cwe=tuple(sorted(set(a.cwe) | set(b.cwe))),
        title=min(a.title, b.title) if worst.severity is other.severity else worst.title,
    )


def _classified(prefix: str, value: str | None) -> tuple[str, ...]:
    if value is None or not value.isdigit() or int(value) <= 0:
        return ()
    return (f"{prefix}-{int(value)}",)


def _instances(records: Iterable[Mapping[str, str | None]]) -> Iterable[Instance]:
    for record in records:
        uri = record.get("uri")
        yield Instance(
            method=(record.get("method") or None),
            uri=without_query_values(uri)[:FIELD_LIMIT] if uri else None,
            param=(record.get("param") or None),
        )


def _instance_key(instance: Instance) -> tuple[str, str, str]:
    return (instance.uri or "", instance.method or "", instance.param or "")
