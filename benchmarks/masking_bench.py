"""What masking secrets costs: CPU seconds of ``masked_file`` over large raw reports.

Three inputs, built from the real Trivy fixtures by ``tests/reportgen.py``:

- a 10,000-finding image report (about 45 MB of JSON, no secret in it);
- the same report with 200 distinct AWS access key ids quoted in descriptions;
- a 10 MB JSON string on one line (the shape of a hostile report's huge field).

Each is masked once (as the store does per run; the inputs differ, so nothing is cached), its
CPU time measured, and the key ids still present counted (must be 0).

Usage: python benchmarks/masking_bench.py
"""

from __future__ import annotations

import json
import os
import random
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reportgen import big_report  # noqa: E402 - the tests' report generator
from securecase.storage import secrets  # noqa: E402


def with_keys(findings: int, keys: int) -> tuple[bytes, list[str]]:
    """A report of ``findings`` findings quoting ``keys`` distinct AWS access key ids."""
    doc = json.loads(big_report(findings))
    rng = random.Random(3)
    alphabet = string.ascii_uppercase + string.digits
    ids = ["AKIA" + "".join(rng.choice(alphabet) for _ in range(16)) for _ in range(keys)]
    vulns = [v for r in doc["Results"] for v in r.get("Vulnerabilities", [])]
    for key, vuln in zip(ids, vulns, strict=False):
        vuln["Description"] = vuln.get("Description", "") + f" example key {key}"
    return json.dumps(doc).encode(), ids


def timed(label: str, data: bytes, keys: list[str]) -> None:
    start = time.process_time()
    out = secrets.masked_file("raw/trivy.json", data)
    cpu = time.process_time() - start
    left = sum(key.encode() in out for key in keys)
    print(f"{label:40s} {len(data) / 1e6:7.1f} MB  {cpu:6.1f} s CPU  {left} key(s) left")


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f}")
    timed("10,000 findings, no secret", big_report(10000), [])
    data, keys = with_keys(10000, 200)
    timed("10,000 findings, 200 keys", data, keys)
    timed("one 10 MB string", json.dumps({"Title": "A" * 10_000_000}).encode(), [])


if __name__ == "__main__":
    main()
