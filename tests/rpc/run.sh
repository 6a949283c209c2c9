#!/usr/bin/env bash
# tests/rpc/run.sh — one model on many machines (docs/deploy.md "RPC workers"):
# two `forkpoint worker`s on loopback ports, started here.
#
#  - `forkpoint write --rpc A,B` on stories260K with a fixed --choices script
#    gives the same text and the same fork candidates as the local engine,
#    probabilities equal to 1e-6 (the workers run the same CPU kernels of the
#    same build on the same machine, so they are expected bit-identical; the
#    tolerance only absorbs a JSON round trip). Greedy text: identical. The
#    same on the synthetic 0.5B-body model (bench/gen_model, in the cache):
#    text and fork events byte-identical but for their timings.
#  - a worker killed mid-run: one line naming it, exit 1, no hang, and every
#    decision made before it (--json and --db) kept;
#  - unreachable, silent and busy workers: one line, non-zero exit, no hang
#    (the connect/answer timeout);
#  - bad --rpc lists and worker flags: one line, exit 2;
#  - forkpoint-serve --rpc: a worker killed mid-story; the server says why (its
#    log, and 503s with the reason while the worker is gone), restarts once the
#    worker is back, and the story has every committed choice.
#
# Usage: tests/rpc/run.sh [BUILD_DIR]   (default build/asan; prints "N passed, N failed")
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
B=${1:-$repo/build/asan}
MODELS=${FP_TEST_MODELS:-$(realpath -m "$repo/../shared/models")}
MODEL=$MODELS/stories260K.gguf
FP=$B/forkpoint
SERVE=$B/forkpoint-serve
# llama.cpp's RPC client keeps or leaks a few objects of its own (lsan.supp)
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}
T=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL rpc: $*" >&2; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

for f in "$FP" "$MODEL"; do [ -e "$f" ] || { bad "$f is missing"; finish; }; done
command -v node >/dev/null || { bad "node is needed"; finish; }

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
# wait_port PORT: until something accepts on it (10 s)
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# start_worker PORT: a worker in the background, its pid in $wpid
start_worker() {
  "$FP" worker --port "$1" --threads 1 >>"$T/worker-$1.log" 2>&1 &
  wpid=$!; pids+=("$wpid")
  wait_port "$1" || bad "worker on $1 did not start: $(cat "$T/worker-$1.log")"
}

PA=$(free_port); PB=$(free_port)
start_worker "$PA"; WA=$wpid
start_worker "$PB"; WB=$wpid
RPC="127.0.0.1:$PA,127.0.0.1:$PB"
W=("$FP" write --model "$MODEL" --threads 1)

# ---- the same story, local and over two workers
printf '2\np1\n3\nt dragon\n1\nprefix sh\n1\nc\n2\nq\n' > "$T/choices"
timeout 120 "${W[@]}" --choices "$T/choices" --json "$T/local.jsonl" >"$T/local.txt" 2>"$T/local.err" \
  || bad "local run failed: $(cat "$T/local.err")"
timeout 120 "${W[@]}" --rpc "$RPC" --choices "$T/choices" --json "$T/rpc.jsonl" >"$T/rpc.txt" 2>"$T/rpc.err" \
  && ok || bad "rpc run failed: $(head -c 400 "$T/rpc.err")"
[ -s "$T/local.txt" ] && cmp -s "$T/local.txt" "$T/rpc.txt" && ok || bad "text differs: '$(cat "$T/local.txt")' vs '$(cat "$T/rpc.txt")'"
node -e '
const fs=require("fs"), rd=f=>fs.readFileSync(f,"utf8").trim().split("\n").map(JSON.parse);
const a=rd(process.argv[1]), b=rd(process.argv[2]);
if(a.length<5||a.length!==b.length){console.error("events",a.length,b.length);process.exit(1)}
let worst=0;
for(let i=0;i<a.length;i++){
  const x=a[i],y=b[i];
  if(x.candidates.length!==y.candidates.length||x.position!==y.position){console.error("fork",i);process.exit(1)}
  for(let j=0;j<x.candidates.length;j++){
    const c=x.candidates[j],d=y.candidates[j];
    if(c.text!==d.text||c.preview!==d.preview){console.error("candidate",i,j,c.text,d.text);process.exit(1)}
    worst=Math.max(worst,Math.abs(c.prob-d.prob));
  }
  worst=Math.max(worst,Math.abs(x.other-y.other));
}
console.log("max |dp| "+worst); if(worst>1e-6)process.exit(1);' "$T/local.jsonl" "$T/rpc.jsonl" >"$T/cmp.out" 2>&1 \
  && ok || bad "fork candidates differ: $(cat "$T/cmp.out")"
