// profile_test.mjs — the profile view (web/profile.js) in Debian's
// chromium: the "Profile" button is in the tool bar, its dialog draws what
// the server's --profile learned from real decisions (an SVG plot with both
// curves, the counts, the words), and Reset forgets it (after asking once
// more), which the server confirms.
// Prints "ok - ..." lines and "N passed, N failed".
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { SERVE, CHROMIUM, repo, chromeArgs, assert, harness, startServer as serve, tmpDir } from './lib.mjs';

const tmp = tmpDir('fp-profile-');
const { test, run } = harness();
const startServer = (extra, db) => serve({ dir: tmp, extra, db, clearToken: true });

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
    args: chromeArgs(),
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

await run(main, async () => {
  if (ctx) await ctx.close().catch(() => {});
  for (const k of kids) k.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
}, 'setup');
