#!/usr/bin/env bash
# test_cli.sh — `forkpoint write` as a user meets it: scripted runs, every bad
# input (one-line error, non-zero exit, no crash, no hang), and the
# interactive keyboard path driven through tmux (send-keys, capture-pane).
#
# Usage: tests/cli/test_cli.sh BINARY MODELS_DIR    (prints "N passed, N failed")
set -u
BIN=$(realpath "${1:?binary}"); MODELS=$(realpath "${2:?models dir}")
MODEL="$MODELS/stories260K.gguf"
T=$(mktemp -d); trap 'rm -rf "$T"; tmux kill-session -t fp-test-$$ 2>/dev/null' EXIT
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { fail=$((fail+1)); echo "FAIL cli: $*" >&2; }

# expect_error NAME CODE REGEX -- command...: a non-zero exit CODE, one stderr line matching REGEX
expect_error() {
  local name=$1 code=$2 re=$3; shift 4
  timeout 60 "$@" >"$T/out" 2>"$T/err"; local rc=$?
  local lines; lines=$(grep -vc '^$' "$T/err")
  if [ "$rc" -ne "$code" ]; then bad "$name: exit $rc, want $code ($(head -c 300 "$T/err"))"; return; fi
  if [ "$lines" -lt 1 ] || ! grep -qE "$re" "$T/err"; then bad "$name: message '$(head -c 300 "$T/err")' !~ /$re/"; return; fi
  if grep -qiE 'AddressSanitizer|runtime error|Segmentation' "$T/err"; then bad "$name: crashed"; return; fi
  ok
}

W=("$BIN" write --model "$MODEL" --threads 1)

