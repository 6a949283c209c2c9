/*
 * scan.js — switch scanning on the page: one switch (the highlight steps by
 * itself, the switch selects) or two (one steps, one selects).
 *
 * Why this shape: the scan order is scanorder.js's rule, the same the
 * benchmark costs; this file only runs it in time. The highlight walks the
 * children of the current node; selecting a node enters it, selecting a
 * leaf activates its control (el.click(), what a mouse would do) and the
 * scan starts again at the top of the new page (in a panel it stays on the
 * control, so a setting can be changed again). The highlighted item is
 * scrolled into view, inside a scrolling panel too (shown()). When the page's targets
 * change under the highlight (a new fork, the cloud narrowed by a typed
 * letter, the preview row) the tree is rebuilt and, once the person has
 * moved the highlight, it stays on what they were looking at (the same
 * control, or the same group) whenever that still exists, with its timing:
 * a press made while the page redrew must select what was highlighted, not
 * whatever a restarted scan put first. Only a highlight nobody has moved
 * yet (just after a selection: the new page is arriving) or one whose item
 * is gone starts again at the top. One timer at a time; every step costs
 * one tree walk, O(depth); a rebuild O(n).
 */
import { buildTree } from './scanorder.js';
import { collect, keyOf, sameTargets, signature } from './targets.js';
import * as hl from './highlight.js';

/* Whether el is wholly on screen: inside the window and not cut off by a
 * scrolling box around it (a panel). O(depth). */
export function shown(el) {
  const r = el.getBoundingClientRect();
  if (r.top < 0 || r.left < 0 || r.bottom > innerHeight + 0.5 || r.right > innerWidth + 0.5) return false;
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    const cs = getComputedStyle(p);
    if (!/(auto|scroll|hidden)/.test(cs.overflowY + cs.overflowX)) continue;
    const q = p.getBoundingClientRect();
    if (r.top < q.top - 0.5 || r.bottom > q.bottom + 0.5) return false;
  }
  return true;
}

/* All leaves below a tree node (to frame a group). */
function leavesOf(n) {
  if (n.kind === 'leaf') return n.item.el ? [n.item.el] : [];
  return n.children.flatMap(leavesOf);
}

export class Scanner {
  /* opts: { mode: 'scan1'|'scan2', interval, firstExtra, loops, speak,
   *         onSelect(item) (optional hook, after the click) } */
  constructor(opts) {
    this.o = opts;
    this.tree = null; this.sig = [];
    this.stack = [];          // [{node, i, loops}]
    this.timer = 0; this.paused = false; this.running = false;
    this.fresh = true;        // nobody moved the highlight since it (re)started at the top
    this.log = [];            // what was highlighted and selected (tests, figures)
  }

  start() {
    this.running = true;
    this.refresh(true);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    hl.hide(); hl.status('');
  }

  /* Reads the page's targets; rebuilds the tree when they changed. Keeps
   * the highlight where the person left it when that survives (locate());
   * else, or when forced (a selection, the start), starts at the top.
   * Returns whether the highlight stayed. */
  refresh(force) {
    if (!this.running) return false;
    const items = collect();
    const sig = signature(items);
    const tree = buildTree(items);   // scanorder.js's rule, as the benchmark costs it
    if (!force && sameTargets(sig, this.sig)) {
      // the same targets, maybe drawn by new elements: same place, new tree
      this.tree = tree;
      this.restack(this.stack.map((f) => f.i), this.stack.map((f) => f.loops));
      this.place();
      return true;
    }
    // a highlight nobody moved since the last start follows the page to
    // its new top (the fork a selection asked for has arrived)
    const kept = force || this.fresh ? null : this.locate(tree);
    this.sig = sig;
    this.tree = tree;
    if (kept) {
      this.restack(kept.path, kept.loops);
      this.place(true);
      return true;
    }
    this.stack = [{ node: this.tree, i: 0, loops: 0 }];
    this.paused = false;
    this.fresh = true;
    this.draw(); this.arm();
    return false;
  }

  /* Where the current highlight is in a new tree: the same control (by
   * keyOf, anywhere), or, for a group or a group's "back", the same path
   * when every group on it has the same name (else the group by name).
   * Returns { path, loops } or null when it is gone. O(n). */
  locate(tree) {
    const cur = this.current();
    if (!cur) return null;
    const loops = this.stack.map((f) => f.loops);
    if (cur.kind === 'leaf' && cur.item.id !== 'back') {
      const p = this.find(tree, keyOf(cur.item), []);
      return p && { path: p, loops: p.length === loops.length ? loops : [] };
    }
    const idx = this.stack.map((f) => f.i % f.node.children.length);
    let n = tree, ok = true;
    for (let d = 0; d < idx.length && ok; d++) {
      const was = this.stack[d].node.children[idx[d]];
      const last = d === idx.length - 1;
      const back = last && was.kind === 'leaf';        // a group's "back"
      const i = back ? n.children.length - 1 : idx[d];
      const now = n.children[i];
      ok = !!now && now.kind === was.kind && (back ? now.item.id === 'back' : now.label === was.label);
      if (ok && back) idx[d] = i;
      if (ok && !last) n = now;
    }
    if (ok) return { path: idx, loops };
    if (cur.kind !== 'node') return null;
    const p = this.findNode(tree, cur.label, []);
    return p && { path: p, loops: [] };
  }

  /* The path to the first group named label, or null. O(n). */
  findNode(n, label, acc) {
    for (let i = 0; i < n.children.length; i++) {
      const c = n.children[i];
      if (c.kind !== 'node') continue;
      if (c.label === label) return acc.concat([i]);
      const p = this.findNode(c, label, acc.concat([i]));
      if (p) return p;
    }
    return null;
  }

