/*
 * panels.js — the side panels (Stories, Tree, Say, Settings, Keys): open
 * and close them with focus moved in and back, the story list, the
 * settings form, the adapter strengths, export and the theme.
 *
 * Focus: opening a panel moves focus into it (its first control; the tree's
 * current branch; the Keys panel itself, which scrolls by keyboard);
 * closing one puts focus back on the cloud, so digits and arrows work at
 * once. Every panel has a Close button, so touch, dwell and switch users
 * are never stuck in one.
 * Cost: the story list and the tree are one GET each when opened.
 */
import { $, S, savePrefs, showError, targetsChanged } from './state.js';
import { api, sessPath } from './api.js';
import { render, openSession, showStart, titleOf } from './render.js';
import { loadTree } from './tree.js';
import { renderSay } from './speech.js';
import { storedEffort, effortText, effortOf } from './effort.js';

export const PANELS = ['stories', 'tree', 'say', 'settings', 'help'];

export const openPanel = () => PANELS.find((n) => !$(`panel-${n}`).hidden) || null;

export function togglePanel(name, force) {
  const panel = $(`panel-${name}`), btn = $(`btn-${name}`);
  const open = force !== undefined ? force : panel.hidden;
  for (const n of PANELS) {
    if (n !== name || !open) {
      $(`panel-${n}`).hidden = true;
      $(`btn-${n}`).setAttribute('aria-expanded', 'false');
    }
  }
  panel.hidden = !open;
  btn.setAttribute('aria-expanded', String(open));
  if (open) {
    if (name === 'stories') loadStories();
    if (name === 'tree') loadTree(true);
    if (name === 'say') renderSay();
    if (name === 'settings') { fillSettings(); loadAdapters(); }
    if (name === 'help') panel.focus();
    else if (name !== 'tree') {
      const first = panel.querySelector('.panel-body button:not([disabled]), .panel-body input, .panel-body select');
      (first || panel.querySelector('.panel-close')).focus();
    }
  } else {
    focusWork(btn);
  }
  targetsChanged();
}

/* Focus back where the work is: the cloud's candidate, else Keep writing,
 * else the given fallback. */
export function focusWork(fallback) {
  const f = S.state && S.state.fork ? ($(`cand-${S.focusIdx}`) || $('cloud').querySelector('.cand')) : null;
  if (f) { f.focus(); return; }
  if (S.state && !$('btn-keep').hidden && !$('story').hidden) { $('btn-keep').focus(); return; }
  if (fallback) fallback.focus();
}

/* Re-reads what an open panel shows after the story changed. */
export function panelRefresh() {
  if (!$('panel-tree').hidden) loadTree(false);
  if (!$('panel-settings').hidden) fillSettings();
  if (!$('panel-say').hidden) renderSay();
}

/* ------------------------------------------------------ stories */

async function loadStories() {
  const list = $('story-list');
  $('story-actions').hidden = !S.sid;
  try {
    const data = await api('GET', '/api/sessions');
    list.replaceChildren();
    let fetched = 0;
    for (const s of data.sessions) {
      const eff = s.id === S.sid && S.state ? null : storedEffort(s.id);
      const title = s.id === S.sid && S.state ? titleOf(S.state) : (eff && eff.title) || s.title || '(untitled)';
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'open';
      b.textContent = title;
      const small = document.createElement('small');
      const e = s.id === S.sid && S.state ? null : eff;
      small.textContent = `${new Date(s.updated * 1000).toLocaleString()}` +
        (e ? ` · ${effortText(e)}` : s.id === S.sid ? ` · ${$('effort').textContent}` : '') +
        (s.model && !s.model_running ? ` · written with ${s.model}` : '');
      b.appendChild(small);
      if (s.id === S.sid) b.setAttribute('aria-current', 'true');
      b.addEventListener('click', () => { togglePanel('stories', false); openSession(s.id); });
      const d = document.createElement('button');
      d.type = 'button';
      d.className = 'del';
      d.textContent = '✕';
      d.setAttribute('aria-label', `Delete “${title}”`);
      // a second press within 4 s deletes (no native dialog: dwell and
      // switch users cannot reach one)
      d.addEventListener('click', async () => {
        if (d.dataset.armed !== '1') {
          d.dataset.armed = '1';
          d.textContent = 'Delete?';
          d.setAttribute('aria-label', `Delete? Press again to delete “${title}”`);
          setTimeout(() => {
            if (!d.isConnected) return;
            d.dataset.armed = '';
            d.textContent = '✕';
            d.setAttribute('aria-label', `Delete “${title}”`);
          }, 4000);
          return;
        }
        try { await api('DELETE', `/api/sessions/${s.id}`); } catch (err) { showError(err.message); }
        if (s.id === S.sid) showStart();
        loadStories();
      });
      li.append(b, d);
      list.appendChild(li);
      if (!eff && s.id !== S.sid && s.live && fetched++ < 10) fillFromState(s, b, small, d);
    }
    if (!data.sessions.length) {
      const li = document.createElement('li');
      li.className = 'hint';
      li.textContent = 'No stories yet.';
      list.appendChild(li);
    }
    targetsChanged();
  } catch (e) { showError(e.message); }
}

