// access_page_test.mjs — the page for every body, in Debian's chromium with
// the real stories260K model on a real forkpoint-serve (issue 11):
//
//  - steady targets: no candidate's box moves while each candidate is
//    hovered in turn, over 20 forks (1366×768);
//  - phone: at 390×844 with touch, the story's last line and every
//    candidate are on screen together at each of 20 forks, no page scroll,
//    the likeliest candidate first;
//  - every control operated by dwell alone (toolbar, panels and their Close,
//    actions, candidates, phrase, preview words, tree, Say panel, the
//    access settings' fold and a check box in it, Profile and its Close);
//  - dwell alone (no access mode) types on the letter board into the
//    story's opening, the word box and a quick phrase;
//  - keyboard and scanning reach the access settings and the Profile dialog;
//  - a stray tap on the story costs one action (Redo) to repair;
//  - the DOM contract for web/access/ (data-rank, data-scan-group, the word
//    box driven by events, fp:targets, el.click() with a named modality);
//  - keyboard: focus into panels and back to the cloud, the tree's arrow
//    keys, the Keys panel scrolls, digits pick while typing, key 0 = 10th;
//  - the end of a story: keep writing and undo;
//  - speech, copy, quick phrases, effort figures, titles, the model's name,
//    announcements;
//  - axe-core: no violation of any impact on every view (start, fork,
//    typing, tree, settings, access settings, profile, keys, say, ended,
//    phone, dark); the counts per
//    view are printed as "# axe <view>: ...".
//
// Environment as browser_test.mjs. Prints "ok - name" / "not ok - name: why"
// and a final "N passed, M failed".
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { SERVE, MODEL, CHROMIUM, OUT, chromeArgs, assert, eq, sleep, harness, startServer as serve,
  storyHelpers, tmpDir, axe as axeRun, dwell as dwellOn } from './lib.mjs';

const tmp = tmpDir('fp-access-page-');

let page = null;
const h = harness({ shot: 'access-fail', page: () => page });
const { test } = h;
const startServer = () => serve({ dir: tmp });

let srv, browser;
const pageErrors = [];
const { api, sid, state, waitChange } = storyHelpers(() => page, () => srv, { settle: 120, poll: 80 });

/* A fresh page in a new context (viewport, touch) with prefs set. */
async function openPage(opts = {}) {
  if (page) await page.context().close();
  const ctx = await browser.newContext({
    viewport: opts.viewport || { width: 1366, height: 768 },
    hasTouch: !!opts.touch, isMobile: !!opts.touch, acceptDownloads: true,
    colorScheme: opts.dark ? 'dark' : 'light',
  });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url.replace(/\/$/, '') });
  // observe (not replace) the browser's own speech synthesis
  await ctx.addInitScript(() => {
    window.__spoken = [];
    if (window.speechSynthesis) {
      const real = window.speechSynthesis.speak.bind(window.speechSynthesis);
      window.speechSynthesis.speak = (u) => { window.__spoken.push(u.text); return real(u); };
    }
  });
  page = await ctx.newPage();
  page.setDefaultTimeout(30000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(srv.url);
  await page.evaluate((p) => {
    localStorage.setItem('forkpoint.prefs', JSON.stringify(Object.assign({ dwell: false, settings: {} }, p)));
  }, opts.prefs || {});
  await page.reload();
  return page;
}

async function newStory(prompt, settings) {
  await page.evaluate((s) => {
    const p = JSON.parse(localStorage.getItem('forkpoint.prefs') || '{}');
    p.settings = s || {};
    localStorage.setItem('forkpoint.prefs', JSON.stringify(p));
  }, settings || {});
  await page.goto(srv.url);
  await page.reload();
  await page.fill('#prompt', prompt);
  await page.click('#start-btn');
  await page.waitForSelector('#cloud .cand', { timeout: 60000 });
  return state();
}

/* Boxes of every candidate, phrase button and action button on screen. */
const boxes = () => page.$$eval('#cloud .cand, #cloud .cand-phrase, .actions button:not([hidden])', (els) =>
  els.map((e) => { const r = e.getBoundingClientRect(); return [e.id || e.className, r.x, r.y, r.width, r.height].map((v) => (typeof v === 'number' ? Math.round(v * 2) / 2 : v)); }));

const axe = (name, shot) => axeRun(page, name, shot);

const dwell = (sel, done, what) => dwellOn(page, sel, done, what);

