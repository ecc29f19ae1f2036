// The page's state machine (state.js), without a browser: every phase, every
// allowed transition, and the refused ones.
//
//   node --test web/test/

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { PHASES, PEER_NO_SHOW_MS, allowed, initialState, reconnectDelay, step } from '../state.js';

const ENV = { now: 0, random: () => 0.5 };

/** The effects of leaving a room for another search on an open socket, saying `line`. */
const leftAndRegistered = (line) => [
  { type: 'cancel-timer', name: 'no-show' },
  { type: 'close-room', leave: true },
  { type: 'chat-system', text: line },
  { type: 'send-register' },
];

/** Drives the machine through events with a fake clock, remembering the last effects. */
class Driver {
  constructor({ now = 1_000_000, random = () => 0.5 } = {}) {
    this.state = initialState();
    this.now = now;
    this.random = random;
    /** Effects of the last accepted event. */
    this.effects = [];
    this.roomId = 0;
  }

  /** Apply an event that must be accepted; returns its effects. */
  send(type, fields = {}) {
    const event = typeof type === 'string' ? { type, ...fields } : type;
    const out = step(this.state, event, { now: this.now, random: this.random });
    assert.equal(out.refused, undefined, `${event.type} was refused in ${this.state.phase}: ${out.refused}`);
    this.state = out.state;
    this.effects = out.effects;
    return out.effects;
  }

  /** Apply an event that must be refused; checks nothing changed. */
  refuse(type, fields = {}) {
    const event = typeof type === 'string' ? { type, ...fields } : type;
    const before = this.state;
    const out = step(this.state, event, { now: this.now, random: this.random });
    assert.ok(out.refused, `${event.type} should be refused in ${before.phase}`);
    assert.equal(out.state, before, 'a refused event returns the same state');
    assert.deepEqual(out.effects, [], 'a refused event has no effects');
    return out.refused;
  }

  timer(name) {
    return this.send({ type: 'timer', name });
  }

  advance(ms) {
    this.now += ms;
  }

  /** The effects of the last event of a given type. */
  effectsOf(type) {
    return this.effects.filter((e) => e.type === type);
  }

  has(type, fields = {}) {
    return this.effects.some((e) => e.type === type && Object.entries(fields).every(([k, v]) => e[k] === v));
  }

  // ---- common paths ----

  /** Start with the camera granted: searching, socket connecting. */
  toSearchingConnecting() {
    this.send('start');
    this.send('media-ready', { note: null });
    return this;
  }

  /** Searching with a register sent on an open socket. */
  toSearching() {
    this.toSearchingConnecting();
    this.send('matcher-hello', { session: 's1' });
    return this;
  }

  /** Matched (joining the room). */
  toJoining({ initiator = true, peer = 'Bob' } = {}) {
    if (this.state.phase !== 'searching') this.toSearching();
    this.send('matcher-queued');
    this.send('matcher-matched', {
      room_code: 'R1',
      initiator,
      peer_name: peer,
      ticket: 't',
      signaller_url: 'ws://sig/ws',
    });
    this.roomId = this.state.room.id;
    return this;
  }

  /** In the call, the peer already in the room. */
  toInCall(opts) {
    this.toJoining(opts);
    this.send('room-joined', { room: this.roomId, peer_present: true, peer_name: this.state.peerName });
    return this;
  }

  room(type, fields = {}) {
    return this.send(type, { room: this.roomId, ...fields });
  }
}


