// chat_test.mjs — chat mode on the page (web/page/chat.js) against a real
// server with the random-weight Phi-3 model (mk/models.mk), in Debian's
// chromium: start a chat, the assistant's reply co-written, the person's
// own message predicted and typed, the conversation shown without the
// template's control text; every input method reaches the chat's controls
// (keyboard, dwell, two-switch scanning); a reload and the story list
// bring the chat back; axe-core finds no violation on the chat view, on a
// desktop and on a phone (390x844, touch).
//
// Helpers are tests/browser/lib.mjs's and the switch user scan_user.mjs's.
// Prints "ok - name" / "not ok - name: why" and "N passed, N failed".
import { chromium } from 'playwright-core';
import { CHROMIUM, repo, pick, chromeArgs, assert, eq, sleep, harness, startServer, storyHelpers, tmpDir, axe, dwell } from './lib.mjs';
import { reach, keySwitch } from './scan_user.mjs';

const PHI = pick(process.env.FORKPOINT_PHI3, `${repo}/build/models/tiny-phi-3.gguf`);
const tmp = tmpDir('fp-chat-page-');
let page = null, browser = null, srv = null;
const h = harness({ shot: 'chat-fail', page: () => page });
const { test } = h;
const { state, waitChange } = storyHelpers(() => page, () => srv, { settle: 120, poll: 80 });
const SETTINGS = { k: 4, beam_width: 8, lookahead: 4, max_tokens: 10 };

async function openPage({ viewport = { width: 1366, height: 768 }, touch = false, query = '', dwellOn = false } = {}) {
  if (page) await page.context().close();
  const ctx = await browser.newContext({ viewport, hasTouch: touch, isMobile: touch });
  page = await ctx.newPage();
  page.setDefaultTimeout(30000);
  await page.goto(srv.url + query);
  await page.evaluate(([s, d]) => {
    localStorage.setItem('forkpoint.prefs', JSON.stringify({ dwell: d, settings: s }));
    localStorage.removeItem('fp-access');
  }, [SETTINGS, dwellOn]);
  await page.goto(srv.url + query);
  await page.reload();
}
const visible = (sel) => page.isVisible(sel);
/* The chat's messages as the page shows them. */
const shown = () => page.$$eval('#chat-log li', (els) => els.map((e) => e.textContent));
/* Decides the open turn with the top candidate until it is a message. */
async function finishTurn() {
  for (let i = 0; i < 40; i++) {
    const st = await state();
    if (!st.turn) return st;
    if (st.state !== 'at_fork') { await page.click('#chat-end'); await waitChange(st.version); continue; }
    await page.click('#cloud .cand[data-rank="0"]');
    await waitChange(st.version);
  }
  throw new Error('the turn did not end');
}

