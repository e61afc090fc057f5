#!/usr/bin/env bash
# Finds the runner's own python3 (3.11 or newer) for securecase's private virtual environment
# and names the wheel cache for it. The action never installs a Python: that would change the
# Python of the caller's later steps. Writes python, wheel-cache and cache-key to
# $GITHUB_OUTPUT.
set -euo pipefail

python=$(command -v python3 || true)
if [ -z "$python" ]; then
  echo "::error title=securecase::no python3 on this runner; securecase needs Python 3.11 or newer (set one up in an earlier step)"
  exit 2
fi
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! "$python" -c 'import sys; raise SystemExit(sys.version_info < (3, 11))'; then
  echo "::error title=securecase::the runner's python3 is $version; securecase needs Python 3.11 or newer (set one up in an earlier step)"
  exit 2
fi
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "::error title=securecase::$python cannot make virtual environments (on Debian or Ubuntu install python3-venv)"
  exit 2
fi
lock_digest=$(sha256sum "$ACTION_PATH/requirements.lock" | cut -c1-16)
{
  echo "python=$python"
  echo "wheel-cache=${RUNNER_TEMP}/securecase-wheels"
  echo "cache-key=securecase-${RUNNER_OS}-${RUNNER_ARCH}-py${version}-${lock_digest}"
} >>"$GITHUB_OUTPUT"
