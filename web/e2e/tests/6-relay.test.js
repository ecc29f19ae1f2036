// Scenarios 6 and 7: calls through the TURN relay. A coturn `turnserver`
// started by the test shares its secret with the matcher, which hands each
// page a credential minted for its session with `hello`. The pages are
// forced to relay-only ICE (`?relay=only`, see app.js), so the call comes
// up through coturn or not at all.

import assert from 'node:assert/strict';

import { scenario } from '../lib/scenario.js';

scenario('(6) relay only: two pages connect through coturn, video both ways, the selected pair is relay', 'scenario6', async (s) => {
  await s.system.startRedis();
  const turn = await s.system.startTurn();
  const sig = await s.system.startSignaller();
  const gw = await s.system.startMatcher({ role: 'all', signallerUrl: sig.url, turn });

  const browser = await s.launch();
  const alice = await s.open(browser, 'alice', `${gw.url}?relay=only`);
  const bob = await s.open(browser, 'bob', `${gw.url}?relay=only`);

  await alice.start('Alice');
  await alice.waitForState('searching');
  await bob.start('Bob');

  await Promise.all([alice.waitForState('connected'), bob.waitForState('connected')]);
  await Promise.all([alice.expectRemoteVideoPlaying(), bob.expectRemoteVideoPlaying()]);

  for (const page of [alice, bob]) {
    const pair = await page.selectedCandidatePair();
    assert.equal(pair?.policy, 'relay', `${page.name}: the call is not relay-only: ${JSON.stringify(pair)}`);
    assert.equal(pair?.local, 'relay', `${page.name}: the selected pair is not relayed: ${JSON.stringify(pair)}`);
    // The status line says so.
    await page.page.waitForFunction(
      () => /Connected via relay/.test(document.getElementById('status').textContent),
      null,
      { timeout: 10000, polling: 100 },
    );
  }
  // coturn really carried it: it logged the allocations of both sessions.
  const allocations = turn.proc.log.match(/ALLOCATE processed, success/g) || [];
  assert.ok(allocations.length >= 2, `coturn logged ${allocations.length} successful allocations, expected one per page at least`);
});

scenario('(7) relay only with a credential coturn refuses: a clear message, no silent stall', 'scenario7', async (s) => {
  await s.system.startRedis();
  // coturn and the matcher disagree on the secret: every credential the
  // matcher mints is refused (401), as an expired one is.
  const turn = await s.system.startTurn();
  const sig = await s.system.startSignaller();
  const gw = await s.system.startMatcher({
    role: 'all',
    signallerUrl: sig.url,
    turn: { url: turn.url, secret: 'not-the-relays-secret-0123456789' },
  });

  const browser = await s.launch();
  const alice = await s.open(browser, 'alice', `${gw.url}?relay=only`);
  const bob = await s.open(browser, 'bob', `${gw.url}?relay=only`);

  await alice.start('Alice');
  await alice.waitForState('searching');
  await bob.start('Bob');

  await Promise.all([alice.waitForState('relay-refused'), bob.waitForState('relay-refused')]);
  for (const page of [alice, bob]) {
    const text = await page.statusText();
    assert.match(text, /relay server refused our credentials/, `${page.name}: ${text}`);
    const notice = await page.page.textContent('#notice');
    assert.match(notice, /TURN error 401/, `${page.name}: notice ${notice}`);
  }
});
