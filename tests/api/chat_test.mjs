// chat_test.mjs — chat sessions in the HTTP/WebSocket API against a real
// server: a conversation through the model's own chat template (the
// random-weight Phi-3 model mk/models.mk builds from
// vocab-only/ggml-vocab-phi-3.gguf, which carries the Phi-3 template),
// either side co-written with forks.
//
// What it checks: create with "mode":"chat" (system prompt, messages, a
// template by name); ten turns (say, reply, the person's own message
// co-written); undo inside a turn and back into the turn before; save and
// restore across a server restart (messages, the open turn, its fork);
// decisions in the log and in events.jsonl with their role and turn; the
// chat exports (TRL's conversational formats); bad input as 4xx JSON; a
// reply that stops at the model's end-of-turn token (TinyStories-656K
// through chatml: the random Phi-3 model never picks <|end|>); and a chat
// that outgrows a 128-cell context and goes on (endless).
//
// Helpers (server, harness, assertions) are tests/browser/lib.mjs's.
// Prints "ok - name" / "not ok - name: why" and "N passed, N failed".
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { harness, startServer, assert, eq, tmpDir, repo, pick, CLI, WS_CLIENT } from '../browser/lib.mjs';

const MODELS = process.env.FP_TEST_MODELS || path.join(path.dirname(repo), 'shared/models');
const PHI = pick(process.env.FORKPOINT_PHI3, `${repo}/build/models/tiny-phi-3.gguf`);
const T656 = path.join(MODELS, 'tinystories-656k/tinystories-656k-q8_0.gguf');
const LIGHT = { k: 4, beam_width: 8, lookahead: 4, max_tokens: 12 };
const dir = tmpDir('fp-chat-');
const h = harness();
const servers = [];

