/*
 * story.js — renders the story: the text (prompt, then words grouped from
 * tokens, each marked by who chose it; a fork's word can be clicked to go
 * back there), the ghost preview of the active candidate, and the
 * uncertainty strip.
 *
 * Why the ghost cannot move targets: the story is its own scroll box with
 * a height set by the layout (app.css), not by its text, so a preview that
 * adds a line scrolls the story, never the cloud under the pointer. The
 * ghost is aria-hidden: a screen reader hears the preview as the
 * candidate's description, not as part of the story.
 * Cost: O(tokens) DOM nodes per render; the ghost is O(preview).
 */
import { $, S } from './state.js';
import { byteMap } from './text.js';

function tokenClass(tok) {
  const by = tok[2], reason = tok[5];
  if (reason === 'typed') return 'typed';
  return by === 'auto' ? 'auto' : 'human';
}

export function renderDoc() {
  const st = S.state, doc = $('doc');
  const text = st.text, b2c = byteMap(text);
  const frag = document.createDocumentFragment();
  const promptEnd = b2c(st.prompt_len);
  const p = document.createElement('span');
  p.className = 'prompt';
  p.textContent = text.slice(0, promptEnd);
  frag.appendChild(p);

  let word = null, wordEnd = promptEnd, typedRun = false;
  const flush = () => { if (word) frag.appendChild(word); word = null; };
  for (const tok of st.tokens) {
    const [off, len, , forkId] = tok;
    const a = b2c(off), z = b2c(off + len);
    if (z <= a) continue;
    const piece = text.slice(a, z);
    const cls = tokenClass(tok);
    const startsWord = /^[\s.,;:!?"'()\-]/.test(piece) || forkId >= 0 || !word ||
      /\s$/.test(word.textContent) || !word.classList.contains(cls) ||
      (cls === 'typed' && !typedRun);
    if (startsWord) {
      flush();
      word = document.createElement('span');
      word.className = `w ${cls}`;
      word.dataset.off = String(off);
      if (forkId >= 0) {
        word.dataset.fork = String(forkId);
        word.classList.add('fork-mark');
        word.tabIndex = 0;
        word.setAttribute('role', 'button');
        word.dataset.label = piece.trim() || piece;
      }
    }
    typedRun = cls === 'typed';
    word.textContent += piece;
    wordEnd = z;
  }
  flush();
  for (const w of frag.querySelectorAll('.w[data-fork]'))
    w.setAttribute('aria-label', `${w.textContent.trim() || w.dataset.label}: go back to this fork`);
  if (wordEnd < text.length) { // text not covered by tokens (held-back bytes)
    const rest = document.createElement('span');
    rest.className = 'auto';
    rest.textContent = text.slice(wordEnd);
    frag.appendChild(rest);
  }
  const ghost = document.createElement('span');
  ghost.id = 'ghost';
  ghost.setAttribute('aria-hidden', 'true');
  frag.appendChild(ghost);
  if (st.fork) {
    const caret = document.createElement('span');
    caret.className = 'caret';
    caret.setAttribute('aria-hidden', 'true');
    frag.appendChild(caret);
  }
  doc.replaceChildren(frag);
  renderGhost();
}

/* Keeps the end of the story (and the ghost) in view inside its box. */
export function scrollStoryToEnd() {
  const doc = $('doc');
  doc.scrollTop = doc.scrollHeight;
}

/* Ghost text: the active (or remotely highlighted) candidate and its
 * preview, inline at the end of the story. Pure DOM, no request. */
export function renderGhost() {
  const g = $('ghost');
  if (!g) return;
  g.replaceChildren();
  const fork = S.state && S.state.fork;
  const idx = S.active >= 0 ? S.active : S.remote;
  if (!fork || idx < 0 || idx >= fork.candidates.length) return;
  const c = fork.candidates[idx];
  const w = document.createElement('span');
  w.className = 'ghost-word' + (S.active < 0 ? ' remote' : '');
  w.textContent = c.is_eog ? ' ⏎' : c.text;
  const pv = document.createElement('span');
  pv.className = 'ghost-preview';
  pv.textContent = c.preview;
  if (S.active >= 0 && S.activePhrase) pv.classList.add('ghost-word');
  if (S.active >= 0 && S.activeUpto >= 0 && !c.is_eog) {
    // pointing at a preview word: what would be taken, then where the fork opens
    const cut = byteMap(c.preview)(S.activeUpto);
    const kept = document.createElement('span');
    kept.className = 'ghost-word';
    kept.textContent = c.preview.slice(0, cut);
    const rest = document.createElement('span');
    rest.className = 'ghost-preview ghost-cut';
    rest.textContent = c.preview.slice(cut);
    g.append(w, kept, rest);
  } else {
    g.append(w, pv);
  }
  scrollStoryToEnd();
}

/* One bar per generated token, height by entropy; forks in accent colour,
 * very unsure tokens in red (the legend under it says so). */
export function renderStrip() {
  const st = S.state, strip = $('strip');
  const frag = document.createDocumentFragment();
  const ents = st.tokens.map((t) => Math.max(0, t[4] || 0)); // -1: inside a chosen span
  const max = Math.max(4, ...ents);
  const threshold = st.settings && st.settings.fork_entropy_bits > 0 ? st.settings.fork_entropy_bits : 3;
  st.tokens.forEach((t, i) => {
    const b = document.createElement('div');
    const e = t[4];
    b.className = 'bar' + (t[3] >= 0 ? ' fork' : e < 0 ? ' chosen' : e >= threshold ? ' hot' : '');
    b.style.height = `${Math.max(6, Math.round((100 * Math.max(0, e)) / max))}%`;
    b.title = e < 0 ? `word ${i + 1}: part of a word or phrase you chose`
      : `word ${i + 1}: ${e.toFixed(2)} bits of uncertainty${t[3] >= 0 ? ' (you chose here)' : ''}`;
    frag.appendChild(b);
  });
  strip.replaceChildren(frag);
  const nf = st.tokens.filter((t) => t[3] >= 0).length;
  const hot = st.tokens.filter((t) => t[3] < 0 && t[4] >= threshold).length;
  strip.setAttribute('aria-label',
    `How unsure the model was at each of ${ents.length} pieces of text: ${nf} places where you chose, ${hot} other very unsure places`);
}
