// oai_test.mjs — Forkpoint as a back end: the OpenAI-compatible API driven
// by the official `openai` npm client (a real client nobody here wrote), and
// llama.cpp's server API replayed with the request shapes mikupad and LLooM
// send, against a real forkpoint-serve process and real models.
//
// Models: stories260K (no chat template; --chat-template chatml where a
// chat is needed) and a random-weight model with Phi-3's tokenizer and
// chat template, built once by bench/gen_model (build/release/bench/gen_model)
// into $FORKPOINT_CACHE or ~/.cache/forkpoint/models.
// Prints "ok - name" / "not ok - name: why" and a final "N passed, N failed".
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServe, stopServe } from './serve_lib.mjs';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const pick = (...c) => c.find((p) => p && fs.existsSync(p));
const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/asan/forkpoint-serve`, `${repo}/build/release/forkpoint-serve`);
const MODELS = process.env.FP_TEST_MODELS || path.join(path.dirname(repo), 'shared/models');
const STORIES = path.join(MODELS, 'stories260K.gguf');
const GEN = `${repo}/build/release/bench/gen_model`;
const CACHE = process.env.FORKPOINT_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'forkpoint');
const PHI3 = path.join(CACHE, 'models', 'synthetic-phi3-test.gguf');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-oai-'));

let passed = 0, failed = 0;
function assert(c, m) { if (!c) throw new Error(m); }
async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); }
  catch (e) { failed++; console.log(`not ok - ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`); }
}

function start(model, extra = []) {
  return startServe(SERVE, tmp, model, extra);
}
async function stop(srv) {
  const e = await stopServe(srv);
  assert(e.code === 0, `server exit ${JSON.stringify(e)}: ${srv.stderr.slice(-800)}`);
}
async function post(srv, p, body, headers = {}) {
  const r = await fetch(srv.url + p, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  let json = null; try { json = JSON.parse(text); } catch { /* SSE or empty */ }
  return { status: r.status, json, text, headers: r.headers };
}
const sseEvents = (text) => text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
const client = (srv, apiKey = 'none') => new OpenAI({ baseURL: srv.url + '/v1', apiKey, maxRetries: 0, timeout: 120000 });
async function expect400(fn, param) {
  try { await fn(); } catch (e) {
    assert(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    assert(e.status === 400, `status ${e.status}: ${e.message}`);
    if (param) assert(e.param === param, `param ${e.param} != ${param} (${e.message})`);
    return e;
  }
  throw new Error('no error');
}
const close = (a, b, eps = 2e-4) => Math.abs(a - b) <= eps;

/* ------------------------------------------------------------ stories260K */

const srv = await start(STORIES, ['--chat-template', 'chatml']);
const oa = client(srv);
const PROMPT = 'Once upon a time, there was a little';

await test('GET /v1/models through the client lists the loaded model', async () => {
  const list = await oa.models.list();
  assert(list.data.length === 1 && list.data[0].id === 'stories260K.gguf', JSON.stringify(list.data));
});

await test('completions: integer logprobs in the legacy format', async () => {
  const r = await oa.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 8, logprobs: 3, temperature: 0 });
  const c = r.choices[0], lp = c.logprobs;
  assert(lp.tokens.length === r.usage.completion_tokens && lp.tokens.length > 0, `tokens ${lp.tokens.length} vs usage ${r.usage.completion_tokens}`);
  assert(lp.tokens.join('') === c.text, `tokens ${JSON.stringify(lp.tokens)} do not spell ${JSON.stringify(c.text)}`);
  for (let i = 0; i < lp.tokens.length; i++) {
    const d = lp.top_logprobs[i], vals = Object.values(d);
    assert(vals.length >= 1 && vals.length <= 4, `top ${i} has ${vals.length} entries`);
    assert(d[lp.tokens[i]] !== undefined, 'the sampled token is in its top_logprobs');
    assert(vals.every((v) => v <= 0) && vals.reduce((s, v) => s + Math.exp(v), 0) <= 1 + 1e-4, 'log-probabilities');
    /* greedy: the token taken is the most probable one */
    assert(close(lp.token_logprobs[i], Math.max(...vals), 1e-6), `greedy token ${i} is not the top one`);
    assert(lp.text_offset[i] === lp.tokens.slice(0, i).join('').length, 'text_offset');
  }
});

await test('completions: echo returns the prompt with its scored tokens (first null)', async () => {
  const r = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 2, logprobs: 1, echo: true, temperature: 0 });
  const c = r.choices[0];
  assert(c.text.startsWith(PROMPT), c.text);
  assert(c.logprobs.token_logprobs[0] === null, 'first prompt token has no logprob');
  assert(c.logprobs.token_logprobs.slice(1).every((v) => typeof v === 'number' && v <= 0), 'prompt tokens scored');
  assert(c.logprobs.tokens.length === r.usage.prompt_tokens + r.usage.completion_tokens, 'echo + completion tokens');
});

await test('completions: seed makes sampling reproducible, n gives several choices, stop cuts', async () => {
  const a = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 12, temperature: 1, seed: 7, n: 3 });
  const b = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 12, temperature: 1, seed: 7, n: 3 });
  assert(a.choices.length === 3 && a.choices.map((c) => c.index).join() === '0,1,2', 'three choices');
  assert(JSON.stringify(a.choices.map((c) => c.text)) === JSON.stringify(b.choices.map((c) => c.text)), 'same seed, same texts');
  const g = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 20, temperature: 0 });
  const word = g.choices[0].text.trim().split(' ')[1];
  const s = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 20, temperature: 0, stop: [' ' + word] });
  assert(s.choices[0].finish_reason === 'stop' && !s.choices[0].text.includes(' ' + word) &&
         g.choices[0].text.startsWith(s.choices[0].text), `stop ${word}: ${JSON.stringify(s.choices[0].text)}`);
});

await test('completions: logit_bias bans a token (and its probability follows)', async () => {
  const g = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 1, temperature: 0, logprobs: 1 });
  const tok = [(await post(srv, '/completion', { prompt: PROMPT, n_predict: 1, n_probs: 1, temperature: 0 })).json.completion_probabilities[0].id];
  const b = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 1, temperature: 0, logprobs: 5, logit_bias: { [tok[0]]: -100 } });
  assert(b.choices[0].text !== g.choices[0].text, 'the banned token is not taken');
  assert(!(g.choices[0].text in b.choices[0].logprobs.top_logprobs[0]), 'and not among the alternatives');
});

await test('completions streaming: log-probabilities in each chunk, the same text as without', async () => {
  const plain = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 10, temperature: 0, logprobs: 2 });
  const stream = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 10, temperature: 0, logprobs: 2, stream: true });
  let text = '', chunks = 0, finish = null;
  for await (const ch of stream) {
    const c = ch.choices[0];
    if (c.finish_reason) { finish = c.finish_reason; continue; }
    chunks++;
    text += c.text;
    assert(c.logprobs && c.logprobs.tokens.length === 1 && c.logprobs.token_logprobs[0] <= 0, 'one token with its logprob per chunk');
  }
  assert(text === plain.choices[0].text, `${JSON.stringify(text)} != ${JSON.stringify(plain.choices[0].text)}`);
  assert(chunks === plain.usage.completion_tokens && finish === 'length', `${chunks} chunks, finish ${finish}`);
});

await test('chat (chatml template on stories260K): logprobs with top_logprobs, streamed too', async () => {
  const msgs = [{ role: 'system', content: 'Tell a story.' }, { role: 'user', content: 'Once upon a time' }];
  const r = await oa.chat.completions.create({ model: 'x', messages: msgs, max_tokens: 6, logprobs: true, top_logprobs: 4, temperature: 0 });
  const lp = r.choices[0].logprobs.content;
  assert(lp.length === r.usage.completion_tokens, 'one entry per token');
  for (const e of lp) {
    assert(e.top_logprobs.length === 4 && Array.isArray(e.bytes), 'four alternatives with bytes');
    assert(close(e.logprob, e.top_logprobs[0].logprob, 1e-6), 'greedy: the top one');
  }
  const s = await oa.chat.completions.create({ model: 'x', messages: msgs, max_tokens: 6, logprobs: true, top_logprobs: 4, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '', role = null, usage = null, n = 0;
  for await (const ch of s) {
    if (ch.usage) usage = ch.usage;
    const c = ch.choices[0];
    if (!c) continue;
    if (c.delta.role) role = c.delta.role;
    if (c.logprobs) { n++; assert(c.logprobs.content[0].top_logprobs.length === 4, 'alternatives in the chunk'); }
    text += c.delta.content || '';
  }
  assert(role === 'assistant' && text === r.choices[0].message.content, `streamed ${JSON.stringify(text)} vs ${JSON.stringify(r.choices[0].message.content)}`);
  assert(usage && usage.completion_tokens === n, 'usage chunk');
});

await test('a character split over byte tokens: its own records, streamed text cut only between characters', async () => {
  const prompt = 'A cup ☕ of tea';
  const plain = await oa.completions.create({ model: 'x', prompt, echo: true, logprobs: 1, max_tokens: 3, temperature: 0 });
  const lp = plain.choices[0].logprobs;
  const parts = lp.tokens.filter((t) => t.startsWith('bytes:'));
  assert(parts.length === 3 && parts[0] === 'bytes:\\xe2', `byte tokens spelled as bytes: ${JSON.stringify(lp.tokens)}`);
  const stream = await oa.completions.create({ model: 'x', prompt, echo: true, logprobs: 1, max_tokens: 3, temperature: 0, stream: true });
  let text = '', n = 0;
  for await (const ch of stream) {
    const c = ch.choices[0];
    if (c.finish_reason) continue;
    n++;
    assert(!c.text.includes('\uFFFD'), 'no broken character in a chunk');
    text += c.text;
  }
  assert(text === plain.choices[0].text && text.startsWith(prompt), `${JSON.stringify(text)} vs ${JSON.stringify(plain.choices[0].text)}`);
  assert(n === lp.tokens.length, `one event per token (${n} vs ${lp.tokens.length})`);
  const t = await post(srv, '/tokenize', { content: '☕', add_special: false, with_pieces: true });
  const bytes = t.json.tokens.flatMap((x) => (Array.isArray(x.piece) ? x.piece : [...Buffer.from(x.piece)]));
  assert(Buffer.from(bytes).toString() === ' ☕' || Buffer.from(bytes).toString() === '☕', `pieces as bytes: ${JSON.stringify(t.json.tokens)}`);
});

await test('errors for bad parameters: 400 in OpenAI\'s shape, naming the field', async () => {
  await expect400(() => oa.completions.create({ model: 'x', prompt: 'a', max_tokns: 3 }), 'max_tokns');
  await expect400(() => oa.completions.create({ model: 'x', prompt: 'a', logprobs: 21 }), 'logprobs');
  await expect400(() => oa.completions.create({ model: 'x', prompt: 'a', temperature: 2.5 }), 'temperature');
  await expect400(() => oa.completions.create({ model: 'x', prompt: 'a', max_tokens: 'ten' }), 'max_tokens');
  await expect400(() => oa.completions.create({ model: 'x', prompt: 'a', n: 0 }), 'n');
  await expect400(() => oa.completions.create({ model: 'x', prompt: 'a', frequency_penalty: 0.5 }), 'frequency_penalty');
  await expect400(() => oa.completions.create({ model: 'x', prompt: [999999] }), 'prompt');
  await expect400(() => oa.completions.create({ model: 'x', prompt: 'a', logit_bias: { 99999999: 1 } }), 'logit_bias');
  /* OpenAI's shape: token ids as decimal strings, values -100..100 */
  for (const lb of [{ 5: 101 }, { 5: -100.5 }, { abc: 1 }, { '1e2': 1 }, { ' 5': 1 }, { '-5': 1 }, { 5: '1' }, [[5, 1]]])
    await expect400(() => oa.completions.create({ model: 'x', prompt: 'a', logit_bias: lb }), 'logit_bias');
  await expect400(() => oa.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'a' }], logit_bias: { 5: 100.5 } }), 'logit_bias');
  await expect400(() => oa.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'a' }], top_logprobs: 3 }), 'top_logprobs');
  await expect400(() => oa.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'a' }], logprobs: true, top_logprobs: 50 }), 'top_logprobs');
  await expect400(() => oa.chat.completions.create({ model: 'x', messages: [{ role: 'wizard', content: 'a' }] }), 'messages');
  await expect400(() => oa.chat.completions.create({ model: 'x', messages: [] }), 'messages');
  /* what strict parsing refuses below the client: raw bodies */
  const raw = async (p, text) => {
    const r = await fetch(srv.url + p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: text });
    return { status: r.status, json: await r.json() };
  };
  let r = await raw('/v1/completions', '{"prompt":"a","max_tokens":1,"max_tokens":2}');
  assert(r.status === 400 && /max_tokens.*twice/.test(r.json.error.message), 'duplicate field');
  r = await raw('/v1/completions', '{"prompt":"a"} trailing');
  assert(r.status === 400 && r.json.error.type === 'invalid_request_error', 'trailing data');
  r = await raw('/completion', '{"prompt":"a","n_probs":1.5}');
  assert(r.status === 400 && r.json.error.param === 'n_probs', 'a fractional count');
  r = await raw('/completion', '{"prompt":"a","mirostat":2}');
  assert(r.status === 400 && r.json.error.param === 'mirostat' && /not supported/.test(r.json.error.message), 'mirostat on');
  r = await raw('/v1/chat/completions', '{"messages":[{"role":"user","content":"a","tool_calls":[]}]}');
  assert(r.status === 400 && /tool_calls/.test(r.json.error.message), 'unknown message field');
  r = await raw('/v1/completions', '[1,2]');
  assert(r.status === 400, 'not an object');
  r = await raw('/v1/completions', '{"prompt":"a","stream_options":{"include_usage":true}}');
  assert(r.status === 400 && r.json.error.param === 'stream_options', 'stream_options without stream');
  /* what the client sends on its own is accepted */
  const ok = await oa.completions.create({ model: 'x', prompt: 'a', max_tokens: 1, user: 'me', frequency_penalty: 0, presence_penalty: 0 });
  assert(ok.choices.length === 1, 'documented fields at neutral values are accepted');
});

await test('body limit: 1 MiB on these routes (a whole document as the prompt), then 413 in OpenAI\'s shape', async () => {
  /* 100 KB is over the session API's 64 KiB: here it reaches the model and
   * is refused for the context it needs, not for its size */
  let r = await post(srv, '/v1/completions', { prompt: 'Once upon a time '.repeat(6000), max_tokens: 1 });
  assert(r.status === 422 && /the prompt is \d+ tokens; the context holds/.test(r.json.error.message), `${r.status} ${r.text.slice(0, 200)}`);
  r = await post(srv, '/completion', { prompt: 'Once upon a time '.repeat(6000), n_predict: 1 });
  assert(r.status === 422, `/completion: ${r.status} ${r.text.slice(0, 200)}`);
  r = await post(srv, '/v1/completions', { prompt: 'x'.repeat(1100000), max_tokens: 1 });
  assert(r.status === 413 && r.json.error.type === 'invalid_request_error' && /1 MiB/.test(r.json.error.message), `${r.status} ${r.text.slice(0, 200)}`);
  const ok = await oa.completions.create({ model: 'x', prompt: PROMPT, max_tokens: 2 });
  assert(ok.choices.length === 1, 'the server goes on');
});

await test('a model without a chat template: a clear 400', async () => {
  const s2 = await start(STORIES);
  try {
    const e = await expect400(() => client(s2).chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }), 'messages');
    assert(/chat template/.test(e.message), e.message);
  } finally { await stop(s2); }
});

await test('top log-probabilities agree with the session API\'s cloud for the same prefix', async () => {
  const settings = { granularity: 'token', k: 5, beam_width: 5, lookahead: 0, fork_entropy_bits: 0.0001, fork_top1_below: 0,
                     min_gap_tokens: 0, max_forks_per_sentence: 0, repeat_penalty: 1, max_tokens: 20 };
  const st = (await post(srv, '/api/sessions', { prompt: PROMPT, settings })).json;
  const fork = st.fork;
  assert(fork && fork.candidates.length === 5, `a fork with 5 candidates: ${JSON.stringify(st).slice(0, 300)}`);
  const prefix = st.text.slice(0, fork.text_offset);
  const r = await post(srv, '/completion', { prompt: prefix, n_predict: 1, n_probs: 5 });
  const top = r.json.completion_probabilities[0].top_logprobs;
  assert(close(Math.exp(top[0].logprob), fork.uncertainty.top1, 1e-4), `top1 ${Math.exp(top[0].logprob)} vs ${fork.uncertainty.top1}`);
  for (const c of fork.candidates) {
    const t = top.find((x) => x.token === c.text);
    assert(t && close(Math.exp(t.logprob), c.prob, 1e-4), `candidate ${JSON.stringify(c.text)} ${c.prob} vs ${t && Math.exp(t.logprob)}`);
  }
  const o = await oa.completions.create({ model: 'x', prompt: prefix, max_tokens: 1, logprobs: 5 });
  const d = o.choices[0].logprobs.top_logprobs[0];
  for (const c of fork.candidates) assert(close(Math.exp(d[c.text]), c.prob, 1e-4), `OpenAI ${c.text}`);
});

await test('mikupad\'s /completion shape: stream, n_probs 10, post_sampling_probs, every sampler at its default', async () => {
  const body = { prompt: PROMPT, n_predict: 8, n_probs: 10, post_sampling_probs: true, stream: true, cache_prompt: true,
    temperature: 0.7, dynatemp_range: 0, dynatemp_exponent: 1, top_k: 40, top_p: 0.95, min_p: 0.05, typical_p: 1, tfs_z: 1,
    repeat_penalty: 1.1, repeat_last_n: 256, penalize_nl: false, presence_penalty: 0, frequency_penalty: 0, mirostat: 0,
    mirostat_tau: 5, mirostat_eta: 0.1, dry_multiplier: 0, dry_base: 1.75, dry_allowed_length: 2, dry_penalty_last_n: -1,
    dry_sequence_breakers: ['\n', ':'], xtc_probability: 0, xtc_threshold: 0.1, seed: -1, stop: [], ignore_eos: false };
  const t0 = Date.now();
  const r = await post(srv, '/completion', body);
  /* the stream ends with the connection, not with civetweb's 5 s keep-alive timeout */
  assert(Date.now() - t0 < 4000, `the stream took ${Date.now() - t0} ms to end`);
  assert(r.status === 200 && /text\/event-stream/.test(r.headers.get('content-type')), `status ${r.status} ${r.text.slice(0, 200)}`);
  const ev = sseEvents(r.text).map((e) => JSON.parse(e));
  const toks = ev.filter((e) => !e.stop), last = ev[ev.length - 1];
  assert(toks.length === 8 && last.stop === true && last.tokens_predicted === 8, `${toks.length} token events`);
  for (const e of toks) {
    const p = e.completion_probabilities[0];
    assert(p.top_probs.length >= 1 && p.top_probs.length <= 10 && p.top_probs.every((x) => x.prob >= 0 && x.prob <= 1), 'top_probs are probabilities');
    const sum = p.top_probs.reduce((s, x) => s + x.prob, 0);
    assert(sum <= 1 + 1e-4, 'post-sampling probabilities sum to at most 1');
    assert(p.top_probs.some((x) => x.id === p.id), 'the sampled token survived the samplers');
  }
  assert(!r.text.includes('[DONE]'), 'llama.cpp streams end without [DONE]');
});

await test('LLooM\'s /completion shape: n_predict 1, n_probs 10, pre-sampling log-probabilities', async () => {
  const r = await post(srv, '/completion', { prompt: PROMPT, n_predict: 1, n_probs: 10, temperature: 0.8, cache_prompt: true });
  const p = r.json.completion_probabilities;
  assert(r.status === 200 && p.length === 1 && p[0].top_logprobs.length === 10, JSON.stringify(r.json).slice(0, 300));
  const lp = p[0].top_logprobs.map((x) => x.logprob);
  assert(lp.every((v, i) => i === 0 || v <= lp[i - 1]), 'sorted');
  assert(typeof r.json.content === 'string' && r.json.stop === true, 'content and stop');
});

await test('SillyTavern\'s text-completion bag of fields: 400 naming one, accepted with --lenient-fields', async () => {
  /* what SillyTavern's getTextGenGenerationData sends for llama.cpp: every back end's names at once */
  const body = { prompt: PROMPT, max_new_tokens: 6, max_tokens: 6, n_predict: 6, logprobs: 10, n_probs: 10, temperature: 0.7,
    top_p: 0.9, typical_p: 1, typical: 1, sampler_seed: -1, seed: -1, min_p: 0, repetition_penalty: 1.1, repeat_penalty: 1.1,
    frequency_penalty: 0, presence_penalty: 0, top_k: 40, min_tokens: 0, length_penalty: 1, early_stopping: false,
    add_bos_token: true, dynamic_temperature: false, dynatemp_low: 1, dynatemp_high: 1, dynatemp_range: 0, dynatemp_exponent: 1,
    smoothing_factor: 0, stopping_strings: ['\nYou:'], stop: ['\nYou:'], truncation_length: 4096, ban_eos_token: false,
    skip_special_tokens: true, top_a: 0, tfs: 1, tfs_z: 1, mirostat_mode: 0, mirostat: 0, mirostat_tau: 5, mirostat_eta: 0.1,
    custom_token_bans: '', api_type: 'llamacpp', api_server: 'http://127.0.0.1:8080', rep_pen: 1.1, rep_pen_range: 0,
    repetition_penalty_range: 0, repeat_last_n: 0, guidance_scale: 1, negative_prompt: '', grammar_string: '', grammar: '',
    ignore_eos: false, logit_bias: [], cache_prompt: true, stream: false };
  const strict = await post(srv, '/completion', body);
  assert(strict.status === 400 && strict.json.error.param === 'max_new_tokens', `strict: ${strict.status} ${strict.text.slice(0, 200)}`);
  const s2 = await start(STORIES, ['--lenient-fields']);
  try {
    const r = await post(s2, '/completion', body);
    assert(r.status === 200 && r.json.tokens_predicted <= 6 && r.json.completion_probabilities[0].top_logprobs.length === 10,
           `lenient: ${r.status} ${r.text.slice(0, 300)}`);
    /* fields it knows are still checked */
    const bad = await post(s2, '/completion', { ...body, frequency_penalty: 0.3 });
    assert(bad.status === 400 && bad.json.error.param === 'frequency_penalty', `a known sampler it lacks: ${bad.status}`);
  } finally { await stop(s2); }
});

await test('/tokenize and /detokenize round trips (with pieces, Unicode, control text)', async () => {
  for (const s of ['Once upon a time', ' leading space', 'café ☕ naïve 日本', 'a\nb\tc', '']) {
    const t = await post(srv, '/tokenize', { content: s, add_special: false });
    assert(t.status === 200, t.text);
    const d = await post(srv, '/detokenize', { tokens: t.json.tokens });
    assert(d.json.content === s, `${JSON.stringify(s)} -> ${JSON.stringify(t.json.tokens)} -> ${JSON.stringify(d.json.content)}`);
  }
  const w = await post(srv, '/tokenize', { content: 'Once', with_pieces: true });
  assert(w.json.tokens[0].id === 1 && typeof w.json.tokens[1].piece === 'string', JSON.stringify(w.json));
  const bad = await post(srv, '/detokenize', { tokens: [1, 1e9] });
  assert(bad.status === 400, `out-of-vocabulary token: ${bad.status}`);
  const bad2 = await post(srv, '/tokenize', { text: 'x' });
  assert(bad2.status === 400 && bad2.json.error.param === 'text', 'unknown field named');
});

await test('a client that disconnects mid-stream stops the generation; the server goes on', async () => {
  const ac = new AbortController();
  const r = await fetch(srv.url + '/v1/completions', { method: 'POST', signal: ac.signal, headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: PROMPT, max_tokens: 100000, stream: true, logprobs: 5, temperature: 1 }) });
  const reader = r.body.getReader();
  await reader.read();
  ac.abort();
  const t0 = Date.now();
  const after = await oa.completions.create({ model: 'x', prompt: 'Once', max_tokens: 2 });
  assert(after.choices.length === 1 && Date.now() - t0 < 20000, `next request took ${Date.now() - t0} ms`);
});

await test('a stream whose reader stops reading does not hold the engine', async () => {
  const s2 = await start(STORIES, ['--max-logprobs', '256', '--chat-template', 'chatml']);
  const sock = net.connect(Number(new URL(s2.url).port), '127.0.0.1');
  try {
    await new Promise((res) => sock.once('connect', res));
    const body = JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'Once upon a time' }], stream: true, n: 4,
                                  logprobs: true, top_logprobs: 256, max_tokens: 100000, temperature: 1 });
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${new URL(s2.url).port}\r\nContent-Type: application/json\r\n` +
               `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    sock.pause();   /* never read: the socket buffers fill, then the run's queue */
    await new Promise((r) => setTimeout(r, 4000));
    const t0 = Date.now();
    const r = await post(s2, '/v1/completions', { prompt: 'Once', max_tokens: 4 });
    const ms = Date.now() - t0;
    assert(r.status === 200, `status ${r.status}`);
    assert(ms < 3000, `a request behind a stalled stream waited ${ms} ms`);
    console.log(`# stalled reader: another request served in ${ms} ms`);
  } finally { sock.destroy(); await stop(s2); }
});

