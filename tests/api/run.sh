#!/usr/bin/env bash
# tests/api/run.sh — API tests of forkpoint-serve against a real server process.
#
# Why a wrapper: tests/run.sh calls one script per suite; this one checks
# that the binaries exist and runs the node test (node's fetch, sockets and
# process control; no npm packages needed). The test prints a final
# "N passed, N failed" line and exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if ! command -v node >/dev/null; then
  echo "api: node is not installed"; echo "0 passed, 1 failed"; exit 1
fi
if [ ! -x "${FORKPOINT_SERVE:-$repo/build/asan/forkpoint-serve}" ] && [ ! -x "$repo/build/release/forkpoint-serve" ]; then
  echo "api: forkpoint-serve is not built (make build/asan/forkpoint-serve build/release/ws_client)"
  echo "0 passed, 1 failed"; exit 1
fi
exec node "$here/api_test.mjs"
