// bench_batch.mjs — what cross-session batching buys one server, measured
// in one run: the API load of issue 13 (each client creates a story, then
// makes N choices with no pause) on one forkpoint-serve with batching (the
// default, --batch-sessions 16) and on one with --no-batching, the two
// servers taking turns for each client count and repeat, so that both see
// the same machine. Then, at 16 clients with 1 s of think time per choice,
// the share of choices answered from a prefetched outcome.
//
// Prints, per mode and client count, the median over the repeats of
// choices/s, choose p50/p95/p99 and session creation p50/max (ms), and the
// ratios batched / unbatched of the same run (the machine is shared and
// noisy: compare within a run). Nothing asserts a time.
//
//   node bench/bench_batch.mjs [--clients 1,4,16,64] [--choices 20] [--repeats 3]
//                              [--think-clients 16] [--think-ms 1000] [--think-choices 10]
//                              [--think-only]   (only the think-time phase)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SERVE, MODEL, arg, sleep, freePort, start, stopAll, post, q } from './bench_lib.mjs';

const CLIENTS = arg('--clients', '1,4,16,64').split(',').map(Number);
const CHOICES = Number(arg('--choices', '20'));
const REPEATS = Number(arg('--repeats', '3'));
const THINK_CLIENTS = Number(arg('--think-clients', '16'));
const THINK_MS = Number(arg('--think-ms', '1000'));
const THINK_CHOICES = Number(arg('--think-choices', '10'));
const THINK_ONLY = process.argv.includes('--think-only');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-bench-batch-'));

async function serve(flags) {
  const port = await freePort();
  const db = path.join(tmp, `${flags.join('') || 'batched'}-${port}.db`);
  await start(SERVE, ['--port', String(port), '--db', db, '--quiet', '--threads', '1', '--model', MODEL, ...flags], /listening on/);
  return `http://127.0.0.1:${port}/`;
}

/* One client: a story, then n choices, think ms (+-30%) before each. */
async function client(base, i, n, think, out) {
  const t0 = performance.now();
  const cr = await post(base, 'api/sessions', { prompt: `Once upon a time, client ${i} saw a` });
  out.create.push(performance.now() - t0);
  if (cr.status !== 201) throw new Error(`create: ${cr.status} ${JSON.stringify(cr.json)}`);
  let st = cr.json;
  let made = 0;
  for (let k = 0; k < n && st.fork; k++) {
    if (think) await sleep(think * (0.7 + 0.6 * ((i * 7 + k * 13) % 10) / 10));
    const t1 = performance.now();
    let r;
    for (let tries = 0; ; tries++) {
      r = await post(base, `api/sessions/${st.id}/choose`, { index: k % 3 === 2 ? 1 : 0, fork_id: st.fork.id });
      // "server at capacity" (503): a real client retries, as the page does
      if (r.status !== 503 || tries === 5) break;
      out.refused++;
      await sleep(50);
    }
    out.choose.push(performance.now() - t1);
    if (r.status !== 200) throw new Error(`choose: ${r.status} ${JSON.stringify(r.json)}`);
    if (r.json.last_prefetched) out.hits++;
    st = r.json;
    made++;
  }
  return made;
}

async function load(base, n, choices = CHOICES, think = 0) {
  const out = { create: [], choose: [], hits: 0, refused: 0 };
  const t0 = performance.now();
  const made = (await Promise.all(Array.from({ length: n }, (_, i) => client(base, i, choices, think, out)))).reduce((a, b) => a + b, 0);
  const s = (performance.now() - t0) / 1000;
  return {
    cps: made / s, p50: q(out.choose, 0.5), p95: q(out.choose, 0.95), p99: q(out.choose, 0.99),
    c50: q(out.create, 0.5), cmax: Math.max(...out.create), hit: made ? out.hits / made : 0, refused: out.refused,
  };
}

const med = (rs, key) => q(rs.map((r) => r[key]), 0.5);

async function main() {
  if (!SERVE || !MODEL) throw new Error('needs build/release/forkpoint-serve and ../shared/models/stories260K.gguf');
  console.log(`# load average before: ${os.loadavg()[0].toFixed(2)}`);
  const modes = { batched: await serve([]), unbatched: await serve(['--no-batching']) };
  const rows = { batched: {}, unbatched: {} };
  for (const n of THINK_ONLY ? [] : CLIENTS) {
    for (const m of Object.keys(rows)) rows[m][n] = [];
    for (let r = 0; r < REPEATS; r++)
      for (const m of Object.keys(rows)) rows[m][n].push(await load(modes[m], n));
  }
  const think = {};
  for (const m of Object.keys(rows)) think[m] = await load(modes[m], THINK_CLIENTS, THINK_CHOICES, THINK_MS);
  console.log(`# load average after: ${os.loadavg()[0].toFixed(2)}`);
  console.log(`# ${CHOICES} choices per client, no pause; median of ${REPEATS}; stories260K, release build, --threads 1, default settings, ${os.cpus().length} cores`);
  console.log('| mode | clients | choices/s | choose p50 / p95 / p99 (ms) | create p50 / max (ms) |');
  console.log('|---|---|---|---|---|');
  for (const m of Object.keys(rows))
    for (const n of THINK_ONLY ? [] : CLIENTS) {
      const rs = rows[m][n];
      console.log(`| ${m} | ${n} | ${med(rs, 'cps').toFixed(1)} | ${med(rs, 'p50').toFixed(0)} / ${med(rs, 'p95').toFixed(0)} / ${med(rs, 'p99').toFixed(0)} | ${med(rs, 'c50').toFixed(0)} / ${med(rs, 'cmax').toFixed(0)} |`);
    }
  console.log('| ratio batched / unbatched | clients | choices/s | choose p99 | create max |');
  console.log('|---|---|---|---|---|');
  for (const n of THINK_ONLY ? [] : CLIENTS) {
    const b = rows.batched[n], u = rows.unbatched[n];
    console.log(`| | ${n} | ${(med(b, 'cps') / med(u, 'cps')).toFixed(2)} | ${(med(b, 'p99') / med(u, 'p99')).toFixed(2)} | ${(med(b, 'cmax') / med(u, 'cmax')).toFixed(2)} |`);
  }
  console.log(`# ${THINK_CLIENTS} clients, ${THINK_CHOICES} choices each after ${THINK_MS} ms (+-30%) of thought:`);
  for (const m of Object.keys(think))
    console.log(`#   ${m}: prefetch hits ${(100 * think[m].hit).toFixed(0)}%, choose p50 ${think[m].p50.toFixed(0)} ms, p99 ${think[m].p99.toFixed(0)} ms`);
  const refused = Object.values(rows).flatMap((r) => Object.values(r).flat()).concat(Object.values(think)).reduce((a, r) => a + r.refused, 0);
  console.log(`# choices refused with 503 "server at capacity" and retried: ${refused}`);
}

try {
  await main();
} finally {
  await stopAll();
  fs.rmSync(tmp, { recursive: true, force: true });
}
