// fault_proxy.mjs — an HTTP proxy that breaks on command, put between a
// Forkpoint running on a remote engine (--backend) and that engine, so the
// failure cases are real network events: a dropped connection, a status,
// no answer at all, a reply with fewer log-probabilities than asked.
//
// As a module: `const p = await startProxy(targetUrl)`; p.url; p.fault(mode,
// count, opts) arms `mode` for the next `count` requests (-1: until
// changed); p.seen / p.faulted count requests; p.close(). As a program:
// `node fault_proxy.mjs TARGET_URL [PORT]` prints "proxy on URL" and takes
// POST /__fault {"mode","count",...} for the same.
// Modes: pass; drop (the socket is destroyed before any answer); status
// (answers opts.code, default 503, with Retry-After opts.retry_after if
// given); hang (never answers: the client's timeout); trim (forwards, then
// keeps only opts.keep top log-probabilities of each position).
import http from 'node:http';
import { fileURLToPath } from 'node:url';

function trimReply(text, keep) {
  let j;
  try { j = JSON.parse(text); } catch { return text; }
  for (const e of j.completion_probabilities || []) if (Array.isArray(e.top_logprobs)) e.top_logprobs = e.top_logprobs.slice(0, keep);
  for (const c of j.choices || []) {
    const tl = c.logprobs && c.logprobs.top_logprobs;
    if (Array.isArray(tl)) c.logprobs.top_logprobs = tl.map((m) => Object.fromEntries(Object.entries(m || {}).slice(0, keep)));
  }
  return JSON.stringify(j);
}

export function startProxy(target, port = 0) {
  const t = new URL(target);
  const st = { mode: 'pass', count: 0, opts: {}, seen: 0, faulted: 0, hung: [] };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url === '/__fault' && req.method === 'POST') {
        const o = JSON.parse(body.toString() || '{}');
        arm(o.mode, o.count ?? 1, o);
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(JSON.stringify({ ok: true }));
      }
      st.seen++;
      let mode = 'pass';
      if (st.count !== 0 && req.url !== '/health' && !req.url.endsWith('/models')) {
        mode = st.mode;
        if (st.count > 0) st.count--;
        if (mode !== 'pass') st.faulted++;
      }
      if (mode === 'drop') return req.socket.destroy();
      if (mode === 'hang') { st.hung.push(res); return; }
      if (mode === 'status') {
        const h = { 'Content-Type': 'application/json' };
        if (st.opts.retry_after !== undefined) h['Retry-After'] = String(st.opts.retry_after);
        res.writeHead(st.opts.code || 503, h);
        return res.end(JSON.stringify({ error: { message: `injected ${st.opts.code || 503}` } }));
      }
      const up = http.request({ host: t.hostname, port: t.port, path: req.url, method: req.method,
        headers: { ...req.headers, host: t.host } }, (ur) => {
        const parts = [];
        ur.on('data', (c) => parts.push(c));
        ur.on('end', () => {
          let out = Buffer.concat(parts).toString();
          if (mode === 'trim') out = trimReply(out, st.opts.keep ?? 3);
          const h = { ...ur.headers };
          delete h['content-length'];
          delete h['transfer-encoding'];
          res.writeHead(ur.statusCode, h);
          res.end(out);
        });
      });
      up.on('error', () => req.socket.destroy());
      up.end(body);
    });
  });
  function arm(mode, count = 1, opts = {}) {
    st.mode = mode; st.count = count; st.opts = opts;
    if (mode !== 'hang') { for (const r of st.hung) r.socket && r.socket.destroy(); st.hung = []; }
  }
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => {
    const url = `http://127.0.0.1:${server.address().port}`;
    resolve({
      url,
      fault: arm,
      get seen() { return st.seen; },
      get faulted() { return st.faulted; },
      close: () => new Promise((r) => { arm('pass', 0); server.closeAllConnections?.(); server.close(() => r()); }),
    });
  }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [target, port] = process.argv.slice(2);
  if (!target) { console.error('usage: node fault_proxy.mjs TARGET_URL [PORT]'); process.exit(2); }
  const p = await startProxy(target, Number(port || 0));
  console.log(`proxy on ${p.url}`);
}
