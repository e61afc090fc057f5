"""Check the built distributions hold what securecase reads at run time.

Usage: python .ci/check_dist.py DIST_DIR. The wheel and the sdist must each contain the JSON
schemas, the HTML templates, the built-in policy, the secret rules, py.typed and the licence
text; exit 1 naming what is missing.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

REQUIRED = (
    "securecase/storage/schemas/case.schema.json",
    "securecase/storage/schemas/policy.schema.json",
    "securecase/storage/schemas/findings.schema.json",
    "securecase/storage/schemas/shards.schema.json",
    "securecase/render/templates/dashboard.html.j2",
    "securecase/data/default-policy.yaml",
    "securecase/data/secret-rules.json",
    "securecase/py.typed",
    "LICENSE",
)


def missing(names: list[str]) -> list[str]:
    return [need for need in REQUIRED if not any(n.endswith(need) for n in names)]


def main(dist: Path) -> int:
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"{dist}: expected one wheel and one sdist, found {wheels + sdists}")
        return 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        lacking = {wheels[0].name: missing(wheel.namelist())}
    with tarfile.open(sdists[0]) as sdist:
        lacking[sdists[0].name] = missing(sdist.getnames())
    failed = False
    for name, files in lacking.items():
        for file in files:
            print(f"{name}: missing {file}")
            failed = True
    if not failed:
        print(f"{dist}: wheel and sdist hold the schemas, templates, data, py.typed and LICENSE")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
