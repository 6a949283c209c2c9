// api_test.mjs — tests of forkpoint-serve's HTTP + WebSocket API against a
// real server process with the real stories260K model.
//
// Why node: it has fetch, raw sockets (for half-sent requests and client
// disconnects) and process control built in, so no package is needed. The
// WebSocket side is driven with examples/ws_client.c (build/release/ws_client),
// which is also what a switch or BCI device would use.
//
// Environment: FORKPOINT_SERVE (server binary; default build/asan/forkpoint-serve,
// else build/release), FORKPOINT_WS_CLIENT, FORKPOINT_MODEL (default
// $(dirname repo)/shared/models/stories260K.gguf when present, else the
// server's own default resolution).
// Prints "ok - name" / "not ok - name: why" per test and a final
// "N passed, N failed" line; exits 1 when anything failed.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const pick = (...c) => c.find((p) => p && fs.existsSync(p));
const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/asan/forkpoint-serve`,
  `${repo}/build/release/forkpoint-serve`);
const CLI = pick(`${repo}/build/release/forkpoint`, `${repo}/build/asan/forkpoint`);
const WS_CLIENT = pick(process.env.FORKPOINT_WS_CLIENT, `${repo}/build/release/ws_client`,
  `${repo}/build/asan/ws_client`);
const MODEL = pick(process.env.FORKPOINT_MODEL,
  process.env.FP_TEST_MODELS && path.join(process.env.FP_TEST_MODELS, 'stories260K.gguf'),
  path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-api-'));
const LIGHT = { k: 4, beam_width: 8, lookahead: 4 }; // cheaper sessions where defaults are not the point

let passed = 0, failed = 0;
const servers = new Set();

function assert(cond, msg) { if (!cond) throw new Error(msg); }
function eq(a, b, msg) {
  const sa = JSON.stringify(a), sb = JSON.stringify(b);
  if (sa !== sb) throw new Error(`${msg}: ${sa.slice(0, 200)} != ${sb.slice(0, 200)}`);
}

async function test(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${e && e.message}`);
  }
}

/* ------------------------------------------------------------ server */

