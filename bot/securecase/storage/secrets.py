"""Masking secrets in every byte the cases repo stores, whatever the scanner classed them as.

Scanners quote code: an IaC scanner reports the resource block around a misconfiguration, keys
included, in a finding that is not about secrets at all. Before a change is committed, every
string of every file (case files, raw reports of every format, the commit message) goes through
one detector: Trivy's built-in secret rules, carried over as data with a few rules of ours
(``data/secret-rules.json`` names their source and every adaptation). As in Trivy, a rule's
regex runs only on a text holding one of its keywords (a literal, case-ignored substring
search), and is compiled the first time it runs. Each match is replaced by a mask (ASCII ``*``),
inside string values only, so the stored file stays valid for its format; a file that would not
parse afterwards is refused rather than stored. SARIF ``partialFingerprints`` of secret results
are replaced by their SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

from securecase.errors import StoreError
from securecase.storage.rawfile import deterministic_gzip

MIN_SECRET = 8  # shorter matches are words, not credentials
KEPT_PREFIX = 4  # characters of a long secret left visible, so a reader knows what it was
JSON_SUFFIXES = (".json", ".sarif")
XML_SUFFIXES = (".xml",)
YAML_SUFFIXES = (".yaml", ".yml")
RULES_FILE = Path(__file__).resolve().parents[1] / "data" / "secret-rules.json"


@dataclass(frozen=True)
class SecretRule:
    """One detection rule of ``data/secret-rules.json``: ``regex`` runs only on a text that
    holds one of ``keywords`` (lower case); the ``secret_group`` of a match (else the whole
    match, less the quotes at its ends) is the secret, unless an ``allow`` regex finds the
    whole match."""

    id: str
    title: str
    keywords: tuple[str, ...]
    regex: str
    secret_group: str | None
    allow: tuple[str, ...]

    def secrets_in(self, text: str) -> Iterator[str]:
        """The secrets this rule finds in ``text``."""
        pattern, allowed = _compiled(self)
        for match in pattern.finditer(text):
            if any(allow.search(match.group(0)) for allow in allowed):
                continue
            if self.secret_group is None:
                secret = match.group(0).strip("'\"")
            else:
                secret = match.group(self.secret_group) or ""
            if len(secret) >= MIN_SECRET:
                yield secret


@cache
def secret_rules() -> tuple[SecretRule, ...]:
    """The rules of ``data/secret-rules.json``, read once."""
    doc = json.loads(RULES_FILE.read_bytes())
    return tuple(
        SecretRule(
            id=rule["id"],
            title=rule["title"],
            keywords=tuple(keyword.lower() for keyword in rule["keywords"]),
            regex=rule["regex"],
            secret_group=rule.get("secret_group"),
            allow=tuple(rule.get("allow", ())),
        )
        for rule in doc["rules"]
    )


@cache
def _compiled(rule: SecretRule) -> tuple[re.Pattern[str], tuple[re.Pattern[str], ...]]:
    # Compiled when the rule first runs: most texts hold the keywords of a few rules only.
    return re.compile(rule.regex), tuple(re.compile(allow) for allow in rule.allow)


@cache
def _rules_by_keyword() -> dict[str, tuple[SecretRule, ...]]:
    by_keyword: dict[str, list[SecretRule]] = {}
    for rule in secret_rules():
        for keyword in rule.keywords:
            by_keyword.setdefault(keyword, []).append(rule)
    return {keyword: tuple(rules) for keyword, rules in by_keyword.items()}


def find_secrets(text: str) -> set[str]:
    """Secret strings in ``text``."""
    return _secrets_in_texts([text])


def _secrets_in_lines(text: str) -> set[str]:
    """Secret strings in the lines of a YAML, XML or plain text file, each distinct line
    scanned once: a rule's regex then runs on the lines holding its keyword, never over a
    whole report (in which a common keyword such as ``key`` always occurs somewhere)."""
    return _secrets_in_texts(text.splitlines())


def _secrets_in_texts(texts: Iterable[str]) -> set[str]:
    """Secret strings in any of ``texts``, each distinct text scanned once.

    The texts are lowered and joined once; each keyword is looked for in the joined text (a
    C-speed substring search), and each rule runs only on the texts holding its keywords.
    """
    candidates = [text for text in set(texts) if len(text) >= MIN_SECRET]
    lowered = [text.lower() for text in candidates]
    # No keyword holds a NUL, so none is found across two texts.
    joined = "\0".join(lowered)
    starts = list(accumulate((len(text) + 1 for text in lowered), initial=0))
    wanted: dict[SecretRule, set[int]] = {}
    for keyword, rules in _rules_by_keyword().items():
        at = joined.find(keyword)
        while at >= 0:
            index = bisect_right(starts, at) - 1
            for rule in rules:
                wanted.setdefault(rule, set()).add(index)
            at = joined.find(keyword, starts[index + 1])
    found: set[str] = set()
    for rule, indexes in wanted.items():
        for index in indexes:
            found.update(rule.secrets_in(candidates[index]))
    return found


def mask(secret: str) -> str:
    """What replaces ``secret``: its first characters (when long and plain), then ``*`` for
    every other character but white space."""
    keep = KEPT_PREFIX if len(secret) >= 16 and secret[:KEPT_PREFIX].isalnum() else 0
    # White space stays: a private key masked inside a YAML block keeps the block's lines and
    # their indentation.
    return secret[:keep] + _NOT_SPACE.sub("*", secret[keep:])


_NOT_SPACE = re.compile(r"\S")


def fingerprint_digest(value: str) -> str:
    """The stored form of a secret result's fingerprint."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def masked_file(path: str, data: bytes, *, document: Any = None) -> bytes:
    """``data`` as stored at ``path``: secrets masked, still valid for its format.

    ``document`` is the JSON document ``data`` decodes to, when the caller decoded it already
    (a report's parser): it is read, never changed, instead of decoding the bytes again.
    """
    packed = path.endswith(".gz")
    inner_path = path[: -len(".gz")] if packed else path
    key = (("gz:" if packed else "") + _format_of(inner_path), data)
    known = _results.get(key)
    if known is not None:
        return known
    if packed:
        plain = gzip.decompress(data)
        inner = masked_file(inner_path, plain)
        masked = data if inner == plain else deterministic_gzip(inner)
    else:
        try:
            masked = _masked_as(key[0], data, document)
        except _BrokenByMasking as exc:
            raise StoreError(
                f"masking secrets in {path}: {exc}",
                hint="report this with the scanner's report attached (after removing its secrets)",
            ) from exc
    _remember(key[0], data, masked)
    return masked