  /* Puts the highlight at path (child indices from the top) in this.tree. */
  restack(path, loops) {
    this.stack = [];
    let n = this.tree;
    for (let d = 0; d < path.length && n && n.kind === 'node'; d++) {
      this.stack.push({ node: n, i: path[d], loops: loops[d] || 0 });
      n = n.children[path[d]];
    }
    if (!this.stack.length) this.stack = [{ node: this.tree, i: 0, loops: 0 }];
  }

  find(n, key, acc) {
    for (let i = 0; i < n.children.length; i++) {
      const c = n.children[i];
      if (c.kind === 'leaf') { if (c.item.id !== 'back' && keyOf(c.item) === key) return acc.concat([i]); }
      else { const p = this.find(c, key, acc.concat([i])); if (p) return p; }
    }
    return null;
  }

  top() { return this.stack[this.stack.length - 1]; }
  current() {
    const t = this.top();
    return t && t.node.children.length ? t.node.children[t.i % t.node.children.length] : null;
  }

  /* Frames the current item again where it is now (layout moved), keeping
   * its caption and its time; reveal: scroll it into view when it is not
   * (a rebuilt page may have pushed it off). */
  place(reveal) {
    const c = this.current();
    if (!c || this.paused) return;
    const els = c.kind === 'leaf' && c.item.id !== 'back' ? leavesOf(c) : leavesOf(c.kind === 'node' ? c : this.top().node);
    if (reveal) this.reveal(els);
    hl.show(els, null, null, true);
  }

  /* Scrolls els into view when they are not wholly shown: the last of a
   * group, then the first. */
  reveal(els) {
    if (els.length && !els.every(shown)) {
      els[els.length - 1].scrollIntoView({ block: 'nearest' });
      els[0].scrollIntoView({ block: 'nearest' });
    }
  }

  /* Frames the current item and says it (auditory scanning). */
  draw() {
    const c = this.current();
    if (!c) { hl.hide(); return; }
    if (this.paused) {
      hl.hide();
      hl.status('Scanning paused: press the switch to go on');
      return;
    }
    hl.status('');
    const label = c.kind === 'leaf' ? (c.item.id === 'back' ? '↩ back' : c.item.label) : `▸ ${c.label}`;
    let els = leavesOf(c);
    if (c.kind === 'leaf' && c.item.id === 'back') els = leavesOf(this.top().node);
    // what is highlighted must be on screen (a long story, a small phone,
    // a panel that scrolls)
    this.reveal(els);
    hl.show(els, label, c.kind === 'leaf' ? (c.item.id === 'back' ? 'group' : 'scan') : 'group');
    this.since = performance.now();
    this.log.push({ t: this.since, label });
    if (this.log.length > 2000) this.log.splice(0, 1000);
    if (this.o.speak && window.speechSynthesis) {
      speechSynthesis.cancel();
      speechSynthesis.speak(new SpeechSynthesisUtterance(label.replace(/^▸ /, '')));
    }
    document.dispatchEvent(new CustomEvent('fp:scan-highlight', { detail: { label, kind: c.kind, els } }));
  }

  /* One switch: schedules the next automatic step. The first item of each
   * loop is held longer (firstExtra), so the person can get ready. */
  arm() {
    clearTimeout(this.timer);
    if (this.o.mode !== 'scan1' || this.paused || !this.running) return;
    const t = this.top();
    const wait = this.o.interval + (t.i % t.node.children.length === 0 ? this.o.firstExtra : 0);
    this.timer = setTimeout(() => this.advance(), wait);
  }

  /* Moves the highlight one item on. At the end of a loop: count it; after
   * `loops` loops a nested node returns to its parent, the top pauses. */
  advance() {
    const t = this.top();
    if (!t) return;
    this.fresh = false;
    t.i++;
    if (t.i >= t.node.children.length) {
      t.i = 0; t.loops++;
      if (t.loops >= this.o.loops) {
        if (this.stack.length > 1) { this.stack.pop(); this.top().loops = 0; }
        else if (this.o.mode === 'scan1') { this.paused = true; t.loops = 0; }
      }
    }
    this.draw(); this.arm();
  }

  /* The "step" switch (two-switch scanning; also resumes a pause). */
  step() {
    if (!this.running) return;
    if (this.paused) { this.paused = false; this.draw(); this.arm(); return; }
    this.advance();
  }

  /* The "select" switch: enter the highlighted group, or activate the
   * highlighted control. */
  select() {
    if (!this.running) return;
    if (this.paused) { this.paused = false; this.draw(); this.arm(); return; }
    const c = this.current();
    if (!c) return;
    this.fresh = false;
    if (c.kind === 'node') {
      this.stack.push({ node: c, i: 0, loops: 0 });
      this.draw(); this.arm();
      return;
    }
    if (c.item.id === 'back') {
      if (this.stack.length > 1) this.stack.pop();
      this.draw(); this.arm();
      return;
    }
    const el = c.item.el;
    this.log.push({ t: performance.now(), label: c.item.label, selected: true });
    if (this.o.speak && window.speechSynthesis) speechSynthesis.cancel();
    el.click();
    if (this.o.onSelect) this.o.onSelect(c.item);
    // the page changes (or not): start at the top of what is there now;
    // in a panel (settings) stay on the control, so a "+" can be pressed
    // again and the next field is a step away
    const stay = c.item.group === 'panel';
    if (!stay) { this.sig = []; setTimeout(() => this.refresh(true), 0); return; }
    // staying: the control is said again and, with one switch, held for a
    // whole step (a "+" pressed again, or the next field a step away)
    setTimeout(() => { if (this.refresh(false)) { this.draw(); this.arm(); } }, 0);
  }
}
