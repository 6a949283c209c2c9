#!/usr/bin/env bash
# bench/crash_loop.sh — the full kill -9 loop: KILLS (default 200) kills of a
# release forkpoint-serve at random moments while an HTTP client and a
# WebSocket client choose; after each restart tests/crash/crash_test.mjs
# checks that no acknowledged choice is lost, that every decision the story
# holds has its row in the decision log, that versions only go forward and
# that PRAGMA integrity_check says ok. Prints kills and losses at the end.
#
#   make build/release/forkpoint-serve build/release/ws_client && bench/crash_loop.sh [KILLS]
#
# (make test runs the short version, 20 kills, on the ASan build.)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
kills=${1:-200}
exec node "$repo/tests/crash/crash_test.mjs" --kills "$kills" \
  --server "${FORKPOINT_SERVE:-$repo/build/release/forkpoint-serve}"
