/*
 * fields.js — the page's value fields made workable by a switch, dwell or
 * gaze: every number field and slider gets "−" and "+" buttons, every
 * <select> "◀" and "▶" (the previous and next choice), next to the field.
 * Text fields are left to the letter board (letterboard.js).
 *
 * Why buttons: a switch can only press, and dwell or gaze can only rest on
 * something; a number box, a slider or a drop-down needs a keyboard or a
 * drag. A button sets the field's value as a person would (then "input"
 * and "change" events, which the page listens for), so the page's own
 * Apply and checks run unchanged. Our own access settings draw their
 * buttons themselves (settings.js) and are skipped. A number's step is its
 * data-nudge, else its step, else 1; a value is kept inside min and max.
 * Cost: one querySelectorAll per target change; each field is done once
 * (data-fp-stepped).
 */

const SEL = 'input[type=number], input[type=range], select';

/* The field's name for the buttons' labels: its label's text without the
 * buttons'. */
function nameOf(el) {
  const lab = el.labels && el.labels[0];
  let t = '';
  if (lab) for (const n of lab.childNodes) if (n.nodeType === 3) t += n.textContent;
  return (t.trim() || el.getAttribute('aria-label') || el.id).replace(/\s+/g, ' ');
}

/* How much one press changes a number field. */
function stepOf(el) {
  const n = Number(el.dataset.nudge || el.step);
  return Number.isFinite(n) && n > 0 ? n : 1;
}

/* Sets v (a number, kept in range; or a choice's index) and tells the page. */
function setValue(el, d) {
  if (el.tagName === 'SELECT') {
    const n = el.options.length;
    if (!n) return;
    el.selectedIndex = Math.max(0, Math.min(n - 1, el.selectedIndex + d));
  } else {
    const by = stepOf(el);
    const lo = el.min === '' ? -Infinity : Number(el.min), hi = el.max === '' ? Infinity : Number(el.max);
    const v0 = Number(el.value);
    let v = (Number.isFinite(v0) ? v0 : Math.max(lo, 0)) + d * by;
    v = Math.min(hi, Math.max(lo, Math.round(v / by) * by));
    // no binary tails (0.1 + 0.2): as many decimals as the step has
    const dec = (String(by).split('.')[1] || '').length;
    el.value = String(Number(v.toFixed(dec)));
  }
  el.dispatchEvent(new Event('input', { bubbles: true }));
  el.dispatchEvent(new Event('change', { bubbles: true }));
}

function button(el, d) {
  const sel = el.tagName === 'SELECT';
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'fp-nudge';
  const text = sel ? (d < 0 ? '◀' : '▶') : `${d < 0 ? '−' : '+'}${stepOf(el)}`;
  b.textContent = text;
  // the visible text is part of the name (label-content-name-mismatch)
  b.setAttribute('aria-label', `${nameOf(el)}: ${sel ? (d < 0 ? 'previous' : 'next') : ''} ${text}`.replace(/\s+/g, ' '));
  b.dataset.fpFor = el.id || '';
  b.addEventListener('click', (e) => { e.preventDefault(); if (!el.disabled) setValue(el, d); });
  return b;
}

/* Adds the buttons to every field that has none yet; a field's buttons
 * follow its disabled state. */
export function sync() {
  for (const el of document.querySelectorAll(SEL)) {
    if (el.closest('.fp-access-fields, #fp-access-overlay')) continue;
    if (el.dataset.fpStepped) {
      const next = el.nextElementSibling, after = next && next.nextElementSibling;
      for (const b of [next, after]) if (b && b.classList.contains('fp-nudge') && b.disabled !== el.disabled) b.disabled = el.disabled;
      continue;
    }
    el.dataset.fpStepped = '1';
    // after the field: inside a <label> the field stays its first labelable
    // element, so the label still names the field
    const less = button(el, -1), more = button(el, +1);
    less.disabled = more.disabled = el.disabled;
    el.after(less, more);
  }
}
