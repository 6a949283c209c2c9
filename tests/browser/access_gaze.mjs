// access_gaze.mjs — the gaze and head pointer part of access_test.mjs:
// 9-point calibration and dwell driven by injected gaze streams (noisy,
// with saccades), "look, then confirm", the head pointer, and the camera
// path with Chromium's fake camera (a generated y4m with no face in it).
//
// Why injected features: a CI machine has no eyes in front of a camera, so
// the stream a face tracker would give is generated: a fixed unknown
// affine map from the screen point looked at to two features, Gaussian
// noise, saccades between targets. The page must learn the map by its own
// calibration, then select what the simulated person looks at. The test
// measures selection accuracy and time and prints them.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { chromeArgs } from './lib.mjs';

/* Starts the in-page gaze generator: window.__gaze.look(x, y) sets where
 * the simulated eye looks (a saccade of `sacMs` through the midpoint) and
 * opens it; samples go to fpAccess.feed at 30 Hz as features with noise
 * sigma px. Between calibration dots it looks at the dot.
 *
 * The person's time is the samples' own: each sample is stamped 33 ms
 * after the one before (a camera's capture times), however late a starved
 * renderer runs the timer, so a dwell is 600 ms of looking, not 600 ms of
 * a loaded machine's clock. After the page selects, the eye stays where it
 * was for lingerMs of its time (longer than the cooldown and a dwell: the
 * next fork's words appear under it, and the page must not select again
 * until the gaze has moved) and then closes until the next look(): the
 * test's own pace (a loaded machine's) must not become more staring. */
function startEye(page, sigma) {
  return page.evaluate((sigma) => {
    const W = innerWidth, H = innerHeight, TICK = 33;
    // the unknown map: features = A (x, y) + b, with a cross-term
    const f = (x, y) => [0.9 * (x / W - 0.5) + 0.15 * (y / H - 0.5), -0.7 * (y / H - 0.5) + 0.05 * (x / W - 0.5)];
    const gauss = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
    const sel = () => (window.fpAccess.pointer ? window.fpAccess.pointer.selections.length : 0);
    const g = window.__gaze = { x: W / 2, y: H / 2, from: null, t: performance.now(), t0: 0, sacMs: 60, sigma,
      on: true, lingerMs: 1500, seen: sel(), closeAt: null, samples: 0 };
    g.look = (x, y) => { g.from = [g.x, g.y]; g.x = x; g.y = y; g.t0 = g.t; g.on = true; g.closeAt = null; g.seen = sel(); };
    g.timer = setInterval(() => {
      if (!g.on) return;
      g.t += TICK;
      if (sel() !== g.seen) { g.seen = sel(); g.closeAt = g.t + g.lingerMs; }
      if (g.closeAt !== null && g.t >= g.closeAt) { g.on = false; g.closeAt = null; return; }
      const dot = document.querySelector('#fp-calib .dot');
      let x = g.x, y = g.y;
      if (dot) { const r = dot.getBoundingClientRect(); x = r.left + r.width / 2; y = r.top + r.height / 2; }
      else if (g.from && g.t - g.t0 < g.sacMs) { x = (g.from[0] + x) / 2; y = (g.from[1] + y) / 2; }
      const nx = x + g.sigma * gauss(), ny = y + g.sigma * gauss();
      g.samples++;
      window.fpAccess.feed({ features: f(nx, ny), t: g.t });
    }, TICK);
  }, sigma);
}

