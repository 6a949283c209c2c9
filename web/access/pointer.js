/*
 * pointer.js — a pointer that selects by dwell, or highlights for a switch
 * to confirm ("look, then confirm"): the mouse or a finger (dwell mode),
 * the camera's gaze or head pose (gaze and head modes), or samples fed in
 * by a test or an external tracker (window.fpAccess.feed).
 *
 * Why one path for all: smoothing (oneeuro.js), hit testing, dwell
 * (dwell.js) and the highlight are the same whatever moves the pointer.
 * Gaze and head features go through the 9-point calibration
 * (calibrate.js); its residual error sizes the targets: every control gets
 * at least 4 sigma of width and height while the mode is on (clamped to
 * 48..200 px), and a point within sigma of a control counts as on it.
 * After a dwell selection, dwell waits until the pointer has moved away
 * from where it rests (3 sigma for gaze and head, from the mean of the
 * samples since; 2 sigma for a mouse), so a still gaze does not select
 * what the new page puts under it: measured against one noisy sample with
 * 2 sigma, a gaze that stared on for 1.5 s chose again after 2 and 4
 * of 8 selections in two runs of access_test's gaze.
 * Cost per sample: O(targets) for the hit test (rects are cached per
 * change of the page).
 */
import { OneEuro2 } from './oneeuro.js';
import { Dwell } from './dwell.js';
import { collect, keyOf } from './targets.js';
import * as calib from './calibrate.js';
import * as hl from './highlight.js';

const CAL_KEY = (kind) => `fp-access-calib-${kind}`;

export class Pointer {
  constructor(S) {
    this.S = S;
    this.kind = S.mode;                 // 'dwell' | 'gaze' | 'head'
    this.hybrid = !!S.hybrid;
    this.filter = new OneEuro2(this.kind === 'dwell' ? 3 : 1.0, 0.007, 1.0);
    this.dwell = new Dwell(Number(S.dwellMs) || 800, 300);
    this.targets = []; this.hot = null; this.cam = null; this.listeners = new Set();
    this.map = null; this.face = null; this.selections = []; this.sigma = 30;
    this.h = { move: (e) => { if (e.isTrusted) this.point(e.clientX, e.clientY, performance.now()); },
      cal: () => this.calibrate().catch((e) => hl.status(e.message)) };
  }

  async start() {
    document.body.classList.add('fp-pointer');
    document.addEventListener('fp:calibrate', this.h.cal);
    this.refresh();
    if (this.kind === 'dwell') { addEventListener('pointermove', this.h.move, true); return; }
    this.cursor = document.createElement('div');
    this.cursor.id = 'fp-gaze-cursor';
    this.cursor.setAttribute('aria-hidden', 'true');
    document.body.appendChild(this.cursor);
    try { this.map = JSON.parse(localStorage.getItem(CAL_KEY(this.kind)) || 'null'); } catch (e) { this.map = null; }
    if (this.map) this.setSigma(this.map.rms);
    const q = new URL((performance.getEntriesByType('navigation')[0] || {}).name || location.href).searchParams;
    if (q.get('source') === 'inject') { this.injected = true; return; }
    hl.status('Starting the camera…');
    try {
      this.cam = await startCam(this);
      hl.status(this.map || this.kind === 'head' ? '' : 'Look at each dot to calibrate');
      if (!this.map && this.kind === 'gaze') await this.calibrate();
    } catch (e) {
      hl.status(`Camera: ${e.message}`);
      document.body.dataset.face = 'error';
    }
  }

  stop() {
    removeEventListener('pointermove', this.h.move, true);
    document.removeEventListener('fp:calibrate', this.h.cal);
    if (this.cam) this.cam.stop();
    if (this.cursor) this.cursor.remove();
    document.body.classList.remove('fp-pointer');
    document.body.style.removeProperty('--fp-min-target');
    delete document.body.dataset.face;
    hl.hide(); hl.status('');
  }

  /* Sizes targets for the pointer's error: sigma px per axis. */
  setSigma(s) {
    this.sigma = Math.max(5, Math.min(100, s || 30));
    const min = Math.round(Math.max(48, Math.min(200, 4 * this.sigma)));
    document.body.style.setProperty('--fp-min-target', `${min}px`);
  }

  /* The page's targets and where they are now. */
  refresh() {
    this.targets = collect().map((it) => ({ it, key: keyOf(it), r: it.el.getBoundingClientRect() }));
  }

  /* The target at (x, y): the nearest within sigma px of its box. */
  hit(x, y) {
    let best = null, bd = this.sigma;
    for (const t of this.targets) {
      const dx = Math.max(t.r.left - x, 0, x - t.r.right), dy = Math.max(t.r.top - y, 0, y - t.r.bottom);
      const d = Math.hypot(dx, dy);
      if (d < bd || (d === 0 && bd > 0)) { best = t; bd = d; if (d === 0) break; }
    }
    return best;
  }