await test('cross-origin requests are refused; --cors-origin lets one origin in', async () => {
  const r = await post(srv, '/v1/completions', { prompt: 'a', max_tokens: 1 }, { Origin: 'http://evil.example' });
  assert(r.status === 403, `status ${r.status}`);
  const s2 = await start(STORIES, ['--cors-origin', 'null']);
  try {
    const ok = await post(s2, '/completion', { prompt: 'a', n_predict: 1 }, { Origin: 'null' });
    assert(ok.status === 200 && ok.headers.get('access-control-allow-origin') === 'null', `allowed ${ok.status}`);
    const no = await post(s2, '/completion', { prompt: 'a', n_predict: 1 }, { Origin: 'http://evil.example' });
    assert(no.status === 403, 'another origin still refused');
    const api = await post(s2, '/api/sessions', { prompt: 'a' }, { Origin: 'null' });
    assert(api.status === 403, 'the session API keeps its own rule');
  } finally { await stop(s2); }
});

await test('with --token the client\'s Authorization: Bearer is required', async () => {
  const s2 = await start(STORIES, ['--token', 'sekrit']);
  try {
    const ok = await client(s2, 'sekrit').completions.create({ model: 'x', prompt: 'a', max_tokens: 1 });
    assert(ok.choices.length === 1, 'with the token');
    try { await client(s2, 'wrong').models.list(); throw new Error('no error'); }
    catch (e) { assert(e.status === 401, `status ${e.status}`); }
  } finally { await stop(s2); }
});

