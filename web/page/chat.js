/*
 * chat.js — chat mode: a conversation whose either side is co-written with
 * forks (the API's "mode":"chat", docs/API.md#chats-mode-chat).
 *
 * Why it is this small: a chat's open turn is a writing session, and its
 * state has a story's shape (the turn's text after prompt_len, its tokens,
 * its fork), so the story view, the cloud, undo, typing, dwell, scanning
 * and the keyboard all work on it unchanged. This file adds the
 * conversation above the open turn, the chat's own actions — the
 * assistant replies (the person steers it at its forks), the person's own
 * message written with the model's help (it predicts what they want to
 * say: how a gaze or switch user writes their side), a message typed
 * outright, ending a message here — and hides what belongs to stories
 * (the rendered template text, "Keep writing").
 *
 * Every control is a <button> in the "actions" scan group, so keyboard,
 * dwell and switch scanning reach it (app.js's contract); fp:targets is
 * dispatched when the set of controls changes (a turn opens or ends).
 * Cost: one redraw of the messages per state, O(messages).
 */
import { $, S, showError, targetsChanged } from './state.js';
import { api } from './api.js';
import { render } from './render.js';
import { decide } from './actions.js';
import { connectWs } from './ws.js';

const WHO = { user: 'You', assistant: 'Assistant', system: 'Instructions' };
const modality = () => document.body.dataset.fpModality || undefined;

export async function startChat(ev) {
  ev.preventDefault();
  const btn = $('chat-start-btn');
  btn.disabled = true;
  $('chat-none').textContent = '';
  try {
    const st = await api('POST', '/api/sessions', { mode: 'chat', system: $('chat-system').value, settings: S.prefs.settings });
    S.sid = st.id;
    S.state = null;
    S.redo = [];
    history.replaceState(null, '', `#s=${st.id}`);
    render(st, { keepFocus: true });
    connectWs();
    $('chat-reply').focus();
  } catch (e) {
    // a model without a chat template says so here, in words
    $('chat-none').textContent = e.message;
    showError(e.message);
  } finally {
    btn.disabled = false;
  }
}

/* Part of render(): the conversation and the chat's controls (or none of
 * it, for a story). */
export function renderChat(st) {
  const chat = st.mode === 'chat';
  const between = chat && !st.turn;
  const shown = [chat, between, chat && !between].join();
  document.body.classList.toggle('chat-mode', chat);
  $('chat-log').hidden = !chat;
  $('chat-bar').hidden = !chat;
  $('chat-say').hidden = !between;
  $('doc').setAttribute('aria-label', chat ? 'Message being written' : 'Story so far');
  if (chat) {
    const log = $('chat-log');
    log.textContent = '';
    for (const m of st.messages) {
      const li = document.createElement('li');
      li.className = m.role;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = `${WHO[m.role] || m.role}:`;
      li.append(who, document.createTextNode(` ${m.content}`));
      log.appendChild(li);
    }
    log.scrollTop = log.scrollHeight;
    $('chat-reply').hidden = !between;
    $('chat-me').hidden = !between;
    $('chat-end').hidden = between;
    $('chat-end').disabled = !between && !st.turn.text.trim();   // a message needs words
    // undo reaches back into the message before (the server says when it was typed)
    $('btn-undo').disabled = !st.turn && !st.messages.some((m) => m.role !== 'system');
    if (between) {
      // a story's end controls mean nothing between turns
      for (const id of ['btn-keep', 'btn-new', 'btn-continue', 'btn-type', 'btn-redo']) $(id).hidden = true;
      $('ended').hidden = true;
      $('status').textContent = 'Your turn: write your message with the model’s help, type it, or let the assistant reply.';
    } else {
      for (const id of ['btn-continue', 'btn-type', 'btn-redo']) $(id).hidden = false;
      const who = st.turn.role === 'user' ? 'Your message (the model predicts it)' : 'The assistant’s reply (you steer it)';
      $('status').textContent = `${who}. ${$('status').textContent}`;
    }
  }
  if (S.chatShown !== shown) { S.chatShown = shown; targetsChanged(); }
}

export const chatReply = () => decide('/reply', { modality: modality() }, 'forward', 1);
export const chatMine = () => decide('/say', { modality: modality() }, 'forward', 1);
export const chatEnd = () => decide('/end', { modality: modality() }, 'forward', 1);

export async function chatSay(ev) {
  ev.preventDefault();
  const text = $('chat-text').value;
  if (!text.trim()) { showError('the message is empty'); return; }
  const st = await decide('/say', { text, modality: modality() }, 'forward', text.length);
  if (st) $('chat-text').value = '';
}
