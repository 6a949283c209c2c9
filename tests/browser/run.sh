#!/usr/bin/env bash
# tests/browser/run.sh — Playwright tests of the page in Debian's chromium:
# browser_test.mjs (the page), crossorigin_test.mjs (pages from other
# origins, and a rebinding name, must not drive the server) and
# access_page_test.mjs (steady targets, phone, dwell on every control, stray
# taps, keyboard, speech, effort, axe-core on every view) and access_test.mjs
# (switch scanning, gaze and head pointer: web/access/),
# access_settings_test.mjs (the access settings worked by one and two
# switches, the highlight on screen, axe-core while scanning),
# profile_test.mjs (the profile view, web/profile.js) and models_test.mjs
# (the model picker, web/page/models.js). lib.mjs holds what they share;
# scan_user.mjs the simulated switch user.
#
# Why this wrapper: it installs playwright-core and axe-core (pinned in package-lock.json,
# into tests/browser/node_modules, git-ignored) on first use, checks that
# chromium and the server are there, then runs the tests. The test prints a
# final "N passed, N failed" line and exits non-zero on failure.
# Screenshots go to build/test-output/.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
fail() { echo "browser: $*"; echo "0 passed, 1 failed"; exit 1; }
command -v node >/dev/null || fail "node is not installed"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "chromium is not installed (apt-get install chromium)"
[ -x "${FORKPOINT_SERVE:-$repo/build/release/forkpoint-serve}" ] || fail "forkpoint-serve is not built (make build/release/forkpoint-serve)"
if [ ! -f "$here/node_modules/playwright-core/package.json" ] || [ ! -f "$here/node_modules/axe-core/axe.min.js" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2) || fail "npm ci failed"
fi
mkdir -p "$repo/build/test-output"
cd "$here" || fail "no $here"
total_p=0; total_f=0; rc=0
for t in browser_test.mjs crossorigin_test.mjs access_page_test.mjs access_test.mjs access_settings_test.mjs profile_test.mjs models_test.mjs chat_test.mjs; do
  out=$(node "$t"); r=$?
  echo "$out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -1)
  if [ -z "$line" ]; then total_f=$((total_f+1)); rc=1; continue; fi
  total_p=$((total_p + $(grep -oE '^[0-9]+' <<<"$line")))
  total_f=$((total_f + $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')))
  [ $r -ne 0 ] && rc=1
done
echo "browser total: $total_p passed, $total_f failed"
echo "$total_p passed, $total_f failed"
exit $rc
