// Scenario 1: two pages are paired; on both the stranger's video plays;
// a chat message goes each way and shows who said it.

import { scenario } from '../lib/scenario.js';

scenario('(1) two pages pair, video plays both ways, chat goes both ways', 'scenario1', async (s) => {
  await s.system.startRedis();
  const sig = await s.system.startSignaller();
  const gw = await s.system.startMatcher({ role: 'all', signallerUrl: sig.url });

  const browser = await s.launch();
  const alice = await s.open(browser, 'alice', gw.url);
  const bob = await s.open(browser, 'bob', gw.url);

  await alice.start('Alice');
  await alice.waitForState('searching');
  await bob.start('Bob');

  await Promise.all([alice.waitForState('connected'), bob.waitForState('connected')]);
  await Promise.all([alice.expectRemoteVideoPlaying(), bob.expectRemoteVideoPlaying()]);

  await alice.sendChat('hello from alice');
  await bob.waitForChat('peer', 'hello from alice');
  await bob.waitForChat('peer', 'Alice'); // who said it
  await bob.sendChat('hi alice, bob here');
  await alice.waitForChat('peer', 'hi alice, bob here');
  await alice.waitForChat('peer', 'Bob');
});
