// deploy_test.mjs — many servers, one database: three forkpoint-serve
// instances on one real PostgreSQL behind a real nginx (Debian's), with
// the config shipped in examples/deploy/nginx.conf.
//
// Why: the claims of docs/deploy.md, checked end to end. Clients write
// through nginx; one instance is killed with kill -9 while a client waits
// on it; every committed choice must still be there, the stories must go
// on on the other instances, a profile trained on one instance must order
// the cloud on another, two instances must never overwrite each other, and
// a database that restarts must give clear errors, then work again.
//
// Environment (tests/deploy/run.sh sets it): FP_DEPLOY_PG (the database
// URL), FP_DEPLOY_PG_STOP / FP_DEPLOY_PG_START (shell commands stopping
// the PostgreSQL server as a crash would, and starting it again),
// FORKPOINT_SERVE, FORKPOINT_CLI, FP_TEST_MODELS.
// Prints "ok - name" / "not ok - name: why" and a final "N passed, N failed".
import { spawn, execSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { startNginx } from './nginx.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const pick = (...c) => c.find((p) => p && fs.existsSync(p));
const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/asan/forkpoint-serve`, `${repo}/build/release/forkpoint-serve`);
const CLI = pick(process.env.FORKPOINT_CLI, `${repo}/build/asan/forkpoint`, `${repo}/build/release/forkpoint`);
const MODEL = pick(process.env.FP_TEST_MODELS && path.join(process.env.FP_TEST_MODELS, 'stories260K.gguf'),
  path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
const WS_CLIENT = pick(process.env.FORKPOINT_WS_CLIENT, `${repo}/build/release/ws_client`, `${repo}/build/asan/ws_client`);
const PG = process.env.FP_DEPLOY_PG;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/* playwright-core as tests/browser installs it (run.sh makes sure) */
const playwright = () => createRequire(path.join(repo, 'tests/browser/package.json'))('playwright-core');
const LIGHT = { k: 4, beam_width: 8, lookahead: 4 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-deploy-'));

let passed = 0, failed = 0;
function assert(c, m) { if (!c) throw new Error(m); }
function eq(a, b, m) { const x = JSON.stringify(a), y = JSON.stringify(b); if (x !== y) throw new Error(`${m}: ${x.slice(0, 300)} != ${y.slice(0, 300)}`); }
async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); } catch (e) { failed++; console.log(`not ok - ${name}: ${e && e.stack}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
}

/* ------------------------------------------------------------ processes */

const procs = new Set();
let nginxProc = null;
function startInstance(port, publicHost) {
  const args = ['--port', String(port), '--db', PG, '--quiet', '--threads', '1', '--profile', 'ann',
    '--public-host', publicHost, '--model', MODEL];
  const child = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } });
  const p = { child, port, url: `http://127.0.0.1:${port}/`, stderr: '', exit: null, addr: `127.0.0.1:${port}` };
  procs.add(p);
  child.stderr.on('data', (d) => { p.stderr += d; });
  p.exited = new Promise((r) => child.on('exit', (code, sig) => { p.exit = { code, sig }; procs.delete(p); r(p.exit); }));
  p.ready = new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`instance ${port} did not start: ${p.stderr.slice(-400)}`)), 180000);
    child.stdout.on('data', (d) => { out += d; if (/listening on/.test(out)) { clearTimeout(t); resolve(p); } });
    p.exited.then(() => { clearTimeout(t); reject(new Error(`instance ${port} exited: ${p.stderr.slice(-400)}`)); });
  });
  return p;
}

async function stopInstance(p) {
  if (p.exit) return p.exit;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 20000);
  const e = await p.exited;
  clearTimeout(t);
  return e;
}

function startNginxFor(listen, instances) {
  const p = startNginx(path.join(tmp, 'nginx'), listen, instances.map((i) => i.addr));
  nginxProc = p;
  return p;
}

/* ------------------------------------------------------------ requests */

