"""Case files: ``case.yaml`` (what people read and edit) and ``findings.json`` (the findings).

Both are deterministic: ``case.yaml`` through :mod:`securecase.storage.yamldoc` (contract key
order, block style), ``findings.json`` as canonical JSON (fixed key order, 2-space indent,
findings sorted by id, one trailing newline), so a rescan's diff shows only what changed.
Empty optional fields are left out. Every read is validated against the JSON Schemas; a file
a human broke is reported with ``file:line`` (YAML) or its JSON path and never overwritten.

A folder in the first layout (schema ``securecase/case/v1``: findings inside ``case.yaml``)
is refused by readers with a message saying what to do; the ingest of that subject reads it
(``old_layout=True``) and writes it back in this layout with every finding carried over.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from securecase.domain.case import (
    SCHEMA_ID,
    Case,
    CaseHeader,
    CaseSummary,
    Closed,
    CloseReason,
    ExceptionRef,
    GateRecord,
    Latest,
    Seen,
    SlaMark,
    SourceRecord,
    StaleScan,
    Status,
    Tracked,
    Triage,
    sort_key,
)
from securecase.domain.findings import Finding, Instance, Kind, Location, Package, Severity
from securecase.domain.subjects import Provider, Subject
from securecase.errors import CaseFileError
from securecase.storage import schemas, yamldoc

CASE_FILE = "case.yaml"
FINDINGS_FILE = "findings.json"
FINDINGS_SCHEMA_ID = "securecase/findings/v1"
#: The first layout: one case.yaml holding the findings too.
OLD_SCHEMA_ID = "securecase/case/v1"

_FIX_HINT = "fix the file by pull request (or revert the commit that broke it); it was not changed"


class CaseLayoutError(CaseFileError):
    """A case folder written in another layout than this version reads."""


def case_document(case: Case) -> dict[str, Any]:
    """The document written to ``case.yaml``, keys in contract order."""
    subject = case.subject
    subject_doc: dict[str, Any] = {
        "provider": subject.provider.value,
        "org": subject.org,
        "repo": subject.repo,
    }
    _put(subject_doc, "pr", subject.pr)
    _put(subject_doc, "branch", subject.branch)
    _put(subject_doc, "target_branch", subject.target_branch)
    latest = case.latest
    latest_doc: dict[str, Any] = {"commit": latest.commit}
    _put(latest_doc, "committed_at", latest.committed_at)
    latest_doc["run_url"] = latest.run_url
    latest_doc["image"] = {
        "name": latest.image_name,
        "tag": latest.image_tag,
        "digest": latest.image_digest,
    }
    _put(latest_doc, "scanned_at", latest.scanned_at)
    gate = case.gate
    gate_doc: dict[str, Any] = {"mode": gate.mode, "decision": gate.decision, "gate": gate.gate}
    if gate.policy_path is not None:
        gate_doc["policy"] = {"path": gate.policy_path, "blob": gate.policy_blob}
    gate_doc["rules"] = list(gate.rules)
    gate_doc["reasons"] = list(gate.reasons)
    max_severity = case.max_severity
    doc: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "key": case.key,
        "subject": subject_doc,
        "status": case.status.value,
    }
    if case.closed is not None:
        doc["closed"] = {"reason": case.closed.reason.value, "at": case.closed.at}
    doc |= {
        "reopened": case.reopened,
        "triage": {
            "assignee": case.triage.assignee,
            "tags": list(case.triage.tags),
            "notes": case.triage.notes,
        },
        "latest": latest_doc,
        "counts": case.counts,
        "max_severity": max_severity.value if max_severity else None,
        "gate": gate_doc,
        "sources": {name: _source_doc(rec) for name, rec in case.sources.items()},
    }
    if case.stale_scans:
        doc["stale_scans"] = [_stale_doc(s) for s in case.stale_scans]
    if case.notified:
        doc["notified"] = list(case.notified)
    doc["created_at"] = case.created_at
    doc["updated_at"] = case.updated_at
    return doc


def findings_document(case: Case) -> dict[str, Any]:
    """The document written to ``findings.json``: open and resolved findings, each by id."""
    return {
        "schema": FINDINGS_SCHEMA_ID,
        "findings": [_tracked_doc(t) for t in sorted(case.findings, key=_by_id)],
        "resolved": [_tracked_doc(t) for t in sorted(case.resolved, key=_by_id)],
    }


def case_data(case: Case) -> dict[str, Any]:
    """The whole case as one JSON document (``cases show --output json``): case.yaml's keys,
    then ``findings`` and ``resolved`` as findings.json holds them."""
    findings_doc = findings_document(case)
    return {
        **case_document(case),
        "findings": findings_doc["findings"],
        "resolved": findings_doc["resolved"],
    }


def _refuse_non_finite(case: Case) -> None:
    """NaN and infinities have no place in a case (JSON has no spelling for them, YAML would
    store ``.nan``); a score that is not a number is refused, never written."""
    for tracked in (*case.findings, *case.resolved):
        score = tracked.finding.cvss
        if score is not None and not math.isfinite(score):
            raise CaseFileError(
                f"finding {tracked.finding.advisory} ({tracked.finding.source}): CVSS score "
                f"{score!r} is not a finite number; the case was not written",
                hint="the report holds a score that is not a number: fix it at the scanner",
            )


def dump_case(case: Case) -> dict[str, bytes]:
    """The files of a case folder (name -> bytes, ``raw/`` aside); same case, same bytes.

    Both documents are checked against their schemas first: an invalid case is a bug here,
    never written.
    """
    _refuse_non_finite(case)
    case_doc = case_document(case)
    findings_doc = findings_document(case)
    found = [
        *schemas.problems(case_doc, schemas.CASE, path=CASE_FILE),
        *schemas.problems(findings_doc, schemas.FINDINGS, path=FINDINGS_FILE),
    ]
    if found:
        raise AssertionError("securecase built an invalid case:\n" + "\n".join(found))
    return {
        CASE_FILE: yamldoc.dump(case_doc).encode("utf-8"),
        FINDINGS_FILE: canonical_json(findings_doc),
    }


#: orjson writes integers of at most 64 bits; JSON readers differ beyond 53 anyway.
_INT_BOUND = 2**63


def canonical_json(findings_doc: dict[str, Any]) -> bytes:
    """The canonical ``findings.json`` bytes: keys in insertion order, 2-space indent, UTF-8
    text unescaped, one trailing newline (the same bytes as the standard library's
    ``json.dumps(indent=2, ensure_ascii=False)``, whose indented output is pure Python and
    takes tens of milliseconds for a thousand findings; orjson takes one)."""
    try:
        return orjson.dumps(findings_doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        for parts, number in _big_integers(findings_doc, ()):
            finding = findings_doc[str(parts[0])][parts[1]] if len(parts) > 2 else {}
            raise CaseFileError(
                f"finding {finding.get('advisory', '?')} of source "
                f"{finding.get('source', '?')}: {schemas.json_path(parts[2:])}: the number "
                f"{yamldoc.clip(str(number), 40)} is beyond the 64-bit range a case file "
                "holds; the case was not written",
                hint="the report holds a number no scanner writes (a line number?): "
                "check the report at its source",
            ) from None
        raise


def _big_integers(
    value: Any, parts: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], int]]:
    """Every integer of ``value`` outside the 64-bit range, with its path of keys and indices."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _big_integers(item, (*parts, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _big_integers(item, (*parts, index))
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_BOUND:
        yield parts, value


