/*
 * pointer.js — mouse, pen and touch on the fork's targets: a candidate
 * (upto undefined), its phrase button (phrase) or one of its preview words
 * (upto = the byte offset to send as preview_upto).
 *
 * Mouse: hover shows the preview, click takes. Touch: tap takes,
 * long-press previews without taking. Focus (keyboard, switch) shows the
 * preview too. Dwell is not here: dwell.js drives every control alike and
 * ends in el.click().
 *
 * The decision log records how the person chose: howOf() names it. An
 * outside input module (web/access/) may set document.body.dataset.fpModality
 * (e.g. "switch", "gaze") before it calls el.click().
 */
import { $, S } from './state.js';
import { setActive, pin } from './cloud.js';
import { choose } from './actions.js';

export function howOf(e) {
  if (S.nextHow) { const h = S.nextHow; S.nextHow = null; return h; }
  const m = document.body.dataset.fpModality;
  if (m) return m;
  if (!e || e.detail === 0) return 'keyboard';
  return e.pointerType === 'touch' ? 'touch' : e.pointerType === 'pen' ? 'pen' : 'mouse';
}

export function wireTarget(el, i, phrase, upto) {
  el.addEventListener('pointerenter', (e) => {
    if (e.pointerType === 'touch') return; // touch previews on long-press
    setActive(i, phrase, 'pointer', upto);
    if (upto === undefined) pin(i, true);
  });
  el.addEventListener('pointerleave', (e) => {
    if (upto === undefined) clearTimeout(S.pinTimer);
    if (e.pointerType !== 'touch' && S.activeFrom === 'pointer' && S.active === i) {
      const f = document.activeElement;
      if (f && f.dataset && f.dataset.index !== undefined && f.closest('#fork-area'))
        setActive(Number(f.dataset.index), f.dataset.phrase === '1', 'focus',
          f.dataset.upto !== undefined ? Number(f.dataset.upto) : undefined);
      else setActive(-1, false, null);
    }
  });
  el.addEventListener('pointerdown', (e) => {
    if (e.pointerType !== 'touch') return;
    S.longFired = false;
    clearTimeout(S.longTimer);
    S.longTimer = setTimeout(() => {
      S.longFired = true;
      setActive(i, phrase, 'touch', upto);
      pin(i);
    }, S.prefs.longPressMs);
  });
  const endTouch = () => clearTimeout(S.longTimer);
  el.addEventListener('pointerup', endTouch);
  el.addEventListener('pointercancel', endTouch);
  el.addEventListener('contextmenu', (e) => { if (S.longFired) e.preventDefault(); });
  el.addEventListener('click', (e) => {
    if (S.longFired) { S.longFired = false; e.preventDefault(); return; } // long-press = preview only
    choose(i, phrase, howOf(e), upto);
  });
  el.addEventListener('focus', () => {
    if (!phrase && upto === undefined) {
      S.focusIdx = i;
      for (const b of $('cloud').querySelectorAll('.cand')) b.tabIndex = b === el ? 0 : -1;
    }
    setActive(i, phrase, 'focus', upto);
    pin(i);
  });
}
