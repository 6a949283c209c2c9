/*
 * effort.js — what writing this story has cost the person, shown live:
 * actions per character, keystrokes saved against typing the same text
 * letter by letter, and the time per selection.
 *
 * Actions: every decision the page sent for this story (a pick, Let it
 * pick, Undo, Redo, a step back; a typed word counts its letters and the
 * Enter), counted on this device in localStorage, so repairs and abandoned
 * branches count too. A story written elsewhere falls back to the choices
 * on its current path (the state's path_forks). Time per selection is the
 * engine's ms_to_choose (from "shown" to the decision) over the person's
 * choices on the path. The same figures are kept per story for the list.
 * Cost: O(path forks) per render; one localStorage write.
 */
import { $, S } from './state.js';
import { storyPart } from './text.js';
import { titleOf } from './render.js';

const KEY = 'forkpoint.effort';

function loadAll() {
  try { return JSON.parse(localStorage.getItem(KEY) || '{}') || {}; } catch (e) { return {}; }
}
function saveAll(all) {
  try { localStorage.setItem(KEY, JSON.stringify(all)); } catch (e) { /* private mode */ }
}

export function countActions(n) {
  if (!S.sid || !(n > 0)) return;
  const all = loadAll();
  const e = all[S.sid] || (all[S.sid] = { actions: 0 });
  e.actions = (e.actions || 0) + n;
  saveAll(all);
}

/* The figures of one state (and this device's action count). */
export function effortOf(st, local) {
  const chars = storyPart(st).length;
  let pathActions = 0, ms = 0, nms = 0;
  for (const f of st.path_forks || []) {
    if (f.chooser === 'auto') continue;
    pathActions += f.choice === 'typed' ? (f.choice_text || '').length + 1 : 1;
    if (f.ms_to_choose > 0) { ms += f.ms_to_choose; nms++; }
  }
  const actions = local && local.actions > 0 ? local.actions : pathActions;
  return {
    chars, actions,
    perChar: chars ? actions / chars : 0,
    saved: chars ? 1 - actions / chars : 0,
    msPer: nms ? ms / nms : 0,
  };
}

export function effortText(e) {
  if (!e.chars) return '';
  return `${e.actions} action${e.actions === 1 ? '' : 's'} for ${e.chars} characters: ` +
    `${e.perChar.toFixed(2)} per character · ${Math.round(e.saved * 100)}% keystrokes saved against typing` +
    (e.msPer ? ` · ${(e.msPer / 1000).toFixed(1)} s per choice` : '');
}

export function renderEffort(st) {
  const all = loadAll();
  const e = effortOf(st, all[st.id]);
  $('effort').textContent = effortText(e);
  const rec = all[st.id] || (all[st.id] = { actions: 0 });
  Object.assign(rec, { title: titleOf(st), chars: e.chars, perChar: e.perChar, saved: e.saved, msPer: e.msPer, shown: e.actions });
  saveAll(all);
}

/* The figures kept for a story (for the story list), or null. */
export function storedEffort(id) {
  const r = loadAll()[id];
  return r && r.chars ? { title: r.title, chars: r.chars, actions: r.shown, perChar: r.perChar, saved: r.saved, msPer: r.msPer } : null;
}
