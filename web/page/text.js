/*
 * text.js — byte offsets and words: the server counts UTF-8 bytes, JS
 * strings count UTF-16 units; these helpers translate, and name
 * candidates and preview words for display. Pure functions.
 */

/* A table from each byte offset to the string index of the character that
 * starts at or after it. O(n) to build, O(1) per lookup. */
export function byteMap(text) {
  const map = [];
  let b = 0;
  for (let i = 0; i < text.length;) {
    const cp = text.codePointAt(i);
    const nb = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    const units = cp > 0xffff ? 2 : 1;
    for (let k = 0; k < nb; k++) map[b + k] = k === 0 ? i : i + units;
    b += nb;
    i += units;
  }
  map[b] = text.length;
  return (off) => (off >= map.length ? text.length : map[Math.max(0, off)]);
}

export function displayWord(c) {
  if (c.is_eog) return '(end)';
  const t = c.text.replace(/\n/g, '↵').trim();
  return t || '·';
}

export const showWord = (t) => t.replace(/\n/g, '↵').trim() || '·';

/* The words of a candidate's preview as the core splits them
 * (preview_words: the UTF-8 byte offset where each begins, the value the
 * server takes as preview_upto); word j shows the bytes up to word j+1. */
const utf8 = new TextEncoder();
const utf8d = new TextDecoder();
export function previewWords(c) {
  const words = [];
  if (!c.preview || c.is_eog || !Array.isArray(c.preview_words)) return words;
  const bytes = utf8.encode(c.preview);
  const at = c.preview_words;
  for (let j = 0; j < at.length; j++) {
    const end = j + 1 < at.length ? at[j + 1] : bytes.length;
    words.push({ text: utf8d.decode(bytes.subarray(at[j], end)), upto: at[j] });
  }
  return words;
}

/* The key that takes candidate i: 1-9, then 0, - and = for 10-12 (the
 * number row), none beyond. */
export const KEY_OF = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '-', '='];
export const keyOf = (i) => (i < KEY_OF.length ? KEY_OF[i] : '');
/* The candidate a key code takes, or -1 (e.code, so Shift+digit works). */
export function indexOfCode(code) {
  const m = /^(?:Digit|Numpad)([0-9])$/.exec(code || '');
  if (m) return m[1] === '0' ? 9 : Number(m[1]) - 1;
  if (code === 'Minus' || code === 'NumpadSubtract') return 10;
  if (code === 'Equal') return 11;
  return -1;
}

/* The generated part of the story (after the prompt). */
export function storyPart(st) {
  return st.text.slice(byteMap(st.text)(st.prompt_len));
}

/* The last sentence of a text (what "speak the last sentence" says). */
export function lastSentence(text) {
  const parts = text.trim().split(/(?<=[.!?…]["'”’)]?)\s+/).filter((p) => p.trim());
  return parts.length ? parts[parts.length - 1].trim() : '';
}
