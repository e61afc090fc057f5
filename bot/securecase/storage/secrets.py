"""Masking secrets in every byte the cases repo stores, whatever the scanner classed them as.

Scanners quote code: an IaC scanner reports the resource block around a misconfiguration, keys
included, in a finding that is not about secrets at all. Before a change is committed, every
string of every file (case files, raw reports of every format, the commit message) goes through
one detector: the regex plugins of ``detect-secrets`` (Yelp), its keyword detector, and one
rule of ours for unquoted AWS secret key assignments. Each match is replaced by a mask of the
same characters class (ASCII ``*``), inside string values only, so the stored file stays valid
for its format; a file that would not parse afterwards is refused rather than stored. SARIF
``partialFingerprints`` of secret results are replaced by their SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import yaml
from defusedxml import ElementTree

from securecase.errors import StoreError
from securecase.storage.rawfile import deterministic_gzip

MIN_SECRET = 8  # shorter matches are words, not credentials
KEPT_PREFIX = 4  # characters of a long secret left visible, so a reader knows what it was
JSON_SUFFIXES = (".json", ".sarif")
XML_SUFFIXES = (".xml",)
YAML_SUFFIXES = (".yaml", ".yml")


#: ``AWS_SECRET_ACCESS_KEY=...`` without quotes, as shell and env files write it (a pattern
#: detect-secrets' AWS plugin, which wants quotes, does not cover).
AWS_SECRET_ASSIGNMENT = re.compile(
    r"aws_?secret_?(?:access_?)?key\s*[:=]\s*['\"]?([A-Za-z0-9/+]{40})\b", re.IGNORECASE
)


@dataclass(frozen=True)
class _Scanner:
    """detect-secrets' regex plugins (public IPs are not secrets), ours, and its keyword
    detector with a pattern that finds its keywords (every pattern of that detector contains
    one, case ignored: a line without any cannot match it, so its patterns are not run)."""

    plugins: tuple[Any, ...]
    keyword_detector: Any
    keywords: re.Pattern[str]


@cache
def _scanner() -> _Scanner:
    # Imported on the first text to scan: detect-secrets takes a third of a second to import,
    # which commands that store nothing (listings, reports, a sweep with nothing to change)
    # need not pay.
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.ip_public import IPPublicDetector
    from detect_secrets.plugins.keyword import DENYLIST as KEYWORDS
    from detect_secrets.plugins.keyword import KeywordDetector

    class AwsSecretAssignment(RegexBasedDetector):
        secret_type = "AWS Secret Access Key assignment"  # noqa: S105 - a name, not a secret
        denylist = (AWS_SECRET_ASSIGNMENT,)

    classes: dict[str, type[Any]] = get_mapping_from_secret_type_to_class()
    plugins = [
        kind()
        for kind in classes.values()
        if issubclass(kind, RegexBasedDetector) and kind is not IPPublicDetector
    ]
    return _Scanner(
        plugins=(*plugins, AwsSecretAssignment()),
        keyword_detector=KeywordDetector(),
        keywords=re.compile("|".join(KEYWORDS), re.IGNORECASE),
    )


def find_secrets(text: str) -> set[str]:
    """Secret strings in ``text``, each distinct line scanned once."""
    return _secrets_in_lines(set(text.splitlines()))


def _secrets_in_lines(lines: set[str]) -> set[str]:
    found: set[str] = set()
    for line in lines:
        if len(line) >= MIN_SECRET:
            found.update(_secrets_in_line(line))
    return found


# A case's findings.json quotes the texts of the raw report the same run scanned (titles,
# descriptions, code excerpts): each distinct line is scanned once per run.
@lru_cache(maxsize=1 << 18)
def _secrets_in_line(line: str) -> frozenset[str]:
    scanner = _scanner()
    detectors = scanner.plugins
    if scanner.keywords.search(line):
        detectors = (*detectors, scanner.keyword_detector)
    found: set[str] = set()
    for detector in detectors:
        found.update(s for s in detector.analyze_string(line) if len(s) >= MIN_SECRET)
    return frozenset(found)


def mask(secret: str) -> str:
    """What replaces ``secret``: its first characters (when long and plain), then ``*``."""
    keep = KEPT_PREFIX if len(secret) >= 16 and secret[:KEPT_PREFIX].isalnum() else 0
    return secret[:keep] + "*" * (len(secret) - keep)


def fingerprint_digest(value: str) -> str:
    """The stored form of a secret result's fingerprint."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def masked_file(path: str, data: bytes) -> bytes:
    """``data`` as stored at ``path``: secrets masked, still valid for its format."""
    if path.endswith(".gz"):
        plain = gzip.decompress(data)
        inner = masked_file(path[: -len(".gz")], plain)
        return data if inner == plain else deterministic_gzip(inner)
    try:
        return _masked_as(_format_of(path), data)
    except _BrokenByMasking as exc:
        raise StoreError(
            f"masking secrets in {path} would make it invalid: {exc}",
            hint="report this with the scanner's report attached (after removing its secrets)",
        ) from exc