echo "rpc: local vs 2 workers: $(cat "$T/cmp.out")"
# one worker holds every layer: the same text too
timeout 120 "${W[@]}" --rpc "127.0.0.1:$PB" --choices "$T/choices" >"$T/rpc1.txt" 2>"$T/rpc1.err" \
  && cmp -s "$T/local.txt" "$T/rpc1.txt" && ok || bad "one worker: text differs or failed: $(head -c 300 "$T/rpc1.err")"
# the synthetic 0.5B-body model (24 layers, 12 on each worker; bench/gen_model,
# made once into the cache): the same greedy text and forks
GEN=$repo/build/release/bench/gen_model
if [ -n "${FP_SYNTH_MODEL:-}" ] || [ -x "$GEN" ]; then
  SYN=${FP_SYNTH_MODEL:-$("$GEN" --threads 1 2>"$T/gen.err")}
  SW=("$FP" write --model "$SYN" --threads 1 --max-tokens 12 --k 4 --lookahead 4 --choices "$T/choices2")
  printf '2\n1\nq\n' > "$T/choices2"
  timeout 300 "${SW[@]}" --json "$T/syn-local.jsonl" >"$T/syn-local.txt" 2>"$T/syn.err" \
    && timeout 300 "${SW[@]}" --rpc "$RPC" --json "$T/syn-rpc.jsonl" >"$T/syn-rpc.txt" 2>>"$T/syn.err" \
    && [ -s "$T/syn-local.txt" ] && cmp -s "$T/syn-local.txt" "$T/syn-rpc.txt" \
    && cmp -s <(sed 's/"ms":[0-9.]*//g' "$T/syn-local.jsonl") <(sed 's/"ms":[0-9.]*//g' "$T/syn-rpc.jsonl") \
    && ok || bad "synthetic 0.5B ($SYN): local and 2 workers differ or failed: $(head -c 300 "$T/syn.err" "$T/gen.err" 2>/dev/null)"
else
  bad "the synthetic 0.5B-body model needs $GEN (make test builds it) or FP_SYNTH_MODEL"
fi
# chat takes --rpc too (write's options)
printf 'say Hello\nreply\n1\nq\n' | timeout 120 "$FP" chat --model "$MODEL" --threads 1 --rpc "$RPC" --chat-template chatml \
  >"$T/chat.out" 2>"$T/chat.err"; rc=$?
{ [ $rc -eq 0 ] || [ $rc -eq 3 ]; } && grep -q '^user: Hello' "$T/chat.out" && ok || bad "chat --rpc: exit $rc $(head -c 300 "$T/chat.err")"

# ---- bad --rpc lists: one line, exit 2, before any connection
for v in "" "host" ":80" "h:0" "h:65536" "h:8x" "a:1,,b:2" "a:1," "a:1,a:1" "a b:1" "h:-1" \
         "$(printf 'h%.0s' $(seq 300)):1" "$(for i in $(seq 17); do printf 'h%d:1,' "$i"; done)b:2"; do
  timeout 20 "${W[@]}" --rpc "$v" --choices /dev/null >/dev/null 2>"$T/err"; rc=$?
  [ $rc -eq 2 ] && [ "$(grep -c . "$T/err")" -eq 1 ] && grep -q -- '--rpc' "$T/err" && ok || bad "--rpc '$v': exit $rc, $(cat "$T/err")"
done
timeout 20 "$SERVE" --rpc "a:1,,b" >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- '--rpc' "$T/err" && ok || bad "serve --rpc bad list: $(cat "$T/err")"
timeout 20 "$SERVE" --rpc "127.0.0.1:$PA" --port 0 >/dev/null 2>"$T/err"; [ $? -eq 2 ] && grep -q -- '--port N' "$T/err" && ok || bad "serve --rpc --port 0: $(cat "$T/err")"

