"""The Trivy parser: real fixtures, golden output, stable identities, masking, hostile input."""

from __future__ import annotations

import copy
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regen_golden import FIXTURES, GOLDEN, golden_text
from securecase.domain.findings import Finding, Kind, Report, Severity
from securecase.errors import ReportError, UsageError
from securecase.scanners import parse, parse_bytes
from securecase.scanners.trivy import TITLE_LIMIT
from securecase.scanners.trivy_mask import MASK

C, H, M, L, U = "critical", "high", "medium", "low", "unknown"

#: Findings per severity for every fixture that parses (zero counts left out).
COUNTS: dict[str, dict[str, int]] = {
    "all_statuses.json": {L: 7},  # 8 records, one VEX not_affected
    "alpine-310.json": {M: 4},
    "centos-7.json": {M: 1, L: 2},
    "cvss_severity_source.json": {H: 1, M: 1},
    "debian-buster.json": {C: 1, L: 1},
    "distroless-python27.json": {M: 2, L: 2},
    "dockerfile.json": {H: 1},
    "fluentd-gems.json": {C: 1, H: 1},
    "gomod.json": {M: 1, U: 2},  # GMS-2022-20 in three go.mod files is one finding
    "helm_testchart.json": {H: 1, M: 3, L: 2},
    "issue_9092.json": {H: 1},
    "license_scheme.json": {},  # license results carry no security findings
    "misconfigurations_and_secrets.json": {C: 2, H: 2, M: 1},
    "npm.json": {M: 1},
    "pip.json": {H: 1, M: 1},
    "scheme_2_no_vuln.json": {},
    "secrets.json": {C: 1, H: 1},
    "severity_prio.json": {C: 1, L: 1},
    "spring4shell-jre11.json": {C: 1},
}

#: Fixtures that must be refused, with a phrase the message must contain.
REFUSED: dict[str, str] = {
    "kubernetes.json": "Kubernetes cluster report",
    "legacy_trivy_mix.json": "legacy format (before SchemaVersion 2)",
    "legacy_no_vuln.json": "legacy format (before SchemaVersion 2)",
}

KINDS: dict[str, Counter[Kind]] = {
    "dockerfile.json": Counter({Kind.MISCONFIGURATION: 1}),
    "helm_testchart.json": Counter({Kind.MISCONFIGURATION: 6}),
    "misconfigurations_and_secrets.json": Counter(
        {Kind.VULNERABILITY: 2, Kind.MISCONFIGURATION: 1, Kind.SECRET: 2}
    ),
    "secrets.json": Counter({Kind.SECRET: 2}),
}

SECRET_TEXTS = ("ghp_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "GITHUB_PAT=ghp", "AWS_ACCESS_KEY_ID=")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return data


def parse_doc(doc: object, *, source: str | None = None, origin: str = "mem.json") -> Report:
    return parse_bytes(json.dumps(doc).encode("utf-8"), origin=origin, source=source)


def ids(report: Report) -> set[str]:
    return {f.id for f in report.findings}


def by_rule(report: Report) -> dict[str, Finding]:
    return {f.advisory: f for f in report.findings}


def counts(report: Report) -> dict[str, int]:
    return dict(Counter(f.severity.count_key for f in report.findings))


def problems_of(excinfo: pytest.ExceptionInfo[ReportError]) -> str:
    return "\n".join(excinfo.value.problems)


# --------------------------------------------------------------------------- real fixtures


def test_every_fixture_is_covered() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.json")}
    assert on_disk == set(COUNTS) | set(REFUSED)
    assert not set(COUNTS) & set(REFUSED)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_fixture_counts(name: str) -> None:
    report = parse(FIXTURES / name)
    assert counts(report) == COUNTS[name]
    assert report.tool == "trivy" and report.raw_suffix == ".json"
    assert report.path == str(FIXTURES / name)
    if name in KINDS:
        assert Counter(f.kind for f in report.findings) == KINDS[name]
    ranks = [(-f.severity.rank, f.id) for f in report.findings]
    assert ranks == sorted(ranks)
    assert len(ids(report)) == len(report.findings)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_fixture_matches_golden(name: str) -> None:
    golden = GOLDEN / name
    assert golden.is_file(), "run python tests/regen_golden.py"
    assert golden_text(FIXTURES / name) == golden.read_text("utf-8")


def test_no_stale_golden_files() -> None:
    assert {p.name for p in GOLDEN.glob("*.json")} == set(COUNTS)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_fixture_refused(name: str) -> None:
    with pytest.raises(ReportError) as info:
        parse(FIXTURES / name)
    assert str(info.value).startswith(str(FIXTURES / name) + ": ")
    assert REFUSED[name] in str(info.value)
    assert info.value.hint


def test_legacy_hint_names_the_fix() -> None:
    with pytest.raises(ReportError) as info:
        parse(FIXTURES / "legacy_trivy_mix.json")
    assert info.value.hint is not None and "--format json" in info.value.hint
    assert "0.20" in info.value.hint


def test_raw_is_the_original_bytes_without_secrets() -> None:
    data = (FIXTURES / "alpine-310.json").read_bytes()
    report = parse_bytes(data, origin="a.json")
    assert report.raw is data


def test_report_metadata() -> None:
    report = parse(FIXTURES / "alpine-310.json")
    assert report.source == "trivy-image-testdata-fixtures-images-alpine-310.tar.gz"
    assert report.legacy_source == "trivy-image"
    assert report.tool_version == "dev"
    assert report.scanned_at == "2021-08-25T12:20:30Z"
    assert report.artifact_name == "testdata/fixtures/images/alpine-310.tar.gz"
    assert report.artifact_type == "container_image"
    assert report.image_digest == (
        "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"
    )


def test_image_digest_prefers_repo_digests_and_skips_empty_entries() -> None:
    report = parse(FIXTURES / "license_scheme.json")
    assert report.image_digest == (
        "sha256:bcae378eacedab83da66079d9366c8f5df542d7ed9ab23bf487e3e1a8481375d"
    )
    # all_statuses.json has RepoDigests [""]: fall back to ImageID
    report = parse(FIXTURES / "all_statuses.json")
    assert report.image_digest == (
        "sha256:22ae3921bdaac434bb4cb92dbbc209e46b1f3f70e9fa0b5fbbb43ce7d452c72d"
    )
    doc = load("scheme_2_no_vuln.json")
    assert parse_doc(doc).image_digest is None


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2021-08-25T12:20:30.000000005Z", "2021-08-25T12:20:30Z"),
        ("2024-03-01T09:15:00+02:00", "2024-03-01T07:15:00Z"),
        ("2024-03-01T09:15:00", "2024-03-01T09:15:00"),  # no offset: kept as given
        ("yesterday", "yesterday"),
    ],
)
def test_scanned_at(created: str, expected: str) -> None:
    doc = load("npm.json")
    doc["CreatedAt"] = created
    assert parse_doc(doc).scanned_at == expected