def remember_packed(path: str, masked: bytes, packed: bytes) -> None:
    """Note that ``packed``, stored at ``path`` (``.gz``), is :func:`deterministic_gzip` of
    ``masked``, which :func:`masked_file` returned in this process: masking ``packed`` then
    returns it as it is, without decompressing it."""
    if not path.endswith(".gz") or not any(result is masked for result in _results.values()):
        raise ValueError("remember_packed takes a .gz path and bytes masked_file returned")
    _remember("gz:" + _format_of(path[: -len(".gz")]), packed, packed)


# Ingest masks a raw report to record its digest, then the store masks every file it commits,
# once per attempt: the results of the last few files, by format and bytes, spare scanning
# the same bytes again. What masking returns is masked: masking it again returns it as it is.
_results: dict[tuple[str, bytes], bytes] = {}
_RESULTS_KEPT = 8


def _remember(fmt: str, data: bytes, masked: bytes) -> None:
    for key in ((fmt, data), (fmt, masked)):
        _results.pop(key, None)
        _results[key] = masked
    while len(_results) > _RESULTS_KEPT:
        del _results[next(iter(_results))]


def _format_of(path: str) -> str:
    if path.endswith(JSON_SUFFIXES):
        return "json"
    if path.endswith(YAML_SUFFIXES):
        return "yaml"
    return "xml" if path.endswith(XML_SUFFIXES) else "text"


class _BrokenByMasking(ValueError):
    """A file that masking would break, or leave a secret in."""


def _masked_as(fmt: str, data: bytes, document: Any) -> bytes:
    # Bytes that are not UTF-8 are kept as they are around what is scanned (a report in
    # another encoding still has its ASCII credentials found).
    text = data.decode("utf-8", "surrogateescape")
    if fmt == "json":
        new = _masked_json(text, document)  # checks its result itself
    else:
        new = _patched(text, _secrets_in_lines(text), _xml_forms if fmt == "xml" else None)
        if new != text:
            _check_still_valid(fmt, text, new)
    return data if new == text else new.encode("utf-8", "surrogateescape")


