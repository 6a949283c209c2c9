// bench_access.mjs — what a switch user and a gaze user pay to write the
// held-out stories with Forkpoint's page, against a row-column scanning
// keyboard and a dwell keyboard at the same settings (issue 11, "Measure").
//
// Why it reuses bench_textentry: that program already samples held-out
// stories from the model and runs the oracle writer through the real
// library (candidates, previews, pointing into previews, typed prefixes,
// repairs). With --actions it writes every action that writer takes and
// what the page shows at that moment; this script costs those actions.
//
// Why the costs are the page's: the scan tree of each action is built by
// web/access/scanorder.js, the very module the page scans with, with its
// weights (web/access/scanpriors.js, counted on the training stories by
// bench/tune_scan.mjs --priors: seeds 1000.., never these held-out ones; the
// row-column keyboard is the plain board, rows in order, no weights) (the
// browser test "the page's scan tree at a live fork is the benchmark's"
// checks that the page's targets give the same tree as viewItems here);
// the gaze path is smoothed by web/access/oneeuro.js and selected by
// web/access/dwell.js, the page's own filter and dwell.
//
// One switch: automatic scanning, interval T; the person presses `reaction`
// ms after the highlight reaches the item they want, and misses a press
// with probability `miss` (the highlight goes on and comes round again a
// loop later). Every selection starts at the top of the new page.
// Gaze: 30 Hz samples with Gaussian noise (sigma px per axis) around the
// point looked at, a saccade of `saccade` ms from a neighbouring target,
// One-Euro smoothing, dwell `dwell` ms; a wrong selection costs an undo (one
// more selection) and a retry. Hybrid: gaze highlights, a switch press
// `confirm` ms after the highlight reaches the target selects what is
// highlighted then. Target sizes: both interfaces get the cell of a
// 10-column keyboard across a 1366 px screen (136 x 120 px), so the
// interaction is what differs; a second line gives noise-sized targets.
//
// Usage: node bench/bench_access.mjs [--actions FILE] [--textentry BIN]
//   [--interval MS] [--miss P] [--reaction MS] [--first-extra MS] [--dwell MS]
//   [--noise PX] [--seed N] [-- flags for bench_textentry]
// Without --actions it runs bench_textentry (held-out seeds 5000..) itself.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const imp = (f) => import(pathToFileURL(path.join(repo, 'web/access', f)).href);
const order = await imp('scanorder.js');
const { OneEuro2 } = await imp('oneeuro.js');
const { Dwell } = await imp('dwell.js');

/* ------------------------------------------------------------ options */
const o = { interval: 1000, miss: 0.05, reaction: 400, firstExtra: 0, dwell: 600, noise: 50, seed: 1,
  saccade: 200, confirm: 300, trials: 3000, actions: null,
  textentry: path.join(repo, 'build/release/bench/bench_textentry'), extra: [] };
const isMain = process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url;
const argv = isMain ? process.argv.slice(2) : [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i], v = argv[i + 1];
  const num = (lo, hi) => {
    const x = Number(v);
    if (v === undefined || !Number.isFinite(x) || x < lo || x > hi) { console.error(`bench_access: ${a} wants a number in [${lo}, ${hi}]`); process.exit(2); }
    i++; return x;
  };
  if (a === '--') { o.extra = argv.slice(i + 1); break; }
  else if (a === '--actions') { o.actions = v; i++; }
  else if (a === '--textentry') { o.textentry = v; i++; }
  else if (a === '--interval') o.interval = num(100, 10000);
  else if (a === '--miss') o.miss = num(0, 0.9);
  else if (a === '--reaction') o.reaction = num(0, 5000);
  else if (a === '--first-extra') o.firstExtra = num(0, 10000);
  else if (a === '--dwell') o.dwell = num(100, 10000);
  else if (a === '--noise') o.noise = num(0, 500);
  else if (a === '--seed') o.seed = num(0, 2 ** 31);
  else if (a === '--trials') o.trials = num(100, 1e6);
  else { console.error(`bench_access: unknown flag ${a} (see the header of bench/bench_access.mjs)`); process.exit(2); }
}
if (o.reaction >= o.interval) { console.error('bench_access: --reaction must be shorter than --interval'); process.exit(2); }

