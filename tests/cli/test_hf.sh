#!/usr/bin/env bash
# test_hf.sh — `--hf OWNER/REPO[:QUANT]` and `forkpoint model pull` against a
# loopback server laid out like the Hugging Face hub (tests/cli/hub.mjs,
# started here, serving the real stories260K bytes): the pick by quant
# (case-insensitive, default Q4_K_M, the only file, split parts), the cache,
# a transfer cut mid-file and resumed with Range, a corrupted file (bad
# sha256: removed), no such repository, no file for a quant (the files are
# listed), no network (and the cache without network), the progress bar on a
# terminal only, write/chat/serve using the downloaded model, and
# `forkpoint model list` (table and JSON) over folders of real models.
#
# Usage: tests/cli/test_hf.sh BINARY MODELS_DIR    (prints "N passed, N failed")
set -u
BIN=$(realpath "${1:?binary}"); MODELS=$(realpath "${2:?models dir}")
HERE=$(cd "$(dirname "$0")" && pwd)
MODEL="$MODELS/stories260K.gguf"
T=$(mktemp -d)
HUB_PID=
trap '[ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null; rm -rf "$T"' EXIT
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { fail=$((fail+1)); echo "FAIL hf: $*" >&2; }

node "$HERE/hub.mjs" "$MODEL" "$T/hub.log" > "$T/port" 2>"$T/hub.err" &
HUB_PID=$!
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(head -1 "$T/port")
[ -n "$PORT" ] || { echo "hub did not start: $(cat "$T/hub.err")"; echo "0 passed, 1 failed"; exit 1; }
export FORKPOINT_HF_ENDPOINT="http://127.0.0.1:$PORT" FORKPOINT_CACHE="$T/cache"
unset HF_TOKEN MODEL_ENDPOINT HF_ENDPOINT
CACHE="$T/cache/models"
WANT=$(sha256sum "$MODEL" | cut -d' ' -f1)
sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

# run NAME CODE REGEX -- cmd...: exit code and a one-line message on stderr, no crash
run() {
  local name=$1 code=$2 re=$3; shift 4
  timeout 120 "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$name: exit $rc, want $code ($(head -c 400 "$T/err"))"; return 1; fi
  if [ -n "$re" ] && ! grep -qE "$re" "$T/err"; then bad "$name: message '$(head -c 400 "$T/err")' !~ /$re/"; return 1; fi
  if grep -qiE 'AddressSanitizer|runtime error|Segmentation' "$T/err"; then bad "$name: crashed"; return 1; fi
  [ "$code" -ne 0 ] && [ "$(grep -c . "$T/err")" -ne 1 ] && { bad "$name: not one line: $(cat "$T/err")"; return 1; }
  ok
}

# ---- the default quant (Q4_K_M), into the cache, checked; quiet when stderr is no terminal
run "pull default" 0 "" -- "$BIN" model pull test/tiny-GGUF
[ "$(cat "$T/out")" = "$CACHE/test_tiny-GGUF_stories260K-Q4_K_M.gguf" ] && ok || bad "pull default: path $(cat "$T/out")"
[ "$(sha "$CACHE/test_tiny-GGUF_stories260K-Q4_K_M.gguf")" = "$WANT" ] && ok || bad "pull default: wrong bytes"
[ -s "$T/err" ] && bad "pull default: stderr not quiet: $(cat -v "$T/err")" || ok
grep -q '^GET /api/models/test/tiny-GGUF/tree/main' "$T/hub.log" && ok || bad "no tree listing asked for"

# ---- quant names are case-insensitive; a quant is a whole word (mmproj files are never models)
run "pull q8_0" 0 "" -- "$BIN" model pull test/tiny-GGUF:q8_0
[ "$(cat "$T/out")" = "$CACHE/test_tiny-GGUF_stories260K-Q8_0.gguf" ] && ok || bad "pull q8_0: path $(cat "$T/out")"
run "pull file name" 0 "" -- "$BIN" model pull test/tiny-GGUF:stories260K-Q8_0.gguf
[ "$(cat "$T/out")" = "$CACHE/test_tiny-GGUF_stories260K-Q8_0.gguf" ] && ok || bad "pull by file name: $(cat "$T/out")"

# ---- a file already in the cache is not fetched again
: > "$T/hub.log"
run "pull cached" 0 "" -- "$BIN" model pull test/tiny-GGUF:Q4_K_M
grep -q '/resolve/' "$T/hub.log" && bad "cached file fetched again: $(cat "$T/hub.log")" || ok

# ---- no file for the quant: the files there are listed (not README, not mmproj)
run "no quant" 2 "test/tiny-GGUF has no GGUF file for Q5_K_M; it has: stories260K-Q8_0.gguf, stories260K-Q4_K_M.gguf$" -- \
  "$BIN" model pull test/tiny-GGUF:Q5_K_M
run "quant is a whole word" 2 "no GGUF file for Q4_K;" -- "$BIN" model pull test/tiny-GGUF:Q4_K

