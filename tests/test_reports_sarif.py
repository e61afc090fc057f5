"""The SARIF parser: real logs, golden output, stable identities, severities, hostile input."""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regen_golden import FORMATS, fixtures_of, golden_path, golden_text
from securecase.domain.findings import Kind, Report, ReportFormat, Severity
from securecase.errors import ReportError
from securecase.scanners import parse, parse_bytes
from securecase.scanners.sarif_mask import MASK

FIXTURES, GOLDEN, PATTERNS = FORMATS[1]
C, H, M, L, N = "critical", "high", "medium", "low", "info"

#: Findings per severity for every fixture (zero counts left out).
COUNTS: dict[str, dict[str, int]] = {
    "alpine-310.sarif": {M: 4},  # security-severity 5.3 etc.
    "appendix_k.sarif": {H: 1},  # suppressed (accepted), still listed
    "appendix_k1.sarif": {},
    "appendix_k2.sarif": {M: 1},  # no level: SARIF's default warning
    "appendix_k3.sarif": {M: 1},  # logical location only
    "bandit.sarif": {M: 2},
    "bash-report.sarif": {L: 12},  # 27 results, three places reported six times each
    "checkov.sarif": {H: 4},
    "codeQL-output.sarif": {H: 11, M: 4, L: 57},  # levels from rule defaultConfiguration
    "dockle_0_3_15.sarif": {H: 1, L: 3},
    "flawfinder.sarif": {H: 2, M: 1, L: 50},
    "gitleaks_7.5.0.sarif": {M: 4},  # 8 results: each secret found in two commits
    "njsscan.sarif": {H: 1, M: 1},
    "semgrep.sarif": {M: 4},
    "suppression_test.sarif": {M: 5},  # three suppressed
    "taint-python-report.sarif": {H: 8, M: 1, L: 2},
    "trivy_config.sarif": {M: 1},
}

KINDS: dict[str, Counter[Kind]] = {
    "alpine-310.sarif": Counter({Kind.VULNERABILITY: 4}),
    "checkov.sarif": Counter({Kind.MISCONFIGURATION: 4}),
    "dockle_0_3_15.sarif": Counter({Kind.MISCONFIGURATION: 4}),
    "gitleaks_7.5.0.sarif": Counter({Kind.SECRET: 4}),
    "trivy_config.sarif": Counter({Kind.MISCONFIGURATION: 1}),
    "codeQL-output.sarif": Counter({Kind.CODE: 72}),
}

SOURCES = {
    "alpine-310.sarif": "trivy-testdata-fixtures-images-alpine-310.tar.gz",
    "bash-report.sarif": "shell-script-analysis",
    "codeQL-output.sarif": "codeql",
    "semgrep.sarif": "semgrep",
    "bandit.sarif": "bandit",
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return data


def parse_doc(doc: object, *, origin: str = "mem.sarif", source: str | None = None) -> Report:
    return parse_bytes(json.dumps(doc).encode("utf-8"), origin=origin, source=source)


def ids(report: Report) -> list[str]:
    return sorted(f.id for f in report.findings)


def results(doc: dict[str, Any], run: int = 0) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc["runs"][run]["results"]
    return found


def minimal(**result: Any) -> dict[str, Any]:
    """A one-result log with one rule; ``result`` overrides the result's members."""
    return {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "Scanner", "rules": [{"id": "R1"}]}},
                "results": [
                    {
                        "ruleId": "R1",
                        "message": {"text": "problem"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "src/app.py"},
                                    "region": {"startLine": 3},
                                }
                            }
                        ],
                        **result,
                    }
                ],
            }
        ],
    }


# --------------------------------------------------------------------------- real logs


#: Fixtures refused as a whole, with a part of the message.
REFUSED = {"no_runs.sarif": "$.runs: empty: the log holds no run of any tool"}


