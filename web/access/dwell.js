/*
 * dwell.js — dwell selection for any pointer (mouse, gaze, head): the
 * target the pointer rests on for dwellMs is selected. Shared by the page
 * (pointer.js) and the gaze benchmark, so the figures are this code's.
 *
 * Why progress decays instead of resetting: a noisy gaze point leaves a
 * target for a sample or two while the person keeps looking at it; a
 * reset would make dwell on a noisy pointer never finish. Each target's
 * progress grows while the pointer is on it and shrinks at the same rate
 * while it is not; the first to reach dwellMs is selected, then every
 * progress restarts (and a cooldown keeps the next target from firing on
 * the same fixation). O(targets touched) per sample.
 */

export class Dwell {
  constructor(dwellMs = 600, cooldownMs = 300) {
    this.dwellMs = dwellMs; this.cooldownMs = cooldownMs;
    this.acc = new Map(); this.t = null; this.until = 0; this.cur = null;
  }
  reset() { this.acc.clear(); this.t = null; this.cur = null; }

  /* One pointer sample at time t (ms) on target id (or null); ms: this
   * target's dwell time when it differs (default dwellMs). Returns the id
   * selected now, or null. */
  update(id, t, ms) {
    const dt = this.t === null ? 0 : Math.min(200, t - this.t);
    this.t = t;
    this.cur = id;
    if (t < this.until) { this.acc.clear(); return null; }
    for (const [k, v] of this.acc) {
      if (k === id) continue;
      const nv = v - dt;
      if (nv <= 0) this.acc.delete(k); else this.acc.set(k, nv);
    }
    if (id === null || id === undefined) return null;
    const v = (this.acc.get(id) || 0) + dt;
    if (v >= (ms || this.dwellMs)) {
      this.acc.clear();
      this.until = t + this.cooldownMs;
      return id;
    }
    this.acc.set(id, v);
    return null;
  }

  /* Progress of the current target, 0..1 (for the ring). */
  progress() { return this.cur === null ? 0 : Math.min(1, (this.acc.get(this.cur) || 0) / this.dwellMs); }
}
