/*
 * keys.js — the keyboard: every action has a key (the Keys panel lists
 * them), and focus never gets lost.
 *
 *   1-9, 0, -, =   take candidate 1-12 (also from the word box, where they
 *                  pick from the narrowed cloud instead of typing)
 *   Shift+digit    take it with its phrase
 *   arrows         move between candidates; Tab into the preview words
 *   Enter          take the focused candidate (Shift: with its phrase)
 *   Backspace      undo; Shift+Backspace or R: redo
 *   T or /         type a word;  C  let the model pick;  S  speak the last sentence
 *   ?              Keys panel;   Esc  close the word box or a panel
 * Keys are ignored while a text field has focus (except Esc, and digits
 * and Enter in the word box) and, for story keys, inside a panel.
 */
import { $, S } from './state.js';
import { indexOfCode } from './text.js';
import { choose, undo, redo, continueAuto, openTypebox, closeTypebox, pickWhileTyping, commitTyped } from './actions.js';
import { togglePanel, openPanel } from './panels.js';
import { treeKey } from './tree.js';
import { speakLast } from './speech.js';

function moveFocus(delta) {
  const btns = S.order.map((i) => $(`cand-${i}`)).filter(Boolean);
  if (!btns.length) return;
  let pos = btns.indexOf(document.activeElement);
  if (pos < 0) pos = Math.max(0, btns.indexOf($(`cand-${S.focusIdx}`)));
  else if (delta === 0) pos = 0;
  else pos = (pos + delta + btns.length) % btns.length;
  btns.forEach((b) => { b.tabIndex = -1; });
  btns[pos].tabIndex = 0;
  btns[pos].focus();
}

/* keydown in the word box: digits pick, Enter commits (also for a
 * synthetic keydown from an outside input module). */
export function typeboxKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const i = indexOfCode(e.code);
  const fork = S.state && S.state.fork;
  if (i >= 0 && fork && i < fork.candidates.length && !e.shiftKey) {
    e.preventDefault();
    e.stopPropagation();
    pickWhileTyping(i);
    return;
  }
  if (e.key === 'Enter') {
    e.preventDefault();
    e.stopPropagation();
    commitTyped();
  }
}

export function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  const inField = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT');
  const onWord = t && t.classList && t.classList.contains('pv-word');
  if (e.key === 'Escape') {
    if (!$('typebox').hidden) { closeTypebox(); e.preventDefault(); return; }
    if (onWord) { e.preventDefault(); $(`cand-${t.dataset.index}`).focus(); return; }
    const open = openPanel();
    if (open) { togglePanel(open, false); e.preventDefault(); }
    return;
  }
  if (inField) return;
  if (treeKey(e)) return;
  const inPanel = t && t.closest && t.closest('.panel, .topbar');
  const fork = S.state && S.state.fork;
  if (e.key === '?' && !inPanel) { togglePanel('help'); e.preventDefault(); return; }
  if (!S.sid || $('story').hidden) return;

  const i = indexOfCode(e.code);
  if (i >= 0 && fork && !inPanel) {
    if (i < fork.candidates.length) { e.preventDefault(); choose(i, e.shiftKey, 'keyboard'); }
    return;
  }
  if (inPanel) return;
  if (onWord && fork && ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'Home', 'End'].includes(e.key)) {
    // between the preview words; Up (or Left from the first) goes back to the candidate
    e.preventDefault();
    const words = [...t.parentNode.querySelectorAll('.pv-word')];
    const j = words.indexOf(t);
    const to = e.key === 'ArrowUp' || (e.key === 'ArrowLeft' && j === 0) ? $(`cand-${t.dataset.index}`)
      : e.key === 'Home' ? words[0] : e.key === 'End' ? words[words.length - 1]
        : words[Math.min(words.length - 1, j + (e.key === 'ArrowRight' ? 1 : -1))];
    if (to) to.focus();
    return;
  }
  const isCand = t && t.closest && t.closest('#cloud');
  switch (e.key) {
    case 'ArrowRight': case 'ArrowDown':
      if (fork && (isCand || t === document.body)) { e.preventDefault(); moveFocus(+1); }
      return;
    case 'ArrowLeft': case 'ArrowUp':
      if (fork && (isCand || t === document.body)) { e.preventDefault(); moveFocus(-1); }
      return;
    case 'Home': case 'End':
      if (fork && isCand) { e.preventDefault(); moveFocus(0); }
      return;
    case 'Enter': {
      if (!fork || !isCand) return; // buttons elsewhere take Enter themselves
      const idx = t.dataset && t.dataset.index !== undefined ? Number(t.dataset.index) : S.focusIdx;
      e.preventDefault();
      choose(idx, e.shiftKey || t.dataset.phrase === '1', 'keyboard');
      return;
    }
    case 'Backspace':
      e.preventDefault();
      if (e.shiftKey) redo(); else undo();
      return;
    case 'r': case 'R':
      e.preventDefault();
      redo();
      return;
    case 't': case 'T': case '/':
      if (fork) { e.preventDefault(); openTypebox(); }
      return;
    case 'c': case 'C':
      if (fork) { e.preventDefault(); continueAuto(); }
      return;
    case 's': case 'S':
      e.preventDefault();
      speakLast();
      return;
    default:
  }
}
