// Scenario 2: Next on one page: the other page says the stranger left; with
// a third page waiting, the one who pressed Next is paired with it and the
// video plays.

import assert from 'node:assert/strict';
import { scenario } from '../lib/scenario.js';

scenario('(2) Next: the other page sees the stranger left; a third page pairs up', 'scenario2', async (s) => {
  await s.system.startRedis();
  const sig = await s.system.startSignaller();
  const gw = await s.system.startMatcher({ role: 'all', signallerUrl: sig.url });

  const browser = await s.launch();
  const a = await s.open(browser, 'a', gw.url);
  const b = await s.open(browser, 'b', gw.url);

  await a.start('A');
  await a.waitForState('searching');
  await b.start('B');
  await Promise.all([a.waitForState('connected'), b.waitForState('connected')]);
  await Promise.all([a.expectRemoteVideoPlaying(), b.expectRemoteVideoPlaying()]);

  // A third person is already waiting when A presses Next.
  const c = await s.open(browser, 'c', gw.url);
  await c.start('C');
  await c.waitForState('searching');

  await a.page.click('#next');
  await b.waitForState('peer-left');
  assert.match(await b.statusText(), /left/i);
  assert.equal(await b.page.isEnabled('#next'), true, 'B is offered Next');
  await b.waitForChat('system', 'left');

  await Promise.all([a.waitForState('connected'), c.waitForState('connected')]);
  await Promise.all([a.expectRemoteVideoPlaying(), c.expectRemoteVideoPlaying()]);
  assert.match(await a.page.textContent('#peer-label'), /C/);

  // B takes the offer of Next and is searching again (nobody else is free).
  await b.page.click('#next');
  await b.waitForState('searching');
});
