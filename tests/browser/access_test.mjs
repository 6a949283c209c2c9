// access_test.mjs — the page's access layer (web/access/) in Debian's
// chromium: switch scanning with one and two simulated switches over whole
// stories (typing through the letter board included), every kind of switch
// (key, mouse, touch, gamepad, a device on the WebSocket), the scan order
// the benchmark costs, and (gaze section) calibration and dwell driven by
// injected gaze streams and the camera path with Chromium's fake camera.
//
// Why a simulated switch user and not timers: the user watches the
// highlight (window.fpAccess.scanner) and presses a real key, click or tap
// only while the highlight is on the item, or on the group holding the
// item, it wants; the server's state then says whether the intended
// decision was made. Prints "ok - name" / "not ok - name: why" and a final
// "N passed, N failed".
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { repo, SERVE, WS_CLIENT, CHROMIUM, chromeArgs, assert, sleep, harness, startServer as serve,
  storyHelpers, tmpDir } from './lib.mjs';
import { where as whereIs, reach as reachIt, keySwitch as makeKeySwitch } from './scan_user.mjs';

const tmp = tmpDir('fp-access-');
const order = await import(pathToFileURL(path.join(repo, 'web/access/scanorder.js')).href);

let page, ctx, srv;
const h = harness({ shot: 'access-fail', page: () => page });
const { test } = h;
const startServer = () => serve({ dir: tmp });
const { api, sid, state, waitChange } = storyHelpers(() => page, () => srv, { settle: 150, poll: 80, blankOk: true });

/* Waits until the story's text differs from before (a prefix narrowing
 * changes the version but not the text). */
async function waitText(before, timeout = 60000) {
  const t0 = Date.now();
  for (;;) {
    const st = await state();
    if (st.text !== before) { await sleep(200); return st; }
    if (Date.now() - t0 > timeout) throw new Error('the text did not change');
    await sleep(100);
  }
}

/* Opens the page in an access mode and starts a story. */
async function start(query, prompt = 'Once upon a time') {
  await page.goto(`${srv.url}?${query}`);
  await page.evaluate(() => localStorage.removeItem('fp-access'));
  await page.goto(`${srv.url}?${query}`);
  await page.waitForFunction(() => window.fpAccess);
  // the start form's button is a scan target too: start it with the switch user below
  await page.fill('#prompt', prompt);
}

const where = (sel) => whereIs(page, sel);
const reach = (sel, sw, timeout) => reachIt(page, sel, sw, timeout);
const keySwitch = (mode) => makeKeySwitch(page, mode);

const CAND = (r) => `#cloud .cand[data-rank="${r}"], #cloud .cand[data-index="${r}"]`;
const PHRASE = (r) => `#cloud .cand-phrase[data-index="${r}"], #cloud [data-phrase][data-rank="${r}"]`;

/* Writes a story with the switch user: a cycle of goals (the top word, a
 * word inside "more words", a word with its phrase, a preview word, a word
 * typed on the letter board, undo, let it pick), checking after each that
 * the server made exactly that decision. Stops after `forks` decisions or
 * at the end of the story. */