def test_every_fixture_is_covered() -> None:
    names = {p.name for p in fixtures_of(FIXTURES, PATTERNS)}
    assert names == set(COUNTS) | set(REFUSED)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_fixture_refused(name: str) -> None:
    with pytest.raises(ReportError) as info:
        parse(FIXTURES / name)
    assert REFUSED[name] in str(info.value)
    assert info.value.hint


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_fixture_counts(name: str) -> None:
    report = parse(FIXTURES / name)
    assert report.format is ReportFormat.SARIF
    counts = Counter(f.severity.count_key for f in report.findings)
    assert dict(counts) == COUNTS[name]
    assert len({f.id for f in report.findings}) == len(report.findings)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_fixture_matches_golden(name: str) -> None:
    golden = golden_path(GOLDEN, FIXTURES / name)
    assert golden_text(FIXTURES / name) == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(KINDS))
def test_kinds(name: str) -> None:
    assert Counter(f.kind for f in parse(FIXTURES / name).findings) == KINDS[name]


@pytest.mark.parametrize(("name", "source"), sorted(SOURCES.items()))
def test_source_from_the_tool_driver(name: str, source: str) -> None:
    assert parse(FIXTURES / name).source == source


def test_source_override_changes_the_slot_and_the_identity() -> None:
    default = parse(FIXTURES / "bandit.sarif")
    named = parse(FIXTURES / "bandit.sarif", source="bandit-backend")
    assert {f.source for f in named.findings} == {"bandit-backend"}
    assert not set(ids(default)) & set(ids(named))


def test_trivy_sarif_vulnerabilities_name_their_package() -> None:
    report = parse(FIXTURES / "alpine-310.sarif")
    packages = sorted((f.advisory, f.package.name) for f in report.findings if f.package)
    assert packages == [
        ("CVE-2019-1549", "libcrypto1.1"),
        ("CVE-2019-1549", "libssl1.1"),
        ("CVE-2019-1551", "libcrypto1.1"),
        ("CVE-2019-1551", "libssl1.1"),
    ]
    first = next(f for f in report.findings if f.advisory == "CVE-2019-1549")
    assert first.package is not None and first.package.fixed_version == "1.1.1d-r0"
    assert first.cvss == 5.3
    assert report.image_digest is not None and report.image_digest.startswith("sha256:")


def test_codeql_rules_give_levels_cwes_and_precision() -> None:
    report = parse(FIXTURES / "codeQL-output.sarif")
    sql = [f for f in report.findings if f.advisory == "py/sql-injection"]
    assert sql and all(f.severity is Severity.HIGH for f in sql)
    assert all(f.cwe == ("CWE-89",) and f.confidence == "high" for f in sql)
    assert all(f.location and f.location.path and f.location.start_line for f in sql)


def test_uri_base_ids_resolve_to_repository_paths() -> None:
    # SRCROOT is " src/" relative to PROJECTROOT, an absolute file URI (the checkout root)
    report = parse(FIXTURES / "appendix_k.sarif")
    (finding,) = report.findings
    assert finding.location is not None
    assert finding.location.path == "src/collections/list.h"
    assert finding.location.start_line == 15


@pytest.mark.parametrize(
    ("root", "uri", "path"),
    [
        ("file:///w/my%20repo/", "file:///w/my repo/src/a%25b.py", "src/a%b.py"),
        ("file:///w/my repo/", "file:///w/my%20repo/src/a.py", "src/a.py"),
        ("file:///w/my%20repo", "file:///w/my%20repo/src/a.py", "src/a.py"),
        ("file:///w/my%20repo/", "src/a%20b.py", "src/a b.py"),
    ],
)
def test_absolute_uris_under_the_root_in_any_percent_encoding(
    root: str, uri: str, path: str
) -> None:
    doc = minimal()
    results(doc)[0]["locations"][0]["physicalLocation"]["artifactLocation"] = {
        "uri": uri,
        "uriBaseId": "SRCROOT",
    }
    doc["runs"][0]["originalUriBaseIds"] = {"SRCROOT": {"uri": root}}
    (finding,) = parse_doc(doc).findings
    assert finding.location is not None and finding.location.path == path


