/*
 * dwell.js — dwell selection on every control: resting the pointer on a
 * button (candidates, preview words, actions, toolbar, panels, the tree,
 * check boxes, a <details> summary) for the dwell time clicks it, with a progress ring drawn
 * over it and a cooldown after each selection. A text field is focused and
 * clicked: the access layer's letter board (web/access/letterboard.js)
 * then types into it.
 *
 * Why one delegated handler: a control added later (a panel's list, the
 * next fork) needs no wiring, and every control behaves the same. A control
 * that fired is not armed again until the pointer leaves it, so a toggle
 * (a panel button) does not flip back and forth under a resting pointer.
 * The story's words are left out on purpose: a gaze or head pointer rests
 * on the text while reading (the Midas touch); the tree panel and Undo
 * reach every earlier fork instead.
 * Cost: one closest() per pointer event while dwell is on.
 */
import { $, S } from './state.js';

const DWELL_SEL = 'button, summary, [role="button"], [role="treeitem"], input[type="checkbox"], input[type="text"], input[type="number"], textarea, select, a[href]';

let target = null, timer = 0, fired = null;

function ring() { return $('dwell-ring'); }

function armable(el) {
  if (!el || el.disabled || el.closest('#doc, [hidden], [inert], [data-no-dwell]')) return false;
  return true;
}

function place(el) {
  const r = el.getBoundingClientRect();
  const g = ring();
  g.style.left = `${r.left - 5}px`;
  g.style.top = `${r.top - 5}px`;
  g.style.width = `${r.width + 10}px`;
  g.style.height = `${r.height + 10}px`;
}

function start(el) {
  cancelDwell();
  if (performance.now() < S.cooldownUntil) return; // a later pointermove starts it
  target = el;
  const g = ring();
  place(el);
  const rect = g.querySelector('rect');
  rect.style.transitionDuration = '0ms';
  g.classList.remove('run');
  g.hidden = false;
  void g.getBoundingClientRect(); // commit the reset before the transition starts
  rect.style.transitionDuration = `${S.prefs.dwellMs}ms`;
  g.classList.add('run');
  el.classList.add('dwelling');
  timer = setTimeout(() => {
    if (target !== el || !el.isConnected) { cancelDwell(); return; }
    cancelDwell();
    fired = el;
    S.cooldownUntil = performance.now() + S.prefs.cooldownMs;
    S.nextHow = 'dwell';
    if (el.matches('input[type="number"], select')) { S.nextHow = null; el.focus(); }
    // a text field is clicked too: the access layer answers a click on one
    // with its letter board (body[data-fp-dwell], see dwellChanged)
    else if (el.matches('input[type="text"], textarea')) { S.nextHow = null; el.focus(); el.click(); }
    else el.click();
    if (S.nextHow === 'dwell') S.nextHow = null; // the control was not a candidate
  }, S.prefs.dwellMs);
}

export function cancelDwell() {
  clearTimeout(timer);
  if (target) target.classList.remove('dwelling');
  target = null;
  const g = ring();
  if (g) { g.classList.remove('run'); g.hidden = true; }
}

function onPointer(e) {
  if (!S.prefs.dwell || e.pointerType === 'touch') return;
  const el = e.target.closest && e.target.closest(DWELL_SEL);
  if (el !== fired) fired = null;
  if (!armable(el)) { if (target) cancelDwell(); return; }
  if (el === target || el === fired) return;
  start(el);
}

/* Dwell was turned on or off: a ring still running goes, and the body says
 * so (data-fp-dwell="on"), as the DOM contract in app.js promises: the
 * access layer then gives a text field chosen by dwell, and the word box,
 * its letter board, so a dwell user can type with no keyboard. */
export function dwellChanged() {
  document.body.dataset.fpDwell = S.prefs.dwell ? 'on' : 'off';
  if (!S.prefs.dwell) cancelDwell();
}

export function initDwell() {
  dwellChanged();
  document.addEventListener('pointerover', onPointer);
  document.addEventListener('pointermove', onPointer);
  document.addEventListener('pointerleave', () => { fired = null; cancelDwell(); });
  // a target that scrolls or re-renders away takes its ring with it
  document.addEventListener('scroll', () => { if (target) place(target); }, true);
}
