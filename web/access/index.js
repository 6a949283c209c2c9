/*
 * index.js — the access layer of the page: switch scanning (one or two
 * switches), dwell on every control, camera gaze and head pointer, and the
 * letter board. Loaded last by index.html as a module; it never touches
 * the page's internals: it reads the page's controls (targets.js) and works
 * them as a person would (el.click(), the word box's input events).
 *
 * Why a separate layer: every input method must reach every control, and
 * the page's own code stays one concern (rendering and talking to the
 * server). Number fields, sliders and drop-downs get "−"/"+" buttons
 * (fields.js), text fields the letter board (also while only the page's own
 * dwell is on). The page announces new targets with "fp:targets"; a
 * MutationObserver covers a page that does not.
 *
 * window.fpAccess is the hook for tests and for carers' scripts: the
 * current settings, the scanner's log, and feed() for injected gaze.
 */
import * as settings from './settings.js';
import { Scanner } from './scan.js';
import { Switches } from './switches.js';
import * as board from './letterboard.js';
import * as fields from './fields.js';
import * as hl from './highlight.js';

const S = settings.load();
let scanner = null, switches = null, pointer = null, pending = 0;

/* The stylesheet of this layer (CSP: style from 'self'). */
function addStyle() {
  const l = document.createElement('link');
  l.rel = 'stylesheet'; l.href = '/access/access.css';
  document.head.appendChild(l);
}

/* Whether the letter board serves text fields: in every mode of ours, and
 * while the page's own dwell is on (body[data-fp-dwell], app.js's
 * contract), so a dwell user can type into the opening or a phrase. */
function boardOn() { return S.mode !== 'off' || document.body.dataset.fpDwell === 'on'; }

/* What a switch press does in the current mode. */
function onSwitch(kind, source) {
  document.dispatchEvent(new CustomEvent('fp:switch', { detail: { kind, source } }));
  if (scanner) { if (kind === 'step') scanner.step(); else scanner.select(); return; }
  if (pointer && kind === 'select') pointer.confirm(source);
}

function keyList(s) { return String(s || '').split(/\s+/).filter(Boolean); }

/* Starts the mode in S (stopping the previous one). A scanner that goes on
 * in the same mode is kept, with its new timing, where its highlight is:
 * changing a setting by scanning must not send the person back to the top. */
async function apply() {
  const scanning = S.mode === 'scan1' || S.mode === 'scan2';
  const keep = scanner && scanning && scanner.o.mode === S.mode;
  if (scanner && !keep) { scanner.stop(); scanner = null; }
  if (switches) { switches.stop(); switches = null; }
  if (pointer) { pointer.stop(); pointer = null; }
  if (!keep) { hl.hide(); hl.status(''); }
  document.body.classList.toggle('fp-access-on', S.mode !== 'off');
  document.body.dataset.access = S.mode;
  const needSwitch = scanning || ((S.mode === 'gaze' || S.mode === 'head' || S.mode === 'dwell') && S.hybrid);
  board.sync(boardOn());
  if (needSwitch) {
    const step = S.mode === 'scan2' ? keyList(S.stepKeys) : [];
    switches = new Switches({
      keys: { select: keyList(S.selectKeys), step },
      mouse: S.mouse && scanning, touch: S.touch, gamepad: S.gamepad, device: S.device,
      twoZones: S.mode === 'scan2',
    }, onSwitch);
    switches.start();
  }
  if (scanning) {
    const opts = { mode: S.mode, interval: Number(S.interval), firstExtra: Number(S.firstExtra),
      loops: Number(S.loops), speak: !!S.speak };
    if (keep) { Object.assign(scanner.o, opts); scanner.arm(); }
    else { scanner = new Scanner(opts); scanner.start(); }
  } else if (S.mode === 'dwell' || S.mode === 'gaze' || S.mode === 'head') {
    const { Pointer } = await import('./pointer.js');
    pointer = new Pointer(S);
    await pointer.start();
  }
  api.scanner = scanner; api.pointer = pointer;
}

/* The page's targets changed: redo the board and the scan tree (batched to
 * one frame). */
function changed(records) {
  if (Array.isArray(records) && records.every((r) => ours(r.target))) return;
  if (pending) return;
  pending = requestAnimationFrame(() => {
    pending = 0;
    fields.sync();
    board.sync(boardOn());
    if (switches) switches.connect();   // the page names its story with replaceState: no hashchange
    if (scanner) scanner.refresh(false);
    if (pointer) pointer.refresh();
  });
}

/* Mutations of our own overlay are not the page's targets changing. */
function ours(node) {
  const el = node.nodeType === 1 ? node : node.parentElement;
  return !!(el && el.closest('#fp-access-overlay, #fp-access-status'));
}

const api = {
  settings: S, scanner: null, pointer: null,
  set(mode, extra) { Object.assign(S, extra || {}, { mode }); settings.save(S); return apply(); },
  feed(sample) { if (pointer) pointer.feed(sample); },
};
window.fpAccess = api;

function init() {
  addStyle();
  settings.mount(S, () => apply());
  document.addEventListener('fp:targets', changed);
  new MutationObserver(changed).observe(document.body, { subtree: true, childList: true, attributes: true,
    attributeFilter: ['hidden', 'disabled', 'class', 'open', 'data-fp-dwell'] });
  addEventListener('resize', changed);
  addEventListener('scroll', changed, true);
  // a text field chosen by a scan, a dwell or a click gets the letter
  // board (not mere focus: the page focuses the opening on its own)
  document.addEventListener('click', (e) => { if (boardOn()) board.hold(e.target); }, true);
  fields.sync();
  apply();
  document.dispatchEvent(new CustomEvent('fp:access-ready'));
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