def load_case_header(case_yaml: bytes, *, folder: str, old_layout: bool = False) -> CaseHeader:
    """What ``case.yaml`` says, without reading the findings (for listings and history).

    With ``old_layout``, a ``case.yaml`` of the first layout is read too (history spans it).
    """
    doc, _ = case_yaml_document(case_yaml, folder=folder, old_layout=old_layout)
    return header_from_document(doc)


def load_case(
    case_yaml: bytes, findings_json: bytes | None, *, folder: str, old_layout: bool = False
) -> Case:
    """The case in a folder's ``case.yaml`` and ``findings.json`` bytes.

    CaseFileError names ``folder/case.yaml:LINE`` or ``folder/findings.json`` and the JSON
    path of every problem. With ``old_layout``, a ``case.yaml`` of the first layout (findings
    inside, no ``findings.json``) is read too, so the caller can write it back in this one.
    """
    doc, located = case_yaml_document(case_yaml, folder=folder, old_layout=old_layout)
    if located is not None:  # the first layout: the findings came with case.yaml
        if findings_json is not None:
            raise CaseLayoutError(
                f"{folder}: {CASE_FILE} is in the first layout ({OLD_SCHEMA_ID}, findings "
                f"inside) but {FINDINGS_FILE} exists beside it",
                hint=f"restore {CASE_FILE} from the commit that wrote {FINDINGS_FILE}",
            )
        findings_doc = {
            "schema": FINDINGS_SCHEMA_ID,
            "findings": located.data.get("findings"),
            "resolved": located.data.get("resolved"),
        }
        found = schemas.problems(
            findings_doc,
            schemas.FINDINGS,
            path=f"{folder}/{CASE_FILE}",
            line_of=lambda parts: yamldoc.line_of(located.node, parts),
        )
        if found:
            raise CaseFileError(
                f"{folder}/{CASE_FILE}: the findings do not match schema {FINDINGS_SCHEMA_ID}",
                problems=found,
                hint=_FIX_HINT,
            )
    else:
        if findings_json is None:
            raise findings_missing(folder)
        findings_doc = findings_document_of(findings_json, folder=folder)
    return case_from_documents(doc, findings_doc)


