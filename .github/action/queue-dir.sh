#!/usr/bin/env bash
# Chooses where an ingest's record waits when the cases repo cannot take it. The queue-dir
# input wins. Otherwise, on a GitHub-hosted runner (whose disk goes with the job), the queue is
# a folder under $RUNNER_TEMP and a queued record is uploaded as a workflow artifact by the
# next step, unless record-artifacts is false; on a self-hosted runner securecase's default
# (the cache directory) applies. Writes dir and artifact (true or false) to $GITHUB_OUTPUT.
set -euo pipefail

fail() {
  echo "::error title=securecase::$1"
  exit 2
}

case "${SC_RECORD_ARTIFACTS:-}" in
  true | false | "") ;;
  *) fail "the record-artifacts input is true or false" ;;
esac
case "${SC_RECORD_RETENTION_DAYS:-}" in
  "" | [1-9] | [1-8][0-9] | 90) ;;
  *) fail "the record-retention-days input is a number of days from 1 to 90" ;;
esac

dir="${SC_QUEUE_DIR:-}"
artifact=false
if [ -z "${dir//[[:space:]]/}" ] && [ "${RUNNER_ENVIRONMENT:-}" = "github-hosted" ] &&
  [ "${SC_RECORD_ARTIFACTS:-}" != "false" ]; then
  dir="$RUNNER_TEMP/securecase-queue"
  artifact=true
fi
{
  echo "dir=$dir"
  echo "artifact=$artifact"
} >>"$GITHUB_OUTPUT"