async function writeStory(sw, forks, word) {
  await reach('#start-btn', sw);
  await page.waitForSelector('#cloud .cand', { timeout: 60000 });
  let st = await state();
  const done = [];
  for (let n = 0; n < forks && st.fork; n++) {
    const kind = ['top', 'more', 'phrase', 'pvword', 'type', 'undo', 'continue'][n % 7];
    const before = st.text, c = st.fork.candidates;
    if (kind === 'top' || (kind === 'more' && c.length < 4)) {
      await reach(CAND(0), sw);
      st = await waitChange(st.version);
      assert(st.text.startsWith(before + c[0].text), `top word: ${JSON.stringify(st.text.slice(before.length))}`);
    } else if (kind === 'more') {
      await reach(CAND(3), sw);
      st = await waitChange(st.version);
      assert(st.text.startsWith(before + c[3].text), `4th word ${JSON.stringify(c[3].text)}`);
    } else if (kind === 'phrase') {
      const r = c.findIndex((x) => x.preview && !x.is_eog);
      if (r < 0) { n--; await reach(CAND(0), sw); st = await waitChange(st.version); continue; }
      await reach(PHRASE(r), sw);
      st = await waitChange(st.version);
      assert(st.text.startsWith(before + c[r].text + c[r].preview), 'word with its phrase');
    } else if (kind === 'pvword') {
      const has = await page.$('.pv-word[data-word="1"]');
      if (!has) { await reach(CAND(0), sw); st = await waitChange(st.version); continue; }
      const idx = Number(await has.getAttribute('data-index'));
      await reach('.pv-word[data-word="1"]', sw);
      st = await waitChange(st.version);
      assert(st.text.startsWith(before + c[idx].text) && st.fork, 'a preview word opens a fork there');
    } else if (kind === 'type') {
      await reach('#btn-type', sw);
      await page.waitForSelector('#fp-letterboard:not([hidden])');
      for (const ch of word) for (const key of order.keysFor(ch)) await reach(`#fp-letterboard [data-key="${key}"]`, sw);
      assert((await page.inputValue('#type-input')) === word, 'the board typed the word');
      await reach('#fp-letterboard [data-key="⏎"]', sw);
      st = await waitText(before);
      assert(st.text.startsWith(`${before} ${word}`) || st.text.startsWith(before + word), `typed word in ${JSON.stringify(st.text.slice(-40))}`);
    } else if (kind === 'undo') {
      await reach('#btn-undo', sw);
      st = await waitChange(st.version);
      assert(st.text.length < before.length, 'undo went back');
    } else {
      await reach('#btn-continue', sw);
      st = await waitChange(st.version);
      assert(st.text.startsWith(before) && st.text.length > before.length, 'the model went on');
    }
    done.push(kind);
  }
  return done;
}

