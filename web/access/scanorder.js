/*
 * scanorder.js — the one rule that orders switch scanning, shared by the
 * page (web/access/scan.js) and the one-switch benchmark
 * (bench/bench_access.mjs imports this very file), so the figure the bench
 * prints is the cost of the scan the page runs.
 *
 * Why a tree: a switch user pays one scan step for every item the highlight
 * passes, so the likeliest items must come first and long lists must be
 * entered as groups. The rule (DEFAULTS.rule 'weights'):
 *   1. every item has a weight: how often an item of its kind (the 3rd
 *      word, the 1st preview word, "Type a word", the 2nd story word from
 *      the end, the letter in row 0 column 2, ...) is the one wanted when it
 *      is shown, with the letter board open or not (scanpriors.js, counted
 *      on training stories by bench/tune_scan.mjs, never on the held-out
 *      ones the benchmark reports);
 *   2. inside a group (the cloud, the preview words, the actions, the story
 *      words) items keep the page's order (the cloud by the model's rank,
 *      the story newest first), and the group is cut into nested blocks
 *      sized by weight: the split that costs the least expected scan time
 *      (dynamic programming over the group, below), so a heavy item gets a
 *      short path and rare ones share a block; a group of controls whose
 *      kind was never counted (a panel, the toolbar) is cut into plain
 *      blocks of DEFAULTS.block in the page's order;
 *   3. an item wanted often enough is lifted out of its group to the top
 *      level (greedily, while that lowers the expected time): "Type a word"
 *      and the top word's preview get one or two steps;
 *   4. the letter board's rows stay rows (row-column scanning: the board is
 *      learnt by heart); the word box's buttons are leaves;
 *   5. the top level lists its leaves and groups heaviest first (the order
 *      that costs the least for one loop);
 *   6. every nested node ends with a "back" leaf, so a wrong entry costs one
 *      loop, not a lost selection.
 * The expected time of an item counts, per level, the steps to it, the
 * press's reaction (DEFAULTS.reaction, in intervals) and the loops lost to
 * missed presses (DEFAULTS.miss); the same terms the benchmark simulates.
 * The older rule (rule 'groups': a fixed group order, `lead` items first,
 * blocks of `block`) stays for comparison (bench_access prints both).
 * Cost: O(g^4) per group of g <= CAP items (memoised on the weights, so a
 * page rebuilds in well under a millisecond once its kinds were seen), and
 * O(n log n) for the rest.
 *
 * Item: { id, group, rank, row?, phrase?, label, el? } (el only on the page).
 * Node: { kind: 'node', label, children: [...] }; leaf: { kind: 'leaf', item }.
 */
import { PRIORS } from './scanpriors.js';

export const GROUP_LABEL = {
  panel: 'panel', cloud: 'more words', typing: 'letters', preview: 'preview words',
  actions: 'actions', story: 'story words', toolbar: 'toolbar',
};
/* The rule's parameters. The values were chosen on the training stories
 * (bench_textentry --per-sentence 0 --gap 1 --point-top, seeds 1000..1011)
 * by bench/tune_scan.mjs, never on the held-out stories the benchmark
 * reports (seeds 5000..). */
export const DEFAULTS = {
  rule: 'weights',
  reaction: 0.4, miss: 0.05,     // the cost model's press delay (intervals) and missed-press rate
  lead: 1, block: 4,             // lead: rule 'groups' only; block: also unweighted groups
  // the groups' order at the top, and while the letter board is open
  order: ['panel', 'cloud', 'typing', 'actions', 'preview', 'story', 'toolbar'],
  typingOrder: ['panel', 'cloud', 'typing', 'actions', 'preview', 'story', 'toolbar'],
  phrases: 'end',                // a "+ phrase" button: right 'after' its word, or at the 'end' of the cloud
  split: 'blocks',               // a long group: 'chain' (block-1 items, then "more") or 'blocks' (nodes of block items)
};

const leaf = (item) => ({ kind: 'leaf', item });
const BACK = { id: 'back', group: 'back', rank: 0, label: 'back' };

