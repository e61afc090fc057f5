"""The report registry and the JSON reader: detection by content, and every way a file fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regen_golden import FIXTURES
from securecase.domain.findings import ReportFormat
from securecase.errors import ReportError, UsageError
from securecase.scanners import PARSERS, describe, detect, parse, parse_bytes
from securecase.scanners.jsonload import json_path

SARIF = {
    "version": "2.1.0",
    "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
    "runs": [{"tool": {"driver": {"name": "CodeQL"}}, "results": []}],
}
ZAP = {
    "@programName": "OWASP ZAP",
    "@version": "2.12.0",
    "@generated": "Sat, 15 Apr 2023 18:23:09",
    "site": [{"@name": "https://example.com", "alerts": []}],
}


def write(tmp_path: Path, data: object, name: str = "report.json") -> Path:
    """Bytes are written as they are; anything else as JSON."""
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(json.dumps(data), encoding="utf-8")
    return path


def refused(path: Path, *expected: str, fmt: ReportFormat | None = None) -> ReportError:
    with pytest.raises(ReportError) as info:
        parse(path, fmt=fmt)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    for text in expected:
        assert text in message, message
    return info.value


def test_every_format_has_a_parser() -> None:
    assert set(PARSERS) == set(ReportFormat)
    assert all(callable(parser) for parser in PARSERS.values())


@pytest.mark.parametrize(
    "name",
    [
        "alpine-310.json",
        "secrets.json",
        "scheme_2_no_vuln.json",
        "license_scheme.json",
        "helm_testchart.json",
    ],
)
def test_trivy_fixtures_are_detected(name: str) -> None:
    document = json.loads((FIXTURES / name).read_bytes())
    assert detect(document) is ReportFormat.TRIVY
    assert parse(FIXTURES / name).format is ReportFormat.TRIVY


def test_detection_ignores_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, (FIXTURES / "npm.json").read_bytes(), name="results.sarif")
    assert parse(path).format is ReportFormat.TRIVY
    sarif = write(tmp_path, SARIF, name="trivy-report.json")
    assert parse(sarif).format is ReportFormat.SARIF
    zap = write(tmp_path, ZAP, name="results.sarif")
    assert parse(zap).format is ReportFormat.ZAP


def test_forced_format_parses_and_accepts_the_plain_string() -> None:
    report = parse(FIXTURES / "npm.json", fmt=ReportFormat.TRIVY)
    assert report.format is ReportFormat.TRIVY
    assert parse(FIXTURES / "npm.json", fmt="trivy").format is ReportFormat.TRIVY  # type: ignore[arg-type]


def test_unknown_forced_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown report format 'nessus'"):
        parse(FIXTURES / "npm.json", fmt="nessus")  # type: ignore[arg-type]


def test_forced_trivy_still_checks_the_shape(tmp_path: Path) -> None:
    refused(
        write(tmp_path, SARIF), "not a Trivy JSON report", "SchemaVersion", fmt=ReportFormat.TRIVY
    )
    refused(write(tmp_path, [1, 2], name="list.json"), "JSON array", fmt=ReportFormat.TRIVY)
    refused(FIXTURES / "legacy_trivy_mix.json", "legacy", fmt=ReportFormat.TRIVY)


# --------------------------------------------------------------------------- other formats


def test_sarif_is_detected(tmp_path: Path) -> None:
    report = parse(write(tmp_path, SARIF))
    assert (report.format, report.source, report.tool) == (ReportFormat.SARIF, "codeql", "CodeQL")


def test_sarif_without_schema_is_detected(tmp_path: Path) -> None:
    report = parse(write(tmp_path, {"version": "2.1.0", "runs": SARIF["runs"]}))
    assert report.format is ReportFormat.SARIF and report.findings == ()


def test_sarif_of_another_version_is_refused_by_detection(tmp_path: Path) -> None:
    doc = {**SARIF, "version": "2.0.0"}
    refused(write(tmp_path, doc), "$.version: unsupported SARIF version: got '2.0.0'")


def test_zap_json_is_detected(tmp_path: Path) -> None:
    assert parse(write(tmp_path, ZAP)).format is ReportFormat.ZAP
    bare = parse(write(tmp_path, {"site": [{"@name": "x", "alerts": []}]}))
    assert bare.format is ReportFormat.ZAP and bare.source == "zap"


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><OWASPZAPReport version="2.10.0"></OWASPZAPReport>',
        b"\xef\xbb\xbf  \n<OWASPZAPReport/>",
    ],
)
def test_zap_xml_is_detected(tmp_path: Path, data: bytes) -> None:
    report = parse(write(tmp_path, data))
    assert (report.format, report.raw_suffix, report.findings) == (ReportFormat.ZAP, ".xml", ())


def test_other_xml_is_named(tmp_path: Path) -> None:
    refused(
        write(tmp_path, b"<?xml version='1.0'?><project><dependencies/></project>"),
        "XML with root element <project>",
        "OWASP ZAP",
    )
    refused(write(tmp_path, b"<OWASPZAPReport><site>cut"), "invalid XML")


def test_html_pages_are_named_whatever_their_start(tmp_path: Path) -> None:
    for page in (
        b"<html><body>502 Bad Gateway</body></html>",
        b"<html><body>cut",
        b"\xef\xbb\xbf <!-- proxy --> <!DOCTYPE HTML PUBLIC '-//W3C//DTD HTML 4.01//EN'><html>",
    ):
        refused(write(tmp_path, page), "looks like an HTML page")


def test_xml_with_a_forced_json_format_is_refused(tmp_path: Path) -> None:
    refused(
        write(tmp_path, b"<OWASPZAPReport/>"),
        "looks like XML, not a sarif report",
        fmt=ReportFormat.SARIF,
    )


@pytest.mark.parametrize(
    ("document", "text"),
    [
        ({"bomFormat": "CycloneDX", "components": []}, "a CycloneDX SBOM"),
        ({"vulnerabilities": [], "packageManager": "npm"}, "a Snyk JSON report"),
    ],
)
def test_other_known_formats_are_named(tmp_path: Path, document: object, text: str) -> None:
    error = refused(write(tmp_path, document), f"looks like {text}")
    assert error.hint is not None and "SARIF" in error.hint


def test_cluster_report_is_refused_with_a_hint() -> None:
    error = refused(FIXTURES / "kubernetes.json", "Kubernetes cluster report", "not supported")
    assert error.hint is not None and "trivy image" in error.hint


@pytest.mark.parametrize("document", [None, [], [{"Target": "x", "Vulnerabilities": None}]])
def test_legacy_trivy(tmp_path: Path, document: object) -> None:
    error = refused(
        write(tmp_path, document), "Trivy report in the legacy format (before SchemaVersion 2)"
    )
    assert error.hint == "run trivy >= 0.20 with --format json"


@pytest.mark.parametrize("version", [1, 3, "2", 2.0, True])
def test_other_schema_versions(tmp_path: Path, version: object) -> None:
    doc = json.loads((FIXTURES / "npm.json").read_bytes())
    doc["SchemaVersion"] = version
    refused(write(tmp_path, doc), "unsupported Trivy schema version", repr(version))


def test_unknown_object_lists_up_to_eight_keys(tmp_path: Path) -> None:
    refused(
        write(tmp_path, {"hello": 1, "world": [2]}),
        "not a recognised scanner report: JSON object with keys hello, world",
    )
    many = {f"key{i}": i for i in range(11)}
    error = refused(write(tmp_path, many), "key0, key1, key2, key3, key4, key5, key6, key7, …")
    assert "key8" not in str(error) and "3 more" in str(error)


@pytest.mark.parametrize(
    ("document", "text"),
    [
        ({}, "an empty JSON object"),
        ([1, 2, 3], "a JSON array of 3 items"),
        ("trivy", "a JSON string"),
        (42, "a JSON number"),
        (True, "a JSON boolean"),
    ],
)
def test_other_json_is_described(tmp_path: Path, document: object, text: str) -> None:
    refused(write(tmp_path, document), "not a recognised scanner report", text)
    assert describe(document) == text


def test_huge_key_is_not_echoed_in_full(tmp_path: Path) -> None:
    error = refused(write(tmp_path, {"k" * 100_000: 1}), "not a recognised scanner report")
    assert len(str(error)) < 400


# --------------------------------------------------------------------------- reading files


def test_missing_file(tmp_path: Path) -> None:
    error = refused(tmp_path / "nope.json", "cannot read the report", "No such file")
    assert error.hint


def test_directory(tmp_path: Path) -> None:
    refused(tmp_path, "not a regular file (a directory)")


@pytest.mark.parametrize("data", [b"", b"  \n\t", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    refused(write(tmp_path, data), "the report is empty")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + (FIXTURES / "npm.json").read_bytes()
    report = parse(write(tmp_path, data))
    assert len(report.findings) == 1
    assert report.raw == data


def test_non_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    original = (FIXTURES / "npm.json").read_bytes()
    data = original.replace(b'"Title": "', b'"Title": "caf\xe9 ', 1)
    offset = data.index(b"\xe9")
    line = data[:offset].count(b"\n") + 1
    error = refused(
        write(tmp_path, data), "not valid UTF-8", f"byte offset {offset} (line {line},", "0xe9"
    )
    assert error.hint is not None


def test_non_utf8_offset_counts_the_bom(tmp_path: Path) -> None:
    refused(write(tmp_path, b'\xef\xbb\xbf{"a": "\xff"}'), "byte offset 10")


def test_utf16_gets_a_hint(tmp_path: Path) -> None:
    data = (FIXTURES / "npm.json").read_text("utf-8").encode("utf-16")
    error = refused(write(tmp_path, data), "not valid UTF-8", "byte offset 0")
    assert error.hint is not None and "UTF-16" in error.hint


def test_truncated_json_says_line_and_column(tmp_path: Path) -> None:
    data = (FIXTURES / "alpine-310.json").read_bytes()
    cut = data[: len(data) // 2]
    path = write(tmp_path, cut)
    text = cut.decode("utf-8")
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    error = refused(
        path,
        f"{path}:{expected.value.lineno}:{expected.value.colno}: invalid JSON",
        expected.value.msg,
        "line",
        "column",
    )
    assert error.hint is not None and "cut off" in error.hint


def test_syntax_error_in_the_middle(tmp_path: Path) -> None:
    path = write(tmp_path, b'{\n  "SchemaVersion": 2,\n  "Results": [,]\n}\n')
    error = refused(path, f"{path}:3:15: invalid JSON: Expecting value")
    assert error.hint is not None and "cut off" not in error.hint


def test_deep_nesting(tmp_path: Path) -> None:
    refused(
        write(tmp_path, b"[" * 200_000 + b"]" * 200_000),
        "nested too deeply to be a scanner report at $[0][0]",
    )


def test_deep_nesting_names_the_json_path(tmp_path: Path) -> None:
    deep = b'{"x": ' * 5000 + b"1" + b"}" * 5000
    data = b'{"version": "2.1.0", "runs": [{"results": [{}, {"properties": ' + deep + b"}]}]}"
    refused(
        write(tmp_path, data),
        "nested too deeply to be a scanner report at $.runs[0].results[1].properties.x.x",
        "more levels)",
    )


def test_huge_integer(tmp_path: Path) -> None:
    refused(write(tmp_path, b'{"SchemaVersion": ' + b"9" * 10_000 + b"}"), "invalid JSON")


def test_invalid_source_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        parse(FIXTURES / "npm.json", source="Bad Name")
    assert "Bad Name" in str(info.value) and info.value.hint


def test_parse_bytes_uses_the_origin() -> None:
    with pytest.raises(ReportError) as info:
        parse_bytes(b"null", origin="<stdin>")
    assert str(info.value).startswith("<stdin>: ")


def test_json_path() -> None:
    assert json_path() == "$"
    assert json_path("Results", 3, "Vulnerabilities", 0, "Severity") == (
        "$.Results[3].Vulnerabilities[0].Severity"
    )
    assert json_path("CVSS", "ghsa-x", "V3Score") == '$.CVSS["ghsa-x"].V3Score'