@pytest.mark.parametrize(
    ("artifact_type", "artifact_name", "source", "legacy"),
    [
        (
            "container_image",
            "ghcr.io/acme/shop:1.2",
            "trivy-image-ghcr.io-acme-shop",
            "trivy-image",
        ),
        (
            "container_image",
            "registry:5000/shop@sha256:" + "ab" * 32,
            "trivy-image-registry-5000-shop",
            "trivy-image",
        ),
        ("filesystem", "services/api", "trivy-fs-services-api", "trivy-fs"),
        ("filesystem", ".", "trivy-fs", None),
        (
            "repository",
            "https://github.com/acme/shop",
            "trivy-repo-https-github.com-acme-shop",
            "trivy-repo",
        ),
        ("cyclonedx", "sbom.json", "trivy-sbom-sbom.json", "trivy-sbom"),
        ("spdx", "sbom.spdx.json", "trivy-sbom-sbom.spdx.json", "trivy-sbom"),
        ("vm", "disk.vmdk", "trivy-vm-disk.vmdk", "trivy-vm"),
        ("something_new", "x", "trivy-x", "trivy"),
        (None, None, "trivy", None),
    ],
)
def test_default_source_is_derived_from_the_artifact(
    artifact_type: str | None, artifact_name: str | None, source: str, legacy: str | None
) -> None:
    doc = load("npm.json")
    doc["ArtifactType"] = artifact_type
    doc["ArtifactName"] = artifact_name
    report = parse_doc(doc)
    assert report.source == source
    assert {f.source for f in report.findings} == {source}
    # the per-type name cases written before derived slots use
    assert report.legacy_source == legacy


def test_every_build_of_an_image_shares_its_slot_and_another_image_does_not() -> None:
    doc = load("alpine-310.json")
    doc["ArtifactName"] = "ghcr.io/acme/shop:pr-12-aaaa"
    first = parse_doc(doc)
    doc["ArtifactName"] = "ghcr.io/acme/shop:pr-12-bbbb"
    rebuilt = parse_doc(doc)
    doc["ArtifactName"] = "ghcr.io/acme/worker:pr-12-aaaa"
    other = parse_doc(doc)
    assert first.source == rebuilt.source == "trivy-image-ghcr.io-acme-shop"
    assert ids(first) == ids(rebuilt)
    assert other.source == "trivy-image-ghcr.io-acme-worker"
    assert not ids(first) & ids(other)


def test_a_long_artifact_keeps_a_distinct_valid_slot() -> None:
    doc = load("npm.json")
    doc["ArtifactType"] = "filesystem"
    names = set()
    for tail in ("a", "b"):
        doc["ArtifactName"] = "services/" + "x" * 100 + "/" + tail
        source = parse_doc(doc).source
        assert len(source) == 63 and source.startswith("trivy-fs-services-xxx")
        names.add(source)
    assert len(names) == 2


