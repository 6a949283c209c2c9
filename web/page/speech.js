/*
 * speech.js — output for the person's voice and other programs: speak the
 * story or its last sentence (speechSynthesis), copy it to the clipboard,
 * and quick phrases: a short list of the person's own phrases (kept in
 * localStorage), each spoken or put into the story in one action.
 *
 * Why in the page and not the server: speech and the clipboard belong to
 * the person's device. When the browser has no speech synthesis the
 * buttons say so instead of failing silently.
 * Cost: nothing until used; the phrase list is at most MAX_PHRASES.
 */
import { $, S, showError, targetsChanged } from './state.js';
import { lastSentence } from './text.js';
import { typeText } from './actions.js';

const KEY = 'forkpoint.phrases';
const MAX_PHRASES = 24;

export function loadPhrases() {
  try {
    const a = JSON.parse(localStorage.getItem(KEY) || '[]');
    return Array.isArray(a) ? a.filter((p) => typeof p === 'string' && p.trim()).slice(0, MAX_PHRASES) : [];
  } catch (e) { return []; }
}
function savePhrases(a) {
  try { localStorage.setItem(KEY, JSON.stringify(a.slice(0, MAX_PHRASES))); } catch (e) { /* private mode */ }
}

/* Speaks text; returns false (and says why) when the browser cannot. */
export function speak(text) {
  const t = (text || '').trim();
  const msg = $('say-msg');
  if (!t) { msg.textContent = 'Nothing to say yet.'; return false; }
  if (!('speechSynthesis' in window) || typeof SpeechSynthesisUtterance !== 'function') {
    msg.textContent = 'This browser cannot speak (no speech synthesis).';
    showError(msg.textContent);
    return false;
  }
  window.speechSynthesis.cancel();
  const u = new SpeechSynthesisUtterance(t);
  u.lang = document.documentElement.lang || 'en';
  window.speechSynthesis.speak(u);
  msg.textContent = `Speaking: ${t.length > 80 ? `${t.slice(0, 80)}…` : t}`;
  return true;
}

export const storyText = () => (S.state ? S.state.text : '');
export const speakAll = () => speak(storyText());
export const speakLast = () => speak(lastSentence(storyText()));

/* Copies the story (the clipboard API, else a selected text area). */
export async function copyText() {
  const t = storyText();
  const msg = $('say-msg');
  if (!t) { msg.textContent = 'Nothing to copy yet.'; return false; }
  try {
    await navigator.clipboard.writeText(t);
  } catch (e) {
    const ta = document.createElement('textarea');
    ta.value = t;
    ta.setAttribute('readonly', '');
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    const ok = document.execCommand && document.execCommand('copy');
    ta.remove();
    if (!ok) { msg.textContent = 'Copying is not allowed here.'; showError(msg.textContent); return false; }
  }
  msg.textContent = `Copied ${t.length} characters.`;
  return true;
}

/* The Say panel: the phrase list, each with Say, Put in the story, Remove. */
export function renderSay() {
  const list = $('phrase-list');
  const phrases = loadPhrases();
  const atFork = !!(S.state && S.state.fork);
  list.replaceChildren();
  phrases.forEach((p, i) => {
    const li = document.createElement('li');
    const say = document.createElement('button');
    say.type = 'button';
    say.className = 'phrase';
    say.textContent = p;
    say.addEventListener('click', () => speak(p));
    const put = document.createElement('button');
    put.type = 'button';
    put.textContent = 'Write';
    put.setAttribute('aria-label', `Write “${p}” into the story`);
    put.disabled = !atFork;
    put.addEventListener('click', () => typeText(p, 1));
    const del = document.createElement('button');
    del.type = 'button';
    del.textContent = '✕';
    del.setAttribute('aria-label', `Remove “${p}”`);
    del.addEventListener('click', () => {
      const a = loadPhrases();
      a.splice(i, 1);
      savePhrases(a);
      renderSay();
    });
    li.append(say, put, del);
    list.appendChild(li);
  });
  if (!phrases.length) {
    const li = document.createElement('li');
    li.className = 'hint';
    li.textContent = 'No phrases yet: add your own below.';
    list.appendChild(li);
  }
  $('phrase-add').disabled = phrases.length >= MAX_PHRASES;
  targetsChanged();
}

export function addPhrase(ev) {
  ev.preventDefault();
  const input = $('phrase-input');
  const p = input.value.replace(/\s+/g, ' ').trim();
  if (!p) return;
  const a = loadPhrases().filter((x) => x !== p);
  a.push(p);
  savePhrases(a);
  input.value = '';
  renderSay();
  input.focus();
}
