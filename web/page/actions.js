/*
 * actions.js — the person's decisions: take a candidate, type a word, let
 * the model pick, undo, redo, go back to an earlier point, keep writing
 * after the end. Each is one request to the JSON API whose answer is the
 * new state; it names the version (and fork) on screen, so the server
 * refuses it with 409 if another client changed the session first.
 *
 * Nothing is ever lost by going back: the server keeps every branch in the
 * tree, and this file remembers where the person was before each step back
 * (S.redo), so Redo returns there in one action — a stray click or tap on
 * the story costs exactly one action to repair. A new decision forward
 * clears the redo list (the old branch stays in the tree).
 */
import { $, S, showError, targetsChanged } from './state.js';
import { api, sessPath } from './api.js';
import { render } from './render.js';
import { cancelDwell } from './dwell.js';
import { countActions } from './effort.js';

/* Runs one decision request. kind: 'forward' (clears redo), 'back'
 * (remembers where we were), 'redo' (neither); cost: the person's actions
 * it took (counted once it is done, see effort.js). */
export async function decide(path, body, kind, cost) {
  if (S.busy || !S.sid) return null;
  const st0 = S.state;
  const f = st0 && st0.fork;
  body = Object.assign({ version: S.version }, body);
  if (f && path !== '/goto' && path !== '/settings') body.fork_id = f.id;
  const back = kind === 'back' ? returnPoint(st0) : null;
  S.busy = true;
  $('cloud').setAttribute('aria-busy', 'true');
  S.tSelect = performance.now();
  try {
    // Why it retries: behind nginx, a selection (which may have cost a
    // switch user many seconds) must survive the server holding the story
    // dying mid-request; a 503 marked retryable is sent again, unchanged
    // (up to 3 times, as Retry-After says): the fork and version it names
    // make that safe, a choice already made being answered 409 with the
    // state. A 409 marked retryable (another server saved first) shows the
    // current state.
    let st, retried = false;
    for (let attempt = 0; ; attempt++) {
      try {
        st = await api('POST', sessPath(path), body);
        break;
      } catch (e) {
        if (!(e.retryable && e.status === 503 && attempt < 3)) throw e;
        showError('the server is busy taking over this story; trying again');
        retried = true;
        await new Promise((r) => setTimeout(r, e.retryAfterMs));
      }
    }
    if (retried) showError('');
    if (kind === 'forward') S.redo = [];
    if (back) S.redo.push(back);
    saveRedo();
    countActions(cost || 0);
    render(st, { keepFocus: true });
    return st;
  } catch (e) {
    S.tSelect = 0;
    if (e.state && !(e.state.version <= S.version)) render(e.state);
    else if (e.retryable && e.status === 409) {
      const now = await api('GET', sessPath()).catch(() => null);
      if (now) render(now);
    }
    showError(e.message);
    return null;
  } finally {
    S.busy = false;
    $('cloud').setAttribute('aria-busy', 'false');
    startCooldown();
  }
}

/* The redo list survives a reload of the tab (sessionStorage, per story). */
const redoKey = () => `forkpoint.redo.${S.sid}`;
function saveRedo() {
  try { sessionStorage.setItem(redoKey(), JSON.stringify(S.redo.slice(-100))); } catch (e) { /* private mode */ }
}
export function loadRedo() {
  try {
    const a = JSON.parse(sessionStorage.getItem(redoKey()) || '[]');
    S.redo = Array.isArray(a) ? a.filter((p) => p && Number.isInteger(p.fork)) : [];
  } catch (e) { S.redo = []; }
}

/* Where Redo comes back to: the open fork, or, for an ended story, its
 * last decided fork and the choice made there (replayed). */
function returnPoint(st) {
  if (!st) return null;
  if (st.fork) return { fork: st.fork.id };
  const pf = st.path_forks || [];
  const last = pf[pf.length - 1];
  return last ? { fork: last.id, replay: { choice: last.choice, text: last.choice_text } } : null;
}

function startCooldown() {
  const ms = S.prefs.cooldownMs;
  S.cooldownUntil = Math.max(S.cooldownUntil, performance.now() + ms);
  const cloud = $('cloud');
  cloud.classList.add('cooldown');
  clearTimeout(S.cooldownTimer);
  S.cooldownTimer = setTimeout(() => cloud.classList.remove('cooldown'), ms);
}

/* Takes candidate i: alone, with its whole preview (phrase), or with the
 * preview up to byte offset upto (a fork opens there). */
export function choose(i, phrase, modality, upto) {
  const fork = S.state && S.state.fork;
  if (!fork || i < 0 || i >= fork.candidates.length) return null;
  cancelDwell();
  const typed = !$('typebox').hidden ? $('type-input').value.length : 0;
  if (typed) hideTypebox();
  const body = upto !== undefined && upto >= 0
    ? { index: i, preview_upto: upto, modality: modality || 'keyboard' }
    : { index: i, accept_preview: !!phrase, modality: modality || 'keyboard' };
  return decide('/choose', body, 'forward', 1 + typed);
}

