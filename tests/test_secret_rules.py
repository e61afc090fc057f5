"""The secret detector: Trivy's rule set as data, run by keyword, over real scanner reports.

The real-fixture tests hold the secrets the previous detector (detect-secrets' regex plugins
and keyword detector) found in this repository's fixtures: the rule set that replaced it must
find each of them, and masking must leave none of their bytes.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securecase.errors import StoreError
from securecase.storage.rawfile import deterministic_gzip
from securecase.storage.secrets import (
    RULES_FILE,
    find_secrets,
    mask,
    masked_file,
    remember_packed,
    secret_rules,
)

FIXTURES = Path(__file__).parent / "fixtures"
CHECKOV_KEYS = {
    "AKIAIOSFODNN7EXAMAAA",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMAAAKEY",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "wJalrX**********",  # a key checkov already cut, still quoted as `secret_key = "..."`
}
BANDIT_PASSWORDS = {
    "ZjE4ZjI0NTE4YmI2NGJjZDliOGY3ZmJiY2UyN2IzODQK",
    "ajklawejrkl42348swfgkg",
    "class_password",
    "d6s$f9g!j8mg7hw?n&2",
    "emails_secret",
    "this cool password",
}
#: What the previous detector found in the fixtures (the header line of a private key, which it
#: also reported, is a label and holds no secret byte: it is not listed).
KNOWN = {
    **{
        f"realworld/checkov-terragoat-history/{p.name}": CHECKOV_KEYS
        for p in sorted((FIXTURES / "realworld/checkov-terragoat-history").glob("*.sarif"))
    },
    "realworld/detection/checkov-cfngoat.json": {
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    },
    "realworld/bandit17-examples.sarif": BANDIT_PASSWORDS,
    "sarif/codeQL-output.sarif": {"MYSUPERSECRETKEY"},
    "sarif/gitleaks_7.5.0.sarif": {"AKIAIOSFODNN7EXAMPLE"},
    "trivy/secrets.json": {"ghp_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
}


def strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(s for v in value.values() for s in strings_of(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings_of(v)]
    return []


def json_fixtures() -> list[Path]:
    return sorted(
        p
        for p in FIXTURES.rglob("*")
        if p.suffix in (".json", ".sarif") and p.is_file() and p.stat().st_size < 5_000_000
    )


def test_the_rule_file_names_its_source_and_every_rule_compiles() -> None:
    doc = json.loads(RULES_FILE.read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", doc["source"]["commit"])
    assert doc["source"]["project"] == "aquasecurity/trivy"
    ids = [rule["id"] for rule in doc["rules"]]
    assert len(ids) == len(set(ids))
    assert not set(doc["left_out"]) & set(ids)
    assert len([r for r in doc["rules"] if r["source"] == "trivy"]) >= 100
    for rule in doc["rules"]:
        assert rule["keywords"], rule["id"]
        pattern = re.compile(rule["regex"])
        if "secret_group" in rule:
            assert rule["secret_group"] in pattern.groupindex, rule["id"]
        if rule["source"] == "securecase":
            assert rule["why"], rule["id"]
        elif "adapted" in rule:  # Go's pattern is kept beside the adapted one
            assert rule["go_regex"] != rule["regex"], rule["id"]
    assert len(secret_rules()) == len(ids)


def token(alphabet: str, size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(size))


ALNUM = string.ascii_letters + string.digits
SAMPLES = {
    "aws-access-key-id": (f"id AKIA{token('ABCDEFXYZ0123456789', 16, 1)} ", 4),
    "github-pat": (f"token=ghp_{token(ALNUM, 36, 2)}", 0),
    "slack-access-token": (f"xoxb-{token(ALNUM, 24, 3)}", 0),
    "stripe-secret-token": (f"sk_live_{token('abcdef0123', 24, 4)}", 0),
    "gitlab-pat": (f"glpat-{token(ALNUM, 20, 5)}", 0),
    "private-key": (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join(token(ALNUM, 64, n) for n in range(3))
        + "\n-----END RSA PRIVATE KEY-----",
        0,
    ),
    "url-credentials": (f"https://deploy:{token(ALNUM, 20, 6)}@git.example.com/x", 0),
    "keyword-assignment": (f'db_password = "{token(ALNUM, 20, 7)}"', 0),
    "aws-secret-key-assignment": (f"AWS_SECRET_ACCESS_KEY={token(ALNUM, 40, 8)};", 0),
}


@pytest.mark.parametrize("rule_id", sorted(SAMPLES))
def test_a_sample_of_each_kind_is_found_by_its_rule_and_masked(rule_id: str) -> None:
    text, _ = SAMPLES[rule_id]
    rule = next(r for r in secret_rules() if r.id == rule_id)
    found = set(rule.secrets_in(text))
    assert found, rule_id
    assert found <= find_secrets(text)
    stored = json.loads(masked_file("raw/x.json", json.dumps({"text": text}).encode()))["text"]
    assert [s for s in found if s in stored] == []
    assert len(stored) == len(text)  # masked in place, white space kept
    assert stored.count("\n") == text.count("\n")


def test_the_keyword_search_loses_no_match_on_the_real_reports() -> None:
    # Each rule runs only on texts holding one of its keywords: on every string of every real
    # report, that finds what running every rule on every string finds.
    texts = {s for p in json_fixtures() for s in strings_of(json.loads(p.read_bytes()))}
    texts = {t for t in texts if len(t) >= 8}
    everything = {s for rule in secret_rules() for t in texts for s in rule.secrets_in(t)}
    by_keyword = {s for t in texts for s in find_secrets(t)}
    assert everything == by_keyword
    assert len(everything) >= 10


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_every_secret_the_previous_detector_found_is_found_and_masked(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    texts = strings_of(json.loads(data))
    found = set().union(*(find_secrets(t) for t in texts))
    assert KNOWN[name] <= found
    stored = masked_file(f"raw/{Path(name).name}", data)
    assert [s for s in KNOWN[name] if json.dumps(s)[1:-1].encode() in stored] == []
    assert strings_of(json.loads(stored))  # still the scanner's format


def test_what_the_detector_finds_in_a_masked_fixture_is_masks_only() -> None:
    for path in json_fixtures():
        stored = masked_file(f"raw/{path.name}", path.read_bytes())
        found = set().union(*(find_secrets(t) for t in strings_of(json.loads(stored))))
        assert [s for s in found if "****" not in s] == [], path


def test_a_secret_written_with_escapes_is_refused_not_stored() -> None:
    # The key is found in the decoded string; no form of it is in the file's text.
    data = b'{"note": "key \\u0041KIAIOSFODNN7EXAMPLE here"}'
    assert "AKIAIOSFODNN7EXAMPLE" in json.loads(data)["note"]
    with pytest.raises(StoreError, match="escapes"):
        masked_file("raw/x.json", data)


SECRET_MAKERS = [
    lambda seed: "AKIA" + token(string.ascii_uppercase + string.digits, 16, seed),
    lambda seed: "ghp_" + token(ALNUM, 36, seed),
    lambda seed: "xoxp-" + token(ALNUM, 30, seed),
]
# any text but lone surrogates
text_part = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)


@st.composite
def documents_with_secrets(draw: st.DrawFn) -> tuple[Any, list[str]]:
    secrets: list[str] = []

    def value() -> str:
        before, after = draw(text_part), draw(text_part)
        if draw(st.booleans()):
            kind = draw(st.sampled_from(SECRET_MAKERS))
            secret = kind(draw(st.integers(0, 10**6)))
            secrets.append(secret)
            return f"{before} {secret} {after}"
        return before + after

    doc = {
        value(): [
            {"text": value(), "n": draw(st.integers()), "ok": draw(st.booleans())}
            for _ in range(draw(st.integers(0, 4)))
        ]
        for _ in range(draw(st.integers(1, 4)))
    }
    # A key drawn twice keeps its last value: the secrets of the first one left the document.
    kept = json.dumps(doc, ensure_ascii=False)
    return doc, [secret for secret in secrets if secret in kept]


@settings(max_examples=150, deadline=None)
@given(documents_with_secrets(), st.sampled_from([None, 1]), st.booleans())
def test_masked_json_still_parses_and_no_detected_secret_survives(
    drawn: tuple[Any, list[str]], indent: int | None, ascii_only: bool
) -> None:
    doc, secrets = drawn
    data = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    stored = masked_file("raw/report.json", data)
    masked = json.loads(stored)
    assert len(masked) == len(doc)
    assert [s for s in secrets if s.encode() in stored] == []
    assert [s for s in secrets if mask(s) not in json.dumps(masked)] == []


@settings(max_examples=60, deadline=None)
@given(documents_with_secrets(), st.sampled_from([None, 1]))
def test_masking_with_the_parser_s_document_stores_what_decoding_the_bytes_stores(
    drawn: tuple[Any, list[str]], indent: int | None
) -> None:
    doc, _ = drawn
    data = json.dumps(doc, indent=indent).encode()
    # Two texts of one document (the trailing blanks differ): masking scans each once.
    from_document = masked_file("raw/report.json", data + b"\n", document=json.loads(data))
    from_bytes = masked_file("raw/report.json", data + b"\n\n")
    assert from_document + b"\n" == from_bytes


def test_a_report_compressed_after_masking_is_committed_without_unzipping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = json.dumps({"Title": "key AKIAIEQH524YNG5BY1A2", "n": random.random()}).encode()
    masked = masked_file("raw/trivy.json", data)
    assert b"AKIAIEQH524YNG5BY1A2" not in masked
    packed = deterministic_gzip(masked)
    with pytest.raises(ValueError, match="masked_file returned"):
        remember_packed("raw/trivy.json.gz", data, deterministic_gzip(data))
    remember_packed("raw/trivy.json.gz", masked, packed)

    def unzip(data: bytes) -> bytes:
        raise AssertionError("decompressed")

    monkeypatch.setattr(gzip, "decompress", unzip)
    assert masked_file("raw/trivy.json.gz", packed) is packed
    with pytest.raises(AssertionError, match="decompressed"):  # bytes it was not told of
        masked_file("raw/trivy.json.gz", deterministic_gzip(data))


def test_two_keys_that_differ_only_in_their_secrets_stay_two_members() -> None:
    first, second = "AKIAIEQH524YNG5BY1A2", "AKIAY0CQ65ZT4WN6ISIG"
    data = json.dumps({f" {first} ": [1], f" {second} ": [2], "other": first}).encode()
    masked = json.loads(masked_file("raw/report.json", data))
    assert len(masked) == 3
    assert first not in json.dumps(masked) and second not in json.dumps(masked)
    # Each secret has one mask everywhere: the value quoting the first secret too.
    assert masked == {
        " AKIA****************#1 ": [1],
        " AKIA****************#2 ": [2],
        "other": "AKIA****************#1",
    }