async function main() {
  console.log(`# server ${SERVE}\n# chromium ${CHROMIUM}`);
  srv = await startServer();
  const userDir = fs.mkdtempSync(path.join(tmp, 'chrome-'));
  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM, headless: true,
    args: chromeArgs(),
    viewport: { width: 1366, height: 768 }, hasTouch: true,
  });
  page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(30000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await test('Settings start a mode: the Access settings switch two-switch scanning on', async () => {
    await page.goto(srv.url);
    await page.evaluate(() => localStorage.removeItem('fp-access'));
    await page.reload();
    await page.waitForFunction(() => window.fpAccess);
    const sec = await page.$('#access-settings');
    if (!sec) await page.click('#btn-access');   // the page has no section for us: our own dialog
    else {
      await page.click('#btn-settings');
      // the page folds its access settings into a <details>: open it as a person would
      const box = await page.$('#panel-settings details:has(#access-settings)');
      if (box && !(await box.evaluate((d) => d.open))) await page.click('#panel-settings details:has(#access-settings) > summary');
    }
    await page.click('#fp-acc-mode-scan2');   // the access method is a row of buttons (a switch can work them)
    await page.waitForFunction(() => window.fpAccess.scanner && window.fpAccess.settings.mode === 'scan2');
    assert(JSON.parse(await page.evaluate(() => localStorage.getItem('fp-access'))).mode === 'scan2', 'saved');
    await page.evaluate(() => window.fpAccess.set('off'));
    assert(!(await page.evaluate(() => window.fpAccess.scanner)), 'off stops the scan');
  });

  await test('one switch (Space, 300 ms): a whole story of 14 decisions, letter board typing included', async () => {
    await start('access=scan1&interval=300');
    await page.evaluate(() => window.fpAccess.set('scan1', { interval: 300, firstExtra: 100, loops: 4 }));
    const done = await writeStory(keySwitch('scan1'), 14, 'dog');
    assert(done.length >= 8, `decisions: ${done.join(',')}`);
    assert(done.includes('type'), 'typed through the letter board');
  });

  await test('two switches (Tab steps, Enter selects): a whole story of 14 decisions', async () => {
    await start('access=scan2');
    const done = await writeStory(keySwitch('scan2'), 14, 'Tom');
    assert(done.length >= 8 && done.includes('type'), `decisions: ${done.join(',')}`);
  });

  await test('the cloud narrowed under a switch user keeps the highlight where they left it (a key, a row)', async () => {
    // the word box narrows the cloud 180 ms after a letter, when the
    // server answers: by then a switch user has moved on, and a scan that
    // restarted at the top would take their next press for another item
    await start('access=scan2');
    const sw = keySwitch('scan2');
    await reach('#start-btn', sw);
    await page.waitForSelector('#cloud .cand', { timeout: 60000 });
    await reach('#btn-type', sw);
    await page.waitForSelector('#fp-letterboard:not([hidden])');
    // looks for the goal without selecting it: steps, enters its groups
    const lookAt = async (sel, group) => {
      for (let n = 0; n < 200; n++) {
        const r = await where(sel);
        if (r.w === 'on' || (group && r.w === 'in')) return;
        await sw.press(r.w === 'in' ? 'select' : 'step');
        await sleep(20);
      }
      throw new Error(`never looked at ${sel}`);
    };
    const narrowTo = async (v) => {
      const st = await state();
      await page.evaluate((v) => {
        const i = document.getElementById('type-input');
        i.value = v; i.dispatchEvent(new Event('input', { bubbles: true }));
      }, v);
      await waitChange(st.version);
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    };
    const E = '#fp-letterboard [data-key="e"]', ENTER = '#fp-letterboard [data-key="⏎"]';
    await lookAt(E, true);
    const row = await page.evaluate(() => window.fpAccess.scanner.current().label);
    await narrowTo('T');
    const r1 = await where(E);
    const row1 = await page.evaluate(() => window.fpAccess.scanner.current().label);
    assert(r1.w === 'in' && row1 === row, `on the row ${row} before the cloud narrowed, on ${row1} (${r1.w}) after`);
    await lookAt(ENTER, false);
    await narrowTo('To');
    assert((await where(ENTER)).w === 'on', 'still on "use the word" after the cloud narrowed');
    const before = (await state()).text;
    await sw.press('select');
    const st = await waitText(before);
    assert(st.text.startsWith(`${before} To`) || st.text.startsWith(`${before}To`), `the word was used: ${JSON.stringify(st.text.slice(-30))}`);
  });

  await test('the page\'s scan tree at a live fork is the benchmark\'s (scanorder.viewItems)', async () => {
    let st = await state();
    assert(st.fork, 'a fork is open');
    const check = async () => {
    const got = await page.evaluate(async () => {
      const t = await import('/access/targets.js');
      const items = t.collect();
      const id = (it) => {
        const el = it.el;
        if (it.group === 'cloud') return el.classList.contains('other') ? 'other'
          : `${el.classList.contains('cand-phrase') ? 'phrase' : 'cand'}:${el.dataset.rank ?? el.dataset.index}`;
        if (it.group === 'preview') return el.classList.contains('cand-phrase') ? `phrase:${el.dataset.rank}` : `pv:${el.dataset.word}`;
        if (it.group === 'actions') return `act:${el.id}`;
        if (it.group === 'story') return `story:${it.rank}`;
        if (it.group === 'toolbar') return `tool:${items.filter((x) => x.group === 'toolbar').indexOf(it)}`;
        if (it.group === 'typing') return it.row !== undefined ? `key:${el.dataset.key}` : `typebox:${el.id || el.textContent.trim()}`;
        return `${it.group}:${el.id}`;
      };
      return { ids: items.map((it) => ({ id: id(it), group: it.group, rank: it.rank, row: it.row, phrase: it.phrase })),
        pvWords: document.querySelectorAll('.pv-word').length,
        story: items.filter((x) => x.group === 'story').length,
        toolbar: items.filter((x) => x.group === 'toolbar').length,
        actions: items.filter((x) => x.group === 'actions' && x.el.id !== 'cand-other').map((x) => x.el.id),
        typing: items.some((x) => x.group === 'typing' && x.row !== undefined),
        typebox: items.filter((x) => x.group === 'typing' && x.row === undefined).map((x) => x.el.id || x.el.textContent.trim()) };
    });
    const view = { k: st.fork.candidates.length, phrase: st.fork.candidates.map((c) => !!(c.preview && !c.is_eog)),
      pvWords: got.pvWords, other: st.fork.other > 0.005, storyWords: got.story, toolbar: got.toolbar, actions: got.actions,
      typing: got.typing, typebox: got.typebox };
    const shape = (n) => (n.kind === 'leaf' ? n.item.id : n.children.map(shape));
    const pageTree = JSON.stringify(shape(order.buildTree(got.ids.map((x) => ({ ...x, label: x.id })))));
    const benchTree = JSON.stringify(shape(order.buildTree(order.viewItems(view))));
    assert(pageTree === benchTree, `page ${pageTree.slice(0, 300)}\n bench ${benchTree.slice(0, 300)}`);
    // and the fixed controls are the ones the benchmark counts (scanorder.js PAGE)
    assert(JSON.stringify(got.actions.filter((a) => a !== 'btn-redo')) === JSON.stringify(order.PAGE.actions), `actions ${got.actions}`);
    assert(got.toolbar === order.PAGE.toolbar, `toolbar ${got.toolbar}`);
    if (got.typing) assert(JSON.stringify(got.typebox) === JSON.stringify(order.PAGE.typebox), `word box ${got.typebox}`);
    };
    await check();
    // and while typing (the letter board, the word box's buttons)
    await page.evaluate(() => document.getElementById('btn-type').click());
    await page.waitForSelector('#fp-letterboard:not([hidden])');
    await sleep(200);
    st = await state();
    await check();
    await page.evaluate(() => document.getElementById('type-cancel').click());
  });

  await test('a device switch over the WebSocket (ws_client "w select") selects the highlighted word', async () => {
    assert(WS_CLIENT, 'ws_client is not built');
    await start('access=scan2');
    await reach('#start-btn', keySwitch('scan2'));
    await page.waitForSelector('#cloud .cand');
    await sleep(300);
    let st = await state();
    // the scan starts on the words (the top word, or the group it leads):
    // one device press per level down to it
    // (the tree is rebuilt a frame after the page draws the fork: wait for it)
    const levels = await (await page.waitForFunction(() => {
      const sc = window.fpAccess.scanner;
      const walk = (n, acc) => {
        for (let i = 0; i < n.children.length; i++) {
          const c = n.children[i];
          if (c.kind === 'leaf' && c.item.el && c.item.el.isConnected && c.item.el.matches('#cloud .cand[data-rank="0"]')) return acc.concat([i]);
          if (c.kind === 'node') { const p = walk(c, acc.concat([i])); if (p) return p; }
        }
        return null;
      };
      return sc && sc.tree && walk(sc.tree, []);
    }, null, { timeout: 10000 })).jsonValue();
    assert(levels && levels.every((i) => i === 0), `the scan starts on the top word or its group: path ${levels}`);
    execFileSync(WS_CLIENT, ['--port', String(srv.port), '--wait', '300',
      '--script', levels.map(() => 'w select').join('; '), st.id || await sid()], { timeout: 20000 });
    const before = st.text, c0 = st.fork.candidates[0].text;
    st = await waitChange(st.version);
    assert(st.text.startsWith(before + c0), 'the device chose the highlighted word');
  });

  await test('a touch anywhere (even on the story) and a mouse click are the switch, not a stray rewind', async () => {
    let st = await state();
    const before = st.text;
    await page.waitForFunction(() => window.fpAccess.scanner && window.fpAccess.scanner.current());
    const box = await page.locator('#doc').boundingBox();
    const at = () => page.evaluate(() => { const sc = window.fpAccess.scanner; return sc.stack.map((f) => f.i).join('.'); });
    // two switches on a touch screen: the left half steps, the right half
    // selects; a tap on the story's words must not rewind it
    const a0 = await at();
    await page.touchscreen.tap(box.x + 10, box.y + 10);
    await sleep(300);
    assert((await state()).version === st.version, 'a left-half tap only stepped');
    assert(await at() !== a0, 'a left-half tap stepped the highlight');
    const touch = { mode: 'scan2', press: (k) => page.touchscreen.tap(k === 'step' ? box.x + 10 : box.x + box.width - 30, box.y + 10) };
    let c0 = st.fork.candidates[0].text;
    await reach(CAND(0), touch);
    st = await waitChange(st.version);
    assert(st.text.startsWith(before + c0), 'the taps chose the word, they did not rewind');
    // a mouse: the left button selects, the right one steps (on the story too)
    const b2 = st.text;
    c0 = st.fork.candidates[0].text;
    const mouse = { mode: 'scan2', press: (k) => page.mouse.click(box.x + 12, box.y + 12, { button: k === 'step' ? 'right' : 'left' }) };
    await sleep(200);
    await reach(CAND(0), mouse);
    st = await waitChange(st.version);
    assert(st.text.startsWith(b2 + c0), 'the clicks chose the word');
  });

  await test('one switch pauses after its loops, the switch resumes; items are spoken aloud', async () => {
    await start('access=scan1');
    await page.evaluate(() => {
      window.__spoken = [];
      const real = speechSynthesis.speak.bind(speechSynthesis);
      speechSynthesis.speak = (u) => { window.__spoken.push(u.text); real(u); };
      return window.fpAccess.set('scan1', { interval: 200, firstExtra: 0, loops: 1, speak: true });
    });
    await page.waitForFunction(() => window.fpAccess.scanner.paused, null, { timeout: 15000 });
    assert(/paused/i.test(await page.textContent('#fp-access-status')), 'paused is shown');
    await page.keyboard.press('Space');
    await page.waitForFunction(() => !window.fpAccess.scanner.paused);
    const spoken = await page.evaluate(() => window.__spoken);
    assert(spoken.length >= 2, `spoken: ${JSON.stringify(spoken)}`);
  });

  await test('the highlight is strong in light, dark and forced colours', async () => {
    await page.evaluate(() => window.fpAccess.set('scan2'));
    for (const media of [{ colorScheme: 'light' }, { colorScheme: 'dark' }, { forcedColors: 'active' }]) {
      await page.emulateMedia(media);
      await sleep(100);
      const s = await page.$eval('.fp-hl', (el) => {
        const cs = getComputedStyle(el);
        return { d: cs.display, w: parseFloat(cs.borderTopWidth), o: parseFloat(cs.outlineWidth), c: cs.borderTopColor };
      });
      assert(s.d === 'block' && s.w >= 4 && s.o >= 2, `${JSON.stringify(media)}: ${JSON.stringify(s)}`);
    }
    await page.emulateMedia({ colorScheme: 'light', forcedColors: 'none' });
  });

  await test('a gamepad button is the switch (Gamepad API polled)', async () => {
    // no gamepad on a CI machine: the browser's getGamepads() is replaced by
    // one pad whose button 0 the test presses; the polling code is the page's.
    await page.evaluate(() => {
      window.__pad = { index: 0, buttons: Array.from({ length: 4 }, () => ({ pressed: false })) };
      navigator.getGamepads = () => [window.__pad];
      return window.fpAccess.set('scan2', { gamepad: true });
    });
    await reach('#start-btn', keySwitch('scan2'));
    await page.waitForSelector('#cloud .cand');
    await sleep(300);
    let st = await state();
    const before = st.text;
    await page.waitForFunction(() => window.fpAccess.scanner.current());
    const label = () => page.evaluate(() => { const c = window.fpAccess.scanner.current(); return c.kind === 'leaf' ? c.item.label : c.label; });
    const pad = { mode: 'scan2', press: async (k) => {
      const b = k === 'step' ? 1 : 0;   // B steps, A selects
      await page.evaluate((b) => { window.__pad.buttons[b].pressed = true; }, b);
      await sleep(150);
      await page.evaluate((b) => { window.__pad.buttons[b].pressed = false; }, b);
      await sleep(150);
    } };
    const first = await label();
    await pad.press('step');
    const on = await label();
    assert(on !== first, `B stepped on from ${first}`);
    const c0 = st.fork.candidates[0].text;
    await reach(CAND(0), pad);
    st = await waitChange(st.version);
    assert(st.text.startsWith(before + c0), 'the pad selected');
  });

  await test('no page errors', async () => { assert(!errors.length, errors.join('; ')); });

  if (process.env.FP_ACCESS_GAZE !== '0') {
    const gaze = await import('./access_gaze.mjs');
    await gaze.run({ test, assert, sleep, page: () => page, srv: () => srv, start, state, waitChange, CHROMIUM, tmp });
  }

  await ctx.close();
  srv.child.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(h.finish());
}

main().catch((e) => process.exit(h.finish(e.stack || e)));
