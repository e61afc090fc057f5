#!/usr/bin/env bash
# Installs securecase's locked dependencies into a private virtual environment: every
# distribution pinned and checked by hash (requirements.lock), wheels only (no build step that
# could pull unpinned build tools), nothing else resolved. securecase itself runs from the
# action's checkout, put on the environment's path by a .pth file.
set -euo pipefail

venv="$RUNNER_TEMP/securecase-venv"
"$SC_PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --only-binary=:all: -r "$ACTION_PATH/requirements.lock"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$ACTION_PATH/bot" >"$site/securecase-action.pth"
"$venv/bin/python" -m securecase --version
