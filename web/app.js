/*
 * app.js — the Forkpoint page's main module: wires the DOM to the modules
 * in web/page/ and starts. Loaded as <script type="module"> (CSP
 * script-src 'self'); every file is compiled into forkpoint-serve, so the
 * page works with no network.
 *
 * Why it is shaped this way: every fork state the server sends already
 * holds the candidates and their previews, so hovering, focusing, dwelling
 * or long-pressing a candidate shows its ghost text at once with no request.
 * Decisions go to the JSON API (POST .../choose etc.), whose answer is the
 * new state; the WebSocket pushes changes made by any other client.
 *
 * Modules, one concern each:
 *   page/state.js   the state object, preferences, fp:targets, errors
 *   page/api.js     HTTP to our server          page/ws.js      the WebSocket
 *   page/render.js  a state on screen, status, announcements, start/open
 *   page/story.js   the story, ghost preview, uncertainty strip
 *   page/cloud.js   candidates, preview words, actions row, active target
 *   page/pointer.js mouse, pen, touch           page/dwell.js   dwell on every control
 *   page/keys.js    the keyboard                page/actions.js decisions, undo/redo, typing
 *   page/panels.js  panels, stories, settings   page/tree.js    the branch tree
 *   page/speech.js  speech, copy, quick phrases page/effort.js  effort figures
 *   page/chat.js    chat mode: the conversation, reply / my message / send / end
 *
 * CONTRACT with outside input modules (web/access/: switch scanning,
 * camera gaze, head pointer), which drive this page from the DOM alone:
 *  - Every actionable control is a real <button> (or an element with a role
 *    and tabindex); activating it = el.click(). Set
 *    document.body.dataset.fpModality (e.g. "switch", "gaze") to have a
 *    choice logged with that modality.
 *  - Candidates carry data-rank (0 = likeliest). Controls carry
 *    data-scan-group on themselves or an ancestor: "cloud", "preview"
 *    (preview words and + phrase), "actions" (undo, redo, let it pick /
 *    keep writing, type a word, other…), "toolbar", "panel".
 *  - The word box has data-fp="type-input": setting its value and
 *    dispatching an "input" event narrows the cloud; a keydown Enter
 *    commits (digits pick from the narrowed cloud). The toolbar is
 *    data-fp="toolbar"; the Settings panel holds an empty
 *    <section id="access-settings"> for the access settings, folded in a
 *    <details> (its <summary> is a control: dwell and scanning reach it).
 *  - An outside <dialog> (the Profile, web/profile.js) carries
 *    data-scan-group="panel"; while it is modal only it is scanned.
 *  - Whenever the set of targets changes (new fork, panel opened or closed,
 *    typing mode, list loaded) the page dispatches
 *    document.dispatchEvent(new CustomEvent('fp:targets')).
 *  - document.body.dataset.fpDwell is "on" while the page's own dwell
 *    (Settings) is on; a text field it selects is focused and clicked. The
 *    access layer then shows its letter board as in its own modes: for the
 *    word box, and for a text field clicked (the opening, a quick phrase).
 *  - index.html loads /access/index.js last; the page works without it.
 */
import { $, S, savePrefs } from './page/state.js';
import { startStory, showStart, openSession } from './page/render.js';
import {
  continueAuto, undo, redo, keepWriting, openTypebox, closeTypebox, commitTyped, prefixChanged, gotoFork, gotoOffset,
} from './page/actions.js';
import {
  PANELS, togglePanel, applyTheme, toggleTheme, exportText, exportJsonl, applySettings, fillSettings,
  loadAdapters, ADAPTERS, setReadout, adapterChanged,
} from './page/panels.js';
import { loadModels, switchModel } from './page/models.js';
import { onKey, typeboxKey } from './page/keys.js';
import { initDwell, dwellChanged } from './page/dwell.js';
import { speakAll, speakLast, copyText, addPhrase } from './page/speech.js';
import { startChat, chatReply, chatMine, chatEnd, chatSay } from './page/chat.js';