def findings_missing(folder: str) -> CaseFileError:
    """The error for a case folder whose ``findings.json`` is gone."""
    return CaseFileError(
        f"{folder}/{FINDINGS_FILE}: missing ({CASE_FILE} is there)",
        hint=f"restore {FINDINGS_FILE} from the git history of the cases repo",
    )


def case_from_documents(case_doc: dict[str, Any], findings_doc: dict[str, Any]) -> Case:
    """The case of a validated ``case.yaml`` document and a validated findings document."""
    return case_with_findings(header_from_document(case_doc), findings_doc)


def case_with_findings(header: CaseHeader, findings_doc: dict[str, Any]) -> Case:
    """The case of a ``case.yaml`` header and a validated findings document."""
    return Case(
        subject=header.subject,
        status=header.status,
        triage=header.triage,
        latest=header.latest,
        gate=header.gate,
        sources=header.sources,
        findings=_tracked_list(findings_doc["findings"]),
        resolved=_tracked_list(findings_doc["resolved"]),
        created_at=header.created_at,
        updated_at=header.updated_at,
        reopened=header.reopened,
        stale_scans=header.stale_scans,
        closed=header.closed,
        notified=header.notified,
    )


def case_yaml_document(
    data: bytes, *, folder: str, old_layout: bool = False
) -> tuple[dict[str, Any], yamldoc.Located | None]:
    """The validated case.yaml document; for the first layout also its parse (with findings).

    The document is plain JSON data (what the parse caches keep): ``(doc, None)`` for this
    layout, ``(doc without findings, parse)`` for the first one (``old_layout`` only).
    """
    path = f"{folder}/{CASE_FILE}"
    try:
        located = yamldoc.load_located(data, path=path)
    except yamldoc.YamlError as exc:
        raise CaseFileError(
            f"{path}: the case file is not valid YAML", problems=[exc.message], hint=_FIX_HINT
        ) from exc
    doc = located.data
    first_layout = isinstance(doc, dict) and doc.get("schema") == OLD_SCHEMA_ID
    if first_layout and not old_layout:
        raise CaseLayoutError(
            f"{folder}: the case is in the first layout ({CASE_FILE} of schema {OLD_SCHEMA_ID}, "
            f"findings inside); this version reads {CASE_FILE} ({SCHEMA_ID}) with "
            f"{FINDINGS_FILE} beside it",
            hint="run `securecase ingest` for this subject once (its next scan): it rewrites "
            "the folder in the new layout and carries every finding over",
        )
    if first_layout:
        doc = {k: v for k, v in doc.items() if k not in ("findings", "resolved")}
        doc["schema"] = SCHEMA_ID
    found = schemas.problems(
        doc, schemas.CASE, path=path, line_of=lambda parts: yamldoc.line_of(located.node, parts)
    )
    if found:
        raise CaseFileError(
            f"{path}: the case file does not match schema {SCHEMA_ID}",
            problems=found,
            hint=_FIX_HINT,
        )
    return doc, located if first_layout else None


def findings_document_of(data: bytes, *, folder: str, checked: bool = False) -> dict[str, Any]:
    """The findings document in ``findings.json`` bytes, validated against its schema unless
    ``checked`` (these very bytes were found valid before: a cache hit by blob id)."""
    path = f"{folder}/{FINDINGS_FILE}"
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CaseFileError(
            f"{path}: not valid JSON", problems=[yamldoc.clip(str(exc))], hint=_FIX_HINT
        ) from exc
    found = [] if checked else schemas.problems(doc, schemas.FINDINGS, path=path)
    if found:
        raise CaseFileError(
            f"{path}: the findings file does not match schema {FINDINGS_SCHEMA_ID}",
            problems=found,
            hint=_FIX_HINT,
        )
    return doc


