// What the page shows for each state (view.js statusLine/controls), without
// a browser. The data-state values and texts checked here are the ones the
// end-to-end tests (web/e2e) and style.css rely on.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { initialState } from '../state.js';
import { controls, statusLine, SLOW_SERVER_MS, SLOW_CONNECT_MS } from '../view.js';

const NOW = 1_000_000;
const UP = { state: 'up', everUp: true, attempt: 0, retryAt: 0, draining: false };

function searching(search = {}, link = UP) {
  return {
    ...initialState(),
    phase: 'searching',
    hasMedia: true,
    link,
    search: { reg: 'queued', sentAt: NOW, trouble: false, retryAt: 0, ...search },
  };
}

function inRoom(phase, room = {}) {
  return {
    ...initialState(),
    phase,
    hasMedia: true,
    link: UP,
    peerName: 'Bob',
    room: {
      id: 1,
      polite: false,
      peerPresent: false,
      rejoining: false,
      callState: 'connecting',
      remoteStream: false,
      startedAt: NOW,
      ...room,
    },
  };
}

function ended(phase, endReason) {
  return { ...initialState(), phase, link: UP, peerName: 'Bob', endReason };
}

describe('status line', () => {
  test('idle, stopped, starting and camera problems', () => {
    assert.deepEqual(statusLine(initialState(), NOW), ['idle', 'Press Start to meet a stranger.']);
    assert.deepEqual(statusLine({ ...initialState(), phase: 'stopped' }, NOW), [
      'idle',
      'Stopped. Press Start to meet a stranger.',
    ]);
    assert.deepEqual(statusLine({ ...initialState(), phase: 'starting' }, NOW), [
      'starting',
      'Waiting for your camera and microphone…',
    ]);
    const err = (mediaProblem) => statusLine({ ...initialState(), phase: 'media-error', mediaProblem }, NOW);
    assert.deepEqual(err('denied'), ['media-error', 'Camera and microphone access was denied.']);
    assert.deepEqual(err('no-device'), ['media-error', 'No camera or microphone found.']);
    assert.deepEqual(err('busy'), ['media-error', 'Your camera or microphone is busy.']);
    assert.deepEqual(err('insecure'), ['media-error', 'Your camera could not be started.']);
  });

  test('searching, and what it says while the server is away or slow', () => {
    assert.deepEqual(statusLine(searching(), NOW), ['searching', 'Looking for a stranger…']);
    const first = { state: 'connecting', everUp: false, attempt: 0, retryAt: 0, draining: false };
    assert.deepEqual(statusLine(searching({ reg: 'waiting' }, first), NOW), ['connecting-server', 'Connecting to the server…']);
    const neverUp = { state: 'down', everUp: false, attempt: 1, retryAt: NOW + 2500, draining: false };
    assert.deepEqual(statusLine(searching({ reg: 'waiting' }, neverUp), NOW), ['unreachable', 'Server unreachable. Retrying in 3 s…']);
    const lost = { ...neverUp, everUp: true };
    assert.deepEqual(statusLine(searching({ reg: 'waiting' }, lost), NOW), ['reconnecting', 'Lost the server. Reconnecting in 3 s…']);
    assert.deepEqual(statusLine(searching({ reg: 'waiting' }, { ...lost, state: 'connecting' }), NOW), [
      'reconnecting',
      'Lost the server. Reconnecting…',
    ]);
    const draining = { state: 'connecting', everUp: true, attempt: 0, retryAt: NOW, draining: true };
    assert.deepEqual(statusLine(searching({ reg: 'waiting' }, draining), NOW), ['reconnecting', 'The server is restarting. Reconnecting…']);
  });

  test('searching with an unavailable or silent server', () => {
    assert.deepEqual(statusLine(searching({ reg: 'backoff', trouble: true, retryAt: NOW + 1200 }), NOW), [
      'unreachable',
      'The server is unavailable. Retrying in 2 s…',
    ]);
    assert.deepEqual(statusLine(searching({ reg: 'sent', trouble: true }), NOW), ['unreachable', 'The server is unavailable. Retrying…']);
    assert.deepEqual(statusLine(searching({ reg: 'sent', sentAt: NOW }), NOW + SLOW_SERVER_MS), ['searching', 'Looking for a stranger…']);
    assert.deepEqual(statusLine(searching({ reg: 'sent', sentAt: NOW }), NOW + SLOW_SERVER_MS + 1), [
      'unreachable',
      'The server is not answering. Still trying…',
    ]);
  });

  test('joining and in the call', () => {
    assert.deepEqual(statusLine(inRoom('joining'), NOW), ['connecting', 'Found Bob. Connecting…']);
    assert.deepEqual(statusLine(inRoom('joining', { rejoining: true }), NOW), ['reconnecting', 'Reconnecting to Bob…']);
    // Our room socket dropped: says so, and when it gives up; the call goes on meanwhile.
    const away = inRoom('in-call', { callState: 'connected', reconnecting: true, reconnectUntil: NOW + 12_000 });
    assert.deepEqual(statusLine(away, NOW), [
      'reconnecting',
      'Reconnecting… (the link to the server dropped; giving up in 12 s)',
    ]);
    assert.equal(controls(away, NOW).ticking, true);
    assert.deepEqual(statusLine(inRoom('in-call', { callState: 'connected', peerAway: true }), NOW), [
      'reconnecting',
      'Bob is reconnecting…',
    ]);
    assert.deepEqual(statusLine(inRoom('in-call'), NOW), ['connecting', 'Found Bob. Waiting for them to join…']);
    assert.deepEqual(statusLine(inRoom('in-call', { peerPresent: true }), NOW), ['connecting', 'Connecting to Bob…']);
    assert.deepEqual(statusLine(inRoom('in-call', { peerPresent: true }), NOW + SLOW_CONNECT_MS + 1), [
      'connecting',
      'Connecting to Bob… This is taking a while; press Next to try someone else.',
    ]);
    assert.deepEqual(statusLine(inRoom('in-call', { callState: 'connected' }), NOW), ['connected', 'Connected to Bob. Say hi!']);
    assert.equal(statusLine(inRoom('in-call', { callState: 'unstable' }), NOW)[0], 'reconnecting');
    assert.match(statusLine(inRoom('in-call', { callState: 'failed' }), NOW)[1], /^Could not connect to Bob .* Press Next/);
  });

  test('the room is over', () => {
    assert.deepEqual(statusLine(ended('peer-left', 'disconnected'), NOW), [
      'peer-left',
      'Bob left (disconnected). Press Next to meet someone else.',
    ]);
    assert.deepEqual(statusLine(ended('lost', ''), NOW), [
      'lost',
      'Lost the connection to Bob (network problem). Press Next to meet someone else.',
    ]);
  });
});