function init() {
  applyTheme();
  // a token given in the address was turned into a cookie by the server:
  // drop it from the address bar so it is not shared by copy and paste
  if (new URLSearchParams(location.search).has('token'))
    history.replaceState(null, '', location.pathname + location.hash);

  $('start-form').addEventListener('submit', startStory);
  $('chat-form').addEventListener('submit', startChat);
  $('chat-reply').addEventListener('click', () => chatReply());
  $('chat-me').addEventListener('click', () => chatMine());
  $('chat-end').addEventListener('click', () => chatEnd());
  $('chat-say').addEventListener('submit', chatSay);
  $('btn-continue').addEventListener('click', () => continueAuto());
  $('btn-undo').addEventListener('click', () => undo());
  $('btn-redo').addEventListener('click', () => redo());
  $('btn-type').addEventListener('click', () => openTypebox());
  $('cand-other').addEventListener('click', () => openTypebox());
  $('btn-keep').addEventListener('click', () => keepWriting());
  $('btn-new').addEventListener('click', showStart);
  $('btn-new-story').addEventListener('click', () => { togglePanel('stories', false); showStart(); });
  for (const n of PANELS) {
    $(`btn-${n}`).addEventListener('click', () => togglePanel(n));
    $(`panel-${n}`).querySelector('.panel-close').addEventListener('click', () => togglePanel(n, false));
  }
  $('btn-speak').addEventListener('click', () => speakLast());
  $('btn-speak-all').addEventListener('click', () => speakAll());
  $('btn-speak-last').addEventListener('click', () => speakLast());
  $('btn-copy').addEventListener('click', () => copyText());
  $('phrase-form').addEventListener('submit', addPhrase);
  $('btn-theme').addEventListener('click', toggleTheme);
  $('model-switch').addEventListener('click', switchModel);
  $('btn-export-txt').addEventListener('click', exportText);
  $('btn-export-jsonl').addEventListener('click', exportJsonl);
  $('settings-form').addEventListener('submit', applySettings);
  $('set-dwell').addEventListener('change', () => {
    S.prefs.dwell = $('set-dwell').checked; // at once: a dwell user turns it on by dwelling
    savePrefs();
    dwellChanged();
  });
  for (const d of ADAPTERS) {
    $(d.input).addEventListener('input', () => setReadout(d, Number($(d.input).value)));
    $(d.input).addEventListener('change', () => adapterChanged(d));
  }

  $('typebox').addEventListener('submit', (e) => { e.preventDefault(); commitTyped(); });
  $('type-input').addEventListener('keydown', typeboxKey);
  $('type-input').addEventListener('input', prefixChanged);
  $('type-cancel').addEventListener('click', closeTypebox);

  // clicking an earlier word goes back there; Redo returns (nothing is lost)
  const docClick = (el) => {
    if (!el || S.busy) return;
    if (el.dataset.fork !== undefined) gotoFork(Number(el.dataset.fork));
    else if (el.dataset.off !== undefined) gotoOffset(Number(el.dataset.off));
  };
  $('doc').addEventListener('click', (e) => docClick(e.target.closest('.w')));
  $('doc').addEventListener('keydown', (e) => {
    const w = e.target.closest && e.target.closest('.w');
    if (w && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); e.stopPropagation(); docClick(w); }
  });

  document.addEventListener('keydown', onKey);
  initDwell();
  window.addEventListener('hashchange', () => {
    const m = /^#s=([0-9a-f]{16})$/.exec(location.hash);
    if (m && m[1] !== S.sid) openSession(m[1]);
  });
  fillSettings();
  loadAdapters();
  loadModels();
  const m = /^#s=([0-9a-f]{16})$/.exec(location.hash);
  if (m) openSession(m[1]);
  else showStart();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
