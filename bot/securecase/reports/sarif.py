"""SARIF 2.1.0 logs (CodeQL, Semgrep, Bandit, Trivy ``--format sarif``, ...) to findings.

One pass over every run and result: problems are collected with their JSON path and a log
with any problem is refused as a whole. The rules of a result come from the driver or an
extension (``ruleIndex``, ``rule.toolComponent``, ``ruleId``). Identity prefers the scanner's
own ``partialFingerprints``/``fingerprints``; without them it is rule + path + a hash of the
region's snippet (or the message) and an occurrence number, never the bare line number.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

from securecase.errors import ReportError
from securecase.models import (
    Finding,
    Kind,
    Location,
    Package,
    Report,
    ReportFormat,
    Severity,
    fingerprint,
)
from securecase.reports import sarif_fields as fields
from securecase.reports.jsonload import (
    check_source_name,
    paused_gc,
    problems_error,
    short_repr,
    type_name,
)
from securecase.reports.sarif_fields import Problems, Where
from securecase.reports.sarif_mask import masked_copy

SUPPORTED_VERSION = "2.1.0"
REPORT_HINT = "regenerate the log with the scanner's SARIF 2.1.0 output; it was not ingested"

_LEVELS: Mapping[str, Severity] = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "note": Severity.LOW,
    "none": Severity.INFO,
}
#: Result kinds that say the check passed or did not apply: no finding.
_NOT_PROBLEMS = frozenset({"pass", "notApplicable"})
_KINDS = frozenset({"pass", "notApplicable", "fail", "informational", "review", "open"})
#: Tools whose every result is a leaked secret or an infrastructure misconfiguration.
SECRET_TOOLS = frozenset(
    {"gitleaks", "trufflehog", "detect-secrets", "ggshield", "secretlint", "talisman", "kingfisher"}
)
IAC_TOOLS = frozenset(
    {
        "checkov",
        "tfsec",
        "kics",
        "terrascan",
        "dockle",
        "hadolint",
        "kube-linter",
        "kubesec",
        "cfn-lint",
        "cfn_nag",
        "tflint",
        "trivy-config",
    }
)
#: Trivy's SARIF rule names say what each rule is about.
_TRIVY_RULE_KINDS: Mapping[str, Kind] = {
    "OsPackageVulnerability": Kind.VULNERABILITY,
    "LanguageSpecificPackageVulnerability": Kind.VULNERABILITY,
    "Misconfiguration": Kind.MISCONFIGURATION,
    "Secret": Kind.SECRET,
}
_TRIVY_SKIPPED_RULES = frozenset({"License"})
_TRIVY_PACKAGE_LINE = re.compile(r"^(Package|Installed Version|Fixed Version): (.+)$", re.M)
_CWE = re.compile(r"\bcwe[-_/ :]?0*(\d{1,6})\b", re.I)
_SLUG = re.compile(r"[^a-z0-9._-]+")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")


def looks_like_sarif(document: object) -> bool:
    """True for a JSON object that claims to be a SARIF log (any version)."""
    if not isinstance(document, dict):
        return False
    schema = document.get("$schema")
    if isinstance(schema, str) and "sarif" in schema.lower():
        return True
    return "runs" in document and "version" in document


def tool_slug(name: str) -> str:
    """A tool name as a source slot name: ``Shell Script Analysis`` → ``shell-script-analysis``."""
    return _SLUG.sub("-", name.lower()).strip("-._")[:63].rstrip("-._")


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


# --------------------------------------------------------------------------- one run


class _Run:
    """What results of one run look things up in: rules, artifacts, URI base ids."""

    __slots__ = (
        "artifacts",
        "bases",
        "components",
        "cwes_of_rule",
        "index",
        "kind",
        "paths",
        "rules_by_id",
        "tool",
    )

    def __init__(self, run: dict[str, Any], index: int, problems: Problems) -> None:
        where: Where = ("runs", index)
        self.index = index
        tool = fields.obj(run, "tool", where, problems, required=True) or {}
        driver = fields.obj(tool, "driver", (*where, "tool"), problems, required=True) or {}
        name = fields.string(driver, "name", (*where, "tool", "driver"), problems, required=True)
        self.tool = name or "sarif"
        self.components: list[list[Any]] = [
            fields.array(driver, "rules", (*where, "tool", "driver"), problems)
        ]
        extensions = fields.array(tool, "extensions", (*where, "tool"), problems)
        for e_index, extension in enumerate(extensions):
            e_where: Where = (*where, "tool", "extensions", e_index)
            if not isinstance(extension, dict):
                problems.add(e_where, f"expected an object, got {type_name(extension)}")
                self.components.append([])
                continue
            self.components.append(fields.array(extension, "rules", e_where, problems))
        self.rules_by_id: dict[str, dict[str, Any]] = {}
        for component in reversed(self.components):  # the driver's rules win over extensions'
            for rule in component:
                if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                    self.rules_by_id[rule["id"]] = rule
        self.artifacts = fields.array(run, "artifacts", where, problems)
        bases = fields.obj(run, "originalUriBaseIds", where, problems) or {}
        self.bases: dict[str, Any] = bases
        self.kind = _tool_kind(tool_slug(self.tool))
        # rule metadata is shared by many results: its CWEs are worked out once per rule
        self.cwes_of_rule: dict[int, tuple[str, ...]] = {}
        self.paths: dict[tuple[str, str | None], str] = {}

    def rule_cwes(self, rule: dict[str, Any], properties: Mapping[str, Any]) -> tuple[str, ...]:
        """The CWEs a rule's properties name (cached per rule object)."""
        found = self.cwes_of_rule.get(id(rule))
        if found is None:
            found = self.cwes_of_rule[id(rule)] = _cwes(properties)
        return found

    def rule(
        self, result: dict[str, Any], where: Where, problems: Problems
    ) -> tuple[str | None, dict[str, Any]]:
        """The result's rule id and rule metadata (empty when the log has none)."""
        rule_id = fields.string(result, "ruleId", where, problems)
        component = 0
        rule_index = result.get("ruleIndex")
        index_where: Where = (*where, "ruleIndex")
        reference = result.get("rule")
        if reference is not None:
            if not isinstance(reference, dict):
                problems.add((*where, "rule"), f"expected an object, got {type_name(reference)}")
                reference = {}
            rule_id = rule_id or fields.string(reference, "id", (*where, "rule"), problems)
            if "index" in reference:
                rule_index, index_where = reference["index"], (*where, "rule", "index")
            tool_component = reference.get("toolComponent")
            if isinstance(tool_component, dict) and "index" in tool_component:
                c_index = tool_component["index"]
                c_where: Where = (*where, "rule", "toolComponent", "index")
                if type(c_index) is not int or not 0 <= c_index < len(self.components) - 1:
                    problems.add(
                        c_where,
                        f"{short_repr(c_index)} does not name one of the run's "
                        f"{len(self.components) - 1} tool extensions",
                    )
                    return rule_id, {}
                component = c_index + 1
        metadata: dict[str, Any] = {}
        if rule_index is not None and rule_index != -1:
            rules = self.components[component]
            if type(rule_index) is not int or not 0 <= rule_index < len(rules):
                problems.add(
                    index_where,
                    f"{short_repr(rule_index)} is out of range: the tool component lists "
                    f"{len(rules)} rules",
                )
                return rule_id, {}
            found = rules[rule_index]
            if isinstance(found, dict):
                metadata = found
        elif rule_id is not None:
            metadata = self.rules_by_id.get(rule_id) or self.rules_by_id.get(
                rule_id.split("/", 1)[0], {}
            )
        if rule_id is None and isinstance(metadata.get("id"), str):
            rule_id = metadata["id"]
        return rule_id, metadata

    def path(self, location: dict[str, Any], where: Where, problems: Problems) -> str | None:
        """The artifact's path relative to the scanned repository, when the log says."""
        artifact = fields.obj(location, "artifactLocation", where, problems)
        if artifact is None:
            return None
        a_where: Where = (*where, "artifactLocation")
        uri = fields.string(artifact, "uri", a_where, problems)
        base = fields.string(artifact, "uriBaseId", a_where, problems)
        index = artifact.get("index")
        if uri is None and type(index) is int and 0 <= index < len(self.artifacts):
            listed = self.artifacts[index]
            listed_location = listed.get("location") if isinstance(listed, dict) else None
            if isinstance(listed_location, dict) and isinstance(listed_location.get("uri"), str):
                uri = listed_location["uri"]
                base = base or listed_location.get("uriBaseId")
        if uri is None:
            return None
        path = self.paths.get((uri, base))
        if path is None:  # many results share a file: resolve each URI once
            path = self.paths[(uri, base)] = _relative_path(uri, base, self.bases)
        if len(path) > fields.FIELD_LIMIT:
            problems.add((*a_where, "uri"), f"longer than the {fields.FIELD_LIMIT} allowed")
            return None
        return path or None


