#!/usr/bin/env bash
# tests/deploy/run.sh — many servers, one database: a real PostgreSQL and a
# real nginx, started here in a temporary folder on loopback ports, and
# stopped and removed at the end (also when a test fails).
#
# 1. the store's unit tests (build/asan/tests/test_store) once more, on
#    PostgreSQL (FP_TEST_PG), besides their SQLite run in tests/run.sh;
# 2. deploy_test.mjs: three forkpoint-serve instances behind nginx, one
#    killed with kill -9 mid-story, PostgreSQL restarted, the page in
#    Chromium retrying a click whose server died (docs/deploy.md).
# Prints one final "N passed, N failed" over both; exits non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
fail() { echo "deploy: $*"; echo "0 passed, 1 failed"; exit 1; }
command -v node >/dev/null || fail "node is not installed"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || fail "nginx is not installed (scripts/setup.sh installs it)"
export PATH=$PATH:/usr/sbin
[ -x build/asan/forkpoint-serve ] || fail "build/asan/forkpoint-serve is not built"
[ -x build/asan/tests/test_store ] || fail "build/asan/tests/test_store is not built"
[ -x build/release/ws_client ] || fail "build/release/ws_client is not built"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "chromium is not installed (scripts/setup.sh installs it)"
# playwright-core, as tests/browser pins it (git-ignored node_modules)
if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >&2) || fail "npm ci failed"
fi

source "$here/pg.sh"
dir=$(mktemp -d /tmp/fp-deploy-pg-XXXXXX)
chmod 755 "$dir"
cleanup() { pg_stop; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
pg_start "$dir" || fail "cannot start PostgreSQL"
unit_url=$(pg_db fp_unit) || fail "cannot make a database"
deploy_url=$(pg_db forkpoint) || fail "cannot make a database"

total_p=0; total_f=0; rc=0
add() { # add LOG: adds the counts of its last result line
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
  if [ -z "$line" ]; then total_f=$((total_f+1)); rc=1; return; fi
  total_p=$((total_p + $(grep -oE '^[0-9]+' <<<"$line")))
  total_f=$((total_f + $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')))
}

echo "== store unit tests on PostgreSQL"
FP_TEST_PG=$unit_url build/asan/tests/test_store >"$dir/unit.log" 2>&1 || rc=1
grep -E 'FAIL|passed|==' "$dir/unit.log"
add "$dir/unit.log"

echo "== three instances behind nginx"
export FP_DEPLOY_PG=$deploy_url
# PostgreSQL stopped as a crash would, and started again (the test calls these)
export FP_DEPLOY_PG_STOP="bash -c 'source $here/pg.sh; PG_DIR=$dir PG_BIN=$PG_BIN PG_PORT=$PG_PORT; PG_AS=(${PG_AS[*]}); pg_kill'"
export FP_DEPLOY_PG_START="bash -c 'source $here/pg.sh; PG_DIR=$dir PG_BIN=$PG_BIN PG_PORT=$PG_PORT; PG_AS=(${PG_AS[*]}); pg_restart'"
node "$here/deploy_test.mjs" >"$dir/deploy.log" 2>&1 || rc=1
cat "$dir/deploy.log"
add "$dir/deploy.log"

echo "deploy total: $total_p passed, $total_f failed"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ] && exit $rc
exit 1
