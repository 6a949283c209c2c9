// browser_test.mjs — Playwright tests of the Forkpoint page in Debian's chromium.
//
// Why playwright-core and not @playwright/test: it drives the system
// chromium (/usr/bin/chromium) without downloading a browser, which this
// project's machines cannot do. A real forkpoint-serve runs on a free
// loopback port with the real stories260K model; the tests use the page the
// way a person would (mouse, touch, keyboard, dwell) and read the server's
// state through its API to check what the page shows.
//
// Environment: FORKPOINT_SERVE (default build/release/forkpoint-serve),
// FORKPOINT_MODEL, CHROMIUM (default /usr/bin/chromium).
// Prints "ok - name" / "not ok - name: why" and a final "N passed, N failed".
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const pick = (...c) => c.find((p) => p && fs.existsSync(p));
const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/release/forkpoint-serve`,
  `${repo}/build/asan/forkpoint-serve`);
const WS_CLIENT = pick(`${repo}/build/release/ws_client`, `${repo}/build/asan/ws_client`);
const MODEL = pick(process.env.FORKPOINT_MODEL,
  process.env.FP_TEST_MODELS && path.join(process.env.FP_TEST_MODELS, 'stories260K.gguf'),
  path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT = path.join(repo, 'build/test-output');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-browser-'));
fs.mkdirSync(OUT, { recursive: true });

let passed = 0, failed = 0;
function assert(c, m) { if (!c) throw new Error(m); }
function eq(a, b, m) {
  const sa = JSON.stringify(a), sb = JSON.stringify(b);
  if (sa !== sb) throw new Error(`${m}: ${sa.slice(0, 200)} != ${sb.slice(0, 200)}`);
}
async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${(e && e.message || String(e)).split('\n')[0]}`);
    try { await page.screenshot({ path: path.join(OUT, `fail-${passed + failed}.png`) }); } catch (e2) { /* no page */ }
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* ------------------------------------------------------------ server */

