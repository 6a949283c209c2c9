// bench_conns.mjs — does forkpoint-serve stay responsive while many
// connections sit idle (or trickle bytes) and many WebSockets are open?
//
// Why: civetweb serves each connection on one worker thread for its whole
// life (an idle keep-alive socket, a half-sent request, every WebSocket), so
// connections that do nothing can take every thread and stall everyone.
// This opens --ws WebSockets to one session and --idle TCP connections
// (half a request line each, then nothing), then times --n GET /api/health
// requests on fresh connections, one after another, and prints p50/p99/max
// and how many did not answer within --cap ms; then --choices choices on the
// session every WebSocket watches (each one is broadcast to all of them),
// timed the same way on the quiet and the loaded server. It asserts nothing.
//
//   node bench/bench_conns.mjs [--idle 1000] [--ws 200] [--n 200] [--cap 5000] [--choices 15]
//        [--server build/release/forkpoint-serve] [--model PATH] [-- server args...]
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const own = sep >= 0 ? argv.slice(0, sep) : argv;
const extra = sep >= 0 ? argv.slice(sep + 1) : [];
const opt = (name, dflt) => { const i = own.indexOf(`--${name}`); return i >= 0 ? own[i + 1] : dflt; };
const CHOICES = Number(opt('choices', 15));  // a story of stories260K has about 19 forks
const IDLE = Number(opt('idle', 1000)), WS = Number(opt('ws', 200)), N = Number(opt('n', 200)), CAP = Number(opt('cap', 5000));
const SERVE = opt('server', `${repo}/build/release/forkpoint-serve`);
const MODEL = opt('model', path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-bconn-'));

function start() {
  const args = ['--port', '0', '--db', path.join(tmp, 'b.db'), '--quiet', '--threads', '1', '--model', MODEL, ...extra];
  const child = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/[^:]+:(\d+)\//.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* One GET /api/health on a fresh connection: ms, or Infinity past the cap. */
function health(port) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (v) => { clearTimeout(t); s.destroy(); resolve(v); };
    const t = setTimeout(() => done(Infinity), CAP);
    s.on('error', () => done(Infinity));
    s.on('connect', () => s.write(`GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => { got += d; if (got.includes('"ok":true')) done(Number(process.hrtime.bigint() - t0) / 1e6); });
  });
}

function wsOpen(port, sid) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.on('error', () => resolve(null));
    s.on('connect', () => s.write(`GET /api/sessions/${sid}/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`));
    s.on('data', (d) => { if (buf !== null) { buf += d.toString('latin1'); if (buf.includes('\r\n\r\n')) { const ok = /^HTTP\/1\.1 101/.test(buf); buf = null; resolve(ok ? s : null); } } });
    setTimeout(() => resolve(null), 20000);
  });
}

/* --choices choices (index 0, or continue at the end), each timed until
 * its answer arrives: ms each, Infinity for an error or past the cap. */
async function choices(port, sid) {
  const out = [];
  for (let i = 0; i < CHOICES; i++) {
    const t0 = process.hrtime.bigint();
    try {
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(), CAP);
      let r = await fetch(`http://127.0.0.1:${port}/api/sessions/${sid}/choose`, { method: 'POST', body: '{"index":0}', signal: ac.signal });
      await r.arrayBuffer();
      clearTimeout(t);
      out.push(r.ok ? Number(process.hrtime.bigint() - t0) / 1e6 : Infinity);
      if (!r.ok) console.log(`# choice ${i}: status ${r.status}`);
    } catch (e) { out.push(Infinity); console.log(`# choice ${i}: ${e.name}`); }
  }
  return out;
}

function pct(a, p) { const s = a.slice().sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; }
function summary(label, ms) {
  const ok = ms.filter(Number.isFinite);
  const f = (v) => (Number.isFinite(v) ? v.toFixed(1) : `>${CAP}`);
  console.log(`${label}: n=${ms.length} p50=${f(pct(ms, 0.5))} ms p99=${f(pct(ms, 0.99))} ms max=${f(Math.max(...ms))} ms, ${ms.length - ok.length} without an answer in ${CAP} ms`);
}

const srv = await start();
console.log(`# server ${SERVE} ${extra.join(' ')}\n# idle ${IDLE}, websockets ${WS}, requests ${N}`);
try {
  const st = fs.readFileSync(`/proc/${srv.child.pid}/status`, 'utf8');
  console.log(`# quiet server ${/VmRSS:\s*(\d+ kB)/.exec(st)[1]} resident, ${/Threads:\s*(\d+)/.exec(st)[1]} threads`);
} catch (e) { /* not Linux */ }
const base = [];
for (let i = 0; i < 50; i++) base.push(await health(srv.port));
summary('health, quiet server', base);

const r = await fetch(`http://127.0.0.1:${srv.port}/api/sessions`, { method: 'POST', body: JSON.stringify({ prompt: 'Once upon a time', settings: { k: 4, beam_width: 8, lookahead: 4 } }) });
const sid = (await r.json()).id;
if (CHOICES) { /* on a session of its own: the watched one keeps its forks for the loaded run */
  const q = await fetch(`http://127.0.0.1:${srv.port}/api/sessions`, { method: 'POST', body: JSON.stringify({ prompt: 'Once upon a time', settings: { k: 4, beam_width: 8, lookahead: 4 } }) });
  summary('choices, quiet server', await choices(srv.port, (await q.json()).id));
}
const socks = [];
let wsOk = 0;
for (let i = 0; i < WS; i++) { const s = await Promise.race([wsOpen(srv.port, sid), sleep(3000).then(() => null)]); if (s) { wsOk++; socks.push(s); } }
for (let i = 0; i < IDLE; i++) {
  const s = net.connect(srv.port, '127.0.0.1');
  s.on('error', () => {});
  s.on('connect', () => s.write('GET /api/health HTTP/1.1\r\n'));  // half a request, then silence
  socks.push(s);
}
await sleep(2000);
console.log(`# ${wsOk} of ${WS} WebSockets open, ${IDLE} idle connections`);
const loaded = [];
const t0 = Date.now();
for (let i = 0; i < N; i++) loaded.push(await health(srv.port));
summary('health, loaded server', loaded);
if (CHOICES) summary(`choices, loaded server (each broadcast to ${wsOk} WebSockets)`, await choices(srv.port, sid));
try {
  const st = fs.readFileSync(`/proc/${srv.child.pid}/status`, 'utf8');
  console.log(`# server ${/VmRSS:\s*(\d+ kB)/.exec(st)[1]} resident, ${/Threads:\s*(\d+)/.exec(st)[1]} threads`);
} catch (e) { /* not Linux */ }
console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s for ${N} requests`);
for (const s of socks) s.destroy();
srv.child.kill('SIGTERM');
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(0);
