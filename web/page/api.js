/*
 * api.js — the connection to our own server over HTTP: one JSON request,
 * its error turned into an exception that carries the current state when
 * the server sends one (409 on a stale action).
 * Cost: one fetch per call; nothing cached.
 */
import { S } from './state.js';

export async function api(method, path, body) {
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

export const sessPath = (rest) => `/api/sessions/${S.sid}${rest || ''}`;
