// Scenario 5: interests. Two pages name interests, one of them in common
// (typed differently); a third page with no interests waits too. The two
// are paired with each other, not with the third, and both show
// "You both like: …"; the chips are remembered after a reload.

import assert from 'node:assert/strict';
import { scenario } from '../lib/scenario.js';

scenario('(5) Interests: two pages sharing one are paired and see "You both like"', 'scenario5', async (s) => {
  await s.system.startRedis();
  const sig = await s.system.startSignaller();
  const gw = await s.system.startMatcher({ role: 'all', signallerUrl: sig.url });

  const browser = await s.launch();
  const a = await s.open(browser, 'a', gw.url);
  const b = await s.open(browser, 'b', gw.url);
  const c = await s.open(browser, 'c', gw.url);

  // C waits first, with no interests: the pool looks for anyone for it.
  await c.start('C');
  await c.waitForState('searching');

  await a.page.fill('#interest-input', 'Chess, hiking');
  await a.page.press('#interest-input', 'Enter');
  assert.deepEqual(await chips(a), ['chess', 'hiking']);
  await a.start('A');
  await a.waitForState('searching');
  assert.match(await a.statusText(), /shares your interests/);

  await b.page.fill('#interest-input', ' CHESS ');
  await b.page.press('#interest-input', 'Enter');
  await b.page.fill('#interest-input', 'jazz');
  await b.page.press('#interest-input', 'Enter');
  await b.start('B');

  await Promise.all([a.waitForState('connected'), b.waitForState('connected')]);
  assert.match(await a.page.textContent('#peer-label'), /B/);
  for (const p of [a, b]) {
    assert.equal(await p.page.textContent('[data-testid="common-interests"]'), 'You both like: chess.');
    await p.waitForChat('system', 'You both like: chess.');
  }
  await Promise.all([a.expectRemoteVideoPlaying(), b.expectRemoteVideoPlaying()]);
  assert.equal(await c.state(), 'searching', 'C was not given to someone who wanted a shared interest');

  // The interests are remembered (localStorage) for the next visit.
  await a.page.reload();
  assert.deepEqual(await chips(a), ['chess', 'hiking']);
});

/** The interest chips' texts (without the remove buttons). */
async function chips(p) {
  return p.page.$$eval('[data-testid="interest-chip"]', (els) => els.map((e) => e.firstChild.textContent));
}
