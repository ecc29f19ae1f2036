// Screenshots of the page in its main states, on a desktop and a phone-sized
// screen, for a person to look at (not a test). Needs the binaries built
// (cargo build --bins). Writes test-artifacts/screens/<state>-<width>.png.
//
//   node tools/screenshots.js

import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import { System } from '../lib/system.js';
import { launchChromium, TestPage } from '../lib/browser.js';
import { ARTIFACTS } from '../lib/scenario.js';

const OUT = path.join(ARTIFACTS, 'screens');
const SIZES = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};

const system = new System();
const browsers = [];
try {
  await mkdir(OUT, { recursive: true });
  await system.startRedis();
  const sig = await system.startSignaller();
  const gw = await system.startMatcher({ role: 'all', signallerUrl: sig.url });
  const browser = await launchChromium();
  browsers.push(browser);

  for (const [size, viewport] of Object.entries(SIZES)) {
    const shot = (p, state) => p.page.screenshot({ path: path.join(OUT, `${state}-${size}.png`) });
    const opts = { viewport, isMobile: size === 'phone', hasTouch: size === 'phone' };
    const a = await TestPage.open(browser, 'a', opts);
    const b = await TestPage.open(browser, 'b', opts);
    await a.goto(gw.url);
    await b.goto(gw.url);
    await shot(a, 'idle');
    await a.start('Alice');
    await a.waitForState('searching');
    await shot(a, 'searching');
    await b.start('Bob');
    await Promise.all([a.waitForState('connected'), b.waitForState('connected')]);
    await a.expectRemoteVideoPlaying();
    await a.sendChat('Hi! Where are you from?');
    await b.sendChat('Hello Alice, from Lisbon. And you? This line is a little longer so it wraps.');
    await a.waitForChat('peer', 'Lisbon');
    await shot(a, 'connected');
    await b.page.click('#next');
    await a.waitForState('peer-left');
    await shot(a, 'peer-left');
    await a.close();
    await b.close();
  }

  const denied = await launchChromium({ fakeUi: false });
  browsers.push(denied);
  for (const [size, viewport] of Object.entries(SIZES)) {
    const p = await TestPage.open(denied, 'denied', { viewport });
    await p.goto(gw.url);
    await p.start();
    await p.waitForState('media-error');
    await p.page.screenshot({ path: path.join(OUT, `media-error-${size}.png`) });
    await p.close();
  }

  // The server goes away: the page says so and retries.
  const p = await TestPage.open(browser, 'unreachable', { viewport: SIZES.desktop });
  await p.goto(gw.url);
  await gw.proc.stop();
  await p.start();
  await p.waitForState('unreachable');
  await p.page.screenshot({ path: path.join(OUT, 'unreachable-desktop.png') });
  await p.close();
  console.log(`screenshots in ${OUT}`);
} finally {
  for (const b of browsers) await b.close().catch(() => {});
  await system.stop();
}
