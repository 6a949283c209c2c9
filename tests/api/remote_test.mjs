// remote_test.mjs — Forkpoint over a remote engine (--backend): a second
// forkpoint-serve, started here on stories260K, is the engine (real HTTP,
// another process); a front forkpoint-serve and `forkpoint write` run their
// forks, cloud, previews, undo and tree over it. fault_proxy.mjs, put
// between the two, drops connections, answers 429/503, never answers, or
// trims the log-probabilities, for the failure cases.
//
// Greedy equivalence: with the repetition penalty off (llama.cpp applies it
// to raw logits, which no server returns) the text, the fork positions and
// the listed probabilities are the local engine's.
// Prints "ok - name" / "not ok - name: why" and a final "N passed, N failed".
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServe, stopServe } from './serve_lib.mjs';
import { startProxy } from './fault_proxy.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const pick = (...c) => c.find((p) => p && fs.existsSync(p));
const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/asan/forkpoint-serve`, `${repo}/build/release/forkpoint-serve`);
const CLI = pick(process.env.FORKPOINT_CLI, `${repo}/build/asan/forkpoint`, `${repo}/build/release/forkpoint`);
const MODELS = process.env.FP_TEST_MODELS || path.join(path.dirname(repo), 'shared/models');
const STORIES = path.join(MODELS, 'stories260K.gguf');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-remote-'));

let passed = 0, failed = 0;
function assert(c, m) { if (!c) throw new Error(m); }
async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); }
  catch (e) { failed++; console.log(`not ok - ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`); }
}

function start(extra = []) {
  return startServe(SERVE, tmp, STORIES, extra);
}
async function stop(srv) {
  const e = await stopServe(srv);
  assert(e.code === 0, `server exit ${JSON.stringify(e)}: ${srv.stderr.slice(-800)}`);
}
async function http(srv, method, p, body) {
  const r = await fetch(srv.url + p, { method, headers: { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null; try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}
function run(bin, args, input) {
  return new Promise((resolve) => {
    const c = execFile(bin, args, { timeout: 300000, maxBuffer: 1 << 24 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
    if (input !== undefined) c.stdin.end(input);
  });
}
const SETTINGS = { repeat_penalty: 1 };   /* see the top: a penalty on log-probabilities is not llama.cpp's */
const cands = (st) => st.fork.candidates.map((c) => [c.text, c.prob, c.preview]);
const close = (a, b, eps) => Math.abs(a - b) <= eps;

const engine = await start();           /* the remote engine: a plain forkpoint-serve */
const local = engine;                   /* ... whose own sessions are the local batched engine */

/* ------------------------------------------------------------ write */

await test('write --backend llama-server: the same text and forks as the local engine (greedy)', async () => {
  const script = 'c\n'.repeat(30);
  const common = ['--model', STORIES, '--prompt', 'Once upon a time', '--max-tokens', '60', '--repeat-penalty', '1', '--choices', '-'];
  const a = await run(CLI, [...common, '--json', path.join(tmp, 'l.jsonl')], script);
  const b = await run(CLI, [...common, '--json', path.join(tmp, 'r.jsonl'), '--backend', `llama-server:${engine.url}`], script);
  assert(a.code === 0 && b.code === 0, `exit ${a.code}/${b.code}: ${b.stderr.slice(-300)}`);
  assert(a.stdout === b.stdout, `text differs:\n${a.stdout}\n${b.stdout}`);
  const la = fs.readFileSync(path.join(tmp, 'l.jsonl'), 'utf8').trim().split('\n').map(JSON.parse);
  const lb = fs.readFileSync(path.join(tmp, 'r.jsonl'), 'utf8').trim().split('\n').map(JSON.parse);
  assert(la.length === lb.length && la.length > 2, `forks ${la.length} vs ${lb.length}`);
  for (let i = 0; i < la.length; i++) {
    assert(la[i].position === lb[i].position, `fork ${i} at ${la[i].position} vs ${lb[i].position}`);
    /* the server decodes the whole prefix in one batch, the local engine token by token: logits agree to ~1e-4 */
    assert(close(la[i].uncertainty.top1, lb[i].uncertainty.top1, 1e-3), `top1 ${la[i].uncertainty.top1} vs ${lb[i].uncertainty.top1}`);
    assert(lb[i].backend === `llama-server ${engine.url}`, `backend ${lb[i].backend}`);
    assert(la[i].backend === undefined, 'a local event names no back end');
    assert(la[i].candidates[0].text === lb[i].candidates[0].text, `top word ${la[i].candidates[0].text} vs ${lb[i].candidates[0].text}`);
    assert(la[i].candidates[0].preview === lb[i].candidates[0].preview, 'top preview differs');
  }
});

await test('write --backend: choices, previews and undo from a script', async () => {
  const r = await run(CLI, ['--model', STORIES, '--prompt', 'Once upon a time', '--max-tokens', '40', '--repeat-penalty', '1',
    '--choices', '-', '--backend', `llama-server:${engine.url}`], '2\nu\np1\nc\nq\n');
  const l = await run(CLI, ['--model', STORIES, '--prompt', 'Once upon a time', '--max-tokens', '40', '--repeat-penalty', '1',
    '--choices', '-'], '2\nu\np1\nc\nq\n');
  assert(r.code === 0, `exit ${r.code}: ${r.stderr}`);
  assert(r.stdout === l.stdout, `differs:\n${l.stdout}\n${r.stdout}`);
});

await test('chat --backend: the same dialogue as the local engine', async () => {
  const script = 'say Hello there\nreply\nc\nc\nc\nend\nq\n';
  const common = ['chat', '--model', STORIES, '--chat-template', 'chatml', '--max-tokens', '30', '--repeat-penalty', '1', '--choices', '-'];
  const l = await run(CLI, common, script);
  const r = await run(CLI, [...common, '--backend', `llama-server:${engine.url}`], script);
  assert(l.code === 0 && r.code === 0, `exit ${l.code}/${r.code}: ${r.stderr.slice(-300)}`);
  assert(l.stdout === r.stdout && /assistant: /.test(r.stdout), `differs:\n${l.stdout}\n${r.stdout}`);
});

await test('write --backend refuses LoRA, steering and a grammar in one line, and an unreachable server', async () => {
  const lo = await run(CLI, ['--model', STORIES, '--backend', `llama-server:${engine.url}`, '--lora', '/nonexistent.gguf', '--choices', '-'], 'q\n');
  assert(lo.code === 2 && /LoRA adapter needs the model's weights/.test(lo.stderr) && lo.stderr.trim().split('\n').length === 1, `lora: ${lo.code} ${lo.stderr}`);
  const st = await run(CLI, ['--model', STORIES, '--backend', `llama-server:${engine.url}`, '--steer', '/nonexistent.gguf', '--choices', '-'], 'q\n');
  assert(st.code === 2 && /steering vector needs/.test(st.stderr) && st.stderr.trim().split('\n').length === 1, `steer: ${st.code} ${st.stderr}`);
  const gf = path.join(tmp, 'g.gbnf');
  fs.writeFileSync(gf, 'root ::= " the" [a-z ]*\n');
  const gr = await run(CLI, ['--model', STORIES, '--backend', `openai:${engine.url}/v1`, '--grammar', gf, '--prompt', 'Once', '--choices', '-'], 'q\n');
  assert(gr.code === 2 && /a grammar needs every token's probability/.test(gr.stderr) && gr.stderr.trim().split('\n').length === 1, `grammar: ${gr.code} ${gr.stderr}`);
  const un = await run(CLI, ['--model', STORIES, '--backend', 'llama-server:http://127.0.0.1:9', '--choices', '-'], 'q\n');
  assert(un.code !== 0 && /cannot reach the llama-server at http:\/\/127\.0\.0\.1:9/.test(un.stderr), `unreachable: ${un.code} ${un.stderr}`);
  const bad = await run(CLI, ['--model', STORIES, '--backend', 'ollama:http://x', '--choices', '-'], 'q\n');
  assert(bad.code === 2 && /--backend must be/.test(bad.stderr), `bad: ${bad.code} ${bad.stderr}`);
});

/* ------------------------------------------------------------ serve */

for (const kind of ['llama-server', 'openai']) {
  await test(`serve --backend ${kind}: the cloud, choose, undo and the tree as on the local engine`, async () => {
    const url = kind === 'openai' ? `${engine.url}/v1` : engine.url;
    const front = await start(['--backend', `${kind}:${url}`]);
    try {
      const body = { prompt: 'Once upon a time', settings: SETTINGS };
      const a = await http(local, 'POST', '/api/sessions', body);
      const b = await http(front, 'POST', '/api/sessions', body);
      assert(a.status === 201 && b.status === 201, `create ${a.status}/${b.status}: ${b.text.slice(0, 300)}`);
      assert(a.json.text === b.json.text && a.json.fork.position === b.json.fork.position, 'first fork differs');
      const ca = cands(a.json), cb = cands(b.json);
      /* the top words agree; a word's probability adds the word-end mass,
       * estimated from the flat unlisted share: within 0.02 */
      for (let i = 0; i < 3; i++) {
        assert(ca[i][0] === cb[i][0], `word ${i}: ${ca[i][0]} vs ${cb[i][0]}`);
        assert(close(ca[i][1], cb[i][1], 0.02), `p(${ca[i][0]}) ${ca[i][1]} vs ${cb[i][1]}`);
      }
      assert(ca[0][2] === cb[0][2], `top preview ${ca[0][2]} vs ${cb[0][2]}`);
      assert(b.json.fork.other > 0 && b.json.fork.other < 1, `other ${b.json.fork.other}`);
      const sa = await http(local, 'POST', `/api/sessions/${a.json.id}/choose`, { index: 0, accept_preview: true });
      const sb = await http(front, 'POST', `/api/sessions/${b.json.id}/choose`, { index: 0, accept_preview: true });
      assert(sa.status === 200 && sb.status === 200, `choose ${sb.status} ${sb.text.slice(0, 200)}`);
      assert(sa.json.text === sb.json.text, `after choose:\n${sa.json.text}\n${sb.json.text}`);
      const u = await http(front, 'POST', `/api/sessions/${b.json.id}/undo`, {});
      assert(u.status === 200 && u.json.text === b.json.text && u.json.fork.candidates[0].text === cb[0][0], 'undo did not come back');
      const t = await http(front, 'GET', `/api/sessions/${b.json.id}/tree`);
      assert(t.status === 200 && t.json, 'tree');
      const ev = await http(front, 'GET', `/api/sessions/${b.json.id}/events.jsonl`);
      const lines = ev.text.trim().split('\n').filter(Boolean).map(JSON.parse);
      assert(lines.length >= 1 && lines.every((x) => x.backend === `${kind} ${url}`), `events name the back end: ${ev.text.slice(0, 300)}`);
      const h = await http(front, 'GET', '/api/health');
      assert(h.json.backend && h.json.backend.name === `${kind} ${url}` && h.json.backend.requests > 0, `health ${h.text.slice(0, 300)}`);
      assert(h.json.backend.cached > 0, 'the greedy look-ahead served no row');
    } finally { await stop(front); }
  });
}

/* logit_bias over a remote engine: sent, not counted twice. The bias goes
 * on a token outside the engine's unbiased top 20, so the front can only
 * list it if the bias reached the engine; and the front's numbers must be
 * the engine's own with the same bias (the local engine). */
const ids = (tops) => Object.fromEntries(Object.entries(tops).map(([k, v]) => [Number(k.replace('token_id:', '')), v]));
for (const kind of ['llama-server', 'openai']) {
  await test(`serve --backend ${kind}: logit_bias is sent, a boosted token outside the top 20 is listed, at the local engine's probability`, async () => {
    const url = kind === 'openai' ? `${engine.url}/v1` : engine.url;
    const front = await start(['--backend', `${kind}:${url}`]);
    try {
      const h = await http(front, 'GET', '/api/health');
      assert(h.json.backend.logit_bias === 'sent, server', `found: ${h.text.slice(0, 300)}`);
      const ask = (srv, bias) => http(srv, 'POST', '/v1/completions', { model: 'm', prompt: 'Once upon a time', max_tokens: 3,
        temperature: 0, logprobs: 20, return_tokens_as_token_ids: true, ...(bias ? { logit_bias: bias } : {}) });
      const plain = await ask(local);
      assert(plain.status === 200, plain.text.slice(0, 300));
      const top0 = ids(plain.json.choices[0].logprobs.top_logprobs[0]);
      let x = 300; while (x in top0) x++;   /* past the byte tokens: a whole piece of text */
      const bias = { [x]: 15 };
      const a = await ask(local, bias), b = await ask(front, bias);
      assert(a.status === 200 && b.status === 200, `${a.status} ${b.status}: ${b.text.slice(0, 300)}`);
      assert(a.json.choices[0].text === b.json.choices[0].text, `text ${a.json.choices[0].text} vs ${b.json.choices[0].text}`);
      const ta = a.json.choices[0].logprobs.top_logprobs, tb = b.json.choices[0].logprobs.top_logprobs;
      assert(x in ids(ta[0]), `the local engine does not list token ${x}`);
      assert(x in ids(tb[0]), `token ${x} is not listed by the front: ${JSON.stringify(tb[0])}`);
      for (let i = 0; i < ta.length; i++) {
        const ia = ids(ta[i]), ib = ids(tb[i]);
        for (const [t, lp] of Object.entries(ia))
          assert(t in ib && close(lp, ib[t], 1e-3), `position ${i} token ${t}: local ${lp}, front ${ib[t]}`);
      }
      /* the same request without the bias: no trace of it (a different cache key) */
      const c = await ask(front);
      assert(!(x in ids(c.json.choices[0].logprobs.top_logprobs[0])), 'the unbiased reply lists the boosted token');
      /* a ban (llama.cpp's false) on the top token: never taken over the remote either */
      const first = Number(Object.entries(top0).sort((p, q) => q[1] - p[1])[0][0]);
      const ban = await http(front, 'POST', '/completion', { prompt: 'Once upon a time', n_predict: 1, temperature: 0, n_probs: 5, logit_bias: [[first, false]] });
      assert(ban.status === 200 && ban.json.completion_probabilities[0].id !== first, `ban: ${ban.text.slice(0, 300)}`);
    } finally { await stop(front); }
  });
}