function startServer() {
  const args = ['--port', '0', '--db', path.join(tmp, 'fp.db'), '--quiet', '--threads', '1'];
  if (MODEL) args.push('--model', MODEL);
  const child = spawn(SERVE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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

let srv, ctx, page;
const requests = [];   // every request the page made
const pageErrors = [];
const api = async (p, opt) => (await fetch(srv.url + p.replace(/^\//, ''), opt)).json();
const sid = () => page.evaluate(() => (location.hash.match(/s=([0-9a-f]{16})/) || [])[1]);
const state = async () => api(`/api/sessions/${await sid()}`);
const candTexts = (st) => st.fork.candidates.map((c) => c.text);

/* Waits until the server's state version differs from v (a change landed)
 * and the page has rendered it. */
async function waitChange(v, timeout = 60000) {
  const t0 = Date.now();
  for (;;) {
    const st = await state();
    if (st.version !== v) {
      await page.waitForFunction((ver) => document.getElementById('story').dataset.version === String(ver),
        st.version, { timeout: 10000 }).catch(() => {});
      await sleep(100);
      return st;
    }
    if (Date.now() - t0 > timeout) throw new Error('no state change');
    await sleep(100);
  }
}

async function newStory(prompt, settings) {
  await page.goto(srv.url);
  await page.evaluate((s) => {
    const p = JSON.parse(localStorage.getItem('forkpoint.prefs') || '{}');
    p.settings = s || {};
    p.dwell = false;
    localStorage.setItem('forkpoint.prefs', JSON.stringify(p));
  }, settings || {});
  await page.reload();
  await page.fill('#prompt', prompt);
  await page.click('#start-btn');
  await page.waitForSelector('#cloud .cand', { timeout: 60000 });
}

/* --------------------------------------------------------------- tests */

async function main() {
  console.log(`# server ${SERVE}\n# chromium ${CHROMIUM}`);
  assert(SERVE, 'forkpoint-serve is not built');
  srv = await startServer();
  const userDir = fs.mkdtempSync(path.join(tmp, 'chrome-'));
  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
    viewport: { width: 1100, height: 820 },
    hasTouch: true,
    acceptDownloads: true,
  });
  page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(30000);
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => pageErrors.push(e.message));

  await test('page loads from the binary with the start form', async () => {
    const r = await page.goto(srv.url);
    eq(r.status(), 200, 'status');
    eq(await page.title(), 'Forkpoint', 'title');
    assert(await page.isVisible('#prompt'), 'prompt visible');
  });

  let first;
  await test('starting a story shows a cloud sized by probability', async () => {
    await newStory('Once upon a time');
    first = await state();
    const n = await page.locator('#cloud .cand:not(.other)').count();
    eq(n, first.fork.candidates.length, 'one target per candidate');
    const size = (i) => page.$eval(`#cand-${i}`, (el) => parseFloat(getComputedStyle(el).fontSize));
    const last = first.fork.candidates.length - 1;
    // the cloud may still be settling on a loaded machine: give it a moment
    let bigger = false;
    for (let i = 0; i < 50 && !bigger; i++) {
      bigger = await size(0) > await size(last);
      if (!bigger) await page.waitForTimeout(100);
    }
    assert(bigger, `the most probable candidate is bigger (${await size(0)} vs ${await size(last)})`);
    const box = await page.locator('#cand-0').boundingBox();
    assert(box.height >= 48 && box.width >= 48, `target at least 48 px: ${box.width}x${box.height}`);
    if (first.fork.other > 0.005) assert(await page.isVisible('#cand-other'), '"other" marker');
    eq(await page.getAttribute('#cloud', 'role'), 'toolbar', 'cloud role');
    assert(/percent/.test(await page.getAttribute('#cand-0', 'aria-label')), 'aria-label with probability');
  });

  await test('hovering a candidate shows its preview as ghost text with no request', async () => {
    const n0 = requests.length;
    await page.hover('#cand-1');
    const c = first.fork.candidates[1];
    const ghost = await page.textContent('#ghost');
    eq(ghost, c.text + c.preview, 'ghost text');
    await sleep(400);
    eq(requests.slice(n0), [], 'requests during hover');
    await page.hover('#cloud .cand-phrase >> nth=0');
    assert((await page.locator('#ghost .ghost-word').count()) === 2, 'phrase hover highlights word and phrase');
  });

  await test('screenshots of a fork (light and dark)', async () => {
    await page.hover('#cand-0');
    await page.screenshot({ path: path.join(OUT, 'fork.png'), fullPage: true });
    await page.click('#btn-theme');
    eq(await page.getAttribute('html', 'data-theme'), 'dark', 'dark theme on');
    await page.hover('#cand-1');
    await page.screenshot({ path: path.join(OUT, 'fork-dark.png'), fullPage: true });
    await page.click('#btn-theme');
    eq(await page.getAttribute('html', 'data-theme'), 'light', 'light theme back');
  });

  let afterClick;
  await test('click commits the candidate; chosen text looks different from auto text', async () => {
    const c = first.fork.candidates[0];
    await page.click('#cand-0');
    afterClick = await waitChange(first.version);
    assert(afterClick.text.startsWith(first.text + c.text), 'server text');
    await page.waitForFunction((t) => document.getElementById('doc').textContent.startsWith(t), first.text + c.text);
    const human = await page.$eval('#doc .w.human', (el) => el.textContent);
    eq(human, c.text, 'chosen word marked');
    const colors = await page.evaluate(() => {
      const h = document.querySelector('#doc .human'), a = document.querySelector('#doc .auto');
      return [getComputedStyle(h).color, a ? getComputedStyle(a).color : null];
    });
    assert(colors[1] && colors[0] !== colors[1], 'auto and chosen colours differ');
    assert(/Selection to this fork on screen: \d+ ms/.test(await page.textContent('#timing')), 'status bar shows selection-to-fork time');
  });

  await test('Backspace undoes and the fork reopens with the same candidates', async () => {
    await page.locator('#cand-0').focus();
    await page.keyboard.press('Backspace');
    const st = await waitChange(afterClick.version);
    eq(st.text, first.text, 'text');
    eq(candTexts(st), candTexts(first), 'candidates');
  });

  await test('number keys and Shift+Enter take a candidate (with its phrase)', async () => {
    let st = await state();
    const c = st.fork.candidates[1];
    await page.keyboard.press('2');
    let st2 = await waitChange(st.version);
    assert(st2.text.startsWith(st.text + c.text), 'key 2 took candidate 2');
    if (!st2.fork) return;
    await page.locator('#cand-0').focus();
    const c0 = st2.fork.candidates[0];
    await page.keyboard.press('Shift+Enter');
    const st3 = await waitChange(st2.version);
    assert(st3.text.startsWith(st2.text + c0.text + c0.preview), 'Shift+Enter took word and phrase');
  });

  await test('clicking an earlier word reopens its fork with the same alternatives', async () => {
    const sel = `#doc .w[data-fork="${first.fork.id}"]`;
    await page.waitForSelector(sel);
    const v = (await state()).version;
    await page.click(sel);
    const st = await waitChange(v);
    eq(st.fork.id, first.fork.id, 'fork id');
    eq(candTexts(st), candTexts(first), 'same alternatives');
    await page.waitForFunction((n) => document.querySelectorAll('#cloud .cand:not(.other)').length === n,
      first.fork.candidates.length);
  });

  await test('typing your own word narrows the cloud live, Enter commits it', async () => {
    let st = await state();
    await page.locator('#cand-0').focus();
    await page.keyboard.press('t');
    assert(await page.isVisible('#type-input'), 'word box open');
    await page.keyboard.type('b');
    await page.waitForFunction(() => /prefix/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
    const nst = await state();
    eq(nst.fork.typed_prefix, 'b', 'prefix sent');
    const words = await page.$$eval('#cloud .cand:not(.other) .word', (els) => els.map((e) => e.textContent));
    assert(words.every((w) => w.toLowerCase().startsWith('b') || w === '(end)'), `narrowed: ${words}`);
    await page.keyboard.type('ird');
    await page.keyboard.press('Enter');
    st = await waitChange(nst.version);
    let tries = 0;
    while (st.fork && st.fork.typed_prefix && tries++ < 20) st = await waitChange(st.version); // a late prefix
    assert(/bird/.test(st.text), `typed word in the text: ${st.text}`);
  });

  // dwell on (700 ms, 300 ms cooldown), page reloaded with it
  const dwellOn = async () => {
    await page.evaluate(() => {
      const p = JSON.parse(localStorage.getItem('forkpoint.prefs') || '{}');
      Object.assign(p, { dwell: true, dwellMs: 700, cooldownMs: 300 });
      localStorage.setItem('forkpoint.prefs', JSON.stringify(p));
    });
    await page.reload();
    await page.waitForSelector('#cloud .cand');
  };

  await test('dwell: resting the pointer shows a progress ring and then selects', async () => {
    await dwellOn();
    const st = await state();
    if (!st.fork) throw new Error('story ended early');
    const c = st.fork.candidates[0];
    const box = await page.locator('#cand-0').boundingBox();
    await page.mouse.move(5, 5);
    await sleep(350);
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 4 });
    await page.waitForSelector('#cand-0.dwelling', { timeout: 2000 });
    const ring = await page.$eval('#cand-0 .ring rect', (el) => getComputedStyle(el).opacity);
    eq(ring, '1', 'ring visible');
    const st2 = await waitChange(st.version, 10000);
    assert(st2.text.startsWith(st.text + c.text), 'dwell selected candidate 1');
    await page.mouse.move(5, 5);
    await page.evaluate(() => {
      const p = JSON.parse(localStorage.getItem('forkpoint.prefs') || '{}');
      p.dwell = false;
      localStorage.setItem('forkpoint.prefs', JSON.stringify(p));
    });
    await page.reload();
    await page.waitForSelector('#cloud .cand');
  });

  await test('touch: long-press previews without selecting, tap selects', async () => {
    const st = await state();
    if (!st.fork) throw new Error('story ended early');
    const c = st.fork.candidates[1];
    await page.$eval('#cand-1', (el) => el.dispatchEvent(new PointerEvent('pointerdown', { pointerType: 'touch', bubbles: true })));
    await sleep(700);
    eq(await page.textContent('#ghost'), c.text + c.preview, 'long-press preview');
    await page.$eval('#cand-1', (el) => {
      el.dispatchEvent(new PointerEvent('pointerup', { pointerType: 'touch', bubbles: true }));
      el.click();
    });
    await sleep(500);
    eq((await state()).version, st.version, 'long-press did not select');
    await page.tap('#cand-1');
    const st2 = await waitChange(st.version);
    assert(st2.text.startsWith(st.text + c.text), 'tap selected');
  });

  await test('a remote device highlight (ws_client) shows its preview on the page', async () => {
    assert(WS_CLIENT, 'ws_client not built');
    const st = await state();
    if (!st.fork) throw new Error('story ended early');
    const c = st.fork.candidates[2];
    await page.mouse.move(5, 5);
    await new Promise((resolve) => {
      const p = spawn(WS_CLIENT, ['--port', String(srv.port), '--script', 'h 2', '--wait', '300', st.id], { stdio: 'ignore' });
      p.on('exit', resolve);
    });
    await page.waitForFunction((t) => document.getElementById('ghost').textContent === t, c.text + c.preview, { timeout: 5000 });
    assert(await page.$('#cand-2.remote'), 'remote highlight marked in the cloud');
  });

  await test('branch tree panel lists nodes and going to one works', async () => {
    await page.click('#btn-tree');
    await page.waitForSelector('#tree button[data-node]');
    const n = await page.locator('#tree button[data-node]').count();
    assert(n >= 3, `nodes: ${n}`);
    const v = (await state()).version;
    const btn = page.locator('#tree button[data-node]:not([disabled]):not(.current)').first();
    await btn.click();
    await waitChange(v);
    await page.keyboard.press('Escape');
    assert(await page.isHidden('#panel-tree'), 'Escape closes the panel');
  });

  await test('settings panel changes k for the story', async () => {
    await page.click('#btn-settings');
    await page.fill('#set-k', '3');
    const v = (await state()).version;
    await page.click('#settings-form button[type="submit"]');
    const st = await waitChange(v);
    eq(st.settings.k, 3, 'k');
    await page.waitForFunction(() => document.querySelectorAll('#cloud .cand:not(.other)').length <= 3);
    for (const id of ['set-lookahead', 'set-fork_entropy_bits', 'set-min_gap_tokens', 'set-granularity', 'set-temperature', 'set-seed'])
      assert(await page.$(`#${id}`), `${id} field`);
    await page.keyboard.press('Escape');
  });

  await test('export to text and JSONL downloads the story and its log', async () => {
    const st = await state();
    const [d1] = await Promise.all([page.waitForEvent('download'), page.click('#btn-export-txt')]);
    eq(fs.readFileSync(await d1.path(), 'utf8'), st.text, 'text export');
    const [d2] = await Promise.all([page.waitForEvent('download'), page.click('#btn-export-jsonl')]);
    const lines = fs.readFileSync(await d2.path(), 'utf8').split('\n').filter(Boolean);
    eq(lines.length, st.n_events, 'one line per decision');
    JSON.parse(lines[0]);
  });

  await test('keyboard-only session reaches the end of a story', async () => {
    await page.goto(srv.url);
    await page.evaluate(() => {
      const p = JSON.parse(localStorage.getItem('forkpoint.prefs') || '{}');
      p.settings = { max_tokens: 48, k: 4, beam_width: 8, lookahead: 4 };
      p.dwell = false;
      localStorage.setItem('forkpoint.prefs', JSON.stringify(p));
    });
    await page.reload();
    await page.keyboard.press('Control+a');
    await page.keyboard.type('The little dog');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#cloud .cand', { timeout: 60000 });
    for (let i = 0; i < 60; i++) {
      const st = await state();
      if (!st.fork) break;
      await page.keyboard.press(i % 3 === 2 ? 'ArrowRight' : 'Enter');
      if (i % 3 === 2) { await page.keyboard.press('Enter'); }
      await waitChange(st.version);
    }
    const st = await state();
    eq(st.state, 'ended', 'story ended');
    await page.waitForSelector('#ended:not([hidden])');
    assert(/Ended/.test(await page.textContent('#status')), 'status shows the end');
    const focusOk = await page.evaluate(() => !!document.activeElement && document.activeElement !== document.body);
    assert(focusOk, 'focus is on a control at the end');
  });

  /* ---- pointing into a preview: each preview word is a target */
  const chooseBodies = [];
  page.on('request', (r) => { if (/\/choose$/.test(r.url())) chooseBodies.push(JSON.parse(r.postData() || '{}')); });
  // the byte offset the page must send for word j of a candidate (what the server accepts)
  const wordStarts = (c) => {
    const out = [];
    const re = /\s*\S+/g;
    let m;
    while ((m = re.exec(c.preview))) {
      const b0 = Buffer.byteLength(c.preview.slice(0, m.index));
      const b = c.preview_starts.reduce((acc, s0) => (s0 <= b0 && s0 > acc ? s0 : acc), 0);
      if (out[out.length - 1] !== b) out.push(b);
    }
    return out;
  };
  const takenWith = (st, c, upto) => st.text + c.text + Buffer.from(c.preview).subarray(0, upto).toString();
  // the first candidate with at least `n` preview words
  const withWords = (st, n) => st.fork.candidates.findIndex((c) => !c.is_eog && c.preview_starts && wordStarts(c).length >= n);

  await test('clicking a preview word takes the words before it and opens a fork there', async () => {
    await newStory('Once upon a time');
    let st = await state();
    let k = withWords(st, 3);
    for (let n = 0; k < 0 && n < 5 && st.fork; n++) { // this fork has no long preview: go on
      await page.click('#cand-0');
      st = await waitChange(st.version);
      k = withWords(st, 3);
    }
    assert(k >= 0, 'no candidate with a preview of 3 words');
    const c = st.fork.candidates[k];
    // resting on a candidate puts its preview words in the row under the cloud
    await page.hover(`#cand-${k}`);
    await page.waitForSelector(`#pv-bar[data-index="${k}"] #pv-${k}-1`, { timeout: 3000 });
    const words = await page.$$eval('#pv-bar .pv-word', (els) => els.map((e) => [e.textContent, Number(e.dataset.upto)]));
    eq(words.map((w) => w[1]), wordStarts(c), 'one target per preview word, at its UTF-8 byte offset');
    const box = await page.locator(`#pv-${k}-1`).boundingBox();
    assert(box.height >= 48 && box.width >= 48, `preview word target at least 48 px: ${box.width}x${box.height}`);
    const label = await page.getAttribute(`#pv-${k}-1`, 'aria-label');
    assert(/^Take “.+” and choose again at “.+”$/.test(label), `aria-label: ${label}`);
    eq(await page.getAttribute('#pv-bar', 'role'), 'group', 'row role');
    // pointing at a word shows what would be taken and where the fork opens
    await page.hover(`#pv-${k}-1`);
    const upto = words[1][1];
    eq(await page.textContent('#ghost .ghost-cut'), Buffer.from(c.preview).subarray(upto).toString(), 'ghost marks the rest as cut');
    await page.screenshot({ path: path.join(OUT, 'preview-words.png'), fullPage: true });
    const n0 = chooseBodies.length;
    await page.click(`#pv-${k}-1`);
    const st2 = await waitChange(st.version);
    eq(chooseBodies.slice(n0), [{ index: k, preview_upto: upto, modality: 'mouse' }], 'request body');
    eq(st2.text, takenWith(st, c, upto), 'candidate and the preview words before the one clicked');
    assert(st2.fork, 'a fork is open');
    eq(st2.fork.reason, 'forced', 'the new fork is where the word was pointed at');
    eq(st2.fork.text_offset, Buffer.byteLength(st2.text), 'the fork opens at the end of the taken text');
    await page.waitForFunction((n) => document.querySelectorAll('#cloud .cand:not(.other)').length === n, st2.fork.candidates.length);
  });

  await test('keyboard: Tab into the preview words, arrows, Enter takes up to the word', async () => {
    let st = await state();
    let k = withWords(st, 2);
    for (let n = 0; k < 0 && n < 5 && st.fork; n++) {
      await page.click('#cand-0');
      st = await waitChange(st.version);
      k = withWords(st, 2);
    }
    assert(k >= 0, 'no candidate with a preview of 2 words');
    const c = st.fork.candidates[k];
    await page.mouse.move(5, 5);
    await page.locator(`#cand-${k}`).focus();
    await page.waitForSelector(`#pv-bar[data-index="${k}"]`, { timeout: 3000 });
    await page.keyboard.press('Tab');
    eq(await page.evaluate(() => document.activeElement.id), `pv-${k}-0`, 'Tab lands on the first preview word');
    await page.keyboard.press('ArrowRight');
    eq(await page.evaluate(() => document.activeElement.id), `pv-${k}-1`, 'ArrowRight moves to the next word');
    await page.keyboard.press('Escape');
    eq(await page.evaluate(() => document.activeElement.id), `cand-${k}`, 'Escape goes back to the candidate');
    await page.keyboard.press('Tab');
    await page.keyboard.press('ArrowRight');
    const upto = wordStarts(c)[1];
    const n0 = chooseBodies.length;
    await page.keyboard.press('Enter');
    const st2 = await waitChange(st.version);
    eq(chooseBodies.slice(n0), [{ index: k, preview_upto: upto, modality: 'keyboard' }], 'request body');
    eq(st2.text, takenWith(st, c, upto), 'text');
    assert(st2.fork && st2.fork.reason === 'forced', 'a fork opened at the word');
  });

  await test('dwell on a preview word selects it (with the cooldown after)', async () => {
    await dwellOn();
    const st = await state();
    assert(st.fork && withWords(st, 1) >= 0, 'no candidate with preview words');
    // the top candidate's words are in the row from the start
    const i0 = Number(await page.getAttribute('#pv-bar', 'data-index'));
    assert(i0 >= 0, 'the row shows a candidate');
    const c = st.fork.candidates[i0];
    await page.mouse.move(5, 5);
    await sleep(350);
    const box = await page.locator(`#pv-${i0}-0`).boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 2 });
    await page.waitForSelector(`#pv-${i0}-0.dwelling`, { timeout: 2000 });
    const n0 = chooseBodies.length;
    const st2 = await waitChange(st.version, 10000);
    eq(chooseBodies.slice(n0), [{ index: i0, preview_upto: 0, modality: 'dwell' }], 'request body');
    eq(st2.text, st.text + c.text, 'word 0: the candidate alone');
    assert(st2.fork && st2.fork.reason === 'forced', 'a fork opened right after it');
    await page.mouse.move(5, 5);
    await page.evaluate(() => {
      const p = JSON.parse(localStorage.getItem('forkpoint.prefs') || '{}');
      p.dwell = false;
      localStorage.setItem('forkpoint.prefs', JSON.stringify(p));
    });
  });

  await test('no external network requests and no page errors', async () => {
    const foreign = requests.filter((u) => !u.startsWith(srv.url) && !u.startsWith('data:') && !u.startsWith('blob:'));
    eq(foreign, [], 'foreign requests');
    eq(pageErrors, [], 'page errors');
  });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - harness: ${e && e.message}`);
} finally {
  try { if (ctx) await ctx.close(); } catch (e) { /* already gone */ }
  if (srv) srv.child.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
