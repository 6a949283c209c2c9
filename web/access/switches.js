/*
 * switches.js — everything that can be a switch: a key, a mouse button, a
 * touch anywhere, a gamepad button (Gamepad API), or a device's event over
 * the session's WebSocket ({"type":"switch","button":"select"|"step"},
 * relayed by the server from a device's {"op":"switch"}: docs/API.md).
 *
 * Why one place: scanning and the hybrid "look, then confirm" both need
 * "the person pressed" from whatever their body can work; each source maps
 * its press to 'select' or 'step' and calls one handler. While a switch
 * mode is on, trusted clicks and taps are the switch, not a click on
 * whatever lies under the pointer (the scanner's own el.click() is not
 * trusted, so it passes). Gamepad polling costs one getGamepads() call per
 * 50 ms while a pad is connected.
 */

export class Switches {
  /* opts: { keys: {select: [codes], step: [codes]}, mouse, touch, gamepad, device,
   *         twoZones (touch: left half steps, right half selects) } ; on(kind, source) */
  constructor(opts, on) {
    this.o = opts; this.on = on;
    this.padPrev = []; this.padTimer = 0; this.ws = null; this.wsSid = null; this.wsTimer = 0;
    this.h = {
      key: (e) => this.onKey(e),
      down: (e) => this.onPointer(e),
      click: (e) => { if (e.isTrusted && this.claims(e)) { e.preventDefault(); e.stopImmediatePropagation(); } },
      ctx: (e) => { if (this.o.mouse && this.claims(e)) e.preventDefault(); },
      hash: () => this.connect(),
    };
  }

  start() {
    addEventListener('keydown', this.h.key, true);
    addEventListener('pointerdown', this.h.down, true);
    addEventListener('click', this.h.click, true);
    addEventListener('contextmenu', this.h.ctx, true);
    addEventListener('hashchange', this.h.hash);
    if (this.o.gamepad) this.padTimer = setInterval(() => this.pollPads(), 50);
    if (this.o.device) this.connect();
  }

  stop() {
    removeEventListener('keydown', this.h.key, true);
    removeEventListener('pointerdown', this.h.down, true);
    removeEventListener('click', this.h.click, true);
    removeEventListener('contextmenu', this.h.ctx, true);
    removeEventListener('hashchange', this.h.hash);
    clearInterval(this.padTimer);
    clearTimeout(this.wsTimer);
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
  }

  /* Events on our own settings controls are the person working them, not
   * the switch. */
  claims(e) {
    const t = e.target;
    if (document.body.dataset.fpRecording) return false;   // settings.js waits for a key to set
    return !(t && t.closest && t.closest('#access-settings :is(input, select), #fp-access-dialog :is(input, select)'));
  }

  onKey(e) {
    if (!e.isTrusted) return;   // our own letter board's Enter, a script's key
    if (!this.claims(e) || e.repeat) { if (e.repeat && this.isSwitchKey(e)) e.preventDefault(); return; }
    const k = this.o.keys;
    const kind = k.select.includes(e.code) || k.select.includes(e.key) ? 'select'
      : k.step.includes(e.code) || k.step.includes(e.key) ? 'step' : null;
    if (!kind) return;
    e.preventDefault(); e.stopImmediatePropagation();
    this.on(kind, 'key');
  }
  isSwitchKey(e) {
    const k = this.o.keys;
    return [...k.select, ...k.step].some((x) => x === e.code || x === e.key);
  }

  onPointer(e) {
    if (!e.isTrusted || !this.claims(e)) return;
    if (e.pointerType === 'touch' || e.pointerType === 'pen') {
      if (!this.o.touch) return;
      e.preventDefault();
      const kind = this.o.twoZones && e.clientX < innerWidth / 2 ? 'step' : 'select';
      this.on(kind, 'touch');
    } else if (e.pointerType === 'mouse') {
      if (!this.o.mouse) return;
      e.preventDefault();
      this.on(e.button === 2 ? 'step' : 'select', 'mouse');
    }
  }

  /* Button 0 (A) selects, button 1 (B) steps; a press is an edge. */
  pollPads() {
    const pads = navigator.getGamepads ? navigator.getGamepads() : [];
    for (const p of pads) {
      if (!p) continue;
      const prev = this.padPrev[p.index] || [];
      p.buttons.forEach((b, i) => {
        if (b.pressed && !prev[i]) this.on(i === 1 ? 'step' : 'select', 'gamepad');
      });
      this.padPrev[p.index] = p.buttons.map((b) => b.pressed);
    }
  }

  /* Listens on the open session's WebSocket for device switch events. */
  connect() {
    if (!this.o.device) return;
    const m = /^#s=([0-9a-f]{16})$/.exec(location.hash);
    const sid = m ? m[1] : null;
    if (sid === this.wsSid && this.ws) return;
    if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
    this.wsSid = sid;
    if (!sid) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/api/sessions/${sid}/ws`);
    this.ws = ws;
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === 'switch' && (msg.button === 'select' || msg.button === 'step')) this.on(msg.button, 'device');
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.wsTimer = setTimeout(() => this.connect(), 2000);
    };
  }
}
