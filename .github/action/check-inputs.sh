#!/usr/bin/env bash
# Checks the command input and refuses inputs that belong to the other command, before
# anything is installed: an input that would be silently ignored is a mistake in the workflow.
# Only the names of the offending inputs are printed, never their values (some are secrets).
# Writes command (ingest or sweep) to $GITHUB_OUTPUT.
set -euo pipefail

fail() {
  echo "::error title=securecase::$1"
  exit 2
}

given() { # the names among "$@" (input=VARIABLE pairs) whose variable is not blank
  REPLY_NAMES=()
  local pair name variable value
  for pair in "$@"; do
    name="${pair%%=*}"
    variable="${pair#*=}"
    value="${!variable:-}"
    if [ -n "${value//[[:space:]]/}" ]; then REPLY_NAMES+=("$name"); fi
  done
}

ingest_only=(
  reports=SC_REPORTS sources=SC_SOURCES policy=SC_POLICY mode=SC_MODE
  on-incomplete=SC_ON_INCOMPLETE image=SC_IMAGE image-digest=SC_IMAGE_DIGEST
  commit-time=SC_COMMIT_TIME report=SC_REPORT comment=SC_COMMENT
  from-workflow-run=SC_FROM_WORKFLOW_RUN github-app-id=SECURECASE_GITHUB_APP_ID
  github-app-private-key=SECURECASE_GITHUB_APP_KEY
  github-app-installation-id=SECURECASE_GITHUB_APP_INSTALLATION_ID
  record-artifacts=SC_RECORD_ARTIFACTS
)
sweep_only=(
  repos=SC_REPOS dry-run=SC_DRY_RUN notify=SECURECASE_NOTIFY notify-format=SC_NOTIFY_FORMAT
  open-issues=SC_OPEN_ISSUES fold-artifacts=SC_FOLD_ARTIFACTS
)

command="${SC_COMMAND:-ingest}"
case "$command" in
  ingest)
    given "${sweep_only[@]}"
    other=sweep
    ;;
  sweep)
    given "${ingest_only[@]}"
    other=ingest
    ;;
  *) fail "the command input is ingest or sweep" ;;
esac
if [ "${#REPLY_NAMES[@]}" -gt 0 ]; then
  fail "command: $command does not take the input(s) ${REPLY_NAMES[*]}, which belong to command: $other; remove them, or run the action once per command"
fi
echo "command=$command" >>"$GITHUB_OUTPUT"
