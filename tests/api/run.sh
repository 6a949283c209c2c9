#!/usr/bin/env bash
# tests/api/run.sh — API tests of forkpoint-serve against a real server process.
#
# Why a wrapper: tests/run.sh calls one script per suite; this one checks
# that the binaries exist and runs the node tests (node's fetch, sockets and
# process control; no npm packages needed): api_test.mjs (the API as
# documented) and hardening_test.mjs (hostile and ambiguous input). It
# prints one final "N passed, N failed" line over both and exits non-zero
# on failure. oai_test.mjs (Forkpoint as a back end: OpenAI's and
# llama.cpp's APIs) needs the openai package and bench/gen_model.
# models_test.mjs: the models folder, switching models, a story's model.
# chat_test.mjs: chat sessions (the random Phi-3 model of mk/models.mk).
# remote_test.mjs: Forkpoint over a remote engine (--backend), another
# forkpoint-serve as the engine, fault_proxy.mjs between them.
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
# oai_test.mjs drives the OpenAI-compatible API with the official openai
# client: installed from package-lock.json on first use (git-ignored).
if [ ! -f "$here/node_modules/openai/package.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2) || { echo "api: npm ci failed"; echo "0 passed, 1 failed"; exit 1; }
fi
total_p=0; total_f=0; rc=0
for t in api_test.mjs hardening_test.mjs oai_test.mjs models_test.mjs chat_test.mjs remote_test.mjs; do
  out=$(node "$here/$t"); r=$?
  echo "$out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -1)
  if [ -z "$line" ]; then total_f=$((total_f+1)); rc=1; continue; fi
  total_p=$((total_p + $(grep -oE '^[0-9]+' <<<"$line")))
  total_f=$((total_f + $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')))
  [ $r -ne 0 ] && rc=1
done
echo "api total: $total_p passed, $total_f failed"
echo "$total_p passed, $total_f failed"
exit $rc
