// TURN on the page, without a browser: the ICE servers the matcher hands
// out reach the calls (hello, refreshes), a relayed call says so, and a
// refused TURN credential gives a clear message instead of a silent stall.
//
//   node --test web/test/

import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { initialState, step, validIceServers } from '../state.js';
import { controls, statusLine } from '../view.js';
import { selectedRoute } from '../call.js';

const NOW = 1_000_000;
const TURN = [
  { urls: ['stun:turn.example:3478'] },
  { urls: ['turn:turn.example:3478'], username: '1700003600:S1', credential: 'KLy/+VL1wacjoJf2TaSTNFEgT/s=' },
];

/** Apply events that must be accepted; returns [state, effects of the last]. */
function run(events, state = initialState()) {
  let effects = [];
  for (const event of events) {
    const out = step(state, event, { now: NOW, random: () => 0.5 });
    assert.equal(out.refused, undefined, `${event.type} refused: ${out.refused}`);
    state = out.state;
    effects = out.effects;
  }
  return [state, effects];
}

const searching = [{ type: 'start' }, { type: 'media-ready' }];
const hello = (iceServers) => ({ type: 'matcher-hello', session: 'S1', iceServers });
const matched = { type: 'matcher-matched', room_code: 'R', initiator: true, peer_name: 'Bob', ticket: 't', signaller_url: 'ws://s/ws' };

/** In a call with Bob, the ICE servers of `hello` held. */
function inCall(iceServers = TURN) {
  const [s] = run([...searching, hello(iceServers), { type: 'matcher-queued' }, matched]);
  return run([{ type: 'room-joined', room: s.room.id, peer_present: true }], s)[0];
}

describe('the ICE servers handed out by the matcher', () => {
  test('hello gives them; the call started later is given them by the shell from the state', () => {
    const [s] = run([...searching, hello(TURN)]);
    assert.deepEqual(s.iceServers, TURN);
    // A hello without any (none configured) keeps the page on none.
    assert.deepEqual(run([...searching, hello(undefined)])[0].iceServers, []);
  });

  test('a refresh replaces them, and a call in progress is given them at once', () => {
    const fresh = [{ urls: ['turn:turn.example:3478'], username: '1700007200:S1', credential: 'x' }];
    const [searchingState, effects] = run([...searching, hello(TURN), { type: 'matcher-ice-servers', iceServers: fresh, ttl: 3600 }]);
    assert.deepEqual(searchingState.iceServers, fresh);
    assert.deepEqual(effects, [], 'no call to update');
    const [s, inCallEffects] = run([{ type: 'matcher-ice-servers', iceServers: fresh }], inCall());
    assert.deepEqual(s.iceServers, fresh);
    assert.deepEqual(inCallEffects, [{ type: 'call-ice-servers', iceServers: fresh }]);
  });

  test('a refresh that is not a server list, or arrives with the socket down, is refused', () => {
    const [s] = run([...searching, hello(TURN)]);
    const bad = step(s, { type: 'matcher-ice-servers', iceServers: [{ username: 'u' }] }, { now: NOW });
    assert.match(bad.refused, /without a list/);
    const [down] = run([{ type: 'matcher-closed' }], s);
    assert.ok(step(down, { type: 'matcher-ice-servers', iceServers: TURN }, { now: NOW }).refused);
    assert.equal(validIceServers('turn:x'), null);
    assert.equal(validIceServers([{ urls: [] }]), null);
    assert.deepEqual(validIceServers([{ urls: 'stun:x' }]), [{ urls: 'stun:x' }]);
  });
});