/* A story this device has not shown yet (written elsewhere): its title and
 * figures from its state, read only when it is resident in the engine (a
 * cheap read; an evicted one keeps the server's title rather than being
 * loaded back). */
async function fillFromState(s, b, small, d) {
  try {
    const st = await api('GET', `/api/sessions/${s.id}`);
    const title = titleOf(st);
    b.firstChild.textContent = title;
    d.setAttribute('aria-label', `Delete “${title}”`);
    const e = effortText(effortOf(st, null));
    if (e) small.textContent += ` · ${e}`;
  } catch (e) { /* keep the server's title */ }
}

/* --------------------------------------------------------- export */

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function exportText() {
  if (S.state) download(`forkpoint-${S.sid}.txt`, S.state.text, 'text/plain');
}

export async function exportJsonl() {
  if (!S.sid) return;
  try {
    const r = await fetch(sessPath('/events.jsonl'), { credentials: 'same-origin' });
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    download(`forkpoint-${S.sid}.jsonl`, await r.text(), 'application/x-ndjson');
  } catch (e) { showError(e.message); }
}

/* ---------------------------------------------------------- theme */

export function applyTheme() {
  const root = document.documentElement;
  if (S.prefs.theme) root.dataset.theme = S.prefs.theme;
  else delete root.dataset.theme;
  const dark = S.prefs.theme ? S.prefs.theme === 'dark'
    : window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  const b = $('btn-theme');
  b.setAttribute('aria-pressed', String(dark));
}

export function toggleTheme() {
  const dark = $('btn-theme').getAttribute('aria-pressed') === 'true';
  S.prefs.theme = dark ? 'light' : 'dark';
  savePrefs();
  applyTheme();
}

/* ----------------------------------------------------- settings */

/* key, label, type, min, max and, for a float, the step of its −/+
 * buttons (top-p 1 − 1 would be 0: a float steps by a fraction). */
const FIELDS = [
  ['k', 'Candidates shown (k)', 'int', 1, 64],
  ['lookahead', 'Preview length (tokens)', 'int', 0, 64],
  ['granularity', 'Granularity', 'gran'],
  ['fork_entropy_bits', 'Fork when entropy ≥ bits (0 = off)', 'float', 0, 32, 0.1],
  ['fork_top1_below', 'Fork when top-1 below (0 = off)', 'float', 0, 1, 0.01],
  ['fork_margin_below', 'Fork when margin below (0 = off)', 'float', 0, 1, 0.01],
  ['min_gap_tokens', 'Budget: tokens between forks', 'int', 0, 10000],
  ['max_forks_per_sentence', 'Budget: forks per sentence (0 = any)', 'int', 0, 1000],
  ['temperature', 'Temperature', 'float', 0.01, 10, 0.05],
  ['seed', 'Seed', 'int', 0, 4294967295],
  ['sample_auto', 'Sample between forks (else greedy)', 'bool'],
  ['max_tokens', 'Stop after tokens (0 = context)', 'int', 0, 1000000],
  ['beam_width', 'Beam width', 'int', 1, 64],
  ['max_word_tokens', 'Longest word (tokens)', 'int', 1, 16],
  ['top_k', 'top-k (0 = off)', 'int', 0, 100000],
  ['top_p', 'top-p (1 = off)', 'float', 0, 1, 0.01],
  ['min_p', 'min-p (0 = off)', 'float', 0, 1, 0.01],
  ['repeat_penalty', 'Repeat penalty (1 = off)', 'float', 0, 10, 0.05],
  ['repeat_last_n', 'Repeat look-back (tokens)', 'int', 0, 100000],
];
const GRANS = ['token', 'word', 'phrase'];