def _tool_kind(slug: str) -> Kind:
    if slug in SECRET_TOOLS:
        return Kind.SECRET
    if slug in IAC_TOOLS:
        return Kind.MISCONFIGURATION
    return Kind.CODE


def _relative_path(uri: str, base: str | None, bases: Mapping[str, Any]) -> str:
    """Resolve ``uri`` against its chain of relative ``uriBaseId`` prefixes.

    The chain stops at an absolute URI (the checkout root on the build machine), so the path
    stays relative to the repository; an absolute file URI under that root is made relative.
    """
    prefixes: list[str] = []
    root: str | None = None
    seen: set[str] = set()
    while base and base not in seen:
        seen.add(base)
        entry = bases.get(base)
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str):
            break
        base_uri = entry["uri"].strip()
        if urlsplit(base_uri).scheme or base_uri.startswith("/"):
            root = base_uri
            break
        prefixes.append(base_uri)
        next_base = entry.get("uriBaseId")
        base = next_base if isinstance(next_base, str) else None
    if root and uri.startswith(root):
        uri = uri[len(root) :]
    for prefix in prefixes:
        uri = prefix.rstrip("/") + "/" + uri if prefix else uri
    split = urlsplit(uri)
    path = split.path if split.scheme == "file" else uri
    path = unquote(path)
    if split.scheme != "file" and split.scheme:
        return path
    normalized = posixpath.normpath(path) if path else path
    return normalized.removeprefix("./") if normalized != "." else ""


