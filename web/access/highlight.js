/*
 * highlight.js — the one visible highlight every access method draws
 * (scanning, dwell, gaze, head): a thick two-colour frame over the item (or
 * around all leaves of a group), a dwell progress bar, and a caption with
 * what the item does when its own text does not say it.
 *
 * Why an overlay: it must stand out on any theme and in forced colours
 * without changing the page's layout (a target that moves under the
 * pointer is a defect), so it is a fixed-position frame with
 * pointer-events: none drawn above the page. Cost: one layout read per
 * element framed.
 */

let frame = null, caption = null, bar = null;

/* Creates the overlay once. */
function ensure() {
  if (frame) return;
  const root = document.createElement('div');
  root.id = 'fp-access-overlay';
  root.setAttribute('aria-hidden', 'true');
  frame = document.createElement('div');
  frame.className = 'fp-hl';
  bar = document.createElement('div');
  bar.className = 'fp-hl-bar';
  frame.appendChild(bar);
  caption = document.createElement('div');
  caption.className = 'fp-hl-caption';
  root.append(frame, caption);
  document.body.appendChild(root);
}

/* The rectangle around a set of elements (viewport coordinates). */
export function unionRect(els) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const el of els) {
    const r = el.getBoundingClientRect();
    if (r.width < 1 && r.height < 1) continue;
    x0 = Math.min(x0, r.left); y0 = Math.min(y0, r.top);
    x1 = Math.max(x1, r.right); y1 = Math.max(y1, r.bottom);
  }
  return x0 === Infinity ? null : { left: x0, top: y0, width: x1 - x0, height: y1 - y0 };
}

/* Whether a caption would only repeat what the one framed element shows
 * (a highlighted "Apply" with a second "Apply" under it): then none is
 * drawn. A caption that adds something (a group's name, "↩ back", a
 * "+0.05" button's field) stays. */
function redundant(els, text) {
  if (!text || els.length !== 1) return false;
  const norm = (t) => String(t || '').replace(/\s+/g, ' ').trim().toLowerCase();
  return norm(els[0].innerText) === norm(text);
}

/* Frames els (one leaf, or the leaves of a group) with text as caption;
 * kind: 'scan' | 'group' | 'dwell' | 'paused'. */
export function show(els, text, kind, keep) {
  ensure();
  let r = unionRect(els);
  if (!r) { hide(); return; }
  // a group taller than the window (a long panel) is framed where it shows
  const top = Math.max(r.top, 0), bottom = Math.min(r.top + r.height, innerHeight);
  if (bottom > top) r = { left: r.left, width: r.width, top, height: bottom - top };
  const pad = 4;
  Object.assign(frame.style, { left: `${r.left - pad}px`, top: `${r.top - pad}px`,
    width: `${r.width + 2 * pad}px`, height: `${r.height + 2 * pad}px`, display: 'block' });
  if (!keep) {
    frame.className = `fp-hl fp-hl-${kind || 'scan'}`;
    const say = redundant(els, text) ? '' : text || '';
    caption.textContent = say;
    caption.style.display = say ? 'block' : 'none';
  }
  const below = r.top + r.height + 12;
  caption.style.left = `${Math.max(4, Math.min(r.left, innerWidth - 320))}px`;
  caption.style.top = `${below + 40 < innerHeight ? below : Math.max(4, r.top - 44)}px`;
  progress(0);
}

/* The dwell progress, 0..1. */
export function progress(p) {
  if (bar) bar.style.width = `${Math.round(Math.max(0, Math.min(1, p)) * 100)}%`;
}

export function hide() {
  if (!frame) return;
  frame.style.display = 'none';
  caption.style.display = 'none';
}

/* A status line of the access layer (paused, no face, calibrating). */
let note = null;
export function status(text) {
  if (!note) {
    note = document.createElement('div');
    note.id = 'fp-access-status';
    note.setAttribute('role', 'status');
    note.setAttribute('aria-live', 'polite');
    document.body.appendChild(note);
  }
  note.textContent = text || '';
  note.hidden = !text;
}
