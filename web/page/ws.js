/*
 * ws.js — the WebSocket of the open session: the server pushes every
 * change made by any client (another tab, a switch or BCI device through
 * examples/ws_client.c) and relays highlights; the page sends "shown" and
 * its own highlights. Reconnects with a doubling back-off (0.5 s .. 10 s).
 */
import { $, S, showError } from './state.js';
import { render, showStart } from './render.js';
import { renderGhost } from './story.js';
import { markActive } from './cloud.js';

export function wsSend(obj) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(obj));
}

export function closeWs() {
  clearTimeout(S.wsTimer);
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
}

export function connectWs() {
  closeWs();
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
    } else if (m.type === 'deleted') { S.sid = null; showStart(); }
  };
  ws.onclose = () => {
    if (S.ws !== ws) return;
    S.ws = null;
    $('conn').textContent = '○ offline, reconnecting';
    S.wsTimer = setTimeout(() => { if (S.sid === sid) connectWs(); }, S.wsBackoff);
    S.wsBackoff = Math.min(S.wsBackoff * 2, 10000);
  };
}
