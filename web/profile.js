/*
 * profile.js — the profile view: what the server's --profile has learned
 * about the person, and a way to forget it.
 *
 * A self-contained ES module (index.html loads it with one script tag; it
 * shares nothing with app.js). It adds a "Profile" button to the element
 * [data-fp="toolbar"] if the page has one, else to the page's tool bar, and
 * opens its own <dialog> with:
 *   - an SVG plot over the person's choices: how often the learned top pick
 *     was theirs (agreement) and how often they had to step in
 *     (interventions: forks they decided or undid), per bucket of forks;
 *   - the forks decided automatically and how many of those were undone;
 *   - the words and features that moved most;
 *   - a Reset button (asks once more before it forgets).
 * Every number comes from GET /api/profile (the core's fp_prefs_to_json);
 * reset is DELETE /api/profile. The page's CSP allows no inline style, so
 * the SVG uses presentation attributes only.
 */

const SVGNS = 'http://www.w3.org/2000/svg';

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

async function request(method) {
  const r = await fetch('/api/profile', { method, credentials: 'same-origin' });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
  return data;
}

/* The two curves as an SVG, 0–100% against forks. */
export function plot(curve) {
  const W = 480, H = 200, L = 40, R = 10, T = 10, B = 30;
  const pw = W - L - R, ph = H - T - B;
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': 'Agreement and interventions over your choices', 'data-fp': 'profile-plot' });
  const total = curve.reduce((a, b) => a + b.forks, 0);
  for (let v = 0; v <= 100; v += 25) {
    const y = T + ph * (1 - v / 100);
    svg.append(svgEl('line', { x1: L, x2: L + pw, y1: y, y2: y, stroke: '#ccc', 'stroke-width': 1 }));
    svg.append(svgEl('text', { x: L - 4, y: y + 4, 'text-anchor': 'end', 'font-size': 10, fill: 'currentColor' }, `${v}%`));
  }
  svg.append(svgEl('text', { x: L + pw / 2, y: H - 6, 'text-anchor': 'middle', 'font-size': 11, fill: 'currentColor' },
    `your last ${total} forks (oldest left)`));
  const series = [
    { name: 'agreement', color: '#2a7', value: (b) => (b.decided ? (100 * b.agreed) / b.decided : null) },
    { name: 'interventions', color: '#c52', value: (b) => (b.forks ? (100 * (b.decided + b.undone)) / b.forks : null) },
  ];
  let at = 0;
  const xs = curve.map((b) => { const x = L + (pw * (at + b.forks / 2)) / Math.max(total, 1); at += b.forks; return x; });
  series.forEach((s, si) => {
    const pts = [];
    curve.forEach((b, i) => {
      const v = s.value(b);
      if (v !== null) pts.push(`${xs[i].toFixed(1)},${(T + ph * (1 - v / 100)).toFixed(1)}`);
    });
    if (pts.length) {
      svg.append(svgEl('polyline', { points: pts.join(' '), fill: 'none', stroke: s.color, 'stroke-width': 2,
        'data-series': s.name }));
    }
    svg.append(svgEl('text', { x: L + 8 + si * 110, y: T + 12, 'font-size': 11, fill: s.color }, s.name));
  });
  return svg;
}

function list(title, items, fmt) {
  const box = el('div');
  box.append(el('h3', {}, title));
  const ul = el('ul');
  if (!items.length) ul.append(el('li', {}, '(none yet)'));
  for (const it of items) ul.append(el('li', {}, fmt(it)));
  box.append(ul);
  return box;
}

const signed = (x) => (x >= 0 ? '+' : '') + x.toFixed(2);

function render(body, p) {
  body.replaceChildren();
  const pct = p.automatic ? ((100 * p.undone) / p.automatic).toFixed(1) : '0.0';
  body.append(el('p', { 'data-fp': 'profile-summary' },
    `Profile ${p.profile}: ${p.decisions} decisions learned. ` +
    `Decided automatically: ${p.automatic}, undone by you: ${p.undone} (${pct}%). ` +
    (p.threshold === null ? 'Automatic decisions: off or not enough history yet.' : `Threshold ${p.threshold}.`)));
  if (p.curve.length) body.append(plot(p.curve));
  else body.append(el('p', {}, 'No decisions yet.'));
  body.append(list('Words that moved most', p.words.slice(0, 10), (w) => `${signed(w.weight)} ${w.word}`));
  body.append(list('Features', p.features, (f) => `${signed(f.change)} ${f.name}`));
}

function build() {
  const bar = document.querySelector('[data-fp="toolbar"] nav') || document.querySelector('[data-fp="toolbar"]') || document.querySelector('nav.tools')
    || document.querySelector('header') || document.body;
  const btn = el('button', { type: 'button', id: 'btn-profile', 'aria-haspopup': 'dialog' }, 'Profile');
  // data-scan-group: the page's contract for scanning and dwell (app.js)
  const dlg = el('dialog', { id: 'profile-dialog', 'aria-labelledby': 'profile-title', 'data-scan-group': 'panel' });
  const title = el('h2', { id: 'profile-title' }, 'What Forkpoint learned about you');
  const body = el('div', { 'data-fp': 'profile-body' });
  const status = el('p', { role: 'status', 'data-fp': 'profile-status' });
  const reset = el('button', { type: 'button', 'data-fp': 'profile-reset' }, 'Reset profile');
  const close = el('button', { type: 'button', 'data-fp': 'profile-close' }, 'Close');
  dlg.append(title, body, status, reset, close);
  document.body.append(dlg);
  bar.append(btn);

  let armed = false;
  async function load() {
    status.textContent = 'Loading…';
    try {
      render(body, await request('GET'));
      status.textContent = '';
    } catch (e) {
      body.replaceChildren();
      status.textContent = e.message;
    }
  }
  btn.addEventListener('click', async () => {
    armed = false;
    reset.textContent = 'Reset profile';
    if (typeof dlg.showModal === 'function') dlg.showModal(); else dlg.setAttribute('open', '');
    await load();
  });
  close.addEventListener('click', () => dlg.close());
  reset.addEventListener('click', async () => {
    if (!armed) { armed = true; reset.textContent = 'Really forget everything learned?'; return; }
    armed = false;
    reset.textContent = 'Reset profile';
    try {
      render(body, await request('DELETE'));
      status.textContent = 'The profile was reset.';
    } catch (e) {
      status.textContent = e.message;
    }
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', build);
else build();
