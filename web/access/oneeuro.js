/*
 * oneeuro.js — the One-Euro filter (Casiez, Roussel, Vogel, CHI 2012) that
 * smooths the gaze and head pointer: a low-pass filter whose cut-off rises
 * with speed, so a fixation is steady and a saccade still arrives quickly.
 * Shared by the page (pointer.js) and the gaze benchmark
 * (bench/bench_access.mjs), so both smooth the same way. O(1) per sample.
 */

const alpha = (cutoff, dt) => { const tau = 1 / (2 * Math.PI * cutoff); return 1 / (1 + tau / dt); };

export class OneEuro {
  /* minCutoff (Hz): smoothing at rest; beta: how fast the cut-off rises
   * with speed; dCutoff (Hz): for the speed estimate. */
  constructor(minCutoff = 1.0, beta = 0.007, dCutoff = 1.0) {
    this.minCutoff = minCutoff; this.beta = beta; this.dCutoff = dCutoff;
    this.x = null; this.dx = 0; this.t = null;
  }
  reset() { this.x = null; this.dx = 0; this.t = null; }
  /* Filters value x at time t (ms). */
  filter(x, t) {
    if (this.x === null) { this.x = x; this.t = t; return x; }
    const dt = Math.max(1e-3, (t - this.t) / 1000);
    this.t = t;
    const dx = (x - this.x) / dt;
    this.dx += alpha(this.dCutoff, dt) * (dx - this.dx);
    const cutoff = this.minCutoff + this.beta * Math.abs(this.dx);
    this.x += alpha(cutoff, dt) * (x - this.x);
    return this.x;
  }
}

/* A 2-D point filter: one One-Euro per axis. */
export class OneEuro2 {
  constructor(minCutoff, beta, dCutoff) { this.fx = new OneEuro(minCutoff, beta, dCutoff); this.fy = new OneEuro(minCutoff, beta, dCutoff); }
  reset() { this.fx.reset(); this.fy.reset(); }
  filter(x, y, t) { return [this.fx.filter(x, t), this.fy.filter(y, t)]; }
}
