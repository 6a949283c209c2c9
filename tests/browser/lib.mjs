// lib.mjs — what every browser test shares: where forkpoint-serve, the
// CLI, ws_client, the model and chromium are; the chromium flags; the
// "ok - / not ok -" harness with its final "N passed, N failed" line; a real
// forkpoint-serve on a free loopback port; and the helpers that read a
// session's state from the server and wait for the page to show a change.
//
// Why one file: each test used to carry its own copy of these, and copies
// drift (one test's server waited for another line, one test's harness
// printed another count). Written once here, a test says only what it tests.
//
// Environment: FORKPOINT_SERVE (default build/release/forkpoint-serve, else
// build/asan/forkpoint-serve), FORKPOINT_CLI, FORKPOINT_MODEL (else
// $FP_TEST_MODELS/stories260K.gguf, else ../shared/models/stories260K.gguf),
// CHROMIUM (default /usr/bin/chromium), ONLY (a regular expression: run only
// the tests whose name matches, while debugging).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
/* The first of the candidate paths that exists (undefined when none does). */
export const pick = (...c) => c.find((p) => p && fs.existsSync(p));
export const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/release/forkpoint-serve`,
  `${repo}/build/asan/forkpoint-serve`);
export const CLI = pick(process.env.FORKPOINT_CLI, `${repo}/build/release/forkpoint`, `${repo}/build/asan/forkpoint`);
export const WS_CLIENT = pick(`${repo}/build/release/ws_client`, `${repo}/build/asan/ws_client`);
export const MODEL = pick(process.env.FORKPOINT_MODEL,
  process.env.FP_TEST_MODELS && path.join(process.env.FP_TEST_MODELS, 'stories260K.gguf'),
  path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const OUT = path.join(repo, 'build/test-output');

/* The flags every test gives Debian's chromium (headless, no sandbox in a
 * container, nothing fetched from the network on its own), plus extra. */
export const chromeArgs = (...extra) => ['--headless', '--no-sandbox', '--disable-gpu',
  '--disable-background-networking', '--disable-component-update', '--no-first-run', ...extra];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export function assert(c, m) { if (!c) throw new Error(m); }
export function eq(a, b, m) {
  const sa = JSON.stringify(a), sb = JSON.stringify(b);
  if (sa !== sb) throw new Error(`${m}: ${sa.slice(0, 200)} != ${sb.slice(0, 200)}`);
}

/* axe-core on the page as it is: prints "# axe NAME: ..." and throws on
 * any violation (issue 11: no violation of any impact on every view);
 * shot saves build/test-output/view-NAME.png first. */
let AXE = null;
export async function axe(page, name, shot) {
  if (!AXE) AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  if (shot) await page.screenshot({ path: path.join(OUT, `view-${name}.png`) });
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document, { resultTypes: ['violations'] });
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, n: v.nodes.length, t: v.nodes[0] && v.nodes[0].target.join(' ') }));
  });
  const by = (i) => r.filter((v) => v.impact === i).reduce((a, v) => a + v.n, 0);
  console.log(`# axe ${name}: ${r.length} rules violated; nodes: critical ${by('critical')}, serious ${by('serious')}, moderate ${by('moderate')}, minor ${by('minor')}` +
    (r.length ? ` (${r.map((v) => `${v.id}:${v.impact}:${v.n}`).join(', ')})` : ''));
  assert(!r.length, `${name}: ${r.map((v) => `${v.id} (${v.impact}, ${v.n} nodes, e.g. ${v.t})`).join('; ')}`);
}

/* Rests the mouse on sel (after a move away) until done() holds (the
 * page's dwell must be on); then moves away and waits out the cooldown. */
export async function dwell(page, sel, done, what) {
  await page.mouse.move(2, 400);
  await sleep(120);
  const loc = page.locator(sel).first();
  await loc.waitFor({ state: 'visible', timeout: 10000 }).catch(() => { throw new Error(`${what || sel} not visible`); });
  const b = await loc.boundingBox();
  assert(b, `${what || sel}: no box`);
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 3 });
  const t0 = Date.now();
  for (;;) {
    if (await done()) break;
    if (Date.now() - t0 > 8000) throw new Error(`dwell on ${what || sel} did nothing`);
    await sleep(60);
  }
  await page.mouse.move(2, 400);
  await sleep(250); // the cooldown
}

