// hub.mjs — a loopback HTTP server laid out like the Hugging Face hub, for
// tests/cli/test_hf.sh (--hf, `forkpoint model pull`).
//
// It answers what fp_hf_pull asks, in the hub's own shapes:
//   GET /api/models/OWNER/REPO/tree/main?recursive=true  the file listing (type, oid,
//       size, path, and lfs {oid: sha256, size, pointerSize} for LFS files);
//       401 {"error":"Repository not found"} for a repository it does not have
//   GET /OWNER/REPO/resolve/main/FILE  302 to the storage URL, with x-linked-etag
//       (the LFS sha256, quoted), x-linked-size and x-repo-commit, as the hub does
//   GET /cdn/OWNER/REPO/FILE  the bytes, honouring Range (206, Content-Range; 416)
// Repositories, all built from the real model file given as argv[2]:
//   test/tiny-GGUF   stories260K-Q8_0.gguf and stories260K-Q4_K_M.gguf (the model's
//                    bytes), mmproj-stories260K-Q8_0.gguf, README.md (not LFS)
//   test/one-GGUF    one file with no quant in its name (stories260K.gguf)
//   test/drop-GGUF   stories260K-Q4_K_M.gguf: the first transfer is cut after
//                    ~40% (the connection is destroyed), later ones are whole
//   test/bad-GGUF    stories260K-Q4_K_M.gguf whose published sha256 is wrong
//   test/etag-GGUF   its listing has no lfs oid; resolve's x-linked-etag is a wrong sha256
//   test/split-GGUF  big-Q4_K_M-00001-of-00002.gguf and -00002-of-00002 (halves)
// Every request is appended to argv[3] as "METHOD PATH RANGE" lines. The port
// is printed on stdout once listening.
import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';

const [, , modelPath, logPath] = process.argv;
const model = fs.readFileSync(modelPath);
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const gitOid = (b) => crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const half = Math.floor(model.length / 2);
const readme = Buffer.from('# test repository\n');

// name -> { bytes, lfs: published sha256 or null (not an LFS file) }
const repos = {
  'test/tiny-GGUF': {
    'README.md': { bytes: readme, lfs: null },
    'stories260K-Q8_0.gguf': { bytes: model },
    'stories260K-Q4_K_M.gguf': { bytes: model },
    'mmproj-stories260K-Q8_0.gguf': { bytes: model },
  },
  'test/one-GGUF': { 'stories260K.gguf': { bytes: model }, '.gitattributes': { bytes: readme, lfs: null } },
  'test/drop-GGUF': { 'stories260K-Q4_K_M.gguf': { bytes: model, drop: true } },
  'test/bad-GGUF': { 'stories260K-Q4_K_M.gguf': { bytes: model, lfs: sha(Buffer.from('not the model')) } },
  // the listing names no sha256: the one of resolve's x-linked-etag (here a wrong one) is checked
  'test/etag-GGUF': { 'stories260K-Q4_K_M.gguf': { bytes: model, lfs: sha(Buffer.from('other')), unlisted: true } },
  'test/split-GGUF': {
    'big-Q4_K_M-00001-of-00002.gguf': { bytes: model.subarray(0, half) },
    'big-Q4_K_M-00002-of-00002.gguf': { bytes: model.subarray(half) },
  },
};
for (const files of Object.values(repos))
  for (const f of Object.values(files)) if (f.lfs === undefined) f.lfs = sha(f.bytes);
const dropped = new Set();

function tree(files) {
  return Object.entries(files).map(([path, f]) => {
    const e = { type: 'file', oid: gitOid(f.bytes), size: f.bytes.length, path };
    if (f.lfs && !f.unlisted) e.lfs = { oid: f.lfs, size: f.bytes.length, pointerSize: 134 };
    return e;
  });
}

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  fs.appendFileSync(logPath, `${req.method} ${url.pathname} ${req.headers.range || '-'}\n`);
  let m = url.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/tree\/main$/);
  if (m) {
    const files = repos[m[1]];
    if (!files) return json(res, 401, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    return json(res, 200, tree(files));
  }
  m = url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/);
  if (m) {
    const f = repos[m[1]]?.[decodeURIComponent(m[2])];
    if (!f) return json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
    const headers = { Location: `/cdn/${m[1]}/${m[2]}`, 'x-repo-commit': '0123456789abcdef0123456789abcdef01234567',
      'x-linked-size': String(f.bytes.length) };
    if (f.lfs) headers['x-linked-etag'] = `"${f.lfs}"`;
    else headers.etag = `"${gitOid(f.bytes)}"`;
    res.writeHead(302, headers);
    return res.end();
  }
  m = url.pathname.match(/^\/cdn\/([^/]+\/[^/]+)\/(.+)$/);
  if (m) {
    const key = `${m[1]}/${m[2]}`;
    const f = repos[m[1]]?.[decodeURIComponent(m[2])];
    if (!f) return json(res, 404, { error: 'not found' });
    let start = 0;
    const r = (req.headers.range || '').match(/^bytes=(\d+)-$/);
    if (r) start = Number(r[1]);
    if (start >= f.bytes.length) {
      res.writeHead(416, { 'Content-Range': `bytes */${f.bytes.length}` });
      return res.end();
    }
    const body = f.bytes.subarray(start);
    res.writeHead(r ? 206 : 200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length,
      'Accept-Ranges': 'bytes', ...(r ? { 'Content-Range': `bytes ${start}-${f.bytes.length - 1}/${f.bytes.length}` } : {}) });
    if (f.drop && !dropped.has(key)) {
      dropped.add(key);
      const cut = Math.floor(body.length * 0.4);
      res.write(body.subarray(0, cut), () => setTimeout(() => res.socket.destroy(), 50));
      return;
    }
    return res.end(body);
  }
  json(res, 404, { error: 'not found' });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
