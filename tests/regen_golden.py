"""Regenerate tests/golden/trivy/<fixture>.json: the normalized output of every Trivy fixture.

Run ``python tests/regen_golden.py`` after an intended change to the parser, then review the
diff of tests/golden/ like any other change. Fixtures that are refused get no golden file.
test_reports_trivy.py compares the parser's output against the checked-in files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from securecase.errors import ReportError
from securecase.models import Report
from securecase.reports import parse

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "trivy"
GOLDEN = TESTS / "golden" / "trivy"


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
        "findings": [
            {
                **dataclasses.asdict(finding),
                "kind": finding.kind.value,
                "severity": finding.severity.value,
            }
            for finding in report.findings
        ],
    }


def golden_text(fixture: Path) -> str:
    """The golden file content for one fixture (raises ReportError for refused ones)."""
    report = parse(fixture)
    data = normalize(report, fixture.read_bytes())
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for fixture in sorted(FIXTURES.glob("*.json")):
        target = GOLDEN / fixture.name
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