def test_dast_results_at_urls_are_located_by_url_without_query_values() -> None:
    def zap_log(uri: str) -> dict[str, Any]:
        doc = minimal(message={"text": "Cross Site Scripting (Reflected)"})
        doc["runs"][0]["tool"]["driver"]["name"] = "ZAP"
        location = results(doc)[0]["locations"][0]["physicalLocation"]
        location["artifactLocation"] = {"uri": uri}
        del location["region"]
        return doc

    (finding,) = parse_doc(zap_log("https://shop.example.com/search?q=s3cr3t&page=2")).findings
    assert finding.kind is Kind.DAST
    assert finding.location is not None and finding.location.path is None
    assert finding.location.url == "https://shop.example.com/search?q=&page="
    (again,) = parse_doc(zap_log("https://shop.example.com/search?q=other&page=3")).findings
    assert again.id == finding.id  # other query values: the same finding


def test_absolute_uris_under_the_working_directory_become_relative() -> None:
    # bash-report.sarif: file:///home/damien/dd/... with workingDirectory file:///home/damien/dd
    report = parse(FIXTURES / "bash-report.sarif")
    paths = {f.location.path for f in report.findings if f.location}
    assert "docker/setEnv.sh" in paths
    assert all(p and not p.startswith("/") for p in paths)


def test_accepted_suppressions_are_kept_but_marked() -> None:
    report = parse(FIXTURES / "suppression_test.sarif")
    assert sum(f.suppressed for f in report.findings) == 3
    assert len(report.findings) == 5
    assert parse(FIXTURES / "appendix_k.sarif").findings[0].suppressed


@pytest.mark.parametrize(
    ("suppressions", "suppressed"),
    [
        ([{"kind": "inSource"}], True),
        ([{"kind": "external", "status": "accepted"}], True),
        ([{"kind": "external", "status": "underReview"}], False),
        ([{"kind": "external", "status": "rejected"}], False),
        (
            [
                {"kind": "external", "status": "accepted"},
                {"kind": "inSource", "status": "rejected"},
            ],
            False,
        ),
        ([{"kind": "external", "state": "underReview"}], False),
        ([], False),
    ],
)
def test_suppression_states(suppressions: list[dict[str, str]], suppressed: bool) -> None:
    (finding,) = parse_doc(minimal(suppressions=suppressions)).findings
    assert finding.suppressed is suppressed


def test_secret_text_is_masked_in_the_stored_log() -> None:
    original = (FIXTURES / "gitleaks_7.5.0.sarif").read_bytes()
    assert b"AKIAIOSFODNN7EXAMPLE" in original
    report = parse(FIXTURES / "gitleaks_7.5.0.sarif")
    assert report.raw != original
    assert b"AKIAIOSFODNN7EXAMPLE" not in report.raw
    assert b"PRIVATE KEY" not in report.raw
    assert MASK.encode() in report.raw
    stored = json.loads(report.raw)
    location = results(stored)[0]["locations"][0]["physicalLocation"]
    assert location["region"]["startLine"] == 13  # rule, path and line stay
    assert location["artifactLocation"]["uri"].endswith("_vuln.json")
    assert all("AKIA" not in f.title and "AKIA" not in f.advisory for f in report.findings)