/* A small seeded PRNG (mulberry32) and a normal deviate. */
function rng(seed) {
  let a = seed >>> 0;
  const u = () => { a = (a + 0x6D2B79F5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  u.normal = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return u;
}

/* The page's fixed controls (scanorder.js PAGE; the browser test checks
 * them against the live page). */
const { actions: ACTIONS, typebox: TYPEBOX, toolbar: TOOLBAR } = order.PAGE;

/* The selections an action needs on the page, as scan-item ids, with the
 * view each is made in. Tracks whether the word box (letter board) is open. */
export function selections(list) {
  const out = [];
  let typing = false, story = -1, missing = 0;
  for (const a of list) {
    if (a.s !== story) { story = a.s; typing = false; }
    const view = (t) => ({ k: a.k, phrase: [...a.ph].map((c) => c === '1'), pvWords: a.pv, other: !!a.o,
      storyWords: a.sw, typing: t, typebox: t ? TYPEBOX : [], toolbar: TOOLBAR, actions: ACTIONS });
    const sel = (id, t) => out.push({ id, view: view(t) });
    if (a.a === 'letter') {
      if (!typing) { sel('act:btn-type', false); typing = true; }
      const keys = order.keysFor(String.fromCharCode(a.ch));
      if (!keys.length) { missing++; sel('key:✕', true); sel('act:btn-type', false); continue; }
      for (const k of keys) sel(`key:${k}`, true);
    } else if (a.a === 'commit') { sel('key:⏎', true); typing = false; }
    else if (a.a === 'choose') { sel(`cand:${a.r}`, typing); typing = false; }
    else if (a.a === 'phrase') { sel(`phrase:${a.r}`, typing); typing = false; }
    else if (a.a === 'point') {
      if (a.w < 0 || a.w >= a.pv) { missing++; sel(`cand:${a.r}`, typing); } else sel(`pv:${a.w}`, typing);
      typing = false;
    } else if (a.a === 'repair') {
      if (typing) { sel('key:✕', true); typing = false; }
      sel(`story:${Math.max(0, a.back - 1)}`, false);
    } else if (a.a === 'continue') { sel('act:btn-continue', false); typing = false; }
  }
  return { out, missing };
}

/* ------------------------------------------------------------ one switch */

/* Time (ms) to select the leaf at path in tree with automatic scanning. */
function scanTime(tree, pathIdx, r) {
  let ms = 0, n = tree;
  for (const i of pathIdx) {
    const loop = n.children.length;
    ms += o.firstExtra + i * o.interval + o.reaction;
    while (r() < o.miss) ms += loop * o.interval + o.firstExtra;   // missed: one loop more
    n = n.children[i];
  }
  return ms;
}

export function forkpointScan(sels, scanOpts) {
  const r = rng(o.seed);
  let ms = 0, steps = 0;
  for (const s of sels) {
    const tree = order.buildTree(order.viewItems(s.view), scanOpts);
    const p = order.pathTo(tree, (it) => it.id === s.id);
    if (!p) throw new Error(`no ${s.id} in the page's tree`);
    ms += scanTime(tree, p, r);
    steps += p.reduce((a, i) => a + i + 1, 0);
  }
  return { ms, steps };
}

/* The row-column scanning keyboard: the same letter board alone. */
function keyboardScan() {
  const r = rng(o.seed);
  const tree = order.buildTree(order.boardItems(), { rule: 'groups' });  // the plain row-column board
  let ms = 0, keys = 0, missing = 0;
  for (const t of targets) for (const ch of t.target) {
    const ks = order.keysFor(ch);
    if (!ks.length) { missing++; continue; }
    for (const k of ks) { ms += scanTime(tree, order.pathTo(tree, (it) => it.id === `key:${k}`), r); keys++; }
  }
  return { ms, keys, missing };
}

/* ------------------------------------------------------------ gaze */

/* One selection on a grid of w x h cells with the target at (0, 0):
 * returns { ms, ok }. The gaze comes from a neighbouring cell. */
function gazeOnce(w, h, hybrid, r, dwellMs) {
  const filt = new OneEuro2(1.0, 0.007, 1.0);
  const dw = new Dwell(dwellMs, 0);
  const from = [(r() < 0.5 ? -1 : 1) * w * (1 + Math.floor(r() * 2)), (r() < 0.5 ? -1 : 0) * h];
  const cell = (x, y) => `${Math.floor(x / w + 0.5)},${Math.floor(y / h + 0.5)}`;
  let onSince = null;
  for (let t = 0; t < 20000; t += 1000 / 30) {
    const look = t < o.saccade ? from : [0, 0];
    const [x, y] = filt.filter(look[0] + o.noise * r.normal(), look[1] + o.noise * r.normal(), t);
    const id = cell(x, y);
    if (t < o.saccade) { dw.update(null, t); continue; }
    if (hybrid) {
      if (onSince === null && id === '0,0') onSince = t;
      if (onSince !== null && t >= onSince + o.confirm) return { ms: t, ok: id === '0,0' };
    } else {
      const hit = dw.update(id, t);
      if (hit) return { ms: t, ok: hit === '0,0' };
    }
  }
  return { ms: 20000, ok: false };
}

/* Mean time per intended selection, counting each wrong one's undo and
 * retry (Monte Carlo over o.trials). */
function gazeCost(w, h, hybrid, dwellMs = o.dwell) {
  const r = rng(o.seed + 7);
  let ms = 0, wrong = 0, n = 0;
  for (let i = 0; i < o.trials; i++) {
    let done = false;
    while (!done) {
      const a = gazeOnce(w, h, hybrid, r, dwellMs); ms += a.ms; n++;
      if (a.ok) done = true;
      else { wrong++; const u = gazeOnce(w, h, hybrid, r, o.dwell); ms += u.ms; n++; }   // undo (assumed to land)
    }
  }
  return { perSel: ms / o.trials, errRate: wrong / (o.trials + wrong) };
}

/* ------------------------------------------------------------ report */
if (isMain) {
/* ------------------------------------------------------------ the actions */
var file = o.actions;
if (!file) {
  file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fp-bench-access-')), 'actions.jsonl');
  // --no-profile: fixed settings. bench_textentry's profile adapts k to a
  // keyboard-and-mouse writer (up to 64 candidates), which a switch user
  // would have to scan past; the adaptation rules do not weigh scan cost.
  const args = ['--stories', '12', '--seed-base', '5000', '--point-top', '--no-profile', ...o.extra, '--actions', file];
  console.log(`# ${path.relative(repo, o.textentry)} ${args.join(' ')}`);
  const out = execFileSync(o.textentry, args, { stdio: ['ignore', 'pipe', 'inherit'] }).toString();
  for (const l of out.split('\n')) if (/^(actions per character|forkpoint \/ keyboard|targets:|forkpoint:)/.test(l)) console.log(`#   ${l}`);
}
var lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
var targets = lines.filter((l) => l.target !== undefined);
var acts = lines.filter((l) => l.a !== undefined);
var chars = targets.reduce((n, t) => n + [...t.target].length, 0);

const t0 = Date.now();
const { out: sels, missing } = selections(acts);
const fs1 = forkpointScan(sels);
const kb1 = keyboardScan();
const spc = (ms) => ms / 1000 / chars;
console.log(`bench_access  ${new Date().toISOString().slice(0, 10)}  ${targets.length} held-out stories, ${chars} characters  load ${os.loadavg()[0].toFixed(2)}`);
console.log(`scan order: web/access/scanorder.js (rule ${order.DEFAULTS.rule}: weights from scanpriors.js, reaction ${order.DEFAULTS.reaction}, miss ${order.DEFAULTS.miss}); actions from ${path.basename(file)}`);
console.log(`\none switch: interval ${o.interval} ms, +${o.firstExtra} ms on first items, press ${o.reaction} ms after the highlight arrives, ${(o.miss * 100).toFixed(0)}% missed presses`);
console.log(`  forkpoint scanning:   ${sels.length} selections (${fs1.steps} scan steps), ${(fs1.ms / 1000).toFixed(0)} s, ${spc(fs1.ms).toFixed(3)} s/char${missing ? ` (${missing} actions the page lacks, costed as their nearest)` : ''}`);
console.log(`  row-column keyboard:  ${kb1.keys} selections, ${(kb1.ms / 1000).toFixed(0)} s, ${spc(kb1.ms).toFixed(3)} s/char${kb1.missing ? ` (${kb1.missing} characters not on the board, left out)` : ''}`);
const ratio = fs1.ms / kb1.ms;
console.log(`  forkpoint / keyboard: ${ratio.toFixed(3)}  (goal <= 0.5: ${ratio <= 0.5 ? 'met' : 'not met'})`);
// the older rule (fixed group order, lead 1, blocks of 4) on the same selections, for comparison
const old = forkpointScan(sels, { rule: 'groups' });
console.log(`  older rule 'groups':  ${(old.ms / 1000).toFixed(0)} s, ${spc(old.ms).toFixed(3)} s/char, / keyboard ${(old.ms / kb1.ms).toFixed(3)}`);

const keyKeys = targets.reduce((n, t) => n + [...t.target].reduce((m, ch) => m + Math.max(1, order.keysFor(ch).length), 0), 0);
console.log(`\ngaze: ${o.noise} px noise, 30 Hz, One-Euro, dwell ${o.dwell} ms, saccade ${o.saccade} ms; hybrid: confirm ${o.confirm} ms after the highlight arrives`);
for (const [w, h, name] of [[136, 120, 'keyboard-cell targets 136x120 px'], [4 * o.noise, 4 * o.noise, `noise-sized targets ${4 * o.noise} px`]]) {
  // the page dwells twice as long on a story word (pointer.js): repairs by dwell cost that
  const d = gazeCost(w, h, false), d2 = gazeCost(w, h, false, 2 * o.dwell), hy = gazeCost(w, h, true);
  const story = sels.filter((x) => x.id.startsWith('story:')).length;
  const fpDwell = d.perSel * (sels.length - story) + d2.perSel * story, fpHy = hy.perSel * sels.length;
  const kbDwell = d.perSel * keyKeys;
  const cpm = (ms) => chars / (ms / 60000);
  console.log(`  ${name}: per selection dwell ${d.perSel.toFixed(0)} ms (${(d.errRate * 100).toFixed(1)}% wrong; ${d2.perSel.toFixed(0)} ms on story words), hybrid ${hy.perSel.toFixed(0)} ms (${(hy.errRate * 100).toFixed(1)}% wrong)`);
  console.log(`    forkpoint dwell  ${cpm(fpDwell).toFixed(1)} chars/min   dwell keyboard ${cpm(kbDwell).toFixed(1)} chars/min   ratio ${(kbDwell / fpDwell).toFixed(2)}x`);
  console.log(`    forkpoint hybrid ${cpm(fpHy).toFixed(1)} chars/min   hybrid / dwell alone ${(fpDwell / fpHy).toFixed(2)}x`);
}
console.log(`time ${((Date.now() - t0) / 1000).toFixed(1)} s; load ${os.loadavg()[0].toFixed(2)}`);
}
