// profile_test.mjs — the profile view (web/profile.js) in Debian's
// chromium: the "Profile" button is in the tool bar, its dialog draws what
// the server's --profile learned from real decisions (an SVG plot with both
// curves, the counts, the words), and Reset forgets it (after asking once
// more), which the server confirms.
// Prints "ok - ..." lines and "N passed, N failed".
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const pick = (...c) => c.find((p) => p && fs.existsSync(p));
const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/release/forkpoint-serve`, `${repo}/build/asan/forkpoint-serve`);
const MODEL = pick(process.env.FORKPOINT_MODEL,
  process.env.FP_TEST_MODELS && path.join(process.env.FP_TEST_MODELS, 'stories260K.gguf'),
  path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-profile-'));

let passed = 0, failed = 0;
function assert(c, m) { if (!c) throw new Error(m); }
async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); } catch (e) {
    failed++; console.log(`not ok - ${name}: ${(e && e.message || String(e)).split('\n')[0]}`);
  }
}

function startServer(extra, db) {
  const args = ['--port', '0', '--db', path.join(tmp, db), '--quiet', '--threads', '1', ...extra];
  if (MODEL) args.push('--model', MODEL);
  const env = { ...process.env };
  delete env.FORKPOINT_TOKEN;
  const child = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 120000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(t); resolve({ child, url: m[1], port: Number(/:(\d+)\//.exec(m[1])[1]) }); }
    });
    child.on('exit', (c) => { clearTimeout(t); reject(new Error(`server exited ${c}: ${err}`)); });
  });
}


async function api(srv, method, p, body) {
  const r = await fetch(srv.url + p.replace(/^\//, ''), { method, headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined });
  return { status: r.status, json: await r.json().catch(() => null) };
}

let ctx;
const kids = [];
async function main() {
  console.log(`# server ${SERVE}\n# chromium ${CHROMIUM}`);
  const srv = await startServer(['--profile', 'pat'], 'p.db');
  kids.push(srv.child);
  // a few real decisions, so there is something learned to show
  const LIGHT = { k: 4, beam_width: 8, lookahead: 3 };
  let st = (await api(srv, 'POST', '/api/sessions', { prompt: 'Once upon a time', settings: LIGHT })).json;
  for (let i = 0; i < 12 && st && st.fork; i++) {
    st = (await api(srv, 'POST', `/api/sessions/${st.id}/choose`, { index: st.fork.candidates.length - 1 })).json;
  }
  const learned = (await api(srv, 'GET', '/api/profile')).json;
  ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, 'chrome-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(30000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  await test('the Profile button sits in the tool bar', async () => {
    await page.goto(srv.url);
    await page.waitForSelector('#btn-profile');
    assert(await page.$eval('#btn-profile', (b) => !!b.closest('[data-fp="toolbar"], nav.tools')), 'in the tool bar');
  });

  await test('its dialog plots what was learned from the decisions', async () => {
    assert(learned && learned.decisions >= 1, `decisions learned: ${JSON.stringify(learned).slice(0, 120)}`);
    await page.click('#btn-profile');
    await page.waitForSelector('#profile-dialog[open] svg[data-fp="profile-plot"]');
    const n = await page.$$eval('svg[data-fp="profile-plot"] polyline', (l) => l.map((e) => e.getAttribute('data-series')));
    assert(n.includes('agreement') && n.includes('interventions'), `both curves: ${n}`);
    const summary = await page.textContent('[data-fp="profile-summary"]');
    assert(summary.includes(`${learned.decisions} decisions learned`) && /Decided automatically: \d+, undone by you: \d+/.test(summary), summary);
    const words = await page.$$eval('#profile-dialog li', (l) => l.length);
    assert(words >= 2, `words and features listed (${words})`);
    await page.screenshot({ path: path.join(repo, 'build/test-output/profile.png') });
  });

  await test('Reset asks once more, then the server forgets the profile', async () => {
    await page.click('[data-fp="profile-reset"]');
    assert(/Really/.test(await page.textContent('[data-fp="profile-reset"]')), 'asks again');
    assert((await api(srv, 'GET', '/api/profile')).json.decisions === learned.decisions, 'nothing reset yet');
    await page.click('[data-fp="profile-reset"]');
    await page.waitForFunction(() => /reset/.test(document.querySelector('[data-fp="profile-status"]').textContent));
    const after = (await api(srv, 'GET', '/api/profile')).json;
    assert(after.decisions === 0 && after.curve.length === 0, `reset on the server: ${JSON.stringify(after).slice(0, 120)}`);
    assert(/0 decisions learned/.test(await page.textContent('[data-fp="profile-summary"]')), 'the dialog shows it');
    await page.click('[data-fp="profile-close"]');
    assert(!(await page.$('#profile-dialog[open]')), 'closed');
  });

  await test('no script errors on the page', async () => {
    assert(errors.length === 0, errors.join('; '));
  });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - setup: ${e.message}`);
} finally {
  if (ctx) await ctx.close().catch(() => {});
  for (const k of kids) k.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
