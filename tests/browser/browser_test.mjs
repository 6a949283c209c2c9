// browser_test.mjs — Playwright tests of the Forkpoint page in Debian's chromium.
//
// Why playwright-core and not @playwright/test: it drives the system
// chromium (/usr/bin/chromium) without downloading a browser, which this
// project's machines cannot do. A real forkpoint-serve runs on a free
// loopback port with the real stories260K model; the tests use the page the
// way a person would (mouse, touch, keyboard, dwell) and read the server's
// state through its API to check what the page shows.
//
// The adapter-strength sliders need a server started with a LoRA adapter and
// a steering vector: the test makes both with the real CLI (forkpoint write
// three times, then forkpoint learn --lora --steer) and starts a second
// server with them, so the main server and the other tests stay as they were.
//
// Environment: FORKPOINT_SERVE (default build/release/forkpoint-serve),
// FORKPOINT_CLI (default build/release/forkpoint, else build/asan/forkpoint),
// FORKPOINT_MODEL, CHROMIUM (default /usr/bin/chromium).
// Prints "ok - name" / "not ok - name: why" and a final "N passed, N failed".
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { SERVE, CLI, WS_CLIENT, MODEL, CHROMIUM, OUT, chromeArgs, assert, eq, sleep, harness,
  startServer as serve, storyHelpers, tmpDir } from './lib.mjs';

const tmp = tmpDir('fp-browser-');
const { test, run } = harness({ shot: 'fail', page: () => page });

/* ------------------------------------------------------------ server */

const startServer = (extra = [], db = 'fp.db') => serve({ dir: tmp, extra, db });

/* Runs the forkpoint CLI; stdin is `input`. Rejects on a non-zero exit. */
function runCli(args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(CLI, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), 180000);
    p.on('exit', (c) => { clearTimeout(t); if (c === 0) resolve(); else reject(new Error(`forkpoint ${args[0]} exited ${c}: ${err.slice(-300)}`)); });
    p.stdin.end(input || '');
  });
}

/* A personal LoRA adapter and steering vector learned (forkpoint learn) from
 * a decision log of three scripted stories, as a person would make them. */
async function makeAdapters() {
  assert(CLI, 'the forkpoint CLI is not built (make build/release/forkpoint)');
  const dir = fs.mkdtempSync(path.join(tmp, 'adapters-'));
  const base = ['--model', MODEL, '--threads', '1', '--db', path.join(dir, 'log.db'), '--profile', 'ann'];
  for (const seed of [1, 2, 3])
    await runCli(['write', ...base, '--sample', '--seed', String(seed)], '1\n2\np1\n3\n1\n2\n1\nq\n');
  const lora = path.join(dir, 'ann.gguf'), steer = path.join(dir, 'ann.steer.gguf');
  await runCli(['learn', ...base, '--epochs', '2', '--lora', lora, '--steer', steer]);
  assert(fs.existsSync(lora) && fs.existsSync(steer), 'learn wrote no adapter or steering vector');
  return { lora, steer };
}

