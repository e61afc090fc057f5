"""Build Trivy reports of any size from the real fixtures (for tests and benchmarks).

Vulnerability records are copied from tests/fixtures/trivy and given distinct ids and package
names, so the result is real Trivy data, only more of it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trivy"
TEMPLATE_FILES = (
    "alpine-310.json",
    "debian-buster.json",
    "centos-7.json",
    "npm.json",
    "pip.json",
    "fluentd-gems.json",
    "distroless-python27.json",
)


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text("utf-8"))
    return data


def template_vulnerabilities() -> list[dict[str, Any]]:
    """Every vulnerability record of the template fixtures."""
    records: list[dict[str, Any]] = []
    for name in TEMPLATE_FILES:
        for result in load_fixture(name).get("Results") or []:
            records.extend(result.get("Vulnerabilities") or [])
    return records


def vulnerability(index: int, templates: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A real record made distinct: CVE id and package name carry ``index``."""
    templates = templates or template_vulnerabilities()
    record = copy.deepcopy(templates[index % len(templates)])
    record["VulnerabilityID"] = f"CVE-2099-{index:06d}"
    record["PkgName"] = f"{record['PkgName']}-{index // len(templates)}"
    return record


def big_report(count: int, *, extra: int = 0, skip: frozenset[int] = frozenset()) -> bytes:
    """A container-image Trivy report with ``count`` (+ ``extra``) distinct vulnerabilities."""
    templates = template_vulnerabilities()
    base = load_fixture("debian-buster.json")
    vulns = [vulnerability(i, templates) for i in range(count + extra) if i not in skip]
    base["Results"] = [
        {
            "Target": "acme/shop:1.0 (debian 10.1)",
            "Class": "os-pkgs",
            "Type": "debian",
            "Vulnerabilities": vulns,
        }
    ]
    return json.dumps(base, indent=2).encode("utf-8")