def test_build_credentials_in_invocations_never_reach_the_stored_log() -> None:
    doc = minimal()
    doc["runs"][0]["invocations"] = [
        {
            "executionSuccessful": True,
            "commandLine": "scanner --api-key=s3cr3t-a --out x.sarif --token 's3cr3t b' .",
            "arguments": ["--password", "s3cr3t-c", "--auth-token=s3cr3t-d", "--out", "x.sarif"],
            "environmentVariables": {"NPM_TOKEN": "s3cr3t-e", "HOME": "/home/ci"},
        }
    ]
    report = parse_doc(doc)
    assert b"s3cr3t" not in report.raw
    (invocation,) = json.loads(report.raw)["runs"][0]["invocations"]
    assert invocation["environmentVariables"] == {"NPM_TOKEN": MASK, "HOME": MASK}
    assert invocation["commandLine"] == f"scanner --api-key={MASK} --out x.sarif --token {MASK} ."
    assert invocation["arguments"] == [
        "--password",
        MASK,
        f"--auth-token={MASK}",
        "--out",
        "x.sarif",
    ]
    assert parse_bytes(report.raw, origin="again.sarif").findings == report.findings


def test_a_log_without_build_credentials_is_stored_as_it_is() -> None:
    doc = minimal()
    doc["runs"][0]["invocations"] = [{"executionSuccessful": True, "commandLine": "scan --out x ."}]
    data = json.dumps(doc).encode()
    assert parse_bytes(data, origin="mem.sarif").raw == data


def test_trivy_secret_rule_masks_only_secret_results() -> None:
    doc = minimal(ruleId="aws-access-key-id")
    run = doc["runs"][0]
    run["tool"]["driver"] = {
        "name": "Trivy",
        "rules": [{"id": "aws-access-key-id", "name": "Secret"}, {"id": "R2", "name": "x"}],
    }
    results(doc)[0]["locations"][0]["physicalLocation"]["region"]["snippet"] = {
        "text": "AWS_ACCESS_KEY_ID=AKIA0123456789ABCDEF"
    }
    results(doc).append({**copy.deepcopy(results(doc)[0]), "ruleId": "R2"})
    report = parse_doc(doc)
    assert Counter(f.kind for f in report.findings) == Counter({Kind.SECRET: 1, Kind.CODE: 1})
    assert report.raw.count(b"AKIA0123456789ABCDEF") == 1  # the non-secret result's copy


# --------------------------------------------------------------------------- identity


def test_ids_are_stable_under_reordered_results() -> None:
    for name in ("codeQL-output.sarif", "bash-report.sarif", "flawfinder.sarif", "bandit.sarif"):
        doc = load(name)
        before = ids(parse_doc(doc))
        random.Random(7).shuffle(results(doc))
        assert ids(parse_doc(doc)) == before, name


def _shift_lines(doc: dict[str, Any], by: int) -> None:
    for result in results(doc):
        for location in result.get("locations") or ():
            region = location.get("physicalLocation", {}).get("region")
            for key in ("startLine", "endLine"):
                if region and key in region:
                    region[key] += by
            context = location.get("physicalLocation", {}).get("contextRegion")
            for key in ("startLine", "endLine"):
                if context and key in context:
                    context[key] += by


@pytest.mark.parametrize(
    "name", ["codeQL-output.sarif", "bash-report.sarif", "taint-python-report.sarif"]
)
def test_ids_are_stable_under_a_line_shift_with_partial_fingerprints(name: str) -> None:
    doc = load(name)
    assert all(r.get("partialFingerprints") for r in results(doc))
    before = parse_doc(doc)
    _shift_lines(doc, 12)
    after = parse_doc(doc)
    assert ids(after) == ids(before)
    moved = {f.id: f.location.start_line for f in after.findings if f.location}
    assert all(
        moved[f.id] == f.location.start_line + 12
        for f in before.findings
        if f.location and f.location.start_line
    )


def test_ids_are_stable_under_a_line_shift_with_snippets() -> None:
    doc = load("gitleaks_7.5.0.sarif")
    before = ids(parse_doc(doc))
    _shift_lines(doc, 3)
    assert ids(parse_doc(doc)) == before


def test_ids_are_stable_across_scanner_versions() -> None:
    for name in ("codeQL-output.sarif", "semgrep.sarif", "alpine-310.sarif", "checkov.sarif"):
        doc = load(name)
        before = parse_doc(doc)
        driver = doc["runs"][0]["tool"]["driver"]
        driver["version"] = "99.1.0"
        driver["semanticVersion"] = "99.1.0"
        after = parse_doc(doc)
        assert ids(after) == ids(before), name
        assert after.tool_version == "99.1.0"


