"""``securecase report`` over a cases repo built by the real CLI under fixed clocks.

The expected numbers are worked out by hand from the timeline in ``reportrepo.py``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_prom

from conftest import git, run_cli
from reportrepo import NOW, build, stamp


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("report")
    build(work)
    return work


def report(work: Path, *args: str, output: str = "json") -> Any:
    proc = run_cli("report", "--output", output, *args, cwd=work, SECURECASE_NOW=stamp(NOW))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if output == "json" else proc.stdout


def test_headline_counts(built: Path) -> None:
    data = report(built)
    assert data["window"] == {"since": "2026-09-13", "until": "2026-12-12"}
    # PR 42 (TRIAGED: MEDIUM), PR 43 (MEDIUM), api (HIGH + MEDIUM), web (LOW).
    assert data["open_cases"] == 4
    assert data["open_findings"] == {
        "critical": 0,
        "high": 1,
        "medium": 3,
        "low": 1,
        "info": 0,
        "unknown": 0,
    }
    by_repo = {r["repo"]: (r["open_cases"], r["open_findings"]) for r in data["by_repo"]}
    assert by_repo["acme/shop"][0] == 2 and by_repo["acme/shop"][1]["medium"] == 2
    assert by_repo["acme/api"][0] == 1 and by_repo["acme/api"][1]["high"] == 1
    assert by_repo["acme/web"][1]["low"] == 1
    # Most open findings first (2 each: then more open cases first), then by name.
    assert [r["repo"] for r in data["by_repo"]] == ["acme/shop", "acme/api", "acme/web"]
    # Default slots name the scanned artifact: pip's in PR 42 and api, npm's in PR 43.
    assert data["by_source"] == {
        "trivy-repo-testdata-fixtures-repo-pip": 3,
        "trivy-repo-testdata-fixtures-repo-npm": 1,
        "trivy-sbom-sbom.json": 1,
    }
    assert data["by_kind"] == {"vulnerability": 5}


def test_weekly_counts(built: Path) -> None:
    weekly = {w["week"]: (w["appeared"], w["fixed"]) for w in report(built)["weekly"]}
    # W45 (Nov 2-8): 2 (PR 42) + 2 (api) + 2 (web) + 1 (PR 43, day 3) first seen.
    # W46 (Nov 9-15): the CRITICAL of web (day 9) and the HIGH of PR 42 (day 10) resolved.
    assert weekly["2026-W45"] == (7, 0)
    assert weekly["2026-W46"] == (0, 2)
    assert sum(a for a, _ in weekly.values()) == 7 and sum(f for _, f in weekly.values()) == 2
    weeks = list(weekly)
    assert weeks[0] == "2026-W37" and weeks[-1] == "2026-W50" and len(weeks) == 14


def test_mttr_and_mtta(built: Path) -> None:
    data = report(built)
    assert data["mttr_days"]["high"] == {"mean": 10.0, "median": 10.0, "count": 1}
    # web's CRITICAL: first seen day 0 02h, resolved day 9 09h = 8.92 days.
    assert data["mttr_days"]["critical"] == {"mean": 8.92, "median": 8.92, "count": 1}
    assert data["mttr_days"]["medium"] == {"mean": None, "median": None, "count": 0}
    # Alice's triage commit came 5 hours after the case was created; the bot's status
    # changes (web, PR 42 rescans) are not acknowledgements.
    assert data["mtta_hours"] == {"mean": 5.0, "median": 5.0, "count": 1}


def test_sla_exceptions_gate(built: Path) -> None:
    data = report(built)
    # Open: api's HIGH is 40 days old (SLA 30) -> overdue; MEDIUMs (90) and LOW (180) not.
    # Resolved: HIGH after 10 days (in time), CRITICAL after 8.9 (SLA 7: late) -> 50%.
    assert data["sla"]["overdue"] == 1
    assert data["sla"]["resolved_within_sla_pct"] == 50.0
    # Day 40 is 2026-12-12: EXC-LONG active, EXC-SOON (12-20) expiring, EXC-OVER expired.
    assert data["exceptions"] == {"active": 2, "expiring": 1, "expired": 1}
    # PR scans: PR 42 day 0 (block), PR 43 day 3 (pass), PR 42 day 10 (pass); branches are
    # not PR scans.
    assert data["gate"] == {
        "pr_scans": 3,
        "blocked": 1,
        "block_rate": 0.3333,
        "top_rules": [{"rule": "no-high-into-main", "blocked": 1}],
    }


def test_exposure(built: Path) -> None:
    exposure = report(built)["exposure"]
    assert exposure[0] == {
        "advisory": "CVE-2020-28724",
        "package": "Werkzeug",
        "repos": 2,
        "cases": 2,
    }
    rest = {(e["advisory"], e["package"]): (e["repos"], e["cases"]) for e in exposure[1:]}
    assert rest == {
        ("CVE-2019-14806", "Werkzeug"): (1, 1),  # resolved in PR 42, still open in api
        ("CVE-2019-11358", "jquery"): (1, 1),
        ("CVE-2023-46218", "curl"): (1, 1),
    }


def test_repo_globs_are_case_insensitive(built: Path) -> None:
    data = report(built, "--repo", "ACME/Sh*")
    assert data["open_cases"] == 2
    assert [r["repo"] for r in data["by_repo"]] == ["acme/shop"]
    assert data["mtta_hours"]["count"] == 1 and data["mttr_days"]["critical"]["count"] == 0
    assert data["gate"]["pr_scans"] == 3
    assert {e["advisory"] for e in data["exposure"]} == {"CVE-2020-28724", "CVE-2019-11358"}
    other = report(built, "--repo", "acme/web", "--repo", "acme/api")
    assert other["open_cases"] == 2 and other["gate"]["pr_scans"] == 0


def test_window_limits_what_counts(built: Path) -> None:
    # A window that ends before day 9 holds no resolution, no triage; a later one no scan.
    early = report(built, "--since", "2026-11-01", "--until", "2026-11-08")
    assert early["mttr_days"]["high"]["count"] == 0 and early["weekly"][-1]["fixed"] == 0
    assert early["mtta_hours"]["count"] == 1 and early["gate"]["pr_scans"] == 2
    late = report(built, "--since", "2026-11-13", "--until", "2026-12-12")
    assert late["gate"]["pr_scans"] == 0 and late["mtta_hours"]["count"] == 0
    assert all(w["appeared"] == 0 for w in late["weekly"])
    # Open counts are the state now, whatever the window.
    assert late["open_cases"] == early["open_cases"] == 4


def test_bad_window_is_a_usage_error(built: Path) -> None:
    proc = run_cli(
        "report",
        "--since",
        "2026-12-01",
        "--until",
        "2026-11-01",
        cwd=built,
        SECURECASE_NOW=stamp(NOW),
    )
    assert proc.returncode == 2 and "--since 2026-12-01 is after --until" in proc.stderr


def test_missing_cases_repo(tmp_path: Path) -> None:
    proc = run_cli("report", "--cases-repo", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2 and "no cases repo" in proc.stderr


def test_openmetrics_parses(built: Path) -> None:
    text = report(built, output="openmetrics")
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_om(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("securecase_open_cases", ())] == 4
    assert samples[("securecase_open_findings", (("severity", "medium"),))] == 3
    assert samples[("securecase_mttr_days_mean", (("severity", "high"),))] == 10.0
    assert samples[("securecase_mtta_hours_mean", ())] == 5.0
    assert samples[("securecase_gate_blocked", ())] == 1
    assert samples[("securecase_sla_resolved_within_ratio", ())] == 0.5
    key = ("securecase_exposure_repos", (("advisory", "CVE-2020-28724"), ("package", "Werkzeug")))
    assert samples[key] == 2
    # The Prometheus text parser (textfile collector, Pushgateway) reads it too.
    prom = {f.name for f in parse_prom(text)}
    assert {"securecase_open_cases", "securecase_exceptions"} <= prom


def test_csv_and_text(built: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(report(built, output="csv"))))
    values = {(r["metric"], r["labels"]): r["value"] for r in rows}
    assert values[("open_cases", "")] == "4"
    assert values[("mttr_days_mean", "severity=high")] == "10.0"
    assert values[("appeared", "week=2026-W45")] == "7"
    assert values[("exposure_repos", "advisory=CVE-2020-28724;package=Werkzeug")] == "2"
    text = report(built, output="text")
    assert "Open cases: 4" in text and "MTTA: mean 5 h" in text
    assert "1 overdue now; 50% resolved within SLA" in text


def test_html_page_is_self_contained(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report(built, "--html", str(out))
    page = (out / "index.html").read_text()
    assert page.count("<svg") == 3
    # Nothing to fetch: no external script, style sheet, image or font.
    for fetch in ("src=", "<link", "@import", "url(http", 'href="http'):
        assert fetch not in page, fetch
    head = git(built / "security-cases", "rev-parse", "HEAD").strip()
    web = tmp_path / "site-web"
    report(built, "--html", str(web), "--cases-web-url", "https://github.com/acme/security-cases")
    linked = (web / "index.html").read_text()
    url = (
        f"https://github.com/acme/security-cases/blob/{head}/cases/github/acme/shop/pr-42/case.yaml"
    )
    assert f'href="{url}"' in linked
    local = (built / "security-cases/cases/github/acme/api/branch-main/case.yaml").as_uri()
    assert f'href="{local}"' in page


def listed(work: Path, *args: str) -> list[str]:
    proc = run_cli("cases", "list", *args, "--output", "json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return [row["key"] for row in json.loads(proc.stdout)]


def test_cases_list_by_advisory_and_package(built: Path) -> None:
    # CVE-2019-14806 was resolved in PR 42 on day 10: only acme/api still has it open.
    assert listed(built, "--advisory", "CVE-2019-14806") == ["github::acme::api::BR::main"]
    assert listed(built, "--advisory", "CVE-2020-*", "--package", "Werkzeug") == [
        "github::acme::api::BR::main",
        "github::acme::shop::PR::42",
    ]
    assert listed(built, "--package", "jq*") == ["github::acme::shop::PR::43"]
    assert listed(built, "--advisory", "CVE-2019-11358", "--package", "Werkzeug") == []
    assert listed(built, "--package", "curl", "--repo", "acme/shop") == []
