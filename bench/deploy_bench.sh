#!/usr/bin/env bash
# bench/deploy_bench.sh — runs bench_deploy.mjs (SQLite vs PostgreSQL vs
# three servers on PostgreSQL behind nginx) on a throw-away PostgreSQL
# started here (tests/deploy/pg.sh), removed at the end.
#   bash bench/deploy_bench.sh [--clients 1,4,16] [--choices 20]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export PATH=$PATH:/usr/sbin
[ -x "$repo/build/release/forkpoint-serve" ] || make -C "$repo" --no-print-directory build/release/forkpoint-serve
source "$repo/tests/deploy/pg.sh"
dir=$(mktemp -d /tmp/fp-bench-pg-XXXXXX)
chmod 755 "$dir"
trap 'pg_stop; rm -rf "$dir"' EXIT
pg_start "$dir"
FP_DEPLOY_PG=$(pg_db bench) node "$here/bench_deploy.mjs" "$@"
