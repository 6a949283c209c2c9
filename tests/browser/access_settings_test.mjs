// access_settings_test.mjs — the access settings (web/access/settings.js)
// worked by a switch user alone, as issue 11 asks: every field reached and
// changed with one switch (1366x768) and with two switches (390x844,
// touch), the highlighted item always on screen while the Settings panel
// is scanned (the panel scrolls with the scan), and axe-core finding no
// violation of any impact in the settings, the letter board and the
// scanning highlight, at both sizes.
//
// Why a separate test: access_test.mjs writes stories with the switch; this
// one changes the switch's own settings with it, including the keys that
// are the switch (the new key then works as the switch), and the access
// method itself (one switch -> two switches and back).
// Prints "ok - ..." lines and "N passed, N failed".
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { SERVE, CHROMIUM, OUT, chromeArgs, assert, eq, sleep, harness, startServer, tmpDir } from './lib.mjs';
import { reach, keySwitch } from './scan_user.mjs';

const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const tmp = tmpDir('fp-access-settings-');
let page = null, srv = null, browser = null;
const h = harness({ shot: 'access-settings-fail', page: () => page });
const { test } = h;

/* A fresh page at the viewport in `mode`, scanning at 300 ms, with a probe
 * that records every highlighted item that is not wholly on screen. */
async function open(viewport, touch, mode) {
  if (page) await page.context().close();
  const ctx = await browser.newContext({ viewport, hasTouch: touch, isMobile: touch });
  page = await ctx.newPage();
  page.setDefaultTimeout(30000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(`${srv.url}?access=${mode}`);
  await page.evaluate(() => localStorage.removeItem('fp-access'));
  await page.goto(`${srv.url}?access=${mode}`);
  await page.waitForFunction(() => window.fpAccess && window.fpAccess.scanner);
  await page.evaluate((m) => window.fpAccess.set(m, { interval: 300, firstExtra: 100, loops: 4 }), mode);
  await page.evaluate(async () => {
    const { shown } = await import('/access/scan.js');
    window.__unseen = [];
    window.__seen = 0;
    window.__twice = [];
    const norm = (t) => String(t || '').replace(/\s+/g, ' ').trim().toLowerCase();
    // the item highlighted (for a group: its first control) must be wholly
    // on screen, and no caption may repeat the one item's own visible text
    // (a highlighted "Apply" with a second "Apply" box under it)
    document.addEventListener('fp:scan-highlight', (e) => {
      const el = e.detail.els && e.detail.els[0];
      if (!el) return;
      window.__seen++;
      if (!shown(el)) window.__unseen.push(el.id || el.textContent.trim().slice(0, 30));
      const cap = document.querySelector('#fp-access-overlay .fp-hl-caption');
      if (e.detail.els.length === 1 && cap && getComputedStyle(cap).display !== 'none' &&
          norm(cap.textContent) === norm(el.innerText)) window.__twice.push(norm(el.innerText));
    });
  });
  return page;
}

/* axe-core on the page as it is now: no violation of any impact. */
async function axe(name) {
  await page.screenshot({ path: path.join(OUT, `view-${name}.png`) });
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] }))
    .violations.map((v) => `${v.id} (${v.impact}, ${v.nodes.length} nodes, e.g. ${v.nodes[0] && v.nodes[0].target.join(' ')})`));
  console.log(`# axe ${name}: ${r.length} rules violated${r.length ? `: ${r.join('; ')}` : ''}`);
  assert(!r.length, `${name}: ${r.join('; ')}`);
}

/* No highlight so far had a caption that repeats its item's text. */
async function noTwice() {
  const twice = await page.evaluate(() => window.__twice);
  assert(!twice.length, `${twice.length} captions repeat their item's own label, e.g. ${[...new Set(twice)].slice(0, 5).join(', ')}`);
}

const S = () => page.evaluate(() => ({ ...window.fpAccess.settings }));

/* Works every access field with the switch sw; ends by switching the
 * access method to `next`. Returns what was changed. */
