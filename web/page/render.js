/*
 * render.js — draws a state document: the story, the strip, the fork, the
 * status line, the effort figures; announces the change to screen readers;
 * and switches between the start form and a story.
 *
 * Why announce here: only the renderer sees both the old and the new state,
 * so it can say what was added ("… girl named Lily.") or that the story
 * went back, in one polite message, instead of the status line alone.
 * Cost: one full redraw per state, O(tokens + candidates).
 */
import { $, S, showError, targetsChanged } from './state.js';
import { api, sessPath } from './api.js';
import { connectWs, closeWs, wsSend } from './ws.js';
import { renderDoc, renderStrip, scrollStoryToEnd } from './story.js';
import { renderCloud } from './cloud.js';
import { cancelDwell } from './dwell.js';
import { panelRefresh } from './panels.js';
import { renderEffort } from './effort.js';
import { loadRedo } from './actions.js';
import { displayWord, storyPart } from './text.js';
import { modelSeen } from './models.js';
import { renderChat } from './chat.js';

export function render(st, opts) {
  if (!st || st.id !== S.sid) return;
  if (S.state && st.version < S.version) return; // an older push arrived late
  const prev = S.state;
  const prevFork = prev && prev.fork ? prev.fork.id : null;
  const prevVersion = S.version;
  S.state = st;
  S.version = st.version;
  modelSeen(st.model);
  $('story').dataset.version = String(st.version); // lets tests and tools see what is shown
  const fork = st.fork;
  const newFork = !fork || fork.id !== prevFork || st.version !== prevVersion;
  if (newFork) {
    S.active = -1; S.remote = -1; S.focusIdx = 0; S.activeUpto = -1; S.pinned = 0;
    clearTimeout(S.pinTimer);
    cancelDwell();
  }
  document.title = `${titleOf(st)} — Forkpoint`;
  const wasStart = !$('start').hidden;
  $('start').hidden = true;
  $('story').hidden = false;
  renderDoc();
  renderStrip();
  renderCloud(opts && opts.keepFocus);
  renderStatus();
  renderChat(st);
  renderEffort(st);
  scrollStoryToEnd();
  if (prev && prev.id === st.id && prev.version !== st.version) announce(prev, st);
  if (wasStart) targetsChanged();
  panelRefresh();
  if (fork && S.shownFork !== `${st.version}`) {
    S.shownFork = `${st.version}`;
    afterPaint(() => {
      if (S.tSelect) {
        const ms = performance.now() - S.tSelect;
        S.tSelect = 0;
        $('timing').textContent =
          `Selection to this fork on screen: ${Math.round(ms)} ms (engine ${st.last_ms} ms)`;
      }
      wsSend({ op: 'shown', fork_id: fork.id });
    });
  } else if (!fork && S.tSelect) {
    S.tSelect = 0;
  }
}

function afterPaint(fn) { requestAnimationFrame(() => setTimeout(fn, 0)); }

/* A story's title from its own text: the first words the model and the
 * person wrote after the prompt (the prompt alone is the same for many). */
export function titleOf(st) {
  if (st.mode === 'chat') return st.title || 'Chat';
  const gen = storyPart(st).replace(/\s+/g, ' ').trim();
  const src = gen || st.text.replace(/\s+/g, ' ').trim() || 'Story';
  if (src.length <= 48) return src;
  const cut = src.slice(0, 48);
  return `${cut.slice(0, Math.max(24, cut.lastIndexOf(' ')))}…`;
}

/* The status line in plain words (the numbers are in the candidates). */
const REASONS = {
  uncertain: 'The model is unsure here',
  forced: 'You went back here',
  budget_gap: 'A place to choose',
  budget_sentence: 'A place to choose',
  mid_word: 'The word can go on',
  typed: 'Your word',
};
const ENDS = {
  eog: 'The story has come to its end',
  max_tokens: 'The story reached its length limit',
  context: 'The story filled the model’s memory',
};
function renderStatus() {
  const st = S.state, f = st.fork;
  let s;
  if (!f) {
    s = `${ENDS[st.end_reason] || 'The story has ended'}. Keep writing, undo, or start a new one.`;
  } else if (f.typed_prefix) {
    s = `Words starting with “${f.typed_prefix}”: ${f.candidates.length} to choose from.`;
  } else {
    const top = f.candidates[0];
    s = `${REASONS[f.reason] || 'Choose a word'}: ${f.candidates.length} words to choose from` +
      (top ? `; the likeliest, “${displayWord(top)}”, ${Math.round(top.prob * 100)}%.` : '.');
  }
  $('status').textContent = s;
}

/* One message for screen readers: what was added, or that the story went
 * back, then what to do now. */
function announce(prev, st) {
  let what;
  if (st.text.startsWith(prev.text) && st.text.length > prev.text.length) {
    what = `Added: ${st.text.slice(prev.text.length).trim()}`;
  } else if (prev.text.startsWith(st.text) && st.text.length < prev.text.length) {
    const tail = st.text.slice(-60).trim();
    what = `Went back to: …${tail}. Redo returns.`;
  } else if (st.text !== prev.text) {
    what = `Now: …${st.text.slice(-80).trim()}`;
  } else what = '';
  $('announce').textContent = `${what}${what ? '. ' : ''}${$('status').textContent}`;
}

export async function openSession(id) {
  S.sid = id;
  S.state = null;
  S.version = 0;
  loadRedo();
  if (location.hash !== `#s=${id}`) history.replaceState(null, '', `#s=${id}`);
  try {
    const st = await api('GET', sessPath(''));
    render(st, { keepFocus: true });
    connectWs();
  } catch (e) {
    showError(e.message);
    showStart();
  }
}

export function showStart() {
  S.sid = null;
  S.state = null;
  S.redo = [];
  closeWs();
  $('conn').textContent = '';
  $('story').hidden = true;
  $('start').hidden = false;
  $('status').textContent = 'Start a story, or open one from Stories.';
  $('effort').textContent = '';
  history.replaceState(null, '', location.pathname);
  document.title = 'Forkpoint';
  $('prompt').focus();
  targetsChanged();
}

export async function startStory(ev) {
  ev.preventDefault();
  const prompt = $('prompt').value;
  const btn = $('start-btn');
  btn.disabled = true;
  S.tSelect = performance.now();
  try {
    const st = await api('POST', '/api/sessions', { prompt, settings: S.prefs.settings });
    S.sid = st.id;
    S.state = null;
    S.redo = [];
    history.replaceState(null, '', `#s=${st.id}`);
    render(st, { keepFocus: true });
    connectWs();
  } catch (e) {
    S.tSelect = 0;
    showError(e.message);
  } finally {
    btn.disabled = false;
  }
}