describe('idle, starting, media-error', () => {
  test('a new page is idle and only Start is allowed', () => {
    const d = new Driver();
    assert.equal(d.state.phase, 'idle');
    for (const type of ['next', 'stop', 'send-chat', 'media-ready', 'media-failed']) d.refuse(type, { text: 'x' });
    assert.deepEqual(d.send('start'), [{ type: 'open-media' }]);
    assert.equal(d.state.phase, 'starting');
  });

  test('Start twice while the camera prompt is open is refused', () => {
    const d = new Driver();
    d.send('start');
    assert.match(d.refuse('start'), /not allowed in starting/);
    d.refuse('stop');
    d.refuse('next');
  });

  test('camera granted: searching, the matcher socket opens, a device note becomes a notice', () => {
    const d = new Driver();
    d.send('start');
    d.send('media-ready', { note: 'No microphone found: the stranger will see you but not hear you.' });
    assert.equal(d.state.phase, 'searching');
    assert.equal(d.state.link.state, 'connecting');
    assert.equal(d.state.search.reg, 'waiting');
    assert.ok(d.has('open-matcher'));
    assert.ok(!d.has('send-register'), 'no register before the socket says hello');
    assert.deepEqual(d.state.notice, { text: 'No microphone found: the stranger will see you but not hear you.', kind: 'info' });
  });

  test('camera denied: media-error with the reason; Start may be pressed again, nothing else', () => {
    const d = new Driver();
    d.send('start');
    const effects = d.send('media-failed', { code: 'denied', message: 'Camera and microphone access was denied. Allow it…' });
    assert.deepEqual(effects, [], 'no socket is opened');
    assert.equal(d.state.phase, 'media-error');
    assert.equal(d.state.mediaProblem, 'denied');
    assert.equal(d.state.notice.kind, 'error');
    assert.equal(d.state.link.state, 'off');
    d.refuse('next');
    d.refuse('stop');
    assert.deepEqual(d.send('start'), [{ type: 'open-media' }]);
    assert.equal(d.state.notice, null, 'Start hides the old notice');
  });
});

describe('searching', () => {
  test('hello registers; queued puts us in the pool', () => {
    const d = new Driver().toSearchingConnecting();
    assert.deepEqual(d.send('matcher-hello', { session: 's' }), [{ type: 'send-register' }]);
    assert.equal(d.state.link.state, 'up');
    assert.equal(d.state.search.reg, 'sent');
    assert.equal(d.state.search.sentAt, d.now);
    d.send('matcher-queued');
    assert.equal(d.state.search.reg, 'queued');
  });

  test('Next while searching is refused (already looking)', () => {
    const d = new Driver().toSearching();
    assert.match(d.refuse('next'), /not allowed in searching/);
    d.refuse('start');
    d.refuse('send-chat', { text: 'hi' });
  });

  test('already_waiting counts as queued', () => {
    const d = new Driver().toSearching();
    d.send('matcher-error', { code: 'already_waiting', message: 'already waiting' });
    assert.equal(d.state.search.reg, 'queued');
  });

  test('matched: joining the room with the ticket, the chat says who it is', () => {
    const d = new Driver().toSearching();
    d.send('matcher-queued');
    const effects = d.send('matcher-matched', {
      room_code: 'R',
      initiator: false,
      peer_name: 'Zoe',
      ticket: 'TICKET',
      signaller_url: 'ws://sig:4000/ws',
    });
    assert.equal(d.state.phase, 'joining');
    assert.equal(d.state.peerName, 'Zoe');
    assert.equal(d.state.search, null);
    assert.equal(d.state.room.polite, true, 'the non-initiator is the polite peer');
    assert.deepEqual(effects, [
      { type: 'chat-clear' },
      { type: 'chat-system', text: 'You are now talking to Zoe. Say hi!' },
      { type: 'open-room', room: d.state.room.id, url: 'ws://sig:4000/ws', ticket: 'TICKET' },
    ]);
  });

  test('matched without the native fields is refused', () => {
    const d = new Driver().toSearching();
    assert.match(d.refuse('matcher-matched', { room_code: 'R', initiator: true }), /ticket/);
  });

  test('unavailable: register again after a growing pause; queued ends the trouble', () => {
    const d = new Driver().toSearching();
    d.send('matcher-error', { code: 'unavailable', message: 'Redis is away' });
    assert.deepEqual(d.effects, [{ type: 'start-timer', name: 'register-retry', ms: 1000 }]);
    assert.equal(d.state.search.reg, 'backoff');
    assert.equal(d.state.search.trouble, true);
    d.advance(1000);
    assert.deepEqual(d.timer('register-retry'), [{ type: 'send-register' }]);
    d.send('matcher-error', { code: 'unavailable' });
    assert.deepEqual(d.effects, [{ type: 'start-timer', name: 'register-retry', ms: 2000 }], 'the pause doubles');
    d.timer('register-retry');
    d.send('matcher-queued');
    assert.equal(d.state.search.trouble, false);
    assert.equal(d.state.registerAttempt, 0, 'the pause starts short again');
  });

  test('rate_limited on register: retried after a pause, not called an outage', () => {
    const d = new Driver().toSearching();
    d.send('matcher-error', { code: 'rate_limited', message: 'slow down' });
    assert.ok(d.has('start-timer', { name: 'register-retry' }));
    assert.equal(d.state.search.trouble, false);
  });

  test('a register-retry timer that is no longer wanted is refused', () => {
    const d = new Driver().toSearching();
    assert.match(d.refuse({ type: 'timer', name: 'register-retry' }), /registration is sent/);
  });

  test('bad_name: back to idle with the socket closed and the name focused; Start searches again at once', () => {
    const d = new Driver().toSearching();
    d.send('matcher-error', { code: 'bad_name', message: 'too long' });
    assert.equal(d.state.phase, 'idle');
    assert.equal(d.state.link.state, 'off');
    assert.ok(d.has('close-matcher'));
    assert.ok(d.has('focus', { target: 'name' }));
    assert.match(d.state.notice.text, /That name cannot be used: too long/);
    // The camera is still on: no second prompt.
    const effects = d.send('start');
    assert.equal(d.state.phase, 'searching');
    assert.ok(effects.some((e) => e.type === 'open-matcher'));
    assert.ok(!effects.some((e) => e.type === 'open-media'));
  });

  test('name_taken is handled like a refused name', () => {
    const d = new Driver().toSearching();
    d.send('matcher-error', { code: 'name_taken', message: 'name already connected' });
    assert.equal(d.state.phase, 'idle');
    assert.equal(d.state.notice.kind, 'error');
  });

  test('an unknown matcher error while searching is shown and logged, nothing else changes', () => {
    const d = new Driver().toSearching();
    d.send('matcher-error', { code: 'too_long', message: 'message too long' });
    assert.equal(d.state.phase, 'searching');
    assert.deepEqual(d.state.notice, { text: 'Server: message too long', kind: 'info' });
    assert.ok(d.has('log'));
  });

  test('no_partner changes nothing', () => {
    const d = new Driver().toSearching();
    const before = d.state;
    d.send('matcher-error', { code: 'no_partner' });
    assert.equal(d.state, before);
    assert.deepEqual(d.effects, []);
  });
});

