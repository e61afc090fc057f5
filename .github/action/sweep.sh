#!/usr/bin/env bash
# Runs `securecase sweep` with the action's inputs, all read from the environment. The
# webhook URLs (SECURECASE_NOTIFY) and the tokens stay in the environment, where securecase
# reads them: none is put on a command line.
set -euo pipefail

fail() {
  echo "::error title=securecase::$1"
  exit 2
}

args=()
case "$SC_OUTPUT" in
  text | json) args+=(--output "$SC_OUTPUT") ;;
  *) fail "the output input of command: sweep is text or json" ;;
esac
case "$SC_DRY_RUN" in
  false | "") ;;
  true) args+=(--dry-run) ;;
  *) fail "the dry-run input is true or false" ;;
esac
case "$SC_NOTIFY_FORMAT" in
  "") ;;
  slack | teams | json) args+=(--notify-format "$SC_NOTIFY_FORMAT") ;;
  *) fail "the notify-format input is slack, teams or json" ;;
esac
case "${SC_FOLD_ARTIFACTS:-}" in
  false | "") ;;
  true) args+=(--fold-artifacts) ;;
  *) fail "the fold-artifacts input is true or false" ;;
esac
if [ -n "$SC_REPOS" ]; then args+=(--repo "$SC_REPOS"); fi
if [ -n "$SC_OPEN_ISSUES" ]; then args+=(--open-issues "$SC_OPEN_ISSUES"); fi
if [ -n "$SC_PUSH_TIMEOUT" ]; then args+=(--push-timeout "$SC_PUSH_TIMEOUT"); fi

exec "$RUNNER_TEMP/securecase-venv/bin/python" -m securecase sweep "${args[@]}"
