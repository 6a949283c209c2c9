// crossorigin_test.mjs — a real page from another origin, in Debian's
// chromium, tries to drive forkpoint-serve: cross-site request forgery (a
// "simple" text/plain POST needs no CORS preflight, so the browser sends
// it) and DNS rebinding (a foreign name that resolves to 127.0.0.1, so the
// page's requests count as same-origin for the browser). Both must get 403
// and create nothing.
//
// Why a browser: what matters is what a browser really sends (Origin and
// Host headers, no preflight for text/plain), not what a test client would.
// The attacker's page is served by a tiny node http server on a second
// loopback port; chromium's --host-resolver-rules maps evil.test to
// 127.0.0.1 to play the rebinding attacker.
// Prints "ok - ..." lines and "N passed, N failed".
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { SERVE, CHROMIUM, chromeArgs, assert, harness, startServer as serve, tmpDir } from './lib.mjs';

const tmp = tmpDir('fp-xorigin-');
const { test, run } = harness();
const startServer = (extra, db) => serve({ dir: tmp, extra, db, clearToken: true });

/* The attacker: a page that POSTs to the target as soon as it loads. */
function attackerServer(targetUrl, token) {
  const q = token ? `?token=${token}` : '';
  const html = `<!doctype html><title>evil</title><script>
    window.result = 'pending';
    fetch(${JSON.stringify(targetUrl + 'api/sessions' + q)}, { method: 'POST', mode: 'no-cors',
      headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ prompt: 'pwned by a page' }) })
      .then(() => { window.result = 'sent'; }, (e) => { window.result = 'failed: ' + e.message; });
  </script>`;
  const s = http.createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end(html); });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve({ s, port: s.address().port })));
}

async function sessions(srv, token) {
  const r = await fetch(`${srv.url}api/sessions`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  return (await r.json()).sessions;
}

let ctx;
const kids = [];
async function main() {
  console.log(`# server ${SERVE}\n# chromium ${CHROMIUM}`);
  const srv = await startServer([], 'a.db');
  kids.push(srv.child);
  const tsrv = await startServer(['--token', 's3cret'], 'b.db');
  kids.push(tsrv.child);
  ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, 'chrome-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: chromeArgs('--host-resolver-rules=MAP evil.test 127.0.0.1'),
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(30000);
  const statuses = [];
  page.on('response', (r) => { if (r.url().includes('/api/')) statuses.push([r.request().method(), r.url(), r.status()]); });

  await test('a page on another loopback port: its text/plain POST gets 403, no session is created', async () => {
    const evil = await attackerServer(srv.url);
    try {
      statuses.length = 0;
      await page.goto(`http://127.0.0.1:${evil.port}/`);
      await page.waitForFunction(() => window.result !== 'pending');
      const post = statuses.find((s) => s[0] === 'POST');
      assert(post, `the browser sent the POST (${await page.evaluate(() => window.result)})`);
      assert(post[2] === 403, `status ${post[2]}`);
      const list = await sessions(srv);
      assert(!list.some((s) => /pwned/.test(s.title)), `no session: ${JSON.stringify(list)}`);
    } finally { evil.s.close(); }
  });

  await test('DNS rebinding: a page at evil.test:PORT (resolving to 127.0.0.1) gets 403 for the page and its POST', async () => {
    statuses.length = 0;
    const resp = await page.goto(`http://evil.test:${srv.port}/`);
    assert(resp.status() === 403, `page status ${resp.status()}`);
    // same-origin for the browser: the Origin matches the Host, only the Host check stops it
    const st = await page.evaluate(async () => (await fetch('/api/sessions', { method: 'POST',
      headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ prompt: 'pwned by rebinding' }) })).status);
    assert(st === 403, `POST status ${st}`);
    const list = await sessions(srv);
    assert(!list.some((s) => /pwned/.test(s.title)), `no session: ${JSON.stringify(list)}`);
  });

  await test('with --token the Host is checked too: a rebinding page that knows the token gets 403', async () => {
    const resp = await page.goto(`http://evil.test:${tsrv.port}/?token=s3cret`);
    assert(resp.status() === 403, `page status ${resp.status()}`);
    const st = await page.evaluate(async () => (await fetch('/api/sessions?token=s3cret', { method: 'POST',
      headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ prompt: 'pwned with token' }) })).status);
    assert(st === 403, `POST status ${st}`);
    const list = await sessions(tsrv, 's3cret');
    assert(!list.some((s) => /pwned/.test(s.title)), `no session: ${JSON.stringify(list)}`);
  });

  await test('the server\'s own page still works (same origin POST creates a session)', async () => {
    await page.goto(srv.url);
    const st = await page.evaluate(async () => (await fetch('/api/sessions', { method: 'POST',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: 'Once upon a time', settings: { k: 4, beam_width: 8, lookahead: 4 } }) })).status);
    assert(st === 201, `status ${st}`);
  });
}

await run(main, async () => {
  if (ctx) await ctx.close().catch(() => {});
  for (const k of kids) k.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
});