/* A fresh temporary directory (the test removes it at the end). */
export const tmpDir = (prefix) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/* The harness: test(name, fn) runs fn, prints "ok - name" or "not ok -
 * name: why" and, when opts.page() gives a page, saves its screenshot as
 * build/test-output/<opts.shot>-N.png; finish(err, what) prints "not ok -
 * what: err" when err is given (one more failure) and the final count, and
 * returns the exit code; run(main, cleanup, what) does both around main. */
export function harness(opts = {}) {
  const h = { passed: 0, failed: 0 };
  if (opts.shot) fs.mkdirSync(OUT, { recursive: true });
  h.test = async (name, fn) => {
    if (process.env.ONLY && !new RegExp(process.env.ONLY).test(name)) return;
    try { await fn(); h.passed++; console.log(`ok - ${name}`); } catch (e) {
      h.failed++;
      console.log(`not ok - ${name}: ${(e && e.message || String(e)).split('\n')[0]}`);
      const page = opts.shot && opts.page && opts.page();
      if (page) try { await page.screenshot({ path: path.join(OUT, `${opts.shot}-${h.passed + h.failed}.png`) }); } catch (e2) { /* no page */ }
    }
  };
  h.finish = (err, what = 'harness') => {
    if (err) { h.failed++; console.log(`not ok - ${what}: ${err && err.message || err}`); }
    console.log(`${h.passed} passed, ${h.failed} failed`);
    return h.failed ? 1 : 0;
  };
  /* Runs the test's main(), then cleanup() (errors there are ignored: what
   * it stops may be gone already), prints the count and exits. */
  h.run = async (main, cleanup, what) => {
    let err = null;
    try { await main(); } catch (e) { err = e; }
    try { if (cleanup) await cleanup(); } catch (e) { /* already gone */ }
    process.exit(h.finish(err, what));
  };
  return h;
}

/* Starts forkpoint-serve on a free loopback port with the test model, the
 * database `db` in dir and the extra flags (model: another model file); clearToken starts it without a
 * FORKPOINT_TOKEN from the environment. Resolves to { child, url, port,
 * err() } once the server prints its URL; rejects when it exits first or
 * takes more than two minutes. */
export function startServer({ dir, extra = [], db = 'fp.db', clearToken = false, model = MODEL } = {}) {
  const args = ['--port', '0', '--db', path.join(dir, db), '--quiet', '--threads', '1', ...extra];
  if (model) args.push('--model', model);
  const env = { ...process.env };
  if (clearToken) delete env.FORKPOINT_TOKEN;
  const child = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 120000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(t); resolve({ child, url: m[1], port: Number(/:(\d+)\//.exec(m[1])[1]), err: () => err }); }
    });
    child.on('exit', (c) => { clearTimeout(t); reject(new Error(`server exited ${c}: ${err}`)); });
  });
}

/* The story helpers of a test whose page and server may be replaced as it
 * runs (getPage(), getSrv()): api(path, fetchOpts) -> JSON, sid() the
 * page's story id, state() the server's view of it, and waitChange(v):
 * waits until the server's version differs from v and the page shows it
 * (or, with blankOk, the page shows no version), then `settle` ms more. */
export function storyHelpers(getPage, getSrv, { settle = 100, poll = 100, blankOk = false } = {}) {
  const api = async (p, opt) => (await fetch(getSrv().url + p.replace(/^\//, ''), opt)).json();
  const sid = () => getPage().evaluate(() => (location.hash.match(/s=([0-9a-f]{16})/) || [])[1]);
  const state = async () => api(`/api/sessions/${await sid()}`);
  async function waitChange(v, timeout = 60000) {
    const t0 = Date.now();
    for (;;) {
      const st = await state();
      if (st.version !== v) {
        await getPage().waitForFunction(([ver, blank]) => {
          const d = document.getElementById('story').dataset.version;
          return d === String(ver) || (blank && !d);
        }, [st.version, blankOk], { timeout: 10000 }).catch(() => {});
        await sleep(settle);
        return st;
      }
      if (Date.now() - t0 > timeout) throw new Error('no state change');
      await sleep(poll);
    }
  }
  return { api, sid, state, waitChange };
}
