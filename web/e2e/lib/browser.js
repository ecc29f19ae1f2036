// Debian's Chromium driven by playwright-core: headless, fake camera and
// microphone, a fresh context (profile) per page, every console error and
// uncaught page error recorded so a test can insist there were none.

import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';
import os from 'node:os';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const BASE_ARGS = [
  '--use-fake-device-for-media-stream',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Default bound for every wait on a page. */
export const WAIT_MS = 20000;

/**
 * @param {object} [o]
 * @param {boolean} [o.fakeUi=true]  auto-accept the camera prompt; without it the prompt is refused
 * @param {boolean} [o.fakeDevice=true]  a fake camera and microphone; without it there are none
 */
export async function launchChromium({ fakeUi = true, fakeDevice = true } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);
  let args = BASE_ARGS.slice();
  if (!fakeDevice) args = args.filter((a) => a !== '--use-fake-device-for-media-stream');
  if (fakeUi) args.push('--use-fake-ui-for-media-stream');
  // Chromium offers no loopback ICE candidates by default; on a machine with
  // no other network interface two pages could then never connect.
  if (!hasNonLoopbackInterface()) args.push('--allow-loopback-in-peer-connection');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 30000 });
}

function hasNonLoopbackInterface() {
  return Object.values(os.networkInterfaces())
    .flat()
    .some((i) => i && !i.internal);
}