export async function run(h) {
  const { test, assert, sleep, start, state, waitChange } = h;
  const page = () => h.page();

  await test('gaze: 9-point calibration learns the injected map; its error sizes the targets', async () => {
    await start('access=gaze&source=inject');
    await page().evaluate(() => window.fpAccess.set('gaze', { dwellMs: 600, calibHoldMs: 900 }));
    await startEye(page(), 25);
    await page().evaluate(() => document.dispatchEvent(new CustomEvent('fp:calibrate')));
    await page().waitForSelector('#fp-calib', { timeout: 5000 });
    await page().waitForSelector('#fp-calib', { state: 'detached', timeout: 30000 });
    const m = await page().evaluate(() => ({ rms: window.fpAccess.pointer.map.rms,
      min: getComputedStyle(document.body).getPropertyValue('--fp-min-target') }));
    // the residual is the injected noise (25 px), give or take the sampling
    assert(m.rms > 10 && m.rms < 45, `calibration residual ${m.rms.toFixed(1)} px`);
    assert(parseInt(m.min, 10) >= 4 * 10, `targets grown: ${m.min}`);
  });

  /* The server's state once the page shows it and the cloud is not busy
   * (a state read while the next fork is on its way is not the fork the
   * person will look at). */
  async function settled(st) {
    for (let k = 0; ; k++) {
      assert(k < 200, `the page never showed version ${st.version}`);
      const ok = await page().evaluate((v) => document.getElementById('story').dataset.version === String(v) &&
        document.getElementById('cloud').getAttribute('aria-busy') !== 'true', st.version);
      const now = await state();
      if (ok && now.version === st.version) return st;
      st = now;
      await sleep(100);
    }
  }

  /* Looks at each goal in turn (saccade, then a noisy fixation) until the
   * page selects something; returns accuracy and mean time. */
  async function gazeWrite(forks, confirm) {
    // FP_CPU_THROTTLE=N runs the renderer N times slower (Chromium's CPU
    // throttling): the starved renderer of a loaded machine, on demand
    if (process.env.FP_CPU_THROTTLE) {
      const cdp = await page().context().newCDPSession(page());
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: Number(process.env.FP_CPU_THROTTLE) });
    }
    // eyes closed until the first goal: nothing is looked at before it
    await page().evaluate(() => { window.__gaze.on = false; document.getElementById('start-btn').click(); });
    await page().waitForSelector('#cloud .cand', { timeout: 60000 });
    const made = () => page().evaluate(() => window.fpAccess.pointer.selections.length);
    const made0 = await made();
    let st = await state(), right = 0, n = 0, ms = 0;
    for (let i = 0; i < forks && st.fork; i++) {
      st = await settled(st);
      if (!st.fork) break;
      await page().evaluate(() => window.fpAccess.pointer.refresh());
      const r = Math.min(st.fork.candidates.length - 1, [0, 2, 1, 3][i % 4]);
      // the cloud may be redrawn between the two reads: read until a box comes
      let box = null;
      for (let k = 0; k < 50 && !box; k++) {
        box = await page().locator(`#cloud .cand[data-index="${r}"]`).boundingBox().catch(() => null);
        if (!box) await sleep(100);
      }
      assert(box, `candidate ${r} is on the page (fork ${i})`);
      const want = st.fork.candidates[r].text, before = st.text;
      const t0 = Date.now();
      await page().evaluate(([x, y]) => window.__gaze.look(x, y), [box.x + box.width / 2, box.y + box.height / 2]);
      if (confirm) {
        await page().waitForFunction((w) => {
          const p = window.fpAccess.pointer; return p.hot && p.hot.it.el.dataset.index === String(w);
        }, r, { timeout: 10000 }).catch(() => {});
        await sleep(150);
        await page().keyboard.press('Space');
      }
      st = await waitChange(st.version, 20000);
      ms += Date.now() - t0; n++;
      // the person stares on at the chosen word while the next fork comes
      // in under it (dwell must not select there again), then looks away
      await page().waitForFunction(() => !window.__gaze.on, null, { timeout: 60000 });
      if (st.text.startsWith(before + want)) right++;
      else console.log(`# missed at fork ${i}: wanted ${JSON.stringify(want)} r=${r}, the story went on with ${JSON.stringify(st.text.slice(before.length, before.length + 20))}, last selections ${JSON.stringify(await page().evaluate(() => window.fpAccess.pointer.selections.slice(-2).map((s) => s.label)))}`);
    }
    // every selection the page made counts: one more than the looks is a
    // word chosen that nobody looked at (the Midas touch)
    const sel = (await made()) - made0;
    assert(n === forks, `${n} of ${forks} forks written`);
    return { acc: right / Math.max(n, sel), ms: ms / n, n, sel };
  }

  await test('gaze: dwell (600 ms) with a noisy stream and saccades picks what is looked at', async () => {
    const r = await gazeWrite(8, false);
    console.log(`# gaze dwell: ${r.n} looks, ${r.sel} selections, accuracy ${(r.acc * 100).toFixed(0)}%, ${r.ms.toFixed(0)} ms per selection (incl. the server)`);
    assert(r.acc >= 0.75, `accuracy ${r.acc}`);
  });

  await test('gaze: look, then confirm (a key selects what gaze highlights)', async () => {
    await start('access=gaze&source=inject&hybrid=1');
    await page().evaluate(() => window.fpAccess.set('gaze', { hybrid: true, calibHoldMs: 900 }));
    await startEye(page(), 25);
    await page().evaluate(() => window.fpAccess.pointer.map || window.fpAccess.pointer.calibrate());
    const r = await gazeWrite(6, true);
    console.log(`# gaze look-then-confirm: ${r.n} looks, ${r.sel} selections, accuracy ${(r.acc * 100).toFixed(0)}%, ${r.ms.toFixed(0)} ms per selection (incl. the server)`);
    assert(r.acc >= 0.8, `accuracy ${r.acc}`);
    const hows = await page().evaluate(() => window.fpAccess.pointer.selections.map((s) => s.how));
    assert(hows.length && hows.every((x) => x === 'key'), `selected by the switch only: ${hows}`);
  });

  await test('gaze: "no face" is shown and nothing is selected while the face is gone', async () => {
    const v = (await state()).version;
    await page().evaluate(() => { window.__gaze.on = false; window.fpAccess.feed({ face: false }); });
    assert(/No face/.test(await page().textContent('#fp-access-status')), 'no-face status');
    assert((await page().getAttribute('body', 'data-face')) === 'none', 'data-face none');
    await sleep(1200);   // two dwell times: nothing may fire without a face
    assert((await state()).version === v, 'nothing selected while the face was gone');
    await page().evaluate(() => { window.__gaze.on = true; });
    await sleep(200);
    assert((await page().getAttribute('body', 'data-face')) === 'yes', 'face back');
  });

  await test('head pointer: yaw and pitch move the pointer; dwell selects', async () => {
    await start('access=head&source=inject');
    await page().evaluate(() => window.fpAccess.set('head', { dwellMs: 500, hybrid: false }));
    await page().evaluate(() => localStorage.removeItem('fp-access-calib-head'));
    await page().evaluate(() => window.fpAccess.set('head', { dwellMs: 500, hybrid: false }));
    await page().evaluate(() => document.getElementById('start-btn').click());
    await page().waitForSelector('#cloud .cand', { timeout: 60000 });
    await sleep(300);
    await page().evaluate(() => window.fpAccess.pointer.refresh());
    let st = await state();
    const box = await page().locator('#cloud .cand[data-index="0"]').boundingBox();
    const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
    // the uncalibrated head map: x = W/2 - 2.5 W yaw, y = H/2 + 3 H pitch
    await page().evaluate(([cx, cy]) => {
      const yaw = -(cx - innerWidth / 2) / (2.5 * innerWidth), pitch = (cy - innerHeight / 2) / (3 * innerHeight);
      window.__head = setInterval(() => window.fpAccess.feed({ features: [yaw + 0.004 * (Math.random() - 0.5), pitch + 0.004 * (Math.random() - 0.5)] }), 33);
    }, [cx, cy]);
    const before = st.text, want = st.fork.candidates[0].text;
    st = await waitChange(st.version, 20000);
    await page().evaluate(() => clearInterval(window.__head));
    assert(st.text.startsWith(before + want), 'the head pointer chose the top word');
  });

  await test('camera: Chromium\'s fake camera runs through the face model; a frame without a face shows "no face"', async () => {
    // a 320x240 y4m of grey noise: no face in it
    const W = 320, H = 240, frames = 10;
    const file = path.join(h.tmp, 'noface.y4m');
    const parts = [Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\n`)];
    for (let i = 0; i < frames; i++) {
      const y = Buffer.alloc(W * H); for (let j = 0; j < y.length; j++) y[j] = 100 + ((j * 7 + i * 13) % 40);
      parts.push(Buffer.from('FRAME\n'), y, Buffer.alloc(W * H / 2, 128));
    }
    fs.writeFileSync(file, Buffer.concat(parts));
    const ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(h.tmp, 'cam-')), {
      executablePath: h.CHROMIUM, headless: true,
      args: chromeArgs('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
        `--use-file-for-fake-video-capture=${file}`),
      viewport: { width: 1366, height: 768 }, permissions: ['camera'],
    });
    const p = ctx.pages()[0] || await ctx.newPage();
    const errs = [], reqs = [];
    p.on('pageerror', (e) => errs.push(e.message));
    p.on('request', (r) => reqs.push(r.url()));
    try {
      await p.goto(`${h.srv().url}?access=head`);
      await p.waitForFunction(() => document.body.dataset.face === 'none' || document.body.dataset.face === 'error',
        null, { timeout: 120000 });
      const face = await p.getAttribute('body', 'data-face');
      const status = await p.textContent('#fp-access-status');
      assert(face === 'none', `camera state ${face}: ${status}`);
      assert(/No face/.test(status), `status: ${status}`);
      const frames = await p.evaluate(() => window.fpAccess.pointer.cam.frames());
      assert(frames >= 1, 'frames went through the model');
      const foreign = reqs.filter((u) => !u.startsWith(h.srv().url));
      assert(!foreign.length, `requests elsewhere: ${foreign.slice(0, 3)}`);
      assert(!errs.length, errs.join('; '));
    } finally { await ctx.close(); }
  });
}
