// Matchmaking preferences on the page (interests.js), and how the state
// machine and the status line use what the server answers.
//
//   node --test web/test/

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { addTags, commonLine, loadPrefs, primaryLanguage, registerFields, savePrefs } from '../interests.js';
import { initialState, step } from '../state.js';
import { statusLine, controls } from '../view.js';

class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
}

describe('interest tags', () => {
  test('are trimmed, lowercased, NFC, deduplicated and capped like the server does', () => {
    assert.deepEqual(addTags([], ' Music , music,Cafe\u0301, café'), ['music', 'caf\u00e9']);
    assert.deepEqual(addTags(['a'], ' , ' + 'x'.repeat(33)), ['a']);
    const eleven = Array.from({ length: 11 }, (_, i) => `t${i}`).join(',');
    assert.equal(addTags([], eleven).length, 10);
  });

  test('the browser language gives the primary subtag', () => {
    assert.equal(primaryLanguage('en-GB'), 'en');
    assert.equal(primaryLanguage('yue-Hant-HK'), 'yue');
    assert.equal(primaryLanguage(''), '');
    assert.equal(primaryLanguage('x-klingon'), '');
  });

  test('are remembered, and bad saved values fall back to the defaults', () => {
    const storage = new MemoryStorage();
    assert.deepEqual(loadPrefs(storage, 'de-AT'), { interests: [], strict: false, language: 'de' });
    savePrefs(storage, { interests: ['chess'], strict: true, language: 'fr' });
    assert.deepEqual(loadPrefs(storage, 'de-AT'), { interests: ['chess'], strict: true, language: 'fr' });
    storage.setItem('rvc.prefs', '{not json');
    assert.deepEqual(loadPrefs(storage, 'en'), { interests: [], strict: false, language: 'en' });
  });

  test('a register carries only what is set; strict only with interests', () => {
    assert.deepEqual(registerFields({ interests: [], strict: true, language: '' }), {});
    assert.deepEqual(registerFields({ interests: ['go'], strict: true, language: 'en' }), {
      interests: ['go'],
      language: 'en',
      strict: true,
    });
  });

  test('the shared interests line', () => {
    assert.equal(commonLine(['chess', 'jazz']), 'You both like: chess, jazz.');
    assert.equal(commonLine([]), '');
  });
});

/** A page searching with a register sent on an open socket. */
function searching() {
  const env = { now: 1000, random: () => 0.5 };
  let s = initialState();
  for (const ev of [{ type: 'start' }, { type: 'media-ready' }, { type: 'matcher-hello', session: 's' }]) {
    s = step(s, ev, env).state;
  }
  assert.equal(s.phase, 'searching');
  return { s, env };
}

describe('searching with interests', () => {
  test('the status line says interests first, then anyone once the window is over', () => {
    const { s, env } = searching();
    const out = step(s, { type: 'matcher-queued', interest_wait_ms: 5000 }, env);
    assert.deepEqual(out.effects, [{ type: 'start-timer', name: 'interest-window', ms: 5000 }]);
    assert.equal(statusLine(out.state, env.now)[1], 'Looking for someone who shares your interests…');
    const widened = step(out.state, { type: 'timer', name: 'interest-window' }, env);
    assert.equal(widened.refused, undefined);
    assert.equal(statusLine(widened.state, env.now)[1], 'Nobody with your interests yet. Looking for anyone…');
    // Registering again (Next) stops a window still running.
    const matched = step(
      out.state,
      { type: 'matcher-matched', room_code: 'R', initiator: true, ticket: 't', signaller_url: 'ws://x/ws', common_interests: ['chess'] },
      env,
    );
    assert.ok(matched.effects.some((e) => e.type === 'cancel-timer' && e.name === 'interest-window'));
    assert.ok(matched.effects.some((e) => e.type === 'chat-system' && e.text === 'You both like: chess.'));
    assert.equal(controls(matched.state, env.now).common, 'You both like: chess.');
  });

  test('a strict register looks for shared interests only, and without interests for anyone', () => {
    const { s, env } = searching();
    const strict = step(s, { type: 'matcher-queued', strict: true }, env);
    assert.deepEqual(strict.effects, []);
    assert.equal(statusLine(strict.state, env.now)[1], 'Looking for someone who shares your interests (only them)…');
    assert.ok(step(strict.state, { type: 'timer', name: 'interest-window' }, env).refused);
    const plain = step(s, { type: 'matcher-queued' }, env);
    assert.equal(statusLine(plain.state, env.now)[1], 'Looking for a stranger…');
    const matched = step(
      plain.state,
      { type: 'matcher-matched', room_code: 'R', initiator: true, ticket: 't', signaller_url: 'ws://x/ws' },
      env,
    );
    assert.equal(controls(matched.state, env.now).common, '');
  });
});
