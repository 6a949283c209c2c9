/*
 * settings.js — the access settings (mode, scan timing, switches, dwell,
 * gaze), kept in localStorage and shown in the page's Settings panel
 * (<section id="access-settings">) or, when the page has none, in a small
 * dialog opened from an "Access" button in the toolbar.
 *
 * Why the URL wins: ?access=scan1|scan2|dwell|gaze|head starts a mode at
 * load, so a carer can bookmark it; the saved settings are used otherwise.
 */

const KEY = 'fp-access';
export const MODES = ['off', 'scan1', 'scan2', 'dwell', 'gaze', 'head'];
export const DEFAULTS = {
  mode: 'off', interval: 1000, firstExtra: 500, loops: 3, speak: false,
  selectKeys: 'Space Enter', stepKeys: 'Tab',
  mouse: true, touch: true, gamepad: true, device: true,
  dwellMs: 800, hybrid: false, smooth: 1.0,
};

export function load() {
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(KEY) || '{}'); } catch (e) { saved = {}; }
  const s = Object.assign({}, DEFAULTS, saved);
  // the page may drop its query from the address bar (the token) before
  // this module runs: read the address the page was loaded from
  const nav = performance.getEntriesByType && performance.getEntriesByType('navigation')[0];
  const q = new URL(nav && nav.name ? nav.name : location.href).searchParams;
  const m = q.get('access');
  if (m && MODES.includes(m)) s.mode = m;
  if (q.get('hybrid') === '1') s.hybrid = true;
  if (q.get('interval') && Number(q.get('interval')) >= 200) s.interval = Number(q.get('interval'));
  return s;
}

export function save(s) {
  try { localStorage.setItem(KEY, JSON.stringify(s)); } catch (e) { /* private mode */ }
}

const FIELDS = [
  ['mode', 'Access method', 'select', MODES, { off: 'off (mouse, touch, keys)', scan1: 'one-switch scanning',
    scan2: 'two-switch scanning', dwell: 'dwell on every control', gaze: 'camera gaze', head: 'head pointer' }],
  ['interval', 'Scan interval (ms)', 'number', [200, 10000, 50]],
  ['firstExtra', 'Extra time on the first item (ms)', 'number', [0, 10000, 50]],
  ['loops', 'Loops before a pause', 'number', [1, 20, 1]],
  ['speak', 'Say each item aloud', 'checkbox'],
  ['selectKeys', 'Select keys (key names, space separated)', 'text'],
  ['stepKeys', 'Step keys (two switches)', 'text'],
  ['mouse', 'A mouse button is the switch (right button steps)', 'checkbox'],
  ['touch', 'A touch anywhere is the switch', 'checkbox'],
  ['gamepad', 'A gamepad button is the switch (A selects, B steps)', 'checkbox'],
  ['device', 'A device on the WebSocket is the switch', 'checkbox'],
  ['dwellMs', 'Dwell time for dwell, gaze and head (ms)', 'number', [200, 5000, 50]],
  ['hybrid', 'Look, then confirm: the switch selects what gaze or the pointer highlights', 'checkbox'],
];

/* Renders the form into host; onApply(settings) after a change. */
export function render(host, s, onApply) {
  const form = document.createElement('div');
  form.className = 'fp-access-fields';
  const h = document.createElement('h3');
  h.textContent = 'Access: switch, dwell, gaze';
  if (!host.closest('details')) form.appendChild(h); // else the summary names it

  for (const [name, text, type, arg, names] of FIELDS) {
    const id = `fp-acc-${name}`;
    const row = document.createElement('div');
    row.className = 'fp-acc-row';
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = text;
    let input;
    if (type === 'select') {
      input = document.createElement('select');
      for (const m of arg) {
        const o = document.createElement('option');
        o.value = m; o.textContent = names[m] || m;
        input.appendChild(o);
      }
      input.value = s[name];
    } else {
      input = document.createElement('input');
      input.type = type;
      if (type === 'checkbox') input.checked = !!s[name];
      else input.value = String(s[name]);
      if (type === 'number') { [input.min, input.max, input.step] = arg.map(String); }
    }
    input.id = id;
    input.addEventListener('change', () => {
      let v = type === 'checkbox' ? input.checked : input.value;
      if (type === 'number') {
        v = Number(v);
        if (!Number.isFinite(v) || v < arg[0] || v > arg[1]) { input.value = String(s[name]); return; }
      }
      s[name] = v;
      save(s);
      onApply(s);
    });
    if (type === 'checkbox') row.append(input, label); else row.append(label, input);
    form.appendChild(row);
  }
  const cal = document.createElement('button');
  cal.type = 'button';
  cal.id = 'fp-acc-calibrate';
  cal.textContent = 'Calibrate gaze (9 points)';
  cal.addEventListener('click', () => document.dispatchEvent(new CustomEvent('fp:calibrate')));
  form.appendChild(cal);
  host.replaceChildren(form);
}

/* Where the settings go: the page's section, or our own dialog behind an
 * "Access" toolbar button. */
export function mount(s, onApply) {
  const sec = document.getElementById('access-settings');
  if (sec) { render(sec, s, onApply); return; }
  const bar = document.querySelector('[data-fp=toolbar]') || document.querySelector('.tools');
  const dlg = document.createElement('dialog');
  dlg.id = 'fp-access-dialog';
  dlg.setAttribute('aria-label', 'Access settings');
  const body = document.createElement('div');
  const close = document.createElement('button');
  close.type = 'button'; close.textContent = 'Close';
  close.addEventListener('click', () => dlg.close());
  dlg.append(body, close);
  document.body.appendChild(dlg);
  render(body, s, onApply);
  if (bar) {
    const b = document.createElement('button');
    b.type = 'button'; b.id = 'btn-access'; b.textContent = 'Access';
    b.addEventListener('click', () => { if (!dlg.open) dlg.showModal(); });
    bar.appendChild(b);
  }
}
