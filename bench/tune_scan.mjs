// tune_scan.mjs — chooses the scan rule's parameters (web/access/scanorder.js
// DEFAULTS) on TRAINING stories, so bench_access.mjs reports held-out ones.
//
// Why a search: the rule's lead, block size, group order, phrase placement
// and split trade the top word's cost against everything else's; the
// writer's actions (bench_textentry --actions, seeds 1000..) say how often
// each is wanted. Cost: one scan-time evaluation per setting and action.
//
// Usage: node bench/tune_scan.mjs TRAIN.jsonl   (prints the best settings)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { selections, forkpointScan } = await import(pathToFileURL(path.join(repo, 'bench/bench_access.mjs')).href);
const file = process.argv[2];
if (!file || !fs.existsSync(file)) { console.error('usage: node bench/tune_scan.mjs TRAIN.jsonl'); process.exit(2); }
const acts = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.a);
const { out } = selections(acts);

const perms = (a) => (a.length <= 1 ? [a] : a.flatMap((x, i) => perms([...a.slice(0, i), ...a.slice(i + 1)]).map((p) => [x, ...p])));
const rest = ['preview', 'actions', 'story'];
const results = [];
for (const lead of [1, 2, 3, 4]) for (const block of [3, 4, 5, 6, 8]) for (const split of ['chain', 'blocks'])
  for (const phrases of ['after', 'end']) for (const p of perms(rest)) for (const typingFirst of [false, true]) {
    const order = ['panel', 'cloud', 'typing', ...p, 'toolbar'];
    const typingOrder = typingFirst ? ['panel', 'typing', 'cloud', ...p, 'toolbar'] : order;
    const opts = { lead, block, split, phrases, order, typingOrder };
    results.push({ opts, ms: forkpointScan(out, opts).ms });
  }
results.sort((a, b) => a.ms - b.ms);
for (const r of results.slice(0, 5)) console.log((r.ms / 1000).toFixed(0), 's', JSON.stringify(r.opts));
