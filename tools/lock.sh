#!/usr/bin/env bash
# Refreshes requirements.lock: securecase's runtime dependencies (pyproject.toml) pinned with
# the hashes of every file the package index offers for each pinned version, so the Action's
# `pip install --require-hashes` works on any runner platform and Python 3.11-3.13.
# Run from anywhere: tools/lock.sh  (needs pip-tools: pip install pip-tools)
set -euo pipefail
cd "$(dirname "$0")/.."
pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-header \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file requirements.lock pyproject.toml