# ---- a scripted session works and writes its events
printf 'p1\n2\nprefix ca\n1\nt dragon\nu\nc\nq\n' > "$T/choices"
if timeout 60 "${W[@]}" --choices "$T/choices" --json "$T/ev.jsonl" >"$T/out" 2>"$T/err"; then ok; else bad "scripted run failed: $(cat "$T/err")"; fi
grep -q '^Once upon a time, there was a little' "$T/out" && ok || bad "scripted run: no text"
n=$(wc -l < "$T/ev.jsonl"); [ "$n" -ge 4 ] && ok || bad "scripted run: $n events"
grep -q '"typed_prefix":"ca"' "$T/ev.jsonl" && ok || bad "the narrowed fork is not logged"
grep -q '"kind":"typed"' "$T/ev.jsonl" && grep -q '"by":"script"' "$T/ev.jsonl" && ok || bad "typed choice not logged"
node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n");for(const x of l){const e=JSON.parse(x);if(!("id" in e&&"candidates" in e&&"other" in e&&"choice" in e&&"ms" in e&&"uncertainty" in e&&"is_eog" in e.candidates[0]))process.exit(1)}' "$T/ev.jsonl" && ok || bad "event JSON lacks fields"
# same seed, same script: same output
timeout 60 "${W[@]}" --sample --seed 3 --choices "$T/choices" > "$T/a" 2>/dev/null
timeout 60 "${W[@]}" --sample --seed 3 --choices "$T/choices" > "$T/b" 2>/dev/null
cmp -s "$T/a" "$T/b" && ok || bad "seeded runs differ"
# pN.K: candidate N with its first K preview words, then a fork right there
printf 'p1\nq\n' | timeout 60 "${W[@]}" > "$T/p1" 2>/dev/null
printf 'p1.0\nq\n' | timeout 60 "${W[@]}" > "$T/p10" 2>/dev/null
printf 'p1.2\n1\nq\n' | timeout 60 "${W[@]}" --json "$T/ev12.jsonl" > "$T/p12" 2>"$T/err" && ok || bad "p1.2 failed: $(cat "$T/err")"
printf 'p1.2\nq\n' | timeout 60 "${W[@]}" > "$T/p12" 2>/dev/null
a=$(cat "$T/p10"); b=$(cat "$T/p12"); c=$(cat "$T/p1")
[ ${#a} -lt ${#b} ] && [ ${#b} -lt ${#c} ] && [ "${c#"$b"}" != "$c" ] && [ "${b#"$a"}" != "$b" ] && ok || bad "p1.0 / p1.2 / p1 are not word, word + 2 preview words, word + preview: '$a' '$b' '$c'"
node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
const e0=l[0],p=e0.candidates[0].preview,taken=p.slice(0,p.search(/\s*\S+\s*\S+/)+p.match(/\s*\S+\s*\S+/)[0].length);
if(l.length<2||l[1].reason!=="forced"||e0.choice.kind!=="index_preview")process.exit(1);
if(!process.argv[2].endsWith(e0.candidates[0].text+taken))process.exit(2);' "$T/ev12.jsonl" "$b" && ok || bad "p1.2: the next fork is not forced right after two preview words ($?)"
# stdin works as the script
printf '1\nq\n' | timeout 60 "${W[@]}" > "$T/out" 2>"$T/err" && ok || bad "choices from stdin: $(cat "$T/err")"

# ---- bad input
expect_error "missing model" 2 "not found|cannot open" -- "$BIN" write --model /nonexistent.gguf
head -c 5000 "$MODEL" > "$T/trunc.gguf"
expect_error "truncated GGUF" 2 "truncated|corrupt|cannot load" -- "$BIN" write --model "$T/trunc.gguf"
printf 'GGUFxxxxxxxxxxxxxxxxxxxxxxxxxx' > "$T/corrupt.gguf"
expect_error "corrupt GGUF" 2 "GGUF|corrupt" -- "$BIN" write --model "$T/corrupt.gguf"
printf 'hello world, not a model at all' > "$T/text.gguf"
expect_error "not GGUF" 2 "not a GGUF" -- "$BIN" write --model "$T/text.gguf"
expect_error "GGUF v1" 2 "version 1" -- "$BIN" write --model "$MODELS/legacy-gguf-v1/tinyllamas-stories-260k-f32.gguf"
expect_error "vocab-only" 2 "vocab-only" -- "$BIN" write --model "$MODELS/vocab-only/ggml-vocab-phi-3.gguf"
long=$(printf 'the cat sat on the mat. %.0s' $(seq 1 600))
expect_error "prompt too long" 2 "context" -- "${W[@]}" --prompt "$long" --choices /dev/null
expect_error "empty prompt" 2 "empty" -- "${W[@]}" --prompt "" --choices /dev/null
expect_error "invalid UTF-8 prompt" 2 "UTF-8" -- "${W[@]}" --prompt $'Once \xff upon' --choices /dev/null
# TinyStories-656K has no "[" and no byte tokens: llama.cpp would abort; we refuse, naming it
M656=("$BIN" write --model "$MODELS/tinystories-656k/tinystories-656k-q8_0.gguf" --threads 1)
expect_error "unspellable prompt" 2 'cannot spell "\[" U\+005B' -- "${M656[@]}" --prompt "a [b" --choices /dev/null
printf 't [x]\nq\n' > "$T/typed656"
expect_error "unspellable typed word" 2 'typed text cannot be tokenized.*"\["' -- "${M656[@]}" --prompt "Once upon a time" --choices "$T/typed656"
printf 'say hi [there]\nreply\nq\n' > "$T/say656"
expect_error "unspellable chat message" 2 'conversation cannot be tokenized.*"\["' -- "$BIN" chat --model "$MODELS/tinystories-656k/tinystories-656k-q8_0.gguf" --threads 1 --chat-template chatml --choices "$T/say656"
printf '99\n' > "$T/range"
expect_error "out-of-range choice" 2 "out of range" -- "${W[@]}" --choices "$T/range"
printf '1\n' > "$T/short"
expect_error "choices end early" 3 "choices ended" -- "${W[@]}" --choices "$T/short"
printf 'jump\n' > "$T/unknown"
expect_error "unknown command" 2 "unknown command" -- "${W[@]}" --choices "$T/unknown"
printf 'p1.99\n' > "$T/words"
expect_error "preview words out of range" 2 "preview words out of range" -- "${W[@]}" --choices "$T/words"
for bad_cmd in p1.x p1. p0.1 p1.-1 p1.2.3; do
  printf '%s\n' "$bad_cmd" > "$T/words"
  expect_error "bad pN.K: $bad_cmd" 2 "bad command.*want pN.K" -- "${W[@]}" --choices "$T/words"
done
expect_error "missing choices file" 2 "cannot open" -- "${W[@]}" --choices /nonexistent/choices
expect_error "bad option" 2 "unknown option" -- "$BIN" write --bogus
expect_error "bad value" 2 "bad value" -- "$BIN" write --k abc
expect_error "unknown command word" 2 "unknown command" -- "$BIN" frobnicate

# ---- the decision log: durable, exportable, profiles
DB="$T/log.db"
printf 'p1\n2\nt dragon\n3\nc\nu\n2\nq\n' | timeout 60 "${W[@]}" --db "$DB" --profile ann > /dev/null 2>"$T/err" && ok || bad "write --db: $(cat "$T/err")"
for f in sft pairs kto raw; do
  timeout 30 "$BIN" export --db "$DB" --format $f --out "$T/$f.jsonl" 2>/dev/null && ok || bad "export $f failed"
done
node -e '
const fs=require("fs"),d=process.argv[1];
const rows=f=>fs.readFileSync(d+"/"+f+".jsonl","utf8").trim().split("\n").map(JSON.parse);
const need={sft:["prompt","completion"],pairs:["prompt","chosen","rejected"],kto:["prompt","completion","label"],raw:["context","fork","modality","ms","settings","model_sha256","context_tokens"]};
for(const f in need){const r=rows(f);if(!r.length)process.exit(1);for(const x of r)for(const k of need[f])if(!(k in x)){console.error(f,k);process.exit(1)}}
const raw=rows("raw");if(raw.length!==6||raw.some(x=>x.fork.candidates.length<2))process.exit(2);
if(rows("pairs").length<rows("sft").length*3)process.exit(3);' "$T" && ok || bad "exported rows malformed ($?)"
grep -q '"modality":"script"' "$T/raw.jsonl" && ok || bad "modality not logged"
"$BIN" profile list --db "$DB" | grep -q '^ann' && ok || bad "profile list"
"$BIN" profile show --db "$DB" ann --model "$MODEL" > "$T/show" && ok || bad "profile show"
# what was learned, as text: counts, both plots, the words and features that moved
grep -qE '^profile ann: [1-9][0-9]* decisions learned' "$T/show" && grep -qE '^decided automatically: [0-9]+, undone by the person: [0-9]+' "$T/show" \
  && grep -q '^agreement: ' "$T/show" && grep -q '^interventions: ' "$T/show" && grep -qE '^ 100% [|]' "$T/show" \
  && grep -q '^words that moved most' "$T/show" && grep -qE '^ +[+-][0-9]+\.[0-9]{2}  model log-probability$' "$T/show" \
  && ok || bad "profile show text: $(cat "$T/show")"
expect_error "export: missing db" 2 "no database" -- "$BIN" export --db "$T/none.db" --format sft
printf 'not a database, just some text long enough to be read as a header.............' > "$T/bad.db"
expect_error "export: corrupt db" 2 "not a usable" -- "$BIN" export --db "$T/bad.db" --format sft
expect_error "export: unknown format" 2 "format must be" -- "$BIN" export --db "$DB" --format csv
expect_error "export: unknown profile" 2 "unknown profile" -- "$BIN" export --db "$DB" --format sft --profile zed
printf 'q\n' | timeout 60 "${W[@]}" --db "$T/empty.db" > /dev/null 2>&1
expect_error "export: empty db" 2 "nothing to export" -- "$BIN" export --db "$T/empty.db" --format pairs
expect_error "profile: reset unknown" 2 "unknown profile" -- "$BIN" profile reset --db "$DB" zed
expect_error "profile: other model" 2 "another model" -- "$BIN" write --model "$MODELS/llama-2-tiny-random.gguf" --db "$DB" --profile ann --choices /dev/null
expect_error "profile: show other model" 2 "another model" -- "$BIN" profile show --db "$DB" ann --model "$MODELS/llama-2-tiny-random.gguf"
# ---- forkpoint learn --lora: an adapter from the log, judged on held-out decisions, used by write
L=("$BIN" learn --model "$MODEL" --threads 1 --epochs 2)
for seed in 1 2 3; do
  printf '1\n2\np1\n3\n1\n2\n1\nq\n' | timeout 60 "${W[@]}" --db "$DB" --profile ann --sample --seed $seed > /dev/null 2>&1
done
# ---- write --adapt: the settings ann's habits ask for (22+ decisions counted by now)
expect_error "write: --adapt needs --profile" 2 "needs --profile" -- "$BIN" write --model "$MODEL" --adapt --choices /dev/null
printf '1\n2\nq\n' | timeout 60 "${W[@]}" --db "$DB" --profile ann --adapt > /dev/null 2>"$T/err" && ok || bad "write --adapt: $(cat "$T/err")"
timeout 120 "${L[@]}" --db "$DB" --profile ann --lora "$T/ann.gguf" > "$T/out" 2>"$T/err" && ok || bad "learn: $(cat "$T/err")"
grep -q 'held-out over [0-9]* decisions: log p(chosen) - log p(rejected)' "$T/out" && grep -q "wrote $T/ann.gguf at strength" "$T/out" && ok || bad "learn report: $(cat "$T/out")"
[ -s "$T/ann.gguf" ] && [ ! -e "$T/ann.gguf.new" ] && ok || bad "learn left no adapter or a temporary file"
printf '1\n1\nq\n' | timeout 60 "${W[@]}" --lora "$T/ann.gguf" --lora-scale 2 > "$T/out" 2>"$T/err" && grep -q '^Once upon a time' "$T/out" && ok || bad "write --lora: $(cat "$T/err")"
# a second run is judged against the adapter already there
timeout 120 "${L[@]}" --db "$DB" --profile ann --lora "$T/ann.gguf" --seed 9 > "$T/out" 2>"$T/err" && grep -q 'existing adapter' "$T/out" && ok || bad "learn vs existing: $(cat "$T/out" "$T/err")"
expect_error "learn: no --lora" 2 "lora OUT.gguf or --steer OUT.gguf is required" -- "$BIN" learn --db "$DB"
expect_error "learn: missing db" 2 "no database" -- "${L[@]}" --db "$T/none.db" --lora "$T/x.gguf"
expect_error "learn: corrupt db" 2 "not a usable" -- "${L[@]}" --db "$T/bad.db" --lora "$T/x.gguf"
expect_error "learn: empty db" 2 "no decisions by a person" -- "${L[@]}" --db "$T/empty.db" --lora "$T/x.gguf"
expect_error "learn: unknown profile" 2 "unknown profile" -- "${L[@]}" --db "$DB" --profile zed --lora "$T/x.gguf"
expect_error "learn: other model" 2 "another model" -- "$BIN" learn --model "$MODELS/llama-2-tiny-random.gguf" --db "$DB" --lora "$T/x.gguf"
expect_error "learn: rate too high" 2 "lr must be" -- "${L[@]}" --db "$DB" --lora "$T/x.gguf" --lr 0.01
expect_error "learn: bad resume" 2 "not a LoRA adapter" -- "${L[@]}" --db "$DB" --lora "$T/x.gguf" --resume "$MODEL"
[ ! -e "$T/x.gguf" ] && ok || bad "a failed learn wrote an adapter"
# serve applies an adapter too, and says so in /api/health
expect_error "serve: missing adapter" 1 "no adapter at" -- "$BIN" serve --model "$MODEL" --port 0 --db "$T/serve.db" --lora "$T/none.gguf"
"$BIN" serve --model "$MODEL" --port 0 --threads 1 --db "$T/serve.db" --lora "$T/ann.gguf" --lora-scale 1.5 > "$T/serve.out" 2>&1 &
spid=$!
for _ in $(seq 1 100); do grep -q listening "$T/serve.out" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*/' "$T/serve.out" | head -1)
h=$(curl -s "${url}api/health" 2>/dev/null)
grep -q '"lora_scale":1.5' <<<"$h" && ok || bad "serve --lora: health says '$h' ($(cat "$T/serve.out"))"
kill $spid 2>/dev/null; wait $spid 2>/dev/null
# ---- forkpoint learn --steer: a steering vector (llama.cpp control-vector GGUF), used by write and serve
timeout 120 "${L[@]}" --db "$DB" --profile ann --steer "$T/ann.steer.gguf" > "$T/out" 2>"$T/err" && grep -q "wrote $T/ann.steer.gguf at strength" "$T/out" && ok || bad "learn --steer: $(cat "$T/out" "$T/err")"
printf '1\n1\nq\n' | timeout 60 "${W[@]}" --steer "$T/ann.steer.gguf" > "$T/out" 2>"$T/err" && grep -q '^Once upon a time' "$T/out" && ok || bad "write --steer: $(cat "$T/err")"
expect_error "write: missing steering vector" 2 "no steering vector at" -- "${W[@]}" --steer "$T/none.gguf" --choices /dev/null
expect_error "write: an adapter is no steering vector" 2 "not a steering vector" -- "${W[@]}" --steer "$T/ann.gguf" --choices /dev/null
expect_error "write: steering vector of another model" 2 "not a steering vector for this model" -- "$BIN" write --model "$MODELS/llama-2-tiny-random.gguf" --steer "$T/ann.steer.gguf" --choices /dev/null
expect_error "serve: missing steering vector" 1 "no steering vector at" -- "$BIN" serve --model "$MODEL" --port 0 --db "$T/serve.db" --steer "$T/none.gguf"
# serve with both, and their strengths changed at run time (POST /api/adapters): open forks are recomputed
rm -f "$T/serve.out"  # the last server's "listening" line must not be read as this one's
"$BIN" serve --model "$MODEL" --port 0 --threads 1 --db "$T/serve2.db" --lora "$T/ann.gguf" --steer "$T/ann.steer.gguf" > "$T/serve.out" 2>&1 &
spid=$!
for _ in $(seq 1 100); do grep -q listening "$T/serve.out" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*/' "$T/serve.out" | head -1)
probs() { node -e 'let d="";process.stdin.on("data",c=>d+=c).on("end",()=>{const s=JSON.parse(d);console.log(s.fork?s.fork.candidates.map(c=>c.prob).join(","):"none")})'; }
sid=$(curl -s -X POST "${url}api/sessions" -d '{"prompt":"Once upon a time, there was a little"}' | node -e 'let d="";process.stdin.on("data",c=>d+=c).on("end",()=>console.log(JSON.parse(d).id))')
p1=$(curl -s "${url}api/sessions/$sid" | probs)
a=$(curl -s -X POST "${url}api/adapters" -d '{"lora_scale":0,"steer_strength":0}')
p2=$(curl -s "${url}api/sessions/$sid" | probs)
grep -q '"lora_scale":0' <<<"$a" && grep -q '"steer_strength":0' <<<"$a" && ok || bad "POST /api/adapters: $a"
[ "$p1" != none ] && [ "$p1" != "$p2" ] && ok || bad "the open fork was not recomputed ($p1 / $p2)"
h=$(curl -s "${url}api/health")
grep -q '"lora_scale":0' <<<"$h" && grep -q '"steer":' <<<"$h" && ok || bad "health after the change: $h"
for body in '{}' '{"lora_scale":"x"}' '{"lora_scale":99}' '{"steer_strength":null}' 'not json'; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${url}api/adapters" -d "$body")
  [ "$code" = 400 ] && ok || bad "POST /api/adapters $body: $code, want 400"
done
kill $spid 2>/dev/null; wait $spid 2>/dev/null
rm -f "$T/serve.out"
"$BIN" serve --model "$MODEL" --port 0 --threads 1 --db "$T/serve3.db" > "$T/serve.out" 2>&1 &
spid=$!
for _ in $(seq 1 100); do grep -q listening "$T/serve.out" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*/' "$T/serve.out" | head -1)
r=$(curl -s -X POST "${url}api/adapters" -d '{"lora_scale":1}')
grep -q 'no LoRA adapter' <<<"$r" && ok || bad "adapters without --lora: $r"
kill $spid 2>/dev/null; wait $spid 2>/dev/null
expect_error "write: missing adapter" 2 "no adapter at" -- "${W[@]}" --lora "$T/none.gguf" --choices /dev/null
expect_error "write: not an adapter" 2 "not a LoRA adapter" -- "${W[@]}" --lora "$T/bad.db" --choices /dev/null
expect_error "write: adapter of another model" 2 "not a LoRA adapter" -- "$BIN" write --model "$MODELS/llama-2-tiny-random.gguf" --lora "$T/ann.gguf" --choices /dev/null
expect_error "write: bad scale" 2 "lora-scale" -- "${W[@]}" --lora "$T/ann.gguf" --lora-scale nan --choices /dev/null
"$BIN" profile reset --db "$DB" ann > /dev/null && ok || bad "profile reset"
expect_error "profile: show after reset" 2 "unknown profile" -- "$BIN" profile show --db "$DB" ann --model "$MODEL"
# killed mid-session: every committed choice is on disk
mkfifo "$T/fifo"
( "${W[@]}" --db "$T/kill.db" --json "$T/kill.jsonl" --choices "$T/fifo" > /dev/null 2>&1 & echo $! > "$T/pid"; wait ) &
exec 7>"$T/fifo"
for c in 1 2 p1 1 2; do printf '%s\n' "$c" >&7; done
for _ in $(seq 1 100); do [ "$(wc -l < "$T/kill.jsonl" 2>/dev/null)" = 5 ] && break; sleep 0.1; done
kill -9 "$(cat "$T/pid")"; exec 7>&-; wait 2>/dev/null
n=$("$BIN" export --db "$T/kill.db" --format raw 2>/dev/null | wc -l)
[ "$n" = 5 ] && ok || bad "after kill -9: $n of 5 decisions on disk"

# ---- other vocabularies (random-weight models made by mk/models.mk)
TINY=$(cd "$(dirname "$0")/../.." && pwd)/build/models
if [ -f "$TINY/tiny-nomarks.gguf" ] && [ -f "$TINY/tiny-falcon.gguf" ]; then
  expect_error "no word marks" 2 "neither where words start nor where they end" -- "$BIN" write --model "$TINY/tiny-nomarks.gguf" --choices /dev/null
  printf '1\nprefix 的\n1\n2\nq\n' > "$T/zh"
  if timeout 120 "$BIN" write --model "$TINY/tiny-falcon.gguf" --threads 1 --prompt "从前有一个小女孩，她" --choices "$T/zh" \
       --json "$T/zh.jsonl" >"$T/zh.out" 2>"$T/zh.err"; then ok; else bad "Chinese on Falcon: $(head -c 300 "$T/zh.err")"; fi
  node -e '
    const fs = require("fs"), buf = fs.readFileSync(process.argv[1]);
    const text = new TextDecoder("utf-8", { fatal: true }).decode(buf);   /* throws on invalid UTF-8 */
    const ev = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map(JSON.parse);
    const narrowed = ev.find(e => e.typed_prefix === "的");
    if (!text.startsWith("从前有一个小女孩，她") || text.includes("\ufffd") || !narrowed ||
        !narrowed.candidates.every(c => c.text.trim().startsWith("的"))) process.exit(1);
  ' "$T/zh.out" "$T/zh.jsonl" && ok || bad "Chinese on Falcon: text or narrowed cloud: $(head -c 200 "$T/zh.out")"
else
  bad "the tiny models are not built (make build/models/tiny-falcon.gguf build/models/tiny-nomarks.gguf)"
fi

# ---- a grammar: a fixed vocabulary, every word of the text from it
printf 'root ::= item+\nitem ::= " " word | "."\nword ::= "the" | "cat" | "dog" | "sat" | "on" | "mat" | "and" | "little" | "girl" | "boy"\n' > "$T/board.gbnf"
printf '1\n2\nt dog\n1\np1\nq\n' > "$T/board"
if timeout 120 "${W[@]}" --prompt "Once upon a time, there was" --grammar "$T/board.gbnf" --choices "$T/board" >"$T/board.out" 2>"$T/board.err"
then ok; else bad "--grammar: $(head -c 300 "$T/board.err")"; fi
rest=$(sed 's/^Once upon a time, there was//' "$T/board.out" | tr -d '\n')
[ -n "$rest" ] && [ -z "$(sed -E 's/( (the|cat|dog|sat|on|mat|and|little|girl|boy)|\.)//g' <<<"$rest")" ] && ok || bad "--grammar: text '$rest'"
printf 'root ::= (' > "$T/bad.gbnf"
expect_error "bad grammar" 2 "grammar" -- "${W[@]}" --grammar "$T/bad.gbnf" --choices /dev/null
expect_error "missing grammar" 2 "grammar" -- "${W[@]}" --grammar "$T/nope.gbnf" --choices /dev/null

# ---- endless: a 128-token window, 2,000 generated tokens, with undo
for i in $(seq 1 1500); do case $((i % 9)) in 4) echo u;; 7) echo p2;; *) echo $(( (i % 3) + 1 ));; esac; done > "$T/endless"
echo q >> "$T/endless"
if timeout 600 "${W[@]}" --ctx 128 --max-tokens 2000 --choices "$T/endless" --json "$T/endless.jsonl" >"$T/endless.out" 2>"$T/endless.err"; then ok
else bad "--ctx 128: exit $? ($(tail -c 300 "$T/endless.err"))"; fi
node -e '
  const ev = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const text = require("fs").readFileSync(process.argv[2], "utf8");
  const last = Math.max(...ev.map(e => e.position));
  const late = ev.filter(e => e.position > 1500).length;
  if (last < 1900 || late < 5) { console.error(`forks up to position ${last}, ${late} past 1500`); process.exit(1); }
  if (!/^Once upon a time, there was a little/.test(text) || /[^\n\x20-\x7e]/.test(text) || text.length < 3000) {
    console.error("text: " + JSON.stringify(text.slice(-200))); process.exit(1); }
