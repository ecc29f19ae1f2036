// Report, block and bans on the page (state.js, view.js), without a browser.
//
//   node --test web/test/

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { initialState, step, canModerate, humanWait, REPORT_AFTER_MS } from '../state.js';
import { controls } from '../view.js';

const env = (now) => ({ now, random: () => 0.5 });

function run(events, now = 1000) {
  let s = initialState();
  for (const ev of events) {
    const out = step(s, ev, env(now));
    assert.equal(out.refused, undefined, `${ev.type}: ${out.refused}`);
    s = out.state;
  }
  return s;
}

const MATCHED = {
  type: 'matcher-matched',
  room_code: 'R',
  initiator: true,
  peer_name: 'Bob',
  ticket: 't',
  signaller_url: 'ws://x/ws',
};

function inCall() {
  return run([
    { type: 'start' },
    { type: 'media-ready' },
    { type: 'matcher-hello', session: 's' },
    { type: 'matcher-queued' },
    MATCHED,
  ]);
}

describe('report and block', () => {
  test('during a call: the report goes out with its reason and is acknowledged in the chat', () => {
    const s = inCall();
    assert.ok(controls(s, 1000).moderationEnabled);
    const out = step(s, { type: 'report', reason: 'harassment' }, env(1000));
    assert.deepEqual(out.effects, [{ type: 'send-report', reason: 'harassment' }]);
    assert.ok(step(s, { type: 'report', reason: 'rude' }, env(1000)).refused);
    const ack = step(s, { type: 'matcher-reported' }, env(1000));
    assert.match(ack.effects[0].text, /report was sent/);
    const blocked = step(step(s, { type: 'block' }, env(1000)).state, { type: 'matcher-blocked' }, env(1000));
    assert.match(blocked.effects[0].text, /not be paired with Bob again/);
  });

  test('after Next, for a minute only', () => {
    const next = step(inCall(), { type: 'next' }, env(5000)).state;
    assert.equal(next.phase, 'searching');
    assert.ok(canModerate(next, 5000 + REPORT_AFTER_MS - 1));
    assert.ok(!canModerate(next, 5000 + REPORT_AFTER_MS));
    assert.ok(step(next, { type: 'report', reason: 'spam' }, env(5000 + REPORT_AFTER_MS)).refused);
    assert.ok(!controls(initialState(), 0).moderationEnabled, 'nobody met yet');
  });
});

describe('banned', () => {
  test('a banned user is told why and when to come back, and stops looking', () => {
    const s = run([{ type: 'start' }, { type: 'media-ready' }, { type: 'matcher-hello', session: 's' }]);
    const out = step(s, { type: 'matcher-error', code: 'banned', message: 'banned', retry_after: 3600 }, env(1000));
    assert.equal(out.state.phase, 'idle');
    assert.equal(out.state.notice.kind, 'error');
    assert.match(out.state.notice.text, /banned .* come back in 1 h/);
    assert.ok(out.effects.some((e) => e.type === 'close-matcher'));
    assert.equal(out.state.link.state, 'off', 'no reconnecting to be refused again');
  });

  test('waits read well', () => {
    assert.equal(humanWait(30), '30 s');
    assert.equal(humanWait(90), '2 min');
    assert.equal(humanWait(7500), '2 h 5 min');
  });
});
