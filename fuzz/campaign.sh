#!/usr/bin/env bash
# fuzz/campaign.sh — runs fuzz targets one after the other (what `make fuzz` runs).
#
#   fuzz/campaign.sh SECONDS TARGET...     e.g. fuzz/campaign.sh 600 store model
#
# Each target runs alone on one core (nice), for SECONDS, from its growing
# corpus build/fuzz/corpus/<t> plus the committed seeds fuzz/corpus/<t> (the
# model target also reads the test models, linked into build/fuzz/model-seeds),
# with the flags in fuzz/<t>.options and $FUZZ_FLAGS. What the code under
# test prints is discarded (-close_fd_mask=3); sanitizer reports and
# libFuzzer's lines go to build/fuzz/logs/<t>.log. Crash inputs land in
# build/fuzz/artifacts/<t>/: minimise one with
#   build/fuzz/fuzz_<t> -minimize_crash=1 -runs=10000 CRASH
# and copy it to fuzz/regressions/<t>/ once the bug is fixed.
# FUZZ_FLAGS="-fork=1 -ignore_crashes=1" keeps a target going after a crash
# (each crash input is still saved). Exits 1 if any target crashed.
set -u
cd "$(dirname "$0")/.."
secs=${1:?usage: fuzz/campaign.sh SECONDS TARGET...}; shift
export FP_TEST_MODELS=${FP_TEST_MODELS:-$(realpath -m ../shared/models)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p build/fuzz/logs
crashed=()
for t in "$@"; do
  mkdir -p "build/fuzz/corpus/$t" "build/fuzz/artifacts/$t"
  dirs=("build/fuzz/corpus/$t" "fuzz/corpus/$t")
  if [ "$t" = model ]; then
    mkdir -p build/fuzz/model-seeds
    for m in "$FP_TEST_MODELS"/stories260K.gguf "$FP_TEST_MODELS"/vocab-only/*.gguf; do
      [ -f "$m" ] && ln -sf "$(realpath "$m")" build/fuzz/model-seeds/
    done
    dirs+=(build/fuzz/model-seeds)
  fi
  log=build/fuzz/logs/$t.log
  echo "== fuzz $t for $secs s (log $log)"
  # shellcheck disable=SC2046
  nice -n 10 "build/fuzz/fuzz_$t" -max_total_time="$secs" -close_fd_mask=3 -print_final_stats=1 \
    $(cat "fuzz/$t.options" 2>/dev/null) ${FUZZ_FLAGS:-} \
    -artifact_prefix="build/fuzz/artifacts/$t/" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  # the last status line: "#runs DONE cov: ..." (or "#runs: cov: ..." under -fork)
  grep -E '^#[0-9]+(:|.*DONE)' "$log" | tail -1 | sed 's/^/   /'
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" | sed 's/^/   /'
  if [ $rc -ne 0 ] || ls "build/fuzz/artifacts/$t/" | grep -q .; then
    crashed+=("$t")
    grep -E 'ERROR|runtime error|invariant failed|SUMMARY' "$log" | head -5 | sed 's/^/   /'
    echo "   crash inputs: build/fuzz/artifacts/$t/"
  fi
done
[ ${#crashed[@]} -eq 0 ] || { echo "crashed: ${crashed[*]}"; exit 1; }