/* Builds the form from the session's settings (only fields it has). */
export function fillSettings() {
  const box = $('model-settings');
  const cur = (S.state && S.state.settings) || S.prefs.settings || {};
  box.replaceChildren();
  for (const [key, label, type, min, max, nudge] of FIELDS) {
    if (S.state && !(key in cur)) continue;
    const v = key in cur ? cur[key] : S.prefs.settings[key];
    const lab = document.createElement('label');
    lab.textContent = label + ' ';
    let input;
    if (type === 'bool') {
      input = document.createElement('input');
      input.type = 'checkbox';
      input.checked = !!v;
    } else if (type === 'gran') {
      input = document.createElement('select');
      GRANS.forEach((g, gi) => {
        const o = document.createElement('option');
        o.value = typeof v === 'number' ? String(gi) : g;
        o.textContent = g;
        input.appendChild(o);
      });
      if (v !== undefined) input.value = typeof v === 'number' ? String(v) : String(v).toLowerCase().replace(/^fp_gran_/, '');
    } else {
      input = document.createElement('input');
      input.type = 'number';
      input.min = String(min); input.max = String(max);
      // any value may be typed (a server's 0.8 must not fail a 0.05 step's
      // check); the −/+ buttons (access/fields.js) step by data-nudge
      input.step = type === 'int' ? '1' : 'any';
      if (nudge) input.dataset.nudge = String(nudge);
      if (v !== undefined) input.value = String(v);
    }
    input.id = `set-${key}`;
    input.dataset.key = key;
    input.dataset.type = type;
    lab.appendChild(input);
    box.appendChild(lab);
  }
  $('set-dwell').checked = S.prefs.dwell;
  $('set-dwell-ms').value = S.prefs.dwellMs;
  $('set-cooldown-ms').value = S.prefs.cooldownMs;
  $('set-longpress-ms').value = S.prefs.longPressMs;
  $('set-share').checked = S.prefs.share;
}

export async function applySettings(ev) {
  ev.preventDefault();
  const cur = (S.state && S.state.settings) || {};
  const changed = {};
  for (const el of $('model-settings').querySelectorAll('[data-key]')) {
    const key = el.dataset.key, type = el.dataset.type;
    let v;
    if (type === 'bool') v = el.checked;
    else if (type === 'gran') v = typeof cur[key] === 'number' ? Number(el.value) : el.value;
    else if (el.value === '') continue;
    else v = type === 'int' ? parseInt(el.value, 10) : parseFloat(el.value);
    if (cur[key] !== v) changed[key] = v;
  }
  S.prefs.dwell = $('set-dwell').checked;
  S.prefs.dwellMs = clampNum($('set-dwell-ms').value, 200, 10000, 1000);
  S.prefs.cooldownMs = clampNum($('set-cooldown-ms').value, 0, 10000, 800);
  S.prefs.longPressMs = clampNum($('set-longpress-ms').value, 200, 3000, 500);
  S.prefs.share = $('set-share').checked;
  Object.assign(S.prefs.settings, changed);
  savePrefs();
  const msg = $('settings-msg');
  if (S.sid && Object.keys(changed).length) {
    try {
      const st = await api('POST', sessPath('/settings'), { settings: changed });
      render(st);
      msg.textContent = 'Applied.';
    } catch (e) {
      msg.textContent = e.message;
      showError(e.message);
    }
  } else {
    msg.textContent = 'Saved.';
  }
}
function clampNum(v, lo, hi, dflt) {
  const n = Number(v);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, Math.round(n))) : dflt;
}

