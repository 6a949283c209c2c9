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

/* The fields: [name, label, type, arg, names | nudge]. A number's nudge is
 * what its "−"/"+" buttons change it by. */
const FIELDS = [
  ['mode', 'Access method', 'choice', MODES, { off: 'Off', scan1: 'One switch', scan2: 'Two switches',
    dwell: 'Dwell', gaze: 'Camera gaze', head: 'Head pointer' }],
  ['interval', 'Scan interval (ms)', 'number', [200, 10000, 50], 100],
  ['firstExtra', 'Extra time on the first item (ms)', 'number', [0, 10000, 50], 100],
  ['loops', 'Loops before a pause', 'number', [1, 20, 1], 1],
  ['speak', 'Say each item aloud', 'checkbox'],
  ['selectKeys', 'Select keys (key names, space separated)', 'keys'],
  ['stepKeys', 'Step keys (two switches)', 'keys'],
  ['mouse', 'A mouse button is the switch (right button steps)', 'checkbox'],
  ['touch', 'A touch anywhere is the switch', 'checkbox'],
  ['gamepad', 'A gamepad button is the switch (A selects, B steps)', 'checkbox'],
  ['device', 'A device on the WebSocket is the switch', 'checkbox'],
  ['dwellMs', 'Dwell time for dwell, gaze and head (ms)', 'number', [200, 5000, 50], 100],
  ['hybrid', 'Look, then confirm: the switch selects what gaze or the pointer highlights', 'checkbox'],
];

const button = (id, text, label, onClick) => {
  const b = document.createElement('button');
  b.type = 'button'; b.id = id; b.textContent = text;
  if (label) b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
};

/* Waits for the next key press and gives its code to done (Escape, or ten
 * seconds without a key, gives up). While it waits the switches leave keys
 * alone (body[data-fp-recording], switches.js claims()). */
function recordKey(status, done) {
  document.body.dataset.fpRecording = '1';
  status.textContent = 'Press the key to use now (Escape: keep the old one)';
  const end = (code) => {
    removeEventListener('keydown', onKey, true);
    clearTimeout(timer);
    delete document.body.dataset.fpRecording;
    status.textContent = code ? `Set to ${code}` : 'Kept as it was';
    if (code) done(code);
  };
  const t0 = performance.now();
  const onKey = (e) => {
    if (!e.isTrusted || e.repeat || e.timeStamp < t0) return;   // not the press that opened it
    e.preventDefault(); e.stopImmediatePropagation();
    end(e.code === 'Escape' ? null : e.code || e.key);
  };
  // at once (a key pressed right away counts); the press that clicked this
  // button is older than t0, and past this window's capture phase anyway
  addEventListener('keydown', onKey, true);
  const timer = setTimeout(() => end(null), 10000);
}

/* Renders the form into host; onApply(settings) after a change. Every
 * field can be worked by a switch as well as by keyboard and mouse: the
 * access method is a row of buttons, a number has "−"/"+" buttons, a key
 * field a "press the key" button, check boxes are scanned as they are. */
export function render(host, s, onApply) {
  const form = document.createElement('div');
  form.className = 'fp-access-fields';
  const h = document.createElement('h3');
  h.textContent = 'Access: switch, dwell, gaze';
  if (!host.closest('details')) form.appendChild(h); // else the summary names it
  const status = document.createElement('p');
  status.className = 'fp-acc-msg';
  status.setAttribute('role', 'status');

  const redraw = [];
  /* Sets one setting (checked against its range), saves and applies it. */
  const set = (name, v) => {
    s[name] = v;
    save(s);
    redraw.forEach((f) => f());
    onApply(s);
  };

  for (const [name, text, type, arg, extra] of FIELDS) {
    const id = `fp-acc-${name}`;
    const row = document.createElement('div');
    row.className = 'fp-acc-row';
    if (type === 'choice') {
      // buttons, one per choice: a scan selects the one it means (a <select>
      // cannot be worked by a switch; stepping through the modes one by one
      // would pass through "off")
      const group = document.createElement('div');
      group.id = id;
      group.className = 'fp-acc-choices';
      group.setAttribute('role', 'group');
      group.setAttribute('aria-labelledby', `${id}-label`);
      const label = document.createElement('span');
      label.id = `${id}-label`;
      label.className = 'fp-acc-label';
      label.textContent = text;
      const bs = arg.map((m) => button(`${id}-${m}`, extra[m] || m, null, () => { if (s[name] !== m) set(name, m); }));
      const mark = () => bs.forEach((b, i) => b.setAttribute('aria-pressed', String(s[name] === arg[i])));
      mark(); redraw.push(mark);
      group.append(...bs);
      row.classList.add('fp-acc-choice');
      row.append(label, group);
      form.appendChild(row);
      continue;
    }
    const label = document.createElement('label');
    label.htmlFor = id;
    label.textContent = text;
    const input = document.createElement('input');
    input.type = type === 'keys' ? 'text' : type;
    input.id = id;
    const show = () => { if (type === 'checkbox') input.checked = !!s[name]; else input.value = String(s[name]); };
    show(); redraw.push(show);
    if (type === 'number') { [input.min, input.max, input.step] = arg.map(String); }
    input.addEventListener('change', () => {
      let v = type === 'checkbox' ? input.checked : input.value;
      if (type === 'number') {
        v = Number(v);
        if (!Number.isFinite(v) || v < arg[0] || v > arg[1]) { show(); return; }
      }
      set(name, v);
    });
    // one compact row per field (label, then its controls), so the fields
    // that matter first fit above the fold of the Settings panel
    row.classList.add(`fp-acc-${type}`);
    if (type === 'checkbox') row.append(input, label);
    else if (type === 'number') {
      const by = extra;
      const nudge = (d) => set(name, Math.min(arg[1], Math.max(arg[0], Number(s[name]) + d)));
      row.append(label, button(`${id}-less`, `−${by}`, `${text} −${by}`, () => nudge(-by)), input,
        button(`${id}-more`, `+${by}`, `${text} +${by}`, () => nudge(by)));
    } else {
      row.append(label, input, button(`${id}-set`, 'Press the key', `${text}: press the key`,
        () => recordKey(status, (code) => set(name, code))));
    }
    form.appendChild(row);
  }
  const cal = document.createElement('button');
  cal.type = 'button';
  cal.id = 'fp-acc-calibrate';
  cal.textContent = 'Calibrate gaze (9 points)';
  cal.addEventListener('click', () => document.dispatchEvent(new CustomEvent('fp:calibrate')));
  form.append(cal, status);
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
  dlg.dataset.scanGroup = 'panel';
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
