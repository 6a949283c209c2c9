#!/usr/bin/env bash
# test_chat.sh — `forkpoint chat` as a user meets it, scripted (--choices):
# a reply co-written with forks and ended by the person, replies and
# predicted messages that end at the model's end-of-turn token, undo across
# a turn, the decision log with turn and role, and every bad input (one-line
# error, non-zero exit, no crash).
#
# Usage: tests/cli/test_chat.sh BINARY MODELS_DIR    (prints "N passed, N failed")
set -u
BIN=$(realpath "${1:?binary}"); MODELS=$(realpath "${2:?models dir}")
TS="$MODELS/tinystories-656k/tinystories-656k-q8_0.gguf"   # ends its stories with its end token
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { fail=$((fail+1)); echo "FAIL chat: $*" >&2; }

expect_error() {
  local name=$1 code=$2 re=$3; shift 4
  timeout 120 "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$name: exit $rc, want $code ($(head -c 300 "$T/err"))"; return; fi
  if ! grep -qE "$re" "$T/err"; then bad "$name: message '$(head -c 300 "$T/err")' !~ /$re/"; return; fi
  if grep -qiE 'AddressSanitizer|runtime error|Segmentation|terminate called' "$T/err"; then bad "$name: crashed"; return; fi
  ok
}

C=("$BIN" chat --model "$TS" --threads 1 --chat-template chatml --max-tokens 0)

# ---- a reply steered at two forks, one undone, ended by the person
printf 'say Once upon a time, there was a little girl.\nreply\n1\n2\nu\n2\nend\nq\n' > "$T/steer"
if timeout 120 "${C[@]}" --system "Tell stories." --choices "$T/steer" --json "$T/ev.jsonl" >"$T/out" 2>"$T/err"; then ok; else bad "steered chat failed: $(cat "$T/err")"; fi
[ "$(sed -n 1p "$T/out")" = "system: Tell stories." ] && ok || bad "no system line: $(head -3 "$T/out")"
[ "$(sed -n 2p "$T/out")" = "user: Once upon a time, there was a little girl." ] && ok || bad "no user line"
grep -qE '^assistant: .+' "$T/out" && ok || bad "no assistant line: $(cat "$T/out")"
grep -q '<|im' "$T/out" && bad "control text shown: $(cat "$T/out")" || ok
node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
if(l.length<3)process.exit(1);for(const e of l)if(e.turn!==2||e.role!=="assistant"||!("candidates" in e))process.exit(2);' "$T/ev.jsonl" \
  && ok || bad "events lack turn 2 / role assistant ($?): $(head -c 300 "$T/ev.jsonl")"

# ---- without forks: the reply and the person's predicted message end at end-of-turn by themselves;
#      undo takes the predicted message back (no decision in it), and predicting again gives it again
printf 'say Once upon a time, there was a little girl.\nreply\nme\nu\nme\nq\n' > "$T/auto"
if timeout 120 "${C[@]}" --entropy 0 --top1 0 --choices "$T/auto" >"$T/out" 2>"$T/err"; then ok; else bad "automatic chat failed: $(cat "$T/err")"; fi
[ "$(grep -c '^assistant: ' "$T/out")" = 1 ] && ok || bad "want one reply: $(cat "$T/out")"
[ "$(grep -c '^user: ' "$T/out")" = 3 ] && ok || bad "want the typed message, the predicted one and it again after undo: $(cat "$T/out")"
a=$(grep '^user: ' "$T/out" | sed -n 2p); b=$(grep '^user: ' "$T/out" | sed -n 3p)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "predicted again, the message differs: '$a' '$b'"

# ---- bad input
expect_error "no template" 2 "chat template" -- "$BIN" chat --model "$MODELS/stories260K.gguf" --threads 1 --choices /dev/null
expect_error "unknown template" 2 "not a chat template" -- "${C[@]}" --chat-template "{{ nope }}" --choices /dev/null
expect_error "--prompt" 2 "no --prompt" -- "${C[@]}" --prompt hi --choices /dev/null
expect_error "--system without a value" 2 "needs a value" -- "${C[@]}" --system
expect_error "bad system" 2 "UTF-8" -- "${C[@]}" --system $'a\xffb' --choices /dev/null
printf 'jump\n' > "$T/x"; expect_error "unknown command" 2 "unknown command" -- "${C[@]}" --choices "$T/x"
printf 'c\n' > "$T/x"; expect_error "no turn open" 2 "no turn is open" -- "${C[@]}" --choices "$T/x"
printf 'u\n' > "$T/x"; expect_error "nothing to undo" 2 "nothing to undo" -- "${C[@]}" --choices "$T/x"
printf 'say hi\nsay \n' > "$T/x"; expect_error "empty message" 2 "empty" -- "${C[@]}" --choices "$T/x"
printf 'say hi\nreply\n' > "$T/x"; expect_error "choices end at a fork" 3 "choices ended" -- "${C[@]}" --choices "$T/x"
printf 'say hi\nreply\n99\n' > "$T/x"; expect_error "out-of-range choice" 2 "out of range" -- "${C[@]}" --choices "$T/x"
printf 'say hi\nreply\nreply\n' > "$T/x"; expect_error "a turn already open" 2 "turn is open" -- "${C[@]}" --choices "$T/x"
expect_error "missing choices file" 2 "cannot open" -- "${C[@]}" --choices /nonexistent/choices

echo "chat: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
