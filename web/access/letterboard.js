/*
 * letterboard.js — the scanning letter board: a grid of letter buttons shown
 * under the word box while a switch, dwell or gaze mode is on, so typing a
 * word needs no keyboard. Each letter goes into the page's word box (set
 * its value, dispatch "input": the page narrows the cloud as letters come),
 * '⏎' commits (keydown Enter on the box, as the contract says), '✕' closes
 * the box, '⌫' deletes, '⇧' makes the next letter upper case.
 *
 * Why a row-column grid in frequency order: scanorder.js deals the
 * characters so the common ones cost the fewest steps; the benchmark's
 * row-column keyboard is the same board. Cost: 40 buttons, made once.
 */
import { boardRows } from './scanorder.js';

let board = null, shift = false;

/* The page's word box, if it is open. */
export function typeInput() {
  const el = document.querySelector('[data-fp=type-input]') || document.getElementById('type-input');
  if (!el) return null;
  const r = el.getBoundingClientRect();
  return r.width > 0 && !el.closest('[hidden]') ? el : null;
}

function press(ch) {
  const input = typeInput();
  if (!input) return;
  if (ch === '⏎') {
    const ev = new KeyboardEvent('keydown', { key: 'Enter', code: 'Enter', bubbles: true, cancelable: true });
    const handled = !input.dispatchEvent(ev);
    if (!handled && input.form) input.form.requestSubmit();
    return;
  }
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
  if (board.previousElementSibling !== host) host.after(board);
  board.hidden = false;
}