' "$T/endless.jsonl" "$T/endless.out" && ok || bad "--ctx 128: $(tail -c 300 "$T/endless.err")"
expect_error "--ctx too small" 2 "ctx" -- "${W[@]}" --ctx 8 --choices /dev/null

# ---- the keyboard, through tmux
if command -v tmux >/dev/null; then
  tmux kill-session -t fp-test-$$ 2>/dev/null
  tmux new-session -d -s fp-test-$$ -x 160 -y 50 "${W[*]} > $T/tmux.out; echo EXIT=\$? >> $T/tmux.out; sleep 30"
  screen() { tmux capture-pane -p -t fp-test-$$ 2>/dev/null; }
  wait_for() { for _ in $(seq 1 100); do screen | grep -qE "$1" && return 0; tmux has-session -t fp-test-$$ 2>/dev/null || return 1; sleep 0.1; done; return 1; }
  wait_for "other" && ok || bad "tmux: no fork on screen: $(screen | head -5)"
  screen | grep -qE '^ 1 ' && ok || bad "tmux: no numbered candidates"
  screen | grep -q '█' && ok || bad "tmux: no probability bars"
  first=$(screen | sed -n 's/^ 1 \([^ ]*\).*/\1/p' | head -1)
  tmux send-keys -t fp-test-$$ 1
  wait_for "fork 1 " && ok || bad "tmux: digit did not choose"
  screen | grep -q -- "$first" && ok || bad "tmux: chosen word '$first' not in the text"
  tmux send-keys -t fp-test-$$ BSpace
  wait_for "fork 0 " && ok || bad "tmux: Backspace did not undo"
  tmux send-keys -t fp-test-$$ w 1
  wait_for "press the number where a new fork should open" && ok || bad "tmux: w+digit did not show the preview's gaps"
  tmux send-keys -t fp-test-$$ 1
  wait_for "fork [1-9] .*forced" && ok || bad "tmux: w+digit+digit did not open a fork in the preview"
  tmux send-keys -t fp-test-$$ BSpace
  wait_for "fork 0 " && ok || bad "tmux: Backspace after w did not undo"
  tmux send-keys -t fp-test-$$ p 2
  wait_for "fork [1-9] " && ok || bad "tmux: p+digit did not take the preview"
  tmux send-keys -t fp-test-$$ / z q x
  wait_for "type a word: zqx" && ok || bad "tmux: typing mode"
  tmux send-keys -t fp-test-$$ Enter
  gone=1; for _ in $(seq 1 100); do screen | grep -q "type a word" || { gone=0; break; }; sleep 0.1; done
  [ $gone -eq 0 ] && screen | grep -q "zqx" && ok || bad "tmux: typed word not committed: $(screen | head -3)"
  tmux send-keys -t fp-test-$$ Enter
  sleep 0.5
  tmux send-keys -t fp-test-$$ q
  for _ in $(seq 1 50); do grep -q EXIT "$T/tmux.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "EXIT=0" "$T/tmux.out" && ok || bad "tmux: q did not quit cleanly ($(cat "$T/tmux.out" 2>/dev/null | tail -2))"
  grep -q "zqx" "$T/tmux.out" && ok || bad "tmux: final text not printed"
  tmux kill-session -t fp-test-$$ 2>/dev/null
  # wide characters and word wrapping: a 40-column terminal, a Russian and
  # Chinese prompt; with -J tmux joins the lines it wrapped itself, so every
  # line it shows must be ours: at most 40 columns (CJK counted as 2), and
  # every Russian word of the prompt whole on one line
  RUZH="Жила-была маленькая девочка, которая очень любила гулять в лесу. 从前有一个小女孩，她很喜欢在森林里散步。"
  tmux new-session -d -s fp-test-$$ -x 40 -y 50 "${W[*]} --prompt '$RUZH' > $T/tmux.out; sleep 30"
  wait_for "other" && ok || bad "tmux 40 columns: no fork on screen: $(screen | head -5)"
  tmux capture-pane -pJ -t fp-test-$$ > "$T/wrap.txt"
  node -e '
    const w = s => [...s].reduce((n, ch) => { const c = ch.codePointAt(0);
      return n + ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF) || (c >= 0xAC00 && c <= 0xD7A3) ||
                  (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFF60) || (c >= 0xFFE0 && c <= 0xFFE6) ? 2 : 1); }, 0);
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
    const end = lines.findIndex(l => /^fork \d/.test(l));
    const text = lines.slice(0, end < 0 ? lines.length : end).filter(l => l.trim());
    if (text.length < 3) { console.error("too few text lines: " + text.length); process.exit(1); }
    for (const l of text) if (w(l.replace(/\s+$/, "")) > 40) { console.error("line wider than 40: " + l); process.exit(1); }
    for (const word of process.argv[2].split(/[ .,]+/).filter(x => /^[а-яА-Я-]+$/.test(x)))
      if (!text.some(l => l.split(/[ .,]+/).includes(word))) { console.error("word split: " + word); process.exit(1); }
  ' "$T/wrap.txt" "$RUZH" && ok || bad "tmux 40 columns: $(cat "$T/wrap.txt" | head -8)"
  tmux kill-session -t fp-test-$$ 2>/dev/null
else
  bad "tmux is not installed"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