describe('the matcher socket', () => {
  test('closed: retry at 0 s plus up to 1 s, then 3, 5, 7 s', () => {
    const d = new Driver().toSearchingConnecting();
    const delays = [];
    for (let i = 0; i < 8; i += 1) {
      d.send('matcher-closed');
      assert.equal(d.state.link.state, 'down');
      delays.push(d.effectsOf('start-timer')[0].ms);
      assert.deepEqual(d.timer('matcher-retry'), [{ type: 'open-matcher' }]);
      assert.equal(d.state.link.state, 'connecting');
    }
    // random() is 0.5 here: no jitter (the first: half of up to 1 s).
    assert.deepEqual(delays, [500, 3000, 5000, 7000, 7000, 7000, 7000, 7000]);
    d.send('matcher-hello');
    assert.equal(d.state.link.attempt, 0, 'a hello resets the backoff');
  });

  test('reconnect jitter: the first within 1 s, the others ±50%', () => {
    assert.equal(reconnectDelay(0, () => 0), 0);
    assert.equal(reconnectDelay(0, () => 0.999), 999);
    assert.equal(reconnectDelay(1, () => 0), 1500);
    assert.equal(reconnectDelay(1, () => 0.999999), 4500);
    assert.equal(reconnectDelay(2, () => 0), 2500);
    assert.equal(reconnectDelay(3, () => 0.999999), 10500);
    assert.equal(reconnectDelay(9, () => 0), 3500);
  });

  test('losing the socket while searching loses the registration; the next hello registers again', () => {
    const d = new Driver().toSearching();
    d.send('matcher-error', { code: 'unavailable' });
    d.send('matcher-closed');
    assert.ok(d.has('cancel-timer', { name: 'register-retry' }), 'the pending register retry is dropped');
    assert.equal(d.state.search.reg, 'waiting');
    d.timer('matcher-retry');
    assert.deepEqual(d.send('matcher-hello'), [{ type: 'send-register' }]);
  });

  test('drain reconnect from the gateway: a new socket at once, resuming the session, then register again', () => {
    const d = new Driver().toSearching();
    d.send('matcher-queued');
    const effects = d.send('matcher-reconnect', { reason: 'draining' });
    assert.deepEqual(effects, [
      { type: 'close-matcher', cancel: false },
      { type: 'open-matcher', resume: 's1' },
      { type: 'cancel-timer', name: 'register-retry' },
    ]);
    assert.equal(d.state.link.state, 'connecting');
    assert.equal(d.state.link.draining, true);
    assert.equal(d.state.search.reg, 'waiting');
    // The resumed session says first whether it still waits: the draining
    // gateway withdrew it, so it is not, and the page registers.
    assert.deepEqual(d.send('matcher-hello', { session: 's1' }), []);
    assert.equal(d.state.search.reg, 'resuming');
    assert.equal(d.state.link.draining, false);
    assert.deepEqual(d.send('matcher-cancelled'), [{ type: 'send-register' }]);
  });

  test('a socket lost while waiting resumes its session: still queued, or matched meanwhile, without registering twice', () => {
    const d = new Driver().toSearching();
    d.send('matcher-queued');
    d.send('matcher-closed');
    assert.deepEqual(d.timer('matcher-retry'), [{ type: 'open-matcher', resume: 's1' }]);
    assert.deepEqual(d.send('matcher-hello', { session: 's1' }), []);
    d.send('matcher-queued');
    assert.equal(d.state.search.reg, 'queued');
    d.send('matcher-closed');
    d.timer('matcher-retry');
    d.send('matcher-hello', { session: 's1' });
    d.send('matcher-matched', { ticket: 't', signaller_url: 'ws://s', peer_name: 'Bob', initiator: true });
    assert.equal(d.state.phase, 'joining');
  });

  test('a session the matcher no longer has is forgotten: the next socket starts anew and registers', () => {
    const d = new Driver().toSearching();
    d.send('matcher-closed');
    d.timer('matcher-retry');
    d.send('matcher-hello', { session: 's1' });
    d.send('matcher-error', { code: 'expired_resume', message: 'too late' });
    assert.equal(d.state.link.session, null);
    d.send('matcher-closed');
    assert.deepEqual(d.timer('matcher-retry'), [{ type: 'open-matcher' }]);
    assert.deepEqual(d.send('matcher-hello', { session: 's2' }), [{ type: 'send-register' }]);
  });

  test('back online: a socket waiting to reconnect goes at once', () => {
    const d = new Driver().toSearching();
    d.send('matcher-closed');
    assert.deepEqual(d.send('online'), [
      { type: 'cancel-timer', name: 'matcher-retry' },
      { type: 'open-matcher', resume: 's1' },
    ]);
    assert.equal(d.state.link.state, 'connecting');
    // Up already: nothing to do.
    d.send('matcher-hello', { session: 's1' });
    assert.deepEqual(d.send('online'), []);
  });

  test('register answered draining: moves the socket like reconnect', () => {
    const d = new Driver().toSearching();
    d.send('matcher-error', { code: 'draining', message: 'shutting down' });
    assert.ok(d.has('close-matcher'));
    assert.ok(d.has('open-matcher'));
    assert.equal(d.state.link.draining, true);
  });

  test('drain reconnect during a call keeps the call and does not register', () => {
    const d = new Driver().toInCall();
    const effects = d.send('matcher-reconnect', { reason: 'draining' });
    assert.deepEqual(effects, [{ type: 'close-matcher', cancel: false }, { type: 'open-matcher', resume: 's1' }]);
    assert.equal(d.state.phase, 'in-call');
    assert.deepEqual(d.send('matcher-hello', { session: 's1' }), []);
  });

  test('link events in the wrong link state are refused', () => {
    const d = new Driver();
    d.refuse('matcher-hello');
    d.refuse('matcher-closed');
    d.refuse('matcher-reconnect');
    d.refuse({ type: 'timer', name: 'matcher-retry' });
    d.toSearchingConnecting();
    d.refuse('matcher-reconnect');
    d.refuse({ type: 'timer', name: 'matcher-retry' });
    d.send('matcher-hello');
    d.refuse('matcher-hello');
  });

  test('matcher frames while its socket is not up are refused', () => {
    const d = new Driver().toSearchingConnecting();
    assert.match(d.refuse('matcher-queued'), /matcher socket is connecting/);
    d.refuse('matcher-matched', { ticket: 't', signaller_url: 'ws://x' });
    d.refuse('matcher-error', { code: 'unavailable' });
  });
});

