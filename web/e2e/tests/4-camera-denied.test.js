// Scenario 4: the camera is refused (Chromium without the fake-UI flag
// refuses the prompt when headless; the context also grants nothing). The page says so
// clearly, offers Start again, and throws nothing. Also: no camera at all.

import assert from 'node:assert/strict';
import { scenario } from '../lib/scenario.js';

scenario('(4) camera permission denied: a clear message, no uncaught errors', 'scenario4', async (s) => {
  await s.system.startRedis();
  const sig = await s.system.startSignaller();
  const gw = await s.system.startMatcher({ role: 'all', signallerUrl: sig.url });

  const denied = await s.launch({ fakeUi: false });
  const p = await s.open(denied, 'denied', gw.url, { permissions: [] });
  await p.start();
  await p.waitForState('media-error');
  const notice = await p.page.textContent('#notice');
  assert.match(notice, /denied/i);
  assert.match(notice, /allow/i);
  assert.equal(await p.page.isVisible('#notice'), true);
  assert.equal(await p.page.isEnabled('#start'), true, 'Start can be pressed again');
  assert.equal(await p.page.isEnabled('#next'), false);
  // Nothing was asked of the servers.
  assert.deepEqual(p.sockets, []);

  // No camera or microphone at all: a different, equally clear message.
  const noDevices = await s.launch({ fakeUi: true, fakeDevice: false });
  const q = await s.open(noDevices, 'no-device', gw.url);
  await q.start();
  await q.waitForState('media-error');
  assert.match(await q.page.textContent('#notice'), /no camera or microphone/i);
});