def test_given_source_names_the_slot_and_changes_ids() -> None:
    default = parse(FIXTURES / "npm.json")
    named = parse(FIXTURES / "npm.json", source="frontend-deps")
    assert named.source == "frontend-deps"
    assert {f.source for f in named.findings} == {"frontend-deps"}
    assert ids(default).isdisjoint(ids(named))


@pytest.mark.parametrize("bad", ["Trivy", "-x", "a b", "../x", "x" * 64, "", "é"])
def test_invalid_source_name_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        parse(FIXTURES / "npm.json", source=bad)


# --------------------------------------------------------------------------- mapping details


def test_vulnerability_fields() -> None:
    report = parse(FIXTURES / "fluentd-gems.json")
    gem = by_rule(report)["CVE-2020-8165"]
    assert gem.kind is Kind.VULNERABILITY
    assert gem.severity is Severity.HIGH
    assert gem.package is not None
    assert gem.package.name == "activesupport"
    assert gem.package.version == "6.0.2.1"
    assert gem.package.fixed_version is not None and "6.0.3.1" in gem.package.fixed_version
    assert gem.location is not None
    gemspec = "var/lib/gems/2.5.0/specifications/activesupport-6.0.2.1.gemspec"
    assert gem.location.path == gemspec
    os_pkg = by_rule(report)["CVE-2019-18224"]
    assert os_pkg.location is None  # OS packages have no file location
    assert os_pkg.package is not None and os_pkg.package.name == "libidn2-0"


def test_cvss_is_the_highest_v3_score_of_any_vendor() -> None:
    def libcrypto(report: Report) -> Finding:
        return next(
            f
            for f in report.findings
            if f.advisory == "CVE-2019-1549"
            and f.package is not None
            and f.package.name == "libcrypto1.1"
        )

    assert libcrypto(parse(FIXTURES / "alpine-310.json")).cvss == 5.3  # nvd 5.3, redhat 4.8
    doc = load("alpine-310.json")
    vuln = doc["Results"][0]["Vulnerabilities"][0]
    assert vuln["PkgName"] == "libcrypto1.1"
    vuln["CVSS"]["redhat"]["V3Score"] = 9.1
    assert libcrypto(parse_doc(doc)).cvss == 9.1
    del vuln["CVSS"]
    assert libcrypto(parse_doc(doc)).cvss is None


def test_purl_and_missing_fixed_version() -> None:
    report = parse(FIXTURES / "alpine-310.json")
    finding = next(iter(report.findings))
    assert finding.package is not None
    assert finding.package.purl is not None and finding.package.purl.startswith("pkg:apk/")
    doc = load("issue_9092.json")
    (only,) = parse_doc(doc).findings
    assert only.package is not None
    assert only.package.fixed_version == "2023.7.22"
    doc["Results"][0]["Vulnerabilities"][0]["FixedVersion"] = ""
    (only,) = parse_doc(doc).findings
    assert only.package is not None and only.package.fixed_version is None
    assert not only.fixable


def test_title_falls_back_to_the_id() -> None:
    finding = by_rule(parse(FIXTURES / "gomod.json"))["CVE-2021-38561"]
    assert finding.title == "CVE-2021-38561"


def test_not_affected_is_skipped_other_statuses_count() -> None:
    rules = set(by_rule(parse(FIXTURES / "all_statuses.json")))
    assert "CVE-2019-18276" not in rules  # Status not_affected
    assert {"CVE-2011-3374", "TEMP-0841856-B18BAF", "CVE-2018-12934"} <= rules


def test_misconfiguration_fields_and_statuses() -> None:
    report = parse(FIXTURES / "helm_testchart.json")
    ksv1 = by_rule(report)["KSV-0001"]
    assert ksv1.kind is Kind.MISCONFIGURATION
    assert ksv1.severity is Severity.MEDIUM
    assert ksv1.title == "Can elevate its own privileges"
    assert ksv1.location is not None
    assert (ksv1.location.path, ksv1.location.start_line, ksv1.location.end_line) == (
        "templates/deployment.yaml",
        28,
        57,
    )
    assert ksv1.package is None
    doc = load("helm_testchart.json")
    misconfs = doc["Results"][0]["Misconfigurations"]
    misconfs[0]["Status"] = "PASS"
    misconfs[1]["Status"] = "EXCEPTION"
    del misconfs[2]["Status"]  # missing status counts as a failure
    assert counts(parse_doc(doc)) == {H: 1, M: 2, L: 1}


def test_dockerfile_misconfiguration_without_lines() -> None:
    (finding,) = parse(FIXTURES / "dockerfile.json").findings
    assert finding.advisory == "DS-0002"
    assert finding.location is not None
    assert finding.location.path == "Dockerfile"
    assert finding.location.start_line is None and finding.location.end_line is None


def test_secret_fields() -> None:
    report = parse(FIXTURES / "secrets.json")
    aws = by_rule(report)["aws-access-key-id"]
    assert aws.kind is Kind.SECRET
    assert aws.severity is Severity.CRITICAL
    assert aws.title == "AWS Access Key ID"
    assert aws.location is not None
    assert (aws.location.path, aws.location.start_line, aws.location.end_line) == (
        "deploy.sh",
        3,
        3,
    )