describe('joining and in the call', () => {
  test('joined, stranger not there yet: the call starts and a no-show timer runs', () => {
    const d = new Driver().toJoining({ initiator: true });
    const effects = d.room('room-joined', { peer_present: false });
    assert.equal(d.state.phase, 'in-call');
    assert.deepEqual(effects, [
      { type: 'start-call', polite: false },
      { type: 'start-timer', name: 'no-show', ms: PEER_NO_SHOW_MS },
    ]);
    d.room('room-peer-joined', { peer_name: 'Bobby' });
    assert.deepEqual(d.effects, [{ type: 'cancel-timer', name: 'no-show' }, { type: 'call-peer-present' }]);
    assert.equal(d.state.peerName, 'Bobby');
  });

  test('joined with the stranger there: the call is told at once', () => {
    const d = new Driver().toJoining();
    assert.deepEqual(d.room('room-joined', { peer_present: true }), [
      { type: 'start-call', polite: false },
      { type: 'call-peer-present' },
    ]);
  });

  test('the stranger never arrives: leave the room and search again', () => {
    const d = new Driver().toJoining({ peer: 'Bob' });
    d.room('room-joined', { peer_present: false });
    d.advance(PEER_NO_SHOW_MS);
    const effects = d.timer('no-show');
    assert.equal(d.state.phase, 'searching');
    assert.equal(d.state.room, null);
    assert.deepEqual(effects, leftAndRegistered('Bob never arrived. Looking for someone else…'));
  });

  test('a no-show timer after the stranger came is refused', () => {
    const d = new Driver().toInCall();
    assert.match(d.refuse({ type: 'timer', name: 'no-show' }), /peer is present/);
  });

  test('signals go to the call; a signal also proves the stranger is there', () => {
    const d = new Driver().toJoining();
    d.room('room-joined', { peer_present: false });
    d.room('room-signal', { data: { type: 'offer', sdp: 'v=0' } });
    assert.deepEqual(d.effects, [
      { type: 'cancel-timer', name: 'no-show' },
      { type: 'call-receive', data: { type: 'offer', sdp: 'v=0' } },
    ]);
    assert.equal(d.state.room.peerPresent, true);
  });

  test('signals before the join are refused (the signaller sends none)', () => {
    const d = new Driver().toJoining();
    assert.match(d.refuse('room-signal', { room: d.roomId, data: {} }), /not allowed in joining/);
  });

  test('the call connects; chat goes out only in the call', () => {
    const d = new Driver().toJoining();
    d.refuse('send-chat', { text: 'too early' });
    d.room('room-joined', { peer_present: true });
    d.room('call-state', { state: 'connected' });
    assert.equal(d.state.room.callState, 'connected');
    assert.deepEqual(d.send('send-chat', { text: 'hi' }), [{ type: 'room-chat', text: 'hi' }]);
    d.room('room-chat', { sender: 'Bob', message: 'hello', timestamp: 1 });
    assert.deepEqual(d.effects, [{ type: 'chat-peer', who: 'Bob', text: 'hello', timestamp: 1 }]);
  });

  test('the remote stream is attached', () => {
    const d = new Driver().toInCall();
    const stream = { id: 'remote' };
    assert.deepEqual(d.room('call-remote-stream', { stream }), [{ type: 'attach-remote', stream }]);
    assert.equal(d.state.room.remoteStream, true);
  });

  test('events of an older room are refused', () => {
    const d = new Driver().toInCall();
    const old = d.roomId;
    d.send('next');
    d.send('matcher-queued');
    d.send('matcher-matched', { initiator: true, peer_name: 'Carol', ticket: 't2', signaller_url: 'ws://sig/ws' });
    assert.notEqual(d.state.room.id, old);
    assert.match(d.refuse('room-peer-left', { room: old, reason: 'left' }), /not the current room/);
    d.refuse('room-joined', { room: old, peer_present: true });
    d.refuse('call-state', { room: old, state: 'failed' });
  });

  test('rejoining while joining is shown; joined ends it', () => {
    const d = new Driver().toJoining();
    d.room('room-rejoining');
    assert.equal(d.state.room.rejoining, true);
    d.room('room-joined', { peer_present: true });
    assert.equal(d.state.room.rejoining, false);
  });

  test('signaller too_long and rate_limited say the line was not sent; other errors are logged', () => {
    const d = new Driver().toInCall();
    d.room('room-error', { code: 'too_long', message: 'message too long' });
    assert.deepEqual(d.effects, [{ type: 'chat-system', text: 'Not sent: message too long.' }]);
    d.room('room-error', { code: 'rate_limited' });
    assert.deepEqual(d.effects, [{ type: 'chat-system', text: 'Not sent: rate_limited.' }]);
    d.room('room-error', { code: 'room_closed', message: 'over' });
    assert.deepEqual(d.effects, [{ type: 'log', message: 'signaller error room_closed: over' }]);
    assert.equal(d.state.phase, 'in-call');
  });

  test('the signaller sends no reconnect: there is no such event', () => {
    const d = new Driver().toInCall();
    assert.match(d.refuse('room-reconnect', { room: d.roomId }), /not allowed in in-call/);
  });

  test('matched while already in a call: the room is released, nothing else changes', () => {
    const d = new Driver().toInCall();
    const before = d.state;
    const effects = d.send('matcher-matched', { initiator: true, ticket: 'T2', signaller_url: 'ws://s/ws' });
    assert.deepEqual(effects, [{ type: 'release-room', url: 'ws://s/ws', ticket: 'T2' }]);
    assert.equal(d.state, before);
  });
});

