/*
 * calibrate.js — 9-point calibration of the gaze (or head) features to
 * screen points: a dot at each point of a 3x3 grid, the features of the
 * last part of each fixation kept, then a least-squares affine map (with a
 * small ridge term) from features to x and y. Its residual error becomes
 * the noise estimate that sizes the targets (pointer.js).
 *
 * Why affine: with the head still, the gaze angles from the face mesh are
 * close to linear in screen position over a laptop screen; nine points fit
 * the 2 x (n+1) coefficients of n features with room to spare. O(n^3) for
 * the solve, n <= 8.
 */

export const POINTS = [[0.1, 0.1], [0.5, 0.1], [0.9, 0.1], [0.1, 0.5], [0.5, 0.5], [0.9, 0.5], [0.1, 0.9], [0.5, 0.9], [0.9, 0.9]];

/* Solves (A^T A + lambda I) w = A^T b by Gaussian elimination. */
function ridge(A, b, lambda) {
  const n = A[0].length;
  const M = Array.from({ length: n }, (_, i) => Array.from({ length: n + 1 }, (_, j) => {
    if (j === n) return A.reduce((s, r, k) => s + r[i] * b[k], 0);
    return A.reduce((s, r) => s + r[i] * r[j], 0) + (i === j && i < n - 1 ? lambda : 0);
  }));
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    if (Math.abs(M[c][c]) < 1e-12) throw new Error('calibration: the features do not change between points');
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r][c] / M[c][c];
      for (let j = c; j <= n; j++) M[r][j] -= f * M[c][j];
    }
  }
  return M.map((row, i) => row[n] / M[i][i]);
}

/* Fits the map from samples [{f: [features], x, y}]. Returns
 * { wx, wy, rms } (rms: residual px, per axis). */
export function fit(samples) {
  if (samples.length < 9) throw new Error('calibration: too few samples');
  const A = samples.map((s) => [...s.f, 1]);
  const wx = ridge(A, samples.map((s) => s.x), 1e-6);
  const wy = ridge(A, samples.map((s) => s.y), 1e-6);
  const m = { wx, wy };
  const err = samples.reduce((e, s) => { const [x, y] = apply(m, s.f); return e + (x - s.x) ** 2 + (y - s.y) ** 2; }, 0);
  m.rms = Math.sqrt(err / samples.length / 2);
  return m;
}

/* Features to a screen point. */
export function apply(m, f) {
  const dot = (w) => f.reduce((s, v, i) => s + v * w[i], 0) + w[f.length];
  return [dot(m.wx), dot(m.wy)];
}

/* Runs the calibration on screen: shows each dot, keeps the features that
 * arrive (through onFeatures) during its last settleMs..holdMs, fits.
 * Resolves with the map. */
export function run(source, { holdMs = 1500, settleMs = 500 } = {}) {
  return new Promise((resolve, reject) => {
    const layer = document.createElement('div');
    layer.id = 'fp-calib';
    layer.setAttribute('role', 'dialog');
    layer.setAttribute('aria-label', 'Gaze calibration: look at each dot');
    const dot = document.createElement('div');
    dot.className = 'dot';
    layer.appendChild(dot);
    document.body.appendChild(layer);
    const samples = [];
    let i = -1, t0 = 0;
    const next = () => {
      i++;
      if (i >= POINTS.length) {
        source.off(onF);
        layer.remove();
        try { resolve(fit(samples)); } catch (e) { reject(e); }
        return;
      }
      const [px, py] = POINTS[i];
      dot.style.left = `${px * innerWidth}px`;
      dot.style.top = `${py * innerHeight}px`;
      dot.dataset.point = String(i);
      t0 = performance.now();
      setTimeout(next, holdMs);
    };
    const onF = (f) => {
      const dt = performance.now() - t0;
      if (i < 0 || i >= POINTS.length || dt < settleMs) return;
      samples.push({ f, x: POINTS[i][0] * innerWidth, y: POINTS[i][1] * innerHeight });
    };
    source.on(onF);
    next();
  });
}