# ---- worker flags
timeout 10 "$FP" worker --host 0.0.0.0 --port "$(free_port)" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q 'no authentication' "$T/err" && ok || bad "worker off loopback without --allow-remote: exit $rc $(cat "$T/err")"
for a in "--port 0" "--port 70000" "--port x" "--threads 0" "--host" "--bogus 1" "--host ::1"; do
  # shellcheck disable=SC2086
  timeout 10 "$FP" worker $a >/dev/null 2>"$T/err"; rc=$?
  [ $rc -eq 2 ] && [ "$(grep -c . "$T/err")" -eq 1 ] && ok || bad "rpc-worker $a: exit $rc $(cat "$T/err")"
done
timeout 10 "$FP" worker --port "$PA" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q 'cannot listen.*in use' "$T/err" && ok || bad "rpc-worker on a taken port: exit $rc $(cat "$T/err")"
# --allow-remote off loopback warns first (on a taken port, so nothing is ever exposed)
timeout 10 "$FP" worker --host 0.0.0.0 --allow-remote --port "$PA" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q 'WARNING.*no authentication' "$T/err" && grep -q 'cannot listen' "$T/err" && ok \
  || bad "no warning off loopback: exit $rc $(cat "$T/err")"

# ---- unreachable workers: one line, non-zero, within the timeout
DEAD=$(free_port)
start=$(date +%s)
timeout 30 "${W[@]}" --rpc "127.0.0.1:$PA,127.0.0.1:$DEAD" --choices "$T/choices" >/dev/null 2>"$T/err"; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$(grep -c . "$T/err")" -eq 1 ] && grep -q "127.0.0.1:$DEAD is unreachable" "$T/err" \
  && ok || bad "refused worker: exit $rc, $(cat "$T/err")"
timeout 30 "${W[@]}" --rpc "no-such-host.invalid:50052" --choices "$T/choices" >/dev/null 2>"$T/err"; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$(grep -c . "$T/err")" -eq 1 ] && grep -q "unreachable" "$T/err" && ok || bad "unknown host: exit $rc, $(cat "$T/err")"
# a port that accepts and never answers (not a worker): the answer timeout
SILENT=$(free_port)
node -e 'require("net").createServer(()=>{}).listen(+process.argv[1],"127.0.0.1")' "$SILENT" & sp=$!; pids+=("$sp")
wait_port "$SILENT"
t0=$(date +%s)
timeout 30 "${W[@]}" --rpc "127.0.0.1:$SILENT" --choices "$T/choices" >/dev/null 2>"$T/err"; rc=$?
t1=$(date +%s)
[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $((t1-t0)) -lt 20 ] && [ "$(grep -c . "$T/err")" -eq 1 ] && grep -q "did not answer" "$T/err" \
  && ok || bad "silent port: exit $rc in $((t1-t0)) s, $(cat "$T/err")"
# a port that answers something else (an HTTP server)
HTTPP=$(free_port)
node -e 'require("net").createServer(s=>{s.on("error",()=>{});s.on("data",()=>{s.end("HTTP/1.1 400 Bad Request\r\n\r\n")})}).listen(+process.argv[1],"127.0.0.1")' "$HTTPP" & hp=$!; pids+=("$hp")
wait_port "$HTTPP"
timeout 30 "${W[@]}" --rpc "127.0.0.1:$HTTPP" --choices "$T/choices" >/dev/null 2>"$T/err"; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$(grep -c . "$T/err")" -eq 1 ] && grep -q "not a .*RPC worker" "$T/err" \
  && ok || bad "not a worker: exit $rc, $(cat "$T/err")"
[ $(( $(date +%s) - start )) -lt 60 ] && ok || bad "the unreachable cases took $(( $(date +%s) - start )) s"

