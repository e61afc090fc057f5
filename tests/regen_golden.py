"""Regenerate tests/golden/<format>/<fixture>.json: the normalized output of every fixture.

Run ``python tests/regen_golden.py`` after an intended change to a parser, then review the
diff of tests/golden/ like any other change. Fixtures that are refused get no golden file.
test_reports_trivy.py, test_reports_sarif.py and test_reports_zap.py compare the parsers'
output against the checked-in files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from securecase.domain.findings import Finding, Report
from securecase.errors import ReportError
from securecase.scanners import parse

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "trivy"
GOLDEN = TESTS / "golden" / "trivy"
#: Every fixture folder with a golden folder: (fixtures, golden outputs, file patterns).
FORMATS: tuple[tuple[Path, Path, tuple[str, ...]], ...] = (
    (FIXTURES, GOLDEN, ("*.json",)),
    (TESTS / "fixtures" / "sarif", TESTS / "golden" / "sarif", ("*.sarif",)),
    (TESTS / "fixtures" / "zap", TESTS / "golden" / "zap", ("*.json", "*.xml")),
)
#: Finding fields left out of a golden file while they hold their default, so formats that
#: never set them keep their golden files unchanged when fields are added.
_OPTIONAL_DEFAULTS: dict[str, Any] = {
    "suppressed": False,
    "confidence": None,
    "cwe": (),
    "wasc": None,
    "instances": (),
    "instance_count": None,
}


def golden_path(golden: Path, fixture: Path) -> Path:
    """The golden file of a fixture: its name with ``.json`` appended unless it has it."""
    name = fixture.name if fixture.suffix == ".json" else fixture.name + ".json"
    return golden / name


def finding_data(finding: Finding) -> dict[str, Any]:
    """One finding as plain JSON data, optional fields left out while at their default."""
    data = {
        **dataclasses.asdict(finding),
        "kind": finding.kind.value,
        "severity": finding.severity.value,
    }
    for key, default in _OPTIONAL_DEFAULTS.items():
        if getattr(finding, key) == default:
            del data[key]
    return data


def normalize(report: Report, raw_original: bytes) -> dict[str, Any]:
    """Everything a parse produces except the file path, as plain JSON data."""
    counts: dict[str, int] = {}
    for finding in report.findings:
        counts[finding.severity.count_key] = counts.get(finding.severity.count_key, 0) + 1
    return {
        "report": {
            "format": report.format.value,
            "source": report.source,
            "tool": report.tool,
            "tool_version": report.tool_version,
            "scanned_at": report.scanned_at,
            "artifact_name": report.artifact_name,
            "artifact_type": report.artifact_type,
            "image_digest": report.image_digest,
            "raw_suffix": report.raw_suffix,
            "raw_is_original": report.raw == raw_original,
            "raw_sha256": hashlib.sha256(report.raw).hexdigest(),
        },
        "counts": counts,
        "findings": [finding_data(finding) for finding in report.findings],
    }


def golden_text(fixture: Path) -> str:
    """The golden file content for one fixture (raises ReportError for refused ones)."""
    report = parse(fixture)
    data = normalize(report, fixture.read_bytes())
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def fixtures_of(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The fixture files of one format, sorted."""
    return sorted(path for pattern in patterns for path in folder.glob(pattern))


def main() -> int:
    for fixtures, golden, patterns in FORMATS:
        golden.mkdir(parents=True, exist_ok=True)
        for fixture in fixtures_of(fixtures, patterns):
            target = golden_path(golden, fixture)
            try:
                text = golden_text(fixture)
            except ReportError as exc:
                print(f"skip {fixture.name}: {exc}")
                target.unlink(missing_ok=True)
                continue
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(TESTS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