await h.run(async () => {
  assert(PHI, 'build/models/tiny-phi-3.gguf is missing (make build/models/tiny-phi-3.gguf)');
  srv = await startServer({ dir: tmp, model: PHI });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: chromeArgs() });
  await openPage();

  await test('start a chat; the assistant replies, steered at its forks', async () => {
    await page.fill('#chat-system', 'Be brief.');
    await page.click('#chat-start-btn');
    await page.waitForSelector('#chat-reply:not([hidden])');
    eq(await shown(), ['Instructions: Be brief.'], 'the system prompt is shown');
    assert(await visible('#chat-say') && await visible('#chat-me'), 'between turns: type, or write with the model');
    await page.fill('#chat-text', 'Hello there.');
    let v = (await state()).version;
    await page.click('#chat-say button[type="submit"]');
    await waitChange(v);
    v = (await state()).version;
    await page.click('#chat-reply');
    await waitChange(v);
    await page.waitForSelector('#cloud .cand');
    assert(await visible('#chat-end') && !(await visible('#chat-reply')), 'a turn is open: End message, no Reply');
    const doc = await page.textContent('#doc');
    assert(!/<\|/.test(await page.innerText('#doc')), `no template text in the story box: ${doc.slice(0, 120)}`);
    const st = await finishTurn();
    eq(st.messages.map((m) => m.role), ['system', 'user', 'assistant'], 'roles');
    const lines = await shown();
    eq(lines.length, 3, 'three messages shown');
    assert(lines[2].startsWith('Assistant:') && !/<\|/.test(lines[2]), lines[2]);
  });

  await test('keyboard: Tab to "Write my message", Enter; the model predicts the person\'s side', async () => {
    await page.focus('#chat-reply');
    await page.keyboard.press('Tab');
    eq(await page.evaluate(() => document.activeElement.id), 'chat-me', 'focus');
    const v = (await state()).version;
    await page.keyboard.press('Enter');
    const st = await waitChange(v);
    eq(st.turn && st.turn.role, 'user', 'the person\'s turn is open');
    await page.keyboard.press('1');   // digits pick candidates in a chat as in a story
    await waitChange(st.version);
    const after = await finishTurn();
    eq(after.messages[3].role, 'user', 'committed as the person\'s message');
  });

  await test('undo goes back into the message before', async () => {
    const st = await state();
    await page.click('#btn-undo');
    const u = await waitChange(st.version);
    eq([u.messages.length, u.turn && u.turn.role], [3, 'user'], 'reopened');
    await finishTurn();
  });

  await test('a reload and the story list bring the chat back', async () => {
    const before = await shown();
    await page.reload();
    await page.waitForSelector('#chat-log li');
    eq(await shown(), before, 'same conversation after a reload');
    await page.click('#btn-stories');
    await page.waitForSelector('#story-list li');
    const titles = await page.$$eval('#story-list li', (els) => els.map((e) => e.textContent));
    assert(titles.some((t) => t.includes('Be brief.') || t.includes('Hello there.')), `listed: ${titles.join(' | ').slice(0, 200)}`);
    await page.click('#panel-stories .panel-close');
  });

  await test('axe: the chat view, between turns and with a turn open (desktop)', async () => {
    await axe(page, 'chat', true);
    const v = (await state()).version;
    await page.click('#chat-reply');
    await waitChange(v);
    await page.waitForSelector('#cloud .cand');
    await axe(page, 'chat-turn', true);
    await finishTurn();
  });

  await test('dwell reaches the chat\'s controls', async () => {
    const id = (await state()).id;
    await openPage({ dwellOn: true });
    await page.goto(`${srv.url}#s=${id}`);
    await page.waitForSelector('#chat-reply:not([hidden])');
    const v = (await state()).version;
    await dwell(page, '#chat-reply', async () => (await state()).version !== v, 'Assistant replies');
    let now = await waitChange(v);
    await sleep(1000);   // the page's cooldown (800 ms) after the reply came
    if (!now.turn.text.trim()) {   // End needs words: take one by dwell first
      await dwell(page, '#cloud .cand[data-rank="0"]', async () => (await state()).version !== now.version, 'a candidate');
      now = await waitChange(now.version);
      await sleep(1000);
    }
    await page.waitForSelector('#chat-end:not([hidden]):not([disabled])');
    const v2 = (await state()).version;
    await dwell(page, '#chat-end', async () => { const s = await state(); return s.version !== v2 && !s.turn; }, 'End message');
    const st = await state();
    assert(!st.turn && st.messages[st.messages.length - 1].role === 'assistant', 'the reply was ended by dwell');
  });

  await test('two switches (Tab steps, Enter selects) reach the chat\'s controls', async () => {
    const id = (await state()).id;
    await openPage({ query: '?access=scan2' });
    await page.goto(`${srv.url}?access=scan2#s=${id}`);
    await page.waitForFunction(() => window.fpAccess);
    await page.waitForSelector('#chat-me:not([hidden])');
    const sw = keySwitch(page, 'scan2');
    const v = (await state()).version;
    await reach(page, '#chat-me', sw);
    const st = await waitChange(v);
    eq(st.turn && st.turn.role, 'user', 'the switch opened the person\'s turn');
    if (!st.turn.text.trim()) {   // End needs words: the switch takes the top one first
      await reach(page, '#cloud .cand[data-rank="0"]', sw);
      await waitChange(st.version);
    }
    await page.waitForSelector('#chat-end:not([hidden]):not([disabled])');
    await reach(page, '#chat-end', sw);
    const deadline = Date.now() + 30000;
    let now = await state();
    while (now.turn && Date.now() < deadline) { await sleep(200); now = await state(); }
    assert(!now.turn, 'the switch ended the message');
  });

  await test('phone 390x844 (touch): the chat and its cloud fit; axe finds nothing', async () => {
    const id = (await state()).id;
    await openPage({ viewport: { width: 390, height: 844 }, touch: true });
    await page.goto(`${srv.url}#s=${id}`);
    await page.waitForSelector('#chat-reply:not([hidden])');
    await axe(page, 'chat-phone', true);
    const v = (await state()).version;
    await page.tap('#chat-reply');
    await waitChange(v);
    await page.waitForSelector('#cloud .cand');
    const fits = await page.evaluate(() => [...document.querySelectorAll('#cloud .cand, #chat-end, #chat-log')]
      .every((e) => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight + 1 && r.height > 0; }));
    assert(fits, 'the candidates, End message and the conversation are on screen without scrolling');
    await axe(page, 'chat-phone-turn', true);
  });
}, async () => { if (browser) await browser.close(); if (srv) srv.child.kill('SIGTERM'); }, 'chat page');