describe('the room ends', () => {
  for (const [reason, line] of [
    ['left', 'Bob left.'],
    ['disconnected', 'Bob left (disconnected).'],
    ['node_lost', 'Bob left: their connection to the server was lost.'],
    ['drained', 'Bob left: their connection to the server was lost.'],
  ]) {
    test(`peer-left (${reason}): the room closes without a leave, Next is offered`, () => {
      const d = new Driver().toInCall({ peer: 'Bob' });
      const effects = d.room('room-peer-left', { reason });
      assert.equal(d.state.phase, 'peer-left');
      assert.equal(d.state.endReason, reason);
      assert.equal(d.state.room, null);
      assert.deepEqual(effects, [
        { type: 'cancel-timer', name: 'no-show' },
        { type: 'close-room', leave: false },
        { type: 'chat-system', text: line },
        { type: 'focus', target: 'next' },
      ]);
      assert.ok(allowed(d.state, 'next'));
      assert.ok(allowed(d.state, 'stop'));
    });
  }

  test('peer-left while still joining', () => {
    const d = new Driver().toJoining();
    d.room('room-peer-left', { reason: 'disconnected' });
    assert.equal(d.state.phase, 'peer-left');
  });

  test('lost: the room could not be reached', () => {
    const d = new Driver().toJoining({ peer: 'Bob' });
    d.room('room-lost', { reason: 'the server restarted' });
    assert.equal(d.state.phase, 'lost');
    assert.equal(d.state.endReason, 'the server restarted');
    assert.ok(d.has('chat-system', { text: 'Lost the connection to Bob.' }));
    assert.ok(d.has('close-room', { leave: false }));
  });

  test('after the room ended, its late events are refused', () => {
    const d = new Driver().toInCall();
    d.room('room-peer-left', { reason: 'left' });
    d.refuse('room-chat', { room: d.roomId, message: 'late' });
    d.refuse('call-state', { room: d.roomId, state: 'connected' });
    d.refuse('send-chat', { text: 'hello?' });
  });
});