def _format_of(path: str) -> str:
    if path.endswith(JSON_SUFFIXES):
        return "json"
    if path.endswith(YAML_SUFFIXES):
        return "yaml"
    return "xml" if path.endswith(XML_SUFFIXES) else "text"


class _BrokenByMasking(ValueError):
    """A file that parsed before masking and does not after (the message: the parser's)."""


# Ingest masks a raw report to record its digest, then the store masks every file it commits,
# once per attempt, under the report's path in the case folder: keyed by format and bytes
# (not path), the same bytes are scanned once per run.
@lru_cache(maxsize=4)
def _masked_as(fmt: str, data: bytes) -> bytes:
    # Bytes that are not UTF-8 are kept as they are around what is scanned (a report in
    # another encoding still has its ASCII credentials found).
    text = data.decode("utf-8", "surrogateescape")
    if fmt == "json":
        new = _masked_json(text)
    else:
        new = _patched(text, find_secrets(text), _xml_forms if fmt == "xml" else None)
    if new == text:
        return data
    _check_still_valid(fmt, text, new)
    return new.encode("utf-8", "surrogateescape")


def masked_text(text: str) -> str:
    """Plain text (a commit message) with its secrets masked."""
    return _patched(text, find_secrets(text), None)


def _strings(value: Any) -> set[str]:
    """Every distinct string of a JSON document, keys included (walked without recursion:
    a report nests deeply and holds hundreds of thousands of values)."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, dict):
            found.update(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _masked_json(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return _patched(text, find_secrets(text), _json_forms)
    # Each distinct line of every string once: a report repeats the same texts many times.
    lines = {
        line for value in _strings(doc) if len(value) >= MIN_SECRET for line in value.splitlines()
    }
    secrets = _secrets_in_lines(lines)
    digests = {}
    for value in _secret_fingerprints(doc, secrets):
        for form in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
            digests[form] = json.dumps(fingerprint_digest(value))
    return _patched(_replaced(text, digests), secrets, _json_forms)


def _secret_fingerprints(doc: Any, secrets: set[str]) -> set[str]:
    """``partialFingerprints`` values of SARIF results that are about, or quote, a secret."""
    found: set[str] = set()
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        return found
    for run in doc["runs"]:
        if not isinstance(run, dict) or not isinstance(run.get("results"), list):
            continue
        for result in run["results"]:
            if not isinstance(result, dict):
                continue
            prints = result.get("partialFingerprints")
            if not isinstance(prints, dict):
                continue
            about = str(result.get("ruleId", "")) + json.dumps(result.get("properties", {}))
            quotes = bool(secrets) and any(s in v for v in _strings(result) for s in secrets)
            if "secret" in about.lower() or quotes:
                found.update(v for v in prints.values() if isinstance(v, str))
    return found


def _json_forms(value: str) -> list[str]:
    quoted = json.dumps(value, ensure_ascii=False)[1:-1]
    return [quoted, quoted.replace("/", "\\/"), json.dumps(value)[1:-1]]


def _xml_forms(value: str) -> list[str]:
    return [xml_escape(value), xml_escape(value, {'"': "&quot;", "'": "&apos;"})]


def _patched(text: str, secrets: set[str], forms: Any) -> str:
    """``text`` with every form of every secret replaced by the same form of its mask."""
    replacements = {}
    for secret in secrets:
        covered = mask(secret)
        replacements[secret] = covered
        if forms is not None:
            replacements.update(zip(forms(secret), forms(covered), strict=True))
    return _replaced(text, replacements)


def _replaced(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each key of ``replacements`` replaced by its value, in one pass over the
    text (a report holding hundreds of secrets is not copied once per secret); where keys
    overlap, the longest wins."""
    wanted = {before: after for before, after in replacements.items() if before != after}
    if not wanted:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in sorted(wanted, key=len, reverse=True)))
    return pattern.sub(lambda match: wanted[match.group(0)], text)


def _check_still_valid(fmt: str, before: str, after: str) -> None:
    """Refuse to store a file that parsed before masking and does not after."""
    parsers: dict[str, Any] = {
        "json": json.loads,
        "yaml": yaml.safe_load,
        "xml": ElementTree.fromstring,
    }
    parse = parsers.get(fmt)
    if parse is None:
        return
    try:
        parse(before)
    except Exception:  # noqa: BLE001 - not valid before: nothing to keep valid
        return
    try:
        parse(after)
    except Exception as exc:  # noqa: BLE001 - any parser's error means the same here
        raise _BrokenByMasking(str(exc)) from exc