let srv, srvA, ctx, page;
const requests = [];   // every request the page made
const pageErrors = [];
const { api, sid, state, waitChange } = storyHelpers(() => page, () => srv, { settle: 100, poll: 100 });
const candTexts = (st) => st.fork.candidates.map((c) => c.text);

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
    args: chromeArgs(),
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
    // the name is the visible text (key, word, percent); the preview is the description
    assert(/^1 .+ \d+%$/.test((await page.textContent('#cand-0')).trim()), 'name with key and probability');
    const desc = await page.getAttribute('#cand-0', 'aria-describedby');
    if (first.fork.candidates[0].preview)
      eq(await page.textContent(`#${desc}`), `leads to: ${first.fork.candidates[0].preview.trim()}`, 'preview as description');
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
    await page.click('#btn-settings');
    await page.click('#btn-theme');
    eq(await page.getAttribute('html', 'data-theme'), 'dark', 'dark theme on');
    await page.keyboard.press('Escape');
    await page.hover('#cand-1');
    await page.screenshot({ path: path.join(OUT, 'fork-dark.png'), fullPage: true });
    await page.click('#btn-settings');
    await page.click('#btn-theme');
    eq(await page.getAttribute('html', 'data-theme'), 'light', 'light theme back');
    await page.keyboard.press('Escape');
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
    await page.waitForFunction(() => /Words starting with/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
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
    const ring = await page.$eval('#dwell-ring', (el) => {
      const r = el.getBoundingClientRect(), c = document.getElementById('cand-0').getBoundingClientRect();
      return !el.hidden && el.classList.contains('run') && r.left <= c.left && r.right >= c.right && r.top <= c.top && r.bottom >= c.bottom;
    });
    assert(ring, 'progress ring drawn over the candidate');
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
    await page.click('#btn-stories');
    const [d1] = await Promise.all([page.waitForEvent('download'), page.click('#btn-export-txt')]);
    eq(fs.readFileSync(await d1.path(), 'utf8'), st.text, 'text export');
    const [d2] = await Promise.all([page.waitForEvent('download'), page.click('#btn-export-jsonl')]);
    const lines = fs.readFileSync(await d2.path(), 'utf8').split('\n').filter(Boolean);
    eq(lines.length, st.n_events, 'one line per decision');
    JSON.parse(lines[0]);
    await page.keyboard.press('Escape');
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
    assert(/length limit|come to its end/.test(await page.textContent('#status')), 'status shows the end');
    assert(await page.isVisible('#btn-keep') && await page.isVisible('#btn-undo'), 'keep writing and undo at the end');
    const focusOk = await page.evaluate(() => !!document.activeElement && document.activeElement !== document.body);
    assert(focusOk, 'focus is on a control at the end');
  });

  /* ---- pointing into a preview: each preview word is a target */
  const chooseBodies = [], chooseSeen = [];
  page.on('request', (r) => {
    if (!/\/choose$/.test(r.url())) return;
    // the page names the fork and version it shows (a stale action gets 409)
    const b = JSON.parse(r.postData() || '{}');
    chooseSeen.push([typeof b.fork_id, typeof b.version]);
    delete b.fork_id;
    delete b.version;
    chooseBodies.push(b);
  });
  // the byte offset the page must send for word j of a candidate (what the server accepts)
  const wordStarts = (c) => (Array.isArray(c.preview_words) ? c.preview_words.slice() : []);
  const takenWith = (st, c, upto) => st.text + c.text + Buffer.from(c.preview).subarray(0, upto).toString();
  // the first candidate with at least `n` preview words
  const withWords = (st, n) => st.fork.candidates.findIndex((c) => !c.is_eog && wordStarts(c).length >= n);

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
    assert(label.startsWith(`${words[1][0].trim()}: take “`) && label.endsWith('” and choose again here'), `aria-label: ${label}`);
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
    eq(chooseSeen.slice(n0), [['number', 'number']], 'fork_id and version sent');
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

  /* ---- adapter strengths: sliders in the settings panel */
  const adapterPosts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/api\/adapters$/.test(r.url())) adapterPosts.push(JSON.parse(r.postData() || '{}'));
  });
  const openSettings = async () => {
    const [r] = await Promise.all([
      page.waitForResponse((x) => /\/api\/adapters$/.test(x.url()) && x.request().method() === 'GET'),
      page.click('#btn-settings'),
    ]);
    await r.finished();
    await sleep(100);
  };

  await test('no adapter strength controls on a server without adapters', async () => {
    eq(await api('/api/adapters'), {}, 'the server has no adapters');
    await newStory('Once upon a time');
    await openSettings();
    assert(await page.isHidden('#adapter-settings'), 'adapter fieldset hidden');
    assert(await page.isHidden('#set-lora-scale') && await page.isHidden('#set-steer-strength'), 'sliders hidden');
    await page.keyboard.press('Escape');
  });

  await test('adapter sliders: initial values, a change POSTs, the cloud follows over the WebSocket', async () => {
    const files = await makeAdapters();
    srvA = await startServer(['--lora', files.lora, '--steer', files.steer], 'fp-adapters.db');
    const main = srv;
    srv = srvA; // the helpers (api, state, newStory, waitChange) talk to this server
    try {
      const a0 = await api('/api/adapters');
      assert(typeof a0.lora_scale === 'number' && typeof a0.steer_strength === 'number', `adapters: ${JSON.stringify(a0)}`);
      await newStory('Once upon a time');
      await openSettings();
      // labelled range inputs, 0..4 in quarters (wider only if the server's value is outside)
      assert(await page.isVisible('#adapter-settings'), 'adapter fieldset shown');
      eq(await page.textContent('label[for="set-lora-scale"]'), 'Personal adapter (LoRA) strength', 'LoRA label');
      eq(await page.textContent('label[for="set-steer-strength"]'), 'Steering strength', 'steering label');
      eq(await page.getByRole('slider', { name: 'Personal adapter (LoRA) strength' }).count(), 1, 'LoRA slider by role and name');
      eq(await page.getByRole('slider', { name: 'Steering strength' }).count(), 1, 'steering slider by role and name');
      for (const [id, v] of [['set-lora-scale', a0.lora_scale], ['set-steer-strength', a0.steer_strength]]) {
        const at = await page.$eval(`#${id}`, (el) => [el.type, el.min, el.max, el.step, Number(el.value)]);
        eq(at.slice(0, 4), ['range', String(Math.min(0, Math.floor(v * 4) / 4)), String(Math.max(4, Math.ceil(v * 4) / 4)), '0.25'], `${id} range`);
        if (Number.isInteger(v * 4)) eq(at[4], v, `${id} initial value`);
        eq(await page.textContent(`#${id.replace('set-', 'out-')}`), String(Math.round(v * 1000) / 1000), `${id} readout`);
      }
      await page.locator('#adapter-settings').scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.join(OUT, 'adapters.png'), fullPage: true });

      // the mouse: click a quarter of the way along the LoRA slider
      const st0 = await state();
      const shown = () => page.$$eval('#cloud .cand:not(.other)', (els) =>
        els.map((e) => `${e.querySelector('.word').textContent} ${e.querySelector('.pct').textContent}`).sort());
      // finer than the rounded percentages: each candidate's size follows its probability
      const sizes = () => page.$$eval('#cloud .cand:not(.other)', (els) =>
        els.map((e) => `${e.querySelector('.word').textContent} ${e.style.fontSize}`).sort());
      const cloud0 = await shown(), sizes0 = await sizes();
      await page.locator('#set-lora-scale').scrollIntoViewIfNeeded();
      const box = await page.locator('#set-lora-scale').boundingBox();
      const n0 = adapterPosts.length, r0 = requests.length;
      const [resp] = await Promise.all([
        page.waitForResponse((x) => /\/api\/adapters$/.test(x.url()) && x.request().method() === 'POST'),
        page.mouse.click(box.x + box.width * 0.25, box.y + box.height / 2),
      ]);
      const v1 = Number(await page.inputValue('#set-lora-scale'));
      assert(v1 !== a0.lora_scale && v1 >= 0 && v1 <= 2, `slider moved: ${v1}`);
      eq(resp.status(), 200, 'POST status');
      eq(adapterPosts.slice(n0), [{ lora_scale: v1 }], 'POST body');
      eq(await api('/api/adapters'), Object.assign({}, a0, { lora_scale: v1 }), 'GET /api/adapters after');
      eq(await page.textContent('#out-lora-scale'), String(v1), 'readout');
      // the server re-decoded the story and pushed it: the page shows the new state
      const st1 = await waitChange(st0.version);
      await page.waitForFunction((ver) => document.getElementById('story').dataset.version === String(ver), st1.version);
      const probs = (st) => st.fork.candidates.map((c) => `${c.text} ${c.prob.toFixed(4)}`);
      assert(JSON.stringify(probs(st1)) !== JSON.stringify(probs(st0)), 'the server\'s probabilities changed');
      const cloud1 = await shown(), sizes1 = await sizes();
      assert(JSON.stringify(sizes1) !== JSON.stringify(sizes0) || JSON.stringify(cloud1) !== JSON.stringify(cloud0),
        `the shown cloud changed: ${cloud0} / ${cloud1}`);
      const want = st1.fork.candidates.map((c) => {
        const pct = Math.round(c.prob * 100);
        return `${c.is_eog ? '(end)' : c.text.replace(/\n/g, '↵').trim() || '·'} ${pct < 1 ? '<1' : pct}%`;
      }).sort();
      eq(cloud1, want, 'the cloud shows the new probabilities');
      await page.screenshot({ path: path.join(OUT, 'adapters-changed.png'), fullPage: true });
      const fetched = requests.slice(r0).filter((u) => /\/api\/sessions\//.test(u));
      eq(fetched, [], 'the new state came over the WebSocket, not by a request');

      // the keyboard: three presses on the steering slider, one request after a pause
      const st2 = await state();
      const n1 = adapterPosts.length;
      await page.focus('#set-steer-strength');
      for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
      const v2 = Number(await page.inputValue('#set-steer-strength'));
      eq(v2, Math.min(Number(await page.getAttribute('#set-steer-strength', 'max')), Math.round(a0.steer_strength * 4) / 4 + 0.75), 'three steps up');
      await page.waitForFunction(() => document.getElementById('adapter-settings').getAttribute('aria-busy') === 'false');
      await waitChange(st2.version);
      await sleep(300);
      eq(adapterPosts.slice(n1), [{ steer_strength: v2 }], 'one POST for the three presses');
      eq((await api('/api/adapters')).steer_strength, v2, 'GET /api/adapters: steering');
      eq(await page.getAttribute('#set-steer-strength', 'aria-valuetext'), String(v2), 'aria-valuetext');

      // the slider's "−"/"+" buttons (web/access/fields.js: a switch, dwell
      // or gaze cannot drag): a quarter per press, kept inside min and max,
      // each press sent as the slider's own change is
      const less = '#set-steer-strength + .fp-nudge', more = '#set-steer-strength + .fp-nudge + .fp-nudge';
      eq([await page.textContent(less), await page.textContent(more)], ['−0.25', '+0.25'], 'the buttons say their step');
      eq(await page.getAttribute(more, 'aria-label'), 'Steering strength: +0.25', 'the button is named with its slider');
      const hi = Number(await page.getAttribute('#set-steer-strength', 'max'));
      const lo = Number(await page.getAttribute('#set-steer-strength', 'min'));
      let at = v2;
      for (const [sel, d] of [[less, -1], [more, +1], [more, +1]]) {
        const st3 = await state(), n2 = adapterPosts.length;
        const next = Math.min(hi, Math.max(lo, at + d * 0.25));
        await page.click(sel);
        eq(Number(await page.inputValue('#set-steer-strength')), next, `${d < 0 ? '−' : '+'} moves the slider a quarter, inside ${lo}..${hi}`);
        eq(await page.textContent('#out-steer-strength'), String(next), 'the readout follows');
        if (next === at) { at = next; continue; } // at the end already: nothing to send
        await page.waitForFunction(() => document.getElementById('adapter-settings').getAttribute('aria-busy') === 'false');
        await waitChange(st3.version);
        eq(adapterPosts.slice(n2), [{ steer_strength: next }], 'one POST per press');
        at = next;
      }
      eq((await api('/api/adapters')).steer_strength, at, 'GET /api/adapters: steering after the buttons');
      // at the top of the range "+" changes nothing
      await page.evaluate(([v]) => { const el = document.getElementById('set-steer-strength'); el.value = String(v); }, [hi]);
      await page.click(more);
      eq(Number(await page.inputValue('#set-steer-strength')), hi, '"+" at the maximum stays there');
      await page.click(less);
      eq(Number(await page.inputValue('#set-steer-strength')), hi - 0.25, 'and "−" steps down from it');
      for (let i = 0; (await api('/api/adapters')).steer_strength !== hi - 0.25; i++) {
        assert(i < 300, 'the server never took the last press');
        await sleep(100);
      }
      await page.waitForFunction(() => document.getElementById('adapter-settings').getAttribute('aria-busy') === 'false');

      // an error is shown like other request errors, and the slider goes back
      await page.route('**/api/adapters', (route) => (route.request().method() === 'POST'
        ? route.fulfill({ status: 400, contentType: 'application/json', body: '{"error":"refused by the test"}' })
        : route.continue()));
      await page.focus('#set-lora-scale');
      await page.keyboard.press('End');
      await page.waitForFunction(() => document.getElementById('error').textContent === 'refused by the test');
      eq(await page.textContent('#settings-msg'), 'refused by the test', 'message in the panel');
      await page.waitForFunction((v) => document.getElementById('set-lora-scale').value === String(v), v1);
      eq(await page.textContent('#out-lora-scale'), String(v1), 'readout back to the server\'s value');
      await page.unroute('**/api/adapters');
      await page.keyboard.press('Escape');
    } finally {
      srv = main;
    }
  });

  await test('no external network requests and no page errors', async () => {
    const ours = (u) => u.startsWith(srv.url) || (srvA && u.startsWith(srvA.url));
    const foreign = requests.filter((u) => !ours(u) && !u.startsWith('data:') && !u.startsWith('blob:'));
    eq(foreign, [], 'foreign requests');
    eq(pageErrors, [], 'page errors');
  });
}

await run(main, async () => {
  if (ctx) await ctx.close().catch(() => {});
  if (srv) srv.child.kill('SIGTERM');
  if (srvA) srvA.child.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
});