describe('Next', () => {
  test('Next in a call: tell the stranger, say so, register again on the open socket', () => {
    const d = new Driver().toInCall();
    const effects = d.send('next');
    assert.equal(d.state.phase, 'searching');
    assert.deepEqual(effects, leftAndRegistered('You left the chat.'));
  });

  test('Next while joining also leaves the room', () => {
    const d = new Driver().toJoining();
    d.send('next');
    assert.ok(d.has('close-room', { leave: true }));
    assert.equal(d.state.phase, 'searching');
  });

  test('Next after the stranger left: no leave line, no room to close', () => {
    const d = new Driver().toInCall();
    d.room('room-peer-left', { reason: 'left' });
    assert.deepEqual(d.send('next'), [{ type: 'send-register' }]);
  });

  test('Next while the matcher socket is down waits for it', () => {
    const d = new Driver().toInCall();
    d.room('room-lost', { reason: 'x' });
    d.send('matcher-closed');
    assert.deepEqual(d.send('next'), []);
    assert.equal(d.state.search.reg, 'waiting');
    d.timer('matcher-retry');
    assert.deepEqual(d.send('matcher-hello'), [{ type: 'send-register' }]);
  });
});

describe('reconnecting in a call', () => {
  test('our room socket drops and comes back: reconnecting, then the call as it was', () => {
    const d = new Driver().toInCall();
    d.room('room-reconnecting', { until: d.now + 15000 });
    assert.equal(d.state.room.reconnecting, true);
    assert.equal(d.state.phase, 'in-call');
    d.room('room-resumed', { peer_present: true, peer_reconnecting: false });
    assert.equal(d.state.room.reconnecting, false);
    assert.equal(d.state.room.peerAway, false);
  });

  test('the stranger drops and comes back; or never does: peer-left timeout', () => {
    const d = new Driver().toInCall();
    d.room('room-peer-reconnecting', { peer_name: 'Bob' });
    assert.equal(d.state.room.peerAway, true);
    d.room('room-peer-resumed', { peer_name: 'Bob' });
    assert.equal(d.state.room.peerAway, false);
    d.room('room-peer-reconnecting', { peer_name: 'Bob' });
    d.room('room-peer-left', { reason: 'timeout' });
    assert.equal(d.state.phase, 'peer-left');
    assert.equal(d.state.endReason, 'timeout');
  });

  test('given up after the grace window: lost, with the reason', () => {
    const d = new Driver().toInCall();
    d.room('room-reconnecting', { until: d.now + 15000 });
    d.room('room-lost', { reason: 'could not reconnect to the server within 15 s' });
    assert.equal(d.state.phase, 'lost');
    assert.match(d.state.endReason, /could not reconnect/);
  });

  test('back online in a call: the room socket reconnects now and ICE restarts', () => {
    const d = new Driver().toInCall();
    assert.deepEqual(d.send('online'), [{ type: 'room-reconnect-now' }, { type: 'call-restart-ice' }]);
    assert.equal(d.state.phase, 'in-call');
  });
});