/* Sorts items by the rule's order (stable: equal keys keep page order).
 * A phrase button (phrase: true, rank = its word's) goes right after its
 * word or after all words (o.phrases). */
export function orderItems(items, opts) {
  const o = Object.assign({}, DEFAULTS, opts || {});
  const typing = items.some((it) => it.group === 'typing' && it.row !== undefined);
  const groups = typing ? o.typingOrder : o.order;
  const g = (it) => { const i = groups.indexOf(it.group); return i < 0 ? groups.length : i; };
  const rank = (it) => (it.rank ?? 1e9) + (it.phrase ? (o.phrases === 'end' ? 500 : 0.5) : 0);
  return items.map((it, i) => [it, i])
    .sort((a, b) => g(a[0]) - g(b[0]) || rank(a[0]) - rank(b[0]) || a[1] - b[1])
    .map((p) => p[0]);
}

/* A node of the given children, split by rule 4, with a back leaf (rule 5). */
function node(label, children, block, split) {
  let kids = children;
  if (kids.length > block) {
    if (split === 'blocks') {
      const parts = [];
      for (let i = 0; i < kids.length; i += block) parts.push(kids.slice(i, i + block));
      kids = parts.map((p, j) => (p.length === 1 ? p[0] : node(`${label} ${j + 1}`, p, block, split)));
      if (kids.length > block) kids = node(label, kids, block, split).children.slice(0, -1);
    } else {
      const rest = kids.slice(block - 1);
      kids = kids.slice(0, block - 1).concat([node(`${label}, more`, rest, block, split)]);
    }
  }
  return { kind: 'node', label, children: kids.concat([leaf(BACK)]) };
}

/* Children of one group: rows become nodes (the letter board), others leaves. */
function groupChildren(items, block) {
  if (!items.some((it) => it.row !== undefined)) return items.map(leaf);
  const rows = new Map();
  for (const it of items) {
    const r = it.row ?? -1;
    if (!rows.has(r)) rows.set(r, []);
    rows.get(r).push(it);
  }
  // rows in order; controls without a row (the word box's own buttons) after them
  const key = (r) => (r < 0 ? Infinity : r);
  return [...rows.entries()].sort((a, b) => key(a[0]) - key(b[0]))
    .map(([r, its]) => (its.length === 1 ? leaf(its[0]) :
      node(`row ${its.map((x) => x.label).join(' ')}`, its.map(leaf), Infinity, 'chain')));
}

/* The scan tree of a set of items. The root's children are scanned in a
 * loop at the top level. */
export function buildTree(items, opts) {
  const o = Object.assign({}, DEFAULTS, opts || {});
  return o.rule === 'groups' ? buildGroups(items, o) : buildWeighted(items, o);
}

/* The older rule: groups in a fixed order, the first `lead` items of the
 * first group on their own, blocks of `block`. */
function buildGroups(items, o) {
  const sorted = orderItems(items, o);
  const top = [];
  const groups = [];
  for (const it of sorted) {
    if (!groups.length || groups[groups.length - 1].name !== it.group) groups.push({ name: it.group, items: [] });
    groups[groups.length - 1].items.push(it);
  }
  groups.forEach((g, gi) => {
    let its = g.items;
    if (gi === 0 && its.every((it) => it.row === undefined)) {
      top.push(...its.slice(0, o.lead).map(leaf));
      its = its.slice(o.lead);
    }
    if (!its.length) return;
    const kids = groupChildren(its, o.block);
    if (kids.length === 1) top.push(kids[0]);
    else if (g.name === 'typing') top.push(...kids);  // letter board rows sit at the top
    else top.push(node(GROUP_LABEL[g.name] || g.name, kids, o.block, o.split));
  });
  return { kind: 'node', label: 'top', children: top };
}

/* The path (child index at each level) to the leaf whose item satisfies
 * pred, or null. O(n). */
export function pathTo(tree, pred) {
  const walk = (n, acc) => {
    for (let i = 0; i < n.children.length; i++) {
      const c = n.children[i];
      if (c.kind === 'leaf') { if (c.item.id !== 'back' && pred(c.item)) return acc.concat([i]); }
      else { const p = walk(c, acc.concat([i])); if (p) return p; }
    }
    return null;
  };
  return walk(tree, []);
}