@pytest.mark.parametrize(
    ("times", "scanned_at"),
    [
        ({"endTimeUtc": "2021-03-23T01:10:48.123+01:00"}, "2021-03-23T00:10:48Z"),
        ({"endTimeUtc": "2021-03-23T00:10:48"}, "2021-03-23T00:10:48Z"),  # SARIF times are UTC
        (
            {"endTimeUtc": "not a date", "startTimeUtc": "2021-03-23T00:00:00Z"},
            "2021-03-23T00:00:00Z",
        ),
        ({"endTimeUtc": "not a date"}, None),
        ({"endTimeUtc": ""}, None),
    ],
)
def test_scan_time_is_a_utc_time_or_none(times: dict[str, str], scanned_at: str | None) -> None:
    doc = minimal()
    doc["runs"][0]["invocations"] = [{"executionSuccessful": True, **times}]
    assert parse_doc(doc).scanned_at == scanned_at


def test_the_bare_line_number_is_not_the_identity() -> None:
    # no fingerprints, no snippet: rule + path + message hash, then the order in the file
    first = parse_doc(minimal())
    moved = minimal()
    results(moved)[0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 40
    assert ids(parse_doc(moved)) == ids(first)
    other = minimal(message={"text": "another problem"})
    assert ids(parse_doc(other)) != ids(first)


def test_the_same_problem_twice_in_a_file_is_two_findings_kept_apart_by_order() -> None:
    doc = minimal()
    second = copy.deepcopy(results(doc)[0])
    second["locations"][0]["physicalLocation"]["region"]["startLine"] = 30
    results(doc).append(second)
    two = ids(parse_doc(doc))
    assert len(two) == 2
    _shift_lines(doc, 5)
    results(doc).reverse()
    assert ids(parse_doc(doc)) == two


def test_placeholder_fingerprints_do_not_identify_results() -> None:
    # Semgrep without a login writes the same "fingerprint" on every result
    doc = load("semgrep.sarif")
    for result in results(doc):
        result["fingerprints"] = {"matchBasedId/v1": "requires login"}
    report = parse_doc(doc)
    by_place = {(f.advisory, f.location): f.id for f in report.findings}
    assert len(by_place) == len(results(doc)) == 4
    for dropped in range(len(results(doc))):
        fewer = copy.deepcopy(doc)
        del results(fewer)[dropped]
        for finding in parse_doc(fewer).findings:
            assert (
                by_place[(finding.advisory, finding.location)] == finding.id
            )  # the others keep theirs


def test_installed_version_bump_keeps_a_vulnerability() -> None:
    doc = load("alpine-310.sarif")
    before = ids(parse_doc(doc))
    for result in results(doc):
        result["message"]["text"] = result["message"]["text"].replace("1.1.1c-r0", "1.1.1c-r9")
    assert ids(parse_doc(doc)) == before


# --------------------------------------------------------------------------- severity


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        ("9.0", Severity.CRITICAL),
        ("10", Severity.CRITICAL),
        (8.9, Severity.HIGH),
        ("7.0", Severity.HIGH),
        ("6.9", Severity.MEDIUM),
        (4, Severity.MEDIUM),
        ("3.9", Severity.LOW),
        ("0.1", Severity.LOW),
        ("0.0", Severity.INFO),
    ],
)
def test_security_severity_wins_over_level(score: object, severity: Severity) -> None:
    doc = minimal(level="note")
    doc["runs"][0]["tool"]["driver"]["rules"][0]["properties"] = {"security-severity": score}
    (finding,) = parse_doc(doc).findings
    assert finding.severity is severity


