/*
 * cloud.js — renders the fork: the cloud of candidates, the row of
 * preview words of one candidate, the action row, and which target is
 * active.
 *
 * The candidates are in the DOM in rank order (data-rank 0 = likeliest),
 * so keys, screen readers, switch scanning and the phone's two-column grid
 * (top candidate first) all meet them likeliest first. On a wide screen
 * CSS order values set by this file lay them out as a cloud: the likeliest
 * in the middle row, the others dealt round-robin to rows above and below,
 * each row filled from its centre outwards.
 *
 * Steady targets: hovering changes colours only; the preview-word row has
 * a fixed height (app.css), so pinning another candidate's words into it
 * never moves a candidate or a button.
 * Cost: O(candidates + preview words) DOM nodes per fork.
 */
import { $, S, targetsChanged } from './state.js';
import { displayWord, previewWords, showWord, keyOf } from './text.js';
import { renderGhost } from './story.js';
import { wireTarget } from './pointer.js';
import { wsSend } from './ws.js';
import { openTypebox } from './actions.js';

export const narrow = () => window.matchMedia('(max-width: 640px)').matches;

export function renderCloud(keepFocus) {
  const cloud = $('cloud');
  const fork = S.state.fork;
  const ae = document.activeElement;
  const hadFocus = keepFocus || cloud.contains(ae) || ae === document.body || !ae;
  $('fork-area').classList.toggle('ended', !fork);
  $('ended').hidden = !!fork;
  cloud.hidden = !fork;
  $('pv-bar').hidden = !fork;
  $('btn-continue').hidden = !fork;
  $('btn-type').hidden = !fork;
  $('btn-keep').hidden = !!fork;
  $('btn-new').hidden = !!fork;
  if (!fork) {
    cloud.replaceChildren();
    $('descs').replaceChildren();
    $('cand-other').hidden = true;
    $('typebox').hidden = true;
    renderUndoRedo();
    if (hadFocus) $('btn-keep').focus();
    targetsChanged();
    return;
  }
  const cands = fork.candidates;
  // size follows the person's predicted choice when preferences are learned
  // (pref), which without them is the model's probability
  const weight = (c) => (typeof c.pref === 'number' ? c.pref : c.prob);
  const maxp = Math.max(1e-6, ...cands.map(weight));
  const nRows = cands.length <= 3 ? 1 : cands.length <= 12 ? 3 : 5;
  const mid = (nRows - 1) / 2;
  const rowOrder = [mid];
  for (let d = 1; rowOrder.length < nRows; d++) rowOrder.push(mid - d, mid + d);
  const rows = Array.from({ length: nRows }, () => []);
  cands.forEach((c, i) => {
    const row = rows[rowOrder[i % nRows]];
    if (row.length % 2 === 1) row.unshift(i); else row.push(i);
  });
  S.order = narrow() ? cands.map((c, i) => i) : rows.flat();
  const place = new Map();
  rows.forEach((r, ri) => r.forEach((i, k) => place.set(i, ri * 100 + k)));

  const frag = document.createDocumentFragment();
  const descs = document.createDocumentFragment();
  cands.forEach((c, i) => {
    const r = Math.sqrt(weight(c) / maxp);
    const g = document.createElement('div');
    g.className = 'cand-group';
    g.style.order = String(place.get(i));
    g.style.setProperty('--r', r.toFixed(3));
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'cand' + (c.is_eog ? ' eog' : '');
    b.id = `cand-${i}`;
    b.dataset.index = String(i);
    b.dataset.rank = String(i);
    b.tabIndex = -1;
    b.style.fontWeight = String(Math.round((400 + 400 * r) / 100) * 100);
    b.style.color = `color-mix(in srgb, var(--fg) ${Math.round(45 + 55 * r)}%, var(--muted))`;
    const pct = Math.round(c.prob * 100);
    const num = document.createElement('span');
    num.className = 'num'; num.textContent = keyOf(i);
    const word = document.createElement('span');
    word.className = 'word'; word.textContent = displayWord(c);
    const pc = document.createElement('span');
    pc.className = 'pct'; pc.textContent = `${pct < 1 ? '<1' : pct}%`;
    b.append(num, ' ', word, ' ', pc);
    if (c.preview && !c.is_eog) {
      const d = document.createElement('span');
      d.id = `cand-desc-${i}`;
      d.textContent = `leads to: ${c.preview.trim()}`;
      descs.appendChild(d);
      b.setAttribute('aria-describedby', d.id);
    }
    wireTarget(b, i, false);
    g.appendChild(b);
    if (c.preview && !c.is_eog) {
      const pb = document.createElement('button');
      pb.type = 'button';
      pb.className = 'cand-phrase';
      pb.dataset.index = String(i);
      pb.dataset.rank = String(i);
      pb.dataset.phrase = '1';
      pb.dataset.scanGroup = 'preview';
      pb.tabIndex = -1;
      pb.setAttribute('aria-label', `+ phrase: ${c.text.trim()}${c.preview}`);
      const plus = document.createElement('span');
      plus.textContent = '+';
      const pw = document.createElement('span');
      pw.className = 'pl-word';
      pw.textContent = ' phrase';
      pb.append(plus, pw);
      wireTarget(pb, i, true);
      g.appendChild(pb);
    } else {
      b.classList.add('alone');
    }
    frag.appendChild(g);
  });
  // line breaks between the cloud's rows (wide screens only, see app.css)
  for (let ri = 0; ri < nRows - 1; ri++) {
    const br = document.createElement('div');
    br.className = 'cloud-break';
    br.style.order = String(ri * 100 + 99);
    br.setAttribute('aria-hidden', 'true');
    frag.appendChild(br);
  }
  cloud.replaceChildren(frag);
  $('descs').replaceChildren(descs);
  cloud.setAttribute('aria-busy', S.busy ? 'true' : 'false');

  const o = $('cand-other');
  o.hidden = !(fork.other > 0.005);
  o.textContent = `other… ${Math.round(fork.other * 100)}%`;
  o.setAttribute('aria-label', `other… ${Math.round(fork.other * 100)}%: words not shown, type your own`);
  renderUndoRedo();

  const focusEl = $(`cand-${S.focusIdx}`) || cloud.querySelector('.cand');
  if (focusEl) focusEl.tabIndex = 0;
  if (hadFocus && focusEl && $('typebox').hidden) focusEl.focus({ preventScroll: true });
  if (fork.typed_prefix && $('typebox').hidden) openTypebox(fork.typed_prefix, true);
  if (S.active >= 0) S.pinned = S.active;
  renderBar();
  markActive();
  targetsChanged();
}

