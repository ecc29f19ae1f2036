// Scenario 7 (network loss): one page goes offline and comes back
// (context.setOffline). The page restarts ICE (new ICE credentials), its
// sockets come back, the video plays both ways again and the partner is the
// same (no new match).

import assert from 'node:assert/strict';
import { scenario } from '../lib/scenario.js';

scenario('(9) offline and back: ICE restart, video both ways again, same partner', 'scenario9', async (s) => {
  await s.system.startRedis();
  const sig = await s.system.startSignaller();
  const gw = await s.system.startMatcher({ role: 'all', signallerUrl: sig.url });

  const browser = await s.launch();
  const a = await s.open(browser, 'a', gw.url);
  const b = await s.open(browser, 'b', gw.url);
  await a.start('Ann');
  await a.waitForState('searching');
  await b.start('Ben');
  await Promise.all([a.waitForState('connected'), b.waitForState('connected')]);
  await Promise.all([a.expectRemoteVideoPlaying(), b.expectRemoteVideoPlaying()]);
  const partner = (p) => p.page.evaluate(() => [window.rvc.machine.state.roomSeq, window.rvc.machine.state.peerName]);
  const [beforeA, beforeB] = [await partner(a), await partner(b)];
  const ufrag = await a.iceUfrag();
  assert.ok(ufrag, 'a negotiated ICE');

  await a.context.setOffline(true);
  await a.page.waitForFunction(() => !navigator.onLine);
  await a.context.setOffline(false);
  await a.page.waitForFunction(() => navigator.onLine);
  // An ICE restart: new local ICE credentials, negotiated with the peer.
  await a.page.waitForFunction((old) => {
    const pc = window.__rvcPeers.at(-1);
    const m = pc.localDescription && pc.localDescription.sdp.match(/a=ice-ufrag:(\S+)/);
    return m && m[1] !== old && pc.signalingState === 'stable';
  }, ufrag);
  await Promise.all([a.waitForState('connected'), b.waitForState('connected')]);
  await Promise.all([a.expectRemoteVideoPlaying(), b.expectRemoteVideoPlaying()]);
  assert.deepEqual(await partner(a), beforeA, 'a: same room, same partner');
  assert.deepEqual(await partner(b), beforeB, 'b: same room, same partner');
  await a.sendChat('back online');
  await b.waitForChat('peer', 'back online');
});