@pytest.mark.parametrize(
    ("result_level", "default_level", "kind", "severity"),
    [
        ("error", None, None, Severity.HIGH),
        ("warning", "error", None, Severity.MEDIUM),
        ("note", None, None, Severity.LOW),
        ("none", None, None, Severity.INFO),
        (None, "error", None, Severity.HIGH),
        (None, "note", None, Severity.LOW),
        (None, None, None, Severity.MEDIUM),
        (None, None, "review", Severity.INFO),
        (None, "error", "review", Severity.INFO),  # the rule's default is for failures only
        (None, "error", "informational", Severity.INFO),
        (None, "error", "fail", Severity.HIGH),
        (None, None, "fail", Severity.MEDIUM),
    ],
)
def test_level_and_its_defaults(
    result_level: str | None, default_level: str | None, kind: str | None, severity: Severity
) -> None:
    extra: dict[str, Any] = {}
    if result_level:
        extra["level"] = result_level
    if kind:
        extra["kind"] = kind
    doc = minimal(**extra)
    if default_level:
        doc["runs"][0]["tool"]["driver"]["rules"][0]["defaultConfiguration"] = {
            "level": default_level
        }
    (finding,) = parse_doc(doc).findings
    assert finding.severity is severity


@pytest.mark.parametrize("kind", ["pass", "notApplicable"])
def test_passing_results_are_not_findings(kind: str) -> None:
    assert parse_doc(minimal(kind=kind)).findings == ()


def test_rules_of_extensions_via_tool_component() -> None:
    doc = minimal(
        ruleId=None, rule={"id": "X9", "index": 0, "toolComponent": {"index": 0}}, level=None
    )
    result = results(doc)[0]
    del result["ruleId"], result["level"]
    doc["runs"][0]["tool"]["extensions"] = [
        {
            "name": "pack",
            "rules": [
                {
                    "id": "X9",
                    "shortDescription": {"text": "From the pack"},
                    "defaultConfiguration": {"level": "error"},
                    "properties": {"tags": ["external/cwe/cwe-079"]},
                }
            ],
        }
    ]
    (finding,) = parse_doc(doc).findings
    assert (finding.advisory, finding.title, finding.severity) == (
        "X9",
        "From the pack",
        Severity.HIGH,
    )
    assert finding.cwe == ("CWE-79",)


@pytest.mark.parametrize(
    "component",
    [{"index": 1}, {"name": "pack"}, {"guid": "00000000-0000-4000-8000-000000000002"}],
)
def test_extensions_named_by_index_name_or_guid(component: dict[str, Any]) -> None:
    doc = minimal(rule={"id": "X9", "index": 1, "toolComponent": component})
    del results(doc)[0]["ruleId"]
    doc["runs"][0]["tool"]["extensions"] = [
        {"name": "other", "guid": "00000000-0000-4000-8000-000000000001", "rules": []},
        {
            "name": "pack",
            "guid": "00000000-0000-4000-8000-000000000002",
            "rules": [{"id": "X8"}, {"id": "X9", "shortDescription": {"text": "From the pack"}}],
        },
    ]
    (finding,) = parse_doc(doc).findings
    assert (finding.advisory, finding.title) == ("X9", "From the pack")


def test_the_driver_named_by_a_tool_component_reference() -> None:
    doc = minimal(rule={"id": "R1", "index": 0, "toolComponent": {"name": "Scanner"}})
    doc["runs"][0]["tool"]["driver"]["rules"][0]["shortDescription"] = {"text": "Driver rule"}
    doc["runs"][0]["tool"]["extensions"] = [{"name": "pack", "rules": []}]
    (finding,) = parse_doc(doc).findings
    assert finding.title == "Driver rule"


def test_a_tool_component_reference_to_no_component_is_refused() -> None:
    doc = minimal(rule={"id": "R1", "index": 0, "toolComponent": {"name": "missing"}})
    refused(doc, "$.runs[0].results[0].rule.toolComponent.name", "names neither the driver")