# ---- a worker killed mid-run: one line, exit 1, the decisions before it kept
mkfifo "$T/fifo"
"${W[@]}" --rpc "$RPC" --choices "$T/fifo" --json "$T/kill.jsonl" --db "$T/kill.db" >"$T/kill.out" 2>"$T/kill.err" &
cp=$!; pids+=("$cp")
exec 4>"$T/fifo"
printf '1\n2\n' >&4
for _ in $(seq 300); do [ "$(wc -l < "$T/kill.jsonl" 2>/dev/null || echo 0)" -ge 2 ] && break; sleep 0.1; done
kill -9 "$WB"; wait "$WB" 2>/dev/null
printf '1\n1\n1\nq\n' >&4
exec 4>&-
rc=0; for _ in $(seq 600); do kill -0 "$cp" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$cp" 2>/dev/null; then bad "write hung after the worker died"; kill -9 "$cp"; fi
wait "$cp"; rc=$?
[ $rc -eq 1 ] && ok || bad "worker killed: exit $rc, want 1 ($(head -c 400 "$T/kill.err"))"
[ "$(grep -c . "$T/kill.err")" -eq 1 ] && grep -q "RPC worker 127.0.0.1:$PB is gone" "$T/kill.err" \
  && ok || bad "worker killed: message '$(head -c 600 "$T/kill.err")'"
grep -qiE 'AddressSanitizer|runtime error|Aborted|GGML_ASSERT' "$T/kill.err" && bad "worker killed: crashed" || ok
n=$(wc -l < "$T/kill.jsonl"); [ "$n" -ge 2 ] && ok || bad "worker killed: $n events kept, want >= 2"
if command -v sqlite3 >/dev/null; then
  d=$(sqlite3 "$T/kill.db" 'select count(*) from decisions' 2>&1)
  [ "$d" -ge 2 ] 2>/dev/null && ok || bad "worker killed: $d decisions in the log, want >= 2"
fi
start_worker "$PB"; WB=$wpid

# ---- a busy worker (one client at a time): the answer timeout, not a hang
# the holder has made a decision, so its model is on the worker and it keeps the connection
"${W[@]}" --rpc "127.0.0.1:$PA" --choices "$T/fifo" --json "$T/hold.jsonl" >/dev/null 2>&1 & hold=$!; pids+=("$hold")
exec 4>"$T/fifo"
printf '1\n' >&4
for _ in $(seq 300); do [ -s "$T/hold.jsonl" ] && break; sleep 0.1; done
[ -s "$T/hold.jsonl" ] || bad "busy worker: the holder made no decision"
timeout 30 "${W[@]}" --rpc "127.0.0.1:$PA" --choices "$T/choices" >/dev/null 2>"$T/err"; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "did not answer.*one client at a time" "$T/err" && ok || bad "busy worker: exit $rc, $(cat "$T/err")"
printf 'q\n' >&4; exec 4>&-
wait "$hold" 2>/dev/null

# ---- forkpoint-serve --rpc: a worker dies mid-story, the server says why and comes back
if [ -x "$SERVE" ]; then
  SP=$(free_port)
  "$SERVE" --model "$MODEL" --threads 1 --rpc "$RPC" --db "$T/serve.db" --port "$SP" --no-prefetch \
    >"$T/serve.out" 2>"$T/serve.err" & sv=$!; pids+=("$sv")
  for _ in $(seq 300); do grep -q '^listening on' "$T/serve.out" && break; sleep 0.1; done
  U="http://127.0.0.1:$SP/api"
  node - "$U" >"$T/s1.out" 2>&1 <<'EOF'
