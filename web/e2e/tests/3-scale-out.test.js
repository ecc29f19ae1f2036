// Scenario 3 (scale-out): two matcher gateways and two signaller nodes on
// different ports sharing one Redis. Page A uses gateway 1 (whose matched
// points at signaller 1), page B gateway 2 (signaller 2): they pair across
// nodes and the video plays.

import assert from 'node:assert/strict';
import { scenario } from '../lib/scenario.js';

scenario('(3) scale-out: pages on different gateways and signallers pair and see each other', 'scenario3', async (s) => {
  await s.system.startRedis();
  const sig1 = await s.system.startSignaller('signaller1');
  const sig2 = await s.system.startSignaller('signaller2');
  const gw1 = await s.system.startMatcher({ role: 'all', signallerUrl: sig1.url, name: 'gateway1' });
  const gw2 = await s.system.startMatcher({ role: 'gateway', signallerUrl: sig2.url, name: 'gateway2' });

  const browser = await s.launch();
  const a = await s.open(browser, 'a', gw1.url);
  const b = await s.open(browser, 'b', gw2.url);

  await a.start('A');
  await a.waitForState('searching');
  await b.start('B');
  await Promise.all([a.waitForState('connected'), b.waitForState('connected')]);
  await Promise.all([a.expectRemoteVideoPlaying(), b.expectRemoteVideoPlaying()]);

  // Each page really used its own nodes.
  assert.ok(a.sockets.includes(`ws://127.0.0.1:${gw1.port}/ws`), `A used gateway 1: ${a.sockets}`);
  assert.ok(a.sockets.includes(sig1.url), `A used signaller 1: ${a.sockets}`);
  assert.ok(!a.sockets.includes(sig2.url), `A did not use signaller 2: ${a.sockets}`);
  assert.ok(b.sockets.includes(`ws://127.0.0.1:${gw2.port}/ws`), `B used gateway 2: ${b.sockets}`);
  assert.ok(b.sockets.includes(sig2.url), `B used signaller 2: ${b.sockets}`);
  assert.ok(!b.sockets.includes(sig1.url), `B did not use signaller 1: ${b.sockets}`);

  // Chat crosses the nodes too.
  await a.sendChat('across the nodes');
  await b.waitForChat('peer', 'across the nodes');
});
