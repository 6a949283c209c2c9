// crash_test.mjs — kill -9 a real forkpoint-serve at random moments while
// an HTTP client and a WebSocket client are choosing, restart it on the same
// database, and check after every restart that:
//   - no acknowledged choice is lost (an HTTP 200 reply, or the state the
//     server pushed to the WebSocket client after its select): the event it
//     made is in the restored story, with the chosen text;
//   - every decision the story holds has its row in the decision log
//     (decisions.event 0..n-1 of the session);
//   - versions only go forward (the first state after the restart is newer
//     than anything either client saw before the kill);
//   - PRAGMA integrity_check says ok;
//   - the server holds one connection to the database (one descriptor on
//     the file: the store module owns it).
//
// Usage: node tests/crash/crash_test.mjs [--kills N] [--server PATH] [--keep]
// (make test runs 20 kills with the ASan server; bench/crash_loop.sh runs
// the full loop). Prints "ok"/"not ok" lines, a summary, and a final
// "N passed, N failed" line; exits 1 on failure.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const pick = (...c) => c.find((p) => p && fs.existsSync(p));
const KILLS = Number(arg('--kills', process.env.FP_CRASH_KILLS || 20));
const SERVE = pick(arg('--server'), process.env.FORKPOINT_SERVE, `${repo}/build/asan/forkpoint-serve`, `${repo}/build/release/forkpoint-serve`);
const WS_CLIENT = pick(process.env.FORKPOINT_WS_CLIENT, `${repo}/build/release/ws_client`, `${repo}/build/asan/ws_client`);
const MODEL = pick(process.env.FORKPOINT_MODEL,
  process.env.FP_TEST_MODELS && path.join(process.env.FP_TEST_MODELS, 'stories260K.gguf'),
  path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-crash-'));
const DB = path.join(tmp, 'crash.db');
const LIGHT = { k: 4, beam_width: 8, lookahead: 4, max_tokens: 150 }; // short texts: a restart decodes the path again

let passed = 0, failed = 0;
const problems = [];
function check(cond, what) {
  if (cond) passed++;
  else { failed++; problems.push(what); console.log(`not ok - ${what}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (n) => Math.floor(Math.random() * n);

function startServer() {
  const args = ['--port', '0', '--db', DB, '--quiet', '--threads', '1', '--max-live', '4'];
  if (MODEL) args.push('--model', MODEL);
  const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0' };
  delete env.FORKPOINT_TOKEN;
  const child = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const srv = { child, stderr: '', url: null };
  child.stderr.on('data', (d) => { srv.stderr += d; if (srv.stderr.length > 20000) srv.stderr = srv.stderr.slice(-10000); });
  srv.exited = new Promise((res) => child.on('exit', (code, sig) => res({ code, sig })));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${srv.stderr.slice(-400)}`)), 120000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m && !srv.url) {
        srv.url = m[1].replace(/\/$/, '');
        srv.port = Number(/:(\d+)$/.exec(srv.url)[1]);
        clearTimeout(timer);
        resolve(srv);
      }
    });
    srv.exited.then((e) => { clearTimeout(timer); if (!srv.url) reject(new Error(`server exited ${JSON.stringify(e)}: ${srv.stderr.slice(-400)}`)); });
  });
}