export const continueAuto = () => decide('/continue', {}, 'forward', 1);
export const undo = () => decide('/undo', {}, 'back', 1);
export const gotoFork = (id) => decide('/goto', { fork_id: id }, 'back', 1);
export const gotoOffset = (off) => decide('/goto', { offset: off }, 'back', 1);
/* The person's own text; keys: what it cost (letters and Enter, or 1 for a quick phrase). */
export const typeText = (text, keys) => decide('/type', { text }, 'forward', keys === undefined ? text.length + 1 : keys);

/* Returns to where the person was before the last step back. */
export async function redo() {
  const p = S.redo.pop();
  if (!p) return null;
  const st = await decide('/goto', { fork_id: p.fork }, 'redo', 1);
  if (!st) { S.redo.push(p); return null; }
  saveRedo();
  if (p.replay && st.fork) return replay(st.fork, p.replay);
  return st;
}

/* Takes again the choice made at a fork (Redo back to an ended story). */
function replay(fork, r) {
  const c = fork.candidates;
  let i = c.findIndex((x) => x.text === r.text);
  if (r.choice !== 'typed' && i >= 0) return decide('/choose', { index: i, modality: 'redo' }, 'redo');
  i = c.findIndex((x) => x.text + x.preview === r.text);
  if (r.choice !== 'typed' && i >= 0) return decide('/choose', { index: i, accept_preview: true, modality: 'redo' }, 'redo');
  if (r.text) return decide('/type', { text: r.text, modality: 'redo' }, 'redo');
  return decide('/continue', { modality: 'redo' }, 'redo');
}

/* After the end: raise the length limit if that is what ended it, and
 * open a fork at the last word, so the person can pick how it goes on
 * (or let the model pick). */
export async function keepWriting() {
  const st = S.state;
  if (!st || st.fork || !st.tokens.length) return null;
  if (st.end_reason === 'max_tokens' && st.settings && st.settings.max_tokens > 0) {
    const more = await decide('/settings', { settings: { max_tokens: st.n_tokens + 200 } }, 'redo');
    if (!more) return null;
  }
  const last = S.state.tokens[S.state.tokens.length - 1];
  return decide('/goto', { offset: last[0] }, 'back', 1);
}

/* ---------------------------------------------------- typing a word */

export function openTypebox(initial, quiet) {
  const box = $('typebox'), input = $('type-input');
  const was = box.hidden;
  box.hidden = false;
  if (initial !== undefined && input.value === '') input.value = initial;
  if (!quiet) input.focus();
  if (was) targetsChanged();
}

function hideTypebox() {
  clearTimeout(S.prefixTimer);
  S.prefixSent = null;
  $('typebox').hidden = true;
  $('type-input').value = '';
  targetsChanged();
}

export function closeTypebox() {
  hideTypebox();
  if (S.state && S.state.fork && S.state.fork.typed_prefix) sendPrefix('');
  const f = $(`cand-${S.focusIdx}`);
  if (f) f.focus();
}

/* Commits the word in the box as the person's own text. */
export async function commitTyped() {
  const text = $('type-input').value;
  if (!text.trim()) return;
  hideTypebox();
  // a narrowing still due or on its way would change the version under the
  // commit (409, the word lost): drop the one due, wait for the one sent
  clearTimeout(S.prefixTimer);
  if (S.prefixInflight) await S.prefixInflight;
  typeText(text).then(() => {
    const f = $(`cand-${S.focusIdx}`) || $('cloud').querySelector('.cand');
    if (f) f.focus();
  });
}

/* Live narrowing: the cloud is recomputed for words starting with what
 * has been typed so far. Debounced; the newest prefix wins. */
export function prefixChanged() {
  clearTimeout(S.prefixTimer);
  const v = $('type-input').value;
  S.prefixTimer = setTimeout(() => sendPrefix(v.trim() === '' ? '' : v), 180);
}

export async function sendPrefix(prefix) {
  clearTimeout(S.prefixTimer);
  S.prefixSent = prefix;
  const run = (async () => {
    try {
      const st = await api('POST', sessPath('/type'), { prefix });
      if (S.prefixSent === prefix) render(st, { keepFocus: false });
    } catch (e) { showError(e.message); }
  })();
  // what a commit waits for (commitTyped); the newest request is the one
  S.prefixInflight = run;
  await run;
  if (S.prefixInflight === run) S.prefixInflight = null;
}

/* A digit in the word box picks from the narrowed cloud (as the terminal
 * does): the prefix typed so far is sent first if it is still on its way. */
export async function pickWhileTyping(i) {
  const v = $('type-input').value;
  const want = v.trim() === '' ? '' : v;
  const fork = S.state && S.state.fork;
  if (!fork) return;
  if ((fork.typed_prefix || '') !== want) await sendPrefix(want);
  choose(i, false, 'keyboard');
}