describe('the route of the call', () => {
  test('a call carried by the TURN relay says "Connected via relay"', () => {
    let s = inCall();
    const id = s.room.id;
    [s] = run([{ type: 'call-state', room: id, state: 'connected' }, { type: 'call-route', room: id, relay: true, local: 'relay', remote: 'host' }], s);
    assert.deepEqual(statusLine(s, NOW), ['connected', 'Connected via relay to Bob. Say hi!']);
    [s] = run([{ type: 'call-route', room: id, relay: false, local: 'host', remote: 'host' }], s);
    assert.deepEqual(statusLine(s, NOW), ['connected', 'Connected to Bob. Say hi!']);
  });

  test('the selected candidate pair is read from the stats report', () => {
    const report = (pairs, transport = true) =>
      new Map(
        [
          { id: 'L1', type: 'local-candidate', candidateType: 'relay' },
          { id: 'L2', type: 'local-candidate', candidateType: 'host' },
          { id: 'R1', type: 'remote-candidate', candidateType: 'host' },
          { id: 'P1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', ...pairs.P1 },
          { id: 'P2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R1', ...pairs.P2 },
          ...(transport ? [{ id: 'T', type: 'transport', selectedCandidatePairId: pairs.selected }] : []),
        ].map((r) => [r.id, r]),
      );
    assert.deepEqual(selectedRoute(report({ selected: 'P1' })), { relay: true, local: 'relay', remote: 'host' });
    assert.deepEqual(selectedRoute(report({ selected: 'P2' })), { relay: false, local: 'host', remote: 'host' });
    assert.equal(selectedRoute(report({ selected: undefined })), null);
    assert.deepEqual(selectedRoute(report({ P1: { selected: true } }, false)), { relay: true, local: 'relay', remote: 'host' });
  });
});

describe('a refused TURN credential', () => {
  test('a 401 from the TURN server gives a clear message and points at Next, not a silent "Connecting…"', () => {
    let s = inCall();
    let effects;
    [s, effects] = run([{ type: 'call-ice-error', room: s.room.id, code: 401, text: 'Unauthorized', url: 'turn:turn.example:3478?transport=udp' }], s);
    assert.equal(effects[0].type, 'log');
    assert.equal(s.notice.kind, 'error');
    assert.match(s.notice.text, /relay server refused our credentials \(TURN error 401: Unauthorized\)/);
    const [state, text] = statusLine(s, NOW);
    assert.equal(state, 'relay-refused');
    assert.match(text, /refused our credentials/);
    assert.ok(controls(s, NOW).nextAttention);
    // Connected after all (another route worked): the message goes.
    [s] = run([{ type: 'call-state', room: s.room.id, state: 'connected' }], s);
    assert.equal(s.notice, null);
    assert.equal(statusLine(s, NOW)[0], 'connected');
  });

  test('an unreachable STUN server is only logged: other candidates may work', () => {
    const before = inCall();
    const [s, effects] = run([{ type: 'call-ice-error', room: before.room.id, code: 701, text: 'timeout', url: 'stun:turn.example:3478' }], before);
    assert.deepEqual(effects.map((e) => e.type), ['log']);
    assert.equal(s.notice, null);
    assert.equal(statusLine(s, NOW)[0], 'connecting');
  });
});

describe('MatcherClient', () => {
  class FakeWebSocket {
    static OPEN = 1;
    static all = [];
    constructor() {
      this.readyState = 0;
      FakeWebSocket.all.push(this);
    }
    send() {}
    close() {}
    serverSends(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
  }
  let original;
  beforeEach(() => {
    original = globalThis.WebSocket;
    globalThis.WebSocket = FakeWebSocket;
  });
  afterEach(() => {
    globalThis.WebSocket = original;
  });

  test('passes on the iceServers of hello and of ice-servers refreshes', async () => {
    const { MatcherClient } = await import('../matcher-client.js');
    const m = new MatcherClient('ws://gw/ws');
    const seen = [];
    for (const name of ['hello', 'ice-servers']) m.addEventListener(name, (ev) => seen.push([name, ev.detail]));
    m.open();
    const ws = FakeWebSocket.all.at(-1);
    ws.readyState = 1;
    ws.serverSends({ event: 'hello', session: 'S1', protocol: 1, iceServers: TURN, iceTtl: 3600 });
    ws.serverSends({ event: 'ice-servers', iceServers: TURN, ttl: 3600 });
    assert.deepEqual(seen[0], ['hello', { session: 'S1', iceServers: TURN }]);
    assert.equal(seen[1][0], 'ice-servers');
    assert.deepEqual(seen[1][1].iceServers, TURN);
    m.close();
  });
});