def test_message_strings_are_filled_in() -> None:
    report = parse(FIXTURES / "appendix_k2.sarif")
    assert report.findings[0].title == 'Variable "count" was used without being initialized.'


def test_secret_titles_never_come_from_the_message() -> None:
    doc = minimal(message={"text": "found ghp_secretsecretsecret"})
    doc["runs"][0]["tool"]["driver"]["name"] = "gitleaks"
    (finding,) = parse_doc(doc).findings
    assert finding.kind is Kind.SECRET and "ghp_" not in finding.title


def test_a_secret_result_without_a_rule_id_never_takes_its_rule_from_the_message() -> None:
    doc = minimal(message={"text": "found ghp_secretsecretsecret in the history"})
    del results(doc)[0]["ruleId"]
    doc["runs"][0]["tool"]["driver"] = {"name": "gitleaks", "rules": [{"id": "GitHub Token"}]}
    (finding,) = parse_doc(doc).findings
    assert finding.advisory == "unknown-rule"


class _NoScan(dict[str, Any]):
    def __iter__(self) -> Any:
        raise AssertionError("every rule id tested against every message: quadratic")


def test_the_rule_a_message_names_is_looked_up_not_scanned_for() -> None:
    from securecase.scanners.sarif import _rule_named_in
    from securecase.scanners.sarif_fields import Problems
    from securecase.scanners.sarif_run import Run

    rules = [{"id": "AWS"}, {"id": "AWS Access Key"}, {"id": "GitHub Token"}]
    run = Run({"tool": {"driver": {"name": "gitleaks", "rules": rules}}}, 0, Problems())
    run.rules_by_id = _NoScan(run.rules_by_id)
    assert _rule_named_in("AWS Access Key secret detected", run, secret=True) == "AWS Access Key"
    assert _rule_named_in("AWS key", run, secret=True) == "AWS"
    assert _rule_named_in("Slack token", run, secret=True) is None
    assert _rule_named_in("Slack token\nmore", run, secret=False) == "Slack token"


@pytest.mark.parametrize(
    "properties",
    [
        {"tags": ["security", "external/cwe/cwe-259"]},  # Bandit B105
        {"cwe": "CWE-798: Use of Hard-coded Credentials"},  # njsscan, Semgrep
        {"tags": ["external/cwe/cwe-321"]},
    ],
)
def test_hard_coded_credentials_are_secrets_whatever_the_tool(properties: dict[str, Any]) -> None:
    doc = minimal(message={"text": "Possible hardcoded password: 'hunter2'"})
    doc["runs"][0]["tool"]["driver"]["rules"][0].update(name="hardcoded_password_string")
    doc["runs"][0]["tool"]["driver"]["rules"][0]["properties"] = properties
    region = results(doc)[0]["locations"][0]["physicalLocation"]["region"]
    region["snippet"] = {"text": 'DATABASE_PASSWORD = "hunter2"'}
    report = parse_doc(doc)
    (finding,) = report.findings
    assert finding.kind is Kind.SECRET
    assert finding.title == "hardcoded_password_string"
    assert b"hunter2" not in report.raw


# --------------------------------------------------------------------------- malformed logs


def refused(doc: object, *expected: str) -> ReportError:
    with pytest.raises(ReportError) as info:
        parse_doc(doc)
    text = str(info.value) + "\n" + "\n".join(info.value.problems)
    for phrase in expected:
        assert phrase in text, text
    return info.value


