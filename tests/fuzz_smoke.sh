#!/usr/bin/env bash
# tests/fuzz_smoke.sh — the libFuzzer targets as a test suite (make test).
#
# Why: the fuzzers only protect what they keep running. For every target in
# build/fuzz/ this replays the regression corpus (fuzz/regressions/<target>/,
# every crash found so far: each must now run clean) and then fuzzes for
# FUZZ_SMOKE_SECONDS (default 5) from the committed seeds, so a change that
# breaks a parser's invariants is likely caught here, not in a campaign.
# Prints "N passed, N failed" (two tests per target). Logs go to
# build/test-output/fuzz-<target>-{replay,fuzz}.log.
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SMOKE_SECONDS:-5}
export FP_TEST_MODELS=${FP_TEST_MODELS:-$(realpath -m ../shared/models)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
out=build/test-output
mkdir -p "$out"
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1 (log: $2)"; grep -E 'ERROR|runtime error|invariant failed' "$2" | head -5 | sed 's/^/     /'; }

targets=()
for b in build/fuzz/fuzz_*; do [ -x "$b" ] && targets+=("${b#build/fuzz/fuzz_}"); done
if [ ${#targets[@]} -eq 0 ]; then echo "no fuzzers in build/fuzz (make fuzz-build)"; echo "0 passed, 1 failed"; exit 1; fi

for t in "${targets[@]}"; do
  bin=build/fuzz/fuzz_$t
  opts=$(cat "fuzz/$t.options" 2>/dev/null)
  # 1. replay: every regression input runs once and must not crash
  log=$out/fuzz-$t-replay.log
  regs=(); [ -d "fuzz/regressions/$t" ] && for f in fuzz/regressions/$t/*; do [ -f "$f" ] && regs+=("$f"); done
  if [ ${#regs[@]} -eq 0 ]; then
    echo "(no regressions)" >"$log"; ok "$t: replay (no regression inputs)"
  elif $bin $opts "${regs[@]}" >"$log" 2>&1; then ok "$t: replay ${#regs[@]} regression inputs"
  else bad "$t: replay" "$log"; fi
  # 2. a short run from the seeds (new inputs go to a scratch corpus)
  log=$out/fuzz-$t-fuzz.log
  scratch=build/fuzz/smoke-corpus/$t; rm -rf "$scratch"; mkdir -p "$scratch" build/fuzz/smoke-artifacts
  # -seed=1: the same mutations on every run, so a failure here is reproducible
  if $bin $opts -seed=1 -max_total_time="$SECONDS_EACH" -close_fd_mask=3 -print_final_stats=1 \
       -artifact_prefix=build/fuzz/smoke-artifacts/$t- "$scratch" "fuzz/corpus/$t" >"$log" 2>&1; then
    ok "$t: fuzz ${SECONDS_EACH}s ($(grep -oE 'number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+') runs)"
  else bad "$t: fuzz ${SECONDS_EACH}s" "$log"; fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
