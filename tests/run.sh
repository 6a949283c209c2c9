#!/usr/bin/env bash
# tests/run.sh — every test, in order, with one closing "N passed, N failed".
#
# Unit tests (ASan + UBSan build, then the clang build) on the real models in
# ../shared/models, the fuzz targets (tests/fuzz_smoke.sh), the CLI tests (bad
# input, tmux), then the web app's API and browser tests when they are built,
# the many-servers suite (PostgreSQL + nginx + three servers: tests/deploy), and the
# RPC workers (two workers on loopback: tests/rpc). Each suite prints its own "N passed, N failed" line; this
# script adds them up and fails if any suite failed or did not report.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODELS=${FP_TEST_MODELS:-$(realpath -m "$ROOT/../shared/models")}
if [ ! -f "$MODELS/stories260K.gguf" ]; then
  echo "tests need the test models in $MODELS (set FP_TEST_MODELS)" >&2
  echo "0 passed, 1 failed"; exit 1
fi
export FP_TEST_MODELS=$MODELS
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p build/test-output

total_pass=0; total_fail=0; broken=()
# run_suite NAME command...: runs it, keeps its log, adds its counts
run_suite() {
  local name=$1; shift
  local log="build/test-output/$name.log"
  echo "== $name"
  "$@" >"$log" 2>&1; local rc=$?
  local line; line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "   no result line (exit $rc); log tail:"; tail -20 "$log" | sed 's/^/   /'
    broken+=("$name"); total_fail=$((total_fail+1)); return
  fi
  local p f
  p=$(sed -E 's/.*[^0-9]?([0-9]+) passed.*/\1/' <<<"$line"); p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
  f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
  total_pass=$((total_pass+p)); total_fail=$((total_fail+f))
  echo "   $p passed, $f failed (exit $rc)"
  if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
    grep -E 'FAIL|ERROR|runtime error|AddressSanitizer' "$log" | head -20 | sed 's/^/   /'
    broken+=("$name")
    [ "$f" -eq 0 ] && total_fail=$((total_fail+1))
  fi
}

for t in build/asan/tests/test_*; do
  [ -x "$t" ] && run_suite "$(basename "$t")" "$t"
done
# the same unit tests built by clang (ASan, UBSan, float-cast-overflow and
# integer checks: mk/fuzz.mk), then the fuzz targets' regressions and a short run
for t in build/clang/tests/test_*; do
  [ -x "$t" ] && run_suite "clang-$(basename "$t")" "$t"
done
ls build/fuzz/fuzz_* >/dev/null 2>&1 && run_suite fuzz bash tests/fuzz_smoke.sh
run_suite cli bash tests/cli/test_cli.sh build/asan/forkpoint "$MODELS"
run_suite cli-chat bash tests/cli/test_chat.sh build/asan/forkpoint "$MODELS"
run_suite cli-hf bash tests/cli/test_hf.sh build/asan/forkpoint "$MODELS"
run_suite install bash tests/install/run.sh
[ -x tests/api/run.sh ] && run_suite api bash tests/api/run.sh
[ -x tests/crash/run.sh ] && run_suite crash bash tests/crash/run.sh
[ -x tests/rpc/run.sh ] && run_suite rpc bash tests/rpc/run.sh build/asan
[ -x tests/deploy/run.sh ] && run_suite deploy bash tests/deploy/run.sh
[ -x tests/browser/run.sh ] && run_suite browser bash tests/browser/run.sh

echo
[ ${#broken[@]} -gt 0 ] && echo "failed suites: ${broken[*]} (logs in build/test-output/)"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ ${#broken[@]} -eq 0 ]