/* ------------------------------------------- adapter strengths */

/* The personal LoRA adapter and steering vector the server was started
 * with (if any): one slider each, for the whole server, not one story.
 * Moving a slider only updates its readout; letting go of it (or a pause
 * after arrow keys, which fire a change per press) sends the new value.
 * The server re-decodes every story and pushes their new states over
 * the WebSocket, so the cloud follows without another request. */
export const ADAPTERS = [
  { key: 'lora_scale', file: 'lora', input: 'set-lora-scale', out: 'out-lora-scale', row: 'row-lora', name: 'adapter' },
  { key: 'steer_strength', file: 'steer', input: 'set-steer-strength', out: 'out-steer-strength', row: 'row-steer', name: 'steering vector' },
];
const ADAPTER_DEBOUNCE_MS = 250;
const fmtStrength = (v) => String(Math.round(v * 1000) / 1000);

export function setReadout(d, v) {
  $(d.out).textContent = fmtStrength(v);
  $(d.input).setAttribute('aria-valuetext', v === 0 ? '0, off' : fmtStrength(v));
}

function showAdapters(a) {
  S.adapters = a && typeof a === 'object' ? a : {};
  const files = [];
  let any = false;
  for (const d of ADAPTERS) {
    const v = S.adapters[d.key];
    const on = typeof S.adapters[d.file] === 'string' && typeof v === 'number';
    $(d.row).hidden = !on;
    if (!on) continue;
    any = true;
    files.push(`${d.name}: ${S.adapters[d.file].split('/').pop()}`);
    if (S.adapterDirty.has(d.key)) continue;
    const el = $(d.input);
    // 0..4 in quarters, widened if the server's value lies outside
    el.min = String(Math.min(0, Math.floor(v * 4) / 4));
    el.max = String(Math.max(4, Math.ceil(v * 4) / 4));
    el.value = String(v);
    setReadout(d, v); // the server's exact value, even between two steps
  }
  $('adapter-files').textContent = files.length ? `In use: ${files.join(', ')}.` : '';
  $('adapter-settings').hidden = !any;
}

export async function loadAdapters() {
  if (S.adapterBusy || S.adapterDirty.size) return; // a change of ours is on its way
  try {
    showAdapters(await api('GET', '/api/adapters'));
  } catch (e) {
    showAdapters({}); // an older server without the endpoint: nothing to show
  }
}

export function adapterChanged(d) {
  S.adapterDirty.add(d.key);
  setReadout(d, Number($(d.input).value));
  clearTimeout(S.adapterTimer);
  S.adapterTimer = setTimeout(sendAdapters, ADAPTER_DEBOUNCE_MS);
}

/* Sends the sliders that changed (one request at a time; changes made
 * while one is out go in the next). */
async function sendAdapters() {
  clearTimeout(S.adapterTimer);
  if (S.adapterBusy || !S.adapterDirty.size) return;
  const body = {};
  for (const d of ADAPTERS) if (S.adapterDirty.has(d.key)) body[d.key] = Number($(d.input).value);
  S.adapterDirty.clear();
  S.adapterBusy = true;
  const box = $('adapter-settings'), msg = $('settings-msg');
  box.setAttribute('aria-busy', 'true');
  msg.textContent = 'Applying the new strength to every story…';
  try {
    showAdapters(await api('POST', '/api/adapters', body));
    msg.textContent = 'Strength applied.';
    // the new state comes over the WebSocket; without one, ask for it
    if (S.sid && !(S.ws && S.ws.readyState === WebSocket.OPEN)) {
      api('GET', sessPath('')).then((st) => render(st)).catch((e) => showError(e.message));
    }
  } catch (e) {
    msg.textContent = e.message;
    showError(e.message);
    S.adapterBusy = false;
    if (!S.adapterDirty.size) await loadAdapters(); // back to what the server has
  } finally {
    S.adapterBusy = false;
    box.setAttribute('aria-busy', 'false');
    if (S.adapterDirty.size) sendAdapters();
  }
}
