// hardening_test.mjs — hostile and ambiguous input against a real
// forkpoint-serve: over-deep JSON, numbers out of range, unknown fields,
// trailing data, NUL escapes, smuggling-prone framing, foreign Host names,
// stale actions, RFC 6455 frame violations, a WebSocket reader that never
// reads, and the UTF-8 validity of everything the server emits (on a model
// with byte tokens).
//
// Why raw sockets: fetch() normalises requests (one Content-Length, a Host
// header, masked frames), so the cases that matter here have to be written
// byte by byte. The WebSocket client below is ~80 lines of net.Socket.
// Prints "ok - name" / "not ok - name: why" and "N passed, N failed".
import { execFileSync, spawn } from 'node:child_process';
import https from 'node:https';
import tls from 'node:tls';
import crypto from 'node:crypto';
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
const MODELS = process.env.FP_TEST_MODELS || path.join(path.dirname(repo), 'shared/models');
const MODEL = pick(process.env.FORKPOINT_MODEL, path.join(MODELS, 'stories260K.gguf'));
const BYTE_MODEL = pick(path.join(MODELS, 'llama-2-tiny-random.gguf'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-hard-'));
const LIGHT = { k: 4, beam_width: 8, lookahead: 4 };
const utf8 = new TextDecoder('utf-8', { fatal: true });

let passed = 0, failed = 0;
const children = new Set();
function assert(c, m) { if (!c) throw new Error(m); }
function eq(a, b, m) {
  const sa = JSON.stringify(a), sb = JSON.stringify(b);
  if (sa !== sb) throw new Error(`${m}: ${String(sa).slice(0, 200)} != ${String(sb).slice(0, 200)}`);
}
// FP_TEST_ONLY=regex runs only the matching tests (e.g. to see each fail on an old build)
const ONLY = process.env.FP_TEST_ONLY ? new RegExp(process.env.FP_TEST_ONLY) : null;
async function test(name, fn) {
  if (ONLY && !ONLY.test(name)) return;
  try { await fn(); passed++; console.log(`ok - ${name}`); } catch (e) { failed++; console.log(`not ok - ${name}: ${e && e.message}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startServer(extra = [], { db = path.join(tmp, `${crypto.randomUUID()}.db`), model = MODEL, quiet = true } = {}) {
  const args = ['--port', '0', '--db', db, ...(quiet ? ['--quiet'] : []), '--threads', '1', ...extra];
  if (model) args.push('--model', model);
  const env = { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1' };
  delete env.FORKPOINT_TOKEN;
  const child = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const srv = { child, stderr: '', stdout: '', exit: null };
  children.add(child);
  child.stderr.on('data', (d) => { srv.stderr += d; });
  srv.exited = new Promise((res) => child.on('exit', (code, sig) => { srv.exit = { code, sig }; children.delete(child); res(srv.exit); }));
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start')), 180000);
    child.stdout.on('data', (d) => {
      out += d;
      srv.stdout = out;
      const m = /listening on (https?:\/\/[^\s]+)/.exec(out);
      if (m && !srv.url) { srv.url = m[1]; srv.port = Number(/:(\d+)\//.exec(m[1])[1]); clearTimeout(t); resolve(srv); }
    });
    srv.exited.then((e) => { clearTimeout(t); if (!srv.url) reject(new Error(`server exited ${JSON.stringify(e)}: ${srv.stderr.slice(-800)}`)); });
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

/* fetch, keeping the raw bytes so their UTF-8 can be checked */
async function http(srv, method, p, body, headers = {}) {
  const opt = { method, headers: { ...headers } };
  if (body !== undefined) {
    opt.body = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    if (!opt.headers['Content-Type']) opt.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(srv.url + p.replace(/^\//, ''), opt);
  const bytes = new Uint8Array(await r.arrayBuffer());
  let text, json = null, utf8ok = true;
  try { text = utf8.decode(bytes); } catch (e) { utf8ok = false; text = Buffer.from(bytes).toString('latin1'); }
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: r.status, json, text, utf8ok };
}
async function expectError(srv, method, p, body, status, re) {
  const r = await http(srv, method, p, body);
  eq(r.status, status, `${method} ${p} ${String(body).slice(0, 60)}: status (${r.text.slice(0, 120)})`);
  assert(r.json && typeof r.json.error === 'string', `JSON error body: ${r.text.slice(0, 200)}`);
  if (re) assert(re.test(r.json.error), `error "${r.json.error}" should match ${re}`);
  return r;
}

/* A raw exchange: writes bytes, collects everything until the server closes
 * (or ms pass). */
function raw(srv, bytes, ms = 4000) {
  return new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1');
    const chunks = [];
    let closed = false;
    const done = () => resolve({ data: Buffer.concat(chunks).toString('latin1'), closed });
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => { closed = true; clearTimeout(t); done(); });
    s.on('connect', () => s.write(bytes));
    const t = setTimeout(() => { s.destroy(); done(); }, ms);
  });
}
/* Splits a raw HTTP/1.1 response: status, headers, body (as JSON when it is). */
function parseResponse(txt) {
  const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(txt);
  if (!m) return null;
  const headers = {};
  for (const l of m[2].split('\r\n')) { const i = l.indexOf(':'); headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim(); }
  const len = Number(headers['content-length'] || 0);
  const body = m[3].slice(0, len);
  let json = null;
  try { json = JSON.parse(body); } catch (e) { /* not JSON */ }
  return { status: Number(m[1]), headers, body, json, rest: m[3].slice(len) };
}

/* ------------------------------------------------------ raw WebSocket */

function frame(opcode, payload, { fin = true, rsv = 0, mask = true } = {}) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
  const m = mask ? 0x80 : 0;
  if (p.length < 126) head.push(m | p.length);
  else if (p.length < 65536) head.push(m | 126, p.length >> 8, p.length & 255);
  else { head.push(m | 127, 0, 0, 0, 0); const b = Buffer.alloc(4); b.writeUInt32BE(p.length); head.push(...b); }
  if (!mask) return Buffer.concat([Buffer.from(head), p]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(p.map((b, i) => b ^ key[i & 3]));
  return Buffer.concat([Buffer.from(head), key, body]);
}

/* Opens a WebSocket with a raw socket. Resolves with an object whose msgs
 * are the text messages (raw bytes checked as UTF-8 as they arrive),
 * closeCode the status of a close frame from the server. */
function wsOpen(srv, sid, { pause = false, query = '', connect = () => net.connect(srv.port, '127.0.0.1') } = {}) {
  return new Promise((resolve, reject) => {
    const s = connect();
    const ws = { s, msgs: [], bad: [], closeCode: null, closed: false, waiters: [], buf: Buffer.alloc(0), open: false, pongs: [] };
    const wake = () => { for (const w of ws.waiters.splice(0)) w(); };
    s.on('error', () => {});
    s.on('close', () => { ws.closed = true; wake(); });
    s.on(s.encrypted ? 'secureConnect' : 'connect', () => {
      s.write(`GET /api/sessions/${sid}/ws${query} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
    });
    s.on('data', (d) => {
      ws.buf = Buffer.concat([ws.buf, d]);
      if (!ws.open) {
        const i = ws.buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = ws.buf.subarray(0, i).toString();
        if (!/^HTTP\/1\.1 101/.test(head)) { reject(new Error(`handshake: ${head.slice(0, 80)}`)); s.destroy(); return; }
        ws.buf = ws.buf.subarray(i + 4);
        ws.open = true;
        if (pause) s.pause();
        resolve(ws);
      }
      for (;;) {
        if (ws.buf.length < 2) break;
        let len = ws.buf[1] & 127, off = 2;
        if (len === 126) { if (ws.buf.length < 4) break; len = ws.buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (ws.buf.length < 10) break; len = Number(ws.buf.readBigUInt64BE(2)); off = 10; }
        if (ws.buf.length < off + len) break;
        const op = ws.buf[0] & 15, payload = ws.buf.subarray(off, off + len);
        ws.buf = ws.buf.subarray(off + len);
        if (op === 1) {
          try { ws.msgs.push(JSON.parse(utf8.decode(payload))); } catch (e) { ws.bad.push(payload.toString('latin1').slice(0, 120)); }
        } else if (op === 8) {
          ws.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        } else if (op === 9) {
          s.write(frame(10, payload));
        } else if (op === 10) {
          ws.pongs.push(payload.toString());
        }
      }
      wake();
    });
    setTimeout(() => reject(new Error('handshake timeout')), 10000);
  });
}
function wsSend(ws, obj) { ws.s.write(frame(1, typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj))); }
/* Waits until pred(ws) holds (checked on every message), or ms pass. */
async function wsWait(ws, pred, ms = 15000) {
  const until = Date.now() + ms;
  while (!pred(ws)) {
    if (Date.now() > until) throw new Error(`timeout; got ${JSON.stringify(ws.msgs.map((m) => m.type + (m.error ? ':' + m.error : ''))).slice(-300)}`);
    if (ws.closed) throw new Error(`closed (code ${ws.closeCode})`);
    await new Promise((r) => { ws.waiters.push(r); setTimeout(r, 200); });
  }
}
async function wsReply(ws, obj, ms) {
  const req = crypto.randomUUID();
  wsSend(ws, { ...obj, req });
  await wsWait(ws, (w) => w.msgs.some((m) => m.req === req), ms);
  return ws.msgs.find((m) => m.req === req);
}
async function wsClosed(ws, ms = 15000) {
  const until = Date.now() + ms;
  while (!ws.closed && Date.now() < until) await new Promise((r) => { ws.waiters.push(r); setTimeout(r, 200); });
  return ws.closed;
}

