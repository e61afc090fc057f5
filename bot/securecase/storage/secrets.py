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
from collections.abc import Iterator
from functools import cache
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import yaml
from defusedxml import ElementTree
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.keyword import KeywordDetector

from securecase.errors import StoreError
from securecase.storage.rawfile import deterministic_gzip

MIN_SECRET = 8  # shorter matches are words, not credentials
KEPT_PREFIX = 4  # characters of a long secret left visible, so a reader knows what it was
JSON_SUFFIXES = (".json", ".sarif")
XML_SUFFIXES = (".xml",)
YAML_SUFFIXES = (".yaml", ".yml")


class AwsSecretAssignment(RegexBasedDetector):
    """``AWS_SECRET_ACCESS_KEY=...`` without quotes, as shell and env files write it."""

    secret_type = "AWS Secret Access Key assignment"  # noqa: S105 - a name, not a secret
    denylist = (
        re.compile(r"(?i)aws_?secret_?(?:access_?)?key\s*[:=]\s*['\"]?([A-Za-z0-9/+]{40})\b"),
    )


@cache
def _detectors() -> tuple[BasePlugin, ...]:
    """detect-secrets' regex plugins (public IPs are not secrets), keywords, and ours."""
    plugins: list[BasePlugin] = []
    for plugin in get_mapping_from_secret_type_to_class().values():
        kind: type[Any] = plugin
        if issubclass(kind, RegexBasedDetector) and kind is not IPPublicDetector:
            plugins.append(kind())
    return (*plugins, KeywordDetector(), AwsSecretAssignment())


def find_secrets(text: str) -> set[str]:
    """Secret strings in ``text``, line by line."""
    found: set[str] = set()
    for line in text.splitlines():
        if len(line) < MIN_SECRET:
            continue
        for detector in _detectors():
            found.update(s for s in detector.analyze_string(line) if len(s) >= MIN_SECRET)
    return found


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
        inner = masked_file(path[: -len(".gz")], gzip.decompress(data))
        return deterministic_gzip(inner)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data  # not text: nothing a scanner quotes
    if path.endswith(JSON_SUFFIXES):
        new = _masked_json(text)
    else:
        new = _patched(
            text, find_secrets(text), _xml_forms if path.endswith(XML_SUFFIXES) else None
        )
    if new == text:
        return data
    _check_still_valid(path, text, new)
    return new.encode("utf-8")


def masked_text(text: str) -> str:
    """Plain text (a commit message) with its secrets masked."""
    return _patched(text, find_secrets(text), None)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _masked_json(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return _patched(text, find_secrets(text), _json_forms)
    secrets: set[str] = set()
    for value in set(_strings(doc)):
        if len(value) >= MIN_SECRET:
            secrets.update(find_secrets(value))
    fingerprints = _secret_fingerprints(doc, secrets)
    out = text
    for value in sorted(fingerprints, key=len, reverse=True):
        for form in {json.dumps(value), json.dumps(value, ensure_ascii=False)}:
            out = out.replace(form, json.dumps(fingerprint_digest(value)))
    return _patched(out, secrets, _json_forms)


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
            quotes = any(s in value for value in _strings(result) for s in secrets)
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
    for secret in sorted(secrets, key=len, reverse=True):
        covered = mask(secret)
        pairs = [(secret, covered)]
        if forms is not None:
            pairs += list(zip(forms(secret), forms(covered), strict=True))
        for before, after in pairs:
            text = text.replace(before, after)
    return text


def _check_still_valid(path: str, before: str, after: str) -> None:
    """Refuse to store a file that parsed before masking and does not after."""
    parse: Any = None
    if path.endswith(JSON_SUFFIXES):
        parse = json.loads
    elif path.endswith(YAML_SUFFIXES):
        parse = yaml.safe_load
    elif path.endswith(XML_SUFFIXES):
        parse = ElementTree.fromstring
    if parse is None:
        return
    try:
        parse(before)
    except Exception:  # noqa: BLE001 - not valid before: nothing to keep valid
        return
    try:
        parse(after)
    except Exception as exc:  # noqa: BLE001 - any parser's error means the same here
        raise StoreError(
            f"masking secrets in {path} would make it invalid: {exc}",
            hint="report this with the scanner's report attached (after removing its secrets)",
        ) from exc