  /* A face appeared (true) or went (false). */
  onFace(seen) {
    this.face = seen;
    document.body.dataset.face = seen ? 'yes' : 'none';
    if (!seen) {
      this.dwell.reset(); this.hot = null; hl.hide();
      if (this.cursor) this.cursor.hidden = true;
      hl.status('No face in view: look at the screen, in front of the camera');
    } else { hl.status(''); if (this.cursor) this.cursor.hidden = false; }
  }

  /* A feature vector from the camera or a feed. */
  features(f, t) {
    for (const l of this.listeners) l(f);
    if (this.calibrating) return;
    let m = this.map;
    if (!m && this.kind === 'head') {
      // head without calibration: yaw and pitch (radians) scaled to the screen
      m = { wx: [-2.5 * innerWidth, 0, innerWidth / 2], wy: [0, 3 * innerHeight, innerHeight / 2] };
    }
    if (!m || m.wx.length !== f.length + 1) return;
    const [x, y] = calib.apply(m, f);
    this.point(x, y, t);
  }

  /* A sample fed in: { features: [...] } | { x, y } | { face: false }, t (ms). */
  feed(s) {
    const t = s.t ?? performance.now();
    if (s.face === false) { if (this.face !== false) this.onFace(false); return; }
    if (this.face !== true) this.onFace(true);
    if (s.features) this.features(s.features, t);
    else if (Number.isFinite(s.x) && Number.isFinite(s.y)) this.point(s.x, s.y, t);
  }

  /* One pointer position: smooth, hit test, dwell or highlight. */
  point(rx, ry, t) {
    const [x, y] = this.kind === 'dwell' ? [rx, ry] : this.filter.filter(rx, ry, t);
    this.last = { x, y, t };
    if (this.cursor) { this.cursor.style.left = `${x}px`; this.cursor.style.top = `${y}px`; }
    const tg = this.hit(x, y);
    if ((tg && tg.key) !== (this.hot && this.hot.key)) {
      this.hot = tg;
      if (tg) hl.show([tg.it.el], tg.it.label, 'dwell'); else hl.hide();
    }
    if (this.hybrid) return;
    // after a selection the next page may put another target under a still
    // gaze: dwell waits until the pointer has moved away (no Midas touch)
    if (this.rearm) {
      const a = this.rearm;
      if (Math.hypot(x - a.x, y - a.y) < (this.kind === 'dwell' ? 2 : 3) * this.sigma) {
        // the resting point is the mean of the fixation so far, not one
        // noisy sample: the noise of a still gaze is not a move
        a.n++; a.x += (x - a.x) / a.n; a.y += (y - a.y) / a.n;
        this.dwell.update(null, t);
        return;
      }
      this.rearm = null;
    }
    // a word of the story takes twice the dwell: reading must not rewind it
    const fired = this.dwell.update(tg ? tg.key : null, t, tg && tg.it.group === 'story' ? 2 * this.dwell.dwellMs : 0);
    hl.progress(this.dwell.progress());
    if (fired && tg) this.activate(tg, 'dwell', t);
  }

  /* The switch in "look, then confirm": selects what is highlighted. */
  confirm(source) {
    if (this.hot) this.activate(this.hot, source, this.last ? this.last.t : performance.now());
  }

  activate(tg, how, t) {
    this.selections.push({ label: tg.it.label, key: tg.key, how, t });
    if (this.selections.length > 1000) this.selections.splice(0, 500);
    this.dwell.reset();
    if (this.last) this.rearm = { x: this.last.x, y: this.last.y, n: 1 };
    tg.it.el.click();
    this.hot = null;
    hl.hide();
  }

  /* 9-point calibration of this pointer's features. */
  async calibrate() {
    if (this.kind === 'dwell') return;
    this.calibrating = true;
    const src = { on: (f) => this.listeners.add(f), off: (f) => this.listeners.delete(f) };
    try {
      this.map = await calib.run(src, { holdMs: Number(this.S.calibHoldMs) || 1500 });
      this.setSigma(this.map.rms);
      try { localStorage.setItem(CAL_KEY(this.kind), JSON.stringify(this.map)); } catch (e) { /* private mode */ }
      hl.status(`Calibrated: about ${Math.round(this.map.rms)} px of error; targets grown to match`);
      setTimeout(() => hl.status(''), 3000);
      this.refresh();
    } finally { this.calibrating = false; }
  }
}

/* The camera, loaded only when a camera mode starts. */
async function startCam(p) {
  const { startCamera } = await import('./camera.js');
  return startCamera(p.kind, (f) => p.features(f, performance.now()), (seen) => p.onFace(seen),
    (e) => hl.status(`Camera: ${e.message}`));
}
