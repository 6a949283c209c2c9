/*
 * state.js — the page's one state object, the person's preferences
 * (localStorage) and the small helpers every module uses.
 *
 * Why one object: the modules (rendering, input methods, connection,
 * panels) all read the same facts — which session, which state document,
 * which target is active — and must agree on them; a single S, mutated
 * only by the module that owns each field (noted below), keeps that simple.
 * Cost: nothing beyond the fields.
 */

export const $ = (id) => document.getElementById(id);

const PREFS_KEY = 'forkpoint.prefs';
const DEFAULT_PREFS = {
  dwell: false, dwellMs: 1000, cooldownMs: 800, longPressMs: 500,
  share: true, theme: null, settings: {},
};

export function loadPrefs() {
  try {
    const p = JSON.parse(localStorage.getItem(PREFS_KEY) || '{}');
    return Object.assign({}, DEFAULT_PREFS, p);
  } catch (e) { return Object.assign({}, DEFAULT_PREFS); }
}

export const S = {
  // render.js: the session and the state document on screen
  sid: null, state: null, version: 0, shownFork: null, tSelect: 0,
  // cloud.js: the active target (pointer, focus, touch) and the preview row
  active: -1, activePhrase: false, activeFrom: null, // 'pointer' | 'focus' | 'touch'
  activeUpto: -1, // byte offset of the preview word pointed at (-1: none)
  pinned: 0, pinTimer: 0, remote: -1, focusIdx: 0, order: [],
  // actions.js: one decision at a time, the way back (redo), typing
  busy: false, redo: [], prefixTimer: 0, prefixSent: '', prefixInflight: null, cooldownUntil: 0, cooldownTimer: 0,
  // pointer.js: touch long-press
  longTimer: 0, longFired: false,
  // ws.js: the WebSocket
  ws: null, wsTimer: 0, wsBackoff: 500, clientNo: 0,
  // panels.js: adapter strengths (server-wide)
  adapters: {}, adapterDirty: new Set(), adapterTimer: 0, adapterBusy: false,
  errTimer: 0, model: '', modelFile: '', models: null, // models.js
  prefs: loadPrefs(),
};

export function savePrefs() {
  try { localStorage.setItem(PREFS_KEY, JSON.stringify(S.prefs)); } catch (e) { /* private mode */ }
}

/* Tells other modules (web/access/: scanning, gaze, head pointer) that the
 * set of targets changed: a new fork, a panel opened or closed, typing
 * mode. Coalesced to one event per frame, since a render may change
 * several parts at once. */
let targetsQueued = false;
export function targetsChanged() {
  if (targetsQueued) return;
  targetsQueued = true;
  requestAnimationFrame(() => {
    targetsQueued = false;
    document.dispatchEvent(new CustomEvent('fp:targets'));
  });
}

/* Shows an error in the status bar for 8 s (role=alert reads it out). */
export function showError(msg) {
  const el = $('error');
  el.textContent = msg;
  clearTimeout(S.errTimer);
  S.errTimer = setTimeout(() => { el.textContent = ''; }, 8000);
}
