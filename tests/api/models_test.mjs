// models_test.mjs — the models folder and switching models while the server
// runs, on two real models (stories260K and TinyStories-656K):
// GET /api/models (the running model's facts, the folder's models), /v1/models
// and /api/health agreeing with it, POST /api/models switching, a story
// remembering its model (reopening with it, also after a restart), and why a
// story cannot reopen (its file missing, or another file now: 409), plus bad
// requests and a server that cannot switch (--profile).
//
// Prints "ok - name" / "not ok - name: why" and a final "N passed, N failed".
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const pick = (...c) => c.find((p) => p && fs.existsSync(p));
const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/asan/forkpoint-serve`, `${repo}/build/release/forkpoint-serve`);
const MODELS = process.env.FP_TEST_MODELS || path.join(path.dirname(repo), 'shared/models');
const S260 = path.join(MODELS, 'stories260K.gguf');
const T656 = path.join(MODELS, 'tinystories-656k/tinystories-656k-q8_0.gguf');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-models-'));
const dir = path.join(tmp, 'models');
fs.mkdirSync(dir);
const A = path.join(dir, 'stories260K.gguf'), B = path.join(dir, 'tinystories-656k-q8_0.gguf');
fs.copyFileSync(S260, A);
fs.copyFileSync(T656, B);
fs.copyFileSync(path.join(MODELS, 'vocab-only/ggml-vocab-phi-3.gguf'), path.join(dir, 'phi-3-vocab.gguf'));
const LIGHT = { k: 4, beam_width: 8, lookahead: 4 };

let passed = 0, failed = 0;
function assert(c, m) { if (!c) throw new Error(m); }
function eq(a, b, m) { const x = JSON.stringify(a), y = JSON.stringify(b); if (x !== y) throw new Error(`${m}: ${x.slice(0, 300)} != ${y.slice(0, 300)}`); }
async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); } catch (e) { failed++; console.log(`not ok - ${name}: ${e && e.message}`); }
}

function start(extra = [], db = path.join(tmp, 'fp.db')) {
  const child = spawn(SERVE, ['--port', '0', '--db', db, '--threads', '1', '--models-dir', dir, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORKPOINT_TOKEN: '' } });
  const srv = { child, err: '' };
  child.stderr.on('data', (d) => { srv.err += d; });
  srv.exited = new Promise((r) => child.on('exit', (code, sig) => r({ code, sig })));
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`no start: ${srv.err.slice(-400)}`)), 180000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(t); srv.url = m[1]; resolve(srv); }
    });
    srv.exited.then((e) => { clearTimeout(t); if (!srv.url) reject(new Error(`exited ${JSON.stringify(e)}: ${srv.err.slice(-400)}`)); });
  });
}
async function stop(srv) {
  srv.child.kill('SIGTERM');
  const e = await srv.exited;
  assert(e.code === 0, `server exit ${JSON.stringify(e)}: ${srv.err.slice(-600)}`);
  assert(!/AddressSanitizer|runtime error|LeakSanitizer/.test(srv.err), `sanitizer: ${srv.err.slice(-1200)}`);
}
async function http(srv, method, p, body, headers = {}) {
  const opt = { method, headers: { ...headers } };
  if (body !== undefined) { opt.body = typeof body === 'string' ? body : JSON.stringify(body); opt.headers['Content-Type'] = 'application/json'; }
  const r = await fetch(srv.url + p.replace(/^\//, ''), opt);
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}
async function ok(srv, method, p, body) {
  const r = await http(srv, method, p, body);
  assert(r.status >= 200 && r.status < 300, `${method} ${p}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

