// models_test.mjs — the model picker (web/page/models.js) in Debian's
// chromium, on two real models: the page says which model runs (name, size,
// context, chat template), the picker switches to TinyStories-656K while the
// server runs and a new story is written with it, and reopening the older
// story (written with stories260K) switches back, which the page shows.
// Prints "ok - ..." lines and "N passed, N failed".
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { repo, CHROMIUM, chromeArgs, assert, tmpDir, harness, startServer } from './lib.mjs';

const MODELS = process.env.FP_TEST_MODELS || path.join(path.dirname(repo), 'shared/models');
const tmp = tmpDir('fp-picker-');
const dir = path.join(tmp, 'models');
fs.mkdirSync(dir);
const A = path.join(dir, 'stories260K.gguf'), B = path.join(dir, 'tinystories-656k-q8_0.gguf');
fs.symlinkSync(path.join(MODELS, 'stories260K.gguf'), A);
fs.symlinkSync(path.join(MODELS, 'tinystories-656k/tinystories-656k-q8_0.gguf'), B);

const { test, run } = harness();

const running = async (srv) => (await (await fetch(`${srv.url}api/models`)).json()).current.path;

let ctx, srv;
async function main() {
  srv = await startServer({ dir: tmp, db: 'm.db', clearToken: true, model: A, extra: ['--models-dir', dir] });
  ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmp, 'chrome-')), {
    executablePath: CHROMIUM, headless: true, args: chromeArgs(),
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(30000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let firstId = '';

  await test('the page says which model runs: name, size, context, chat template', async () => {
    await page.goto(srv.url);
    await page.waitForFunction(() => /context 2048/.test(document.querySelector('#start .model-facts').textContent));
    const name = await page.textContent('.model-tag .model-name');
    const facts = await page.textContent('#start .model-facts');
    assert(name === 'stories260K', `name ${name}`);
    assert(facts === '1.2 MB · context 2048 · chat template: no', `facts ${facts}`);
    const opts = await page.$$eval('#model-pick option', (o) => o.map((x) => [x.value, x.selected]));
    assert(opts.length === 2 && opts.some(([v, s]) => v.endsWith('/stories260K.gguf') && s), `picker ${JSON.stringify(opts)}`);
  });

  await test('a story written with stories260K', async () => {
    await page.click('#start-btn');
    await page.waitForSelector('#cloud button');
    firstId = (/#s=([0-9a-f]{16})/.exec(page.url()) || [])[1];
    assert(firstId, `story id in the address: ${page.url()}`);
  });

  await test('the picker switches to TinyStories-656K while the server runs; a new story uses it', async () => {
    await page.click('#btn-stories');
    await page.click('#btn-new-story');
    await page.waitForSelector('#start:not([hidden])');
    await page.selectOption('#model-pick', B);
    await page.click('#model-switch');
    await page.waitForFunction(() => /Now writing with TinyStories-656K/.test(document.querySelector('#model-msg').textContent));
    assert((await page.textContent('.model-tag .model-name')) === 'TinyStories-656K', 'tag');
    assert((await page.textContent('#start .model-facts')) === '750 KB · context 512 · chat template: no', 'facts');
    assert((await running(srv)) === B, 'the server runs it');
    await page.fill('#prompt', 'Once upon a time, there was a little');
    await page.click('#start-btn');
    await page.waitForSelector('#cloud button');
    assert(!page.url().includes(firstId), 'a new story');
    await page.screenshot({ path: path.join(repo, 'build/test-output/models-picker.png') });
  });

  await test('reopening the first story switches back to its model, and the page shows it', async () => {
    await page.click('#btn-stories');
    await page.waitForSelector('#story-list li');
    const note = await page.$$eval('#story-list li small', (l) => l.map((x) => x.textContent));
    assert(note.some((t) => /written with stories260K\.gguf/.test(t)), `the list names the other model: ${note}`);
    await page.evaluate((id) => { location.hash = `#s=${id}`; }, firstId);
    await page.waitForFunction(() => document.querySelector('.model-tag .model-name').textContent === 'stories260K');
    assert((await running(srv)) === A, 'the server runs stories260K again');
  });

  await test('no script errors on the page', async () => { assert(errors.length === 0, errors.join('; ')); });
}

await run(main, async () => {
  if (ctx) await ctx.close().catch(() => {});
  if (srv) srv.child.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
}, 'setup');