# ---- a repository of one model file: no quant given takes it; a named quant it lacks is refused
run "only file" 0 "" -- "$BIN" model pull test/one-GGUF
[ "$(cat "$T/out")" = "$CACHE/test_one-GGUF_stories260K.gguf" ] && ok || bad "only file: $(cat "$T/out")"
run "only file, quant named" 2 "has no GGUF file for Q8_0; it has: stories260K.gguf" -- "$BIN" model pull test/one-GGUF:Q8_0

# ---- no such repository; a malformed name
run "no repo" 2 "^forkpoint: no such repository on the hub: test/nope-GGUF" -- "$BIN" model pull test/nope-GGUF
run "bad spec" 2 "OWNER/REPO\[:QUANT\]" -- "$BIN" model pull noslash
run "bad spec 2" 2 "OWNER/REPO\[:QUANT\]" -- "$BIN" model pull "a/b/c:Q8_0"
run "empty quant" 2 "OWNER/REPO\[:QUANT\]" -- "$BIN" model pull "test/tiny-GGUF:"

# ---- interrupted mid-file: the .part stays, the next run resumes with Range, the sha256 matches
D="$CACHE/test_drop-GGUF_stories260K-Q4_K_M.gguf"
: > "$T/hub.log"
run "interrupted" 1 "interrupted after [0-9]+ bytes.*run again to resume" -- "$BIN" model pull test/drop-GGUF
PART=$(stat -c %s "$D.part" 2>/dev/null || echo 0)
FULL=$(stat -c %s "$MODEL")
[ "$PART" -gt 0 ] && [ "$PART" -lt "$FULL" ] && ok || bad "interrupted: .part is $PART of $FULL bytes"
[ -e "$D" ] && bad "interrupted: a file was left as if complete" || ok
run "resumed" 0 "" -- "$BIN" model pull test/drop-GGUF
grep -q "^GET /cdn/test/drop-GGUF/stories260K-Q4_K_M.gguf bytes=$PART-$" "$T/hub.log" && ok || bad "no Range request from $PART: $(cat "$T/hub.log")"
[ "$(sha "$D")" = "$WANT" ] && ok || bad "resumed file's sha256 differs"
[ -e "$D.part" ] && bad "resumed: .part left" || ok

# ---- corrupted (the bytes do not match the published sha256): removed, one line
B="$CACHE/test_bad-GGUF_stories260K-Q4_K_M.gguf"
run "bad hash" 1 "sha256 .* is not the published .*the download was removed" -- "$BIN" model pull test/bad-GGUF
[ -e "$B" ] || [ -e "$B.part" ] && bad "bad hash: a file was left" || ok

# ---- no sha256 in the listing: the x-linked-etag of resolve/main is the one checked
run "bad etag" 1 "sha256 .* is not the published .*the download was removed" -- "$BIN" model pull test/etag-GGUF
[ -e "$CACHE/test_etag-GGUF_stories260K-Q4_K_M.gguf" ] && bad "bad etag: a file was left" || ok

# ---- a split model: every part, the first one's path
run "split" 0 "" -- "$BIN" model pull test/split-GGUF
[ "$(cat "$T/out")" = "$CACHE/test_split-GGUF_big-Q4_K_M-00001-of-00002.gguf" ] && ok || bad "split: $(cat "$T/out")"
cat "$CACHE/test_split-GGUF_big-Q4_K_M-00001-of-00002.gguf" "$CACHE/test_split-GGUF_big-Q4_K_M-00002-of-00002.gguf" 2>/dev/null \
  | sha256sum | grep -q "^$WANT " && ok || bad "split parts do not add up to the file"

# ---- --models-dir puts the download elsewhere
run "models-dir" 0 "" -- "$BIN" model pull test/tiny-GGUF:Q8_0 --models-dir "$T/mine"
[ "$(cat "$T/out")" = "$T/mine/test_tiny-GGUF_stories260K-Q8_0.gguf" ] && [ -f "$T/mine/test_tiny-GGUF_stories260K-Q8_0.gguf" ] && ok || bad "models-dir: $(cat "$T/out")"

# ---- no network: one line; what the cache holds still works
DEAD="http://127.0.0.1:1"
FORKPOINT_HF_ENDPOINT=$DEAD run "no network" 1 "^forkpoint: no network: cannot reach 127.0.0.1:1" -- "$BIN" model pull test/other-GGUF
FORKPOINT_HF_ENDPOINT=$DEAD run "offline cache" 0 "" -- "$BIN" model pull test/tiny-GGUF:Q8_0
[ "$(cat "$T/out")" = "$CACHE/test_tiny-GGUF_stories260K-Q8_0.gguf" ] && ok || bad "offline cache: $(cat "$T/out")"

