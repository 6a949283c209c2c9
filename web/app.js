/*
 * app.js — the Forkpoint page.
 *
 * Why it is shaped this way: every fork state the server sends already holds
 * the candidates and their previews, so hovering, focusing, dwelling or
 * long-pressing a candidate shows its ghost text at once with no request.
 * Decisions go to the JSON API (POST .../choose etc.), whose answer is the
 * new state; the WebSocket pushes changes made by any other client (another
 * tab, a switch or BCI device through examples/ws_client.c) and relays
 * highlights. No external resources, no frameworks: the server compiles this
 * file into its binary.
 *
 * Inputs: mouse (hover previews, click takes), touch (tap takes, long-press
 * previews), keyboard only (arrows, 1-9, Enter, Shift+Enter, Backspace,
 * T to type with live prefix narrowing, C to let the model pick), dwell
 * (a progress ring, configurable time and cooldown) and remote devices.
 *
 * Pointing into a preview: the row under the cloud shows the preview words
 * of one candidate (the top one, or the last one focused, long-pressed or
 * rested on for a moment: passing over others on the way does not switch
 * it), each a target with the same pointer, touch, keyboard and dwell
 * handling as candidates. Taking preview word j sends preview_upto = the
 * UTF-8 byte offset where word j starts: the candidate and the words
 * before j are taken, and a fork opens at word j.
 *
 * Adapter strengths: when the server has a personal LoRA adapter and/or a
 * steering vector, the settings panel shows a slider for each; letting go
 * of one POSTs /api/adapters and the re-decoded state arrives over the
 * WebSocket like any other change.
 */
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);

  /* ------------------------------------------------------------ state */

  const PREFS_KEY = 'forkpoint.prefs';
  const DEFAULT_PREFS = {
    dwell: false, dwellMs: 1000, cooldownMs: 800, longPressMs: 500,
    share: true, theme: null, settings: {},
  };
  const S = {
    sid: null, state: null, version: 0,
    active: -1, activePhrase: false, activeFrom: null, // 'pointer' | 'focus' | 'touch'
    activeUpto: -1, // byte offset of the preview word pointed at (-1: none)
    pinned: 0, pinTimer: 0, // the candidate whose preview words are in the row
    remote: -1, focusIdx: 0, order: [],
    busy: false, ws: null, wsTimer: 0, wsBackoff: 500, clientNo: 0,
    tSelect: 0, shownFork: null,
    dwellTimer: 0, dwellEl: null, cooldownUntil: 0, cooldownTimer: 0,
    longTimer: 0, longFired: false,
    prefixTimer: 0, prefixSent: '',
    errTimer: 0,
    adapters: {}, adapterDirty: new Set(), adapterTimer: 0, adapterBusy: false, // server-wide strengths
    prefs: loadPrefs(),
  };

  function loadPrefs() {
    try {
      const p = JSON.parse(localStorage.getItem(PREFS_KEY) || '{}');
      return Object.assign({}, DEFAULT_PREFS, p);
    } catch (e) { return Object.assign({}, DEFAULT_PREFS); }
  }
  function savePrefs() {
    try { localStorage.setItem(PREFS_KEY, JSON.stringify(S.prefs)); } catch (e) { /* private mode */ }
  }

  /* -------------------------------------------------------------- API */

  /* One JSON request to our own server. Throws Error(message) on 4xx/5xx. */
  async function api(method, path, body) {
    const opt = { method, headers: {}, credentials: 'same-origin' };
    if (body !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(body);
    }
    const r = await fetch(path, opt);
    const ct = r.headers.get('Content-Type') || '';
    const data = ct.includes('json') ? await r.json().catch(() => null) : await r.text();
    if (!r.ok) {
      const err = new Error((data && data.error) || `${r.status} ${r.statusText}`);
      err.state = data && data.state; // a 409 (stale action) carries the current state
      err.status = r.status;
      // the server holding the story went away, or the shared database did
      // (docs/deploy.md): the same request may be sent again
      err.retryable = !!(data && data.retryable);
      err.retryAfterMs = 1000 * (Number(r.headers.get('Retry-After')) || 1);
      throw err;
    }
    return data;
  }
  const sessPath = (rest) => `/api/sessions/${S.sid}${rest || ''}`;

  function showError(msg) {
    const el = $('error');
    el.textContent = msg;
    clearTimeout(S.errTimer);
    S.errTimer = setTimeout(() => { el.textContent = ''; }, 8000);
  }

  /* ---------------------------------------------------- byte offsets */

  /* The server counts bytes of UTF-8; JS strings count UTF-16 units. Builds
   * a table from each byte offset to the string index of the character
   * that starts at or after it. */
  function byteMap(text) {
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

  /* ------------------------------------------------------- rendering */

  function render(st, opts) {
    if (!st || st.id !== S.sid) return;
    if (S.state && st.version < S.version) return; // an older push arrived late
    const prevFork = S.state && S.state.fork ? S.state.fork.id : null;
    const prevVersion = S.version;
    S.state = st;
    S.version = st.version;
    $('story').dataset.version = String(st.version); // lets tests and tools see what is shown
    const fork = st.fork;
    const newFork = !fork || fork.id !== prevFork || st.version !== prevVersion;
    if (newFork) {
      S.active = -1; S.remote = -1; S.focusIdx = 0; S.activeUpto = -1; S.pinned = 0;
      clearTimeout(S.pinTimer);
      cancelDwell();
    }
    document.title = `${st.title || 'Story'} — Forkpoint`;
    $('start').hidden = true;
    $('story').hidden = false;
    renderDoc();
    renderStrip();
    renderCloud(opts && opts.keepFocus);
    renderStatus();
    if (!$('panel-tree').hidden) loadTree();
    if (!$('panel-settings').hidden) fillSettings();
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

  function tokenClass(tok) {
    const by = tok[2], reason = tok[5];
    if (reason === 'typed') return 'typed';
    return by === 'auto' ? 'auto' : 'human';
  }

  /* The story: prompt, then words grouped from tokens, each word marked by
   * who chose it; forks start a word and can be reopened by clicking. */
  function renderDoc() {
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
          word.setAttribute('aria-label', `Go back to the fork at “${piece.trim() || piece}”`);
        }
      }
      typedRun = cls === 'typed';
      word.textContent += piece;
      wordEnd = z;
    }
    flush();
    if (wordEnd < text.length) { // text not covered by tokens (held-back bytes)
      const rest = document.createElement('span');
      rest.className = 'auto';
      rest.textContent = text.slice(wordEnd);
      frag.appendChild(rest);
    }
    const ghost = document.createElement('span');
    ghost.id = 'ghost';
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

  /* Ghost text: the active (or remotely highlighted) candidate and its
   * preview, inline at the end of the story. Pure DOM, no request. */
  function renderGhost() {
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
      g.setAttribute('aria-label', `Takes: ${c.text}${c.preview.slice(0, cut)}; a fork opens at: ${c.preview.slice(cut).trim()}`);
      return;
    }
    g.append(w, pv);
    g.setAttribute('aria-label', `Preview: ${c.text}${c.preview}`);
  }

  /* One bar per generated token, height by entropy; forks in accent colour. */
  function renderStrip() {
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
      b.title = e < 0 ? `token ${i + 1}: part of a chosen word or phrase`
        : `token ${i + 1}: ${e.toFixed(2)} bits${t[3] >= 0 ? ' (fork)' : ''}`;
      frag.appendChild(b);
    });
    strip.replaceChildren(frag);
    const mean = ents.length ? ents.reduce((a, b) => a + b, 0) / ents.length : 0;
    strip.setAttribute('aria-label',
      `Uncertainty of ${ents.length} tokens: mean ${mean.toFixed(2)} bits, highest ${Math.max(0, ...ents).toFixed(2)} bits`);
  }

  const RING_SVG = '<svg class="ring" aria-hidden="true" preserveAspectRatio="none" viewBox="0 0 100 100">' +
    '<rect x="2" y="2" width="96" height="96" rx="14" pathLength="100"/></svg>';

  function displayWord(c) {
    if (c.is_eog) return '(end)';
    const t = c.text.replace(/\n/g, '↵').trim();
    return t || '·';
  }

  /* The words of a candidate's preview as the core splits them
   * (preview_words: the UTF-8 byte offset where each begins, the value the
   * server takes as preview_upto); word j shows the bytes up to word j+1. */
  const utf8 = new TextEncoder();
  const utf8d = new TextDecoder();
  function previewWords(c) {
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
  const showWord = (t) => t.replace(/\n/g, '↵').trim() || '·';

  /* The cloud: biggest candidate in the middle, the others alternating to
   * its sides; size and weight grow with probability, colour with
   * confidence. Each candidate has a phrase button beside it. */
  function renderCloud(keepFocus) {
    const cloud = $('cloud');
    const fork = S.state.fork;
    const hadFocus = cloud.contains(document.activeElement) || document.activeElement === document.body ||
      keepFocus;
    $('ended').hidden = !!fork;
    cloud.hidden = !fork;
    document.querySelector('.actions').hidden = !fork;
    if (!fork) {
      cloud.replaceChildren();
      $('typebox').hidden = true;
      if (hadFocus) $('btn-new').focus();
      return;
    }
    const cands = fork.candidates;
    // size follows the person's predicted choice when preferences are learned
    // (pref), which without them is the model's probability
    const weight = (c) => (typeof c.pref === 'number' ? c.pref : c.prob);
    const maxp = Math.max(1e-6, ...cands.map(weight));
    // rows: the middle row first, then above, below, ...; candidates are
    // dealt round-robin by rank, each row filled from its centre outwards,
    // so the most probable word sits in the middle of the cloud
    const nRows = cands.length <= 3 ? 1 : cands.length <= 12 ? 3 : 5;
    const mid = (nRows - 1) / 2;
    const rowOrder = [mid];
    for (let d = 1; rowOrder.length < nRows; d++) rowOrder.push(mid - d, mid + d);
    const rows = Array.from({ length: nRows }, () => []);
    cands.forEach((c, i) => {
      const row = rows[rowOrder[i % nRows]];
      if (row.length % 2 === 1) row.unshift(i); else row.push(i);
    });
    S.order = rows.flat();
    const rowEls = rows.map(() => {
      const r = document.createElement('div');
      r.className = 'cloud-row';
      return r;
    });
    const frag = document.createDocumentFragment();
    for (const i of S.order) {
      const c = cands[i];
      const r = Math.sqrt(weight(c) / maxp);
      const g = document.createElement('div');
      g.className = 'cand-group';
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'cand' + (c.is_eog ? ' eog' : '');
      b.id = `cand-${i}`;
      b.dataset.index = String(i);
      b.tabIndex = -1;
      b.style.fontSize = `${(1.0 + 1.5 * r).toFixed(2)}rem`;
      b.style.fontWeight = String(Math.round((400 + 400 * r) / 100) * 100);
      b.style.color = `color-mix(in srgb, var(--fg) ${Math.round(45 + 55 * r)}%, var(--muted))`;
      const pct = Math.round(c.prob * 100);
      b.setAttribute('aria-label',
        `${i + 1}: ${displayWord(c)}, ${pct} percent.${c.preview ? ` Leads to: ${c.preview}` : ''}`);
      b.innerHTML = RING_SVG;
      const num = document.createElement('span');
      num.className = 'num'; num.textContent = i < 9 ? String(i + 1) : '';
      const word = document.createElement('span');
      word.className = 'word'; word.textContent = displayWord(c);
      const pc = document.createElement('span');
      pc.className = 'pct'; pc.textContent = `${pct < 1 ? '<1' : pct}%`;
      b.append(num, word, pc);
      wireTarget(b, i, false);
      g.appendChild(b);
      if (c.preview && !c.is_eog) {
        const pb = document.createElement('button');
        pb.type = 'button';
        pb.className = 'cand-phrase';
        pb.dataset.index = String(i);
        pb.dataset.phrase = '1';
        pb.tabIndex = -1;
        pb.title = `${displayWord(c)}${c.preview}`;
        pb.setAttribute('aria-label', `${displayWord(c)} and its phrase: ${c.text}${c.preview}`);
        pb.innerHTML = RING_SVG;
        pb.append('+ phrase');
        wireTarget(pb, i, true);
        g.appendChild(pb);

      } else {
        b.style.borderRadius = '12px';
      }
      rowEls[rows.findIndex((r) => r.includes(i))].appendChild(g);
    }
    rowEls.forEach((r) => frag.appendChild(r));
    const bar = document.createElement('div');
    bar.className = 'pv-bar';
    bar.id = 'pv-bar';
    bar.setAttribute('role', 'group');
    frag.appendChild(bar);
    if (fork.other > 0.005) {
      const o = document.createElement('button');
      o.type = 'button';
      o.className = 'cand other';
      o.id = 'cand-other';
      o.dataset.index = '-2';
      o.tabIndex = -1;
      o.textContent = `other… ${Math.round(fork.other * 100)}%`;
      o.setAttribute('aria-label', `Other words, ${Math.round(fork.other * 100)} percent: type your own`);
      o.addEventListener('click', () => openTypebox());
      o.addEventListener('focus', () => setActive(-1, false, 'focus'));
      rowEls[rowEls.length - 1].appendChild(o);
    }
    cloud.replaceChildren(frag);
    cloud.setAttribute('aria-busy', S.busy ? 'true' : 'false');
    const focusEl = $(`cand-${S.focusIdx}`) || cloud.querySelector('.cand');
    if (focusEl) focusEl.tabIndex = 0;
    if (hadFocus && focusEl && $('typebox').hidden) focusEl.focus({ preventScroll: true });
    if (fork.typed_prefix && $('typebox').hidden) openTypebox(fork.typed_prefix, true);
    if (S.active >= 0) S.pinned = S.active;
    renderBar();
    markActive();
  }

  /* The row of preview words: those of the pinned candidate, each a target.
   * Selecting word j takes the candidate and the words before j, and opens
   * a fork at word j. */
  function renderBar() {
    const bar = $('pv-bar');
    const fork = S.state && S.state.fork;
    if (!bar || !fork) return;
    const i = S.pinned;
    const c = fork.candidates[i];
    const words = c ? previewWords(c) : [];
    bar.dataset.index = String(words.length ? i : -1);
    const frag = document.createDocumentFragment();
    const lead = document.createElement('span');
    lead.className = 'pv-lead';
    lead.setAttribute('aria-hidden', 'true');
    if (!words.length) {
      lead.textContent = 'no preview words to point at';
      bar.setAttribute('aria-label', 'No preview words');
      bar.replaceChildren(lead);
      return;
    }
    lead.textContent = `${i < 9 ? `${i + 1}: ` : ''}${displayWord(c)} ›`;
    lead.title = 'Pick the first word you do not want: the words before it are taken and you choose again there';
    frag.appendChild(lead);
    bar.setAttribute('aria-label', `Preview of “${displayWord(c)}”: pick the first word you do not want`);
    let taken = c.text;
    words.forEach((w, j) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'pv-word';
      b.id = `pv-${i}-${j}`;
      b.dataset.index = String(i);
      b.dataset.upto = String(w.upto);
      b.dataset.word = String(j);
      b.tabIndex = 0; // Tab from the focused candidate lands here
      b.setAttribute('aria-label', `Take “${taken.trim()}” and choose again at “${showWord(w.text)}”`);
      b.title = `Take “${taken.trim()}”, then choose again here`;
      b.innerHTML = RING_SVG;
      b.append(showWord(w.text));
      wireTarget(b, i, false, w.upto);
      frag.appendChild(b);
      taken += w.text;
    });
    const hint = document.createElement('span');
    hint.className = 'pv-lead pv-hint';
    hint.setAttribute('aria-hidden', 'true');
    hint.textContent = '← pick the first wrong word';
    frag.appendChild(hint);
    bar.replaceChildren(frag);
  }

  /* Puts candidate i's preview words in the row (now, or after the pointer
   * has rested on it for a moment, so passing over it does not). */
  function pin(i, later) {
    clearTimeout(S.pinTimer);
    if (i < 0 || i === S.pinned) return;
    const go = () => {
      const fork = S.state && S.state.fork;
      if (!fork || i >= fork.candidates.length || S.pinned === i) return;
      S.pinned = i;
      renderBar();
      markActive();
    };
    if (later) S.pinTimer = setTimeout(go, PIN_MS); else go();
  }
  const PIN_MS = 300;

  /* Shows which target is active / remotely highlighted. */
  function markActive() {
    for (const el of $('cloud').querySelectorAll('.cand, .cand-phrase')) {
      const i = Number(el.dataset.index);
      const phrase = el.dataset.phrase === '1';
      el.classList.toggle('active', i === S.active && phrase === S.activePhrase && S.activeUpto < 0);
      el.classList.toggle('remote', i === S.remote && S.active !== i && !phrase);
    }
    const bar = $('pv-bar');
    if (bar) bar.classList.toggle('active', S.active >= 0 && S.active === S.pinned);
    for (const el of $('cloud').querySelectorAll('.pv-word'))
      el.classList.toggle('active', Number(el.dataset.index) === S.active && Number(el.dataset.upto) === S.activeUpto);
  }

  function setActive(i, phrase, from, upto) {
    const u = upto === undefined ? -1 : upto;
    if (S.active === i && S.activePhrase === phrase && S.activeUpto === u) return;
    const moved = S.active !== i;
    S.active = i;
    S.activePhrase = phrase;
    S.activeFrom = from;
    S.activeUpto = u;
    renderGhost();
    markActive();
    if (S.prefs.share && moved) wsSend({ op: 'highlight', index: i });
  }

  /* Pointer, touch and dwell behaviour of one target: a candidate (upto
   * undefined), its phrase button (phrase) or one of its preview words
   * (upto = the byte offset to send as preview_upto). */
  function wireTarget(el, i, phrase, upto) {
    el.addEventListener('pointerenter', (e) => {
      if (e.pointerType === 'touch') return; // touch previews on long-press
      setActive(i, phrase, 'pointer', upto);
      if (upto === undefined) pin(i, true);
      if (S.prefs.dwell) startDwell(el, i, phrase, upto);
    });
    el.addEventListener('pointermove', (e) => {
      if (e.pointerType !== 'touch' && S.prefs.dwell && S.dwellEl !== el) startDwell(el, i, phrase, upto);
    });
    el.addEventListener('pointerleave', (e) => {
      if (S.dwellEl === el) cancelDwell();
      if (upto === undefined) clearTimeout(S.pinTimer);
      if (e.pointerType !== 'touch' && S.activeFrom === 'pointer' && S.active === i) {
        const f = document.activeElement;
        if (f && f.dataset && f.dataset.index !== undefined && $('cloud').contains(f))
          setActive(Number(f.dataset.index), f.dataset.phrase === '1', 'focus',
            f.dataset.upto !== undefined ? Number(f.dataset.upto) : undefined);
        else setActive(-1, false, null);
      }
    });
    el.addEventListener('pointerdown', (e) => {
      if (e.pointerType !== 'touch') return;
      S.longFired = false;
      clearTimeout(S.longTimer);
      S.longTimer = setTimeout(() => {
        S.longFired = true;
        setActive(i, phrase, 'touch', upto);
        pin(i);
      }, S.prefs.longPressMs);
    });
    const endTouch = () => clearTimeout(S.longTimer);
    el.addEventListener('pointerup', endTouch);
    el.addEventListener('pointercancel', endTouch);
    el.addEventListener('contextmenu', (e) => { if (S.longFired) e.preventDefault(); });
    el.addEventListener('click', (e) => {
      if (S.longFired) { S.longFired = false; e.preventDefault(); return; } // long-press = preview only
      // the decision log records how the person chose: the pointer's kind, or a key
      const how = e.detail === 0 ? 'keyboard' : (e.pointerType === 'touch' ? 'touch' : e.pointerType === 'pen' ? 'pen' : 'mouse');
      choose(i, phrase, how, upto);
    });
    el.addEventListener('focus', () => {
      if (!phrase && upto === undefined) {
        S.focusIdx = i;
        for (const b of $('cloud').querySelectorAll('.cand')) b.tabIndex = b === el ? 0 : -1;
      }
      setActive(i, phrase, 'focus', upto);
      pin(i);
    });
  }

  /* ------------------------------------------------------------ dwell */

  function startDwell(el, i, phrase, upto) {
    cancelDwell();
    if (S.busy || !S.state || !S.state.fork) return;
    const now = performance.now();
    if (now < S.cooldownUntil) return; // a later pointermove restarts it
    S.dwellEl = el;
    const rect = el.querySelector('.ring rect');
    if (rect) rect.style.transitionDuration = `${S.prefs.dwellMs}ms`;
    void el.offsetWidth; // commit the duration before the transition starts
    el.classList.add('dwelling');
    S.dwellTimer = setTimeout(() => {
      if (S.dwellEl !== el) return;
      cancelDwell();
      choose(i, phrase, 'dwell', upto);
    }, S.prefs.dwellMs);
  }

  function cancelDwell() {
    clearTimeout(S.dwellTimer);
    if (S.dwellEl) S.dwellEl.classList.remove('dwelling');
    S.dwellEl = null;
  }

  function startCooldown() {
    const ms = S.prefs.cooldownMs;
    S.cooldownUntil = performance.now() + ms;
    const cloud = $('cloud');
    cloud.classList.add('cooldown');
    clearTimeout(S.cooldownTimer);
    S.cooldownTimer = setTimeout(() => cloud.classList.remove('cooldown'), ms);
  }

  /* -------------------------------------------------------- decisions */

  /* Runs one decision request; the answer is the new state. It names the
   * version (and fork) on screen, so the server refuses it with 409 if
   * another client changed the session first. Why it retries: behind
   * nginx, a selection (which may have cost a switch user many seconds)
   * must survive the server holding the story dying mid-request; a 503
   * marked retryable is sent again, unchanged (up to 3 times, as
   * Retry-After says): the fork and version it names make that safe, a
   * choice already made being answered 409 with the state. A 409 marked
   * retryable (another server saved first) shows the current state. */
  async function decide(path, body) {
    if (S.busy || !S.sid) return;
    const f = S.state && S.state.fork;
    body = Object.assign({ version: S.version }, body);
    if (f && path !== '/goto') body.fork_id = f.id;
    S.busy = true;
    $('cloud').setAttribute('aria-busy', 'true');
    S.tSelect = performance.now();
    try {
      let st, retried = false;
      for (let attempt = 0; ; attempt++) {
        try {
          st = await api('POST', sessPath(path), body);
          break;
        } catch (e) {
          if (!(e.retryable && e.status === 503 && attempt < 3)) throw e;
          showError('the server is busy taking over this story; trying again');
          retried = true;
          await new Promise((r) => setTimeout(r, e.retryAfterMs));
        }
      }
      render(st, { keepFocus: true });
      if (retried) showError('');
    } catch (e) {
      S.tSelect = 0;
      if (e.state && !(e.state.version <= S.version)) render(e.state);
      else if (e.retryable && e.status === 409) {
        const now = await api('GET', sessPath()).catch(() => null);
        if (now) render(now);
      }
      showError(e.message);
    } finally {
      S.busy = false;
      $('cloud').setAttribute('aria-busy', 'false');
      startCooldown();
    }
  }

  /* Takes candidate i: alone, with its whole preview (phrase), or with the
   * preview up to byte offset upto (a fork opens there). */
  function choose(i, phrase, modality, upto) {
    const fork = S.state && S.state.fork;
    if (!fork || i < 0 || i >= fork.candidates.length) return;
    cancelDwell();
    const body = upto !== undefined && upto >= 0
      ? { index: i, preview_upto: upto, modality: modality || 'keyboard' }
      : { index: i, accept_preview: !!phrase, modality: modality || 'keyboard' };
    return decide('/choose', body);
  }
  const continueAuto = () => decide('/continue', {});
  const undo = () => decide('/undo', {});
  const gotoFork = (id) => decide('/goto', { fork_id: id });
  const gotoOffset = (off) => decide('/goto', { offset: off });

  /* --------------------------------------------------- typing a word */

  function openTypebox(initial, quiet) {
    const box = $('typebox'), input = $('type-input');
    box.hidden = false;
    if (initial !== undefined && input.value === '') input.value = initial;
    if (!quiet) input.focus();
  }

  function closeTypebox() {
    const box = $('typebox'), input = $('type-input');
    box.hidden = true;
    input.value = '';
    clearTimeout(S.prefixTimer);
    if (S.state && S.state.fork && S.state.fork.typed_prefix) sendPrefix('');
    const f = $(`cand-${S.focusIdx}`);
    if (f) f.focus();
  }

  /* Live narrowing: the cloud is recomputed for words starting with what
   * has been typed so far. Debounced; the newest prefix wins. */
  async function sendPrefix(prefix) {
    S.prefixSent = prefix;
    try {
      const st = await api('POST', sessPath('/type'), { prefix });
      if (S.prefixSent === prefix) render(st, { keepFocus: false });
    } catch (e) { showError(e.message); }
  }

  /* ------------------------------------------------------- WebSocket */

  function wsSend(obj) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(obj));
  }

  function connectWs() {
    clearTimeout(S.wsTimer);
    if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
    if (!S.sid) return;
    const sid = S.sid;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/api/sessions/${sid}/ws`);
    S.ws = ws;
    $('conn').textContent = 'connecting…';
    ws.onopen = () => { S.wsBackoff = 500; $('conn').textContent = '● live'; };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === 'state') render(m.state);
      else if (m.type === 'hello') S.clientNo = m.client;
      else if (m.type === 'highlight') {
        // the newest highlight wins: a switch or BCI user steers this screen
        S.remote = m.index;
        S.active = -1;
        renderGhost();
        markActive();
      } else if (m.type === 'error') {
        if (m.state && !(m.state.version <= S.version)) render(m.state); // stale: show what it is now
        if (m.status !== 409) showError(m.error);
      }
      else if (m.type === 'deleted') { S.sid = null; showStart(); }
    };
    ws.onclose = () => {
      if (S.ws !== ws) return;
      S.ws = null;
      $('conn').textContent = '○ offline, reconnecting';
      S.wsTimer = setTimeout(() => { if (S.sid === sid) connectWs(); }, S.wsBackoff);
      S.wsBackoff = Math.min(S.wsBackoff * 2, 10000);
    };
  }

  /* -------------------------------------------------- status and panels */

  function renderStatus() {
    const st = S.state, f = st.fork;
    let s;
    if (!f) {
      s = `Ended (${st.end_reason || 'end'}) · ${st.n_tokens} tokens · ${st.n_events} decisions`;
    } else {
      s = `Fork ${f.id} · ${f.candidates.length} candidates · ${f.uncertainty.entropy_bits.toFixed(2)} bits` +
        ` · top ${Math.round(f.uncertainty.top1 * 100)}% · ${f.reason.replace(/_/g, ' ')}` +
        (f.typed_prefix ? ` · prefix “${f.typed_prefix}”` : '');
    }
    $('status').textContent = s;
  }

  function togglePanel(name, force) {
    const panel = $(`panel-${name}`), btn = $(`btn-${name}`);
    const open = force !== undefined ? force : panel.hidden;
    for (const n of ['stories', 'tree', 'settings', 'help']) {
      if (n !== name || !open) {
        $(`panel-${n}`).hidden = true;
        $(`btn-${n}`).setAttribute('aria-expanded', 'false');
      }
    }
    panel.hidden = !open;
    btn.setAttribute('aria-expanded', String(open));
    if (open) {
      if (name === 'stories') loadStories();
      if (name === 'tree') loadTree();
      if (name === 'settings') { fillSettings(); loadAdapters(); }
      const first = panel.querySelector('button, input, select');
      if (first) first.focus();
    } else {
      btn.focus();
    }
  }

  async function loadStories() {
    const list = $('story-list');
    try {
      const data = await api('GET', '/api/sessions');
      list.replaceChildren();
      for (const s of data.sessions) {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'open';
        b.textContent = s.title || '(untitled)';
        const small = document.createElement('small');
        small.textContent = new Date(s.updated * 1000).toLocaleString();
        b.appendChild(small);
        if (s.id === S.sid) b.setAttribute('aria-current', 'true');
        b.addEventListener('click', () => { togglePanel('stories', false); openSession(s.id); });
        const d = document.createElement('button');
        d.type = 'button';
        d.textContent = '✕';
        d.setAttribute('aria-label', `Delete “${s.title}”`);
        d.addEventListener('click', async () => {
          if (!confirm(`Delete “${s.title}”?`)) return;
          try { await api('DELETE', `/api/sessions/${s.id}`); } catch (e) { showError(e.message); }
          if (s.id === S.sid) showStart();
          loadStories();
        });
        li.append(b, d);
        list.appendChild(li);
      }
      if (!data.sessions.length) {
        const li = document.createElement('li');
        li.className = 'hint';
        li.textContent = 'No stories yet.';
        list.appendChild(li);
      }
    } catch (e) { showError(e.message); }
  }

  /* --------------------------------------------------------- the tree */

  async function loadTree() {
    if (!S.sid) return;
    try {
      const t = await api('GET', sessPath('/tree'));
      renderTree(t);
    } catch (e) { showError(e.message); }
  }

  /* Renders the core's tree document: nodes are spans of text (prompt,
   * auto, choice, typed) with a parent; node.parent_fork is the fork where
   * the node was chosen, node.fork the fork standing at its end. Clicking a
   * node goes to the end of that branch (its fork reopens with the same
   * candidates); a node without an end fork reopens the fork it came from. */
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
    const build = (parentId, depth) => {
      const list = kids.get(parentId) || [];
      if (!list.length || depth > 500) return null;
      const ul = document.createElement('ul');
      ul.setAttribute('role', depth ? 'group' : 'presentation');
      for (const n of list) {
        if (seen.has(n.id)) continue;
        seen.add(n.id);
        const li = document.createElement('li');
        li.setAttribute('role', 'treeitem');
        if (n.on_path) li.setAttribute('aria-selected', 'true');
        const label = (n.text || '').replace(/\s+/g, ' ').trim();
        const short = label.length > 90 ? `${label.slice(0, 90)}…` : label;
        const target = n.fork >= 0 ? n.fork : n.parent_fork;
        const b = document.createElement('button');
        b.type = 'button';
        b.dataset.node = String(n.id);
        b.textContent = `${n.parent_fork >= 0 ? '⑂ ' : ''}[${n.kind}] ${short || '(empty)'}`;
        if (n.on_path) b.classList.add('on-path');
        if (n.fork >= 0 && n.fork === openFork) {
          b.classList.add('current');
          b.setAttribute('aria-current', 'step');
        }
        if (target >= 0 && n.kind !== 'prompt') {
          b.setAttribute('aria-label', `Go to the ${n.kind} branch “${short}”`);
          b.addEventListener('click', () => gotoFork(target));
        } else {
          b.disabled = n.kind === 'prompt';
        }
        li.appendChild(b);
        const sub = build(n.id, depth + 1);
        if (sub) li.appendChild(sub);
        ul.appendChild(li);
      }
      return ul;
    };
    const tree = build(-1, 0) || document.createElement('ul');
    root.replaceChildren(tree);
  }

  /* ----------------------------------------------------- settings */

  const FIELDS = [
    ['k', 'Candidates shown (k)', 'int', 1, 64],
    ['lookahead', 'Preview length (tokens)', 'int', 0, 64],
    ['granularity', 'Granularity', 'gran'],
    ['fork_entropy_bits', 'Fork when entropy ≥ bits (0 = off)', 'float', 0, 32, 0.1],
    ['fork_top1_below', 'Fork when top-1 below (0 = off)', 'float', 0, 1, 0.01],
    ['fork_margin_below', 'Fork when margin below (0 = off)', 'float', 0, 1, 0.01],
    ['min_gap_tokens', 'Budget: tokens between forks', 'int', 0, 10000],
    ['max_forks_per_sentence', 'Budget: forks per sentence (0 = any)', 'int', 0, 1000],
    ['temperature', 'Temperature', 'float', 0.01, 10, 0.05],
    ['seed', 'Seed', 'int', 0, 4294967295],
    ['sample_auto', 'Sample between forks (else greedy)', 'bool'],
    ['max_tokens', 'Stop after tokens (0 = context)', 'int', 0, 1000000],
    ['beam_width', 'Beam width', 'int', 1, 64],
    ['max_word_tokens', 'Longest word (tokens)', 'int', 1, 16],
    ['top_k', 'top-k (0 = off)', 'int', 0, 100000],
    ['top_p', 'top-p (1 = off)', 'float', 0, 1, 0.01],
    ['min_p', 'min-p (0 = off)', 'float', 0, 1, 0.01],
    ['repeat_penalty', 'Repeat penalty (1 = off)', 'float', 0, 10, 0.05],
    ['repeat_last_n', 'Repeat look-back (tokens)', 'int', 0, 100000],
  ];
  const GRANS = ['token', 'word', 'phrase'];

  /* Builds the form from the session's settings (only fields it has). */
  function fillSettings() {
    const box = $('model-settings');
    const cur = (S.state && S.state.settings) || S.prefs.settings || {};
    box.replaceChildren();
    for (const [key, label, type, min, max, step] of FIELDS) {
      if (S.state && !(key in cur)) continue;
      const v = key in cur ? cur[key] : S.prefs.settings[key];
      const lab = document.createElement('label');
      lab.textContent = label + ' ';
      let input;
      if (type === 'bool') {
        input = document.createElement('input');
        input.type = 'checkbox';
        input.checked = !!v;
      } else if (type === 'gran') {
        input = document.createElement('select');
        GRANS.forEach((g, gi) => {
          const o = document.createElement('option');
          o.value = typeof v === 'number' ? String(gi) : g;
          o.textContent = g;
          input.appendChild(o);
        });
        if (v !== undefined) input.value = typeof v === 'number' ? String(v) : String(v).toLowerCase().replace(/^fp_gran_/, '');
      } else {
        input = document.createElement('input');
        input.type = 'number';
        input.min = String(min); input.max = String(max);
        input.step = type === 'int' ? '1' : 'any';
        if (v !== undefined) input.value = String(v);
      }
      input.id = `set-${key}`;
      input.dataset.key = key;
      input.dataset.type = type;
      lab.appendChild(input);
      box.appendChild(lab);
    }
    $('set-dwell').checked = S.prefs.dwell;
    $('set-dwell-ms').value = S.prefs.dwellMs;
    $('set-cooldown-ms').value = S.prefs.cooldownMs;
    $('set-longpress-ms').value = S.prefs.longPressMs;
    $('set-share').checked = S.prefs.share;
  }

  async function applySettings(ev) {
    ev.preventDefault();
    const cur = (S.state && S.state.settings) || {};
    const changed = {};
    for (const el of $('model-settings').querySelectorAll('[data-key]')) {
      const key = el.dataset.key, type = el.dataset.type;
      let v;
      if (type === 'bool') v = el.checked;
      else if (type === 'gran') v = typeof cur[key] === 'number' ? Number(el.value) : el.value;
      else if (el.value === '') continue;
      else v = type === 'int' ? parseInt(el.value, 10) : parseFloat(el.value);
      if (cur[key] !== v) changed[key] = v;
    }
    S.prefs.dwell = $('set-dwell').checked;
    S.prefs.dwellMs = clampNum($('set-dwell-ms').value, 200, 10000, 1000);
    S.prefs.cooldownMs = clampNum($('set-cooldown-ms').value, 0, 10000, 800);
    S.prefs.longPressMs = clampNum($('set-longpress-ms').value, 200, 3000, 500);
    S.prefs.share = $('set-share').checked;
    Object.assign(S.prefs.settings, changed);
    savePrefs();
    const msg = $('settings-msg');
    if (S.sid && Object.keys(changed).length) {
      try {
        const st = await api('POST', sessPath('/settings'), { settings: changed });
        render(st);
        msg.textContent = 'Applied.';
      } catch (e) {
        msg.textContent = e.message;
        showError(e.message);
      }
    } else {
      msg.textContent = 'Saved.';
    }
  }
  function clampNum(v, lo, hi, dflt) {
    const n = Number(v);
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, Math.round(n))) : dflt;
  }

  /* ------------------------------------------- adapter strengths */

  /* The personal LoRA adapter and steering vector the server was started
   * with (if any): one slider each, for the whole server, not one story.
   * Moving a slider only updates its readout; letting go of it (or a pause
   * after arrow keys, which fire a change per press) sends the new value.
   * The server re-decodes every story and pushes their new states over
   * the WebSocket, so the cloud follows without another request. */
  const ADAPTERS = [
    { key: 'lora_scale', file: 'lora', input: 'set-lora-scale', out: 'out-lora-scale', row: 'row-lora', name: 'adapter' },
    { key: 'steer_strength', file: 'steer', input: 'set-steer-strength', out: 'out-steer-strength', row: 'row-steer', name: 'steering vector' },
  ];
  const ADAPTER_DEBOUNCE_MS = 250;
  const fmtStrength = (v) => String(Math.round(v * 1000) / 1000);

  function setReadout(d, v) {
    $(d.out).textContent = fmtStrength(v);
    $(d.input).setAttribute('aria-valuetext', v === 0 ? '0, off' : fmtStrength(v));
  }

  /* Shows the server's adapters (GET/POST /api/adapters); hides the
   * controls when it has neither. A slider the person has moved since
   * keeps their value until it is sent. */
  function showAdapters(a) {
    S.adapters = a && typeof a === 'object' ? a : {};
    const files = [];
    let any = false;
    for (const d of ADAPTERS) {
      const v = S.adapters[d.key];
      const on = typeof S.adapters[d.file] === 'string' && typeof v === 'number';
      $(d.row).hidden = !on;
      if (!on) continue;
      any = true;
      files.push(`${d.name}: ${S.adapters[d.file].split('/').pop()}`);
      if (S.adapterDirty.has(d.key)) continue;
      const el = $(d.input);
      // 0..4 in quarters, widened if the server's value lies outside
      el.min = String(Math.min(0, Math.floor(v * 4) / 4));
      el.max = String(Math.max(4, Math.ceil(v * 4) / 4));
      el.value = String(v);
      setReadout(d, v); // the server's exact value, even between two steps
    }
    $('adapter-files').textContent = files.length ? `In use: ${files.join(', ')}.` : '';
    $('adapter-settings').hidden = !any;
  }

  async function loadAdapters() {
    if (S.adapterBusy || S.adapterDirty.size) return; // a change of ours is on its way
    try {
      showAdapters(await api('GET', '/api/adapters'));
    } catch (e) {
      showAdapters({}); // an older server without the endpoint: nothing to show
    }
  }

  function adapterChanged(d) {
    S.adapterDirty.add(d.key);
    setReadout(d, Number($(d.input).value));
    clearTimeout(S.adapterTimer);
    S.adapterTimer = setTimeout(sendAdapters, ADAPTER_DEBOUNCE_MS);
  }

  /* Sends the sliders that changed (one request at a time; changes made
   * while one is out go in the next). */
  async function sendAdapters() {
    clearTimeout(S.adapterTimer);
    if (S.adapterBusy || !S.adapterDirty.size) return;
    const body = {};
    for (const d of ADAPTERS) if (S.adapterDirty.has(d.key)) body[d.key] = Number($(d.input).value);
    S.adapterDirty.clear();
    S.adapterBusy = true;
    const box = $('adapter-settings'), msg = $('settings-msg');
    box.setAttribute('aria-busy', 'true');
    msg.textContent = 'Applying the new strength to every story…';
    try {
      showAdapters(await api('POST', '/api/adapters', body));
      msg.textContent = 'Strength applied.';
      // the new state comes over the WebSocket; without one, ask for it
      if (S.sid && !(S.ws && S.ws.readyState === WebSocket.OPEN)) {
        api('GET', sessPath('')).then((st) => render(st)).catch((e) => showError(e.message));
      }
    } catch (e) {
      msg.textContent = e.message;
      showError(e.message);
      S.adapterBusy = false;
      if (!S.adapterDirty.size) await loadAdapters(); // back to what the server has
    } finally {
      S.adapterBusy = false;
      box.setAttribute('aria-busy', 'false');
      if (S.adapterDirty.size) sendAdapters();
    }
  }

  /* --------------------------------------------------------- export */

  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  async function exportJsonl() {
    if (!S.sid) return;
    try {
      const r = await fetch(sessPath('/events.jsonl'), { credentials: 'same-origin' });
      if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
      download(`forkpoint-${S.sid}.jsonl`, await r.text(), 'application/x-ndjson');
    } catch (e) { showError(e.message); }
  }

  /* ------------------------------------------------------ navigation */

  async function openSession(id) {
    S.sid = id;
    S.state = null;
    S.version = 0;
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

  function showStart() {
    S.sid = null;
    S.state = null;
    if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
    $('conn').textContent = '';
    $('story').hidden = true;
    $('start').hidden = false;
    $('status').textContent = 'Start a story, or open one from Stories.';
    history.replaceState(null, '', location.pathname);
    document.title = 'Forkpoint';
    $('prompt').focus();
  }

  async function startStory(ev) {
    ev.preventDefault();
    const prompt = $('prompt').value;
    const btn = $('start-btn');
    btn.disabled = true;
    S.tSelect = performance.now();
    try {
      const st = await api('POST', '/api/sessions', { prompt, settings: S.prefs.settings });
      S.sid = st.id;
      S.state = null;
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

  /* -------------------------------------------------------- keyboard */

  function moveFocus(delta) {
    const btns = S.order.map((i) => $(`cand-${i}`)).filter(Boolean);
    const other = $('cand-other');
    if (other) btns.push(other);
    if (!btns.length) return;
    let pos = btns.indexOf(document.activeElement);
    if (pos < 0) pos = Math.max(0, btns.indexOf($(`cand-${S.focusIdx}`)));
    else pos = (pos + delta + btns.length) % btns.length;
    btns.forEach((b) => { b.tabIndex = -1; });
    btns[pos].tabIndex = 0;
    btns[pos].focus();
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const inField = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT');
    const onWord = t && t.classList && t.classList.contains('pv-word');
    if (e.key === 'Escape') {
      if (!$('typebox').hidden) { closeTypebox(); e.preventDefault(); return; }
      if (onWord) { e.preventDefault(); $(`cand-${t.dataset.index}`).focus(); return; }
      for (const n of ['stories', 'tree', 'settings', 'help'])
        if (!$(`panel-${n}`).hidden) { togglePanel(n, false); e.preventDefault(); return; }
      return;
    }
    if (inField) return;
    const inPanel = t && t.closest && t.closest('.panel, .topbar');
    const fork = S.state && S.state.fork;
    if (!S.sid || $('story').hidden) return;

    const digit = /^(Digit|Numpad)([1-9])$/.exec(e.code || '');
    if (digit && fork && !inPanel) {
      const i = Number(digit[2]) - 1;
      if (i < fork.candidates.length) { e.preventDefault(); choose(i, e.shiftKey); }
      return;
    }
    if (inPanel) return;
    if (onWord && fork && ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'Home', 'End'].includes(e.key)) {
      // between the preview words; Up (or Left from the first) goes back to the candidate
      e.preventDefault();
      const words = [...t.parentNode.querySelectorAll('.pv-word')];
      const j = words.indexOf(t);
      const to = e.key === 'ArrowUp' || (e.key === 'ArrowLeft' && j === 0) ? $(`cand-${t.dataset.index}`)
        : e.key === 'Home' ? words[0] : e.key === 'End' ? words[words.length - 1]
          : words[Math.min(words.length - 1, j + (e.key === 'ArrowRight' ? 1 : -1))];
      if (to) to.focus();
      return;
    }
    switch (e.key) {
      case 'ArrowRight': case 'ArrowDown':
        if (fork) { e.preventDefault(); moveFocus(+1); }
        return;
      case 'ArrowLeft': case 'ArrowUp':
        if (fork) { e.preventDefault(); moveFocus(-1); }
        return;
      case 'Home': case 'End':
        if (fork) { e.preventDefault(); moveFocus(0); }
        return;
      case 'Enter': {
        if (t && t.closest && t.closest('#doc .w')) return; // handled by the word
        if (!fork) return;
        if (t && t.id === 'cand-other') { e.preventDefault(); openTypebox(); return; }
        let i = t && t.dataset && t.dataset.index !== undefined ? Number(t.dataset.index) : -1;
        if (i < 0 && t && t.closest && t.closest('#cloud, .actions, #typebox')) return;
        if (i < 0) i = S.active >= 0 ? S.active : S.focusIdx;
        e.preventDefault();
        if (onWord) { choose(i, false, 'keyboard', Number(t.dataset.upto)); return; }
        choose(i, e.shiftKey || (t && t.dataset && t.dataset.phrase === '1'));
        return;
      }
      case 'Backspace':
        e.preventDefault();
        undo();
        return;
      case 't': case 'T': case '/':
        if (fork) { e.preventDefault(); openTypebox(); }
        return;
      case 'c': case 'C':
        if (fork) { e.preventDefault(); continueAuto(); }
        return;
      case '?':
        togglePanel('help');
        return;
      default:
    }
  }

  /* ---------------------------------------------------------- theme */

  function applyTheme() {
    const root = document.documentElement;
    if (S.prefs.theme) root.dataset.theme = S.prefs.theme;
    else delete root.dataset.theme;
    const dark = S.prefs.theme ? S.prefs.theme === 'dark'
      : window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
    const b = $('btn-theme');
    b.setAttribute('aria-pressed', String(dark));
    b.textContent = dark ? 'Light theme' : 'Dark theme';
  }

  /* ----------------------------------------------------------- wiring */

  function init() {
    applyTheme();
    // a token given in the address was turned into a cookie by the server:
    // drop it from the address bar so it is not shared by copy and paste
    if (new URLSearchParams(location.search).has('token'))
      history.replaceState(null, '', location.pathname + location.hash);

    $('start-form').addEventListener('submit', startStory);
    $('btn-continue').addEventListener('click', () => continueAuto());
    $('btn-undo').addEventListener('click', () => undo());
    $('btn-type').addEventListener('click', () => openTypebox());
    $('btn-new').addEventListener('click', showStart);
    $('btn-new-story').addEventListener('click', () => { togglePanel('stories', false); showStart(); });
    for (const n of ['stories', 'tree', 'settings', 'help'])
      $(`btn-${n}`).addEventListener('click', () => togglePanel(n));
    $('btn-theme').addEventListener('click', () => {
      const dark = $('btn-theme').getAttribute('aria-pressed') === 'true';
      S.prefs.theme = dark ? 'light' : 'dark';
      savePrefs();
      applyTheme();
    });
    $('btn-export-txt').addEventListener('click', () => {
      if (S.state) download(`forkpoint-${S.sid}.txt`, S.state.text, 'text/plain');
    });
    $('btn-export-jsonl').addEventListener('click', exportJsonl);
    $('settings-form').addEventListener('submit', applySettings);
    for (const d of ADAPTERS) {
      $(d.input).addEventListener('input', () => setReadout(d, Number($(d.input).value)));
      $(d.input).addEventListener('change', () => adapterChanged(d));
    }

    $('typebox').addEventListener('submit', (e) => {
      e.preventDefault();
      const text = $('type-input').value;
      if (!text.trim()) return;
      clearTimeout(S.prefixTimer);
      S.prefixSent = null;
      $('typebox').hidden = true;
      $('type-input').value = '';
      decide('/type', { text }).then(() => {
        const f = $(`cand-${S.focusIdx}`) || $('cloud').querySelector('.cand');
        if (f) f.focus();
      });
    });
    $('type-input').addEventListener('input', () => {
      clearTimeout(S.prefixTimer);
      const v = $('type-input').value;
      S.prefixTimer = setTimeout(() => sendPrefix(v.trim() === '' ? '' : v), 180);
    });
    $('type-cancel').addEventListener('click', closeTypebox);

    // clicking an earlier word reopens its fork (or forces one there)
    const docClick = (el) => {
      if (!el || S.busy) return;
      if (el.dataset.fork !== undefined) gotoFork(Number(el.dataset.fork));
      else if (el.dataset.off !== undefined) gotoOffset(Number(el.dataset.off));
    };
    $('doc').addEventListener('click', (e) => docClick(e.target.closest('.w')));
    $('doc').addEventListener('keydown', (e) => {
      const w = e.target.closest && e.target.closest('.w');
      if (w && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); docClick(w); }
    });
    $('cloud').addEventListener('pointerleave', () => cancelDwell());

    document.addEventListener('keydown', onKey);
    window.addEventListener('hashchange', () => {
      const m = /^#s=([0-9a-f]{16})$/.exec(location.hash);
      if (m && m[1] !== S.sid) openSession(m[1]);
    });
    fillSettings();
    loadAdapters();
    const m = /^#s=([0-9a-f]{16})$/.exec(location.hash);
    if (m) openSession(m[1]);
    else showStart();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