const U = process.argv[2];
const j = async (m, p, b) => { const r = await fetch(U + p, { method: m, body: b && JSON.stringify(b) }); return [r.status, await r.json()]; };
(async () => {
  let [st, s] = await j("POST", "/sessions", { prompt: "Once upon a time" });
  if (st !== 201) throw new Error("create " + st);
  for (let i = 0; i < 3; i++) { [st, s] = await j("POST", `/sessions/${s.id}/choose`, { index: 0, fork_id: s.fork.id }); if (st !== 200) throw new Error("choose " + st); }
  console.log(s.id, s.text.length, s.path_forks.length, JSON.stringify(s.text));
})().catch(e => { console.error(e.message); process.exit(1); });
EOF
  [ $? -eq 0 ] && ok || bad "serve --rpc: the story did not start: $(cat "$T/s1.out") $(tail -3 "$T/serve.err") worker B: $(tail -5 "$T/worker-$PB.log")"
  read -r SID LEN1 NF1 TEXT1 < "$T/s1.out"
  kill -9 "$WB"; wait "$WB" 2>/dev/null
  # a choice now: its answer is lost (connection closed), it is not committed
  node -e 'fetch(process.argv[1]+"/sessions/"+process.argv[2]+"/choose",{method:"POST",body:JSON.stringify({index:0})}).then(r=>console.log("status",r.status),e=>console.log("failed",e.cause?e.cause.code:e.message))' \
    "$U" "$SID" >"$T/s2.out" 2>&1
  grep -qE 'failed|status 5' "$T/s2.out" && ok || bad "serve: a choice with a dead worker answered $(cat "$T/s2.out")"
  for _ in $(seq 100); do grep -q "RPC worker 127.0.0.1:$PB is gone" "$T/serve.err" && break; sleep 0.1; done
  grep -q "RPC worker 127.0.0.1:$PB is gone.*restarting" "$T/serve.err" && ok || bad "serve: no reason logged: $(tail -5 "$T/serve.err")"
  kill -0 "$sv" 2>/dev/null && ok || bad "serve: the supervisor is gone"
  # while the worker is gone the port answers 503 with why (the supervisor's stand-in)
  node - "$U" "$PB" >"$T/s503.out" 2>&1 <<'EOF'
const [U, pb] = process.argv.slice(2);
(async () => {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(U + "/health"); const b = await r.json();
      if (r.status === 503 && b.retryable === true && b.error.includes(`RPC worker 127.0.0.1:${pb} is gone`) && r.headers.get("retry-after")) {
        console.log("503", b.error); return;
      }
    } catch (e) { /* a restart in progress */ }
    await new Promise(r => setTimeout(r, 100));
  }
  throw new Error("no 503 with the reason");
})().catch(e => { console.error(e.message); process.exit(1); });
EOF
  [ $? -eq 0 ] && ok || bad "serve: no 503 saying why while the worker is gone: $(cat "$T/s503.out")"
  sleep 1   # a restart or two find the worker still gone
  start_worker "$PB"; WB=$wpid
  for _ in $(seq 600); do [ "$(grep -c '^listening on' "$T/serve.out")" -ge 2 ] && break; sleep 0.1; done
  [ "$(grep -c '^listening on' "$T/serve.out")" -ge 2 ] && ok || bad "serve: not back after the worker returned: $(tail -5 "$T/serve.err")"
  node - "$U" "$SID" "$NF1" >"$T/s3.out" 2>&1 <<'EOF'
const [U, id, nf] = process.argv.slice(2);
(async () => {
  const h = await (await fetch(U + "/health")).json();
  if (!h.rpc || h.rpc.restarts < 1 || !/is gone|unreachable/.test(h.rpc.last_loss || "")) throw new Error("health " + JSON.stringify(h.rpc));
  const r = await fetch(U + "/sessions/" + id); const s = await r.json();
  if (r.status !== 200) throw new Error("get " + r.status);
  if (s.path_forks.length < +nf) throw new Error(`forks ${s.path_forks.length} < ${nf}`);
  const c = await fetch(U + `/sessions/${id}/choose`, { method: "POST", body: JSON.stringify({ index: 0, fork_id: s.fork.id }) });
  if (c.status !== 200) throw new Error("choose after restart " + c.status);
  console.log("ok", h.rpc.restarts, h.rpc.last_loss);
})().catch(e => { console.error(e.message); process.exit(1); });
EOF
  [ $? -eq 0 ] && ok || bad "serve: after the restart: $(cat "$T/s3.out")"
  kill -TERM "$sv"; wait "$sv"; rc=$?
  [ $rc -eq 0 ] && ok || bad "serve: SIGTERM exit $rc"
  grep -qiE 'AddressSanitizer|runtime error' "$T/serve.err" && bad "serve: sanitizer report: $(grep -m3 -iE 'AddressSanitizer|runtime error' "$T/serve.err")" || ok
  # the first start with a worker unreachable: one line, non-zero, no restart loop
  timeout 30 "$SERVE" --model "$MODEL" --rpc "127.0.0.1:$DEAD" --db "$T/serve2.db" --port "$(free_port)" >/dev/null 2>"$T/err"; rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "127.0.0.1:$DEAD is unreachable" "$T/err" && ok || bad "serve, unreachable worker: exit $rc $(cat "$T/err")"
fi
finish