/** One page in its own fresh browser context, with its errors recorded. */
export class TestPage {
  /**
   * @param {import('playwright-core').Browser} browser
   * @param {string} name  used in reports and screenshot file names
   * @param {object} [contextOptions]  e.g. {viewport, permissions}
   */
  static async open(browser, name, contextOptions = {}) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, ...contextOptions });
    // Keep every RTCPeerConnection the page makes, for getStats().
    await context.addInitScript(() => {
      const Native = window.RTCPeerConnection;
      if (!Native) return;
      window.__rvcPeers = [];
      class Tracked extends Native {
        constructor(...args) {
          super(...args);
          window.__rvcPeers.push(this);
        }
      }
      window.RTCPeerConnection = Tracked;
    });
    await context.addInitScript(sampleRemoteFrameSource);
    // Every state the status line goes through, in order (a reconnect may
    // last less than a polling interval).
    await context.addInitScript(() => {
      window.__rvcStates = [];
      document.addEventListener('DOMContentLoaded', () => {
        const status = document.getElementById('status');
        if (!status) return;
        const note = () => {
          const v = status.dataset.state;
          if (window.__rvcStates.at(-1) !== v) window.__rvcStates.push(v);
        };
        note();
        new MutationObserver(note).observe(status, { attributes: true, attributeFilter: ['data-state'] });
      });
    });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    return new TestPage(name, context, page);
  }

  constructor(name, context, page) {
    this.name = name;
    this.context = context;
    this.page = page;
    /** Console errors and uncaught exceptions: each one fails the test. */
    this.errors = [];
    /** Everything the page logged, for failure reports. */
    this.console = [];
    /** URLs of every WebSocket the page opened. */
    this.sockets = [];
    page.on('console', (msg) => {
      const line = `[${msg.type()}] ${msg.text()}`;
      this.console.push(line);
      if (msg.type() === 'error') this.errors.push(`console error: ${msg.text()}`);
    });
    page.on('pageerror', (err) => {
      this.console.push(`[pageerror] ${err.stack || err.message}`);
      this.errors.push(`uncaught: ${err.stack || err.message}`);
    });
    page.on('websocket', (ws) => this.sockets.push(ws.url()));
  }

  goto(url) {
    return this.page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });
  }

  /** The status line's machine-readable state. */
  state() {
    return this.page.getAttribute('#status', 'data-state');
  }

  statusText() {
    return this.page.textContent('#status');
  }

  /** Wait until the status line is in one of `states`. */
  async waitForState(states, timeout = WAIT_MS) {
    const list = Array.isArray(states) ? states : [states];
    try {
      await this.page.waitForFunction(
        (wanted) => wanted.includes(document.getElementById('status')?.dataset.state),
        list,
        { timeout, polling: 100 },
      );
    } catch (err) {
      const now = await this.describe();
      throw new Error(`${this.name}: status never became ${list.join('|')} within ${timeout} ms; it is ${now}`, { cause: err });
    }
  }

  /** How many status-line states were seen so far (a mark for `waitForStates`). */
  statesSeen() {
    return this.page.evaluate(() => window.__rvcStates.length);
  }

  /** Wait until the status line went through `sequence` (in order, others between allowed) after `mark`. */
  async waitForStates(sequence, mark = 0, timeout = WAIT_MS) {
    try {
      await this.page.waitForFunction(
        ([seq, from]) => {
          let i = 0;
          for (const st of window.__rvcStates.slice(from)) if (st === seq[i]) i += 1;
          return i === seq.length && window.__rvcStates.at(-1) === seq.at(-1);
        },
        [sequence, mark],
        { timeout, polling: 100 },
      );
    } catch (err) {
      const seen = await this.page.evaluate((from) => window.__rvcStates.slice(from), mark).catch(() => '?');
      throw new Error(`${this.name}: status never went ${sequence.join(' → ')} within ${timeout} ms; it went ${seen}`, { cause: err });
    }
  }

  /** The ICE username fragment of the page's last peer connection (changes on an ICE restart). */
  iceUfrag() {
    return this.page.evaluate(() => {
      const pc = window.__rvcPeers.at(-1);
      const m = pc && pc.localDescription && pc.localDescription.sdp.match(/a=ice-ufrag:(\S+)/);
      return m ? m[1] : null;
    });
  }

  async describe() {
    try {
      return await this.page.evaluate(() => {
        const s = document.getElementById('status');
        return `${s.dataset.state} ("${s.textContent.trim()}")`;
      });
    } catch (err) {
      return `unknown (${err.message})`;
    }
  }

  async start(name) {
    if (name) await this.page.fill('#name', name);
    await this.page.click('#start');
  }

  /**
   * The stranger's video and sound really arrive: the video has a picture
   * (videoWidth > 0) and its clock moves on; its frames are not black (drawn
   * to a canvas, they have light) and they change (the fake camera
   * animates: a frozen track shows the same frame forever); the decoder
   * keeps producing frames; and the audio carries energy (a muted or
   * disabled microphone sends silence).
   */
  async expectRemoteVideoPlaying(timeout = WAIT_MS) {
    const video = () => {
      const v = document.getElementById('remote-video');
      return { w: v.videoWidth, t: v.currentTime, paused: v.paused, ready: v.readyState };
    };
    let step = 'a picture';
    try {
      await this.page.waitForFunction(
        () => {
          const v = document.getElementById('remote-video');
          return v.videoWidth > 0 && v.currentTime > 0 && !v.paused;
        },
        null,
        { timeout, polling: 100 },
      );
      step = 'the clock moving on';
      const t0 = (await this.page.evaluate(video)).t;
      await this.page.waitForFunction(
        (start) => document.getElementById('remote-video').currentTime > start + 0.5,
        t0,
        { timeout: 10000, polling: 100 },
      );

      step = 'frames with light in them';
      const first = await this.page.evaluate(() => window.__rvcSampleFrame());
      // Mean luma 0..255: black is ~0-16; the fake camera's picture is far above.
      if (!(first.luma > 40)) throw new Error(`the frame is black: mean luma ${first.luma.toFixed(1)}`);

      step = 'frames that change';
      await this.page.waitForFunction(
        (before) => {
          const now = window.__rvcSampleFrame();
          return now.luma > 40 && now.pixels.some((p, i) => Math.abs(p - before[i]) > 24);
        },
        first.pixels,
        { timeout: 10000, polling: 100 },
      );

      step = 'decoded frames growing';
      const decoded = await this.page.evaluate(
        () => document.getElementById('remote-video').getVideoPlaybackQuality().totalVideoFrames,
      );
      await this.page.waitForFunction(
        (start) => document.getElementById('remote-video').getVideoPlaybackQuality().totalVideoFrames >= start + 10,
        decoded,
        { timeout: 10000, polling: 100 },
      );

      // totalAudioEnergy sums level² × seconds: the fake microphone's beeps
      // reach ~1 within a few seconds; a disabled track's silence stays
      // near 1e-8 however long it plays.
      step = 'audio energy';
      // getStats() is asynchronous, which waitForFunction does not await:
      // poll from here, within a bound.
      const audible = () =>
        this.page.evaluate(async (AUDIBLE) => {
          for (const pc of window.__rvcPeers || []) {
            if (pc.connectionState === 'closed') continue;
            const stats = await pc.getStats();
            for (const r of stats.values()) {
              if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.totalAudioEnergy > AUDIBLE) return true;
            }
          }
          return false;
        }, 0.01);
      const deadline = Date.now() + 10000;
      while (!(await audible())) {
        if (Date.now() > deadline) throw new Error('no audible audio within 10000 ms (totalAudioEnergy <= 0.01)');
        await new Promise((r) => setTimeout(r, 200));
      }
    } catch (err) {
      const v = await this.page.evaluate(video).catch(() => null);
      throw new Error(
        `${this.name}: remote media not playing (waiting for ${step}): ${err.message}; video ${JSON.stringify(v)}; status ${await this.describe()}`,
        { cause: err },
      );
    }
  }

  /**
   * The candidate types of the selected candidate pair of the page's live
   * call, from getStats(): {local, remote} ('host' | 'srflx' | 'prflx' |
   * 'relay'), or null when no pair is selected.
   */
  selectedCandidatePair() {
    return this.page.evaluate(async () => {
      for (const pc of window.__rvcPeers || []) {
        if (pc.connectionState !== 'connected') continue;
        const stats = await pc.getStats();
        const byId = new Map([...stats.values()].map((r) => [r.id, r]));
        for (const r of byId.values()) {
          if (r.type !== 'transport' || !r.selectedCandidatePairId) continue;
          const pair = byId.get(r.selectedCandidatePairId);
          if (!pair) continue;
          return {
            local: byId.get(pair.localCandidateId)?.candidateType ?? null,
            remote: byId.get(pair.remoteCandidateId)?.candidateType ?? null,
            policy: pc.getConfiguration().iceTransportPolicy,
          };
        }
      }
      return null;
    });
  }

  /** Type a chat line and send it with Enter (the keyboard path). */
  async sendChat(text) {
    await this.page.waitForFunction(() => !document.getElementById('chat-input').disabled, null, { timeout: WAIT_MS });
    await this.page.fill('#chat-input', text);
    await this.page.press('#chat-input', 'Enter');
    await this.waitForChat('me', text);
  }

  /** Wait for a chat line from `from` ('me' | 'peer' | 'system') containing `text`. */
  async waitForChat(from, text, timeout = WAIT_MS) {
    try {
      await this.page.waitForFunction(
        ([f, t]) =>
          [...document.querySelectorAll(`#chat-log li[data-from="${f}"]`)].some((li) => li.textContent.includes(t)),
        [from, text],
        { timeout, polling: 100 },
      );
    } catch (err) {
      const log = await this.page.textContent('#chat-log').catch(() => '?');
      throw new Error(`${this.name}: no chat line from ${from} with "${text}" within ${timeout} ms; log: ${log}`, { cause: err });
    }
  }

  async screenshot(file) {
    await this.page.screenshot({ path: file, fullPage: true, timeout: 10000 });
  }

  async close() {
    await this.context.close().catch(() => {});
  }
}

/**
 * Installed in every page as window.__rvcSampleFrame(): the remote video's
 * current frame drawn on a 32×24 canvas, as its mean luma and grey levels.
 */
const sampleRemoteFrameSource = `window.__rvcSampleFrame = function () {
  const v = document.getElementById('remote-video');
  const c = document.createElement('canvas');
  c.width = 32;
  c.height = 24;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(v, 0, 0, c.width, c.height);
  const { data } = ctx.getImageData(0, 0, c.width, c.height);
  const pixels = [];
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) {
    const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    pixels.push(Math.round(y));
    sum += y;
  }
  return { luma: sum / pixels.length, pixels };
};`;
