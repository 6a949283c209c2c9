#!/usr/bin/env bash
# tests/crash/run.sh — the kill -9 test, short version (make test): 20 kills
# of the ASan server at random moments while an HTTP and a WebSocket client
# choose (tests/crash/crash_test.mjs says what is checked after each
# restart). bench/crash_loop.sh runs the full loop.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
for t in node sqlite3; do
  command -v $t >/dev/null || { echo "crash: $t is not installed"; echo "0 passed, 1 failed"; exit 1; }
done
if [ ! -x "${FORKPOINT_SERVE:-$repo/build/asan/forkpoint-serve}" ] || [ ! -x "$repo/build/release/ws_client" ]; then
  echo "crash: build/asan/forkpoint-serve and build/release/ws_client are needed"
  echo "0 passed, 1 failed"; exit 1
fi
exec node "$here/crash_test.mjs" --kills "${FP_CRASH_KILLS:-20}"