/* The sizes of the loops along a path: loop[i] = children of the node
 * scanned at level i (what a missed press costs at that level). */
export function loopSizes(tree, path) {
  const out = [];
  let n = tree;
  for (const i of path) { out.push(n.children.length); n = n.children[i]; }
  return out;
}

/* ----------------------------------------------------------------- letters */

/* The scanning letter board: characters in English frequency order dealt to
 * the cells with the smallest row + column first, so the common letters
 * cost the fewest row-column steps. The same board is the row-column
 * keyboard the benchmark compares against. Special cells: '␣' space, '⇧'
 * shift (next letter upper case), '⌫' delete, '⏎' use the word, '✕' close. */
export const BOARD_CHARS = ['␣', 'e', 't', 'a', 'o', 'i', 'n', 's', 'h', 'r', 'd', 'l', '⏎', 'u', 'c', 'm',
  'w', 'f', 'g', 'y', 'p', 'b', ',', '.', '⇧', 'v', 'k', '⌫', '"', "'", '!', '?', 'j', 'x', 'q', 'z', '-',
  ':', ';', '✕'];
export const BOARD_COLS = 6;

/* The board as rows of characters (O(cells)). */
export function boardRows(cols = BOARD_COLS, chars = BOARD_CHARS) {
  const n = chars.length;
  const rowsN = Math.ceil(n / cols);
  const cells = [];
  for (let r = 0; r < rowsN; r++) for (let c = 0; c < cols; c++) cells.push([r, c]);
  cells.sort((a, b) => a[0] + a[1] - (b[0] + b[1]) || a[0] - b[0]);
  const rows = Array.from({ length: rowsN }, () => new Array(cols).fill(null));
  chars.forEach((ch, i) => { const [r, c] = cells[i]; rows[r][c] = ch; });
  return rows.map((r) => r.filter((x) => x !== null));
}

/* Board items (group 'typing', one per cell, with its row). */
export function boardItems(rows = boardRows()) {
  const out = [];
  rows.forEach((r, ri) => r.forEach((ch, ci) => out.push({ id: `key:${ch}`, group: 'typing', rank: ri * 100 + ci, row: ri, label: ch })));
  return out;
}

/* The board cells needed to type one character: shift first for a capital
 * letter; a newline is typed as '⏎'. Returns [] for a character the board
 * lacks. */
export function keysFor(ch) {
  if (ch === ' ') return ['␣'];
  if (ch === '\n') return ['⏎'];
  const lo = ch.toLowerCase();
  if (!BOARD_CHARS.includes(lo)) return [];
  return lo !== ch ? ['⇧', lo] : [lo];
}

/* ---------------------------------------------- what a fork shows, abstractly */

/* The page's fixed controls at a fork as the benchmark counts them (the
 * browser test fails when the page has others, so the two cannot drift).
 * actions: Undo, Let it pick, Type (Redo sits between Undo and Let it pick
 * but is disabled, so not scanned, at a fork reached going forward; the
 * view's actions list it when it is there); "other…" is the last action
 * when the cloud leaves out probability; toolbar: Speak, Say, Stories,
 * Tree, Settings, Keys, Profile. */
export const PAGE = {
  actions: ['btn-undo', 'btn-continue', 'btn-type'],
  typebox: ['Use it', 'type-cancel'],
  toolbar: 7,
};

/* The items the page shows at a fork, from a description of the view (the
 * benchmark's model of the page; tests/browser/access_test.mjs checks that
 * the page's own targets at a live fork give the same tree):
 *   view = { k, phrase: [bool per rank], pvWords: n, other: bool,
 *            storyWords: n, typing: bool, typebox: [names], toolbar: n, actions: [names] }.
 * Candidates rank 0..k-1; the preview words of the pinned (top) candidate,
 * then the "+ phrase" buttons (the page scans them with the preview words);
 * the actions, 'other…' last; the story words newest first; the toolbar. */