def masked_text(text: str) -> str:
    """Plain text (a commit message) with its secrets masked."""
    return _patched(text, _secrets_in_lines(text), None)


def _strings(value: Any) -> set[str]:
    """Every distinct string of a JSON document, keys included (walked without recursion:
    a report nests deeply and holds hundreds of thousands of values)."""
    found: set[str] = set()
    add = found.add
    pending = [value]
    push = pending.append
    while pending:
        item = pending.pop()
        if type(item) is dict:
            found.update(item)
            item = item.values()
        elif type(item) is not list:
            if type(item) is str:  # the document itself is a string
                add(item)
            continue
        for member in item:
            kind = type(member)
            if kind is str:
                add(member)
            elif kind is dict or kind is list:
                push(member)
    return found


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every object of a JSON document (walked without recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            yield item
            pending.extend(v for v in item.values() if type(v) in (dict, list))
        elif type(item) is list:
            pending.extend(v for v in item if type(v) in (dict, list))


def _key_masks(doc: Any, secrets: set[str]) -> dict[str, str]:
    """Numbered masks for the secrets of object keys whose plain masks would be the same:
    two members named after two different keys must not become one member."""
    keyed = {s for obj in _objects(doc) for key in obj for s in secrets if s in key}
    by_mask: dict[str, list[str]] = {}
    for secret in sorted(keyed):
        by_mask.setdefault(mask(secret), []).append(secret)
    return {
        secret: f"{covered}#{number}"
        for covered, same in by_mask.items()
        if len(same) > 1
        for number, secret in enumerate(same, 1)
    }


def _masked_json(text: str, document: Any = None) -> str:
    # A text with a byte order mark is no JSON to `json.loads` (parsers skip the mark): it is
    # masked line by line, whoever decoded it.
    if document is not None and not text.startswith("\ufeff"):
        doc = document
    else:
        try:
            doc = json.loads(text)
        except ValueError:
            return _patched(text, _secrets_in_lines(text), _json_forms)
    # Every distinct string once: a report repeats the same texts many times.
    secrets = _secrets_in_texts(_strings(doc))
    digests = {}
    for value in _secret_fingerprints(doc, secrets):
        for form in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
            digests[form] = json.dumps(fingerprint_digest(value))
    masks = _key_masks(doc, secrets) if secrets else {}
    masked = _patched(_replaced(text, digests), secrets, _json_forms, masks)
    if secrets or masked != text:
        _check_masked_json(doc, masked, secrets)
    return masked


def _check_masked_json(before: Any, text: str, secrets: set[str]) -> None:
    """Refuse the masked text of a JSON document if it no longer parses, if two members of
    an object became one, or if a secret survived in it: written with escapes that no form
    of it matches (``\\u0041KIA...``)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _BrokenByMasking(f"the file would no longer parse: {exc}") from exc
    if sum(map(len, _objects(doc))) != sum(map(len, _objects(before))):
        raise _BrokenByMasking("two members of an object would get the same name")
    joined = "\0".join(_strings(doc))
    left = sorted(s for s in secrets if mask(s) != s and s in joined)
    if left:
        raise _BrokenByMasking(
            f"{len(left)} secret(s) written with escapes masking does not replace, e.g. "
            f"{mask(left[0])!r}"
        )


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
    # Imported for XML files only: xml.sax.saxutils imports urllib.request, and with it the
    # http, email and ssl modules, which no other file needs.
    from xml.sax.saxutils import escape as xml_escape

    return [xml_escape(value), xml_escape(value, {'"': "&quot;", "'": "&apos;"})]


def _patched(
    text: str, secrets: set[str], forms: Any, masks: Mapping[str, str] | None = None
) -> str:
    """``text`` with every form of every secret replaced by the same form of its mask
    (from ``masks`` where it names one)."""
    replacements = {}
    for secret in secrets:
        covered = (masks or {}).get(secret) or mask(secret)
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
    parsers: dict[str, Any] = {"json": json.loads, "yaml": yaml.safe_load, "xml": _parse_xml}
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
        raise _BrokenByMasking(f"the file would no longer parse: {exc}") from exc


def _parse_xml(text: str) -> Any:
    from defusedxml import ElementTree  # for XML files only, like xml_escape

    return ElementTree.fromstring(text)