def test_wrong_version() -> None:
    refused({**minimal(), "version": "2.0.0"}, "$.version: unsupported SARIF version")
    refused(
        {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": []},
        "$.version",
        "missing",
    )


def test_missing_or_wrong_runs() -> None:
    refused(
        {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0"},
        "$.runs: missing",
    )
    refused({"version": "2.1.0", "runs": {}}, "$.runs: expected an array, got object")
    refused({"version": "2.1.0", "runs": [7]}, "$.runs[0]: expected an object")
    refused({"version": "2.1.0", "runs": [{}]}, "$.runs[0].tool: missing")


def test_results_not_a_list() -> None:
    doc = minimal()
    doc["runs"][0]["results"] = {"ruleId": "R1"}
    refused(doc, "$.runs[0].results: expected an array, got object")


def test_rule_index_out_of_range() -> None:
    refused(minimal(ruleIndex=3), "$.runs[0].results[0].ruleIndex: 3 is out of range", "1 rules")
    refused(minimal(ruleIndex="0"), "$.runs[0].results[0].ruleIndex")
    refused(
        minimal(rule={"id": "R1", "index": 0, "toolComponent": {"index": 2}}),
        "$.runs[0].results[0].rule.toolComponent.index",
    )


def test_field_problems_are_all_listed_with_paths() -> None:
    doc = minimal(level="fatal")
    bad = copy.deepcopy(results(doc)[0])
    bad["level"] = "error"
    bad["locations"][0]["physicalLocation"]["region"]["startLine"] = -1
    results(doc).append(bad)
    results(doc).append("nope")  # type: ignore[arg-type]
    error = refused(
        doc,
        "$.runs[0].results[0].level: expected one of none, note, warning, error",
        "$.runs[0].results[1].locations[0].physicalLocation.region.startLine",
        "$.runs[0].results[2]: expected an object, got string",
    )
    assert "3 problems" in str(error)


def test_absurd_nesting_names_the_path() -> None:
    text = json.dumps(minimal(properties="DEEP"))
    data = text.replace('"DEEP"', '{"x": ' * 3000 + "1" + "}" * 3000)
    with pytest.raises(ReportError) as info:
        parse_bytes(data.encode(), origin="deep.sarif")
    assert "nested too deeply" in str(info.value)
    assert "$.runs[0].results[0].properties.x.x" in str(info.value)


@pytest.mark.parametrize("depth", [300, 600, 900])
def test_absurd_nesting_in_a_secret_log_names_the_path(depth: int) -> None:
    # deep enough to decode, too deep to mask and store: refused, never a crash
    doc = minimal(stacks="DEEP")
    doc["runs"][0]["tool"]["driver"]["name"] = "gitleaks"
    data = json.dumps(doc).replace('"DEEP"', "[" * depth + "]" * depth, 1)
    try:
        report = parse_bytes(data.encode(), origin="deep.sarif")
    except ReportError as error:
        assert "nested too deeply" in str(error)
        assert "$.runs[0].results[0].stacks[0][0]" in str(error)
    else:
        assert MASK.encode() in report.raw


# --------------------------------------------------------------------------- properties

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)
_RESULT_KEYS = [
    "ruleId",
    "ruleIndex",
    "rule",
    "level",
    "kind",
    "message",
    "locations",
    "suppressions",
    "partialFingerprints",
    "fingerprints",
    "properties",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_RESULT_KEYS), _json, max_size=4))
def test_any_result_parses_or_is_refused_with_a_path(overrides: dict[str, Any]) -> None:
    try:
        report = parse_doc(minimal(**overrides))
    except ReportError as exc:
        assert exc.problems and all(p.startswith("$.runs[0]") for p in exc.problems)
        return
    assert all(len(f.id) == 16 for f in report.findings)


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(11)))
def test_any_order_gives_the_same_findings(order: list[int]) -> None:
    doc = load("taint-python-report.sarif")
    expected = parse_doc(doc).findings
    results(doc)[:] = [results(doc)[i] for i in order]
    assert parse_doc(doc).findings == expected


def test_golden_folder_has_no_stale_files() -> None:
    expected = {
        golden_path(GOLDEN, p).name for p in fixtures_of(FIXTURES, PATTERNS) if p.name in COUNTS
    }
    assert {p.name for p in GOLDEN.iterdir()} == expected


def test_fixture_paths_exist() -> None:
    assert isinstance(FIXTURES, Path) and (FIXTURES / "codeQL-output.sarif").is_file()
