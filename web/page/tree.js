/*
 * tree.js — the branch tree panel: every fork met so far and the branches
 * explored, from the core's tree document (GET .../tree); choosing a node
 * goes to the end of that branch (its fork reopens with the same
 * candidates).
 *
 * Shape: a straight run of text (nodes with one child each) stays at one
 * level; only where a fork has more than one explored branch does the tree
 * open a group, one item per branch. Keys follow the WAI-ARIA tree pattern:
 * Up/Down move, Right opens or goes into a group, Left closes or goes to
 * the parent, Home/End, Enter or Space goes there. One roving tab stop.
 * Cost: O(nodes) per render.
 */
import { $, S, showError, targetsChanged } from './state.js';
import { api, sessPath } from './api.js';
import { gotoFork } from './actions.js';

const KIND = { prompt: 'beginning', auto: 'model', split: 'model', choice: 'you chose', typed: 'you typed' };

export async function loadTree(focusIn) {
  if (!S.sid) { $('tree').replaceChildren(); if (focusIn) $('panel-tree').querySelector('.panel-close').focus(); return; }
  try {
    const t = await api('GET', sessPath('/tree'));
    const had = $('tree').contains(document.activeElement) ? document.activeElement.dataset.node : null;
    renderTree(t);
    const again = had !== null && $('tree').querySelector(`button[data-node="${had}"]`);
    if (focusIn || again) focusItem(again || $('tree').querySelector('button.current') || $('tree').querySelector('button[data-node]:not([disabled])'));
    targetsChanged();
  } catch (e) { showError(e.message); }
}

function renderTree(t) {
  const root = $('tree');
  const nodes = Array.isArray(t.nodes) ? t.nodes : [];
  const kids = new Map();
  for (const n of nodes) {
    const p = n.parent === undefined ? -1 : n.parent;
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(n);
  }
  const openFork = t.open_fork !== undefined ? t.open_fork : -1;
  const seen = new Set();
  const item = (n) => {
    seen.add(n.id);
    const li = document.createElement('li');
    li.setAttribute('role', 'treeitem');
    const label = (n.text || '').replace(/\s+/g, ' ').trim();
    const short = label.length > 90 ? `${label.slice(0, 90)}…` : label;
    const target = n.fork >= 0 ? n.fork : n.parent_fork;
    const b = document.createElement('button');
    b.type = 'button';
    b.tabIndex = -1;
    b.dataset.node = String(n.id);
    const kind = document.createElement('span');
    kind.className = 'kind';
    kind.textContent = `${n.parent_fork >= 0 ? '↳ ' : ''}${KIND[n.kind] || n.kind}:`;
    const txt = document.createElement('span');
    txt.className = 'txt';
    txt.textContent = ` ${short || '(empty)'}`;
    b.append(kind, txt);
    if (n.on_path) b.classList.add('on-path');
    if (n.fork >= 0 && n.fork === openFork) {
      b.classList.add('current');
      b.setAttribute('aria-current', 'step');
    }
    if (target >= 0 && n.kind !== 'prompt') b.addEventListener('click', () => gotoFork(target));
    else b.disabled = n.kind === 'prompt';
    li.appendChild(b);
    return li;
  };
  /* n and its straight continuation into ul; a branching node gets a group */
  const chain = (ul, n, depth) => {
    let cur = n, li = item(n);
    ul.appendChild(li);
    for (;;) {
      const ch = (kids.get(cur.id) || []).filter((c) => !seen.has(c.id));
      if (ch.length === 1 && depth < 400) {
        cur = ch[0];
        li = item(cur);
        ul.appendChild(li);
        continue;
      }
      if (ch.length > 1 && depth < 400) {
        const g = document.createElement('ul');
        g.setAttribute('role', 'group');
        for (const c of ch) {
          const bl = item(c);
          g.appendChild(bl);
          const more = (kids.get(c.id) || []).filter((x) => !seen.has(x.id));
          if (more.length) {
            const sub = document.createElement('ul');
            sub.setAttribute('role', 'group');
            for (const m of more) chain(sub, m, depth + 1);
            bl.appendChild(sub);
            bl.setAttribute('aria-expanded', 'true');
          }
        }
        li.appendChild(g);
        li.setAttribute('aria-expanded', 'true');
      }
      return;
    }
  };
  const top = document.createElement('ul');
  top.setAttribute('role', 'presentation');
  for (const n of kids.get(-1) || []) if (!seen.has(n.id)) chain(top, n, 0);
  root.replaceChildren(top);
  const first = root.querySelector('button.current') || root.querySelector('button[data-node]:not([disabled])');
  if (first) first.tabIndex = 0;
}

function focusItem(b) {
  if (!b) return;
  for (const x of $('tree').querySelectorAll('button[data-node]')) x.tabIndex = x === b ? 0 : -1;
  b.focus();
}

/* The buttons a person can see now (not inside a closed group). */
function visibleItems() {
  return [...$('tree').querySelectorAll('button[data-node]:not([disabled])')].filter((b) => !isInClosed(b));
}
function isInClosed(b) {
  for (let li = b.closest('li')?.parentElement?.closest('li'); li; li = li.parentElement?.closest('li'))
    if (li.getAttribute('aria-expanded') === 'false') return true;
  return false;
}

export function treeKey(e) {
  const b = e.target.closest && e.target.closest('#tree button[data-node]');
  if (!b) return false;
  const items = visibleItems();
  const i = items.indexOf(b);
  const li = b.closest('li');
  switch (e.key) {
    case 'ArrowDown': focusItem(items[Math.min(items.length - 1, i + 1)]); break;
    case 'ArrowUp': focusItem(items[Math.max(0, i - 1)]); break;
    case 'Home': focusItem(items[0]); break;
    case 'End': focusItem(items[items.length - 1]); break;
    case 'ArrowRight':
      if (li.getAttribute('aria-expanded') === 'false') li.setAttribute('aria-expanded', 'true');
      else if (li.getAttribute('aria-expanded') === 'true') focusItem(li.querySelector(':scope > ul button[data-node]:not([disabled])'));
      break;
    case 'ArrowLeft': {
      if (li.getAttribute('aria-expanded') === 'true') { li.setAttribute('aria-expanded', 'false'); break; }
      const up = li.parentElement.closest('li[role="treeitem"]');
      if (up) focusItem(up.querySelector(':scope > button'));
      break;
    }
    default: return false;
  }
  e.preventDefault();
  return true;
}