async function start(opts) {
  const s = await startServer({ dir, clearToken: true, ...opts });
  servers.push(s);
  return s;
}
/* Stops a server: it must exit 0 with no sanitizer report. */
async function stop(s) {
  const exited = new Promise((r) => s.child.on('exit', (code, sig) => r({ code, sig })));
  s.child.kill('SIGTERM');
  const e = await exited;
  servers.splice(servers.indexOf(s), 1);
  assert(e.code === 0, `server exit ${JSON.stringify(e)}: ${s.err().slice(-600)}`);
  assert(!/AddressSanitizer|runtime error|LeakSanitizer/.test(s.err()), `sanitizer: ${s.err().slice(-1200)}`);
}
async function http(s, method, p, body) {
  const opt = { method, headers: {} };
  if (body !== undefined) { opt.body = typeof body === 'string' ? body : JSON.stringify(body); opt.headers['Content-Type'] = 'application/json'; }
  const r = await fetch(s.url + p.replace(/^\//, ''), opt);
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}
async function ok(s, method, p, body) {
  const r = await http(s, method, p, body);
  assert(r.status >= 200 && r.status < 300, `${method} ${p}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}
/* Decides the open turn's forks (top candidate) until it becomes a message. */
async function finishTurn(s, id, st, max = 60) {
  for (let i = 0; st.turn && st.state === 'at_fork' && i < max; i++)
    st = await ok(s, 'POST', `/api/sessions/${id}/choose`, { index: i % 2, modality: 'switch' });
  if (st.turn) st = await ok(s, 'POST', `/api/sessions/${id}/end`, {});
  return st;
}
const noControl = (t) => !/<\|(user|assistant|system|end)\|>|<\/s>|<s>/.test(t);

await h.run(async () => {
  assert(PHI, 'build/models/tiny-phi-3.gguf is missing (make build/models/tiny-phi-3.gguf)');
  let srv = await start({ model: PHI, db: 'chat.db' });
  const chat = {};

  await h.test('create a chat: system prompt and messages through the model\'s own template', async () => {
    const st = await ok(srv, 'POST', '/api/sessions', { mode: 'chat', system: 'Be brief.', messages: [{ role: 'user', content: 'Hello there.' }], settings: LIGHT });
    eq([st.mode, st.state, st.turn, st.fork], ['chat', 'between_turns', null, null], 'a chat between turns');
    eq(st.messages, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there.' }], 'messages');
    eq(st.title, 'Hello there.', 'title: the first thing said');
    chat.id = st.id;
    const list = (await ok(srv, 'GET', '/api/sessions')).sessions;
    assert(list.some((x) => x.id === st.id), 'listed with the stories');
  });

  await h.test('reply: the assistant\'s turn is co-written, its prompt the Phi-3 rendering', async () => {
    const st = await ok(srv, 'POST', `/api/sessions/${chat.id}/reply`, {});
    eq([st.state, st.turn.role, st.turn.index, st.turn.text], ['at_fork', 'assistant', 2, ''], 'an open assistant turn');
    const prompt = st.text.slice(0, st.prompt_len);
    eq(prompt, '<|system|>\nBe brief.<|end|>\n<|user|>\nHello there.<|end|>\n<|assistant|>\n', 'the Phi-3 template\'s text');
    assert(st.fork.candidates.length > 0 && st.fork.candidates.every((c) => noControl(c.text + c.preview)), 'candidates without control text');
  });

  await h.test('undo inside the turn, then back into the turn before', async () => {
    let st = await ok(srv, 'POST', `/api/sessions/${chat.id}/choose`, { index: 0 });
    const t1 = st.turn.text;
    st = await ok(srv, 'POST', `/api/sessions/${chat.id}/choose`, { index: 1 });
    st = await ok(srv, 'POST', `/api/sessions/${chat.id}/undo`, {});
    eq(st.turn.text, t1, 'undo inside the turn');
    st = await finishTurn(srv, chat.id, st);
    eq([st.turn, st.messages.length, st.messages[2].role], [null, 3, 'assistant'], 'the reply is a message');
    assert(st.messages[2].content.length > 0 && noControl(st.messages[2].content), 'no control text in the reply');
    chat.reply = st.messages[2].content;
    st = await ok(srv, 'POST', `/api/sessions/${chat.id}/undo`, {});
    eq([st.messages.length, st.turn && st.turn.role], [2, 'assistant'], 'undo reopens the reply at its last decision');
    assert(chat.reply.startsWith(st.turn.text.trim()) && st.turn.text.trim().length < chat.reply.length + 1, 'reopened with its text before the last decision');
    st = await finishTurn(srv, chat.id, st);
    eq(st.messages.length, 3, 'committed again');
  });

  await h.test('ten turns: said, replied, and the person\'s own message predicted', async () => {
    let st = await ok(srv, 'GET', `/api/sessions/${chat.id}`);
    for (let turn = st.messages.length; turn < 12; turn++) {
      if (turn % 4 === 3) st = await ok(srv, 'POST', `/api/sessions/${chat.id}/say`, { text: `Question ${turn}?` });
      else if (turn % 4 === 1) {
        st = await ok(srv, 'POST', `/api/sessions/${chat.id}/say`, {});   // co-written: the model predicts the person
        eq(st.turn.role, 'user', 'the person\'s turn');
        st = await finishTurn(srv, chat.id, st);
      } else {
        st = await ok(srv, 'POST', `/api/sessions/${chat.id}/reply`, {});
        st = await finishTurn(srv, chat.id, st);
      }
      eq(st.messages.length, turn + 1, `turn ${turn} committed`);
      eq(st.messages[turn].role, turn % 2 ? 'user' : 'assistant', `turn ${turn}'s role`);
    }
    assert(st.messages.every((m) => noControl(m.content)), 'no control text in any message');
    chat.messages = st.messages;
    st = await ok(srv, 'POST', `/api/sessions/${chat.id}/reply`, {});
    st = await ok(srv, 'POST', `/api/sessions/${chat.id}/choose`, { index: 0 });
    chat.open = { turn: st.turn, fork: st.fork.candidates.map((c) => c.text), version: st.version };
  });

  await h.test('every decision is logged with its role and turn (events.jsonl)', async () => {
    const r = await http(srv, 'GET', `/api/sessions/${chat.id}/events.jsonl`);
    eq(r.status, 200, 'status');
    const ev = r.text.trim().split('\n').map((l) => JSON.parse(l));
    assert(ev.length >= 10, `${ev.length} decisions`);
    for (const e of ev) {
      assert(Number.isInteger(e.turn) && (e.role === 'user' || e.role === 'assistant'), JSON.stringify(e).slice(0, 200));
      if (e.turn < chat.messages.length) eq(e.role, chat.messages[e.turn].role, `event of turn ${e.turn}`);
    }
    assert(ev.some((e) => e.role === 'user') && ev.some((e) => e.role === 'assistant'), 'both sides co-written');
  });

  await h.test('a chat saves and restores across a restart (messages, the open turn, its fork)', async () => {
    await stop(srv);
    srv = await start({ model: PHI, db: 'chat.db' });
    const st = await ok(srv, 'GET', `/api/sessions/${chat.id}`);
    eq(st.messages, chat.messages, 'messages');
    eq(st.turn, chat.open.turn, 'the open turn');
    eq(st.fork.candidates.map((c) => c.text), chat.open.fork, 'its fork');
    assert(st.version >= chat.open.version, 'versions go on');
    let s2 = await finishTurn(srv, chat.id, st);
    eq(s2.messages.length, 13, 'the restored turn goes on and commits');
    s2 = await ok(srv, 'POST', `/api/sessions/${chat.id}/undo`, {});
    eq([s2.messages.length, s2.turn.role], [12, 'assistant'], 'undo across the turn after a restart');
    s2 = await finishTurn(srv, chat.id, s2);
    chat.messages = s2.messages;
  });

  await h.test('the store keeps a chat in parts: its row (kind chat), one row per message, decisions with role and turn', async () => {
    await stop(srv);
    const db = path.join(dir, 'chat.db');
    const q = (sql) => execFileSync('sqlite3', [db, sql], { encoding: 'utf8' }).trim();
    eq(q('PRAGMA user_version'), '4', 'schema 4');
    eq(q(`SELECT kind FROM sessions WHERE id = '${chat.id}'`), 'chat', 'kind');
    eq(Number(q(`SELECT count(*) FROM chat_messages WHERE chat = '${chat.id}'`)), chat.messages.length, 'one row per message');
    const roles = q(`SELECT DISTINCT role FROM decisions WHERE session = '${chat.id}' ORDER BY role`);
    eq(roles, 'assistant\nuser', 'decision rows carry the role');
    const bad = q(`SELECT count(*) FROM decisions WHERE session = '${chat.id}' AND (turn IS NULL OR chat IS NULL)`);
    eq(bad, '0', 'and the turn and the conversation before it');
    srv = await start({ model: PHI, db: 'chat.db' });
  });

  await h.test('exports: chat-sft, chat-pairs, chat-kto in TRL\'s conversational form', async () => {
    const db = path.join(dir, 'chat.db');
    const exp = (f) => execFileSync(CLI, ['export', '--db', db, '--format', f], { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l));
    const sft = exp('chat-sft');
    assert(sft.length >= 10, `${sft.length} rows`);
    for (const r of sft) {
      assert(Array.isArray(r.prompt) && r.prompt[0].role === 'system' && r.prompt.length === r.turn, `prompt of turn ${r.turn}`);
      eq(r.prompt, chat.messages.slice(0, r.turn), `turn ${r.turn}: the messages before it`);
      assert(Array.isArray(r.completion) && r.completion.length === 1 && r.completion[0].role === r.role, 'completion: one message of the turn\'s role');
      assert(typeof r.completion[0].content === 'string' && noControl(r.completion[0].content), 'completion text');
    }
    const pairs = exp('chat-pairs');
    assert(pairs.length > 0 && pairs.every((r) => r.chosen[0].role === r.role && r.rejected[0].role === r.role && r.chosen[0].content !== r.rejected[0].content), 'pairs');
    const kto = exp('chat-kto');
    assert(kto.some((r) => r.label === true) && kto.some((r) => r.label === false) && kto.every((r) => Array.isArray(r.prompt)), 'kto');
    const raw = exp('raw').filter((r) => r.session === chat.id);
    assert(raw.length >= sft.length, `raw rows: ${raw.length} < ${sft.length}`);
    assert(raw.every((r) => r.role && Number.isInteger(r.turn) && Array.isArray(r.chat.messages)), 'raw carries role, turn and the conversation');
  });

  await h.test('bad input: 4xx with a JSON error, nothing changes', async () => {
    const before = await ok(srv, 'GET', `/api/sessions/${chat.id}`);
    const cases = [
      ['POST', '/api/sessions', { mode: 'talk' }, 400, /"mode" must be/],
      ['POST', '/api/sessions', { mode: 'chat', prompt: 'x' }, 400, /no "prompt"/],
      ['POST', '/api/sessions', { mode: 'chat', messages: [{ role: 'robot', content: 'x' }] }, 400, /role/],
      ['POST', '/api/sessions', { mode: 'chat', messages: [{ role: 'user' }] }, 400, /each message/],
      ['POST', '/api/sessions', { mode: 'chat', messages: 'hi' }, 400, /must be an array/],
      ['POST', '/api/sessions', { mode: 'chat', system: 5 }, 400, /"system" must be/],
      ['POST', '/api/sessions', { system: 'x', prompt: 'y' }, 400, /need "mode":"chat"/],
      ['POST', '/api/sessions', { mode: 'chat', chat_template: '{{ nope }}' }, 400, /template/],
      ['POST', '/api/sessions', { mode: 'chat', messages: [{ role: 'user', content: '  ' }] }, 400, /empty/],
      ['POST', `/api/sessions/${chat.id}/choose`, { index: 0 }, 409, /no turn is open/],
      ['POST', `/api/sessions/${chat.id}/end`, {}, 409, /no turn is open/],
      ['POST', `/api/sessions/${chat.id}/say`, { text: 7 }, 400, /"text" must be a string/],
      ['POST', `/api/sessions/${chat.id}/say`, { text: 'x', bogus: 1 }, 400, /unknown field/],
      ['POST', `/api/sessions/${chat.id}/settings`, { k: 3 }, 400, /settings are given when it is created/],
      ['GET', `/api/sessions/${chat.id}/tree`, undefined, 409, /no turn is open/],
    ];
    for (const [m, p, b, code, re] of cases) {
      const r = await http(srv, m, p, b);
      assert(r.status === code && r.json && re.test(r.json.error), `${m} ${p} ${JSON.stringify(b)}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    const story = await ok(srv, 'POST', '/api/sessions', { prompt: 'Once upon a time', settings: LIGHT });
    const r = await http(srv, 'POST', `/api/sessions/${story.id}/reply`, {});
    assert(r.status === 400 && /for chats/.test(r.json.error), `reply on a story: ${r.status} ${r.text}`);
    await ok(srv, 'POST', `/api/sessions/${chat.id}/reply`, {});
    const open = await http(srv, 'POST', `/api/sessions/${chat.id}/say`, { text: 'x' });
    assert(open.status === 409 && /a turn is open/.test(open.json.error), `say while a turn is open: ${open.status}`);
    const after = await ok(srv, 'GET', `/api/sessions/${chat.id}`);
    eq(after.messages, before.messages, 'messages unchanged');
    await ok(srv, 'DELETE', `/api/sessions/${chat.id}`);
    eq((await http(srv, 'GET', `/api/sessions/${chat.id}`)).status, 404, 'deleted');
  });

  await h.test('WebSocket: reply, a choice and end as ops; every client gets the chat\'s state', async () => {
    assert(WS_CLIENT, 'ws_client is not built (make build/release/ws_client)');
    const st = await ok(srv, 'POST', '/api/sessions', { mode: 'chat', messages: [{ role: 'user', content: 'Hi.' }], settings: LIGHT });
    // async, not spawnSync: a blocked event loop lets the server close the
    // test's idle keep-alive connection under the next fetch
    const r = await new Promise((resolve) => {
      const c = spawn(WS_CLIENT, ['--port', String(srv.port), '--script', '{"op":"reply"}; {"op":"select","index":0}; {"op":"end"}; {"op":"say","text":"Thanks."}', '--wait', '3000', st.id],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      c.stdout.on('data', (d) => { stdout += d; });
      c.stderr.on('data', (d) => { stderr += d; });
      const t = setTimeout(() => c.kill('SIGKILL'), 60000);
      c.on('exit', () => { clearTimeout(t); resolve({ stdout, stderr }); });
    });
    const msgs = r.stdout.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
    const states = msgs.filter((m) => m.type === 'state').map((m) => m.state);
    assert(states.length >= 4 && states.every((x) => x.mode === 'chat'), `states: ${states.length} ${r.stderr.slice(0, 200)}`);
    assert(states.some((x) => x.turn && x.turn.role === 'assistant'), 'the reply opened over the socket');
    const last = await ok(srv, 'GET', `/api/sessions/${st.id}`);
    eq(last.messages.map((m) => m.role), ['user', 'assistant', 'user'], 'reply ended, then said');
    eq(last.messages[2].content, 'Thanks.', 'the said message');
  });
  await stop(srv);

  await h.test('a reply stops at the model\'s end-of-turn token (TinyStories-656K through chatml)', async () => {
    const s = await start({ model: T656, db: 'eot.db', extra: ['--chat-template', 'chatml'] });
    let st = await ok(s, 'POST', '/api/sessions', { mode: 'chat', messages: [{ role: 'user', content: 'Once upon a time, there was a little girl.' }], settings: { k: 4, beam_width: 8, lookahead: 4, max_tokens: 0 } });
    st = await ok(s, 'POST', `/api/sessions/${st.id}/reply`, {});
    for (let i = 0; st.turn && i < 400; i++) st = await ok(s, 'POST', `/api/sessions/${st.id}/continue`, {});
    eq([st.turn, st.messages.length, st.messages[1].role], [null, 2, 'assistant'], 'the reply ended by itself (max_tokens 0: only end-of-turn ends it)');
    assert(st.messages[1].content.length > 20 && noControl(st.messages[1].content) && !/<\|im_end\|>|<\|im_start\|>/.test(st.messages[1].content), st.messages[1].content.slice(0, 200));
    await stop(s);
  });

  // Endless: a turn's prompt is the conversation; when it outgrows the
  // window the oldest messages are left out of the prompt (the system
  // prompt stays, every message is kept) and the chat goes on.
  await h.test('--ctx 128: a conversation longer than the window goes on (system prompt kept, oldest turns out of view)', async () => {
    let s = await start({ model: PHI, db: 'ctx.db', extra: ['--ctx', '128', '--seq-max', '8'] });
    let st = await ok(s, 'POST', '/api/sessions', { mode: 'chat', system: 'Be brief.', settings: { k: 3, beam_width: 3, lookahead: 2, max_tokens: 24 } });
    const id = st.id;
    let forks = 0;
    for (let turn = 1; turn <= 12; turn++) {
      st = await ok(s, 'POST', `/api/sessions/${id}/${turn % 2 ? 'say' : 'reply'}`, turn % 2 ? { text: `Tell me more about thing number ${turn}, please.` } : {});
      if (st.turn) {
        if (st.fork) forks++;
        assert(st.text.startsWith('<|system|>\nBe brief.<|end|>'), `turn ${turn}: the system prompt stays in view`);
        st = await finishTurn(s, id, st);
      }
      eq(st.messages.length, turn + 1, `turn ${turn}`);
    }
    const chars = st.messages.reduce((a, m) => a + m.content.length, 0);
    assert(chars > 700, `the conversation (${chars} characters) is far longer than 128 tokens`);
    assert(forks >= 5, `forks keep appearing (${forks} of 6 replies opened at a fork)`);
    assert(st.messages.every((m) => noControl(m.content)), 'no garbage');
    st = await ok(s, 'POST', `/api/sessions/${id}/reply`, {});
    assert(!st.text.includes('thing number 1,'), 'the oldest turns are out of the prompt');
    assert(st.text.includes('thing number 11,'), 'the newest are in it');
    const open = { turn: st.turn, fork: st.fork && st.fork.candidates.map((c) => c.text) };
    await stop(s);
    s = await start({ model: PHI, db: 'ctx.db', extra: ['--ctx', '128', '--seq-max', '8'] });
    const back = await ok(s, 'GET', `/api/sessions/${id}`);
    eq([back.turn, back.fork && back.fork.candidates.map((c) => c.text), back.messages.length], [open.turn, open.fork, 13], 'restored after a restart');
    await stop(s);
  });
}, async () => { for (const s of servers) s.child.kill('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }); }, 'chat suite');
