/*
 * camera.js — the camera as a pointer source: @vladmandic/human (MIT,
 * embedded in the binary below /vendor/human/, no network) finds the face,
 * its mesh and irises in each frame; this file turns them into features
 * for calibrate.js: gaze (the iris-based gaze bearing and strength plus
 * head yaw and pitch) or head (yaw and pitch only), and reports "no face".
 *
 * Why features and not a screen point: every face and camera differ, so
 * the mapping to the screen is learned by the 9-point calibration.
 * Backend: WebGL when the browser has it, else the CPU (slow, but the
 * detector alone, which runs while there is no face, is cheap).
 * Cost: one detection per animation frame (the library skips frames
 * itself when the face is still).
 */

let human = null;

/* Loads the library and models once. Throws with a clear message when
 * the binary was built without them. */
async function load() {
  if (human) return human;
  let mod;
  try { mod = await import('/vendor/human/dist/human.esm.js'); } catch (e) {
    throw new Error('camera gaze is not built in (run scripts/setup.sh, then rebuild)');
  }
  const H = mod.Human || mod.default;
  const webgl = (() => { try { return !!document.createElement('canvas').getContext('webgl2'); } catch (e) { return false; } })();
  human = new H({
    modelBasePath: '/vendor/human/models/', backend: webgl ? 'webgl' : 'cpu', debug: false, async: true, warmup: 'none',
    cacheModels: false, filter: { enabled: false }, gesture: { enabled: false },
    face: { enabled: true, detector: { enabled: true, rotation: false, maxDetected: 1, modelPath: 'blazeface.json' },
      mesh: { enabled: true, modelPath: 'facemesh.json' }, iris: { enabled: true, modelPath: 'iris.json' },
      emotion: { enabled: false }, description: { enabled: false }, antispoof: { enabled: false },
      liveness: { enabled: false }, attention: { enabled: false } },
    body: { enabled: false }, hand: { enabled: false }, object: { enabled: false }, segmentation: { enabled: false },
  });
  await human.load();
  return human;
}

/* Features of one face result, or null. */
export function features(face, kind) {
  const r = face && face.rotation;
  if (!r || !r.angle) return null;
  const head = [r.angle.yaw, r.angle.pitch];
  if (kind === 'head') return head;
  const g = r.gaze || { bearing: 0, strength: 0 };
  return [g.strength * Math.sin(g.bearing), g.strength * Math.cos(g.bearing), ...head];
}

/* Starts the camera; calls onFeatures(f) per frame with a face and
 * onFace(bool) when a face appears or goes. Returns { stop(), video }. */
export async function startCamera(kind, onFeatures, onFace, onError) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error('this browser gives no camera');
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, facingMode: 'user' }, audio: false });
  const video = document.createElement('video');
  video.id = 'fp-camera';
  video.muted = true; video.playsInline = true; video.srcObject = stream;
  video.setAttribute('aria-hidden', 'true');
  video.style.cssText = 'position:fixed;right:8px;bottom:8px;width:120px;opacity:.6;z-index:2147482999;pointer-events:none;transform:scaleX(-1)';
  document.body.appendChild(video);
  await video.play();
  let h;
  try { h = await load(); } catch (e) { stream.getTracks().forEach((t) => t.stop()); video.remove(); throw e; }
  let running = true, seen = null, frames = 0;
  const loop = async () => {
    if (!running) return;
    try {
      const res = await h.detect(video);
      frames++;
      const face = res.face && res.face[0];
      const f = face && face.score > 0.5 ? features(face, kind) : null;
      if ((f !== null) !== seen) { seen = f !== null; onFace(seen); }
      if (f) onFeatures(f);
    } catch (e) { if (onError) onError(e); }
    if (running) requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
  return {
    video, frames: () => frames,
    stop() { running = false; stream.getTracks().forEach((t) => t.stop()); video.remove(); },
  };
}