/* Starts forkpoint-serve on a free loopback port; resolves with its URL. */
function startServer(extra = [], { db = path.join(tmp, 'fp.db'), expectFail = false } = {}) {
  const args = ['--port', '0', '--db', db, '--quiet', '--threads', '1', ...extra];
  if (MODEL) args.push('--model', MODEL);
  const env = { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1' };
  delete env.FORKPOINT_TOKEN;
  const child = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const srv = { child, stderr: '', url: null, exit: null };
  servers.add(srv);
  child.stderr.on('data', (d) => { srv.stderr += d; });
  const exited = new Promise((res) => child.on('exit', (code, sig) => { srv.exit = { code, sig }; servers.delete(srv); res(srv.exit); }));
  srv.exited = exited;
  if (expectFail) return exited.then(() => srv);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${srv.stderr.slice(-500)}`)), 180000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m && !srv.url) {
        srv.url = m[1];
        srv.port = Number(/:(\d+)\//.exec(m[1])[1]);
        clearTimeout(timer);
        resolve(srv);
      }
    });
    exited.then((e) => { clearTimeout(timer); if (!srv.url) reject(new Error(`server exited ${JSON.stringify(e)}: ${srv.stderr.slice(-800)}`)); });
  });
}

async function stopServer(srv) {
  if (srv.exit) return srv.exit;
  srv.child.kill('SIGTERM');
  const t = setTimeout(() => srv.child.kill('SIGKILL'), 30000);
  const e = await srv.exited;
  clearTimeout(t);
  return e;
}

/* ------------------------------------------------------------ helpers */

async function http(srv, method, p, body, headers = {}) {
  const opt = { method, headers: { ...headers } };
  if (body !== undefined) {
    opt.body = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    if (!opt.headers['Content-Type']) opt.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(srv.url + p.replace(/^\//, ''), opt);
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}

async function expectError(srv, method, p, body, status, headers) {
  const r = await http(srv, method, p, body, headers);
  eq(r.status, status, `${method} ${p} status`);
  assert(r.json && typeof r.json.error === 'string' && r.json.error.length > 0, `no JSON error body: ${r.text.slice(0, 200)}`);
  return r;
}

/* A raw HTTP exchange: sends bytes, optionally hangs up before the end. */
function raw(srv, bytes, { hangUp = false } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('error', () => resolve(data));
    s.on('close', () => resolve(data));
    s.on('connect', () => {
      s.write(bytes);
      if (hangUp) setTimeout(() => s.destroy(), 50);
    });
    setTimeout(() => { s.destroy(); resolve(data); }, 15000);
  });
}

/* Runs ws_client; keepOpenMs keeps its stdin open (interactive listener). */
function wsClient(srv, sid, args, keepOpenMs = 0) {
  return new Promise((resolve) => {
    const c = spawn(WS_CLIENT, ['--port', String(srv.port), ...args, sid], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    if (keepOpenMs) setTimeout(() => c.stdin.end(), keepOpenMs); else c.stdin.end();
    const t = setTimeout(() => c.kill('SIGKILL'), 60000);
    c.on('exit', (code) => {
      clearTimeout(t);
      const msgs = out.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch (e) { return null; } }).filter(Boolean);
      resolve({ code, msgs, err });
    });
  });
}

const candTexts = (st) => (st.fork ? st.fork.candidates.map((c) => c.text) : []);

/* --------------------------------------------------------------- tests */

async function main() {
  console.log(`# server ${SERVE}\n# model ${MODEL || '(server default)'}\n# ws_client ${WS_CLIENT || '(missing)'}`);
  assert(SERVE, 'no forkpoint-serve binary: run make first');
  let srv;
  try {
    srv = await startServer();
  } catch (e) {
    failed++;
    console.log(`not ok - server starts: ${e.message}`);
    return;
  }
  passed++;
  console.log(`ok - server starts and prints its URL (${srv.url})`);

  let st0, sid;
  await test('health', async () => {
    const r = await http(srv, 'GET', '/api/health');
    eq(r.status, 200, 'status');
    eq(r.json.ok, true, 'ok');
  });

  await test('POST /api/sessions creates a session at a fork', async () => {
    const r = await http(srv, 'POST', '/api/sessions', { prompt: 'Once upon a time' });
    eq(r.status, 201, 'status');
    st0 = r.json;
    sid = st0.id;
    assert(/^[0-9a-f]{16}$/.test(sid), 'id');
    assert(st0.text.startsWith('Once upon a time'), 'text starts with the prompt');
    eq(st0.prompt_len, 16, 'prompt_len');
    assert(st0.state === 'at_fork' && st0.fork, 'at a fork');
    const f = st0.fork;
    assert(f.candidates.length >= 2, 'candidates');
    for (const c of f.candidates) {
      assert(typeof c.text === 'string' && typeof c.preview === 'string' && c.prob > 0, 'candidate fields');
    }
    assert(typeof f.uncertainty.entropy_bits === 'number', 'uncertainty');
    assert(st0.settings && st0.settings.k === 8, 'default settings');
    assert(Array.isArray(st0.tokens), 'tokens');
  });

  await test('GET /api/sessions/{id} returns the same state', async () => {
    const r = await http(srv, 'GET', `/api/sessions/${sid}`);
    eq(r.status, 200, 'status');
    eq(r.json.text, st0.text, 'text');
    eq(candTexts(r.json), candTexts(st0), 'candidates');
    eq(r.json.version, st0.version, 'version');
  });

  let st1;
  await test('choose a candidate appends it and reaches the next fork', async () => {
    const c = st0.fork.candidates[0];
    const r = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 0 });
    eq(r.status, 200, 'status');
    st1 = r.json;
    assert(st1.text.startsWith(st0.text + c.text), `text continues with the choice: ${st1.text}`);
    assert(st1.version > st0.version, 'version grows');
    assert(st1.tokens.some((t) => t[2] === 'human'), 'chosen token marked human');
    assert(st1.path_forks.length === 1 && st1.path_forks[0].id === st0.fork.id, 'path_forks');
  });

  await test('decisions go to the log with their modality; a bad modality is 400', async () => {
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 0, modality: 'Bad Thing!' }, 400);
    const r = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 1, modality: 'dwell' });
    eq(r.status, 200, 'status');
    const raw = execFileSync(CLI, ['export', '--db', path.join(tmp, 'fp.db'), '--format', 'raw'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim().split('\n').map((l) => JSON.parse(l));
    const last = raw[raw.length - 1];
    eq(last.modality, 'dwell', 'modality');
    eq(last.session, sid, 'session');
    eq(last.fork.choice.index, 1, 'choice');
    assert(last.context.startsWith('Once upon a time') && last.fork.candidates.length > 1 && last.model_sha256.length === 64, 'record fields');
    const u = await http(srv, 'POST', `/api/sessions/${sid}/undo`, {});
    eq(u.status, 200, 'undo');
  });

  await test('prefetch: idle time computes the next fork; choosing it uses the prefetched outcome', async () => {
    let st;
    for (let i = 0; i < 100; i++) {
      st = (await http(srv, 'GET', `/api/sessions/${sid}`)).json;
      if (st.prefetched && st.prefetched.length >= 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert(st.prefetched.some((p) => p.index === 0 && !p.accept_preview), `top candidate prefetched: ${JSON.stringify(st.prefetched)}`);
    const c = st.fork.candidates[0];
    const r = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 0 });
    eq(r.status, 200, 'status');
    eq(r.json.last_prefetched, true, 'the choice hit the prefetched outcome');
    assert(r.json.text.startsWith(st.text + c.text), 'text continues with the choice');
    assert(r.json.state === 'ended' || r.json.fork.candidates.length > 0, 'the next fork is there');
    // undo discards speculation; a choice made before any prefetch is computed normally
    const u = await http(srv, 'POST', `/api/sessions/${sid}/undo`, {});
    eq(u.status, 200, 'undo');
    const last = u.json.fork.candidates.length - 1;
    const r2 = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: last, accept_preview: true });
    eq(r2.json.last_prefetched, false, 'an unprefetched choice is computed');
    const u2 = await http(srv, 'POST', `/api/sessions/${sid}/undo`, {});
    eq(u2.status, 200, 'undo back');
    st1 = u2.json;
  });

  let st2;
  await test('choose with accept_preview takes the whole phrase', async () => {
    if (!st1.fork) return;
    const c = st1.fork.candidates[1] || st1.fork.candidates[0];
    const idx = st1.fork.candidates.indexOf(c);
    const r = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: idx, accept_preview: true });
    eq(r.status, 200, 'status');
    st2 = r.json;
    assert(st2.text.startsWith(st1.text + c.text + c.preview), `text has word+preview: ${JSON.stringify(st2.text)}`);
  });

  await test('choose with preview_upto takes part of the preview and forks there', async () => {
    const base = st2.fork ? st2 : st1;
    if (!base.fork) return;
    const idx = base.fork.candidates.findIndex((c) => !c.is_eog && c.preview.length > 0);
    if (idx < 0) return;
    const c = base.fork.candidates[idx];
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, { index: idx, preview_upto: c.preview.length + 1 }, 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, { index: idx, preview_upto: 'x' }, 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, { index: idx, preview_upto: 0, accept_preview: true }, 400);
    const r = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: idx, preview_upto: 0 });
    eq(r.status, 200, 'status');
    eq(r.json.text, base.text + c.text, 'the word alone, no automatic text after it');
    assert(r.json.fork && r.json.fork.candidates.length > 0, 'a fork is open right after the word');
    const r2 = await http(srv, 'POST', `/api/sessions/${sid}/undo`, {});
    eq(r2.status, 200, 'undo');
    eq(r2.json.text, base.text, 'undo returns to the fork');
    const r3 = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: idx, preview_upto: c.preview.length });
    eq(r3.status, 200, 'status');
    eq(r3.json.text, base.text + c.text + c.preview, 'the whole preview, then a fork');
    const r4 = await http(srv, 'POST', `/api/sessions/${sid}/undo`, {});
    eq(r4.json.text, base.text, 'undo again');
    // preview_words: where each preview word begins (the core's split), every one a valid preview_upto
    const ps = c.preview_words;
    assert(Array.isArray(ps) && ps.length > 0 && ps[0] === 0, `preview_words: ${JSON.stringify(ps)}`);
    assert(ps.every((v, j) => j === 0 || (v > ps[j - 1] && v < Buffer.byteLength(c.preview))), 'preview_words grow inside the preview');
    const wordsIn = (Buffer.from(c.preview).toString().match(/\s*\S+/g) || []).length;
    assert(ps.length >= 1 && ps.length <= wordsIn, `${ps.length} preview words for ${wordsIn} words of "${c.preview}"`);
    if (ps.length > 1) {
      const inside = ps[1] + 1;
      if (!ps.includes(inside) && inside !== Buffer.byteLength(c.preview)) {
        const bad = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: idx, preview_upto: inside });
        eq(bad.status, 400, 'preview_upto inside a word is refused');
      }
      const r5 = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: idx, preview_upto: ps[1] });
      eq(r5.status, 200, 'status');
      eq(r5.json.text, base.text + c.text + Buffer.from(c.preview).subarray(0, ps[1]).toString(), 'the first preview word, then a fork');
      const r6 = await http(srv, 'POST', `/api/sessions/${sid}/undo`, {});
      eq(r6.json.text, base.text, 'undo once more');
    }
    for (const e of base.fork.candidates.filter((x) => x.is_eog)) eq(e.preview_words, [], 'no preview words for the end');
  });

  await test('type {prefix} narrows the cloud, "" restores it', async () => {
    const base = st2.fork ? st2 : st1;
    const r = await http(srv, 'POST', `/api/sessions/${sid}/type`, { prefix: 't' });
    eq(r.status, 200, 'status');
    eq(r.json.fork.typed_prefix, 't', 'typed_prefix');
    for (const c of r.json.fork.candidates)
      assert(c.text.trimStart().toLowerCase().startsWith('t') || c.is_eog, `candidate "${c.text}" does not start with t`);
    eq(r.json.text, base.text, 'no text committed');
    const r2 = await http(srv, 'POST', `/api/sessions/${sid}/type`, { prefix: '' });
    eq(r2.status, 200, 'status');
    eq(r2.json.fork.typed_prefix, '', 'prefix cleared');
    eq(candTexts(r2.json), candTexts(base), 'full cloud back');
  });

  let st3;
  await test('type {text} commits the person\'s own word', async () => {
    const r = await http(srv, 'POST', `/api/sessions/${sid}/type`, { text: 'dragon' });
    eq(r.status, 200, 'status');
    st3 = r.json;
    assert(st3.text.includes('dragon'), `text: ${st3.text}`);
    assert(st3.tokens.some((t) => t[5] === 'typed'), 'typed token recorded');
  });

  await test('continue lets the model pick', async () => {
    if (!st3.fork) return;
    const r = await http(srv, 'POST', `/api/sessions/${sid}/continue`);
    eq(r.status, 200, 'status');
    assert(r.json.text.length > st3.text.length, 'text grew');
  });

  await test('undo reopens the previous fork with the same candidates', async () => {
    const r = await http(srv, 'POST', `/api/sessions/${sid}/undo`);
    eq(r.status, 200, 'status');
    eq(r.json.text, st3.text, 'text back to before continue');
    eq(candTexts(r.json), candTexts(st3), 'same candidates');
  });

  await test('goto {fork_id} reopens an earlier fork with the same alternatives', async () => {
    const r = await http(srv, 'POST', `/api/sessions/${sid}/goto`, { fork_id: st0.fork.id });
    eq(r.status, 200, 'status');
    eq(r.json.fork.id, st0.fork.id, 'fork id');
    eq(candTexts(r.json), candTexts(st0), 'same candidates');
    eq(r.json.text, st0.text, 'text cut back to the fork');
  });

  await test('goto {fork_id} can return to the explored branch', async () => {
    const target = st3.fork ? st3.fork.id : st1.fork.id;
    const r = await http(srv, 'POST', `/api/sessions/${sid}/goto`, { fork_id: target });
    eq(r.status, 200, 'status');
    eq(r.json.fork.id, target, 'fork id');
  });

  await test('GET tree returns nodes and forks', async () => {
    const r = await http(srv, 'GET', `/api/sessions/${sid}/tree`);
    eq(r.status, 200, 'status');
    assert(Array.isArray(r.json.nodes) && r.json.nodes.length >= 3, 'nodes');
    assert(Array.isArray(r.json.forks) && r.json.forks.length >= 2, 'forks');
  });

  await test('GET events.jsonl has one JSON line per decision', async () => {
    const r = await http(srv, 'GET', `/api/sessions/${sid}/events.jsonl`);
    eq(r.status, 200, 'status');
    assert((r.headers.get('content-type') || '').includes('ndjson'), 'content type');
    const lines = r.text.split('\n').filter(Boolean);
    const st = (await http(srv, 'GET', `/api/sessions/${sid}`)).json;
    eq(lines.length, st.n_events, 'line count');
    for (const l of lines) JSON.parse(l);
  });

  let sidB;
  await test('goto {offset} forces a fork at an earlier word', async () => {
    const c = await http(srv, 'POST', '/api/sessions', { prompt: 'The cat', settings: LIGHT });
    eq(c.status, 201, 'create');
    sidB = c.json.id;
    let st = c.json;
    for (let i = 0; i < 2 && st.fork; i++) st = (await http(srv, 'POST', `/api/sessions/${sidB}/choose`, { index: 0 })).json;
    const tok = st.tokens[Math.floor(st.tokens.length / 2)];
    const r = await http(srv, 'POST', `/api/sessions/${sidB}/goto`, { offset: tok[0] });
    eq(r.status, 200, 'status');
    assert(r.json.fork && r.json.fork.text_offset <= tok[0], 'fork at or before the offset');
    assert(Buffer.byteLength(r.json.text) <= tok[0] + 1, 'text cut at the offset');
  });

  await test('GET /api/sessions lists sessions', async () => {
    const r = await http(srv, 'GET', '/api/sessions');
    eq(r.status, 200, 'status');
    const ids = r.json.sessions.map((s) => s.id);
    assert(ids.includes(sid) && ids.includes(sidB), 'both sessions listed');
  });

  await test('settings: POST settings changes k, bad settings get 400', async () => {
    const r = await http(srv, 'POST', `/api/sessions/${sidB}/settings`, { settings: { k: 3 } });
    eq(r.status, 200, 'status');
    eq(r.json.settings.k, 3, 'k');
    assert(r.json.fork.candidates.length <= 3, 'cloud recomputed with k=3');
    await expectError(srv, 'POST', `/api/sessions/${sidB}/settings`, { settings: { k: 0 } }, 400);
    await expectError(srv, 'POST', `/api/sessions/${sidB}/settings`, { settings: { nope: 1 } }, 400);
    await expectError(srv, 'POST', `/api/sessions/${sidB}/settings`, { settings: { k: 'x' } }, 400);
  });

  await test('concurrent requests on two sessions all succeed', async () => {
    const rs = await Promise.all([
      http(srv, 'GET', `/api/sessions/${sid}`),
      http(srv, 'POST', `/api/sessions/${sidB}/continue`),
      http(srv, 'GET', `/api/sessions/${sidB}/tree`),
      http(srv, 'POST', `/api/sessions/${sid}/undo`),
      http(srv, 'GET', '/api/sessions'),
      http(srv, 'GET', `/api/sessions/${sid}/events.jsonl`),
    ]);
    for (const r of rs) assert(r.status === 200, `status ${r.status}: ${r.text.slice(0, 200)}`);
  });

  /* ---- WebSocket */
  await test('WebSocket: state on connect, highlight relayed, select commits and is pushed', async () => {
    assert(WS_CLIENT, 'ws_client not built');
    const before = (await http(srv, 'GET', `/api/sessions/${sid}`)).json;
    assert(before.fork, 'session at a fork');
    const listener = wsClient(srv, sid, [], 6000);
    await new Promise((r) => setTimeout(r, 800));
    const actor = await wsClient(srv, sid, ['--script', 'h 1; s 0', '--wait', '800']);
    const lst = await listener;
    const hello = actor.msgs.find((m) => m.type === 'hello');
    assert(hello, `actor got hello: ${actor.err}`);
    const first = actor.msgs.find((m) => m.type === 'state');
    assert(first && first.state.id === sid, 'state on connect');
    const hl = lst.msgs.find((m) => m.type === 'highlight');
    assert(hl && hl.index === 1 && hl.client === hello.client, `listener saw highlight: ${JSON.stringify(lst.msgs.map((m) => m.type))}`);
    assert(!actor.msgs.some((m) => m.type === 'highlight'), 'highlight not echoed to its sender');
    const pushed = lst.msgs.filter((m) => m.type === 'state').pop();
    assert(pushed && pushed.state.version > before.version,
      `listener got the new state (listener: ${JSON.stringify(lst.msgs.map((m) => m.type))}, actor: ${JSON.stringify(actor.msgs.map((m) => m.type + (m.error ? ':' + m.error : '')))} ${actor.err})`);
    assert(pushed.state.text.startsWith(before.text + before.fork.candidates[0].text), 'select committed candidate 0');
  });

  await test('WebSocket: a device switch press is relayed to the other clients, a bad one refused', async () => {
    const listener = wsClient(srv, sid, [], 4000);
    await new Promise((r) => setTimeout(r, 800));
    const actor = await wsClient(srv, sid, ['--script', 'w select; w step; {"op":"switch","button":"jump"}; {"op":"switch","button":"select","x":1}', '--wait', '600']);
    const lst = await listener;
    const sw = lst.msgs.filter((m) => m.type === 'switch');
    eq(sw.map((m) => m.button), ['select', 'step'], 'listener saw both presses');
    assert(!actor.msgs.some((m) => m.type === 'switch'), 'not echoed to its sender');
    const errs = actor.msgs.filter((m) => m.type === 'error').map((m) => m.error);
    assert(errs.length === 2 && /button/.test(errs[0]) && /x/.test(errs[1]), `errors: ${JSON.stringify(errs)}`);
  });

  await test('WebSocket: unknown op, bad index and malformed JSON get error messages, socket stays open', async () => {
    const r = await wsClient(srv, sid, ['--script', '{"op":"fly"}; {"op":"highlight","index":99}; {"op":"select"}; {"nope', '--wait', '300']);
    const errs = r.msgs.filter((m) => m.type === 'error');
    assert(errs.length >= 4, `errors: ${JSON.stringify(errs)}`);
    assert(errs.some((e) => /unknown op/.test(e.error)), 'unknown op reported');
    assert(errs.some((e) => /out of range/.test(e.error)), 'range reported');
    const h = await http(srv, 'GET', '/api/health');
    eq(h.status, 200, 'server up');
  });

  await test('WebSocket: foreign Origin and unknown session are refused', async () => {
    const a = await wsClient(srv, sid, ['--origin', 'http://evil.example', '--script', 'c']);
    assert(a.code !== 0 && !a.msgs.length, 'foreign origin refused');
    const b = await wsClient(srv, '0123456789abcdef', ['--script', 'c']);
    assert(b.code !== 0 && !b.msgs.length, 'unknown session refused');
    const resp = await raw(srv, `GET /api/sessions/${sid}/ws HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n` +
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://evil.example\r\n\r\n');
    assert(/^HTTP\/1\.1 403/.test(resp), `403 for a foreign Origin: ${resp.slice(0, 80)}`);
  });

  /* ---- bad requests */
  await test('malformed JSON -> 400', () => expectError(srv, 'POST', `/api/sessions/${sid}/choose`, '{"index":', 400));
  await test('non-object JSON -> 400', () => expectError(srv, 'POST', `/api/sessions/${sid}/choose`, '[1,2]', 400));
  await test('unknown session -> 404', () => expectError(srv, 'GET', '/api/sessions/0123456789abcdef', undefined, 404));
  await test('malformed session id -> 404', () => expectError(srv, 'GET', '/api/sessions/../../etc', undefined, 404));
  await test('out-of-range index -> 400', async () => {
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 99 }, 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, { index: -1 }, 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 1.5 }, 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, {}, 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/goto`, { fork_id: 9999 }, 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/goto`, { offset: 1e6 }, 400);
  });
  await test('body over 64 KiB -> 413', () =>
    expectError(srv, 'POST', `/api/sessions/${sid}/type`, JSON.stringify({ text: 'a'.repeat(70000) }), 413));
  await test('invalid UTF-8 -> 400', () =>
    expectError(srv, 'POST', `/api/sessions/${sid}/type`, Buffer.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 400));
  await test('empty prompt, missing prompt, bad settings -> 400', async () => {
    await expectError(srv, 'POST', '/api/sessions', { prompt: '' }, 400);
    await expectError(srv, 'POST', '/api/sessions', {}, 400);
    await expectError(srv, 'POST', '/api/sessions', { prompt: 'Hi', settings: { k: 0 } }, 400);
    await expectError(srv, 'POST', '/api/sessions', { prompt: 'Hi', settings: { bogus: 1 } }, 400);
  });
  await test('wrong method -> 405, unknown path -> 404', async () => {
    await expectError(srv, 'PUT', `/api/sessions/${sid}`, '{}', 405);
    await expectError(srv, 'GET', `/api/sessions/${sid}/choose`, undefined, 405);
    await expectError(srv, 'GET', '/nope', undefined, 404);
    await expectError(srv, 'POST', `/api/sessions/${sid}/fly`, '{}', 404);
  });
  await test('cross-origin POST and foreign Host -> 403', async () => {
    await expectError(srv, 'POST', `/api/sessions/${sid}/undo`, '{}', 403, { Origin: 'http://evil.example' });
    const resp = await raw(srv, 'GET /api/health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
    assert(/^HTTP\/1\.1 403/.test(resp), `foreign Host: ${resp.slice(0, 60)}`);
  });
  await test('client disconnect mid-request leaves the server up', async () => {
    await raw(srv, `POST /api/sessions/${sid}/choose HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ind`, { hangUp: true });
    await raw(srv, `POST /api/sessions/${sid}/cont`, { hangUp: true });
    await raw(srv, `POST /api/sessions/${sidB}/continue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}`, { hangUp: true });
    await new Promise((r) => setTimeout(r, 300));
    const r = await http(srv, 'GET', `/api/sessions/${sid}`);
    eq(r.status, 200, 'server answers');
  });
  await test('page and assets are served from the binary with a CSP', async () => {
    const r = await http(srv, 'GET', '/');
    eq(r.status, 200, 'status');
    assert(r.text.includes('<title>Forkpoint</title>'), 'index.html');
    assert((r.headers.get('content-security-policy') || '').includes("default-src 'none'"), 'CSP');
    eq((await http(srv, 'GET', '/app.js')).status, 200, 'app.js');
    eq((await http(srv, 'GET', '/app.css')).status, 200, 'app.css');
  });

  await test('eight people writing at once: every choice lands, previews come true, their decodes share rounds', async () => {
    const h0 = (await http(srv, 'GET', '/api/health')).json.batching;
    assert(h0 && h0.sessions === 16, `batching in health: ${JSON.stringify(h0)}`);
    const one = async (i) => {
      let st = (await http(srv, 'POST', '/api/sessions', { prompt: `Once upon a time, writer ${i} saw a` })).json;
      let n = 0;
      for (let k = 0; k < 6 && st.fork; k++) {
        const c = st.fork.candidates[k % 2];
        const phrase = k % 3 === 1 && !c.is_eog;
        const r = await http(srv, 'POST', `/api/sessions/${st.id}/choose`, { index: k % 2, accept_preview: phrase, fork_id: st.fork.id });
        eq(r.status, 200, `writer ${i} choice ${k}: ${JSON.stringify(r.json).slice(0, 200)}`);
        const want = st.text + c.text + (phrase ? c.preview : '');
        assert(r.json.text.startsWith(want), `writer ${i}: the text goes on with what was shown`);
        st = r.json;
        n++;
      }
      return n;
    };
    const made = await Promise.all(Array.from({ length: 8 }, (_, i) => one(i)));
    assert(made.every((n) => n >= 3), `choices made: ${made}`);
    const h1 = (await http(srv, 'GET', '/api/health')).json.batching;
    const rounds = h1.rounds - h0.rounds, decodes = h1.decodes - h0.decodes;
    console.log(`# 8 writers: ${decodes} decodes in ${rounds} rounds`);
    assert(rounds > 0 && rounds < decodes, `decodes merged: ${decodes} in ${rounds}`);
  });

  /* ---- persistence across a restart */
  const before = (await http(srv, 'GET', `/api/sessions/${sid}`)).json;
  const treeBefore = (await http(srv, 'GET', `/api/sessions/${sid}/tree`)).json;
  const beforeB = (await http(srv, 'GET', `/api/sessions/${sidB}`)).json; // has a forced fork (split node)
  await test('DELETE removes a session', async () => {
    const c = await http(srv, 'POST', '/api/sessions', { prompt: 'A bird', settings: LIGHT });
    eq(c.status, 201, 'create');
    const r = await http(srv, 'DELETE', `/api/sessions/${c.json.id}`);
    eq(r.status, 200, 'status');
    await expectError(srv, 'GET', `/api/sessions/${c.json.id}`, undefined, 404);
    await expectError(srv, 'DELETE', `/api/sessions/${c.json.id}`, undefined, 404);
  });
  const e = await stopServer(srv);
  await test('server stops cleanly on SIGTERM (no sanitizer report)', async () => {
    assert(!/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(srv.stderr), srv.stderr.slice(-1500));
    eq(e.code, 0, `exit ${JSON.stringify(e)}`);
  });
  let srv2;
  await test('a restarted server shows the same sessions, texts, forks and trees', async () => {
    srv2 = await startServer();
    const l = await http(srv2, 'GET', '/api/sessions');
    assert(l.json.sessions.some((s) => s.id === sid), 'listed after restart');
    const r = await http(srv2, 'GET', `/api/sessions/${sid}`);
    eq(r.status, 200, `status ${r.text.slice(0, 200)}`);
    eq(r.json.text, before.text, 'text');
    assert(r.json.version > before.version, `version after the restart ${r.json.version} > ${before.version} before`);
    eq(r.json.fork && r.json.fork.id, before.fork && before.fork.id, 'open fork');
    eq(candTexts(r.json), candTexts(before), 'candidates');
    eq(r.json.path_forks.map((f) => f.id), before.path_forks.map((f) => f.id), 'forks on the path');
    const t = (await http(srv2, 'GET', `/api/sessions/${sid}/tree`)).json;
    eq(t.nodes.map((n) => n.text), treeBefore.nodes.map((n) => n.text), 'tree nodes');
    const g = await http(srv2, 'POST', `/api/sessions/${sid}/goto`, { fork_id: st0.fork.id });
    eq(candTexts(g.json), candTexts(st0), 'an old fork reopens with its alternatives after restart');
    const b = await http(srv2, 'GET', `/api/sessions/${sidB}`);
    eq(b.status, 200, `session with a forced fork restored: ${b.text.slice(0, 200)}`);
    eq(b.json.text, beforeB.text, 'its text');
    eq(b.json.settings.k, 3, 'its settings');
  });
  if (srv2) await stopServer(srv2);

  /* ---- capacity, token, host */
  await test('FP_ERR_CAPACITY -> 503 JSON error', async () => {
    // two sequences and no eviction: the second session's fork finds no
    // free sequence for its branches
    const s = await startServer(['--seq-max', '2', '--no-evict'], { db: path.join(tmp, 'cap.db') });
    try {
      eq((await http(s, 'POST', '/api/sessions', { prompt: 'Tom had a dog', settings: LIGHT })).status, 201, 'first');
      const r = await expectError(s, 'POST', '/api/sessions', { prompt: 'Once upon a time' }, 503);
      assert(/capacity|room|sequence/i.test(r.json.error), r.json.error);
      eq((await http(s, 'GET', '/api/health')).status, 200, 'still up');
    } finally { await stopServer(s); }
  });

  await test('at capacity, idle sessions are evicted and restored on demand', async () => {
    // two sequences: only one session can hold a fork computation at a time
    const s = await startServer(['--seq-max', '2'], { db: path.join(tmp, 'evict.db') });
    try {
      const a = await http(s, 'POST', '/api/sessions', { prompt: 'Tom had a dog', settings: LIGHT });
      eq(a.status, 201, `create A: ${a.text.slice(0, 200)}`);
      const b = await http(s, 'POST', '/api/sessions', { prompt: 'The sun was hot', settings: LIGHT });
      eq(b.status, 201, `create B: ${b.text.slice(0, 200)}`);
      const a2 = await http(s, 'GET', `/api/sessions/${a.json.id}`);
      eq(a2.status, 200, `A back: ${a2.text.slice(0, 200)}`);
      eq(a2.json.text, a.json.text, 'A text');
      const a3 = await http(s, 'POST', `/api/sessions/${a.json.id}/choose`, { index: 0 });
      eq(a3.status, 200, `choose in A: ${a3.text.slice(0, 200)}`);
      const b2 = await http(s, 'POST', `/api/sessions/${b.json.id}/choose`, { index: 0 });
      eq(b2.status, 200, `choose in B: ${b2.text.slice(0, 200)}`);
    } finally { await stopServer(s); }
  });

  await test('--token: 401 without it; header, query (sets cookie) and cookie work', async () => {
    const s = await startServer(['--token', 's3cret'], { db: path.join(tmp, 'tok.db') });
    try {
      await expectError(s, 'GET', '/api/sessions', undefined, 401);
      await expectError(s, 'GET', '/', undefined, 401);
      await expectError(s, 'GET', '/api/sessions', undefined, 401, { Authorization: 'Bearer wrong' });
      eq((await http(s, 'GET', '/api/sessions', undefined, { Authorization: 'Bearer s3cret' })).status, 200, 'bearer');
      const p = await http(s, 'GET', '/?token=s3cret');
      eq(p.status, 200, 'page with ?token');
      assert(/fp_token=s3cret/.test(p.headers.get('set-cookie') || ''), 'cookie set');
      eq((await http(s, 'GET', '/app.js', undefined, { Cookie: 'fp_token=s3cret' })).status, 200, 'cookie');
      const w = await wsClient(s, '0123456789abcdef', ['--script', 'c']);
      assert(w.code !== 0, 'ws without token refused');
    } finally { await stopServer(s); }
  });

  await test('--profile: decisions train the profile, stored in the database', async () => {
    const db = path.join(tmp, 'prof.db');
    const s = await startServer(['--profile', 'ann', '--auto-resolve'], { db });
    try {
      const c = await http(s, 'POST', '/api/sessions', { prompt: 'Once upon a time', settings: LIGHT });
      eq(c.status, 201, 'create');
      let st = c.json;
      for (let i = 0; i < 4 && st.fork; i++) {
        const r = await http(s, 'POST', `/api/sessions/${st.id}/choose`, { index: st.fork.candidates.length - 1, modality: 'mouse' });
        eq(r.status, 200, 'choose');
        st = r.json;
      }
      // a new story's cloud is shown as the profile predicts: preferences form a
      // distribution over the shown words, in descending order, and are not
      // the model's probabilities
      const n = await http(s, 'POST', '/api/sessions', { prompt: 'One day, a little', settings: LIGHT });
      eq(n.status, 201, 'create a second story');
      const cs = n.json.fork ? n.json.fork.candidates : [];
      assert(cs.length >= 2, `a fork with candidates: ${JSON.stringify(n.json.fork).slice(0, 200)}`);
      assert(cs.every((c) => typeof c.pref === 'number' && c.pref >= 0 && c.pref <= 1), 'prefs are probabilities');
      const sum = cs.reduce((a, c) => a + c.pref, 0);
      assert(Math.abs(sum - 1) < 0.01, `prefs sum to 1 over the shown words (${sum})`);
      assert(cs.every((c, i) => i === 0 || c.pref <= cs[i - 1].pref + 1e-4), "the cloud is in the person's order");
      assert(cs.some((c) => Math.abs(c.pref - c.prob) > 1e-3), 'the profile, not the model alone, gives pref');
      // what was learned: GET /api/profile; DELETE forgets it
      const g = await http(s, 'GET', '/api/profile');
      eq(g.status, 200, 'GET /api/profile');
      eq(g.json.profile, 'ann', 'the profile name');
      assert(g.json.decisions >= 1 && Array.isArray(g.json.curve) && g.json.curve.length >= 1, `curve: ${g.text}`);
      const decided = g.json.curve.reduce((a, b) => a + b.decided, 0);
      eq(decided, g.json.decisions, 'every learned decision is in the curve');
      assert(Array.isArray(g.json.words) && g.json.words.length >= 1 && typeof g.json.words[0].weight === 'number', 'words');
      assert(g.json.features.some((f) => f.name === 'model log-probability'), 'features');
      assert(g.json.habits.decisions >= 1 && g.json.habits.typed >= 0, `habits: ${g.text}`);
      assert(g.json.adapted.k >= 8 && g.json.adapted.k <= 64 && g.json.adapted.lookahead >= 2, `adapted: ${g.text}`);
      await expectError(s, 'PUT', '/api/profile', {}, 405);
      await expectError(s, 'DELETE', '/api/profile', undefined, 403, { Origin: 'http://evil.example' });
      const d = await http(s, 'DELETE', '/api/profile');
      eq(d.status, 200, 'DELETE /api/profile');
      eq(d.json.decisions, 0, 'reset: nothing learned');
      eq(d.json.curve.length, 0, 'reset: no history');
      eq(d.json.habits.decisions, 0, 'reset: no habits');
    } finally {
      await stopServer(s);
    }
    const list = execFileSync(CLI, ['profile', 'list', '--db', db]).toString();
    assert(/^ann\tlearned 0/m.test(list), `the reset profile is stored: ${list}`);
  });

  await test('GET /api/profile without --profile is 404', async () => {
    const s = await startServer([], { db: path.join(tmp, 'noprof.db') });
    try {
      await expectError(s, 'GET', '/api/profile', undefined, 404);
    } finally { await stopServer(s); }
  });

  await test('--ctx smaller than the default sequences: the server starts (it used to abort in llama.cpp); too many --seq-max is one line and exit 1', async () => {
    const s = await startServer(['--ctx', '128'], { db: path.join(tmp, 'c128.db') });
    try {
      const r = await http(s, 'POST', '/api/sessions', { prompt: 'Once upon a time' });
      assert(r.status === 201 || (r.status >= 400 && r.status < 500 && r.json.error), `create: ${r.status} ${JSON.stringify(r.json)}`);
      eq((await http(s, 'GET', '/api/health')).status, 200, 'still up');
    } finally { await stopServer(s); }
    const f = await startServer(['--ctx', '128', '--seq-max', '200'], { db: path.join(tmp, 'c128b.db'), expectFail: true });
    eq(f.exit.code, 1, 'exit code');
    assert(/200 sequences do not fit a context of 128 cells/.test(f.stderr), f.stderr.slice(-300));
  });

  await test('a non-loopback --host without --token is refused at start', async () => {
    const s = await startServer(['--host', '0.0.0.0'], { db: path.join(tmp, 'h.db'), expectFail: true });
    assert(s.exit.code !== 0, 'non-zero exit');
    assert(/token/.test(s.stderr), s.stderr);
  });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - harness: ${e && e.stack}`);
} finally {
  for (const s of servers) s.child.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
