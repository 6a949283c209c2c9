// nginx.mjs — nginx with examples/deploy/nginx.conf, for the deploy tests
// (tests/deploy/deploy_test.mjs) and benchmark (bench/bench_deploy.mjs).
//
// Why one place: both must run the very config docs/deploy.md shows, filled
// in the same way: @PREFIX@ (a folder of its own for pid, logs and
// buffers), @LISTEN@ and one `server` line per instance at @SERVERS@.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/* Starts nginx in dir (made here) listening on `listen` ("127.0.0.1:PORT")
 * in front of addrs (["127.0.0.1:PORT", ...]). Returns { child, stderr,
 * exit, exited }; stop it with SIGQUIT or SIGTERM (never SIGKILL: its
 * master ends the workers only when asked). */
export function startNginx(dir, listen, addrs) {
  fs.mkdirSync(dir, { recursive: true });
  // nginx's workers (nobody, when started as root) write their buffers
  // here: dir and the (temporary) folder it is in must be reachable
  fs.chmodSync(path.dirname(dir), 0o755);
  fs.chmodSync(dir, 0o755);
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
    fs.chmodSync(path.join(dir, d), 0o777);
  }
  const servers = addrs.map((a) => `        server ${a} max_fails=1 fail_timeout=10s;`).join('\n');
  const conf = fs.readFileSync(path.join(repo, 'examples/deploy/nginx.conf'), 'utf8')
    .replace(/^@SERVERS@$/m, servers).replaceAll('@PREFIX@', dir).replaceAll('@LISTEN@', listen);
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir, '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { child, stderr: '', exit: null };
  child.stderr.on('data', (d) => { p.stderr += d; });
  p.exited = new Promise((r) => child.on('exit', (code, sig) => { p.exit = { code, sig }; r(p.exit); }));
  return p;
}
