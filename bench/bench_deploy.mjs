// bench_deploy.mjs — what sharing one PostgreSQL behind nginx costs and
// buys, measured in one run: the API load of issue 13 (each client creates
// a story, then makes N choices with no pause) against
//
//   sqlite:  one forkpoint-serve on its SQLite file (the default),
//   pg-1:    one forkpoint-serve on PostgreSQL (the store's cost alone),
//   pg-3:    three forkpoint-serve on PostgreSQL behind nginx
//            (examples/deploy/nginx.conf).
//
// Prints choices/s and choose p50/p95/p99 per layout and client count, and
// the ratios to sqlite of the same run (the machine is shared and noisy:
// compare within a run). Nothing asserts a time.
//
// Run by bench/deploy_bench.sh (which starts the PostgreSQL):
//   FP_DEPLOY_PG=postgresql://... node bench/bench_deploy.mjs [--clients 1,4,16] [--choices 20]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNginx } from '../tests/deploy/nginx.mjs';
import { SERVE, MODEL, arg, sleep, kids, freePort, start, stopAll, post, q } from './bench_lib.mjs';

const PG = process.env.FP_DEPLOY_PG;
const CLIENTS = arg('--clients', '1,4,16').split(',').map(Number);
const CHOICES = Number(arg('--choices', '20'));
const LIGHT = { k: 4, beam_width: 8, lookahead: 4 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-bench-deploy-'));

async function serve(port, db, publicHost) {
  const args = ['--port', String(port), '--db', db, '--quiet', '--threads', '1', '--model', MODEL];
  if (publicHost) args.push('--public-host', publicHost);
  return start(SERVE, args, /listening on/);
}

async function nginx(listen, ports) {
  const ng = startNginx(path.join(tmp, 'nginx'), listen, ports.map((p) => `127.0.0.1:${p}`));
  kids.push(ng.child);
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    try { if ((await fetch(`http://${listen}/api/health`)).status === 200) return ng.child; } catch { /* not yet */ }
  }
  throw new Error(`nginx did not come up: ${ng.stderr}`);
}

/* One client: a story, then CHOICES choices as fast as answers come. */
async function client(base, i, lat) {
  let st = (await post(base, 'api/sessions', { prompt: `Once upon a time, client ${i} saw a`, settings: LIGHT })).json;
  let made = 0;
  for (let k = 0; k < CHOICES && st.fork; k++) {
    const t0 = performance.now();
    const r = await post(base, `api/sessions/${st.id}/choose`, { index: k % 2, fork_id: st.fork.id });
    lat.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`choose: ${r.status} ${JSON.stringify(r.json)}`);
    st = r.json;
    made++;
  }
  return made;
}

async function load(base, n) {
  const lat = [];
  const t0 = performance.now();
  const made = (await Promise.all(Array.from({ length: n }, (_, i) => client(base, i, lat)))).reduce((a, b) => a + b, 0);
  const s = (performance.now() - t0) / 1000;
  return { cps: made / s, p50: q(lat, 0.5), p95: q(lat, 0.95), p99: q(lat, 0.99) };
}

async function main() {
  if (!PG || !SERVE || !MODEL) throw new Error('needs FP_DEPLOY_PG, build/release/forkpoint-serve and the models');
  console.log(`# load average before: ${os.loadavg()[0].toFixed(2)}`);
  const rows = {};
  // sqlite: one server on a file
  {
    const p = await freePort();
    const k = await serve(p, path.join(tmp, 'bench.db'));
    rows.sqlite = {};
    for (const n of CLIENTS) rows.sqlite[n] = await load(`http://127.0.0.1:${p}/`, n);
    k.kill('SIGTERM');
  }
  // pg-1: one server on PostgreSQL
  {
    const p = await freePort();
    const k = await serve(p, PG);
    rows['pg-1'] = {};
    for (const n of CLIENTS) rows['pg-1'][n] = await load(`http://127.0.0.1:${p}/`, n);
    k.kill('SIGTERM');
  }
  // pg-3: three servers behind nginx
  {
    const np = await freePort();
    const ports = [await freePort(), await freePort(), await freePort()];
    const ks = await Promise.all(ports.map((p) => serve(p, PG, `127.0.0.1:${np}`)));
    const ng = await nginx(`127.0.0.1:${np}`, ports);
    rows['pg-3'] = {};
    for (const n of CLIENTS) rows['pg-3'][n] = await load(`http://127.0.0.1:${np}/`, n);
    ks.forEach((k) => k.kill('SIGTERM'));
    ng.kill('SIGQUIT');
  }
  console.log(`# load average after: ${os.loadavg()[0].toFixed(2)}`);
  console.log(`# ${CHOICES} choices per client, stories260K, release build, --threads 1 per server, ${os.cpus().length} cores`);
  console.log('| layout | clients | choices/s | choose p50 / p95 / p99 (ms) | choices/s vs sqlite | p50 vs sqlite |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, r] of Object.entries(rows)) {
    for (const n of CLIENTS) {
      const x = r[n], b = rows.sqlite[n];
      console.log(`| ${name} | ${n} | ${x.cps.toFixed(1)} | ${x.p50.toFixed(0)} / ${x.p95.toFixed(0)} / ${x.p99.toFixed(0)} | ${(x.cps / b.cps).toFixed(2)} | ${(x.p50 / b.p50).toFixed(2)} |`);
    }
  }
}

try {
  await main();
} finally {
  // SIGTERM, not SIGKILL: nginx's master ends its workers only when asked
  await stopAll();
  fs.rmSync(tmp, { recursive: true, force: true });
}