await test('serve --backend refuses --steer and --lora in one line', async () => {
  for (const f of ['--steer', '--lora']) {
    let err;
    try { const s = await start(['--backend', `llama-server:${engine.url}`, f, '/nonexistent.gguf']); await stop(s); } catch (e) { err = e; }
    assert(err && err.exit && err.exit.code !== 0, `${f}: started`);
    assert(/needs the model's (weights|hidden states)/.test(err.stderr) && err.stderr.trim().split('\n').length === 1, `${f}: ${err.stderr}`);
  }
});

/* ------------------------------------------------------------ failures */

await test('failures: dropped connections, 429 and 5xx are retried; a dead engine is 503 retryable and loses no decision', async () => {
  const proxy = await startProxy(engine.url);
  const front = await start(['--backend', `llama-server:${proxy.url}`, '--remote-timeout', '1500', '--no-prefetch']);
  try {
    proxy.fault('drop', 2);
    const a = await http(front, 'POST', '/api/sessions', { prompt: 'A dog ran', settings: SETTINGS });
    assert(a.status === 201, `create through dropped connections: ${a.status} ${a.text.slice(0, 300)}`);
    assert(proxy.faulted === 2, `faults used: ${proxy.faulted}`);
    proxy.fault('status', 2, { code: 429, retry_after: 0 });
    const b = await http(front, 'POST', '/api/sessions', { prompt: 'The cat sat', settings: SETTINGS });
    assert(b.status === 201, `create through 429: ${b.status} ${b.text.slice(0, 300)}`);
    proxy.fault('status', 1, { code: 502 });
    const c = await http(front, 'POST', '/api/sessions', { prompt: 'Tom had a red', settings: SETTINGS });
    assert(c.status === 201, `create through 502: ${c.status}`);
    let h = (await http(front, 'GET', '/api/health')).json.backend;
    assert(h.retries >= 5, `retries ${h.retries}`);

    /* the engine stays down: the decision fails with one clear line, nothing is decided */
    const st0 = (await http(front, 'GET', `/api/sessions/${a.json.id}`)).json;
    const idx = st0.fork.candidates.length - 1;   /* a rare word: its branch is not in the look-ahead cache */
    proxy.fault('status', -1, { code: 503 });
    const f = await http(front, 'POST', `/api/sessions/${a.json.id}/choose`, { index: idx, fork_id: st0.fork.id });
    assert(f.status === 503 && f.json.retryable === true && /remote engine .*HTTP 503.*after 4 tries/.test(f.json.error), `down: ${f.status} ${f.text}`);
    const st1 = (await http(front, 'GET', `/api/sessions/${a.json.id}`)).json;
    assert(st1.fork.id === st0.fork.id && st1.text === st0.text && st1.n_events === st0.n_events, 'the failed call changed the session');
    proxy.fault('pass', 0);
    const ok = await http(front, 'POST', `/api/sessions/${a.json.id}/choose`, { index: idx, fork_id: st0.fork.id });
    assert(ok.status === 200, `retry after the engine came back: ${ok.status} ${ok.text.slice(0, 300)}`);
    const ev = (await http(front, 'GET', `/api/sessions/${a.json.id}/events.jsonl`)).text.trim().split('\n').map(JSON.parse);
    assert(ev.filter((e) => e.id === st0.fork.id).length === 1, 'the decision is logged once');

    /* no answer at all: the timeout, retried, then the same 503 */
    proxy.fault('hang', -1);
    const hang = await http(front, 'POST', '/api/sessions', { prompt: 'Sue saw a big', settings: SETTINGS });
    assert(hang.status === 503 && /no answer within the timeout/.test(hang.json.error), `hang: ${hang.status} ${hang.text}`);
    proxy.fault('pass', 0);

    /* fewer log-probabilities than asked: counted, the fork still shows, more mass is "other" */
    proxy.fault('trim', -1, { keep: 3 });
    const t = await http(front, 'POST', '/api/sessions', { prompt: 'Ben and Mia went', settings: SETTINGS });
    proxy.fault('pass', 0);
    assert(t.status === 201 && t.json.fork && t.json.fork.candidates.length >= 1, `trimmed: ${t.status} ${t.text.slice(0, 300)}`);
    h = (await http(front, 'GET', '/api/health')).json.backend;
    assert(h.short_replies > 0, `short replies ${h.short_replies}`);
    const full = await http(local, 'POST', '/api/sessions', { prompt: 'Ben and Mia went', settings: SETTINGS });
    if (full.json.fork.position === t.json.fork.position) assert(t.json.fork.candidates.length <= full.json.fork.candidates.length, 'more words from fewer log-probabilities');
  } finally { await stop(front); await proxy.close(); }
});

await test('write --backend: a dead engine mid-session is one line, exit 1, the decisions so far logged', async () => {
  const proxy = await startProxy(engine.url);
  try {
    const out = path.join(tmp, 'dead.jsonl');
    const child = spawn(CLI, ['--model', STORIES, '--prompt', 'Once upon a time', '--max-tokens', '200', '--repeat-penalty', '1',
      '--choices', '-', '--json', out, '--backend', `llama-server:${proxy.url}`, '--remote-timeout', '1000']);
    let stderr = '', stdout = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdout.on('data', (d) => { stdout += d; });
    const done = new Promise((res) => child.on('exit', (code) => res(code)));
    child.stdin.write('3\n');
    /* the engine dies once the first decision is in the log */
    for (let i = 0; i < 1200 && !(fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('\n')); i++) await new Promise((r) => setTimeout(r, 100));
    proxy.fault('drop', -1);
    child.stdin.write('4\n4\n4\n4\n');
    child.stdin.end();
    const code = await done;
    assert(code === 1, `exit ${code}: ${stderr}`);
    assert(/remote engine .*(after 4 tries)/.test(stderr), `message: ${stderr}`);
    const logged = fs.readFileSync(out, 'utf8').trim().split('\n').filter(Boolean).map(JSON.parse);
    assert(logged.length >= 1 && logged[0].choice.index === 2, `logged ${logged.length}`);
  } finally { await proxy.close(); }
});

await stop(engine);
fs.rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