export function viewItems(v) {
  const items = [];
  for (let r = 0; r < v.k; r++) {
    items.push({ id: `cand:${r}`, group: 'cloud', rank: r, label: `word ${r}` });
    if (v.phrase && v.phrase[r]) items.push({ id: `phrase:${r}`, group: 'preview', rank: r, phrase: true, label: `phrase ${r}` });
  }
  if (v.typing) {
    items.push(...boardItems());
    (v.typebox || []).forEach((a) => items.push({ id: `typebox:${a}`, group: 'typing', label: a }));
  }
  for (let j = 0; j < (v.pvWords || 0); j++) items.push({ id: `pv:${j}`, group: 'preview', rank: j, label: `preview ${j}` });
  (v.actions || []).forEach((a, i) => items.push({ id: `act:${a}`, group: 'actions', rank: i, label: a }));
  if (v.other) items.push({ id: 'act:cand-other', group: 'actions', rank: (v.actions || []).length, label: 'other' });
  for (let j = 0; j < (v.storyWords || 0); j++) items.push({ id: `story:${j}`, group: 'story', rank: j, label: `story ${j}` });
  for (let j = 0; j < (v.toolbar || 0); j++) items.push({ id: `tool:${j}`, group: 'toolbar', rank: j, label: `tool ${j}` });
  return items;
}

/* ----------------------------------------------------------- weights rule */

/* The kind of an item, the key of its weight in PRIORS: the same for the
 * page's items (targets.js) and the benchmark's (viewItems). */
export function classOf(it, typing) {
  const t = typing ? 't|' : 'f|';
  switch (it.group) {
    case 'cloud': return t + (it.phrase ? `phrase:${it.rank}` : `cand:${it.rank}`);
    case 'preview': return t + (it.phrase ? `phrase:${it.rank}` : `pv:${it.rank}`);
    case 'actions': return t + `act:${String(it.id || '').replace(/^act:/, '')}`;
    case 'story': return t + `story:${it.rank}`;
    case 'typing': return t + (it.row !== undefined ? `key:${it.rank}` : 'box');
    default: return t + it.group;
  }
}

const EPS = 1e-4;         // the weight of a kind never seen wanted
const CAP = 24;           // groups longer than this: the rest is one block at the end
const weightOf = (it, typing, priors) => Math.max(EPS, priors[classOf(it, typing)] || 0);

/* Memoised best nodes, by the weights they were built for. */
const memo = new Map();

/* The cheapest node over elements els ({ w, inner, make() }), in their
 * order: a partition into consecutive children, a child of several
 * elements being a nested node (recursively). Returns { cost, make() }
 * where cost counts, below the node, w * (position + reaction) per level
 * and the loops a missed press costs (miss / (1 - miss) * children). */
function bestNode(els, label, o, back) {
  const n = els.length;
  const rho = o.reaction, mu = o.miss / (1 - o.miss);
  const key = `${back ? 1 : 0}|${rho}|${mu}|${els.map((e) => `${Math.round(e.w * 1e6)}:${Math.round(e.inner * 1e6)}`).join(',')}`;
  let plan = memo.get(key);
  if (!plan) {
    const pre = [0];
    for (const e of els) pre.push(pre[pre.length - 1] + e.w);
    const W = (a, b) => pre[b] - pre[a];
    // F[a][b]: cost of a nested node over [a, b) (with its back leaf);
    // cut[a][b]: the ends of its children
    const F = Array.from({ length: n + 1 }, () => new Array(n + 1).fill(0));
    const cut = Array.from({ length: n + 1 }, () => new Array(n + 1).fill(null));
    const inner = (x, y) => (y - x === 1 ? els[x].inner : F[x][y]);
    const solve = (a, b, withBack) => {
      const kappa = mu * W(a, b);
      const H = new Array(b + 1).fill(0), nxt = new Array(b + 1).fill(b);
      for (let x = b - 1; x >= a; x--) {
        let best = Infinity, by = b;
        for (let y = x + 1; y <= b; y++) {
          if (x === a && y === b && b - a > 1) continue;    // a node of one node
          const c = W(x, y) * (1 + rho) + kappa + inner(x, y) + H[y] + W(y, b);
          if (c < best) { best = c; by = y; }
        }
        H[x] = best; nxt[x] = by;
      }
      const ends = [];
      for (let x = a; x < b; x = nxt[x]) ends.push(nxt[x]);
      return { cost: H[a] + (withBack ? kappa : 0), ends };
    };
    for (let len = 2; len <= n; len++) for (let a = 0; a + len <= n; a++) {
      const r = solve(a, a + len, true);
      F[a][a + len] = r.cost; cut[a][a + len] = r.ends;
    }
    const top = n === 1 ? { cost: els[0].inner, ends: [1] } : solve(0, n, back);
    plan = { cost: top.cost, ends: top.ends, cut };
    memo.set(key, plan);
    if (memo.size > 5000) memo.delete(memo.keys().next().value);
  }
  const make = () => {
    const build = (a, b, ends, lab) => {
      const kids = [];
      let x = a, j = 0;
      for (const y of ends) {
        j++;
        kids.push(y - x === 1 ? els[x].make() : build(x, y, plan.cut[x][y], `${lab} ${j}`));
        x = y;
      }
      return { kind: 'node', label: lab, children: kids.concat([leaf(BACK)]) };
    };
    if (n === 1) return els[0].make();
    const node = build(0, n, plan.ends, label);
    if (!back) node.children.pop();
    return node;
  };
  return { cost: plan.cost, make };
}

