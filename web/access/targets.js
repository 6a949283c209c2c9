/*
 * targets.js — every control a switch, dwell or gaze user can reach, read
 * from the page as scan items (see scanorder.js for the item shape).
 *
 * Why here and not in the page: the page's markup states what each control
 * is (data-scan-group on the control or an ancestor, data-rank on
 * candidates); this file reads that contract, and falls back to the page's
 * classes and positions where it is absent, so scanning keeps working while
 * the page changes. Cost: one querySelectorAll and a layout read per
 * control, O(n); called when the page reports its targets changed.
 */

import { TEXT_FIELDS } from './letterboard.js';

// text fields are targets: selecting one puts the letter board under it
const SELECTOR = `button, summary, [role=button], [data-scan-group] input[type=checkbox], #doc .w, .doc .w, ${TEXT_FIELDS}`;

/* Whether el can be seen and used now. */
export function usable(el) {
  if (el.disabled || el.closest('[hidden], [inert], [aria-hidden=true]')) return false;
  if (el.closest('#fp-access-overlay')) return false;
  const r = el.getBoundingClientRect();
  if (r.width < 1 || r.height < 1) return false;
  const cs = getComputedStyle(el);
  return cs.visibility !== 'hidden' && cs.display !== 'none';
}

/* The scan group of a control: data-scan-group, else the page's classes. */
export function groupOf(el) {
  // the word box's own buttons scan with the letter board (the page puts
  // its form in "actions"; the board and the box are one typing view)
  const f = el.closest('form');
  if (f && f.querySelector('[data-fp=type-input]')) return 'typing';
  const g = el.closest('[data-scan-group]');
  if (g) return g.dataset.scanGroup;
  if (el.closest('.panel, dialog[open]')) return 'panel';
  if (el.classList.contains('pv-word') || el.closest('.pv-bar')) return 'preview';
  if (el.closest('#cloud, .cloud')) return 'cloud';
  if (el.closest('#typebox, .typebox')) return 'typing';
  if (el.closest('#doc, .doc')) return 'story';
  if (el.closest('[data-fp=toolbar], .topbar, .tools')) return 'toolbar';
  return 'actions';
}

/* The rank of a control inside its group (lower = scanned earlier). */
function rankOf(el, group, storyIndex, storyCount) {
  if (el.dataset.rank !== undefined) return Number(el.dataset.rank);
  if (group === 'cloud') {
    const i = Number(el.dataset.index);
    if (!Number.isFinite(i) || i < 0) return 1000;      // "other…"
    return i;
  }
  if (group === 'preview' && el.dataset.word !== undefined) return Number(el.dataset.word);
  if (group === 'story') return storyCount - 1 - storyIndex;  // newest first
  if (el.dataset.row !== undefined) return Number(el.dataset.row) * 100 + Number(el.dataset.col || 0);
  return undefined;                                     // page order
}

/* A label to show and speak: aria-label, else the visible text. */
export function labelOf(el) {
  return (el.getAttribute('aria-label') || el.textContent || el.title || '').replace(/\s+/g, ' ').trim();
}

/* The scan items of the page now. When a panel is open only it and the
 * toolbar are offered (the rest is behind it); while a modal dialog is
 * open, only it. O(n). */
export function collect(root = document) {
  // a modal dialog (the Profile) makes the rest of the page inert
  const modal = root.querySelector && [...root.querySelectorAll('dialog[open]')].find((d) => d.matches(':modal'));
  const els = [...(modal || root).querySelectorAll(SELECTOR)].filter(usable);
  const story = els.filter((el) => groupOf(el) === 'story');
  const items = els.map((el) => {
    const group = groupOf(el);
    const it = { id: el.id || null, el, group, label: labelOf(el),
      rank: rankOf(el, group, story.indexOf(el), story.length) };
    if (el.dataset.row !== undefined) it.row = Number(el.dataset.row);
    // a "+ phrase" button (the new page scans it with the preview words)
    if ((group === 'cloud' || group === 'preview') && (el.dataset.phrase || el.classList.contains('cand-phrase'))) it.phrase = true;
    return it;
  });
  // (and the letter board when it serves a field of the panel)
  if (items.some((it) => it.group === 'panel')) {
    return items.filter((it) => it.group === 'panel' || it.group === 'toolbar'
      || (it.group === 'typing' && it.el.closest('.panel, dialog[open]')));
  }
  return items;
}

/* What an item is, independent of the element drawing it (the page may
 * redraw the same fork with new elements). */
export function keyOf(it) { return `${it.group}|${it.rank}|${it.label}`; }
/* The set of targets, for telling whether they really changed. */
export function signature(items) { return items.map(keyOf); }
export function sameTargets(a, b) { return a.length === b.length && a.every((k, i) => k === b[i]); }
