// Scenario 10: moderation. Two pages from two client addresses pair (the
// browser reaches the gateway through loopback, so each page's address is
// given the way a reverse proxy gives it: X-Forwarded-For, from a trusted
// proxy); one reports the other from the page (reason
// picker, Report); with one report per ban (a test setting), the reported
// page is banned: its next search is refused with a message saying why and
// when it may return, while the reporter goes on.

import assert from 'node:assert/strict';
import { scenario } from '../lib/scenario.js';

scenario('(10) Report from the page is acknowledged; the reported page is banned and told so', 'scenario10', async (s) => {
  await s.system.startRedis();
  const sig = await s.system.startSignaller();
  const gw = await s.system.startMatcher({
    role: 'all',
    signallerUrl: sig.url,
    extraArgs: ['--ban-after-reports', '1', '--trusted-proxies', '127.0.0.1/32'],
  });

  const browser = await s.launch();
  const from = (ip) => ({ extraHTTPHeaders: { 'X-Forwarded-For': ip } });
  const a = await s.open(browser, 'a', gw.url, from('198.51.100.2'));
  const b = await s.open(browser, 'b', gw.url, from('198.51.100.3'));
  assert.equal(await a.page.isEnabled('#report'), false, 'nobody to report yet');

  await a.start('A');
  await a.waitForState('searching');
  await b.start('B');
  await Promise.all([a.waitForState('connected'), b.waitForState('connected')]);

  await a.page.selectOption('#report-reason', 'harassment');
  await a.page.click('#report');
  await a.waitForChat('system', 'report was sent');

  // B asks for the next stranger: refused, banned, told until when.
  await b.page.click('#next');
  await b.page.waitForFunction(
    () => {
      const n = document.getElementById('notice');
      return !n.hidden && /banned/.test(n.textContent) && /come back in 1 h/.test(n.textContent);
    },
    null,
    { timeout: 20000 },
  );
  assert.equal(await b.state(), 'idle');

  // The reporter is not affected: it looks for someone else.
  await a.page.click('#next');
  await a.waitForState('searching');
});