await stop(srv);

/* ------------------------------------------------------------ Phi-3 template */

await test('chat through the model\'s own template (random-weight Phi-3 model)', async () => {
  if (!fs.existsSync(PHI3)) {
    assert(fs.existsSync(GEN), `bench/gen_model is not built (make ${GEN})`);
    fs.mkdirSync(path.dirname(PHI3), { recursive: true });
    execFileSync(GEN, ['--vocab', path.join(MODELS, 'vocab-only/ggml-vocab-phi-3.gguf'), '--out', PHI3, '--threads', '1'], { stdio: 'ignore' });
  }
  const s = await start(PHI3, ['--ctx', '512', '--seq-max', '4']);
  try {
    const c = client(s);
    const r = await c.chat.completions.create({ model: 'phi3', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 3, logprobs: true, top_logprobs: 5, temperature: 0 });
    assert(r.choices[0].logprobs.content.length === r.usage.completion_tokens, 'logprobs per token');
    /* the rendered prompt is Phi-3's: <|user|>\nHello<|end|>\n<|assistant|>\n */
    const t = await post(s, '/tokenize', { content: '<|user|>\nHello<|end|>\n<|assistant|>\n', add_special: true });
    assert(r.usage.prompt_tokens === t.json.tokens.length, `prompt tokens ${r.usage.prompt_tokens} vs ${t.json.tokens.length}`);
    assert(t.json.tokens.includes(32010) && t.json.tokens.includes(32007), `control tokens parsed: ${t.json.tokens}`);

    /* a client that goes away mid-stream stops the generation: on this
     * model a token takes tens of milliseconds, so 400 more tokens would
     * hold the engine for many seconds; the next request is served at once */
    const one = Date.now();
    await post(s, '/completion', { prompt: 'Hello', n_predict: 4, ignore_eos: true });
    const per = (Date.now() - one) / 4;
    const ac = new AbortController();
    const r2 = await fetch(s.url + '/completion', { method: 'POST', signal: ac.signal, headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'Hello', n_predict: 400, ignore_eos: true, stream: true, n_probs: 5 }) });
    await r2.body.getReader().read();
    ac.abort();
    const t0 = Date.now();
    const after = await post(s, '/completion', { prompt: 'Hello', n_predict: 1 });
    const waited = Date.now() - t0;
    assert(after.status === 200, `status ${after.status}`);
    assert(waited < Math.max(3000, 40 * per), `the next request waited ${waited} ms (a token takes ${per.toFixed(0)} ms): the stream went on`);
    console.log(`# disconnect: next request after ${waited} ms; one token ${per.toFixed(0)} ms, 400 would take ${(400 * per / 1000).toFixed(1)} s`);

    /* a long completion does not hold the engine: it yields every few
     * tokens, so a request that comes in meanwhile is served while it runs */
    const ac2 = new AbortController();
    const r3 = await fetch(s.url + '/v1/completions', { method: 'POST', signal: ac2.signal, headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: [1, 15043], max_tokens: 300, stream: true, echo: true }) });
    const rd = r3.body.getReader();
    await rd.read();
    const t1 = Date.now();
    const mid = await post(s, '/v1/completions', { prompt: 'Hello', max_tokens: 2 });
    const midMs = Date.now() - t1;
    let more = 0;
    for (;;) { const { done, value } = await rd.read(); if (done) break; more += new TextDecoder().decode(value).split('data: ').length - 1; if (more > 5) break; }
    ac2.abort();
    assert(mid.status === 200 && more > 5, `served ${mid.status}; the long stream went on (${more} events)`);
    assert(midMs < Math.max(4000, 40 * per), `a request during a long completion waited ${midMs} ms (a token takes ${per.toFixed(0)} ms)`);
    console.log(`# fairness: a request during a 300-token stream was served in ${midMs} ms`);
  } finally { await stop(s); }
});

fs.rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