# ---- a progress bar on a terminal (script(1) gives the command one)
rm -f "$CACHE/test_tiny-GGUF_stories260K-Q8_0.gguf"
script -qec "$BIN model pull test/tiny-GGUF:Q8_0" /dev/null > "$T/tty" 2>&1
grep -q '100%' "$T/tty" && grep -q 'stories260K-Q8_0.gguf' "$T/tty" && ok || bad "no progress bar on a terminal: $(cat -v "$T/tty" | head -c 300)"

# ---- write and chat run on the downloaded model; --hf and --model exclude each other
printf '1\nq\n' > "$T/choices"
run "write --hf" 0 "" -- "$BIN" write --hf test/tiny-GGUF:Q8_0 --threads 1 --max-tokens 8 --choices "$T/choices"
grep -q '^Once upon a time' "$T/out" && ok || bad "write --hf wrote nothing: $(head -c 200 "$T/out")"
printf 'say Hello.\nq\n' > "$T/chat"
run "chat --hf" 0 "" -- "$BIN" chat --hf test/tiny-GGUF --threads 1 --max-tokens 4 --chat-template chatml --choices "$T/chat"
grep -q '^user: Hello.' "$T/out" && ok || bad "chat --hf: $(head -c 200 "$T/out")"
run "write --hf --model" 2 "not both" -- "$BIN" write --hf test/tiny-GGUF --model "$MODEL"
run "write --hf no repo" 2 "no such repository" -- "$BIN" write --hf test/nope-GGUF --choices /dev/null

# ---- model list: the folder's models from their headers, as a table and as JSON
run "list json" 0 "" -- "$BIN" model list --models-dir "$MODELS/tinystories-656k" --json
node -e 'const a=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
if(a.length!==3)process.exit(1);
for(const m of a){if(m.arch!=="llama"||m.n_ctx_train!==512||m.n_vocab!==2048||m.chat_template!==false||!m.weights||!(m.size_bytes>0)||!m.name)process.exit(2);}
if(a.map(m=>m.file).join()!=="TinyStories-656K-mixed-IQ4_NL.gguf,TinyStories-656K.f16.gguf,tinystories-656k-q8_0.gguf")process.exit(3);' "$T/out" \
  && ok || bad "list json ($?): $(head -c 300 "$T/out")"
mkdir -p "$T/folder/sub" && cp "$MODEL" "$T/folder/a.gguf" && cp "$MODELS/vocab-only/ggml-vocab-phi-3.gguf" "$T/folder/sub/" \
  && head -c 100 "$MODEL" > "$T/folder/broken.gguf" && echo x > "$T/folder/b.gguf.part" && echo x > "$T/folder/notes.txt"
run "list table" 0 "" -- "$BIN" model list --models-dir "$T/folder"
[ "$(grep -c gguf "$T/out")" -eq 3 ] && ok || bad "list table: $(cat "$T/out")"
grep -E "^llama +1.2 MB +2048 llama +F32 +no +512  $T/folder/a.gguf$" "$T/out" >/dev/null && ok || bad "list table row: $(cat "$T/out")"
grep -E "^Phi3 .* yes +32064  $T/folder/sub/ggml-vocab-phi-3.gguf  \(vocab only\)$" "$T/out" >/dev/null && ok || bad "list: vocab-only row: $(cat "$T/out")"
grep -E "broken.gguf is not a GGUF file" "$T/out" >/dev/null && ok || bad "list: broken file not said: $(cat "$T/out")"
run "list cache" 0 "" -- "$BIN" model list --json
grep -q '"file":"test_tiny-GGUF_stories260K-Q4_K_M.gguf"' "$T/out" && ok || bad "list: the cache lacks the download: $(head -c 300 "$T/out")"
run "list no folder" 2 "cannot read the models folder $T/nope" -- "$BIN" model list --models-dir "$T/nope"
run "list bad flag" 2 "unexpected --bogus" -- "$BIN" model list --bogus

# ---- serve --hf: downloads, then serves that model
SERVE="$(dirname "$BIN")/forkpoint-serve"
if [ -x "$SERVE" ]; then
  "$SERVE" --hf test/tiny-GGUF:Q8_0 --models-dir "$T/srv" --port 0 --db "$T/s.db" > "$T/serve.out" 2>"$T/serve.err" &
  SPID=$!
  for _ in $(seq 300); do grep -q listening "$T/serve.out" && break; kill -0 $SPID 2>/dev/null || break; sleep 0.2; done
  grep -q "listening on http://127.0.0.1:" "$T/serve.out" && grep -q "model $T/srv/test_tiny-GGUF_stories260K-Q8_0.gguf" "$T/serve.err" \
    && ok || bad "serve --hf: $(cat "$T/serve.out" "$T/serve.err" | head -c 400)"
  kill $SPID 2>/dev/null; wait $SPID 2>/dev/null
  run "serve --hf no repo" 1 "no such repository" -- "$SERVE" --hf test/nope-GGUF --port 0 --db "$T/s2.db"
  run "serve --hf --model" 2 "not both" -- "$SERVE" --hf test/nope-GGUF --model "$MODEL"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
