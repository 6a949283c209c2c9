/*
 * letterboard.js — the scanning letter board: a grid of letter buttons shown
 * under the word box while a switch, dwell or gaze mode is on, so typing a
 * word needs no keyboard. Each letter goes into the page's word box (set
 * its value, dispatch "input": the page narrows the cloud as letters come),
 * '⏎' commits (keydown Enter on the box, as the contract says), '✕' closes
 * the box, '⌫' deletes, '⇧' makes the next letter upper case. The board
 * also types into any other text field of the page a switch, dwell or gaze
 * user chooses (the story's opening, a quick phrase: hold()); there '⏎'
 * submits the field's form and '✕' lets the field go.
 *
 * Why a row-column grid in frequency order: scanorder.js deals the
 * characters so the common ones cost the fewest steps; the benchmark's
 * row-column keyboard is the same board. Cost: 40 buttons, made once.
 */
import { boardRows } from './scanorder.js';

let board = null, shift = false;
// a text field of the page other than the word box (the story's opening,
// a quick phrase) that a switch, dwell or gaze user chose: the board types
// into it until '⏎' or '✕'
let held = null;

/* The text fields the board can serve besides the word box (our own key
 * fields have "Press the key" instead). */
export const TEXT_FIELDS = 'textarea, input[type=text]:not([data-fp=type-input]):not(.fp-access-fields input)';

const open = (el) => {
  if (!el || !el.isConnected || el.disabled || el.readOnly) return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && !el.closest('[hidden]');
};

/* The field the board types into: a chosen text field while it is on
 * screen, else the page's word box if it is open. */
export function typeInput() {
  if (held && !open(held)) held = null;
  if (held) return held;
  const el = document.querySelector('[data-fp=type-input]') || document.getElementById('type-input');
  return el && open(el) ? el : null;
}

/* A text field was clicked (a scan selection or a dwell clicks it): the
 * board serves it. */
export function hold(el) {
  if (!el || !el.matches || !el.matches(TEXT_FIELDS) || held === el) return;
  held = el;
  document.dispatchEvent(new CustomEvent('fp:targets'));
}

function release() {
  held = null;
  document.dispatchEvent(new CustomEvent('fp:targets'));
}

function press(ch) {
  const input = typeInput();
  if (!input) return;
  if (ch === '⏎') {
    // a chosen text field is done: its form is submitted (start the story,
    // add the phrase) as Enter would
    const mine = input === held;
    if (mine) release();
    const ev = new KeyboardEvent('keydown', { key: 'Enter', code: 'Enter', bubbles: true, cancelable: true });
    const handled = !input.dispatchEvent(ev);
    if (!handled && input.form) input.form.requestSubmit();
    return;
  }
  if (ch === '✕' && input === held) { release(); input.blur(); return; }
  if (ch === '✕') {
    const cancel = document.getElementById('type-cancel');
    if (cancel) cancel.click();
    else input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', code: 'Escape', bubbles: true }));
    return;
  }
  if (ch === '⇧') { shift = !shift; board.classList.toggle('fp-shift', shift); return; }
  let v = input.value;
  if (ch === '⌫') v = v.slice(0, -1);
  else {
    const c = ch === '␣' ? ' ' : shift ? ch.toUpperCase() : ch;
    v += c;
    shift = false; board.classList.remove('fp-shift');
  }
  input.value = v;
  input.dispatchEvent(new Event('input', { bubbles: true }));
}

const NAMES = { '␣': 'space', '⇧': 'shift', '⌫': 'delete', '⏎': 'use the word', '✕': 'close the word box' };

function make() {
  board = document.createElement('div');
  board.id = 'fp-letterboard';
  board.className = 'fp-letterboard';
  board.dataset.scanGroup = 'typing';
  board.setAttribute('role', 'group');
  board.setAttribute('aria-label', 'Letter board');
  boardRows().forEach((row, r) => {
    const rowEl = document.createElement('div');
    rowEl.className = 'fp-lb-row';
    row.forEach((ch, c) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'fp-key';
      b.dataset.row = String(r);
      b.dataset.col = String(c);
      b.dataset.key = ch;
      b.textContent = ch;
      b.setAttribute('aria-label', NAMES[ch] || ch);
      // a real click, a scan selection or a dwell all come here
      b.addEventListener('click', (e) => { e.preventDefault(); press(ch); });
      rowEl.appendChild(b);
    });
    board.appendChild(rowEl);
  });
}

/* Shows the board under the word box while it is open (called on every
 * target change; cheap when nothing changed). */
export function sync(enabled) {
  const input = enabled ? typeInput() : null;
  if (!input) { if (board) board.hidden = true; return; }
  if (!board) make();
  const host = input.closest('form') || input.parentElement;
  const moved = board.previousElementSibling !== host;
  if (moved) host.after(board);
  if (board.hidden || moved) {
    board.hidden = false;
    // all of it on screen as it comes: its last row may fall below the
    // fold of a scrolling box, where a pointer cannot rest on it
    board.scrollIntoView({ block: 'nearest' });
  }
}