let srv;
const story = {};
try {
  srv = await start(['--model', A]);

  await test('GET /api/models: the running model and the folder, from their headers', async () => {
    const m = await ok(srv, 'GET', '/api/models');
    eq(m.current.path, A, 'current path');
    eq([m.current.name, m.current.arch, m.current.n_vocab, m.current.n_ctx_train, m.current.chat_template, m.current.size_bytes],
      ['llama', 'llama', 512, 2048, false, fs.statSync(A).size], 'current facts');
    assert(/^[0-9a-f]{64}$/.test(m.current.sha256), 'sha256');
    eq(m.dir, dir, 'dir');
    eq(m.can_switch, true, 'can_switch');
    eq(m.models.map((x) => x.file), ['phi-3-vocab.gguf', 'stories260K.gguf', 'tinystories-656k-q8_0.gguf'], 'models');
    const b = m.models[2];
    eq([b.name, b.n_vocab, b.n_ctx_train, b.quant, b.weights], ['TinyStories-656K', 2048, 512, 'Q8_0', true], '656K facts');
    eq([m.models[0].weights, m.models[0].chat_template], [false, true], 'the vocab-only file is listed as such');
  });

  await test('/v1/models and /api/health name the running model', async () => {
    eq((await ok(srv, 'GET', '/v1/models')).data[0].id, 'stories260K.gguf', '/v1/models');
    eq((await ok(srv, 'GET', '/api/health')).model, A, 'health');
  });

  await test('a story on stories260K records its model', async () => {
    const s = await ok(srv, 'POST', '/api/sessions', { prompt: 'Once upon a time', settings: LIGHT });
    eq(s.model, 'stories260K.gguf', 'state.model');
    const c = await ok(srv, 'POST', `/api/sessions/${s.id}/choose`, { index: 0 });
    story.a = { id: s.id, text: c.text };
  });

  await test('POST /api/models switches to TinyStories-656K while the server runs', async () => {
    const m = await ok(srv, 'POST', '/api/models', { path: B });
    eq(m.current.path, B, 'current after switch');
    eq([m.current.n_vocab, m.current.n_ctx_train], [2048, 512], '656K facts');
    eq((await ok(srv, 'GET', '/v1/models')).data[0].id, 'tinystories-656k-q8_0.gguf', '/v1/models follows');
    eq((await ok(srv, 'GET', '/api/health')).model, B, 'health follows');
    const s = await ok(srv, 'POST', '/api/sessions', { prompt: 'Once upon a time, there was a little', settings: LIGHT });
    eq(s.model, 'tinystories-656k-q8_0.gguf', 'new story on the new model');
    assert(s.fork && s.fork.candidates.length > 0, 'a fork on the new model');
    const c = await ok(srv, 'POST', `/api/sessions/${s.id}/choose`, { index: 0 });
    story.b = { id: s.id, text: c.text };
  });

  await test('the story list says each story\'s model and whether it runs', async () => {
    const l = (await ok(srv, 'GET', '/api/sessions')).sessions;
    const a = l.find((x) => x.id === story.a.id), b = l.find((x) => x.id === story.b.id);
    eq([a.model, a.model_running, b.model, b.model_running],
      ['stories260K.gguf', false, 'tinystories-656k-q8_0.gguf', true], 'list');
  });

  await test('a story of the other model reopens with it (the server switches back)', async () => {
    const s = await ok(srv, 'GET', `/api/sessions/${story.a.id}`);
    eq([s.model, s.text], ['stories260K.gguf', story.a.text], 'story A as it was');
    eq((await ok(srv, 'GET', '/api/models')).current.path, A, 'running stories260K again');
    const c = await ok(srv, 'POST', `/api/sessions/${s.id}/choose`, { index: 0 });
    assert(c.text.startsWith(story.a.text), 'A goes on');
    story.a.text = c.text;
    const b = await ok(srv, 'GET', `/api/sessions/${story.b.id}`);
    eq([b.model, b.text], ['tinystories-656k-q8_0.gguf', story.b.text], 'and B with its own');
  });

  await test('bad model requests: 400/405/403, nothing changes', async () => {
    const before = (await ok(srv, 'GET', '/api/models')).current.path;
    for (const [body, re] of [[{ path: '/etc/passwd' }, /no such model/], [{ path: path.join(dir, 'phi-3-vocab.gguf') }, /no such model/],
      [{ path: 7 }, /"path" must be/], [{}, /"path" must be/], [[1], /JSON object/], [{ path: A, x: 1 }, /unknown field/], ['{', /./]]) {
      const r = await http(srv, 'POST', '/api/models', body);
      assert(r.status === 400 && r.json && re.test(r.json.error), `${JSON.stringify(body)}: ${r.status} ${r.text}`);
    }
    eq((await http(srv, 'PUT', '/api/models', {})).status, 405, 'PUT');
    eq((await http(srv, 'POST', '/api/models', { path: A }, { Origin: 'http://evil.example' })).status, 403, 'foreign Origin');
    eq((await ok(srv, 'GET', '/api/models')).current.path, before, 'unchanged');
  });
  await stop(srv);

  srv = await start(['--model', A]);
  await test('after a restart a story still reopens with its model', async () => {
    const b = await ok(srv, 'GET', `/api/sessions/${story.b.id}`);
    eq([b.model, b.text], ['tinystories-656k-q8_0.gguf', story.b.text], 'B after restart');
    eq((await ok(srv, 'GET', '/api/models')).current.path, B, 'switched to its model');
  });

  await test('a story whose model file is gone says so (409) and changes nothing', async () => {
    await ok(srv, 'GET', `/api/sessions/${story.a.id}`); // running stories260K
    fs.renameSync(B, B + '.away');
    const r = await http(srv, 'GET', `/api/sessions/${story.b.id}`);
    eq(r.status, 409, 'status');
    assert(/written with tinystories-656k-q8_0\.gguf and cannot reopen with it: model file not found/.test(r.json.error), r.json.error);
    eq(r.json.model.path, B, 'names the file');
    eq((await ok(srv, 'GET', '/api/models')).current.path, A, 'still running stories260K');
    eq((await ok(srv, 'GET', `/api/sessions/${story.a.id}`)).text, story.a.text, 'A unaffected');
  });

  await test('a story whose model file is another file now says so (409)', async () => {
    fs.copyFileSync(A, B); // same name, other bytes
    const r = await http(srv, 'GET', `/api/sessions/${story.b.id}`);
    eq(r.status, 409, 'status');
    assert(/is no longer the file it was/.test(r.json.error), r.json.error);
    fs.renameSync(B + '.away', B);
    eq((await ok(srv, 'GET', `/api/sessions/${story.b.id}`)).text, story.b.text, 'with the file back it reopens');
  });
  await stop(srv);

  srv = await start(['--model', A, '--profile', 'ann'], path.join(tmp, 'p.db'));
  await test('a server with --profile cannot switch: it says why', async () => {
    const m = await ok(srv, 'GET', '/api/models');
    eq(m.can_switch, false, 'can_switch');
    assert(/--profile/.test(m.why_not), m.why_not);
    const r = await http(srv, 'POST', '/api/models', { path: B });
    assert(r.status === 409 && /cannot switch models/.test(r.json.error), `${r.status} ${r.text}`);
    eq((await ok(srv, 'GET', '/api/models')).current.path, A, 'unchanged');
  });
  await stop(srv);
  srv = null;
} catch (e) {
  failed++;
  console.log(`not ok - models suite: ${e && e.message}`);
  if (srv) srv.child.kill('SIGKILL');
}
fs.rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
