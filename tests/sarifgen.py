"""Build SARIF logs of any size from the real fixtures (for tests and benchmarks).

The runs of several real logs (CodeQL, Semgrep, Flawfinder, two scan tools) are kept with
their rules; their results are copied into numbered folders (``copy7/good/app.py``) with
their fingerprints made distinct, so the result is real SARIF data, only more of it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sarif"
TEMPLATE_FILES = (
    "codeQL-output.sarif",
    "semgrep.sarif",
    "flawfinder.sarif",
    "taint-python-report.sarif",
    "bash-report.sarif",
)


def _template_runs() -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for name in TEMPLATE_FILES:
        doc = json.loads((FIXTURES / name).read_text("utf-8"))
        runs.extend(doc["runs"])
    return runs


def _copied(result: dict[str, Any], index: int) -> dict[str, Any]:
    record = copy.deepcopy(result)
    for location in record.get("locations") or ():
        artifact = location.get("physicalLocation", {}).get("artifactLocation")
        if artifact and "uri" in artifact:
            uri = artifact["uri"]
            scheme, sep, rest = uri.partition("://")
            artifact["uri"] = f"{scheme}{sep}/copy{index}{rest}" if sep else f"copy{index}/{uri}"
    for key in ("fingerprints", "partialFingerprints"):
        table = record.get(key)
        if table:
            record[key] = {name: f"{value}-{index}" for name, value in table.items()}
    return record


def findings_per_copy() -> int:
    """Distinct findings one copy of the template results adds (from the golden counts)."""
    from securecase.scanners import parse

    return sum(len(parse(FIXTURES / name).findings) for name in TEMPLATE_FILES)


def big_sarif(copies: int) -> bytes:
    """A SARIF log whose runs hold ``copies`` copies of every template result."""
    runs = _template_runs()
    originals = [run["results"] for run in runs]
    for run, results in zip(runs, originals, strict=True):
        run["results"] = [_copied(r, i) for i in range(copies) for r in results]
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": runs,
    }
    return json.dumps(doc, indent=1).encode("utf-8")


def copies_for(min_bytes: int) -> int:
    """How many copies make a log of at least ``min_bytes``."""
    one = len(big_sarif(1))
    empty = len(big_sarif(0))
    return max(1, -(-(min_bytes - empty) // (one - empty)))