/* Undo and Redo are usable only when there is something to go back to or
 * return to (the page's own redo list, see actions.js). */
export function renderUndoRedo() {
  const st = S.state;
  $('btn-undo').disabled = !st || !(st.path_forks && st.path_forks.length);
  $('btn-redo').disabled = !S.redo.length;
}

/* The row of preview words: those of the pinned candidate, each a target.
 * Selecting word j takes the candidate and the words before j, and opens
 * a fork at word j. */
export function renderBar() {
  const bar = $('pv-bar');
  const fork = S.state && S.state.fork;
  if (!bar || !fork) return;
  const i = S.pinned;
  const c = fork.candidates[i];
  const words = c ? previewWords(c) : [];
  bar.dataset.index = String(words.length ? i : -1);
  const frag = document.createDocumentFragment();
  const lead = document.createElement('span');
  lead.className = 'pv-lead';
  lead.setAttribute('aria-hidden', 'true');
  if (!words.length) {
    lead.textContent = 'no preview words to point at';
    bar.setAttribute('aria-label', 'No preview words');
    bar.replaceChildren(lead);
    return;
  }
  lead.textContent = `${keyOf(i) ? `${keyOf(i)}: ` : ''}${displayWord(c)} ›`;
  frag.appendChild(lead);
  bar.setAttribute('aria-label', `Preview of “${displayWord(c)}”: pick the first word you do not want`);
  let taken = c.text;
  words.forEach((w, j) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'pv-word';
    b.id = `pv-${i}-${j}`;
    b.dataset.index = String(i);
    b.dataset.upto = String(w.upto);
    b.dataset.word = String(j);
    b.tabIndex = 0; // Tab from the focused candidate lands here
    b.setAttribute('aria-label', `${showWord(w.text)}: take “${taken.trim()}” and choose again here`);
    b.textContent = showWord(w.text);
    wireTarget(b, i, false, w.upto);
    frag.appendChild(b);
    taken += w.text;
  });
  bar.replaceChildren(frag);
  targetsChanged();
}

/* Puts candidate i's preview words in the row (now, or after the pointer
 * has rested on it for a moment, so passing over it does not). */
const PIN_MS = 300;
export function pin(i, later) {
  clearTimeout(S.pinTimer);
  if (i < 0 || i === S.pinned) return;
  const go = () => {
    const fork = S.state && S.state.fork;
    if (!fork || i >= fork.candidates.length || S.pinned === i) return;
    S.pinned = i;
    renderBar();
    markActive();
  };
  if (later) S.pinTimer = setTimeout(go, PIN_MS); else go();
}

/* Shows which target is active / remotely highlighted (colours only). */
export function markActive() {
  for (const el of $('cloud').querySelectorAll('.cand, .cand-phrase')) {
    const i = Number(el.dataset.index);
    const phrase = el.dataset.phrase === '1';
    el.classList.toggle('active', i === S.active && phrase === S.activePhrase && S.activeUpto < 0);
    el.classList.toggle('remote', i === S.remote && S.active !== i && !phrase);
  }
  const bar = $('pv-bar');
  bar.classList.toggle('active', S.active >= 0 && S.active === S.pinned);
  for (const el of bar.querySelectorAll('.pv-word'))
    el.classList.toggle('active', Number(el.dataset.index) === S.active && Number(el.dataset.upto) === S.activeUpto);
}

export function setActive(i, phrase, from, upto) {
  const u = upto === undefined ? -1 : upto;
  if (S.active === i && S.activePhrase === phrase && S.activeUpto === u) return;
  const moved = S.active !== i;
  S.active = i;
  S.activePhrase = phrase;
  S.activeFrom = from;
  S.activeUpto = u;
  renderGhost();
  markActive();
  if (S.prefs.share && moved) wsSend({ op: 'highlight', index: i });
}