# --------------------------------------------------------------------------- one result

#: One result's normalized fields before its identity is final:
#: (base identity, order key, finding without id)
_Candidate = tuple[tuple[str, ...], tuple[Any, ...], Finding]


def _result(
    run: _Run, result: object, where: Where, source: str, problems: Problems
) -> tuple[_Candidate | None, bool]:
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
    location_obj, path, start, end, snippet = _location(run, result, where, problems)
    prints = fields.fingerprints(result, where, problems)
    if len(problems.items) != before:
        return None, kind is Kind.SECRET
    rule_id = rule_id or _rule_named_in(message, run) or "unknown-rule"
    rule_props = _properties(rule)
    result_props = _properties(result)
    score = _security_severity(rule_props)
    if score is None:
        score = _security_severity(result_props)
    severity = _severity_of_score(score) if score is not None else _LEVELS[level]
    package = _trivy_package(message) if kind is Kind.VULNERABILITY else None
    if kind is Kind.VULNERABILITY and package is None:
        kind = Kind.CODE
    title = _title(rule, message, rule_id, secret=kind is Kind.SECRET)
    tool = run.tool.lower()
    if package is not None:
        identity: tuple[str, ...] = ("vuln", tool, rule_id, package.name)
        order: tuple[Any, ...] = ()
    else:
        if prints:
            identity = ("fp", tool, rule_id, path or "", *prints)
        else:
            anchor = snippet if snippet is not None else message
            digest = hashlib.sha256(" ".join(anchor.split()).encode("utf-8", "replace"))
            identity = ("loc", tool, rule_id, path or "", digest.hexdigest())
        # Equal identities at different places are told apart by their order in the file,
        # which a line shift above them does not change; the same place twice is one finding.
        order = (start or 0, end or start or 0)
    finding = Finding(
        id="",
        source=source,
        kind=kind,
        rule=rule_id[: fields.FIELD_LIMIT],
        severity=severity,
        title=title,
        package=package,
        location=Location(path=path, start_line=start, end_line=end) if location_obj else None,
        cvss=score,
        suppressed=suppressed,
        confidence=_confidence(rule_props, result_props),
        cwe=_merged_cwes(run.rule_cwes(rule, rule_props), _cwes(result_props)),
    )
    return (identity, order, finding), kind is Kind.SECRET