describe('Stop everywhere', () => {
  const reach = {
    searching: (d) => d.toSearching(),
    'searching (socket connecting)': (d) => d.toSearchingConnecting(),
    joining: (d) => d.toJoining(),
    'in-call': (d) => d.toInCall(),
    'peer-left': (d) => d.toInCall().room('room-peer-left', { reason: 'left' }),
    lost: (d) => d.toInCall().room('room-lost', { reason: 'x' }),
  };
  for (const [name, go] of Object.entries(reach)) {
    test(`Stop in ${name}: stopped, every socket closed, camera off`, () => {
      const d = new Driver();
      go(d);
      const hadRoom = !!d.state.room;
      const cancel = d.state.phase === 'searching' && d.state.link.state === 'up';
      const effects = d.send('stop');
      assert.equal(d.state.phase, 'stopped');
      assert.equal(d.state.room, null);
      assert.equal(d.state.link.state, 'off');
      assert.equal(d.state.hasMedia, false);
      assert.ok(d.has('stop-media'));
      assert.ok(d.has('close-matcher', { cancel }), 'cancel is sent only when registered on an open socket');
      assert.equal(effects.some((e) => e.type === 'close-room' && e.leave), hadRoom);
      assert.ok(d.has('cancel-timer', { name: 'register-retry' }));
      assert.ok(d.has('cancel-timer', { name: 'matcher-retry' }));
    });
  }

  for (const phase of ['idle', 'starting', 'media-error', 'stopped']) {
    test(`Stop in ${phase} is refused`, () => {
      const d = new Driver();
      if (phase === 'starting') d.send('start');
      if (phase === 'media-error') {
        d.send('start');
        d.send('media-failed', { code: 'denied' });
      }
      if (phase === 'stopped') d.toSearching().send('stop');
      assert.equal(d.state.phase, phase);
      d.refuse('stop');
    });
  }

  test('after Stop: Start asks for the camera again and uses a fresh socket', () => {
    const d = new Driver().toInCall();
    d.send('stop');
    d.refuse('matcher-hello');
    assert.deepEqual(d.send('start'), [{ type: 'open-media' }]);
    d.send('media-ready');
    assert.ok(d.has('open-matcher'));
    assert.equal(d.state.link.everUp, false);
  });

  test('in a room, chat relayed by the matcher (a previous partner) is refused, never shown', () => {
    const d = new Driver().toInCall();
    d.refuse('matcher-chat', { sender: 'old partner', message: 'hi', timestamp: 1 });
  });

  test('page-hide stops where Stop is allowed, and is a no-op elsewhere', () => {
    const d = new Driver().toInCall();
    d.send('page-hide');
    assert.equal(d.state.phase, 'stopped');
    assert.ok(d.has('close-room', { leave: true }));
    const before = d.state;
    assert.deepEqual(d.send('page-hide'), []);
    assert.equal(d.state, before);
  });
});

