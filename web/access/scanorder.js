/*
 * scanorder.js — the one rule that orders switch scanning, shared by the
 * page (web/access/scan.js) and the one-switch benchmark
 * (bench/bench_access.mjs imports this very file), so the figure the bench
 * prints is the cost of the scan the page runs.
 *
 * Why a tree: a switch user pays one scan step for every item the highlight
 * passes, so the likeliest items must come first and long lists must be
 * entered as groups. The rule:
 *   1. items are ordered by group (DEFAULTS.order, or typingOrder while the
 *      letter board is open), then by rank (0 = likeliest; candidates carry
 *      data-rank; a phrase button goes right after its word or after all
 *      words: DEFAULTS.phrases), then by their order on the page;
 *   2. the first LEAD items of the first group are scanned on their own at
 *      the top, the likeliest words cost one or two steps;
 *   3. every group's remaining items form one node at the top;
 *   4. a node with more than BLOCK children keeps its first BLOCK-1 children
 *      and puts the rest into a nested node (likeliest first again; or, with
 *      split 'blocks', becomes nodes of BLOCK children each); items that
 *      carry a row (the letter board) are grouped by row first;
 *   5. every nested node ends with a "back" leaf, so a wrong entry costs one
 *      loop, not a lost selection.
 * Cost: O(n log n) in the number of items (the sort).
 *
 * Item: { id, group, rank, row?, label, el? } (el only on the page).
 * Node: { kind: 'node', label, children: [...] }; leaf: { kind: 'leaf', item }.
 */

export const GROUP_LABEL = {
  panel: 'panel', cloud: 'more words', typing: 'letters', preview: 'preview words',
  actions: 'actions', story: 'story words', toolbar: 'toolbar',
};
/* The rule's parameters. The values were chosen on the training stories
 * (bench_textentry --per-sentence 0 --gap 1 --point-top, seeds 1000..1011)
 * by bench/tune_scan.mjs, never on the held-out stories the benchmark
 * reports (seeds 5000..). */
export const DEFAULTS = {
  lead: 1, block: 4,
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

/* The scan tree of a set of items (rules 1-5). The root's children are
 * scanned in a loop at the top level. */
export function buildTree(items, opts) {
  const o = Object.assign({}, DEFAULTS, opts || {});
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