def _location(
    run: _Run, result: dict[str, Any], where: Where, problems: Problems
) -> tuple[bool, str | None, int | None, int | None, str | None]:
    """(has a physical location, path, start line, end line, region snippet text)."""
    locations = fields.array(result, "locations", where, problems)
    if not locations:
        return False, None, None, None, None
    first = locations[0]
    l_where: Where = (*where, "locations", 0)
    if not isinstance(first, dict):
        problems.add(l_where, f"expected an object, got {type_name(first)}")
        return False, None, None, None, None
    physical = fields.obj(first, "physicalLocation", l_where, problems)
    if physical is None:
        return False, None, None, None, None
    p_where: Where = (*l_where, "physicalLocation")
    path = run.path(physical, p_where, problems)
    region = fields.obj(physical, "region", p_where, problems)
    start = end = None
    snippet = None
    if region is not None:
        r_where: Where = (*p_where, "region")
        start = fields.line(region, "startLine", r_where, problems)
        end = fields.line(region, "endLine", r_where, problems)
        snippet_obj = fields.obj(region, "snippet", r_where, problems)
        if snippet_obj is not None:
            snippet = fields.string(snippet_obj, "text", (*r_where, "snippet"), problems)
    return path is not None or start is not None, path, start, end, snippet


def _rule_named_in(message: str, run: _Run) -> str | None:
    """For results without a rule id (gitleaks 7): the longest rule id the message starts
    with ("AWS Access Key secret detected" → "AWS Access Key"), else the message's start."""
    named = [rule_id for rule_id in run.rules_by_id if message.startswith(rule_id)]
    if named:
        return max(named, key=len)
    return fields.clip(message.split("\n", 1)[0].strip(), 200)


def _properties(record: Mapping[str, Any]) -> dict[str, Any]:
    value = record.get("properties")
    return value if isinstance(value, dict) else {}


def _security_severity(properties: Mapping[str, Any]) -> float | None:
    """The ``security-severity`` score (0-10) when the property holds a number."""
    value = properties.get("security-severity")
    if type(value) is str:
        try:
            score = float(value)
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        score = float(value)
    else:
        return None
    return score if math.isfinite(score) and 0 <= score <= 10 else None


def _severity_of_score(score: float) -> Severity:
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0:
        return Severity.LOW
    return Severity.INFO


def _trivy_package(message: str) -> Package | None:
    """Trivy's SARIF names the package only in the message: ``Package: musl`` lines."""
    found = dict(_TRIVY_PACKAGE_LINE.findall(message))
    name = found.get("Package", "").strip()
    if not name or len(name) > fields.FIELD_LIMIT:
        return None
    version = found.get("Installed Version", "").strip() or None
    fixed = found.get("Fixed Version", "").strip() or None
    return Package(name, fields.clip(version, 200), fields.clip(fixed, 200))


def _title(rule: Mapping[str, Any], message: str, rule_id: str, *, secret: bool) -> str:
    """The rule's short description, else the message's first line, else the rule's name.

    A secret's message may quote the secret, so a secret's title never comes from it.
    """
    short = rule.get("shortDescription")
    if isinstance(short, dict) and isinstance(short.get("text"), str) and short["text"].strip():
        return fields.title(short["text"])
    first_line = message.strip().split("\n", 1)[0]
    if first_line and not secret:
        return fields.title(first_line)
    name = rule.get("name")
    if isinstance(name, str) and name.strip():
        return fields.title(name)
    return fields.title(rule_id)


def _confidence(rule_props: Mapping[str, Any], result_props: Mapping[str, Any]) -> str | None:
    for value in (result_props.get("issue_confidence"), rule_props.get("precision")):
        if isinstance(value, str) and 0 < len(value) <= 40:
            return value.lower()
    return None