describe('the table as a whole', () => {
  const EVENTS = [
    'start', 'next', 'stop', 'send-chat', 'page-hide', 'media-ready', 'media-failed',
    'matcher-hello', 'matcher-closed', 'matcher-reconnect', 'matcher-queued', 'matcher-matched', 'matcher-error', 'matcher-chat',
    'room-joined', 'room-peer-joined', 'room-signal', 'room-chat', 'room-peer-left', 'room-lost', 'room-rejoining', 'room-error',
    'room-reconnecting', 'room-resumed', 'room-peer-reconnecting', 'room-peer-resumed', 'matcher-cancelled', 'online',
    'call-state', 'call-remote-stream', 'timer:no-show', 'timer:register-retry', 'timer:matcher-retry',
  ];
  const states = () => {
    const out = { idle: new Driver() };
    out.starting = new Driver();
    out.starting.send('start');
    out['media-error'] = new Driver();
    out['media-error'].send('start');
    out['media-error'].send('media-failed', { code: 'busy' });
    out.searching = new Driver().toSearching();
    out.joining = new Driver().toJoining();
    out['in-call'] = new Driver().toInCall();
    out['peer-left'] = new Driver().toInCall();
    out['peer-left'].room('room-peer-left', { reason: 'left' });
    out.lost = new Driver().toInCall();
    out.lost.room('room-lost', { reason: 'x' });
    out.stopped = new Driver().toSearching();
    out.stopped.send('stop');
    return out;
  };

  test('every phase is reachable', () => {
    const reached = Object.entries(states()).map(([name, d]) => {
      assert.equal(d.state.phase, name);
      return name;
    });
    assert.deepEqual(reached.sort(), [...PHASES].sort());
  });

  test('allowed() agrees with step(): an event is refused exactly when it is not allowed', () => {
    const full = {
      text: 'hi', note: null, code: 'no_partner', message: 'm', session: 's', ticket: 't', signaller_url: 'ws://s',
      peer_present: true, data: { type: 'candidate' }, state: 'connecting', stream: {}, reason: 'left',
    };
    for (const [name, d] of Object.entries(states())) {
      for (const e of EVENTS) {
        const event = e.startsWith('timer:')
          ? { type: 'timer', name: e.slice(6) }
          : { type: e, room: d.state.room?.id, ...full };
        const out = step(d.state, event, ENV);
        // Guards inside a handler may refuse an allowed event (no-show with the peer present,
        // a register-retry with no retry due); never the other way round.
        if (!allowed(d.state, e)) assert.ok(out.refused, `${e} in ${name} is not allowed but was accepted`);
        if (out.refused) assert.equal(out.state, d.state, `${e} in ${name}: refused but changed the state`);
      }
    }
  });

  test('step never modifies the state it is given', () => {
    const s = initialState();
    const frozen = JSON.stringify(s);
    step(s, { type: 'start' }, ENV);
    assert.equal(JSON.stringify(s), frozen);
    const d = new Driver().toInCall();
    const snapshot = JSON.stringify(d.state);
    step(d.state, { type: 'room-peer-left', room: d.roomId, reason: 'left' }, ENV);
    step(d.state, { type: 'next' }, ENV);
    assert.equal(JSON.stringify(d.state), snapshot);
  });
});