async function main() {
  console.log(`# server ${SERVE}\n# chromium ${CHROMIUM}`);
  srv = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: chromeArgs(),
  });
  const LONG = { max_tokens: 600 };

  await openPage();
  await test('axe: start view; the page names its model', async () => {
    await page.waitForFunction(() => document.querySelector('#start .model-name').textContent !== '…');
    eq(await page.textContent('#start .model-name'), path.basename(MODEL).replace(/\.gguf$/, ''), 'model name');
    await axe('start', true);
  });

  await test('target stability: no box moves while each candidate is hovered, over 20 forks', async () => {
    let st = await newStory('Once upon a time', LONG);
    let forks = 0, hovers = 0;
    while (forks < 20) {
      if (!st.fork) { st = await newStory('The dog ran', LONG); continue; }
      const before = await boxes();
      const n = st.fork.candidates.length;
      for (let i = 0; i < n; i++) {
        await page.hover(`#cand-${i}`);
        await sleep(380); // past the preview-row pin delay
        const now = await boxes();
        eq(now, before, `fork ${forks}: boxes moved while candidate ${i + 1} was hovered`);
        hovers++;
      }
      await page.hover(`#cand-0 >> xpath=..`); // also a phrase button hovered (if any)
      const v = st.version;
      await page.click(`#cand-${forks % Math.min(3, n)}`);
      st = await waitChange(v);
      forks++;
    }
    console.log(`# stability: ${forks} forks, ${hovers} candidates hovered, 0 boxes moved`);
  });

  await test('the cloud stays in view as the story grows (1366×768)', async () => {
    const st = await state();
    assert(st.n_tokens > 100, `story long enough: ${st.n_tokens} tokens`);
    const ok = await page.evaluate(() => {
      const vh = innerHeight;
      const all = [...document.querySelectorAll('#cloud .cand, .actions button:not([hidden])')];
      return document.scrollingElement.scrollHeight <= vh + 1 &&
        all.every((e) => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= vh; });
    });
    assert(ok, 'every candidate and action on screen, no page scroll');
  });

  await test('screen reader: the new text is announced; the ghost is hidden from it', async () => {
    const st = await state();
    await page.hover('#cand-1');
    eq(await page.getAttribute('#ghost', 'aria-hidden'), 'true', 'ghost aria-hidden');
    await page.click('#cand-1');
    const st2 = await waitChange(st.version);
    const added = st2.text.slice(st.text.length).trim();
    const msg = await page.textContent('#announce');
    assert(msg.startsWith(`Added: ${added}`), `announcement: ${msg}`);
    assert(!/bits|forced|top \d/.test(await page.textContent('#status')), 'status in plain words');
  });

  await test('axe: fork view, then dark', async () => {
    await page.hover('#cand-0');
    await axe('fork', true);
    await page.click('#btn-settings');
    await page.click('#btn-theme');
    await page.keyboard.press('Escape');
    eq(await page.getAttribute('html', 'data-theme'), 'dark', 'dark');
    await page.hover('#cand-1');
    await axe('dark', true);
    await page.click('#btn-settings');
    await page.click('#btn-theme');
    await page.keyboard.press('Escape');
  });

  await test('a straight story stays at one level of the tree; the tree has arrow keys', async () => {
    const st = await newStory('Once upon a time', LONG);
    let v = st.version;
    for (let i = 0; i < 5; i++) { await page.click('#cand-0'); v = (await waitChange(v)).version; }
    await page.focus('#btn-tree');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#tree button[data-node]');
    await page.waitForFunction(() => document.activeElement && document.activeElement.closest('#tree'));
    eq(await page.locator('#tree [role="group"]').count(), 0, 'no nested groups on a straight story');
    assert(!/⑂/.test(await page.textContent('#tree')), 'no ⑂ glyph');
    const items = await page.$$eval('#tree button[data-node]:not([disabled])', (els) => els.map((e) => e.dataset.node));
    const at = () => page.evaluate(() => document.activeElement.dataset.node);
    const cur = await at();
    await page.keyboard.press('Home');
    eq(await at(), items[0], 'Home: first item');
    await page.keyboard.press('ArrowDown');
    eq(await at(), items[1], 'ArrowDown: next item');
    await page.keyboard.press('End');
    eq(await at(), items[items.length - 1], 'End: last item');
    assert(cur !== undefined, 'focus was on an item when the tree opened');
    await axe('tree', true);
    await page.keyboard.press('Escape');
    assert(await page.isHidden('#panel-tree'), 'Escape closes');
    assert(await page.evaluate(() => document.activeElement.classList.contains('cand')), 'focus back on a candidate');
    const v0 = (await state()).version;
    await page.keyboard.press('2');
    await waitChange(v0);
  });

  await test('branches: going back and choosing again makes one group per branch', async () => {
    const st = await state();
    const f = st.path_forks[st.path_forks.length - 1];
    await page.click(`#doc .w[data-fork="${f.id}"]`);
    const st2 = await waitChange(st.version);
    await page.click('#cand-3');
    await waitChange(st2.version);
    if (await page.isHidden('#panel-tree')) await page.click('#btn-tree');
    await page.waitForSelector('#tree [role="group"]');
    const lv = await page.$$eval('#tree [role="group"] > li[role="treeitem"]', (els) => els.length);
    assert(lv >= 2, `two branches in the group: ${lv}`);
    await page.keyboard.press('Escape');
  });

  await test('keyboard: the Keys panel takes focus and scrolls by keyboard; settings takes focus', async () => {
    await openPage({ viewport: { width: 900, height: 520 } });
    await newStory('Once upon a time', LONG);
    await page.keyboard.press('?');
    await page.waitForSelector('#panel-help:not([hidden])');
    eq(await page.evaluate(() => document.activeElement.id), 'panel-help', 'focus on the Keys panel');
    const top0 = await page.$eval('#panel-help', (e) => e.scrollTop);
    assert(await page.$eval('#panel-help', (e) => e.scrollHeight > e.clientHeight), 'Keys panel overflows at 900×520');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('PageDown');
    await sleep(300);
    assert(await page.$eval('#panel-help', (e) => e.scrollTop) > top0, 'scrolled by keyboard');
    await axe('keys', true);
    await page.keyboard.press('Escape');
    assert(await page.evaluate(() => document.activeElement.classList.contains('cand')), 'focus back on a candidate');
    await page.click('#btn-settings');
    assert(await page.evaluate(() => !!document.activeElement.closest('#panel-settings')), 'focus inside settings');
    await axe('settings', true);
    // the access settings: opened by keyboard, audited, offered to scanning
    await page.focus('#access-box > summary');
    await page.keyboard.press('Enter');
    assert(await page.$eval('#access-box', (d) => d.open), 'Enter opens the access settings');
    await page.waitForSelector('#fp-acc-mode');
    await axe('access-settings', true);
    const scanIds = () => page.evaluate(async () => (await import('/access/targets.js')).collect().map((it) => it.el.id || it.label));
    let ids = await scanIds();
    for (const id of ['Access: switch, dwell, gaze', 'fp-acc-speak', 'fp-acc-calibrate'])
      assert(ids.includes(id), `scanning offers ${id}: ${ids.join(',')}`);
    await page.keyboard.press('Escape');
    // the Profile button: next after Keys by Tab, its dialog by keyboard, audited
    await page.focus('#btn-help');
    await page.keyboard.press('Tab');
    eq(await page.evaluate(() => document.activeElement.id), 'btn-profile', 'Tab from Keys reaches Profile');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('profile-dialog').open &&
      document.querySelector('[data-fp="profile-status"]').textContent !== 'Loading…');
    assert(await page.evaluate(() => !!document.activeElement.closest('#profile-dialog')), 'focus inside the profile dialog');
    await axe('profile', true);
    const inDlg = await page.evaluate(async () => (await import('/access/targets.js')).collect().map((it) => !!it.el.closest('#profile-dialog')));
    assert(inDlg.length && inDlg.every(Boolean), `while the dialog is open scanning offers only it: ${inDlg}`);
    await page.keyboard.press('Escape');
    assert(!(await page.$eval('#profile-dialog', (d) => d.open)), 'Escape closes the profile dialog');
  });

  await test('keyboard: digits pick from the narrowed cloud while typing; axe on typing', async () => {
    await openPage();
    const st = await newStory('Once upon a time', LONG);
    await page.locator('#cand-0').focus();
    await page.keyboard.press('t');
    await page.keyboard.type('b');
    await page.waitForFunction(() => /Words starting with/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
    await axe('typing', true);
    const nst = await state();
    eq(nst.fork.typed_prefix, 'b', 'prefix sent');
    const c = nst.fork.candidates[1];
    await page.keyboard.press('2');
    let st2 = await waitChange(nst.version);
    while (st2.fork && st2.fork.typed_prefix) st2 = await waitChange(st2.version);
    assert(st2.text.startsWith(st.text + c.text), `candidate 2 of the narrowed cloud taken: ${JSON.stringify(c.text)} in ${JSON.stringify(st2.text.slice(st.text.length))}`);
    assert(!st2.text.slice(st.text.length).includes('2'), 'the digit was not typed');
    assert(await page.isHidden('#typebox'), 'word box closed');
  });

  await test('keyboard: 0, - and = take candidates 10, 11 and 12', async () => {
    const st = await newStory('Once upon a time', Object.assign({ k: 12 }, LONG));
    assert(st.fork.candidates.length >= 10, `at least 10 candidates: ${st.fork.candidates.length}`);
    eq((await page.textContent('#cand-9 .num')).trim(), '0', 'key shown on candidate 10');
    const c = st.fork.candidates[9];
    await page.locator('#cand-0').focus();
    await page.keyboard.press('0');
    const st2 = await waitChange(st.version);
    assert(st2.text.startsWith(st.text + c.text), 'key 0 took candidate 10');
    if (st2.fork && st2.fork.candidates.length >= 12) {
      eq((await page.textContent('#cand-11 .num')).trim(), '=', 'key shown on candidate 12');
      const c12 = st2.fork.candidates[11];
      await page.keyboard.press('=');
      const st3 = await waitChange(st2.version);
      assert(st3.text.startsWith(st2.text + c12.text), 'key = took candidate 12');
    }
  });

  await test('the end of a story: keep writing and undo; axe on the ended view', async () => {
    let st = await newStory('Once upon a time', { max_tokens: 40 });
    for (let i = 0; i < 30 && st.fork; i++) { await page.click('#btn-continue'); st = await waitChange(st.version); }
    eq(st.state, 'ended', 'ended');
    await page.waitForSelector('#btn-keep:not([hidden])');
    assert(await page.isEnabled('#btn-undo'), 'undo at the end');
    await axe('ended', true);
    await page.click('#btn-keep');
    let st2 = await waitChange(st.version);
    while (st2.state === 'ended') st2 = await waitChange(st2.version);
    eq(st2.state, 'at_fork', 'a fork at the last word');
    assert(st2.settings.max_tokens > 40, 'length limit raised');
    assert(st.text.startsWith(st2.text) && st2.text.length < st.text.length, 'at the last word');
    await page.click('#btn-continue');
    const st3 = await waitChange(st2.version);
    assert(st3.n_tokens > st.n_tokens || st3.state === 'at_fork', `writing goes on past the old end: ${st3.n_tokens} > ${st.n_tokens}`);
  });

  await test('phone 390×844 touch: last line and all candidates visible at 20 forks, likeliest first', async () => {
    await openPage({ viewport: { width: 390, height: 844 }, touch: true });
    let st = await newStory('Once upon a time', LONG);
    let forks = 0;
    while (forks < 20) {
      if (!st.fork) { st = await newStory('The cat sat', LONG); continue; }
      const r = await page.evaluate(() => {
        const vh = innerHeight, vw = innerWidth;
        const doc = document.getElementById('doc').getBoundingClientRect();
        const within = (b) => b.top >= -0.5 && b.bottom <= vh + 0.5 && b.left >= -0.5 && b.right <= vw + 0.5;
        const cands = [...document.querySelectorAll('#cloud .cand')];
        const seen = cands.filter((e) => {
          const b = e.getBoundingClientRect();
          if (!within(b)) return false;
          const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
          return hit && (hit === e || e.contains(hit));
        });
        // the last line of the story: the last text before the ghost
        const spans = [...document.querySelectorAll('#doc > span:not(#ghost):not(.caret)')].filter((s) => s.textContent.trim());
        const last = spans[spans.length - 1];
        const rects = last ? [...last.getClientRects()] : [];
        const lr = rects[rects.length - 1];
        const lineOk = !!lr && lr.top >= doc.top - 0.5 && lr.bottom <= doc.bottom + 0.5 && within(doc);
        const c0 = cands[0] && cands[0].getBoundingClientRect();
        const firstOk = cands.every((e) => { const b = e.getBoundingClientRect(); return b.top > c0.top - 1 || (Math.abs(b.top - c0.top) < 1 && b.left >= c0.left); });
        return { n: cands.length, seen: seen.length, lineOk, firstOk, scroll: document.scrollingElement.scrollHeight - vh, minH: Math.min(...cands.map((e) => e.getBoundingClientRect().height)) };
      });
      eq(r.seen, r.n, `fork ${forks}: candidates visible and not covered`);
      assert(r.n >= Math.min(8, st.fork.candidates.length), 'all candidates drawn');
      assert(r.lineOk, `fork ${forks}: the story's last line is visible`);
      assert(r.firstOk, `fork ${forks}: the likeliest candidate is first (top left)`);
      assert(r.scroll <= 1, `fork ${forks}: the page does not scroll (${r.scroll} px)`);
      assert(r.minH >= 44, `fork ${forks}: targets at least 44 px high (${r.minH})`);
      if (forks === 0) await page.screenshot({ path: path.join(OUT, 'view-phone.png') });
      const v = st.version;
      await page.tap(`#cand-${forks % Math.min(4, st.fork.candidates.length)}`);
      st = await waitChange(v);
      forks++;
    }
    console.log(`# phone: ${forks} forks at 390×844, every candidate and the last line visible at each`);
    // typing a word on the phone: the box, its buttons and the narrowed cloud on screen together
    if (!st.fork) st = await newStory('Once upon a time', LONG);
    await page.tap('#btn-type');
    await page.waitForSelector('#typebox:not([hidden])');
    await page.fill('#type-input', 's');
    await page.waitForFunction(() => /Words starting with/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
    const tv = await page.evaluate(() => [...document.querySelectorAll('#cloud .cand, #type-input, #typebox button')].every((e) => {
      const b = e.getBoundingClientRect();
      return b.top >= 0 && b.bottom <= innerHeight && b.left >= 0 && b.right <= innerWidth;
    }) && document.scrollingElement.scrollHeight <= innerHeight + 1);
    await page.screenshot({ path: path.join(OUT, 'view-phone-typing.png') });
    assert(tv, 'typing on the phone: box and narrowed cloud visible without scrolling');
    await page.tap('#type-cancel');
    await axe('phone', true);
  });

  await test('stray taps: a tap on the story costs one action to repair (Redo)', async () => {
    let st = await state();
    if (!st.fork) st = await newStory('Once upon a time', LONG);
    for (let i = 0; i < 3; i++) { const v = st.version; await page.tap('#cand-0'); st = await waitChange(v); }
    assert(st.fork, 'at a fork');
    const before = { text: st.text, fork: st.fork.id };
    for (const sel of ['#doc .w.fork-mark', '#doc .w.auto']) {
      await page.tap(`${sel} >> nth=0`);
      const back = await waitChange(st.version);
      assert(back.text.length < before.text.length, `${sel}: the tap went back`);
      assert(await page.isEnabled('#btn-redo'), 'Redo offered');
      await page.tap('#btn-redo'); // the one action
      st = await waitChange(back.version);
      eq({ text: st.text, fork: st.fork && st.fork.id }, before, `${sel}: one Redo returns to the same text and fork`);
    }
    // Undo then Redo also returns
    await page.tap('#btn-undo');
    const u = await waitChange(st.version);
    assert(u.text.length < before.text.length, 'undo went back');
    await page.tap('#btn-redo');
    st = await waitChange(u.version);
    eq({ text: st.text, fork: st.fork.id }, before, 'redo after undo');
    // and after a reload of the tab
    await page.tap('#doc .w.fork-mark >> nth=0');
    const b2 = await waitChange(st.version);
    await page.reload();
    await page.waitForSelector('#cloud .cand');
    assert(await page.isEnabled('#btn-redo'), 'Redo kept across a reload');
    await page.tap('#btn-redo');
    st = await waitChange(b2.version);
    eq({ text: st.text, fork: st.fork.id }, before, 'redo after a reload');
  });

  await test('every control operated by dwell alone', async () => {
    await openPage({ prefs: { dwell: true, dwellMs: 350, cooldownMs: 200 } });
    let st = await newStory('Once upon a time', LONG);
    const reached = [];
    const vis = (s) => () => page.isVisible(s);
    const hid = (s) => () => page.isHidden(s);
    const changed = (v) => async () => (await state()).version !== v && await page.evaluate(() => !document.getElementById('cloud').matches('[aria-busy="true"]'));
    const d = async (sel, done, what) => { await dwell(sel, done, what); reached.push(what || sel); };
    // toolbar buttons and every panel's Close
    for (const n of ['say', 'stories', 'tree', 'settings', 'help']) {
      await d(`#btn-${n}`, vis(`#panel-${n}`), `toolbar ${n}`);
      await d(`#panel-${n} .panel-close`, hid(`#panel-${n}`), `${n} Close`);
    }
    const spoken0 = await page.evaluate(() => window.__spoken.length);
    await d('#btn-speak', async () => (await page.evaluate(() => window.__spoken.length)) > spoken0, 'Speak');
    // actions
    await d('#btn-type', vis('#typebox'), 'Type');
    await d('#type-cancel', hid('#typebox'), 'Cancel typing');
    if (await page.isVisible('#cand-other')) {
      await d('#cand-other', vis('#typebox'), 'other…');
      await d('#type-cancel', hid('#typebox'), 'Cancel typing');
    }
    await d('#btn-continue', changed(st.version), 'Let it pick'); st = await waitChange(st.version);
    await d('#cand-1', changed(st.version), 'candidate'); st = await waitChange(st.version);
    await d('#cloud .cand-phrase', changed(st.version), '+ phrase'); st = await waitChange(st.version);
    await d('#pv-bar .pv-word', changed(st.version), 'preview word'); st = await waitChange(st.version);
    const full = st.text;
    await d('#btn-undo', changed(st.version), 'Undo'); st = await waitChange(st.version);
    await d('#btn-redo', changed(st.version), 'Redo'); st = await waitChange(st.version);
    eq(st.text, full, 'redo by dwell returns');
    // inside panels
    await d('#btn-say', vis('#panel-say'), 'toolbar say');
    const s1 = await page.evaluate(() => window.__spoken.length);
    await d('#btn-speak-all', async () => (await page.evaluate(() => window.__spoken.length)) > s1, 'Speak all');
    await d('#btn-copy', async () => /Copied/.test(await page.textContent('#say-msg')), 'Copy');
    await d('#panel-say .panel-close', hid('#panel-say'), 'say Close');
    await d('#btn-settings', vis('#panel-settings'), 'toolbar settings');
    const dark0 = await page.getAttribute('#btn-theme', 'aria-pressed');
    await d('#btn-theme', async () => (await page.getAttribute('#btn-theme', 'aria-pressed')) !== dark0, 'Theme');
    await d('#btn-theme', async () => (await page.getAttribute('#btn-theme', 'aria-pressed')) === dark0, 'Theme back');
    await d('#set-share', async () => !(await page.isChecked('#set-share')), 'a check box');
    // number fields and drop-downs have buttons (web/access/fields.js)
    const c0 = Number(await page.inputValue('#set-cooldown-ms'));
    await d('#set-cooldown-ms ~ .fp-nudge:last-of-type', async () => Number(await page.inputValue('#set-cooldown-ms')) === c0 + 50, 'a number field\'s "+"');
    await d('#set-cooldown-ms ~ .fp-nudge:first-of-type', async () => Number(await page.inputValue('#set-cooldown-ms')) === c0, 'a number field\'s "−"');
    await d('#access-box > summary', () => page.$eval('#access-box', (x) => x.open), 'Access settings (open)');
    const sp0 = await page.isChecked('#fp-acc-speak');
    await d('#fp-acc-speak', async () => (await page.isChecked('#fp-acc-speak')) !== sp0, 'an access check box');
    await d('#fp-acc-speak', async () => (await page.isChecked('#fp-acc-speak')) === sp0, 'the access check box back');
    await d('#access-box > summary', () => page.$eval('#access-box', (x) => !x.open), 'Access settings (close)');
    await d('#panel-settings .panel-close', hid('#panel-settings'), 'settings Close');
    await d('#btn-profile', () => page.$eval('#profile-dialog', (x) => x.open), 'toolbar Profile');
    await d('[data-fp="profile-close"]', () => page.$eval('#profile-dialog', (x) => !x.open), 'Profile Close');
    await d('#btn-tree', vis('#panel-tree'), 'toolbar tree');
    await page.waitForSelector('#tree button[data-node]:not([disabled]):not(.current)');
    await d('#tree button[data-node]:not([disabled]):not(.current)', changed(st.version), 'a tree branch');
    st = await waitChange(st.version);
    await d('#panel-tree .panel-close', hid('#panel-tree'), 'tree Close');
    await api('/api/sessions', { method: 'POST', body: JSON.stringify({ prompt: 'A story to delete' }) });
    await d('#btn-stories', async () => (await page.isVisible('#panel-stories')) && (await page.locator('#story-list .open').count()) > 0, 'toolbar stories');
    let dl = null;
    page.once('download', (x) => { dl = x; });
    await d('#btn-export-txt', async () => !!dl, 'Export text');
    eq(fs.readFileSync(await dl.path(), 'utf8'), st.text, 'the story downloaded by dwell');
    // delete a story by dwell: the first press arms, the second deletes
    const n0 = await page.locator('#story-list li').count();
    const del = '#story-list li:has(.open:not([aria-current])) .del';
    await d(del, async () => (await page.textContent(`${del} >> nth=0`)) === 'Delete?', 'Delete (arm)');
    await d(`${del}[data-armed="1"]`, async () => (await page.locator('#story-list li').count()) === n0 - 1, 'Delete (confirm)');
    await d('#panel-stories .panel-close', hid('#panel-stories'), 'stories Close');
    console.log(`# dwell reached ${reached.length} controls: ${reached.join(', ')}`);
  });

  await test('dwell alone (no access mode) types into the opening, the word box and a quick phrase on the letter board', async () => {
    await openPage({ prefs: { dwell: true, dwellMs: 350, cooldownMs: 200 } });
    await page.waitForFunction(() => window.fpAccess);
    eq(await page.evaluate(() => window.fpAccess.settings.mode), 'off', 'no access mode');
    await page.waitForSelector('#prompt');
    assert(await page.isHidden('#fp-letterboard'), 'no board before a text field is chosen');
    const vis = (s) => () => page.isVisible(s), hid = (s) => () => page.isHidden(s);
    const board = vis('#fp-letterboard');
    // letters by dwell: each must land in the field (a repeated letter too)
    const type = async (sel, word) => {
      let want = await page.inputValue(sel);
      for (const ch of word) {
        want += ch;
        const w = want;
        await dwell(`#fp-letterboard [data-key="${ch === ' ' ? '␣' : ch}"]`, async () => (await page.inputValue(sel)) === w, `key ${ch}`);
      }
    };
    // the story's opening: the board comes, types, and its ⏎ starts the story
    const p0 = await page.inputValue('#prompt');
    await dwell('#prompt', board, 'the opening');
    await axe('dwell-letterboard', true);
    await type('#prompt', ' a cool dog');
    await dwell('#fp-letterboard [data-key="⏎"]', vis('#cloud .cand'), 'the board\'s ⏎');
    const st = await state();
    assert(st.text.startsWith(`${p0} a cool dog`), `the story starts with the typed opening: ${JSON.stringify(st.text.slice(0, 40))}`);
    assert(await page.isHidden('#fp-letterboard'), 'the board goes with the opening');
    // the word box: Type a word by dwell, letters narrow the cloud, ✕ closes it
    await dwell('#btn-type', vis('#typebox'), 'Type');
    await page.waitForSelector('#fp-letterboard:not([hidden])');
    await type('#type-input', 'th');
    await dwell('#fp-letterboard [data-key="✕"]', hid('#typebox'), 'the board\'s ✕');
    assert(await page.isHidden('#fp-letterboard'), 'the board goes with the word box');
    // a quick phrase of one's own, added with the board's ⏎
    await dwell('#btn-say', vis('#panel-say'), 'toolbar say');
    await dwell('#phrase-input', board, 'the phrase field');
    await type('#phrase-input', 'hi');
    await dwell('#fp-letterboard [data-key="⏎"]', async () =>
      (await page.$$eval('#phrase-list .phrase', (bs) => bs.map((b) => b.textContent))).includes('hi'), 'the board\'s ⏎');
    assert(await page.isHidden('#fp-letterboard'), 'the board goes once the phrase is added');
    await dwell('#panel-say .panel-close', hid('#panel-say'), 'say Close');
    // dwell off: a click on a text field gets no board
    await page.evaluate(() => { const p = JSON.parse(localStorage.getItem('forkpoint.prefs')); p.dwell = false; localStorage.setItem('forkpoint.prefs', JSON.stringify(p)); });
    await page.goto(srv.url);
    await page.reload();
    await page.click('#btn-say');
    await page.click('#phrase-input');
    await sleep(300);
    assert(await page.isHidden('#fp-letterboard'), 'no board with dwell off');
  });

  await test('speech, copy and quick phrases (kept across reloads)', async () => {
    await openPage();
    const st = await newStory('Once upon a time', LONG);
    await page.click('#btn-say');
    await page.click('#btn-speak-last');
    const spoken = await page.evaluate(() => window.__spoken.slice());
    const lastSentence = st.text.trim().split(/(?<=[.!?…]["'”’)]?)\s+/).filter((p) => p.trim()).pop().trim();
    eq(spoken[spoken.length - 1], lastSentence, 'the last sentence spoken');
    await page.click('#btn-copy');
    await page.waitForFunction(() => /Copied/.test(document.getElementById('say-msg').textContent));
    eq(await page.evaluate(() => navigator.clipboard.readText()), st.text, 'clipboard holds the text');
    await page.fill('#phrase-input', 'I would like a drink');
    await page.click('#phrase-add');
    await page.reload();
    await page.waitForSelector('#cloud .cand');
    await page.click('#btn-say');
    await page.waitForSelector('#phrase-list .phrase');
    eq(await page.textContent('#phrase-list .phrase'), 'I would like a drink', 'phrase kept');
    await axe('say', true);
    await page.click('#phrase-list .phrase');
    eq(await page.evaluate(() => window.__spoken[window.__spoken.length - 1]), 'I would like a drink', 'phrase spoken');
    const v = (await state()).version;
    await page.click('#phrase-list button:text("Write")');
    const st2 = await waitChange(v);
    assert(st2.text.includes('I would like a drink'), 'phrase written into the story');
  });

  await test('effort figures on the page and in the story list; titles from the story text', async () => {
    await page.keyboard.press('Escape');
    let st = await newStory('Once upon a time', LONG);
    for (let i = 0; i < 2; i++) { await page.click('#cand-1'); st = await waitChange(st.version); }
    st = await newStory('Once upon a time', LONG);
    await page.click('#cand-0');
    st = await waitChange(st.version);
    for (let i = 0; i < 3; i++) { await page.click('#cand-0'); st = await waitChange(st.version); }
    const eff = await page.textContent('#effort');
    const m = /^(\d+) actions? for (\d+) characters: ([\d.]+) per character · (-?\d+)% keystrokes saved against typing/.exec(eff);
    assert(m, `effort text: ${eff}`);
    const chars = st.text.length - 'Once upon a time'.length;
    eq(Number(m[2]), chars, 'characters written');
    eq(Number(m[1]), 4, 'actions counted (4 picks)');
    eq(Number(m[3]), Math.round((Number(m[1]) / chars) * 100) / 100, 'actions per character');
    assert(/s per choice/.test(eff), 'time per selection');
    await page.click('#btn-stories');
    await page.waitForSelector('#story-list .open');
    const titles = await page.$$eval('#story-list .open', (els) => els.map((e) => e.firstChild.textContent));
    assert(titles.length >= 2, 'several stories');
    assert(titles.some((t) => t !== 'Once upon a time') && new Set(titles).size > 1, `titles from the text: ${titles.slice(0, 4)}`);
    const smalls = await page.$$eval('#story-list .open small', (els) => els.map((e) => e.textContent));
    // two written on this device, the others (other contexts) read from their state
    assert(smalls.filter((s) => /per character/.test(s)).length >= Math.min(smalls.length, 3), `effort in the list: ${smalls.slice(0, 3)}`);
  });

  await test('the DOM contract for outside input modules (web/access/)', async () => {
    let st = await newStory('Once upon a time', LONG);
    await page.evaluate(() => { window.__t = 0; document.addEventListener('fp:targets', () => { window.__t++; }); });
    const t = () => page.evaluate(() => window.__t);
    // ranks and groups
    const info = await page.evaluate(() => ({
      ranks: [...document.querySelectorAll('#cloud .cand')].map((e) => e.dataset.rank),
      groups: [...document.querySelectorAll('button, [role="button"]')].filter((e) => !e.closest('[hidden]') && !e.closest('#doc'))
        .map((e) => { const g = e.closest('[data-scan-group]'); return g ? g.dataset.scanGroup : `none:${e.id || e.className}`; }),
      toolbar: !!document.querySelector('header[data-fp="toolbar"]'),
      access: document.getElementById('access-settings') && document.getElementById('access-settings').closest('#panel-settings') !== null,
    }));
    eq(info.ranks, st.fork.candidates.map((c, i) => String(i)), 'data-rank in rank order');
    assert(info.groups.every((g) => ['cloud', 'preview', 'actions', 'toolbar', 'panel'].includes(g)), `every control in a scan group: ${info.groups.filter((g) => g.startsWith('none'))}`);
    assert(info.toolbar && info.access, 'toolbar marked, access settings section in Settings');
    const phraseGroup = await page.$eval('#cloud .cand-phrase', (e) => e.closest('[data-scan-group]').dataset.scanGroup);
    eq(phraseGroup, 'preview', '+ phrase is in the preview group');
    // fp:targets on a panel opened and closed, typing mode, a new fork
    let n = await t();
    await page.click('#btn-tree'); await sleep(100);
    assert(await t() > n, 'fp:targets when a panel opens'); n = await t();
    await page.keyboard.press('Escape'); await sleep(100);
    assert(await t() > n, 'fp:targets when it closes'); n = await t();
    await page.click('#btn-type'); await sleep(100);
    assert(await t() > n, 'fp:targets in typing mode');
    // the word box driven by events alone
    await page.evaluate(() => {
      const el = document.querySelector('[data-fp="type-input"]');
      el.value = 'b';
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
    let nst = st;
    for (let i = 0; i < 50 && !(nst.fork && nst.fork.typed_prefix === 'b'); i++) { await sleep(100); nst = await state(); }
    eq(nst.fork.typed_prefix, 'b', 'an input event narrows the cloud');
    await page.evaluate(() => {
      const el = document.querySelector('[data-fp="type-input"]');
      el.value = 'bird';
      el.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', code: 'Enter', bubbles: true, cancelable: true }));
    });
    st = await waitChange(nst.version);
    while (st.fork && st.fork.typed_prefix) st = await waitChange(st.version);
    assert(/ bird/.test(st.text), `a keydown Enter commits: ${st.text.slice(-40)}`);
    // el.click() with a modality named by the outside module
    n = await t();
    const bodyP = page.waitForRequest((r) => /\/choose$/.test(r.url()));
    await page.evaluate(() => { document.body.dataset.fpModality = 'switch'; document.getElementById('cand-0').click(); });
    const body = JSON.parse((await bodyP).postData());
    eq([body.index, body.modality], [0, 'switch'], 'el.click() chooses, with the modality given');
    await waitChange(st.version);
    await page.evaluate(() => { delete document.body.dataset.fpModality; });
    assert(await t() > n, 'fp:targets on a new fork');
  });

  await test('no page errors', async () => {
    eq(pageErrors, [], 'page errors');
  });

  if (page) await page.context().close();
  await browser.close();
  srv.child.kill('SIGTERM');
}

await h.run(main, () => {
  if (srv) srv.child.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});