async function workEveryField(sw, next) {
  await reach(page, '#btn-settings', sw);
  await page.waitForSelector('#panel-settings:not([hidden])');
  await reach(page, '#access-box > summary', sw);
  await page.waitForFunction(() => document.getElementById('access-box').open);
  await page.waitForSelector('#fp-acc-interval-more');
  const before = await S();
  // check boxes: each one flipped by a selection
  for (const name of ['speak', 'mouse', 'touch', 'gamepad', 'device', 'hybrid']) {
    await reach(page, `#fp-acc-${name}`, sw);
    await page.waitForFunction(([n, v]) => window.fpAccess.settings[n] === !v, [name, before[name]]);
    assert(await page.isChecked(`#fp-acc-${name}`) === !before[name], `${name}: the box shows it`);
  }
  // numbers: "+" then "−"
  for (const [name, by] of [['interval', 100], ['firstExtra', 100], ['loops', 1], ['dwellMs', 100]]) {
    await reach(page, `#fp-acc-${name}-more`, sw);
    await page.waitForFunction(([n, v]) => window.fpAccess.settings[n] === v, [name, before[name] + by]);
    eq(await page.inputValue(`#fp-acc-${name}`), String(before[name] + by), `${name}: the field shows it`);
    await reach(page, `#fp-acc-${name}-less`, sw);
    await page.waitForFunction(([n, v]) => window.fpAccess.settings[n] === v, [name, before[name]]);
  }
  // the keys that are the switch: set by pressing the key, and then it is the switch
  const kind = sw.mode === 'scan2' ? 'step' : 'select';
  const field = kind === 'step' ? 'stepKeys' : 'selectKeys';
  await reach(page, `#fp-acc-${field}-set`, sw);
  await page.waitForFunction(() => document.body.dataset.fpRecording === '1');
  await page.keyboard.press('KeyJ');
  await page.waitForFunction((f) => window.fpAccess.settings[f] === 'KeyJ', field);
  eq(await page.inputValue(`#fp-acc-${field}`), 'KeyJ', 'the key field shows the new key');
  const old = sw.keys[kind];
  sw.keys[kind] = 'j';
  // the new key works the scan: set the old key back with it
  await reach(page, `#fp-acc-${field}-set`, sw);
  await page.waitForFunction(() => document.body.dataset.fpRecording === '1');
  await page.keyboard.press(old);
  await page.waitForFunction(([f, k]) => window.fpAccess.settings[f] === k, [field, old]);
  sw.keys[kind] = old;
  // the calibration button is in the scan (not pressed: there is no camera)
  const inScan = await page.evaluate(() => {
    const leaves = (n) => (n.kind === 'leaf' ? [n.item.el] : n.children.flatMap(leaves));
    return leaves(window.fpAccess.scanner.tree).some((el) => el && el.id === 'fp-acc-calibrate');
  });
  assert(inScan, 'the calibration button is scanned');
  // the access method, last: one switch <-> two switches
  await reach(page, `#fp-acc-mode-${next}`, sw);
  await page.waitForFunction((m) => window.fpAccess.settings.mode === m && window.fpAccess.scanner &&
    window.fpAccess.scanner.o.mode === m, next);
  eq(await page.getAttribute(`#fp-acc-mode-${next}`, 'aria-pressed'), 'true', 'the chosen method is shown pressed');
  const saved = await page.evaluate(() => JSON.parse(localStorage.getItem('fp-access')));
  for (const name of ['speak', 'mouse', 'touch', 'gamepad', 'device', 'hybrid'])
    assert(saved[name] === !before[name], `${name} saved`);
  for (const name of ['interval', 'firstExtra', 'loops', 'dwellMs']) eq(saved[name], before[name], `${name} saved`);
  eq(saved.mode, next, 'the method saved');
}