def test_long_title_is_cut() -> None:
    doc = load("npm.json")
    doc["Results"][0]["Vulnerabilities"][0]["Title"] = "word " * 400
    (finding,) = parse_doc(doc).findings
    assert len(finding.title) == TITLE_LIMIT
    assert finding.title.endswith("…")


def test_title_whitespace_is_flattened() -> None:
    doc = load("npm.json")
    doc["Results"][0]["Vulnerabilities"][0]["Title"] = "two\nlines\tand  gaps"
    (finding,) = parse_doc(doc).findings
    assert finding.title == "two lines and gaps"


# --------------------------------------------------------------------------- identity


def shuffled(doc: dict[str, Any], seed: int) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    rng = random.Random(seed)
    rng.shuffle(out["Results"])
    for result in out["Results"]:
        for key in ("Vulnerabilities", "Misconfigurations", "Secrets"):
            if result.get(key):
                rng.shuffle(result[key])
    return out


@pytest.mark.parametrize(
    "name",
    [
        "gomod.json",
        "fluentd-gems.json",
        "misconfigurations_and_secrets.json",
        "helm_testchart.json",
        "alpine-310.json",
    ],
)
def test_findings_do_not_depend_on_order(name: str) -> None:
    doc = load(name)
    baseline = parse_doc(doc).findings
    reversed_doc = copy.deepcopy(doc)
    reversed_doc["Results"].reverse()
    for result in reversed_doc["Results"]:
        for key in ("Vulnerabilities", "Misconfigurations", "Secrets"):
            if result.get(key):
                result[key].reverse()
    assert parse_doc(reversed_doc).findings == baseline
    for seed in range(5):
        assert parse_doc(shuffled(doc, seed)).findings == baseline


def test_ids_stable_across_retag_rebuild_and_scanner_upgrade() -> None:
    doc = load("alpine-310.json")
    # in one named slot; by default another image name is another slot (see above)
    baseline = ids(parse_doc(doc, source="trivy-image"))
    doc["ArtifactName"] = "ghcr.io/acme/other-name:v2"
    doc["Metadata"]["RepoTags"] = ["ghcr.io/acme/other-name:v2"]
    doc["Metadata"]["RepoDigests"] = ["ghcr.io/acme/other-name@sha256:" + "ab" * 32]
    doc["Metadata"]["ImageID"] = "sha256:" + "cd" * 32
    doc["Trivy"]["Version"] = "0.99.0"
    doc["Results"][0]["Target"] = "ghcr.io/acme/other-name:v2 (alpine 3.10.9)"
    for vuln in doc["Results"][0]["Vulnerabilities"]:
        vuln["Layer"] = {"Digest": "sha256:" + "ef" * 32}
    report = parse_doc(doc, source="trivy-image")
    assert ids(report) == baseline
    assert report.image_digest == "sha256:" + "ab" * 32


def test_ids_stable_when_installed_version_bumps_but_stays_vulnerable() -> None:
    doc = load("pip.json")
    baseline = by_rule(parse_doc(doc))
    for vuln in doc["Results"][0]["Vulnerabilities"]:
        vuln["InstalledVersion"] = "0.12"
    after = by_rule(parse_doc(doc))
    assert {r: f.id for r, f in after.items()} == {r: f.id for r, f in baseline.items()}
    werkzeug = after["CVE-2019-14806"].package
    assert werkzeug is not None and werkzeug.version == "0.12"


def test_ids_differ_for_another_cve_or_package() -> None:
    doc = load("npm.json")
    (base,) = parse_doc(doc).findings
    other_cve = copy.deepcopy(doc)
    other_cve["Results"][0]["Vulnerabilities"][0]["VulnerabilityID"] = "CVE-2020-11022"
    other_pkg = copy.deepcopy(doc)
    other_pkg["Results"][0]["Vulnerabilities"][0]["PkgName"] = "jquery-ui"
    other_type = copy.deepcopy(doc)
    other_type["Results"][0]["Type"] = "yarn"
    found = {base.id, *(parse_doc(d).findings[0].id for d in (other_cve, other_pkg, other_type))}
    assert len(found) == 4


def test_lockfile_move_keeps_the_id() -> None:
    doc = load("npm.json")
    (base,) = parse_doc(doc).findings
    doc["Results"][0]["Target"] = "web/package-lock.json"
    (moved,) = parse_doc(doc).findings
    assert moved.id == base.id
    assert moved.location is not None and moved.location.path == "web/package-lock.json"