/* A group's elements: its items in page order, the ones past CAP as one
 * block of `block`-sized blocks at the end (rare: long stories). */
function groupEls(items, ws, label, o) {
  const els = items.map((it, i) => ({ w: ws[i], inner: 0, make: () => leaf(it) }));
  if (els.length <= CAP) return els;
  const head = els.slice(0, CAP - 1), rest = items.slice(CAP - 1), rw = ws.slice(CAP - 1);
  const tree = node(`${label}, more`, rest.map(leaf), o.block, 'blocks');
  const W = rw.reduce((a, b) => a + b, 0);
  return head.concat([{ w: W, inner: treeCost(tree, new Map(rest.map((it, i) => [it, rw[i]])), o), make: () => tree }]);
}

/* The expected cost below a fixed tree, with weights by item. */
function treeCost(t, wOf, o) {
  const mu = o.miss / (1 - o.miss);
  let cost = 0;
  const walk = (n) => {
    let W = 0;
    n.children.forEach((c, p) => {
      const w = c.kind === 'leaf' ? (wOf.get(c.item) || 0) : walk(c);
      cost += w * (p + 1 + o.reaction);
      W += w;
    });
    cost += mu * W * n.children.length;
    return W;
  };
  walk(t);
  return cost;
}

/* Orders top-level units heaviest first (for one loop the cheapest order),
 * except that the letter board's rows (units with row: true) keep their
 * order on the screen: a run of rows goes where its mean weight puts it
 * (Horn's rule for one chain: the prefix of the rows with the highest mean
 * weight is placed as one block, and so on). O(u^2). */
function heaviestFirst(units) {
  const free = units.filter((u) => !u.row).sort((a, b) => b.w - a.w || a.order - b.order);
  const chain = units.filter((u) => u.row).sort((a, b) => a.order - b.order);
  const out = [];
  while (chain.length) {
    let best = 1, mean = chain[0].w, sum = 0;
    chain.forEach((u, i) => { sum += u.w; if (sum / (i + 1) > mean + 1e-12) { mean = sum / (i + 1); best = i + 1; } });
    while (free.length && free[0].w > mean) out.push(free.shift());
    out.push(...chain.splice(0, best));
  }
  return out.concat(free);
}

