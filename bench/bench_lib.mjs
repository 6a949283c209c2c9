// bench_lib.mjs — what the Node benchmarks under bench/ share: the repo's
// paths, starting processes (killed at exit), a free port, JSON POSTs and
// quantiles. No npm packages.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const pick = (...c) => c.find((p) => p && fs.existsSync(p));
export const SERVE = pick(process.env.FORKPOINT_SERVE, `${repo}/build/release/forkpoint-serve`);
export const MODEL = pick(process.env.FP_TEST_MODELS && path.join(process.env.FP_TEST_MODELS, 'stories260K.gguf'),
  path.join(path.dirname(repo), 'shared/models/stories260K.gguf'));
export const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const kids = [];

export const freePort = () => new Promise((res) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});

/* Starts cmd; resolves with the child once its stdout matches ready. */
export function start(cmd, args, ready) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  kids.push(child);
  let out = '', err = '';
  child.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    if (!ready) { resolve(child); return; }
    child.stdout.on('data', (d) => { out += d; if (ready.test(out)) resolve(child); });
    child.on('exit', (c) => reject(new Error(`${cmd} exited ${c}: ${err.slice(-400)}`)));
  });
}

/* SIGTERM to every child still running, waiting for each to exit. */
export async function stopAll() {
  await Promise.all(kids.filter((k) => k.exitCode === null && k.signalCode === null)
    .map((k) => new Promise((r) => { k.on('exit', r); k.kill('SIGTERM'); })));
}

export async function post(base, p, body) {
  const r = await fetch(base + p, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

/* The p-quantile of a (0 <= p <= 1). */
export const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