def test_duplicates_collapse_to_the_worst_and_first_record() -> None:
    doc = load("gomod.json")
    # the same package + CVE in three go.mod files: one finding, located at the first path
    gms = by_rule(parse_doc(doc))["GMS-2022-20"]
    assert gms.location is not None and gms.location.path == "go.mod"
    # make the copy in submod2 worse and older: it wins, whatever the order
    doc["Results"][2]["Vulnerabilities"][0]["Severity"] = "HIGH"
    doc["Results"][2]["Vulnerabilities"][0]["InstalledVersion"] = "v2.6.0"
    for seed in range(4):
        gms = by_rule(parse_doc(shuffled(doc, seed)))["GMS-2022-20"]
        assert gms.severity is Severity.HIGH
        assert gms.location is not None and gms.location.path == "submod2/go.mod"
        assert gms.package is not None and gms.package.version == "v2.6.0"


def test_misconfiguration_identity_ignores_lines_but_not_message() -> None:
    doc = load("helm_testchart.json")
    base = by_rule(parse_doc(doc))
    for misconf in doc["Results"][0]["Misconfigurations"]:
        cause = misconf.get("CauseMetadata") or {}
        if cause.get("StartLine"):
            cause["StartLine"] += 10
            cause["EndLine"] += 10
    shifted = by_rule(parse_doc(doc))
    assert {r: f.id for r, f in shifted.items()} == {r: f.id for r, f in base.items()}
    assert shifted["KSV-0001"].location is not None
    assert shifted["KSV-0001"].location.start_line == 38
    doc["Results"][0]["Misconfigurations"][0]["Message"] = "Container 'sidecar' of Deployment"
    assert by_rule(parse_doc(doc))["KSV-0001"].id != base["KSV-0001"].id


def test_secret_identity_uses_a_hash_of_the_match() -> None:
    doc = load("secrets.json")
    base = by_rule(parse_doc(doc))
    doc["Results"][0]["Secrets"][0]["StartLine"] = 30
    doc["Results"][0]["Secrets"][0]["EndLine"] = 30
    moved = by_rule(parse_doc(doc))
    assert moved["aws-access-key-id"].id == base["aws-access-key-id"].id
    doc["Results"][0]["Secrets"][0]["Match"] = "export AWS_ACCESS_KEY_ID=*****other"
    assert by_rule(parse_doc(doc))["aws-access-key-id"].id != base["aws-access-key-id"].id


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_vulnerability_order_never_matters(data: st.DataObject) -> None:
    name = data.draw(
        st.sampled_from(
            [
                "gomod.json",
                "all_statuses.json",
                "centos-7.json",
                "distroless-python27.json",
                "fluentd-gems.json",
            ]
        )
    )
    doc = load(name)
    baseline = parse_doc(doc)
    permuted = copy.deepcopy(doc)
    permuted["Results"] = data.draw(st.permutations(permuted["Results"]))
    for result in permuted["Results"]:
        if result.get("Vulnerabilities"):
            result["Vulnerabilities"] = data.draw(st.permutations(result["Vulnerabilities"]))
    report = parse_doc(permuted)
    assert {(f.id, f.severity) for f in report.findings} == {
        (f.id, f.severity) for f in baseline.findings
    }
    assert report.findings == baseline.findings


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]),
            st.sampled_from(["1.0", "1.1", "2.0"]),
            st.sampled_from(["a/package-lock.json", "b/package-lock.json"]),
            st.sampled_from(["CVE-2024-0001", "CVE-2024-0002"]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_property_duplicate_collapse_is_order_independent(
    records: list[tuple[str, str, str, str]], rng: random.Random
) -> None:
    def build(rows: list[tuple[str, str, str, str]]) -> dict[str, Any]:
        results = [
            {
                "Target": target,
                "Class": "lang-pkgs",
                "Type": "npm",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": cve,
                        "PkgName": "lodash",
                        "InstalledVersion": version,
                        "Severity": severity,
                    }
                ],
            }
            for severity, version, target, cve in rows
        ]
        return {
            "SchemaVersion": 2,
            "ArtifactName": ".",
            "ArtifactType": "filesystem",
            "Results": results,
        }

    baseline = parse_doc(build(records))
    rows = list(records)
    rng.shuffle(rows)
    assert parse_doc(build(rows)).findings == baseline.findings
    assert len(baseline.findings) == len({cve for *_, cve in records})
    worst = {
        cve: max((Severity(s) for s, *_, c in records if c == cve), key=lambda s: s.rank)
        for *_, cve in records
    }
    assert {f.advisory: f.severity for f in baseline.findings} == worst


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("name", ["secrets.json", "misconfigurations_and_secrets.json"])
def test_secret_text_never_leaves_the_parser(name: str) -> None:
    original = (FIXTURES / name).read_bytes()
    report = parse(FIXTURES / name)
    assert report.raw != original
    assert report.raw.endswith(b"}\n")
    masked = json.loads(report.raw)
    for result in masked["Results"]:
        for secret in result.get("Secrets") or []:
            assert secret["Match"] == MASK
            for line in (secret.get("Code") or {}).get("Lines") or []:
                assert line.get("Content", "") in ("", MASK)
                assert line.get("Highlighted", "") in ("", MASK)
    findings_text = repr(report.findings)
    for text in SECRET_TEXTS:
        if text.encode() in original:
            assert text.encode() not in report.raw
            assert text not in findings_text
    # everything but the secret records is unchanged
    doc = json.loads(original)
    assert [r.get("Target") for r in masked["Results"]] == [r.get("Target") for r in doc["Results"]]
    assert masked["ArtifactName"] == doc["ArtifactName"]


