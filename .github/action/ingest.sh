#!/usr/bin/env bash
# Runs `securecase ingest` with the action's inputs, all read from the environment. Tokens
# stay in the environment (securecase reads them there); none is put on a command line.
set -euo pipefail

lines() { # the non-blank lines of $1, trimmed, one array element each (into REPLY_LINES)
  REPLY_LINES=()
  local line
  while IFS= read -r line; do
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    if [ -n "$line" ]; then REPLY_LINES+=("$line"); fi
  done <<<"$1"
}

fail() {
  echo "::error title=securecase::$1"
  exit 2
}

lines "$SC_REPORTS"
reports=("${REPLY_LINES[@]}")
if [ "${#reports[@]}" -eq 0 ]; then fail "command: ingest needs the reports input (one file per line)"; fi
lines "$SC_SOURCES"
args=()
for source in "${REPLY_LINES[@]}"; do args+=(--source "$source"); done

case "$SC_OUTPUT" in
  text | json | markdown) args+=(--output "$SC_OUTPUT") ;;
  *) fail "the output input is text, json or markdown" ;;
esac
case "$SC_REPORT" in
  auto | "") ;;
  github | none) args+=(--report "$SC_REPORT") ;;
  *) fail "the report input is auto, github or none" ;;
esac
case "$SC_COMMENT" in
  never | "") ;;
  on-block | always) args+=(--comment "$SC_COMMENT") ;;
  *) fail "the comment input is never, on-block or always" ;;
esac
case "$SC_FROM_WORKFLOW_RUN" in
  false | "") ;;
  true) args+=(--from-workflow-run) ;;
  *) fail "the from-workflow-run input is true or false" ;;
esac
if [ -n "$SC_POLICY" ]; then args+=(--policy "$SC_POLICY"); fi
if [ -n "$SC_MODE" ]; then args+=(--mode "$SC_MODE"); fi
if [ -n "${SC_ON_INCOMPLETE:-}" ]; then args+=(--on-incomplete "$SC_ON_INCOMPLETE"); fi
if [ -n "$SC_IMAGE" ]; then args+=(--image "$SC_IMAGE"); fi
if [ -n "$SC_IMAGE_DIGEST" ]; then args+=(--image-digest "$SC_IMAGE_DIGEST"); fi
if [ -n "$SC_COMMIT_TIME" ]; then args+=(--commit-time "$SC_COMMIT_TIME"); fi
if [ -n "$SC_PUSH_TIMEOUT" ]; then args+=(--push-timeout "$SC_PUSH_TIMEOUT"); fi

exec "$RUNNER_TEMP/securecase-venv/bin/python" -m securecase ingest "${args[@]}" -- "${reports[@]}"