async function http(base, method, p, body, headers = {}) {
  const opt = { method, headers: { ...headers } };
  if (body !== undefined) { opt.body = JSON.stringify(body); opt.headers['Content-Type'] = 'application/json'; }
  const r = await fetch(base + p.replace(/^\//, ''), opt);
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  // nginx lists every instance it tried ("dead:port, alive:port"): the last one answered
  const up = (r.headers.get('x-forkpoint-upstream') || '').split(', ').pop();
  return { status: r.status, json, text, up, headers: r.headers };
}

/* examples/ws_client.c on a story's WebSocket (through nginx: port is nginx's). */
function wsClient(port, sid, args, keepOpenMs = 0) {
  return new Promise((resolve) => {
    const c = spawn(WS_CLIENT, ['--port', String(port), ...args, sid], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    if (keepOpenMs) setTimeout(() => c.stdin.end(), keepOpenMs); else c.stdin.end();
    const t = setTimeout(() => c.kill('SIGKILL'), 60000);
    c.on('exit', (code) => {
      clearTimeout(t);
      const msgs = out.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
      resolve({ code, msgs, err });
    });
  });
}

function psql(sql) {
  return execFileSync('psql', ['-X', '-q', '-t', '-A', PG, '-c', sql]).toString().trim();
}

/* ------------------------------------------------------------ the run */

async function main() {
  if (!PG) { console.log('FP_DEPLOY_PG is not set (tests/deploy/run.sh starts PostgreSQL)'); failed++; return; }
  const nport = await freePort();
  const front = `http://127.0.0.1:${nport}/`;
  const ports = [await freePort(), await freePort(), await freePort()];
  let inst = [];
  let nginx = null;

  await test('three instances start together on one empty PostgreSQL database (migrations take turns)', async () => {
    inst = ports.map((p) => startInstance(p, `127.0.0.1:${nport}`));
    await Promise.all(inst.map((i) => i.ready));
    eq(psql("SELECT value FROM counters WHERE name = 'schema'"), '4', 'schema version');
    eq(psql("SELECT count(*) FROM counters WHERE name = 'version'"), '1', 'one version counter');
  });
  if (inst.length !== 3 || inst.some((i) => i.exit)) return;

  await test('nginx (Debian) starts with examples/deploy/nginx.conf and answers for the instances', async () => {
    nginx = startNginxFor(`127.0.0.1:${nport}`, inst);
    let r = null;
    for (let i = 0; i < 100 && !(r && r.status === 200); i++) {
      await sleep(100);
      try { r = await http(front, 'GET', '/api/health'); } catch { /* not up yet */ }
      if (nginx.exit) throw new Error(`nginx exited: ${nginx.stderr}`);
    }
    eq(r && r.status, 200, 'health through nginx');
    assert(inst.some((i) => i.addr === r.up), `an instance answered (${r.up})`);
  });
  if (!nginx || nginx.exit) return;

  // profiles first, while the profile is new: trained on A, it orders B's cloud
  const A = inst[0], B = inst[1];
  await test('a profile trained on instance A orders the cloud on instance B', async () => {
    const prompt = 'One day, a little';
    const before = await http(B.url, 'POST', '/api/sessions', { prompt, settings: LIGHT });
    eq(before.status, 201, 'create on B');
    // untrained, the preferences are the model's probabilities over the shown words
    const byModel = (cs) => { const t = cs.reduce((a, c) => a + c.prob, 0); return cs.map((c) => c.prob / t); };
    const c0 = before.json.fork.candidates;
    const m0 = byModel(c0);
    assert(c0.every((c, i) => Math.abs(c.pref - m0[i]) < 1e-3), `untrained: pref is the model's ${JSON.stringify(c0.map((c) => [c.prob, c.pref]))}`);
    // a story open on B while A trains: its cloud may be reordered, and then its version must change
    const open = (await http(B.url, 'POST', '/api/sessions', { prompt: 'The sun was', settings: LIGHT })).json;
    let st = (await http(A.url, 'POST', '/api/sessions', { prompt: 'Once upon a time', settings: LIGHT })).json;
    for (let i = 0; i < 4 && st.fork; i++) {
      const r = await http(A.url, 'POST', `/api/sessions/${st.id}/choose`, { index: st.fork.candidates.length - 1, fork_id: st.fork.id });
      eq(r.status, 200, 'choose on A');
      st = r.json;
    }
    const learned = Number(psql("SELECT n_learned FROM profiles WHERE name = 'ann'"));
    assert(learned >= 4, `A stored what it learned (${learned})`);
    const again = (await http(B.url, 'GET', `/api/sessions/${open.id}`)).json;
    const order = (s) => s.fork.candidates.map((c) => c.text).join('|');
    const reordered = order(again) !== order(open);
    eq(again.version !== open.version, reordered, `a new version exactly when B's open cloud was reordered (${order(open)} -> ${order(again)})`);
    console.log(`# the open cloud on B was ${reordered ? '' : 'not '}reordered by what A learned`);
    if (reordered) {
      const stale = await http(B.url, 'POST', `/api/sessions/${open.id}/choose`, { index: 0, fork_id: open.fork.id, version: open.version });
      eq(stale.status, 409, 'a choice on the old order is refused');
    }
    const after = await http(B.url, 'POST', '/api/sessions', { prompt, settings: LIGHT });
    eq(after.status, 201, 'create on B again');
    const cs = after.json.fork.candidates;
    const m1 = byModel(cs);
    assert(cs.some((c, i) => Math.abs(c.pref - m1[i]) > 1e-3), `B's cloud follows the profile, not the model: ${JSON.stringify(cs.map((c) => [c.prob, c.pref]))}`);
    assert(cs.every((c, i) => i === 0 || c.pref <= cs[i - 1].pref + 1e-4), "B's cloud is in the person's order");
    // A shows the same story with the same preferences: one profile
    const onA = await http(A.url, 'POST', '/api/sessions', { prompt, settings: LIGHT });
    eq(onA.json.fork.candidates.map((c) => [c.text, c.pref]), cs.map((c) => [c.text, c.pref]), 'the same cloud on A and B');
    const list = execFileSync(CLI, ['profile', 'list', '--db', PG]).toString();
    assert(/^ann\tlearned [1-9]/m.test(list), `forkpoint profile list reads PostgreSQL: ${list}`);
  });

  const stories = []; // { id, up, text, n_events, version, fork_id }
  await test('stories created through nginx land on more than one instance', async () => {
    for (let i = 0; i < 12; i++) {
      const r = await http(front, 'POST', '/api/sessions', { prompt: `Once upon a time, story ${i} had a`, settings: LIGHT });
      eq(r.status, 201, 'create through nginx');
      stories.push({ id: r.json.id, created_on: r.up, text: r.json.text, n_events: r.json.n_events, version: r.json.version, fork_id: r.json.fork && r.json.fork.id });
    }
    const on = new Set(stories.map((s) => s.created_on));
    assert(on.size >= 2, `created on ${[...on]}`);
  });

  await test('every request of a story goes to one instance (its id, hashed)', async () => {
    for (const s of stories) {
      const ups = [];
      for (let k = 0; k < 3; k++) {
        const r = await http(front, 'GET', `/api/sessions/${s.id}`);
        eq(r.status, 200, 'get');
        ups.push(r.up);
      }
      assert(ups.every((u) => u === ups[0]), `${s.id} went to ${ups}`);
      s.up = ups[0];
    }
    assert(new Set(stories.map((s) => s.up)).size >= 2, 'stories are spread over the instances');
  });

  await test('clients write through nginx: every choice is answered by the story\'s instance and committed', async () => {
    for (let round = 0; round < 3; round++) {
      for (const s of stories) {
        if (s.fork_id === null || s.fork_id === undefined) continue;
        const r = await http(front, 'POST', `/api/sessions/${s.id}/choose`, { index: round % 2, fork_id: s.fork_id, modality: 'script' });
        eq(r.status, 200, `choose on ${s.id}: ${r.text.slice(0, 200)}`);
        eq(r.up, s.up, 'the same instance');
        assert(r.json.version > s.version, 'versions go forward');
        Object.assign(s, { text: r.json.text, n_events: r.json.n_events, version: r.json.version, fork_id: r.json.fork && r.json.fork.id });
      }
    }
    for (const s of stories) eq(Number(psql(`SELECT count(*) FROM decisions WHERE session = '${s.id}'`)), s.n_events, `${s.id}'s decisions in PostgreSQL`);
  });

  await test('WebSocket through nginx: a story\'s socket reaches its instance, a select commits and is pushed', async () => {
    assert(WS_CLIENT, 'ws_client is not built');
    const s = stories.find((t) => t.fork_id !== null && t.fork_id !== undefined);
    const listener = wsClient(nport, s.id, [], 5000);
    await sleep(800);
    const actor = await wsClient(nport, s.id, ['--script', 's 0', '--wait', '800']);
    const lst = await listener;
    const first = actor.msgs.find((m) => m.type === 'state');
    assert(first && first.state.id === s.id && first.state.text === s.text, `state on connect: ${actor.err} ${JSON.stringify(actor.msgs).slice(0, 300)}`);
    const pushed = lst.msgs.filter((m) => m.type === 'state').pop();
    assert(pushed && pushed.state.version > s.version && pushed.state.n_events === s.n_events + 1,
      `the listener got the new state: ${JSON.stringify(lst.msgs.map((m) => m.type))}`);
    const r = await http(front, 'GET', `/api/sessions/${s.id}`);
    eq([r.json.text, r.json.n_events, r.up], [pushed.state.text, s.n_events + 1, s.up], 'the instance holding the story made it');
    Object.assign(s, { text: r.json.text, n_events: r.json.n_events, version: r.json.version, fork_id: r.json.fork && r.json.fork.id });
  });

  // the victim: the instance holding the first story
  const victimStory = stories[0];
  const victim = inst.find((i) => i.addr === (victimStory && victimStory.up));
  let pending = null;
  await test('kill -9 mid-story: the choice a client was waiting for gets a clear retryable error', async () => {
    assert(victim, 'the first story\'s instance');
    victim.child.kill('SIGSTOP'); // it takes the request but never answers...
    const req = http(front, 'POST', `/api/sessions/${victimStory.id}/choose`, { index: 0, fork_id: victimStory.fork_id });
    await sleep(500);
    victim.child.kill('SIGKILL'); // ...and dies while the client waits
    await victim.exited;
    pending = await req;
    eq(pending.status, 503, `status (${pending.text.slice(0, 200)})`);
    assert(pending.json && pending.json.retryable === true && /retry/.test(pending.json.error), `a JSON error that says retry: ${pending.text}`);
    assert(pending.headers.get('retry-after'), 'Retry-After');
  });

  await test('after the kill every committed choice is there, served from PostgreSQL by the others', async () => {
    for (const s of stories) {
      const r = await http(front, 'GET', `/api/sessions/${s.id}`);
      eq(r.status, 200, `get ${s.id}`);
      assert(r.up !== victim.addr, 'not the dead instance');
      eq([r.json.text, r.json.n_events], [s.text, s.n_events], `${s.id} as last answered`);
      assert(r.json.version >= s.version, `versions do not go back (${r.json.version} < ${s.version})`);
      if (s.up === victim.addr) s.moved = true;
      s.up = r.up;
    }
    assert(stories.some((s) => s.moved), 'some stories were on the dead instance');
  });

  await test('the WebSocket of a story that moved connects through nginx to its new instance', async () => {
    const s = stories.find((t) => t.moved);
    const w = await wsClient(nport, s.id, ['--wait', '300']);
    const st = w.msgs.find((m) => m.type === 'state');
    assert(st && st.state.text === s.text && st.state.n_events === s.n_events, `state on connect: ${w.err} ${JSON.stringify(w.msgs).slice(0, 300)}`);
  });

  await test('the stories go on: the retried choice and the next ones, on the instance each story moved to', async () => {
    for (const s of stories) {
      if (s.fork_id === null || s.fork_id === undefined) continue;
      // the same request as the one that failed, for the victim's story
      const r = await http(front, 'POST', `/api/sessions/${s.id}/choose`, { index: 0, fork_id: s.fork_id });
      eq(r.status, 200, `choose on ${s.id} after the kill: ${r.text.slice(0, 200)}`);
      eq(r.up, s.up, 'sticks to its new instance');
      assert(r.json.n_events === s.n_events + 1 && r.json.text.startsWith(s.text), 'one more decision on top of what was committed');
      assert(r.json.version > s.version, 'versions go forward across the move');
      Object.assign(s, { text: r.json.text, n_events: r.json.n_events, version: r.json.version, fork_id: r.json.fork && r.json.fork.id });
    }
    for (const s of stories) eq(Number(psql(`SELECT count(*) FROM decisions WHERE session = '${s.id}'`)), s.n_events, `${s.id}'s decisions`);
  });

  const alive = inst.filter((i) => !i.exit);
  await test('two instances writing one story: the second is told 409 with the state, nothing is overwritten', async () => {
    const [X, Y] = alive;
    const c = await http(X.url, 'POST', '/api/sessions', { prompt: 'The cat sat on the', settings: LIGHT });
    eq(c.status, 201, 'create on X');
    const g = await http(Y.url, 'GET', `/api/sessions/${c.json.id}`); // resident on both now
    eq(g.json.fork.id, c.json.fork.id, 'same fork on Y');
    const y = await http(Y.url, 'POST', `/api/sessions/${c.json.id}/choose`, { index: 1, fork_id: c.json.fork.id });
    eq(y.status, 200, 'Y chooses');
    const x = await http(X.url, 'POST', `/api/sessions/${c.json.id}/choose`, { index: 0, fork_id: c.json.fork.id });
    eq(x.status, 409, `X's choice on what it showed is refused: ${x.text.slice(0, 200)}`);
    eq(x.json.state && x.json.state.text, y.json.text, "X answers with Y's state, reloaded");
    eq(Number(psql(`SELECT count(*) FROM decisions WHERE session = '${c.json.id}'`)), 1, "only Y's decision");
    const x2 = await http(X.url, 'POST', `/api/sessions/${c.json.id}/choose`, { index: 0, fork_id: x.json.state.fork.id });
    eq(x2.status, 200, 'X goes on from there');
    assert(x2.json.version > y.json.version, 'versions go forward across instances');
  });

  await test('two instances choosing on one story at the same moment: one 200, one 409, one decision stored', async () => {
    const [X, Y] = alive;
    const seen = { store: 0, stale: 0 };
    for (let round = 0; round < 5; round++) {
      const c = await http(X.url, 'POST', '/api/sessions', { prompt: `A dog ran to the ${round}`, settings: LIGHT });
      eq(c.status, 201, 'create');
      eq((await http(Y.url, 'GET', `/api/sessions/${c.json.id}`)).status, 200, 'resident on Y too');
      const f = c.json.fork.id;
      const [a, b] = await Promise.all([
        http(X.url, 'POST', `/api/sessions/${c.json.id}/choose`, { index: 0, fork_id: f }),
        http(Y.url, 'POST', `/api/sessions/${c.json.id}/choose`, { index: 1, fork_id: f }),
      ]);
      eq([a.status, b.status].sort(), [200, 409], `statuses (${a.text.slice(0, 150)} | ${b.text.slice(0, 150)})`);
      const won = a.status === 200 ? a : b, lost = a.status === 200 ? b : a;
      assert(lost.json && (lost.json.retryable === true || lost.json.state), `the loser is told to look again: ${lost.text.slice(0, 200)}`);
      seen[lost.json.retryable ? 'store' : 'stale']++;
      eq(Number(psql(`SELECT count(*) FROM decisions WHERE session = '${c.json.id}'`)), 1, 'one decision');
      const g = await http(lost === a ? X.url : Y.url, 'GET', `/api/sessions/${c.json.id}`);
      eq(g.json.text, won.json.text, "the loser's instance shows the winner's state");
    }
    console.log(`# the losing write was refused by the store ${seen.store} times, found stale before writing ${seen.stale} times`);
  });

  await test('a PostgreSQL URL that reaches nothing: serve and the CLI exit with a clear error, never the password', async () => {
    const bad = 'postgresql://fp:not-this-secret@127.0.0.1:1/forkpoint';
    const s = spawn(SERVE, ['--port', '0', '--db', bad, '--model', MODEL], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    s.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((r) => s.on('exit', (c) => r(c)));
    assert(code !== 0 && /cannot connect to PostgreSQL/.test(err) && !/not-this-secret/.test(err), `serve: ${code} ${err}`);
    let out = null;
    try { execFileSync(CLI, ['profile', 'list', '--db', bad], { stdio: 'pipe' }); } catch (e) { out = e; }
    assert(out && out.status !== 0 && /PostgreSQL/.test(String(out.stderr)) && !/not-this-secret/.test(String(out.stderr)), `cli: ${out && out.stderr}`);
  });

  await test('a transaction left open on a story\'s row: writes wait 5 s at most (503, retryable), PostgreSQL ends it after 10 s', async () => {
    const s = stories.find((t) => t.fork_id !== null && t.fork_id !== undefined && !t.moved) || stories.find((t) => t.fork_id !== null && t.fork_id !== undefined);
    // as a server that hangs mid-write would: the story's row locked, then nothing
    const hog = spawn('psql', ['-X', '-q', PG], { stdio: ['pipe', 'pipe', 'pipe'] });
    hog.stdin.write(`SET idle_in_transaction_session_timeout = '10s'; BEGIN; SELECT seq FROM sessions WHERE id = '${s.id}' FOR UPDATE;\n`);
    const hogGone = new Promise((r) => hog.on('exit', r));
    const idle = () => Number(psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"));
    for (let i = 0; i < 50 && idle() === 0; i++) await sleep(100);
    eq(idle(), 1, 'the transaction is open and idle');
    const t0 = Date.now();
    const r = await http(front, 'POST', `/api/sessions/${s.id}/choose`, { index: 0, fork_id: s.fork_id });
    const waited = Date.now() - t0;
    eq(r.status, 503, `while the row is held: ${r.text.slice(0, 300)}`);
    assert(r.json && r.json.retryable === true && /lock timeout/.test(r.json.error), r.text);
    assert(waited >= 4000 && waited < 30000, `waited ${waited} ms`);
    for (let i = 0; i < 200 && idle() > 0; i++) await sleep(100);
    eq(idle(), 0, 'PostgreSQL ended the idle transaction');
    hog.stdin.end();
    await Promise.race([hogGone, sleep(5000)]);
    const r2 = await http(front, 'POST', `/api/sessions/${s.id}/choose`, { index: 0, fork_id: s.fork_id });
    eq(r2.status, 200, `after: ${r2.text.slice(0, 300)}`);
    eq(r2.json.n_events, s.n_events + 1, 'made once');
    Object.assign(s, { text: r2.json.text, n_events: r2.json.n_events, version: r2.json.version, fork_id: r2.json.fork && r2.json.fork.id });
  });

  await test('PostgreSQL restarts: a choice meanwhile gets a clear retryable error, the next one goes through', async () => {
    const s = stories.find((t) => t.fork_id !== null && t.fork_id !== undefined);
    execSync(process.env.FP_DEPLOY_PG_STOP, { stdio: 'inherit' });
    try {
      const r = await http(front, 'POST', `/api/sessions/${s.id}/choose`, { index: 0, fork_id: s.fork_id });
      eq(r.status, 503, `while the database is down: ${r.text.slice(0, 300)}`);
      assert(r.json && r.json.retryable === true && /database/.test(r.json.error), r.text);
      // a story no server holds cannot be restored now: the same clear error
      const n = await http(front, 'GET', `/api/sessions/${stories[stories.length - 1].id}`);
      assert([200, 503].includes(n.status) && (n.status === 200 || n.json.retryable === true), `a restore meanwhile: ${n.status} ${n.text.slice(0, 200)}`);
    } finally {
      execSync(process.env.FP_DEPLOY_PG_START, { stdio: 'inherit' });
    }
    const r2 = await http(front, 'POST', `/api/sessions/${s.id}/choose`, { index: 0, fork_id: s.fork_id });
    eq(r2.status, 200, `after the restart: ${r2.text.slice(0, 300)}`);
    eq(r2.json.n_events, s.n_events + 1, 'the failed choice was not half-made');
    eq(Number(psql(`SELECT count(*) FROM decisions WHERE session = '${s.id}'`)), s.n_events + 1, 'in PostgreSQL');
  });

  await test('the page in Chromium: a click whose server dies mid-request is retried and lands on the next server', async () => {
    const { chromium } = playwright();
    const ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, 'chrome-')), {
      executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    try {
      const page = ctx.pages()[0] || await ctx.newPage();
      page.setDefaultTimeout(30000);
      const errors = [], seen = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('response', (r) => { if (r.url().includes('/api/')) seen.push(`${r.request().method()} ${r.url().replace(front, '/')} ${r.status()} ${r.headers()['x-forkpoint-upstream'] || ''}`); });
      // a story on one of the two living instances, opened in the page through nginx
      let s = null, z = null, g = null;
      for (let i = 0; i < 20 && !(z && s.fork); i++) {
        const c = await http(front, 'POST', '/api/sessions', { prompt: `The bird flew over ${i}`, settings: LIGHT });
        g = await http(front, 'GET', `/api/sessions/${c.json.id}`);
        z = alive.find((a) => a.addr === g.up && !a.exit) || null;
        s = g.json;
      }
      assert(z && s.fork, `a story at a fork on a living instance: ${g.status} ${g.up} ${alive.map((a) => a.addr + (a.exit ? ' (dead)' : ''))} ${g.text.slice(0, 200)}`);
      await page.goto(`${front}#s=${s.id}`);
      await page.waitForSelector('#cand-0');
      z.child.kill('SIGSTOP');
      await page.click('#cand-0');
      await sleep(500);
      z.child.kill('SIGKILL'); // the click's request dies with its server
      await z.exited;
      let now = null;
      for (let i = 0; i < 100; i++) {
        await sleep(200);
        now = (await http(front, 'GET', `/api/sessions/${s.id}`)).json;
        if (now.n_events === s.n_events + 1) break;
      }
      eq(now.n_events, s.n_events + 1, `the click was made once, on the next server (page: ${JSON.stringify(seen)}, error "${await page.textContent('#error')}")`);
      assert(now.text.startsWith(s.text + s.fork.candidates[0].text), 'the candidate clicked');
      await page.waitForFunction((t) => document.getElementById('doc').textContent.includes(t), now.text.slice(-20));
      eq(await page.textContent('#error'), '', 'no error left on the page');
      eq(errors, [], 'no page errors');
    } finally {
      await ctx.close();
    }
  });

  await test('the living instances stop cleanly (no sanitizer report), nginx too', async () => {
    for (const i of alive.filter((a) => !a.exit)) {
      const e = await stopInstance(i);
      eq(e.code, 0, `instance ${i.port} exit (${i.stderr.slice(-300)})`);
      assert(!/ERROR: AddressSanitizer|runtime error|LeakSanitizer/.test(i.stderr), i.stderr.slice(-1500));
    }
    nginx.child.kill('SIGQUIT');
    await nginx.exited;
  });
}

try {
  await main();
} finally {
  for (const p of procs) { try { p.child.kill('SIGKILL'); } catch { /* gone */ } }
  if (nginxProc && !nginxProc.exit) { nginxProc.child.kill('SIGTERM'); await nginxProc.exited; }
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