def test_the_known_secret_is_in_the_fixture_but_not_in_raw() -> None:
    token = b"ghp_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert token in (FIXTURES / "secrets.json").read_bytes()
    assert token not in parse(FIXTURES / "secrets.json").raw


def test_unknown_secret_fields_are_masked_too() -> None:
    doc = load("secrets.json")
    doc["Results"][0]["Secrets"][0]["Context"] = "AKIAIOSFODNN7EXAMPLE"
    doc["Results"][0]["Secrets"][0]["Code"]["Lines"].append("AKIAIOSFODNN7EXAMPLE raw line")
    report = parse_doc(doc)
    assert b"AKIAIOSFODNN7EXAMPLE" not in report.raw


def test_misconfiguration_code_on_a_secret_line_is_masked() -> None:
    doc = load("helm_testchart.json")
    doc["Results"].append(
        {
            "Target": "templates/deployment.yaml",
            "Class": "secret",
            "Secrets": [
                {
                    "RuleID": "generic",
                    "Severity": "HIGH",
                    "Title": "Secret",
                    "StartLine": 30,
                    "EndLine": 30,
                    "Match": "capabilities: ****",
                }
            ],
        }
    )
    report = parse_doc(doc)
    masked = json.loads(report.raw)
    lines = masked["Results"][0]["Misconfigurations"][0]["CauseMetadata"]["Code"]["Lines"]
    by_number = {line["Number"]: line for line in lines}
    assert by_number[30]["Content"] == MASK and by_number[30]["Highlighted"] == MASK
    assert by_number[29]["Content"] == "          securityContext:"


# --------------------------------------------------------------------------- broken reports


def refuse(doc: object) -> pytest.ExceptionInfo[ReportError]:
    with pytest.raises(ReportError) as info:
        parse_doc(doc, origin="bad.json")
    assert str(info.value).startswith("bad.json: ")
    return info


def test_bad_severity_names_the_json_path() -> None:
    doc = load("fluentd-gems.json")
    doc["Results"][1]["Vulnerabilities"][0]["Severity"] = "SUPER"
    info = refuse(doc)
    assert info.value.problems == (
        "$.Results[1].Vulnerabilities[0].Severity: expected one of CRITICAL, HIGH, MEDIUM, "
        "LOW, UNKNOWN, got 'SUPER'",
    )
    assert "1 problem" in str(info.value)


def test_vulnerability_without_id_names_the_json_path() -> None:
    doc = load("pip.json")
    del doc["Results"][0]["Vulnerabilities"][1]["VulnerabilityID"]
    info = refuse(doc)
    assert "$.Results[0].Vulnerabilities[1].VulnerabilityID: missing" in info.value.problems


def test_all_problems_are_collected_then_reported_once() -> None:
    doc = load("alpine-310.json")
    vulns = doc["Results"][0]["Vulnerabilities"]
    del vulns[0]["PkgName"]
    vulns[1]["Severity"] = 3
    vulns[2] = "CVE-2019-1549"
    vulns[3]["CVSS"]["nvd"]["V3Score"] = 11
    problems = refuse(doc).value.problems
    assert problems == (
        "$.Results[0].Vulnerabilities[0].PkgName: missing",
        "$.Results[0].Vulnerabilities[1].Severity: expected one of CRITICAL, HIGH, MEDIUM, LOW, "
        "UNKNOWN, got number",
        "$.Results[0].Vulnerabilities[2]: expected an object, got string",
        "$.Results[0].Vulnerabilities[3].CVSS.nvd.V3Score: expected a score from 0 to 10, got 11",
    )


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d.update(Results="all good"), "$.Results: expected an array, got string"),
        (lambda d: d["Results"].append(7), "$.Results[1]: expected an object, got number"),
        (
            lambda d: d["Results"][0].update(Vulnerabilities={}),
            "$.Results[0].Vulnerabilities: expected an array, got object",
        ),
        (
            lambda d: d["Results"][0]["Vulnerabilities"][0].update(PkgName=["jquery"]),
            "$.Results[0].Vulnerabilities[0].PkgName: expected a string, got array",
        ),
        (
            lambda d: d["Results"][0]["Vulnerabilities"][0].update(Title=5),
            "$.Results[0].Vulnerabilities[0].Title: expected a string, got number",
        ),
        (
            lambda d: d["Results"][0]["Vulnerabilities"][0].update(VulnerabilityID=""),
            "$.Results[0].Vulnerabilities[0].VulnerabilityID: empty",
        ),
        (
            lambda d: d["Results"][0]["Vulnerabilities"][0].update(Status=False),
            "$.Results[0].Vulnerabilities[0].Status: expected a string, got boolean",
        ),
        (
            lambda d: d["Results"][0]["Vulnerabilities"][0].update(CVSS=[]),
            "$.Results[0].Vulnerabilities[0].CVSS: expected an object, got array",
        ),
        (lambda d: d.update(Trivy="dev"), "$.Trivy: expected an object, got string"),
        (lambda d: d.update(Metadata=[]), "$.Metadata: expected an object, got array"),
    ],
)
def test_wrong_types_are_located(mutate: Any, problem: str) -> None:
    doc = load("npm.json")
    mutate(doc)
    assert problem in refuse(doc).value.problems