async function main() {
  console.log(`# server ${SERVE}\n# chromium ${CHROMIUM}`);
  srv = await startServer({ dir: tmp });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: chromeArgs() });

  await test('one switch (Space) at 1366x768 works every access field, its own key and the method; the highlight is always on screen', async () => {
    await open({ width: 1366, height: 768 }, false, 'scan1');
    await workEveryField(keySwitch(page, 'scan1'), 'scan2');
    const seen = await page.evaluate(() => window.__seen), unseen = await page.evaluate(() => window.__unseen);
    console.log(`# one switch: ${seen} highlights in the settings, ${unseen.length} not wholly on screen`);
    assert(seen > 20 && !unseen.length, `highlighted off screen: ${unseen.slice(0, 5).join(', ')}`);
    await noTwice();
  });

  await test('axe-core: no violation in the access settings while scanning (1366x768)', async () => {
    await axe('access-settings-scan-desktop');
  });

  await test('two switches (Tab steps, Enter selects) at 390x844 work every access field, the step key and the method; the highlight is always on screen', async () => {
    await open({ width: 390, height: 844 }, true, 'scan2');
    await workEveryField(keySwitch(page, 'scan2'), 'scan1');
    const seen = await page.evaluate(() => window.__seen), unseen = await page.evaluate(() => window.__unseen);
    console.log(`# two switches, phone: ${seen} highlights in the settings, ${unseen.length} not wholly on screen`);
    assert(seen > 20 && !unseen.length, `highlighted off screen: ${unseen.slice(0, 5).join(', ')}`);
    await noTwice();
  });

  await test('axe-core: no violation in the access settings while scanning (390x844)', async () => {
    await axe('access-settings-scan-phone');
  });

  await test('axe-core: no violation with the letter board and its highlight, at both sizes', async () => {
    for (const [vp, touch, name] of [[{ width: 1366, height: 768 }, false, 'desktop'], [{ width: 390, height: 844 }, true, 'phone']]) {
      await open(vp, touch, 'scan2');
      const sw = keySwitch(page, 'scan2');
      await page.fill('#prompt', 'Once upon a time');
      await reach(page, '#start-btn', sw);
      await page.waitForSelector('#cloud .cand', { timeout: 60000 });
      await reach(page, '#btn-type', sw);
      await page.waitForSelector('#fp-letterboard:not([hidden])');
      await sleep(300);
      await axe(`letterboard-scan-${name}`);
    }
  });

  await test('two switches work the page\'s text fields (the letter board types into them), its number fields and drop-downs', async () => {
    await open({ width: 1366, height: 768 }, false, 'scan2');
    const sw = keySwitch(page, 'scan2');
    const type = async (word) => {
      await page.waitForSelector('#fp-letterboard:not([hidden])');
      for (const ch of word) await reach(page, `#fp-letterboard [data-key="${ch === ' ' ? '␣' : ch}"]`, sw);
    };
    // the story's opening: chosen by the switch, typed on the board, ⏎ starts the story
    const p0 = await page.inputValue('#prompt');
    await reach(page, '#prompt', sw);
    await type(' a dog');
    eq(await page.inputValue('#prompt'), `${p0} a dog`, 'the board typed into the opening');
    await reach(page, '#fp-letterboard [data-key="⏎"]', sw);
    await page.waitForSelector('#cloud .cand', { timeout: 60000 });
    const sid = await page.evaluate(() => (location.hash.match(/s=([0-9a-f]{16})/) || [])[1]);
    const st = await (await fetch(`${srv.url}api/sessions/${sid}`)).json();
    assert(st.text.startsWith(`${p0} a dog`), `the story starts with the typed opening: ${JSON.stringify(st.text.slice(0, 40))}`);
    // a quick phrase of one's own, in the Say panel
    await reach(page, '#btn-say', sw);
    await page.waitForSelector('#panel-say:not([hidden])');
    await reach(page, '#phrase-input', sw);
    await type('hi');
    await reach(page, '#fp-letterboard [data-key="⏎"]', sw);
    await page.waitForFunction(() => [...document.querySelectorAll('#phrase-list .phrase')].some((b) => b.textContent === 'hi'));
    assert(await page.isHidden('#fp-letterboard'), 'the board goes once the phrase is added');
    await reach(page, '#panel-say .panel-close', sw);
    // Settings: a number field of the page ("+") and the model's settings, applied
    await reach(page, '#btn-settings', sw);
    await page.waitForSelector('#panel-settings:not([hidden])');
    const ms0 = Number(await page.inputValue('#set-cooldown-ms'));
    await reach(page, '#set-cooldown-ms ~ .fp-nudge:last-of-type', sw);
    eq(await page.inputValue('#set-cooldown-ms'), String(ms0 + 50), 'the "+" of a number field');
    const k0 = Number(await page.inputValue('#set-k'));
    await reach(page, '#set-k ~ .fp-nudge:last-of-type', sw);
    eq(await page.inputValue('#set-k'), String(k0 + 1), 'the "+" of the model\'s k');
    // a fraction steps by its field's step, kept inside min and max: top-p
    // 1 − 0.01 = 0.99 (not 1 − 1 = 0), back to 1, and no further
    const num = (sel) => page.inputValue(sel).then(Number);
    const tp0 = await num('#set-top_p'), t0 = await num('#set-temperature'), mp0 = await num('#set-min_p');
    eq(await page.textContent('#set-top_p ~ .fp-nudge:first-of-type'), '−0.01', 'top-p\'s "−" says its step');
    await reach(page, '#set-top_p ~ .fp-nudge:first-of-type', sw);
    eq(await num('#set-top_p'), Math.max(0, Math.round((tp0 - 0.01) * 100) / 100), 'top-p "−" steps by 0.01');
    await reach(page, '#set-top_p ~ .fp-nudge:last-of-type', sw);
    await reach(page, '#set-top_p ~ .fp-nudge:last-of-type', sw);
    eq(await num('#set-top_p'), Math.min(1, Math.round((tp0 + 0.01) * 100) / 100), 'top-p "+" twice: one step up, kept at 1 at most');
    await reach(page, '#set-temperature ~ .fp-nudge:last-of-type', sw);
    eq(await num('#set-temperature'), Math.round((t0 + 0.05) * 100) / 100, 'temperature "+" steps by 0.05');
    await reach(page, '#set-min_p ~ .fp-nudge:first-of-type', sw);
    eq(await num('#set-min_p'), Math.max(0, Math.round((mp0 - 0.01) * 100) / 100), 'min-p "−" steps by 0.01, not below 0');
    // a drop-down: "▶" takes the next choice, "◀" the one before
    const g0 = await page.$eval('#set-granularity', (e) => e.selectedIndex);
    const d = g0 + 1 < await page.$eval('#set-granularity', (e) => e.options.length) ? 1 : -1;
    await reach(page, `#set-granularity ~ .fp-nudge:${d > 0 ? 'last' : 'first'}-of-type`, sw);
    eq(await page.$eval('#set-granularity', (e) => e.selectedIndex), g0 + d, 'the drop-down moved one choice');
    await reach(page, `#set-granularity ~ .fp-nudge:${d > 0 ? 'first' : 'last'}-of-type`, sw);
    eq(await page.$eval('#set-granularity', (e) => e.selectedIndex), g0, 'and back');
    await reach(page, '#settings-form button[type=submit]', sw);
    await page.waitForFunction(async ([u, k]) => (await (await fetch(u)).json()).settings.k === k,
      [`${srv.url}api/sessions/${sid}`, k0 + 1], { timeout: 30000 });
    const applied = (await (await fetch(`${srv.url}api/sessions/${sid}`)).json()).settings;
    assert(Math.abs(applied.temperature - (t0 + 0.05)) < 1e-6, `the server took temperature ${t0 + 0.05}: ${applied.temperature}`);
    assert(Math.abs(applied.top_p - Math.min(1, tp0 + 0.01)) < 1e-6, `the server took top-p ${Math.min(1, tp0 + 0.01)}: ${applied.top_p}`);
    eq(await page.evaluate(() => JSON.parse(localStorage.getItem('forkpoint.prefs')).cooldownMs), ms0 + 50, 'the cooldown saved');
    await noTwice();
    await axe('settings-fields-scan');
  });

  await test('no page errors', async () => { eq(page.errors, [], 'page errors'); });
}

await h.run(main, async () => {
  if (browser) await browser.close().catch(() => {});
  if (srv) srv.child.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
});
