"""``case.yaml``: the case as a deterministic YAML document, validated on read and write.

Key order follows the design contract; empty optional fields are left out so a finding stays a
few lines. A file a human broke is reported with ``file:line`` and never overwritten. Given a
:class:`~securecase.storage.casecache.CaseCache`, reading takes a document this code validated before
for the very same bytes instead of parsing them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from securecase.domain.case import (
    SCHEMA_ID,
    Case,
    ExceptionRef,
    GateRecord,
    Latest,
    Seen,
    SourceRecord,
    StaleScan,
    Status,
    Tracked,
    Triage,
)
from securecase.domain.findings import Finding, Instance, Kind, Location, Package, Severity
from securecase.domain.subjects import Provider, Subject
from securecase.errors import CaseFileError
from securecase.storage import schemas, yamlfast, yamlio

if TYPE_CHECKING:
    from securecase.storage.casecache import CaseCache

CASE_FILE = "case.yaml"


def case_to_dict(case: Case) -> dict[str, Any]:
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
        "findings": [_tracked_doc(t) for t in case.findings],
        "resolved": [_tracked_doc(t) for t in case.resolved],
    }
    if case.stale_scans:
        doc["stale_scans"] = [_stale_doc(s) for s in case.stale_scans]
    doc["created_at"] = case.created_at
    doc["updated_at"] = case.updated_at
    return doc


def dump_case(
    case: Case, *, cache: CaseCache | None = None, previous: bytes | None = None
) -> bytes:
    """Serialize and self-check a case; the same case always gives the same bytes.

    With ``cache``, the document is remembered for the bytes, so reading them back is quick.
    ``previous`` (the bytes of the case this one updates, read through the same cache) lets
    the findings it already holds, unchanged, be copied rather than written and checked again.
    """
    doc = case_to_dict(case)
    written: dict[str, list[str | None]] | None = None
    checked = doc
    earlier = cache.emitted(previous) if cache is not None and previous is not None else None
    if earlier is not None and previous is not None:
        written, checked = _unchanged_items(doc, earlier, previous)
    if not schemas.is_valid(checked, schemas.CASE):
        found = schemas.problems(doc, schemas.CASE, text="", path=CASE_FILE)
        raise AssertionError("securecase built an invalid case:\n" + "\n".join(found))
    data = yamlio.dump(doc, written).encode("utf-8")
    if cache is not None:
        cache.put(data, doc, written=True)
    return data


#: Lists of case.yaml whose schema checks each item alone ({"type": "array", "items": ...}),
#: so an item equal to one of an already valid document needs no check.
ITEM_LISTS = ("findings", "resolved")


def _unchanged_items(
    doc: dict[str, Any], earlier: dict[str, Any], text: bytes
) -> tuple[dict[str, list[str | None]], dict[str, Any]]:
    """For each item list: the text written for items equal to ``earlier``'s (None for the
    others), and ``doc`` with only the other items left in those lists, to be checked.

    ``earlier`` is the valid document ``text`` was written from. Equal items give equal text
    because a document's values have fixed Python types per field (``case_to_dict``): an
    integer field never holds 1.0, a boolean never 1.
    """
    written: dict[str, list[str | None]] = {}
    checked = dict(doc)
    decoded = text.decode("utf-8")
    for key in ITEM_LISTS:
        before = earlier.get(key) or []
        blocks = yamlfast.sequence_items(decoded, key) if before else None
        if blocks is None or len(blocks) != len(before):
            continue
        known = {item["id"]: (item, block) for item, block in zip(before, blocks, strict=True)}
        texts: list[str | None] = []
        changed = []
        for item in doc[key]:
            match = known.get(item["id"])
            # The block's first line names the same id: a cheap check that blocks and items
            # line up (they do by construction).
            if match is not None and match[0] == item and match[1].startswith(_id_line(item)):
                texts.append(match[1])
            else:
                texts.append(None)
                changed.append(item)
        written[key] = texts
        checked[key] = changed
    return written, checked


def load_case(data: bytes, *, path: str, cache: CaseCache | None = None) -> Case:
    """Parse ``case.yaml`` bytes; CaseFileError with ``path:line`` for every problem.

    With ``cache``, a document validated earlier for these exact bytes is used when there is
    one, and a freshly validated one is stored.
    """
    if cache is not None:
        entry = cache.get(data)
        if entry is not None:
            try:
                case = case_from_dict(entry[0])
            except (KeyError, TypeError, ValueError, AttributeError):
                pass  # not what this version stores: parse the bytes
            else:
                cache.used(data, *entry)
                return case
    hint = "fix the file by pull request (or revert the commit that broke it); it was not changed"
    try:
        doc, plain = yamlio.load_document(data, path=path)
    except CaseFileError:
        raise
    except Exception as exc:
        raise CaseFileError(
            f"{path}: the case file is not valid YAML", problems=[str(exc)], hint=hint
        ) from exc
    if not schemas.is_valid(doc, schemas.CASE):
        found = schemas.problems(doc, schemas.CASE, text=data, path=path)
        raise CaseFileError(
            f"{path}: the case file does not match schema {SCHEMA_ID}", problems=found, hint=hint
        )
    if not all(type(name) is str for name in doc["sources"]):
        # The one mapping whose keys the schema leaves open; YAML reads `123:` as a number.
        line = yamlio.locate(data, ["sources"])
        raise CaseFileError(
            f"{path}:{line or '?'}: $.sources: source names must be strings", hint=hint
        )
    case = case_from_dict(doc)
    if cache is not None and plain:
        cache.put(data, doc)
    return case


def case_from_dict(doc: dict[str, Any]) -> Case:
    """Build a :class:`Case` from a schema-valid document."""
    subj = doc["subject"]
    subject = Subject(
        provider=Provider(subj["provider"]),
        org=subj["org"],
        repo=subj["repo"],
        pr=subj.get("pr"),
        branch=subj.get("branch"),
        target_branch=subj.get("target_branch"),
    )
    latest = doc["latest"]
    image = latest.get("image") or {}
    gate = doc["gate"]
    policy = gate.get("policy") or {}
    triage = doc["triage"]
    return Case(
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
        findings=tuple(_tracked_from(item) for item in doc["findings"]),
        resolved=tuple(_tracked_from(item) for item in doc["resolved"]),
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
    )


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
        # only when the scan did not complete, so complete sources stay as they were
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
    return Tracked(
        finding=finding,
        first_seen=Seen(first.get("commit"), first["at"]),
        resolved=Seen(resolved.get("commit"), resolved["at"]) if resolved else None,
        new=doc.get("new"),
        exception=ExceptionRef(exception["id"], exception["expires"]) if exception else None,
    )


def _id_line(item: dict[str, Any]) -> tuple[str, str]:
    """The first line the emitter writes for a list item with this id (plain or quoted)."""
    oid = item["id"]
    return f"  - id: {oid}\n", f'  - id: "{oid}"\n'


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