def test_misconfiguration_and_secret_problems_are_located() -> None:
    doc = load("misconfigurations_and_secrets.json")
    doc["Results"][1]["Misconfigurations"][0]["Status"] = "MAYBE"
    doc["Results"][1]["Misconfigurations"][0]["CauseMetadata"]["StartLine"] = "ten"
    del doc["Results"][2]["Secrets"][0]["RuleID"]
    del doc["Results"][3]["Target"]
    problems = refuse(doc).value.problems
    assert problems == (
        "$.Results[1].Misconfigurations[0].Status: expected FAIL, PASS or EXCEPTION, got 'MAYBE'",
        "$.Results[1].Misconfigurations[0].CauseMetadata.StartLine: expected a line number, "
        "got 'ten'",
        "$.Results[2].Secrets[0].RuleID: missing",
        "$.Results[3].Target: missing",
    )


def test_problem_list_is_capped() -> None:
    doc = load("npm.json")
    record = doc["Results"][0]["Vulnerabilities"][0]
    doc["Results"][0]["Vulnerabilities"] = [dict(record, Severity="BAD")] * 120
    info = refuse(doc)
    assert "120 problems" in str(info.value)
    assert len(info.value.problems) == 51
    assert info.value.problems[-1] == "... and 70 more problems"


@pytest.mark.parametrize("results", [None, []])
def test_no_results_is_zero_findings(results: object) -> None:
    doc = load("npm.json")
    doc["Results"] = results
    assert parse_doc(doc).findings == ()
    del doc["Results"]
    assert parse_doc(doc).findings == ()


def test_null_finding_lists_are_empty() -> None:
    doc = load("npm.json")
    doc["Results"][0].update(Vulnerabilities=None, Misconfigurations=None, Secrets=None)
    assert parse_doc(doc).findings == ()


def test_license_and_custom_results_are_ignored_even_when_odd() -> None:
    doc = load("spring4shell-jre11.json")
    doc["Results"][2]["CustomResources"] = [{"anything": True}]
    doc["Results"][2]["Vulnerabilities"] = "not checked for custom results"
    assert counts(parse_doc(doc)) == {C: 1}


def write_huge(tmp_path: Path, field: str) -> Path:
    """pip.json with one field of the first vulnerability holding a 100 MB string."""
    doc = load("pip.json")
    doc["Results"][0]["Vulnerabilities"][0][field] = "@@HUGE@@"
    data = json.dumps(doc).encode("utf-8")
    path = tmp_path / f"huge-{field}.json"
    with path.open("wb") as out:
        head, tail = data.split(b"@@HUGE@@")
        out.write(head)
        out.write(b"A" * 100_000_000)
        out.write(tail)
    return path


def test_100mb_title_is_cut_quickly(tmp_path: Path) -> None:
    path = write_huge(tmp_path, "Title")
    started = time.perf_counter()
    report = parse(path, max_bytes=200_000_000)
    elapsed = time.perf_counter() - started
    assert elapsed < 5, elapsed
    assert max(len(f.title) for f in report.findings) == TITLE_LIMIT
    assert by_rule(report)["CVE-2019-14806"].title == "A" * (TITLE_LIMIT - 1) + "…"
    assert len(report.raw) > 100_000_000  # the stored raw copy is the file as given


def test_100mb_identity_field_is_refused_quickly(tmp_path: Path) -> None:
    path = write_huge(tmp_path, "PkgName")
    started = time.perf_counter()
    with pytest.raises(ReportError) as info:
        parse(path, max_bytes=200_000_000)
    assert time.perf_counter() - started < 5
    (problem,) = info.value.problems
    assert problem.startswith("$.Results[0].Vulnerabilities[0].PkgName: 100000000 characters")
    assert len(str(info.value)) + len(problem) < 500


def test_lone_surrogates_do_not_break_output() -> None:
    data = (
        (FIXTURES / "secrets.json")
        .read_bytes()
        .replace(b'"Title": "My Secret"', b'"Title": "My \\ud800 Secret"')
    )
    report = parse_bytes(data, origin="s.json")
    assert by_rule(report)["mysecret"].title.encode("utf-8")
    assert json.loads(report.raw)["Results"][0]["Secrets"][1]["Title"] == "My \ud800 Secret"


# --------------------------------------------------------------------------- odd records


