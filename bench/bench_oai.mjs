// bench_oai.mjs — what log-probabilities cost on the compatible API.
//
// llama.cpp users report −23% and −37% tokens/s when asking for n_probs
// (llama.cpp#10977). This measures the same on Forkpoint's /completion,
// in one run, on one server: tokens/s of greedy generation with n_probs 0,
// 20 (the model distribution, a second chain pass), 20 post-sampling, and
// 256; streamed and not. Variants are interleaved round by round so the
// machine's noise falls on all of them; medians and ratios to n_probs 0
// are printed. Nothing is checked against a limit.
//
//   node bench/bench_oai.mjs [--model PATH] [--tokens N] [--rounds R] [--threads T]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const arg = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const MODEL = arg('--model', path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
const TOKENS = Number(arg('--tokens', '200'));
const ROUNDS = Number(arg('--rounds', '5'));
const THREADS = arg('--threads', '1');   // one: ggml's spinning threads stall on a shared machine
const SERVE = `${repo}/build/release/forkpoint-serve`;
if (!fs.existsSync(SERVE)) { console.error(`bench_oai: build ${SERVE} first (make build/release/forkpoint-serve)`); process.exit(1); }

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-bench-oai-'));
const child = spawn(SERVE, ['--port', '0', '--db', path.join(tmp, 'b.db'), '--quiet', '--threads', THREADS, '--model', MODEL,
  '--max-logprobs', '256', '--no-prefetch'], { stdio: ['ignore', 'pipe', 'inherit'] });
/* the server goes with us, however we end */
process.on('exit', () => { if (child.exitCode === null) child.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));
const url = await new Promise((res, rej) => {
  let out = '';
  child.stdout.on('data', (d) => { out += d; const m = /listening on (http:\/\/\S+)/.exec(out); if (m) res(m[1].replace(/\/$/, '')); });
  child.on('exit', (c) => rej(new Error(`server exited ${c}`)));
});

const variants = [
  ['n_probs 0', { n_probs: 0 }],
  ['n_probs 20', { n_probs: 20 }],
  ['n_probs 20 post-sampling', { n_probs: 20, post_sampling_probs: true }],
  ['n_probs 256', { n_probs: 256 }],
  ['n_probs 20 streamed', { n_probs: 20, stream: true }],
];
const prompt = 'Once upon a time, there was a little';
async function run(extra) {
  const t0 = performance.now();
  const r = await fetch(url + '/completion', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, n_predict: TOKENS, ignore_eos: true, temperature: 0, ...extra }) });
  const text = await r.text();
  const ms = performance.now() - t0;
  if (r.status !== 200) throw new Error(`${r.status}: ${text.slice(0, 200)}`);
  const n = extra.stream ? text.split('\n\n').filter((e) => e.startsWith('data: ') && !e.includes('"stop":true')).length
                         : JSON.parse(text).tokens_predicted;
  return { tps: (n / ms) * 1000, bytes: text.length };
}
const load = () => os.loadavg()[0].toFixed(2);
console.log(`bench_oai: ${path.basename(MODEL)}, ${TOKENS} tokens, ${ROUNDS} rounds, ${THREADS} threads; load ${load()}`);
await run({});   // warm-up
const res = variants.map(() => []);
const bytes = variants.map(() => 0);
for (let r = 0; r < ROUNDS; r++)
  for (let v = 0; v < variants.length; v++) { const x = await run(variants[v][1]); res[v].push(x.tps); bytes[v] = x.bytes; }
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const base = median(res[0]);
for (let v = 0; v < variants.length; v++)
  console.log(`  ${variants[v][0].padEnd(26)} ${median(res[v]).toFixed(1).padStart(8)} tok/s  x${(median(res[v]) / base).toFixed(2)}  reply ${(bytes[v] / 1024).toFixed(0)} KiB`);
console.log(`load after: ${load()}`);
child.kill('SIGTERM');
await new Promise((r) => child.on('exit', r));
fs.rmSync(tmp, { recursive: true, force: true });