def summary_document(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a validated ``case.yaml`` document a listing needs (see
    :func:`summary_from_document`)."""
    return {
        "subject": doc["subject"],
        "status": doc["status"],
        "decision": doc["gate"]["decision"],
        "counts": doc["counts"],
        "updated_at": doc["updated_at"],
    }


def _subject_from(subj: dict[str, Any]) -> Subject:
    return Subject(
        provider=Provider(subj["provider"]),
        org=subj["org"],
        repo=subj["repo"],
        pr=subj.get("pr"),
        branch=subj.get("branch"),
        target_branch=subj.get("target_branch"),
    )


def summary_from_document(doc: dict[str, Any]) -> CaseSummary:
    """The listing line of a :func:`summary_document`."""
    subject = _subject_from(doc["subject"])
    return CaseSummary(
        key=subject.key,
        subject=subject,
        status=Status(doc["status"]),
        decision=doc["decision"],
        counts={name: _integer(n) for name, n in doc["counts"].items()},
        updated_at=doc["updated_at"],
    )


def header_from_document(doc: dict[str, Any]) -> CaseHeader:
    """The header a validated ``case.yaml`` document describes."""
    subject = _subject_from(doc["subject"])
    latest = doc["latest"]
    image = latest.get("image") or {}
    gate = doc["gate"]
    policy = gate.get("policy") or {}
    triage = doc["triage"]
    worst = doc["max_severity"]
    closed = doc.get("closed")
    return CaseHeader(
        subject=subject,
        status=Status(doc["status"]),
        reopened=doc.get("reopened", 0),
        triage=Triage(
            assignee=triage.get("assignee"),
            tags=tuple(triage.get("tags", ())),
            notes=triage.get("notes"),
        ),
        latest=Latest(
            commit=latest.get("commit"),
            committed_at=latest.get("committed_at"),
            run_url=latest.get("run_url"),
            image_name=image.get("name"),
            image_tag=image.get("tag"),
            image_digest=image.get("digest"),
            scanned_at=latest.get("scanned_at"),
        ),
        gate=GateRecord(
            mode=gate["mode"],
            decision=gate["decision"],
            gate=gate["gate"],
            policy_path=policy.get("path"),
            policy_blob=policy.get("blob"),
            rules=tuple(gate.get("rules", ())),
            reasons=tuple(gate.get("reasons", ())),
        ),
        sources={name: _source_from(rec) for name, rec in doc["sources"].items()},
        counts={name: _integer(n) for name, n in doc["counts"].items()},
        max_severity=Severity(worst) if worst is not None else None,
        stale_scans=tuple(
            StaleScan(
                commit=s.get("commit"),
                scanned_at=s.get("scanned_at"),
                received_at=s["received_at"],
                sources=tuple(s["sources"]),
            )
            for s in doc.get("stale_scans", ())
        ),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        closed=Closed(CloseReason(closed["reason"]), closed["at"]) if closed else None,
        notified=tuple(doc.get("notified", ())),
    )


def _by_id(tracked: Tracked) -> str:
    return tracked.finding.id


def _tracked_list(items: Sequence[dict[str, Any]]) -> tuple[Tracked, ...]:
    # The file is sorted by id (stable diffs); the case keeps worst first (domain order).
    return tuple(sorted((_tracked_from(item) for item in items), key=sort_key))


def _put(doc: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        doc[key] = value


def _source_doc(rec: SourceRecord) -> dict[str, Any]:
    return {
        "tool": rec.tool,
        "version": rec.version,
        "format": rec.format,
        "raw": rec.raw,
        "sha256": rec.sha256,
        "scanned_at": rec.scanned_at,
        "commit": rec.commit,
        "artifact": rec.artifact,
        "findings": rec.findings,
        **({"incomplete": list(rec.incomplete)} if rec.incomplete else {}),
    }


def _source_from(doc: dict[str, Any]) -> SourceRecord:
    return SourceRecord(
        tool=doc["tool"],
        version=doc.get("version"),
        format=doc.get("format", "trivy"),
        raw=doc["raw"],
        sha256=doc["sha256"],
        scanned_at=doc.get("scanned_at", ""),
        commit=doc.get("commit"),
        artifact=doc.get("artifact"),
        findings=doc.get("findings", 0),
        incomplete=tuple(doc.get("incomplete", ())),
    )


def _seen_doc(seen: Seen) -> dict[str, Any]:
    return {"commit": seen.commit, "at": seen.at} if seen.commit else {"at": seen.at}


def _tracked_doc(tracked: Tracked) -> dict[str, Any]:
    f = tracked.finding
    doc: dict[str, Any] = {
        "id": f.id,
        "source": f.source,
        "kind": f.kind.value,
        "advisory": f.advisory,
        "severity": f.severity.value,
        "title": f.title,
    }
    if f.package is not None:
        pkg: dict[str, Any] = {"name": f.package.name}
        _put(pkg, "version", f.package.version)
        _put(pkg, "fixed_version", f.package.fixed_version)
        _put(pkg, "purl", f.package.purl)
        doc["package"] = pkg
    if f.location is not None:
        loc: dict[str, Any] = {}
        _put(loc, "path", f.location.path)
        _put(loc, "start_line", f.location.start_line)
        _put(loc, "end_line", f.location.end_line)
        _put(loc, "url", f.location.url)
        doc["location"] = loc
    _put(doc, "cvss", f.cvss)
    if f.suppressed:
        doc["suppressed"] = True
    _put(doc, "confidence", f.confidence)
    if f.cwe:
        doc["cwe"] = list(f.cwe)
    _put(doc, "wasc", f.wasc)
    if f.instances:
        doc["instances"] = [_instance_doc(i) for i in f.instances]
    _put(doc, "instance_count", f.instance_count)
    doc["first_seen"] = _seen_doc(tracked.first_seen)
    _put(doc, "new", tracked.new)
    if tracked.exception is not None:
        doc["exception"] = {"id": tracked.exception.id, "expires": tracked.exception.expires}
    if tracked.sla is not None:
        doc["sla"] = {"due": tracked.sla.due, "breached": tracked.sla.breached}
    if tracked.resolved is not None:
        doc["resolved"] = _seen_doc(tracked.resolved)
    return doc


def _tracked_from(doc: dict[str, Any]) -> Tracked:
    pkg = doc.get("package")
    loc = doc.get("location")
    finding = Finding(
        id=doc["id"],
        source=doc["source"],
        kind=Kind(doc["kind"]),
        advisory=doc["advisory"],
        severity=Severity(doc["severity"]),
        title=doc["title"],
        package=Package(
            name=pkg["name"],
            version=pkg.get("version"),
            fixed_version=pkg.get("fixed_version"),
            purl=pkg.get("purl"),
        )
        if pkg is not None
        else None,
        location=Location(
            path=loc.get("path"),
            start_line=_integer(loc.get("start_line")),
            end_line=_integer(loc.get("end_line")),
            url=loc.get("url"),
        )
        if loc is not None
        else None,
        cvss=float(doc["cvss"]) if "cvss" in doc else None,
        suppressed=doc.get("suppressed", False),
        confidence=doc.get("confidence"),
        cwe=tuple(doc.get("cwe", ())),
        wasc=doc.get("wasc"),
        instances=tuple(
            Instance(method=i.get("method"), uri=i.get("uri"), param=i.get("param"))
            for i in doc.get("instances", ())
        ),
        instance_count=_integer(doc.get("instance_count")),
    )
    first = doc["first_seen"]
    resolved = doc.get("resolved")
    exception = doc.get("exception")
    sla = doc.get("sla")
    return Tracked(
        finding=finding,
        first_seen=Seen(first.get("commit"), first["at"]),
        resolved=Seen(resolved.get("commit"), resolved["at"]) if resolved else None,
        new=doc.get("new"),
        exception=ExceptionRef(exception["id"], exception["expires"]) if exception else None,
        sla=SlaMark(sla["due"], sla["breached"]) if sla else None,
    )


def _integer(value: Any) -> Any:
    """An integer the schema let through as ``5.0``, as 5: values keep one type per field."""
    return int(value) if type(value) is float else value


def _instance_doc(instance: Instance) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    _put(doc, "method", instance.method)
    _put(doc, "uri", instance.uri)
    _put(doc, "param", instance.param)
    return doc


def _stale_doc(stale: StaleScan) -> dict[str, Any]:
    doc: dict[str, Any] = {"commit": stale.commit}
    _put(doc, "scanned_at", stale.scanned_at)
    doc["received_at"] = stale.received_at
    doc["sources"] = list(stale.sources)
    return doc