describe('controls', () => {
  test('buttons follow the transition table', () => {
    const buttons = (s) => {
      const c = controls(s, NOW);
      return { start: c.startEnabled, startHidden: c.startHidden, next: c.nextEnabled, stop: c.stopEnabled };
    };
    assert.deepEqual(buttons(initialState()), { start: true, startHidden: false, next: false, stop: false });
    assert.deepEqual(buttons({ ...initialState(), phase: 'starting' }), { start: false, startHidden: false, next: false, stop: false });
    assert.deepEqual(buttons({ ...initialState(), phase: 'media-error' }), { start: true, startHidden: false, next: false, stop: false });
    assert.deepEqual(buttons(searching()), { start: false, startHidden: true, next: false, stop: true });
    assert.deepEqual(buttons(inRoom('joining')), { start: false, startHidden: true, next: true, stop: true });
    assert.deepEqual(buttons(inRoom('in-call')), { start: false, startHidden: true, next: true, stop: true });
    assert.deepEqual(buttons(ended('peer-left', 'left')), { start: false, startHidden: true, next: true, stop: true });
    assert.deepEqual(buttons(ended('lost', 'x')), { start: false, startHidden: true, next: true, stop: true });
    assert.deepEqual(buttons({ ...initialState(), phase: 'stopped' }), { start: true, startHidden: false, next: false, stop: false });
  });

  test('Next asks for attention once the stranger is gone or the call failed', () => {
    assert.equal(controls(ended('peer-left', 'left'), NOW).nextAttention, true);
    assert.equal(controls(ended('lost', ''), NOW).nextAttention, true);
    assert.equal(controls(inRoom('in-call', { callState: 'failed' }), NOW).nextAttention, true);
    assert.equal(controls(inRoom('in-call', { callState: 'connected' }), NOW).nextAttention, false);
  });

  test('chat only in the call; the peer label and remote placeholder', () => {
    assert.equal(controls(inRoom('joining'), NOW).chatEnabled, false);
    const c = controls(inRoom('in-call', { remoteStream: true }), NOW);
    assert.equal(c.chatEnabled, true);
    assert.equal(c.peerLabel, 'Bob');
    assert.equal(c.placeholderHidden, true);
    const over = controls(ended('peer-left', 'left'), NOW);
    assert.equal(over.chatEnabled, false);
    assert.equal(over.peerLabel, null);
    assert.equal(over.placeholder, 'The stranger left');
    assert.equal(controls(searching({}, { ...UP, state: 'down', attempt: 1 }), NOW).placeholder, 'Waiting for the server…');
  });

  test('the status line ticks only while something it shows can change by itself', () => {
    assert.equal(controls(searching(), NOW).ticking, false, 'queued: nothing to count');
    assert.equal(controls(searching({ reg: 'sent' }), NOW).ticking, true);
    assert.equal(controls(searching({ reg: 'backoff', trouble: true }), NOW).ticking, true);
    assert.equal(controls(searching({ reg: 'waiting' }, { ...UP, state: 'down', attempt: 1 }), NOW).ticking, true);
    assert.equal(controls(inRoom('in-call'), NOW).ticking, true);
    assert.equal(controls(inRoom('in-call', { callState: 'connected' }), NOW).ticking, false);
    assert.equal(controls(initialState(), NOW).ticking, false);
  });
});
