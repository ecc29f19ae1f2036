// Scenario 6 (resume): the signaller node serving a live call is killed
// (SIGKILL) while a second node runs behind the same address (a TCP
// balancer, as nginx in the deployment). Both pages reconnect their room
// sockets to the other node and resume their sessions: the status line
// says reconnecting, then connected again; the video never stops (it flows
// between the browsers); chat works after the move.

import assert from 'node:assert/strict';
import { scenario } from '../lib/scenario.js';

scenario('(8) resume: the signaller serving a call dies, the call goes on through the other node', 'scenario8', async (s) => {
  await s.system.startRedis();
  const sig1 = await s.system.startSignaller('signaller1');
  const sig2 = await s.system.startSignaller('signaller2');
  const lb = await s.system.startBalancer([sig1.port, sig2.port]);
  const gw = await s.system.startMatcher({ role: 'all', signallerUrl: lb.url });

  const browser = await s.launch();
  const a = await s.open(browser, 'a', gw.url);
  const b = await s.open(browser, 'b', gw.url);
  await a.start('Ann');
  await a.waitForState('searching');
  await b.start('Ben');
  await Promise.all([a.waitForState('connected'), b.waitForState('connected')]);
  await Promise.all([a.expectRemoteVideoPlaying(), b.expectRemoteVideoPlaying()]);
  await a.sendChat('before the move');
  await b.waitForChat('peer', 'before the move');
  const room = () => a.page.evaluate(() => window.rvc.machine.state.roomSeq);
  const roomBefore = await room();

  const [markA, markB] = [await a.statesSeen(), await b.statesSeen()];
  await sig1.proc.kill();
  await Promise.all([
    a.waitForStates(['reconnecting', 'connected'], markA),
    b.waitForStates(['reconnecting', 'connected'], markB),
  ]);
  // The same call: no new match, and the stranger's video still plays.
  assert.equal(await room(), roomBefore, 'still the same room');
  await Promise.all([a.expectRemoteVideoPlaying(), b.expectRemoteVideoPlaying()]);
  // Chat now goes through the surviving node, both ways.
  await a.sendChat('after the move');
  await b.waitForChat('peer', 'after the move');
  await b.sendChat('got it');
  await a.waitForChat('peer', 'got it');
  assert.ok(sig1.proc.exited, 'signaller 1 is dead');
});