const deep = (n) => '['.repeat(n) + ']'.repeat(n);

/* ---------------------------------------------------------------- TLS */

/* A self-signed certificate for localhost/127.0.0.1 made by the openssl
 * tool, and a second key that does not belong to it. */
function makeCert(dir) {
  const cert = path.join(dir, 'cert.pem'), key = path.join(dir, 'key.pem'), other = path.join(dir, 'other.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', other], { stdio: 'ignore' });
  return { cert, key, other, ca: fs.readFileSync(cert) };
}
/* One request over HTTPS, the certificate verified against ca. */
function httpsReq(srv, ca, method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = https.request({ host: '127.0.0.1', port: srv.port, method, path: p, ca, servername: 'localhost',
      headers: { ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}), ...headers } }, (r) => {
      const chunks = [], protocol = r.socket.getProtocol();
      r.on('data', (d) => chunks.push(d));
      r.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
        resolve({ status: r.statusCode, headers: r.headers, text, json, protocol });
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}
/* Starts a server that must refuse to start: resolves {code, stderr}. */
function startFails(extra) {
  return new Promise((resolve) => {
    const child = spawn(SERVE, ['--threads', '1', '--model', MODEL, '--db', path.join(tmp, `${crypto.randomUUID()}.db`), ...extra],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '', out = '';
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', (d) => { out += d; });
    const t = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('exit', (code) => { clearTimeout(t); resolve({ code, stderr: err, stdout: out }); });
  });
}

async function tlsTests() {
  const dir = fs.mkdtempSync(path.join(tmp, 'tls-'));
  const c = makeCert(dir);
  const srv = await startServer(['--tls-cert', c.cert, '--tls-key', c.key, '--token', 'sekrit']);
  try {
    await test('TLS: the server announces https:// and answers a verifying HTTPS client (TLS 1.2+)', async () => {
      assert(srv.url.startsWith('https://'), srv.url);
      const r = await httpsReq(srv, c.ca, 'GET', '/api/health', undefined, { Authorization: 'Bearer sekrit' });
      eq(r.status, 200, r.text);
      eq(r.json.ok, true, 'ok');
      assert(/^TLSv1\.[23]$/.test(r.protocol), `protocol ${r.protocol}`);
      for (const v of ['TLSv1', 'TLSv1.1']) {
        const e = await new Promise((res) => {
          const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca: c.ca, servername: 'localhost', minVersion: v, maxVersion: v });
          s.on('secureConnect', () => { s.destroy(); res(null); });
          s.on('error', (err) => res(err));
        });
        assert(e, `${v} must be refused`);
      }
    });
    await test('TLS: the token is still required, Origin must be https://, the cookie is Secure', async () => {
      eq((await httpsReq(srv, c.ca, 'GET', '/api/health')).status, 401, 'no token');
      const h = { Authorization: 'Bearer sekrit' };
      const ok = await httpsReq(srv, c.ca, 'POST', '/api/sessions', { prompt: 'Once', settings: LIGHT }, { ...h, Origin: `https://127.0.0.1:${srv.port}` });
      eq(ok.status, 201, ok.text);
      const bad = await httpsReq(srv, c.ca, 'POST', '/api/sessions', { prompt: 'Once' }, { ...h, Origin: `http://127.0.0.1:${srv.port}` });
      eq(bad.status, 403, 'http:// Origin on the TLS port');
      const page = await httpsReq(srv, c.ca, 'GET', '/?token=sekrit');
      eq(page.status, 200, 'page');
      assert(/; Secure/.test(String(page.headers['set-cookie'])), `cookie ${page.headers['set-cookie']}`);
    });
    await test('TLS: WebSocket over TLS (wss) gets the state and answers an action', async () => {
      const cr = await httpsReq(srv, c.ca, 'POST', '/api/sessions', { prompt: 'Once upon a time', settings: LIGHT }, { Authorization: 'Bearer sekrit' });
      eq(cr.status, 201, cr.text);
      const st = cr.json;
      const ws = await wsOpen(srv, st.id, { query: '?token=sekrit',
        connect: () => tls.connect({ host: '127.0.0.1', port: srv.port, ca: c.ca, servername: 'localhost' }) });
      await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
      const r = await wsReply(ws, { op: 'choose', index: 0, fork_id: st.fork.id });
      assert(r && r.status === 200 && r.version > st.version, `reply ${JSON.stringify(r).slice(0, 200)}`);
      await wsWait(ws, (w) => w.msgs.filter((m) => m.type === 'state').length >= 2); // the new state is pushed too
      ws.s.destroy();
    });
    await test('TLS: an unmasked frame over wss closes with 1002', async () => {
      const cr = await httpsReq(srv, c.ca, 'POST', '/api/sessions', { prompt: 'Once', settings: LIGHT }, { Authorization: 'Bearer sekrit' });
      const ws = await wsOpen(srv, cr.json.id, { query: '?token=sekrit',
        connect: () => tls.connect({ host: '127.0.0.1', port: srv.port, ca: c.ca, servername: 'localhost' }) });
      await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
      ws.s.write(Buffer.concat([frame(1, '{"op":"get"}'), frame(1, '{"op":"get"}', { mask: false })]));
      assert(await wsClosed(ws), 'closed');
      eq(ws.closeCode, 1002, 'close code');
    });
    await test('TLS: 2000 pipelined wss requests while the writer thread answers: every reply arrives, nothing closes', async () => {
      /* civetweb reads on its thread while ws.c's writer writes: tls.c
       * serialises the two on the one SSL object */
      const cr = await httpsReq(srv, c.ca, 'POST', '/api/sessions', { prompt: 'Once', settings: LIGHT }, { Authorization: 'Bearer sekrit' });
      const ws = await wsOpen(srv, cr.json.id, { query: '?token=sekrit',
        connect: () => tls.connect({ host: '127.0.0.1', port: srv.port, ca: c.ca, servername: 'localhost' }) });
      const N = 2000;
      for (let i = 0; i < N; i++) {
        ws.s.write(frame(1, JSON.stringify({ op: 'get', req: `p${i}` })));
        if (i % 100 === 99) await sleep(0);
      }
      await wsWait(ws, (w) => w.msgs.filter((m) => typeof m.req === 'string' && m.req.startsWith('p')).length >= N, 90000);
      assert(!ws.closed && !ws.bad.length, `closed ${ws.closed} (${ws.closeCode}), bad ${ws.bad.length}`);
      ws.s.destroy();
    });
    await test('TLS: a plain-HTTP request to the TLS port gets no answer, a log line, and the server keeps serving', async () => {
      const r = await raw(srv, `GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
      assert(r.closed, 'connection closed');
      assert(!/HTTP\/1\.1 200/.test(r.data), `no plain answer: ${r.data.slice(0, 80)}`);
      await sleep(300);
      assert(/plain-HTTP request came to the TLS port/.test(srv.stderr), `stderr: ${srv.stderr.slice(-300)}`);
      eq((await httpsReq(srv, c.ca, 'GET', '/api/health', undefined, { Authorization: 'Bearer sekrit' })).status, 200, 'https after');
    });
  } finally {
    const e = await stopServer(srv);
    await test('TLS: server stops cleanly (no sanitizer report)', async () => {
      assert(!/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(srv.stderr), srv.stderr.slice(-2000));
      eq(e.code, 0, `exit ${JSON.stringify(e)}`);
    });
  }
  await test('TLS: a missing, unreadable or mismatched certificate or key is a one-line error and exit 1', async () => {
    const cases = [
      [['--tls-cert', path.join(dir, 'nope.pem'), '--tls-key', c.key], /--tls-cert \S*nope\.pem: cannot open it/],
      [['--tls-cert', c.cert, '--tls-key', path.join(dir, 'nope.pem')], /--tls-key \S*nope\.pem: cannot open it/],
      [['--tls-cert', c.key, '--tls-key', c.key], /--tls-cert: not a PEM certificate chain/],
      [['--tls-cert', c.cert, '--tls-key', c.cert], /--tls-key: not a PEM private key/],
      [['--tls-cert', c.cert, '--tls-key', c.other], /is not the key of --tls-cert/],
    ];
    for (const [args, re] of cases) {
      const r = await startFails(['--port', '0', ...args]);
      eq(r.code, 1, `${args.join(' ')}: exit (${r.stderr.slice(-300)})`);
      assert(re.test(r.stderr), `${args.join(' ')}: stderr ${r.stderr.slice(-300)}`);
      assert(!/civetweb:|Sanitizer/.test(r.stderr), `only our line: ${r.stderr.slice(-300)}`);
      eq(r.stdout, '', 'never announced a URL');
    }
    const half = await startFails(['--port', '0', '--tls-cert', c.cert]);
    eq(half.code, 2, 'cert without key: usage error');
    assert(/--tls-cert and --tls-key go together/.test(half.stderr), half.stderr);
  });
}

/* ----------------------------------------------------------- start-up */

async function startupTests() {
  await test('start-up: no request log by default, the URL is the last line, --log-requests logs each request', async () => {
    const s = await startServer([], { quiet: false });
    try {
      for (let i = 0; i < 5; i++) eq((await http(s, 'GET', '/api/health')).status, 200, 'health');
      await sleep(200);
      assert(!/GET \/api\/health/.test(s.stderr), `request logged without --log-requests: ${s.stderr.slice(-300)}`);
      assert(/--log-requests/.test(s.stderr), 'the hint names --log-requests');
      const lines = s.stdout.trim().split('\n');
      assert(/^listening on http:\/\//.test(lines[lines.length - 1]), `last stdout line ${lines.at(-1)}`);
    } finally { await stopServer(s); }
    const l = await startServer(['--log-requests'], { quiet: false });
    try {
      eq((await http(l, 'GET', '/api/health')).status, 200, 'health');
      await sleep(200);
      assert(/GET \/api\/health -> 200/.test(l.stderr), `stderr: ${l.stderr.slice(-300)}`);
    } finally { await stopServer(l); }
  });
  await test('start-up: a busy port is one line that says how to choose another, exit 1', async () => {
    const a = await startServer();
    try {
      const r = await startFails(['--port', String(a.port)]);
      eq(r.code, 1, `exit (${r.stderr.slice(-300)})`);
      assert(/port \d+ on 127\.0\.0\.1 is in use.*--port N.*--port 0/.test(r.stderr), r.stderr);
      assert(!/Failed to setup server ports|civetweb:/.test(r.stderr), `civetweb noise: ${r.stderr}`);
      eq(r.stdout, '', 'never announced a URL');
    } finally { await stopServer(a); }
  });
}

/* --------------------------------------------------------------- tests */

async function main() {
  console.log(`# server ${SERVE}\n# model ${MODEL}\n# byte-token model ${BYTE_MODEL || '(missing)'}`);
  const srv = await startServer();
  passed++; console.log(`ok - server starts (${srv.url})`);
  const c = await http(srv, 'POST', '/api/sessions', { prompt: 'Once upon a time', settings: LIGHT });
  const sid = c.json.id;

  /* 1. nesting */
  await test('1000-deep JSON body is refused with 400 before parsing; the server stays up', async () => {
    await expectError(srv, 'POST', '/api/sessions', `{"prompt":"a","x":${deep(1000)}}`, 400, /nested too deeply/);
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, `{"index":0,"x":${'{"a":'.repeat(10000)}1${'}'.repeat(10000)}}`, 400, /nested too deeply/);
    eq((await http(srv, 'GET', '/api/health')).status, 200, 'health after');
  });
  await test('nesting at the limit (64) is parsed (400 only for the unknown field)', async () => {
    await expectError(srv, 'POST', '/api/sessions', `{"prompt":"a","x":${deep(63)}}`, 400, /unknown field "x"/);
    await expectError(srv, 'POST', '/api/sessions', `{"prompt":"a","x":${deep(64)}}`, 400, /nested too deeply/);
  });
  await test('1000-deep JSON over the WebSocket gets an error; the socket stays usable', async () => {
    const ws = await wsOpen(srv, sid);
    await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
    wsSend(ws, `{"op":"get","x":${deep(1000)}}`);
    await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'error' && /nested too deeply/.test(m.error)));
    // the deepest "req" allowed is echoed back (duplicated and printed: recursion at the limit)
    const req = JSON.parse('{"a":'.repeat(63) + '1' + '}'.repeat(63));
    wsSend(ws, { op: 'get', req });
    await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state' && m.req && JSON.stringify(m.req) === JSON.stringify(req)));
    ws.s.destroy();
    eq((await http(srv, 'GET', '/api/health')).status, 200, 'health after');
  });

  /* 2. numbers */
  await test('integers out of range, fractional or huge are 400 (no undefined behaviour)', async () => {
    for (const b of ['{"index":1e300}', '{"index":-1e300}', '{"index":9.3e18}', '{"index":2147483648}', '{"index":0.5}', '{"index":1e-300}'])
      await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, b, 400, /index/);
    await expectError(srv, 'POST', `/api/sessions/${sid}/goto`, '{"offset":1e300}', 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/goto`, '{"fork_id":-1e300}', 400);
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, '{"index":0,"preview_upto":1e300}', 400);
  });

  /* 3. strict bodies */
  await test('unknown and duplicate fields are 400 naming the field', async () => {
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 0, acept_preview: true }, 400, /unknown field "acept_preview"/);
    await expectError(srv, 'POST', '/api/sessions', { prompt: 'Hi', setings: {} }, 400, /unknown field "setings"/);
    await expectError(srv, 'POST', `/api/sessions/${sid}/undo`, { force: true }, 400, /unknown field "force"/);
    await expectError(srv, 'POST', `/api/sessions/${sid}/choose`, '{"index":0,"index":1}', 400, /twice/);
    const ws = await wsOpen(srv, sid);
    const r = await wsReply(ws, { op: 'select', index: 0, acept_preview: true });
    eq(r.type, 'error', 'ws type');
    assert(/unknown field "acept_preview"/.test(r.error), r.error);
    ws.s.destroy();
  });
  await test('trailing data after the object is 400 (HTTP and WebSocket)', async () => {
    await expectError(srv, 'POST', '/api/sessions', '{"prompt":"Once"} xyz', 400, /after the JSON/);
    await expectError(srv, 'POST', '/api/sessions', '{"prompt":"Once"}{}', 400, /after the JSON/);
    const ws = await wsOpen(srv, sid);
    await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
    const n = ws.msgs.length;
    wsSend(ws, Buffer.from('{"op":"get"}\u0000junk'));
    wsSend(ws, Buffer.from('{"op":"get"} junk'));
    await wsWait(ws, (w) => w.msgs.slice(n).filter((m) => m.type === 'error').length >= 2);
    assert(!ws.msgs.slice(n).some((m) => m.type === 'state'), 'no state for a message with trailing data');
    ws.s.destroy();
  });
  await test('\\u0000 in a string and invalid UTF-8 in a string are 400', async () => {
    await expectError(srv, 'POST', '/api/sessions', '{"prompt":"Once\\u0000 upon"}', 400, /u0000/);
    await expectError(srv, 'POST', '/api/sessions', '{"prompt":"Once \\ud800 upon"}', 400);
    await expectError(srv, 'POST', '/api/sessions', Buffer.from([...Buffer.from('{"prompt":"a'), 0xc3, 0x28, ...Buffer.from('"}')]), 400, /UTF-8/);
    await expectError(srv, 'POST', '/api/sessions', Buffer.from([...Buffer.from('{"prompt":"a'), 0xed, 0xa0, 0x80, ...Buffer.from('"}')]), 400, /UTF-8/);
    // an escaped backslash before u0000 is ordinary text
    const ok = await http(srv, 'POST', '/api/sessions', { prompt: 'Once \\u0000 upon', settings: LIGHT });
    eq(ok.status, 201, `escaped backslash accepted: ${ok.text.slice(0, 100)}`);
    assert(ok.json.text.startsWith('Once \\u0000 upon'), 'prompt kept whole');
  });

  /* 5. errors from civetweb are JSON; framing that allows smuggling is refused */
  const H = `Host: 127.0.0.1:${srv.port}\r\n`;
  await test('malformed request line, version and Content-Length get JSON errors', async () => {
    for (const req of ['GARBAGE\r\n\r\n', `GET /api/health HTTP/9.9\r\n${H}\r\n`, `GET /api/health HTTX/1.1\r\n${H}\r\n`,
      `POST /api/sessions HTTP/1.1\r\n${H}Content-Length: abc\r\n\r\n`,
      `POST /api/sessions HTTP/1.1\r\n${H}Content-Length: -5\r\n\r\n`,
      `POST /api/sessions HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`]) {
      const r = await raw(srv, req);
      const p = parseResponse(r.data);
      assert(p && p.status >= 400 && p.status < 600, `status for ${JSON.stringify(req.slice(0, 40))}: ${r.data.slice(0, 120)}`);
      assert(p.json && typeof p.json.error === 'string', `JSON error for ${JSON.stringify(req.slice(0, 40))}: ${r.data.slice(0, 300)}`);
      assert(/application\/json/.test(p.headers['content-type'] || ''), 'content type');
    }
  });
  await test('two Content-Lengths, Content-Length with chunked, HTTP/1.1 without Host: 400 and the connection closes', async () => {
    const smuggled = `GET /api/sessions HTTP/1.1\r\n${H}\r\n`;
    const cases = [
      `POST /api/sessions HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}`,
      `POST /api/sessions HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}`,
      `POST /api/sessions HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      `POST /api/sessions HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
      'GET /api/health HTTP/1.1\r\n\r\n',
      `GET /api/health HTTP/1.1\r\n${H}${H}\r\n`,
    ];
    for (const cs of cases) {
      const r = await raw(srv, cs + smuggled);
      const p = parseResponse(r.data);
      assert(p && p.status === 400, `400 for ${JSON.stringify(cs.slice(0, 90))}: ${r.data.slice(0, 200)}`);
      assert(p.json && p.json.error, 'JSON error');
      assert(!/HTTP\/1\.1 200/.test(p.rest), `the request behind it was not served: ${p.rest.slice(0, 80)}`);
      assert(r.closed, 'connection closed');
    }
    // an HTTP/1.0 request may omit Host
    const r10 = parseResponse((await raw(srv, 'GET /api/health HTTP/1.0\r\n\r\n')).data);
    eq(r10 && r10.status, 200, 'HTTP/1.0 without Host');
  });

  /* 6. Host on every request, Origin on every state-changing one */
  await test('foreign Host is 403 on every request; Origin is checked on POST/PUT/DELETE/PATCH', async () => {
    for (const host of ['evil.example', `evil.example:${srv.port}`, `127.0.0.1:${srv.port + 1}`, `localhost.evil.example:${srv.port}`, `[::1]evil:${srv.port}`, `127.0.0.1:${srv.port}x`, '']) {
      for (const p of ['/api/health', '/', `/api/sessions/${sid}`]) {
        const r = parseResponse((await raw(srv, `GET ${p} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).data);
        assert(r && r.status === 403 && r.json && r.json.error, `403 for Host ${host} on ${p}: ${r && r.status}`);
      }
    }
    for (const host of [`localhost:${srv.port}`, `127.0.0.1:${srv.port}`, `[::1]:${srv.port}`, '127.0.0.1']) {
      const r = parseResponse((await raw(srv, `GET /api/health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).data);
      eq(r && r.status, 200, `Host ${host} accepted`);
    }
    for (const m of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = parseResponse((await raw(srv, `${m} /api/sessions/${sid}/undo HTTP/1.1\r\n${H}Origin: http://evil.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`)).data);
      assert(r && r.status === 403 && r.json, `${m} with a foreign Origin: ${r && r.status}`);
    }
    const ro = parseResponse((await raw(srv, `POST /api/sessions/${sid}/undo HTTP/1.1\r\n${H}Origin: null\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`)).data);
    eq(ro && ro.status, 403, 'Origin: null');
  });

  /* 7. stale and ambiguous actions */
  await test('two clients choosing index 1 at the same fork: exactly one 200, the other 409 with the state', async () => {
    const s0 = (await http(srv, 'POST', '/api/sessions', { prompt: 'Tom had a dog', settings: LIGHT })).json;
    const f = s0.fork.id;
    const [a, b] = await Promise.all([
      http(srv, 'POST', `/api/sessions/${s0.id}/choose`, { index: 1, fork_id: f }),
      http(srv, 'POST', `/api/sessions/${s0.id}/choose`, { index: 1, fork_id: f }),
    ]);
    const st = [a.status, b.status].sort();
    eq(st, [200, 409], 'statuses');
    const lost = a.status === 409 ? a : b, won = a.status === 200 ? a : b;
    assert(/stale/.test(lost.json.error), lost.json.error);
    eq(lost.json.state.version, won.json.version, 'the 409 carries the current state');
    eq((await http(srv, 'GET', `/api/sessions/${s0.id}`)).json.n_events, 1, 'one decision only');
    // version: stale after a change, current is fine
    await expectError(srv, 'POST', `/api/sessions/${s0.id}/undo`, { version: s0.version }, 409, /stale/);
    const u = await http(srv, 'POST', `/api/sessions/${s0.id}/undo`, { version: won.json.version });
    eq(u.status, 200, 'undo at the current version');
    await expectError(srv, 'POST', `/api/sessions/${s0.id}/continue`, { fork_id: 999 }, 409, /stale/);
    await expectError(srv, 'POST', `/api/sessions/${s0.id}/choose`, { index: 0, version: -1 }, 400);
    // WebSocket: every reply carries req (ack, state, error incl. 409 with state)
    const ws = await wsOpen(srv, s0.id);
    await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
    const cur = ws.msgs.filter((m) => m.type === 'state').pop().state;
    const g = await wsReply(ws, { op: 'get' });
    eq(g.type, 'state', 'get -> state with req');
    const ack = await wsReply(ws, { op: 'select', index: 0, fork_id: cur.fork.id, version: cur.version });
    eq(ack.type, 'ack', `select -> ack: ${JSON.stringify(ack).slice(0, 200)}`);
    assert(ack.version > cur.version, 'ack carries the new version');
    const stale = await wsReply(ws, { op: 'select', index: 0, fork_id: cur.fork.id });
    eq([stale.type, stale.status], ['error', 409], 'stale select');
    assert(stale.state && stale.state.version === ack.version, 'the 409 carries the state');
    const bad = await wsReply(ws, { op: 'fly' });
    eq([bad.type, bad.status], ['error', 400], 'unknown op error with req');
    // two WebSocket clients selecting index 1 at the same fork
    const ws2 = await wsOpen(srv, s0.id);
    await wsWait(ws2, (w) => w.msgs.some((m) => m.type === 'state'));
    const now = (await http(srv, 'GET', `/api/sessions/${s0.id}`)).json;
    const [x, y] = await Promise.all([ws, ws2].map((w) => wsReply(w, { op: 'select', index: 1, fork_id: now.fork.id })));
    eq([x.type, y.type].sort(), ['ack', 'error'], `one ack, one error: ${JSON.stringify([x, y]).slice(0, 300)}`);
    eq((x.type === 'error' ? x : y).status, 409, '409');
    ws.s.destroy();
    ws2.s.destroy();
  });

  /* 8. RFC 6455 frames */
  await test('a fragmented message is reassembled', async () => {
    const ws = await wsOpen(srv, sid);
    await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
    const n = ws.msgs.length;
    ws.s.write(Buffer.concat([frame(1, '{"op":"g', { fin: false }), frame(0, 'et","req":', { fin: false }), frame(9, 'ping!'), frame(0, '7}')]));
    await wsWait(ws, (w) => w.msgs.slice(n).some((m) => m.type === 'state' && m.req === 7));
    assert(!ws.msgs.slice(n).some((m) => m.type === 'error'), `no errors: ${JSON.stringify(ws.msgs.slice(n)).slice(0, 200)}`);
    await wsWait(ws, (w) => w.pongs.includes('ping!'));
    ws.s.destroy();
  });
  await test('RSV bits, long or fragmented control frames, stray continuations close with 1002', async () => {
    const bads = [
      frame(1, '{"op":"get"}', { rsv: 4 }),
      frame(9, 'x'.repeat(126)),
      frame(9, 'x', { fin: false }),
      frame(0, '{"op":"get"}'),
      Buffer.concat([frame(1, '{"op":', { fin: false }), frame(1, '"get"}')]),
      frame(3, 'x'),
    ];
    for (const b of bads) {
      const ws = await wsOpen(srv, sid);
      await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
      ws.s.write(b);
      assert(await wsClosed(ws), `closed after ${b.subarray(0, 2).toString('hex')}`);
      eq(ws.closeCode, 1002, `close code for ${b.subarray(0, 2).toString('hex')}`);
    }
    eq((await http(srv, 'GET', '/api/health')).status, 200, 'server up');
  });

  await test('an unmasked client frame closes with 1002 (RFC 6455 5.1), wherever it comes in the stream', async () => {
    const big = '{"op":"get","req":1,"pad":"' + 'x'.repeat(300) + '"}';      /* 16-bit length */
    const cases = [
      ['first frame', [frame(1, '{"op":"get"}', { mask: false })]],
      ['after masked frames of 7- and 16-bit lengths', [frame(1, '{"op":"get"}'), frame(9, 'p'), frame(1, big),
        frame(1, '{"op":"get"}', { mask: false })]],
      ['a ping', [frame(9, 'hello', { mask: false })]],
      ['continuation of a fragmented message', [frame(1, '{"op":', { fin: false }), frame(0, '"get"}', { mask: false })]],
    ];
    for (const [name, frames] of cases) {
      const ws = await wsOpen(srv, sid);
      await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
      const bytes = Buffer.concat(frames);
      /* written a byte at a time: headers split across reads */
      for (let i = 0; i < bytes.length; i += 7) { ws.s.write(bytes.subarray(i, i + 7)); await sleep(1); }
      assert(await wsClosed(ws), `closed: ${name}`);
      eq(ws.closeCode, 1002, `close code: ${name}`);
    }
    /* a masked client of the same session is unaffected, before and after */
    const ok = await wsOpen(srv, sid);
    await wsWait(ok, (w) => w.msgs.some((m) => m.type === 'state'));
    ok.s.write(frame(1, Buffer.alloc(70000, 0x20)));                         /* 64-bit length: refused by size */
    await wsWait(ok, (w) => w.msgs.some((m) => m.status === 413), 30000);
    const r = await wsReply(ok, { op: 'get' });
    assert(r && r.type === 'state' && !ok.closed, 'a masked client goes on');
    ok.s.destroy();
  });

  await test('frame payloads: 2 MiB is read and refused (413 message, connection kept); a 2^56-byte claim closes; the server stays up', async () => {
    /* civetweb reads a whole frame before our handler sees it (it mallocs
     * what the header claims): a claim malloc cannot meet closes the
     * connection, one it can is read and then refused by size. */
    const ws = await wsOpen(srv, sid);
    await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
    ws.s.write(frame(1, Buffer.alloc(2 << 20, 0x20)));
    await wsWait(ws, (w) => w.msgs.some((m) => m.status === 413), 30000);
    const r = await wsReply(ws, { op: 'get' });
    assert(r && r.type === 'state', 'still usable after the refused frame');
    ws.s.write(Buffer.from([0x81, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]));
    ws.s.write(Buffer.alloc(1000));
    assert(await wsClosed(ws), 'closed after a 2^56-byte claim');
    eq((await http(srv, 'GET', '/api/health')).status, 200, 'server up');
  });

  await test('slowloris: a request trickled or left half-sent is cut off by the 10 s request timeout', async () => {
    const t0 = Date.now();
    const half = raw(srv, `GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n`, 20000);
    const trickle = new Promise((resolve) => {
      const s = net.connect(srv.port, '127.0.0.1');
      let closed = false;
      const iv = setInterval(() => { if (!closed) s.write('X-Slow: a\r\n'); }, 1000);
      s.on('error', () => {});
      s.on('close', () => { closed = true; clearInterval(iv); resolve(Date.now() - t0); });
      s.on('connect', () => s.write(`GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\n`));
      setTimeout(() => { clearInterval(iv); s.destroy(); resolve(Infinity); }, 20000);
    });
    const [h, tms] = await Promise.all([half, trickle]);
    const hms = Date.now() - t0;
    assert(h.closed && hms < 16000, `half-sent request closed after ${hms} ms`);
    assert(tms < 16000, `trickling request closed after ${tms} ms`);
  });

  await test('a handshake with a malformed Sec-WebSocket-Key is refused (400 JSON) and takes no client slot', async () => {
    for (let i = 0; i < 600; i++) {
      const key = i % 2 ? 'k'.repeat(100) : 'short';
      const r = parseResponse((await raw(srv, `GET /api/sessions/${sid}/ws HTTP/1.1\r\n${H}Upgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`)).data);
      assert(r && r.status === 400 && r.json, `400 for key ${key.slice(0, 10)}: ${r && r.status}`);
    }
    const ws = await wsOpen(srv, sid);   // the table (512 clients) still has room
    await wsWait(ws, (w) => w.msgs.some((m) => m.type === 'state'));
    ws.s.destroy();
  });

  /* 9. only jobs that decode cancel speculation */
  await test('gets, lists, shown and trees do not cancel prefetch; a choice does', async () => {
    const h0 = (await http(srv, 'GET', '/api/health')).json.prefetch_cancels;
    assert(typeof h0 === 'number', 'health reports prefetch_cancels');
    for (let i = 0; i < 5; i++) {
      await http(srv, 'GET', `/api/sessions/${sid}`);
      await http(srv, 'GET', '/api/sessions');
      await http(srv, 'POST', `/api/sessions/${sid}/shown`, {});
      await http(srv, 'GET', `/api/sessions/${sid}/tree`);
    }
    const ws = await wsOpen(srv, sid);
    await wsReply(ws, { op: 'shown' });
    await wsReply(ws, { op: 'get' });
    ws.s.destroy();
    const h1 = (await http(srv, 'GET', '/api/health')).json.prefetch_cancels;
    eq(h1, h0, 'no cancels from reads');
    // the first choice opens a new fork (speculation on it is then due or
    // running: four outcomes, one after the other); the next one, sent at
    // once, cancels it or gives up what was still due
    await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 0 });
    await http(srv, 'POST', `/api/sessions/${sid}/choose`, { index: 0 });
    const h2 = (await http(srv, 'GET', '/api/health')).json.prefetch_cancels;
    assert(h2 > h1, `a choice cancels (${h1} -> ${h2})`);
  });

  /* 10. a WebSocket client that never reads */
  await test('a client that never reads is dropped; others keep working', async () => {
    const s0 = (await http(srv, 'POST', '/api/sessions', { prompt: 'The sun was hot', settings: LIGHT })).json;
    const slow = await wsOpen(srv, s0.id, { pause: true });
    const fast = await wsOpen(srv, s0.id);
    await wsWait(fast, (w) => w.msgs.some((m) => m.type === 'state'));
    // 200k highlights relayed to the slow reader: ~9 MB it never reads
    const one = frame(1, '{"op":"highlight","index":0}');
    const burst = Buffer.concat(Array(20000).fill(one));
    for (let i = 0; i < 10; i++) fast.s.write(burst);
    let h;
    for (let i = 0; i < 120; i++) {
      h = (await http(srv, 'GET', '/api/health')).json;
      if (h.ws_dropped >= 1) break;
      await sleep(250);
    }
    assert(h.ws_dropped >= 1, `the slow client was dropped: ${JSON.stringify(h)}`);
    // the other client and HTTP still work
    const st = fast.msgs.filter((m) => m.type === 'state').pop().state;
    const r = await http(srv, 'POST', `/api/sessions/${s0.id}/choose`, { index: 0, fork_id: st.fork.id });
    eq(r.status, 200, 'choose works');
    await wsWait(fast, (w) => w.msgs.some((m) => m.type === 'state' && m.state.version === r.json.version), 30000);
    slow.s.destroy();
    fast.s.destroy();
  });

  const e = await stopServer(srv);
  await test('server stops cleanly (no sanitizer report)', async () => {
    assert(!/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(srv.stderr), srv.stderr.slice(-2000));
    eq(e.code, 0, `exit ${JSON.stringify(e)}`);
  });

  /* 3b. TinyStories-656K has no "[" and no byte tokens: llama.cpp's tokenizer
   * would abort the server; every path that tokenizes answers 400 instead */
  await test('text the vocabulary cannot spell: 400 JSON on every tokenizing path, the server lives', async () => {
    const m656 = pick(path.join(MODELS, 'tinystories-656k/tinystories-656k-q8_0.gguf'));
    assert(m656, `no ${MODELS}/tinystories-656k/tinystories-656k-q8_0.gguf`);
    const s = await startServer([], { model: m656 });
    try {
      const spell = /cannot spell "\[" U\+005B/;
      await expectError(s, 'POST', '/api/sessions', { prompt: 'a [b' }, 400, spell);
      for (const [p, body] of [['/tokenize', { content: 'a [b' }], ['/v1/completions', { prompt: 'a [b', max_tokens: 2 }],
                               ['/completion', { prompt: 'a [b', n_predict: 2 }]]) {
        const r = await http(s, 'POST', p, body);   // OpenAI's error shape: {"error": {"message": ...}}
        eq(r.status, 400, `${p}: ${r.text.slice(0, 200)}`);
        assert(r.json && r.json.error && spell.test(r.json.error.message), `${p}: ${r.text.slice(0, 200)}`);
      }
      const st = (await http(s, 'POST', '/api/sessions', { prompt: 'Once upon a time' })).json;
      assert(st && st.id && st.fork, `create: ${JSON.stringify(st).slice(0, 200)}`);
      await expectError(s, 'POST', `/api/sessions/${st.id}/type`, { text: '[x]' }, 400, spell);
      eq((await http(s, 'POST', `/api/sessions/${st.id}/type`, { text: 'dog' })).status, 200, 'a word it can spell');
      eq((await http(s, 'GET', '/api/sessions')).status, 200, 'still serving');
    } finally { await stopServer(s); }
    assert(!/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|terminate called/.test(s.stderr), s.stderr.slice(-2000));
  });

  /* 4. UTF-8 out, on a model with byte tokens */
  await test('byte-token model: ~100 choices, every HTTP body and WebSocket message is valid UTF-8, offsets consistent', async () => {
    assert(BYTE_MODEL, `no ${MODELS}/llama-2-tiny-random.gguf`);
    const s = await startServer([], { model: BYTE_MODEL });
    try {
      const bad = [];
      const check = (r, what) => { if (!r.utf8ok) bad.push(what); return r; };
      let n = 0;
      for (const prompt of ['Hello', 'Once upon a time', 'Ünïcödé ✓ 字']) {
        let st = check(await http(s, 'POST', '/api/sessions', { prompt, settings: { max_forks_per_sentence: 0 } }), 'create').json;
        assert(st && st.id, `create: ${JSON.stringify(st).slice(0, 200)}`);
        const ws = await wsOpen(s, st.id);
        for (let i = 0; i < 34 && st.fork; i++, n++) {
          const idx = (i * 7) % st.fork.candidates.length;
          const r = check(await http(s, 'POST', `/api/sessions/${st.id}/choose`, { index: idx, accept_preview: i % 5 === 4 }), `choose ${i}`);
          eq(r.status, 200, `choose ${i}: ${r.text.slice(0, 200)}`);
          st = r.json;
          const tl = Buffer.byteLength(st.text);
          for (const t of st.tokens) assert(t[0] >= 0 && t[0] + t[1] <= tl, `token [${t[0]},${t[1]}] inside ${tl} bytes`);
          if (st.fork) {
            assert(st.fork.text_offset <= tl, `fork offset ${st.fork.text_offset} inside the text (${tl} bytes)`);
            for (const cd of st.fork.candidates)
              for (const p of cd.preview_words) assert(p <= Buffer.byteLength(cd.preview), 'preview_words inside the preview');
          }
        }
        check(await http(s, 'GET', `/api/sessions/${st.id}`), 'get');
        check(await http(s, 'GET', `/api/sessions/${st.id}/tree`), 'tree');
        check(await http(s, 'GET', `/api/sessions/${st.id}/events.jsonl`), 'events');
        check(await http(s, 'GET', '/api/sessions'), 'list');
        assert(!bad.length, `bodies not valid UTF-8: ${bad.slice(0, 5).join(', ')}`);
        assert(!ws.bad.length, `WebSocket messages not UTF-8/JSON: ${ws.bad.slice(0, 2).join(' | ')}`);
        await wsReply(ws, { op: 'get' });
        assert(!ws.bad.length, `WebSocket messages not UTF-8/JSON: ${ws.bad.slice(0, 2).join(' | ')}`);
        assert(ws.msgs.filter((m) => m.type === 'state').length >= 2, 'states pushed');
        ws.s.destroy();
      }
      assert(n >= 60, `made ${n} choices`);
      assert(!bad.length, `bodies not valid UTF-8: ${bad.slice(0, 5).join(', ')}`);
    } finally {
      const e2 = await stopServer(s);
      assert(!/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(s.stderr), s.stderr.slice(-1500));
      eq(e2.code, 0, 'clean exit');
    }
  });

  /* 5. WebSockets per remote address */
  await test('--max-ws-per-addr: a remote address gets 503 past its limit, loopback is not limited', async () => {
    const ext = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    assert(ext, 'this test needs a non-loopback IPv4 interface');
    const s = await startServer(['--host', '0.0.0.0', '--token', 'tk', '--max-ws-per-addr', '2']);
    try {
      const cr = await http(s, 'POST', '/api/sessions', { prompt: 'Once', settings: LIGHT }, { Authorization: 'Bearer tk' });
      const id = cr.json.id;
      const open = (host) => wsOpen(s, id, { query: '?token=tk', connect: () => net.connect(s.port, host) });
      const remote = [await open(ext.address), await open(ext.address)];
      let refused = null;
      try { (await open(ext.address)).s.destroy(); } catch (e) { refused = e.message; }
      assert(/handshake: HTTP\/1\.1 503/.test(String(refused)), `third from ${ext.address}: ${refused}`);
      const local = [];
      for (let i = 0; i < 4; i++) local.push(await open('127.0.0.1'));
      remote[0].s.destroy();
      await sleep(1500);
      const again = await open(ext.address);   // a slot freed by a close counts again
      for (const w of [...remote, ...local, again]) w.s.destroy();
    } finally { await stopServer(s); }
  });

  /* 6. TLS and start-up */
  await tlsTests();
  await startupTests();
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - harness: ${e && e.stack}`);
} finally {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
