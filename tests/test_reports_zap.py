"""The OWASP ZAP parser: JSON and XML reports, golden output, identity, instances, XML attacks."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regen_golden import FORMATS, fixtures_of, golden_path, golden_text
from securecase.domain.findings import Kind, ReportFormat, Severity
from securecase.errors import ReportError
from securecase.scanners import parse, parse_bytes
from securecase.scanners.zap import INSTANCE_LIMIT

FIXTURES, GOLDEN, PATTERNS = FORMATS[2]
H, M, L, N = "high", "medium", "low", "info"

COUNTS: dict[str, dict[str, int]] = {
    "dvwa_baseline_dojo.xml": {M: 4, L: 8, N: 6},  # 19 alert items, 10027 twice by pluginid
    "empty_2.9.0.xml": {},
    "juicy2.xml": {M: 2, L: 2, N: 2},
    "owasp_zap.json": {M: 1, N: 3},
    "zap-results-first-scan.xml": {H: 4, M: 3, L: 4, N: 4},
    "zap-results-second-scan.xml": {H: 4, M: 3, L: 6, N: 5},
}


def zap_json(**alert: Any) -> dict[str, Any]:
    return {
        "@programName": "ZAP",
        "@version": "2.14.0",
        "@generated": "Mon, 1 Jan 2024 00:00:00",
        "site": [
            {
                "@name": "https://shop.example.com",
                "alerts": [
                    {
                        "pluginid": "40012",
                        "alertRef": "40012",
                        "alert": "Cross Site Scripting (Reflected)",
                        "riskcode": "3",
                        "confidence": "2",
                        "cweid": "79",
                        "wascid": "8",
                        "instances": [
                            {
                                "uri": "https://shop.example.com/search?q=%3Cscript%3E&page=2",
                                "method": "GET",
                                "param": "q",
                            }
                        ],
                        **alert,
                    }
                ],
            }
        ],
    }


def parse_doc(doc: object) -> Any:
    return parse_bytes(json.dumps(doc).encode(), origin="zap.json")


def test_every_fixture_is_covered() -> None:
    assert {p.name for p in fixtures_of(FIXTURES, PATTERNS)} == set(COUNTS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_fixture_counts(name: str) -> None:
    report = parse(FIXTURES / name)
    assert report.format is ReportFormat.ZAP and report.source == "zap"
    assert dict(Counter(f.severity.count_key for f in report.findings)) == COUNTS[name]
    assert all(f.kind is Kind.DAST for f in report.findings)
    assert report.raw_suffix == (".json" if name.endswith(".json") else ".xml")
    original = (FIXTURES / name).read_bytes()
    if report.raw != original:  # query values in instance URIs are removed from the copy
        assert any(parse_qsl(urlsplit(uri).query) for uri in stored_uris(original))
        assert not any(
            value
            for uri in stored_uris(report.raw)
            for _, value in parse_qsl(urlsplit(uri).query, keep_blank_values=True)
        )
        assert parse_bytes(report.raw, origin=name).findings == report.findings


def stored_uris(raw: bytes) -> list[str]:
    if raw.lstrip().startswith(b"<"):
        return [u.decode() for u in re.findall(rb"<uri>([^<]*)</uri>", raw)]
    doc = json.loads(raw)
    return [i["uri"] for s in doc["site"] for a in s["alerts"] for i in a.get("instances", [])]


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_fixture_matches_golden(name: str) -> None:
    golden = golden_path(GOLDEN, FIXTURES / name)
    assert golden_text(FIXTURES / name) == golden.read_text(encoding="utf-8")


def test_a_rescan_updates_the_same_findings() -> None:
    first = {f.id: f for f in parse(FIXTURES / "zap-results-first-scan.xml").findings}
    second = {f.id: f for f in parse(FIXTURES / "zap-results-second-scan.xml").findings}
    assert len(set(first) & set(second)) == 14  # all but PII Disclosure found again
    (gone,) = set(first) - set(second)
    assert first[gone].title == "PII Disclosure"
    changed = [i for i in set(first) & set(second) if first[i].instances != second[i].instances]
    assert changed  # same alert on other URLs: same finding, other instances


def test_identity_is_alert_and_site_not_urls() -> None:
    a = parse_doc(zap_json()).findings[0]
    other_urls = zap_json(instances=[{"uri": "https://shop.example.com/other", "method": "POST"}])
    assert parse_doc(other_urls).findings[0].id == a.id
    other_site = zap_json()
    other_site["site"][0]["@name"] = "https://admin.example.com"
    assert parse_doc(other_site).findings[0].id != a.id


def test_alert_ref_names_the_alert_else_plugin_id() -> None:
    by_ref = parse_doc(zap_json(alertRef="40012-1")).findings[0]
    assert by_ref.advisory == "40012-1"
    no_ref = zap_json()
    del no_ref["site"][0]["alerts"][0]["alertRef"]
    assert parse_doc(no_ref).findings[0].advisory == "40012"


def test_fields_are_kept() -> None:
    finding = parse_doc(zap_json()).findings[0]
    assert finding.severity is Severity.HIGH
    assert (finding.confidence, finding.cwe, finding.wasc) == ("medium", ("CWE-79",), "WASC-8")
    assert finding.location is not None and finding.location.url == "https://shop.example.com"
    (instance,) = finding.instances
    assert instance.uri == "https://shop.example.com/search?q=&page="  # values removed
    assert (instance.method, instance.param) == ("GET", "q")


@pytest.mark.parametrize(
    ("risk", "severity"),
    [("3", Severity.HIGH), ("2", Severity.MEDIUM), ("1", Severity.LOW), ("0", Severity.INFO)],
)
def test_riskcodes(risk: str, severity: Severity) -> None:
    assert parse_doc(zap_json(riskcode=risk)).findings[0].severity is severity


def test_false_positive_confidence_is_suppressed() -> None:
    finding = parse_doc(zap_json(confidence="0")).findings[0]
    assert finding.suppressed and finding.confidence == "false-positive"


def test_instances_are_capped_and_counted() -> None:
    many = [{"uri": f"https://shop.example.com/p/{i}?id={i}", "method": "GET"} for i in range(60)]
    finding = parse_doc(zap_json(instances=many + many[:5])).findings[0]
    assert len(finding.instances) == INSTANCE_LIMIT
    assert finding.instance_count == 60
    assert finding.instances == tuple(sorted(finding.instances, key=lambda i: i.uri or ""))


def test_alerts_of_one_id_on_one_site_count_their_instances_once() -> None:
    # older reports list one alert item per variant, without alertRef: one finding
    def uris(*paths: str) -> list[dict[str, str]]:
        return [{"uri": f"https://shop.example.com/{p}", "method": "GET"} for p in paths]

    doc = zap_json(alertRef=None, instances=uris("a", "b"))
    alerts = doc["site"][0]["alerts"]
    alerts.append({**alerts[0], "riskcode": "2", "instances": uris("b", "c")})
    alerts.append({**alerts[0], "instances": uris(*(f"p{i}" for i in range(30)))})
    (finding,) = parse_doc(doc).findings
    assert finding.instance_count == 33
    assert len(finding.instances) == INSTANCE_LIMIT
    assert finding.instances[0].uri == "https://shop.example.com/a"  # sorted over all alerts
    assert finding.severity is Severity.HIGH


def test_without_requests_and_responses() -> None:
    # reports written without request/response bodies still name instances
    data = json.loads((FIXTURES / "owasp_zap.json").read_bytes())
    for site in data["site"]:
        for alert in site["alerts"]:
            for instance in alert["instances"]:
                instance.pop("evidence", None)
                instance.pop("otherinfo", None)
    assert len(parse_doc(data).findings) == 4


def test_bad_riskcode_is_refused_with_its_path() -> None:
    with pytest.raises(ReportError) as info:
        parse_doc(zap_json(riskcode="9"))
    assert any("$.site[0].alerts[0]/riskcode" in p for p in info.value.problems)


def test_bad_json_shapes_are_refused() -> None:
    doc = zap_json()
    doc["site"][0]["alerts"][0]["instances"] = "x"
    with pytest.raises(ReportError) as info:
        parse_doc(doc)
    assert any("$.site[0].alerts[0].instances" in p for p in info.value.problems)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<OWASPZAPReport version="2.10.0"><site name="&lol3;"><alerts/></site></OWASPZAPReport>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<OWASPZAPReport version="2.10.0"><site name="&xxe;"><alerts/></site></OWASPZAPReport>
"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_entity_tricks_are_refused(data: bytes) -> None:
    with pytest.raises(ReportError) as info:
        parse_bytes(data, origin="evil.xml")
    assert "XML refused" in str(info.value)


def test_broken_xml_names_line_and_column(tmp_path: Path) -> None:
    cut = (FIXTURES / "juicy2.xml").read_bytes()[:3000]
    with pytest.raises(ReportError) as info:
        parse_bytes(cut, origin="cut.xml")
    assert str(info.value).startswith("cut.xml:") and "invalid XML" in str(info.value)


def test_golden_folder_has_no_stale_files() -> None:
    expected = {golden_path(GOLDEN, p).name for p in fixtures_of(FIXTURES, PATTERNS)}
    assert {p.name for p in GOLDEN.iterdir()} == expected


_query_values = st.lists(
    st.tuples(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.text(min_size=1, max_size=12)),
    min_size=1,
    max_size=4,
)


@given(_query_values)
def test_query_values_never_reach_an_instance(pairs: list[tuple[str, str]]) -> None:
    uri = "https://shop.example.com/p?" + urlencode(pairs)
    finding = parse_doc(zap_json(instances=[{"uri": uri, "method": "GET"}])).findings[0]
    (instance,) = finding.instances
    assert instance.uri is not None
    kept = parse_qsl(urlsplit(instance.uri).query, keep_blank_values=True)
    assert [name for name, _ in kept] == [name for name, _ in pairs]
    assert all(value == "" for _, value in kept)


def test_credentials_and_session_ids_in_uris_never_reach_the_case_or_the_stored_report() -> None:
    uri = "https://alice:s3cr3t-pw@shop.example.com/cart;jsessionid=S3CR3T-SID/view?id=7#s3cr3t"
    report = parse_doc(zap_json(instances=[{"uri": uri, "method": "GET"}]))
    (instance,) = report.findings[0].instances
    assert instance.uri == "https://shop.example.com/cart;jsessionid=/view?id="
    assert b"s3cr3t" not in report.raw.lower()


def test_xml_nested_too_deeply_to_store_is_refused_with_its_path() -> None:
    deep = "<x>" * 5000 + "</x>" * 5000
    xml = (
        "<?xml version='1.0'?><OWASPZAPReport version='2.14.0'><site name='https://shop'>"
        "<alerts><alertitem><pluginid>1</pluginid><alert>a</alert><riskcode>1</riskcode>"
        "<instances><instance><uri>https://shop/a?sid=s3cr3t</uri></instance></instances>"
        f"{deep}</alertitem></alerts></site></OWASPZAPReport>"
    )
    with pytest.raises(ReportError) as info:
        parse_bytes(xml.encode(), origin="deep.xml")
    assert "nested too deeply" in str(info.value)
    assert "/OWASPZAPReport/site/alerts/alertitem/x/x" in str(info.value)


SECRET_TRAFFIC = {
    "uri": "https://shop.example.com/login?next=%2Fhome&token=s3cr3t-query",
    "method": "POST",
    "param": "password",
    "request-header": "POST /login HTTP/1.1\r\nHost: shop.example.com\r\n"
    "Authorization: Bearer s3cr3t-bearer\r\nCookie: session=s3cr3t-cookie\r\n\r\n",
    "request-body": "user=alice&password=s3cr3t-password",
    "response-header": "HTTP/1.1 302 Found\r\nSet-Cookie: session=s3cr3t-set; HttpOnly\r\n"
    "Location: /home\r\n\r\n",
    "response-body": "<html>moved</html>",
}


def test_traffic_secrets_never_reach_the_stored_json_report() -> None:
    report = parse_doc(zap_json(instances=[SECRET_TRAFFIC]))
    assert b"s3cr3t" not in report.raw
    stored = json.loads(report.raw)
    instance = stored["site"][0]["alerts"][0]["instances"][0]
    assert "Host: shop.example.com\r\n" in instance["request-header"]
    assert "Location: /home" in instance["response-header"]  # harmless headers stay
    assert instance["response-body"] == "<html>moved</html>"
    assert instance["uri"] == "https://shop.example.com/login?next=&token="
    assert parse_bytes(report.raw, origin="again.json").findings == report.findings


def test_traffic_secrets_never_reach_the_stored_xml_report() -> None:
    xml = (
        b"<?xml version='1.0'?><OWASPZAPReport version='2.14.0'><site name='https://shop'>"
        b"<alerts><alertitem><pluginid>10010</pluginid><alertRef>10010</alertRef>"
        b"<alert>Cookie No HttpOnly Flag</alert><riskcode>1</riskcode><confidence>2</confidence>"
        b"<instances><instance><uri>https://shop/a?sid=s3cr3t-q</uri><method>GET</method>"
        b"<requestheader>GET /a HTTP/1.1&#13;\nCookie: sid=s3cr3t-c&#13;\n</requestheader>"
        b"<requestbody>pin=s3cr3t-b</requestbody>"
        b"</instance></instances></alertitem></alerts></site></OWASPZAPReport>"
    )
    report = parse_bytes(xml, origin="zap.xml")
    assert b"s3cr3t" not in report.raw and b"GET /a HTTP/1.1" in report.raw
    assert parse_bytes(report.raw, origin="again.xml").findings == report.findings


def test_reports_before_zap_2_8_name_the_instance_in_the_alert() -> None:
    old_json = zap_json()
    alert = old_json["site"][0]["alerts"][0]
    del alert["instances"]
    alert.update(uri="https://shop.example.com/q?term=s3cr3t", method="GET", param="term")
    finding = parse_doc(old_json).findings[0]
    assert [(i.uri, i.method, i.param) for i in finding.instances] == [
        ("https://shop.example.com/q?term=", "GET", "term")
    ]
    assert b"s3cr3t" not in parse_doc(old_json).raw
    xml = (
        b"<?xml version='1.0'?><OWASPZAPReport version='2.7.0'><site name='https://shop'>"
        b"<alerts><alertitem><pluginid>10010</pluginid><alert>Cookie No HttpOnly Flag</alert>"
        b"<riskcode>1</riskcode><confidence>2</confidence>"
        b"<uri>https://shop/a?sid=s3cr3t</uri><param>sid</param></alertitem></alerts></site>"
        b"</OWASPZAPReport>"
    )
    report = parse_bytes(xml, origin="old.xml")
    assert [i.uri for i in report.findings[0].instances] == ["https://shop/a?sid="]
    assert b"s3cr3t" not in report.raw
