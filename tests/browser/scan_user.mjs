// scan_user.mjs — the simulated switch user of the scanning tests
// (access_test.mjs, access_settings_test.mjs): where the highlight is
// relative to a goal, and a user who presses select when the highlight is
// on the goal or a group holding it, steps (two switches) or waits (one
// switch) otherwise.
//
// Why shared: both tests drive the page's own scanner (web/access/scan.js)
// with real key presses; the user's rule must be the same in both.
import { sleep } from './lib.mjs';

/* Where the goal element is relative to the highlight: 'on' (the leaf),
 * 'in' (a group holding it), 'off', 'paused', 'absent'; age = ms since the
 * highlight moved there; interval = the scanner's step time now. */
export function where(page, sel) {
  return page.evaluate((sel) => {
    const sc = window.fpAccess.scanner;
    if (!sc) return { w: 'none' };
    if (sc.paused) return { w: 'paused' };
    const goal = document.querySelector(sel);
    if (!goal) return { w: 'absent' };
    const c = sc.current();
    if (!c) return { w: 'none' };
    const leaves = (n) => (n.kind === 'leaf' ? [n.item.el] : n.children.flatMap(leaves));
    const age = performance.now() - sc.since, interval = sc.o.interval;
    if (c.kind === 'leaf') return { w: c.item.el === goal ? 'on' : 'off', age, interval };
    return { w: leaves(c).includes(goal) ? 'in' : 'off', age, interval };
  }, sel);
}

/* The simulated switch user: presses select when the highlight is on the
 * goal or its group (never in the last 120 ms of a step, so the press
 * cannot land on the next item), steps (two switches) or waits (one
 * switch) otherwise. Returns the number of presses. */
export async function reach(page, sel, sw, timeout = 60000) {
  const t0 = Date.now();
  let presses = 0;
  // two switches are paced by the presses alone: what bounds the search is
  // the number of presses (a scan that never lands on the target runs out
  // of them), and the clock only guards against a hang (a loaded machine
  // makes each press slow, not the scan wrong)
  const budget = sw.mode === 'scan2' ? 600 : Infinity;
  if (sw.mode === 'scan2') timeout = Math.max(timeout, 300000);
  for (;;) {
    if (Date.now() - t0 > timeout) throw new Error(`never reached ${sel} (${presses} presses)`);
    if (presses > budget) throw new Error(`never reached ${sel} in ${presses} presses`);
    const r = await where(page, sel);
    const late = sw.mode === 'scan1' && r.age > r.interval - 120;
    if (r.w === 'on' && !late) { await sw.press('select'); presses++; return presses; }
    if (r.w === 'in' && !late) { await sw.press('select'); presses++; await sleep(40); continue; }
    if (r.w === 'paused') { await sw.press('select'); presses++; continue; }
    if (r.w === 'off' && sw.mode === 'scan2') { await sw.press('step'); presses++; await sleep(15); continue; }
    await sleep(r.w === 'absent' || r.w === 'none' ? 60 : 20);
  }
}

/* A switch made of keys: Tab steps, Enter (two switches) or Space (one)
 * selects; sw.keys may be changed when the person sets other keys. */
export function keySwitch(page, mode) {
  const sw = {
    mode,
    keys: { step: 'Tab', select: mode === 'scan2' ? 'Enter' : 'Space' },
    press: (kind) => page.keyboard.press(kind === 'step' ? sw.keys.step : sw.keys.select),
  };
  return sw;
}