ODD_TEXT = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=8),
    st.sampled_from(["a  b", "tab\there", "é", "x" * 501, "\ud800", "CVE-1"]),
    st.integers(),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "VulnerabilityID": ODD_TEXT,
            "PkgName": ODD_TEXT,
            "Severity": st.one_of(ODD_TEXT, st.sampled_from(["HIGH", "LOW", "high"])),
            "Status": ODD_TEXT,
            "Title": ODD_TEXT,
            "InstalledVersion": ODD_TEXT,
            "FixedVersion": ODD_TEXT,
            "PkgPath": ODD_TEXT,
            "PkgIdentifier": st.one_of(
                ODD_TEXT, st.fixed_dictionaries({}, optional={"PURL": ODD_TEXT})
            ),
            "CVSS": st.one_of(
                ODD_TEXT,
                st.dictionaries(
                    st.sampled_from(["nvd", "redhat"]),
                    st.one_of(
                        ODD_TEXT,
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "V3Score": st.one_of(
                                    st.none(), st.floats(), st.integers(-1, 11), st.text()
                                )
                            },
                        ),
                    ),
                ),
            ),
        },
    ),
    st.booleans(),
)
def test_property_any_record_gives_a_finding_or_located_problems(
    record: dict[str, Any], lang: bool
) -> None:
    """Whatever a vulnerability record holds, the parser either keeps it as a finding or
    refuses the report with problems located inside that record; it never crashes."""
    result = {"Target": "lock.json", "Class": "lang-pkgs" if lang else "os-pkgs"}
    doc = {"SchemaVersion": 2, "Results": [{**result, "Vulnerabilities": [record]}]}
    try:
        report = parse_doc(doc)
    except ReportError as error:
        assert error.problems
        assert all(p.startswith("$.Results[0].Vulnerabilities[0]") for p in error.problems)
        return
    if record.get("Status") == "not_affected":
        assert report.findings == ()
        return
    (finding,) = report.findings
    assert finding.advisory == record["VulnerabilityID"]
    assert finding.package is not None and finding.package.name == record["PkgName"]
    assert finding.title  # never empty: the advisory id stands in for a missing title


def test_secrets_hidden_in_ignored_or_malformed_places_are_masked() -> None:
    doc = load("license_scheme.json")  # license results are skipped, their secrets still masked
    doc["Results"][0]["Secrets"] = [{"Match": "AKIAIOSFODNN7EXAMPLE"}, "AKIAIOSFODNN7EXAMPLE"]
    doc["Results"][1]["Secrets"] = "AKIAIOSFODNN7EXAMPLE"
    report = parse_doc(doc)
    assert report.findings == ()
    assert b"AKIAIOSFODNN7EXAMPLE" not in report.raw


def test_lone_surrogate_in_a_stored_field_is_a_problem() -> None:
    data = (
        (FIXTURES / "npm.json")
        .read_bytes()
        .replace(b'"PkgName": "jquery"', b'"PkgName": "jq\\udc00uery"', 1)
    )
    with pytest.raises(ReportError) as info:
        parse_bytes(data, origin="s.json")
    (problem,) = info.value.problems
    assert problem.startswith("$.Results[0].Vulnerabilities[0].PkgName: not valid Unicode")


def test_non_ascii_fields_are_kept() -> None:
    doc = load("npm.json")
    doc["Results"][0]["Vulnerabilities"][0]["PkgName"] = "jquéry"
    doc["Results"][0]["Vulnerabilities"][0]["Title"] = "Pollution über alles"
    (finding,) = parse_doc(doc).findings
    assert finding.package is not None and finding.package.name == "jquéry"
    assert finding.title == "Pollution über alles"


def test_lockfile_lines_locate_vulnerabilities_without_changing_their_identity() -> None:
    original = json.loads((FIXTURES / "npm.json").read_bytes())
    before = {f.id: f for f in parse_bytes(json.dumps(original).encode(), origin="npm").findings}
    jquery = next(f for f in before.values() if f.package and f.package.name == "jquery")
    assert jquery.location is not None and jquery.location.path == "package-lock.json"
    assert jquery.location.start_line is not None  # from the result's package list
    shifted = copy.deepcopy(original)
    for package in shifted["Results"][0]["Packages"]:
        for spot in package.get("Locations", []):
            spot["StartLine"] += 7
            spot["EndLine"] += 7
    after = {f.id: f for f in parse_bytes(json.dumps(shifted).encode(), origin="npm").findings}
    assert after.keys() == before.keys()  # a lockfile edit above moves lines, not identities
    moved = after[jquery.id].location
    assert moved is not None and moved.start_line == jquery.location.start_line + 7
    # without the package list (no --list-all-pkgs) the finding has its file but no line
    del shifted["Results"][0]["Packages"]
    bare = {f.id: f for f in parse_bytes(json.dumps(shifted).encode(), origin="npm").findings}
    assert bare.keys() == before.keys()
    assert bare[jquery.id].location == type(moved)(path="package-lock.json")
