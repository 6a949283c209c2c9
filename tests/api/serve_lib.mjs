// serve_lib.mjs — starting and stopping a forkpoint-serve for the API tests
// that spawn their own servers (oai_test, remote_test): one way to do it.
import { spawn } from 'node:child_process';
import path from 'node:path';

/* Starts SERVE on a free port with its own database in tmp, quiet, one
 * thread, model; resolves with { child, url, stderr, exited } once it
 * listens, rejects (with exit and stderr) if it exits first. */
export function startServe(serve, tmp, model, extra = []) {
  const args = ['--port', '0', '--db', path.join(tmp, `db${Math.random()}.db`), '--quiet', '--threads', '1', '--model', model, ...extra];
  const env = { ...process.env }; delete env.FORKPOINT_TOKEN;
  const child = spawn(serve, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const srv = { child, stderr: '' };
  child.stderr.on('data', (d) => { srv.stderr += d; });
  srv.exited = new Promise((res) => child.on('exit', (code, sig) => res({ code, sig })));
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('server did not start: ' + srv.stderr.slice(-400))), 180000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m && !srv.url) { srv.url = m[1].replace(/\/$/, ''); clearTimeout(t); resolve(srv); }
    });
    srv.exited.then((e) => { clearTimeout(t); if (!srv.url) reject(Object.assign(new Error(`exited ${JSON.stringify(e)}: ${srv.stderr.slice(-600)}`), { exit: e, stderr: srv.stderr })); });
  });
}

/* SIGTERM, then the exit status: { code, sig }. */
export async function stopServe(srv) {
  srv.child.kill('SIGTERM');
  return srv.exited;
}