def _merged_cwes(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    if not b or a == b:
        return a
    if not a:
        return b
    return tuple(sorted(set(a) | set(b), key=lambda cwe: int(cwe[4:])))


def _cwes(props: Mapping[str, Any]) -> tuple[str, ...]:
    """CWE ids named in a property bag's ``tags`` or ``cwe`` (CodeQL, Semgrep, ...)."""
    if not props:
        return ()
    found: set[int] = set()
    for key in ("tags", "cwe"):
        values = props.get(key)
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            continue
        for value in values[:50]:
            if isinstance(value, str):
                found.update(int(n) for n in _CWE.findall(value))
    return tuple(f"CWE-{n}" for n in sorted(found))


# --------------------------------------------------------------------------- the parser


def parse_document(origin: str, data: bytes, document: object, source: str | None = None) -> Report:
    """Normalize a parsed SARIF log; ``data`` are the bytes it was parsed from."""
    with paused_gc():
        return _parse(origin, data, document, source)


def _parse(origin: str, data: bytes, document: object, source: str | None) -> Report:
    doc = check_document(document, origin)
    problems = Problems()
    runs: list[_Run] = []
    for index, run in enumerate(doc["runs"]):
        if not isinstance(run, dict):
            problems.add(("runs", index), f"expected an object, got {type_name(run)}")
            continue
        runs.append(_Run(run, index, problems))
    if problems.items:
        raise problems_error(origin, "invalid SARIF log", problems.items, hint=REPORT_HINT)

    tools = list(dict.fromkeys(r.tool for r in runs))
    default = "-".join(tool_slug(t) for t in tools)[:63].strip("-._") or "sarif"
    source = check_source_name(source or default, origin)

    candidates: dict[tuple[str, ...], list[tuple[tuple[Any, ...], Finding]]] = {}
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
            candidate, secret = _result(run, result, where, source, problems)
            if secret:
                masked.add((run.index, r_index))
            if candidate is not None:
                identity, order, finding = candidate
                candidates.setdefault(identity, []).append((order, finding))
    if problems.items:
        raise problems_error(origin, "invalid SARIF log", problems.items, hint=REPORT_HINT)

    findings = _identified(source, candidates)
    first = runs[0] if runs else None
    run_docs = doc["runs"]
    return Report(
        format=ReportFormat.SARIF,
        source=source,
        tool=", ".join(tools) if tools else "sarif",
        tool_version=_tool_version(run_docs),
        scanned_at=_scanned_at(run_docs),
        artifact_name=_run_property(run_docs[0], "imageName") if first else None,
        artifact_type=None,
        image_digest=_image_digest(run_docs[0]) if first else None,
        findings=findings,
        raw=masked_copy(doc, masked) if masked else data,
        raw_suffix=".sarif",
        path=origin,
    )


def _identified(
    source: str, candidates: Mapping[tuple[str, ...], list[tuple[tuple[Any, ...], Finding]]]
) -> tuple[Finding, ...]:
    """Final findings: equal identities without an order key are one finding (the worst);
    with one (located results), each place in line order is its own finding, the first
    keeping the bare identity."""
    findings: list[Finding] = []
    for identity, group in candidates.items():
        if not group[0][0]:
            best = min(group, key=lambda g: _preference(g[1]))[1]
            findings.append(_with_id(best, fingerprint_of(source, identity)))
            continue
        places: dict[tuple[Any, ...], Finding] = {}
        for order, finding in group:
            held = places.get(order)
            if held is None or _preference(finding) < _preference(held):
                places[order] = finding
        for occurrence, order in enumerate(sorted(places)):
            parts = identity if occurrence == 0 else (*identity, str(occurrence))
            findings.append(_with_id(places[order], fingerprint_of(source, parts)))
    findings.sort(key=lambda f: (-f.severity.rank, f.id))
    return tuple(findings)


def fingerprint_of(source: str, identity: tuple[str, ...]) -> str:
    """The finding id for an identity (see :func:`securecase.models.fingerprint`)."""
    return fingerprint(source, *identity)


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


def _with_id(finding: Finding, finding_id: str) -> Finding:
    return replace(finding, id=finding_id)


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
                if isinstance(value, str) and 0 < len(value) <= 64:
                    return fields.utc(value)
    return None


def _run_property(run: object, key: str) -> str | None:
    properties = run.get("properties") if isinstance(run, dict) else None
    value = properties.get(key) if isinstance(properties, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 2000 else None


def _image_digest(run: object) -> str | None:
    value = _run_property(run, "imageID")
    return value if value and _DIGEST.match(value) else None