async function http(srv, method, p, body) {
  const r = await fetch(srv.url + p, {
    method,
    headers: body ? { 'content-type': 'application/json', origin: srv.url } : { origin: srv.url },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* events are JSON lines */ }
  return { status: r.status, json, text };
}

const sql = (q) => execFileSync('sqlite3', [DB, q], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

/* What the clients were told, per session: the highest version seen and
 * every acknowledged choice (event number -> chosen text). */
const seen = new Map();
function note(sid, state) {
  const s = seen.get(sid) || { version: 0, acked: new Map() };
  if (state.version > s.version) s.version = state.version;
  seen.set(sid, s);
  return s;
}

/* The HTTP chooser: at a fork, a random candidate (sometimes with its
 * phrase); when the text ended, undo. Runs until the server dies. */
async function httpClient(srv, sid, stop) {
  let st = (await http(srv, 'GET', `/api/sessions/${sid}`)).json;
  while (!stop.done) {
    note(sid, st);
    let r;
    if (st.fork && st.fork.candidates.length > 0) {
      const i = rand(st.fork.candidates.length);
      const c = st.fork.candidates[i];
      const phrase = rand(4) === 0;
      r = await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: i, accept_preview: phrase, modality: 'mouse' });
      if (r.status === 200) {
        note(sid, r.json).acked.set(r.json.n_events - 1, c.text + (phrase ? c.preview : ''));
      }
    } else {
      r = await http(srv, 'POST', `/api/sessions/${sid}/undo`, {});
    }
    if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text.slice(0, 200)}`);
    st = r.json;
    if (rand(3) === 0) await sleep(rand(20));
  }
}

/* The WebSocket chooser, through examples/ws_client (stdin commands, one
 * JSON line per server message). A state pushed after our select, with one
 * more event, acknowledges it. */
function wsClient(srv, sid) {
  const c = spawn(WS_CLIENT, ['--port', String(srv.port), sid], { stdio: ['pipe', 'pipe', 'ignore'] });
  let pending = null;
  const rl = readline.createInterface({ input: c.stdout });
  rl.on('line', (line) => {
    let m;
    try { m = JSON.parse(line); } catch { return; }
    if (m.type !== 'state') return;
    const st = m.state;
    const s = note(sid, st);
    if (pending && st.n_events === pending.n + 1) s.acked.set(st.n_events - 1, pending.text);
    pending = null;
    setTimeout(() => {
      try {
        if (st.fork && st.fork.candidates.length > 0) {
          const i = rand(st.fork.candidates.length);
          pending = { n: st.n_events, text: st.fork.candidates[i].text };
          c.stdin.write(`s ${i}\n`);
        } else {
          c.stdin.write('u\n');
        }
      } catch { /* the server is gone */ }
    }, rand(15));
  });
  c.stdin.on('error', () => {});
  return c;
}

/* After a restart: the checks listed at the top. */
async function verify(srv, sids, round) {
  check(sql('PRAGMA integrity_check') === 'ok', `round ${round}: integrity_check`);
  for (const sid of sids) {
    const g = await http(srv, 'GET', `/api/sessions/${sid}`);
    if (g.status !== 200) { check(false, `round ${round}: session ${sid} restores (${g.status} ${g.text.slice(0, 120)})`); continue; }
    const s = seen.get(sid) || { version: 0, acked: new Map() };
    check(g.json.version > s.version, `round ${round}: ${sid} version ${g.json.version} > ${s.version} seen before the kill`);
    const ev = (await http(srv, 'GET', `/api/sessions/${sid}/events.jsonl`)).text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    check(ev.length === g.json.n_events, `round ${round}: ${sid} events`);
    let lost = 0;
    for (const [k, text] of s.acked) if (!ev[k] || ev[k].choice.text !== text) lost++;
    check(lost === 0, `round ${round}: ${sid}: ${lost} of ${s.acked.size} acknowledged choices lost`);
    stats.lost += lost;
    let rows;
    try {
      rows = Number(sql(`SELECT count(DISTINCT event) FROM decisions WHERE session = '${sid}' AND event >= 0 AND event < ${ev.length}`));
    } catch { /* a server before schema version 2 (no event numbers): count its rows */
      rows = Math.min(ev.length, Number(sql(`SELECT count(*) FROM decisions WHERE session = '${sid}'`)));
    }
    check(rows === ev.length, `round ${round}: ${sid}: ${ev.length} decisions in the story, ${rows} with their row`);
    stats.missing_rows += ev.length - rows;
    note(sid, g.json);
  }
}

/* Descriptors the server holds on the database file itself. */
function dbDescriptors(pid) {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try { if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === DB) n++; } catch { /* closed meanwhile */ }
  }
  return n;
}

const stats = { kills: 0, lost: 0, missing_rows: 0, acked: 0 };

async function main() {
  console.log(`# server ${SERVE}\n# ${KILLS} kills, database ${DB}`);
  let srv = await startServer();
  const sids = [];
  for (const prompt of ['Once upon a time, there was a little', 'The dog and the cat']) {
    const r = await http(srv, 'POST', '/api/sessions', { prompt, settings: LIGHT });
    check(r.status === 201, `create a session (${r.status})`);
    sids.push(r.json.id);
    note(r.json.id, r.json);
  }
  check(dbDescriptors(srv.child.pid) === 1, `the server holds one descriptor on the database (${dbDescriptors(srv.child.pid)})`);
  for (let round = 1; round <= KILLS; round++) {
    const stop = { done: false };
    const h = httpClient(srv, sids[0], stop).catch(() => {});
    const w = wsClient(srv, sids[1]);
    await sleep(150 + rand(900));
    srv.child.kill('SIGKILL');
    stop.done = true;
    const e = await srv.exited;
    stats.kills += e.sig === 'SIGKILL' ? 1 : 0;
    w.kill('SIGKILL');
    await h;
    srv = await startServer();
    await verify(srv, sids, round);
  }
  const ackedHttp = seen.get(sids[0])?.acked.size || 0, ackedWs = seen.get(sids[1])?.acked.size || 0;
  const acked = ackedHttp + ackedWs;
  srv.child.kill('SIGTERM');
  await srv.exited;
  console.log(`# kills ${stats.kills}, acknowledged choices ${acked} (HTTP ${ackedHttp}, WebSocket ${ackedWs}), lost ${stats.lost}, decisions without their row ${stats.missing_rows}`);
  check(stats.kills === KILLS, `every round was a kill -9 (${stats.kills})`);
  check(ackedHttp > KILLS / 2 && ackedWs > KILLS / 2, `both clients made choices (HTTP ${ackedHttp}, WebSocket ${ackedWs})`);
  if (!process.argv.includes('--keep')) fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((e) => { check(false, `harness: ${e.stack || e}`); }).finally(() => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
});