function buildWeighted(items, o) {
  let priors = o.priors || PRIORS;
  const typing = items.some((it) => it.group === 'typing' && it.row !== undefined);
  const sorted = orderItems(items, o);
  const groups = [];
  for (const it of sorted) {
    if (!groups.length || groups[groups.length - 1].name !== it.group) groups.push({ name: it.group, items: [] });
    groups[groups.length - 1].items.push(it);
  }
  const fixed = [];       // top-level units that do not change: the board's rows, the word box's buttons
  // the top word is taken by itself or by pointing at its first preview
  // word (the word, then a fork): a writer who does not point uses the
  // word, so it weighs at least as much as that preview word
  const top = (typing ? 't|' : 'f|');
  if ((priors[`${top}pv:0`] || 0) > (priors[`${top}cand:0`] || 0)) priors = Object.assign({}, priors, { [`${top}cand:0`]: priors[`${top}pv:0`] });
  const free = [];        // groups whose items may be lifted: { name, items, ws, lifted: Set }
  let order = 0;
  for (const g of groups) {
    const ws = g.items.map((it) => weightOf(it, typing, priors));
    if (g.items.some((it) => it.row !== undefined)) {
      for (const kid of groupChildren(g.items, o.block)) {
        const leaves = kid.kind === 'leaf' ? [kid.item] : kid.children.map((c) => c.item).filter((x) => x.id !== 'back');
        const wOf = new Map(leaves.map((it) => [it, ws[g.items.indexOf(it)]]));
        const W = [...wOf.values()].reduce((a, b) => a + b, 0);
        fixed.push({ w: W, inner: kid.kind === 'leaf' ? 0 : treeCost(kid, wOf, o), make: () => kid, order: order++,
          row: leaves.some((it) => it.row !== undefined) });
      }
    } else free.push({ name: g.name, items: g.items, ws, lifted: new Set(), order: order++, cache: new Map() });
  }
  // a group's node for its current lifted items (cached per choice)
  const nodeOf = (g) => {
    const key = [...g.lifted].sort((x, y) => x - y).join(',');
    if (!g.cache.has(key)) {
      const keep = g.items.map((it, i) => i).filter((i) => !g.lifted.has(i));
      let u = null;
      if (keep.length) {
        const label = GROUP_LABEL[g.name] || g.name;
        const its = keep.map((i) => g.items[i]), ws = keep.map((i) => g.ws[i]);
        const w = ws.reduce((acc, x) => acc + x, 0);
        if (ws.every((x) => x <= EPS)) {
          // nothing known about these controls (a panel, the toolbar): plain
          // blocks of `block` in the page's order, the shape a person can learn
          const t = its.length === 1 ? leaf(its[0]) : node(label, its.map(leaf), o.block, 'blocks');
          u = { w, inner: t.kind === 'leaf' ? 0 : treeCost(t, new Map(its.map((it, i) => [it, ws[i]])), o), make: () => t, order: g.order };
        } else {
          const nd = bestNode(groupEls(its, ws, label, o), label, o, true);
          u = { w, inner: nd.cost, make: nd.make, order: g.order };
        }
      }
      g.cache.set(key, u);
    }
    return g.cache.get(key);
  };
  // the units of the top level for the lifted items now
  const units = () => {
    const out = fixed.slice();
    for (const g of free) {
      for (const i of g.lifted) out.push({ w: g.ws[i], inner: 0, make: () => leaf(g.items[i]), order: g.order - 0.5 + i / 1e3 });
      const u = nodeOf(g);
      if (u) out.push(u);
    }
    return heaviestFirst(out);
  };
  const mu = o.miss / (1 - o.miss);
  const cost = (us) => {
    const W = us.reduce((a, u) => a + u.w, 0);
    return us.reduce((a, u, p) => a + u.w * (p + 1 + o.reaction) + u.inner, 0) + mu * W * us.length;
  };
  let best = cost(units());
  for (;;) {
    let gain = null;
    for (const g of free) {
      // only an item of a kind seen wanted is worth lifting (a panel's
      // controls, all of unknown weight, stay in the panel's order)
      let hi = -1;
      g.items.forEach((it, i) => { if (!g.lifted.has(i) && g.ws[i] > EPS && (hi < 0 || g.ws[i] > g.ws[hi])) hi = i; });
      if (hi < 0 || g.items.length - g.lifted.size < 2) continue;
      g.lifted.add(hi);
      const c = cost(units());
      g.lifted.delete(hi);
      if (c < best - 1e-9 && (!gain || c < gain.c)) gain = { g, i: hi, c };
    }
    if (!gain) break;
    gain.g.lifted.add(gain.i); best = gain.c;
  }
  return { kind: 'node', label: 'top', children: units().map((u) => u.make()) };
}
