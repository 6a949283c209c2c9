// soak.mjs — a long run of the server under LeakSanitizer: no leaks, and
// resident memory flat once warm.
//
// Why: a server runs for weeks; a few bytes lost per request, or memory that
// grows with every saved change, would show only after thousands of
// requests. This drives the ASan build (LeakSanitizer on) with REQUESTS
// requests (default 10,000) over 16 session slots from 4 concurrent clients:
// each slot creates a session, makes decisions (choose, with or without the
// phrase), undoes, goes back to forks, narrows by a prefix, reads the state,
// and once its story holds 40 decisions deletes it and starts another, so
// stories do not grow without end (Forkpoint keeps every decision in memory
// by design). --max-live 8 makes the server evict and restore sessions from
// the store as well. Resident memory (VmRSS) is sampled every 250 requests;
// at the end the server gets SIGTERM and must exit 0 with no sanitizer
// report.
//
// Usage: node bench/soak.mjs [--requests N] [--server PATH]
//   (make build/asan/forkpoint-serve first)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const arg = (n, d) => { const i = process.argv.indexOf(n); return i > 0 ? process.argv[i + 1] : d; };
const REQUESTS = Number(arg('--requests', 10000));
const SERVE = arg('--server', `${repo}/build/asan/forkpoint-serve`);
const MODEL = process.env.FORKPOINT_MODEL || path.join(path.dirname(repo), 'shared/models/stories260K.gguf');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-soak-'));
const rand = (n) => Math.floor(Math.random() * n);

const child = spawn(SERVE, ['--port', '0', '--db', path.join(tmp, 'soak.db'), '--quiet', '--threads', '1',
  '--max-live', '8', '--model', MODEL], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' },
});
let stderr = '';
child.stderr.on('data', (d) => { stderr += d; });
const exited = new Promise((res) => child.on('exit', (code, sig) => res({ code, sig })));
const url = await new Promise((res, rej) => {
  let out = '';
  child.stdout.on('data', (d) => { out += d; const m = /listening on (http:\/\/\S+)/.exec(out); if (m) res(m[1].replace(/\/$/, '')); });
  exited.then(() => rej(new Error(stderr.slice(-500))));
});
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]);

async function http(method, p, body) {
  const r = await fetch(url + p, { method, headers: { 'content-type': 'application/json', origin: url }, body: body ? JSON.stringify(body) : undefined });
  const t = await r.text();
  let j = null;
  try { j = JSON.parse(t); } catch { /* not JSON */ }
  return { status: r.status, json: j };
}

const slots = Array.from({ length: 16 }, () => ({ sid: null, st: null, busy: false }));
const counts = {};
let done = 0, errors = 0, stories = 0;
const samples = [];

async function step(slot) {
  let r, kind;
  if (!slot.sid) {
    kind = 'create';
    r = await http('POST', '/api/sessions', { prompt: 'Once upon a time, there was a little', settings: { k: 4, beam_width: 8, lookahead: 4, max_tokens: 0 } });
    if (r.status === 201) { slot.sid = r.json.id; slot.st = r.json; stories++; }
  } else if (slot.st && slot.st.n_events >= 40) {
    kind = 'delete';
    r = await http('DELETE', `/api/sessions/${slot.sid}`);
    slot.sid = null; slot.st = null;
  } else {
    const x = rand(10), f = slot.st && slot.st.fork;
    const sid = slot.sid;
    if (f && f.candidates.length && x < 6) { kind = 'choose'; r = await http('POST', `/api/sessions/${sid}/choose`, { index: rand(f.candidates.length), accept_preview: x === 0 }); }
    else if (x === 6) { kind = 'undo'; r = await http('POST', `/api/sessions/${sid}/undo`, {}); }
    else if (x === 7 && slot.st.n_events > 0) { kind = 'goto'; r = await http('POST', `/api/sessions/${sid}/goto`, { fork_id: rand(slot.st.n_events) }); }
    else if (x === 8 && f) { kind = 'prefix'; r = await http('POST', `/api/sessions/${sid}/type`, { prefix: 'b' }); }
    else { kind = 'get'; r = await http('GET', `/api/sessions/${sid}`); }
    if (r.status === 200 && r.json && r.json.id) slot.st = r.json;
    else if (r.status === 409 || r.status === 400) { /* ended, or nothing to undo: read the state */ slot.st = (await http('GET', `/api/sessions/${sid}`)).json; }
  }
  counts[kind] = (counts[kind] || 0) + 1;
  if (r.status >= 500) errors++;
  done++;
  if (done % 250 === 0) samples.push([done, rss()]);
}

async function worker() {
  while (done < REQUESTS) {
    const free = slots.filter((s) => !s.busy);
    const s = free[rand(free.length)];
    s.busy = true;
    try { await step(s); } catch (e) { errors++; done++; }
    s.busy = false;
  }
}

const t0 = Date.now();
samples.push([0, rss()]);
await Promise.all([worker(), worker(), worker(), worker()]);
const secs = (Date.now() - t0) / 1000;
child.kill('SIGTERM');
const ex = await exited;
const leak = /LeakSanitizer|AddressSanitizer|runtime error/.test(stderr);
const warm = samples.find(([n]) => n >= REQUESTS * 0.2) || samples[0];
const last = samples[samples.length - 1];
console.log(`soak: ${done} requests in ${secs.toFixed(0)} s over 16 slots (${stories} stories made), ${JSON.stringify(counts)}, 5xx/errors ${errors}`);
console.log(`RSS (KB) every 250 requests: ${samples.map(([, k]) => k).join(' ')}`);
console.log(`RSS after warm-up (${warm[0]} requests) ${warm[1]} KB -> end ${last[1]} KB: ${(((last[1] - warm[1]) / warm[1]) * 100).toFixed(1)}%; max ${Math.max(...samples.map(([, k]) => k))} KB`);
console.log(`exit ${JSON.stringify(ex)}; sanitizer report: ${leak ? 'YES' : 'none'}`);
if (leak) console.log(stderr.slice(0, 4000));
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(ex.code === 0 && !leak && errors === 0 ? 0 : 1);
