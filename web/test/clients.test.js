// The two socket clients against a fake WebSocket: the matcher client
// reports what happens and leaves reconnecting to the state machine; the
// room client passes the signaller's events through once each.

import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';

class FakeWebSocket {
  static OPEN = 1;
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closed = null;
    FakeWebSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code, reason) {
    this.closed = { code, reason };
    this.readyState = 3;
  }
  // test side
  serverOpen() {
    this.readyState = 1;
    this.onopen?.();
  }
  serverSends(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  serverCloses(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

let originalWebSocket;
beforeEach(() => {
  originalWebSocket = globalThis.WebSocket;
  globalThis.WebSocket = FakeWebSocket;
  FakeWebSocket.all = [];
});
afterEach(() => {
  globalThis.WebSocket = originalWebSocket;
});

const { MatcherClient } = await import('../matcher-client.js');
const { RoomClient } = await import('../room-client.js');

function record(target, names) {
  const seen = [];
  for (const name of names) target.addEventListener(name, (ev) => seen.push([name, ev.detail]));
  return seen;
}

describe('MatcherClient', () => {
  test('hello, register, and the drain reconnect are reported; a close is reported and not retried', () => {
    const m = new MatcherClient('ws://gw/ws');
    const seen = record(m, ['hello', 'queued', 'chat', 'reconnect', 'closed']);
    m.open();
    const ws = FakeWebSocket.all[0];
    assert.equal(m.register('Ann'), false, 'nothing is sent before hello');
    ws.serverOpen();
    ws.serverSends({ event: 'hello', session: 'S', protocol: 1 });
    assert.equal(m.register('Ann'), true);
    assert.deepEqual(ws.sent, [{ event: 'register', name: 'Ann' }]);
    ws.serverSends({ event: 'queued' });
    // Legacy chat the matcher relays (from a previous partner) is not passed on.
    ws.serverSends({ event: 'chat', sender: 'old partner', message: 'hi', timestamp: 1 });
    ws.serverSends({ event: 'reconnect', reason: 'draining' });
    ws.serverCloses();
    assert.deepEqual(
      seen.map(([n]) => n),
      ['hello', 'queued', 'reconnect', 'closed'],
    );
    assert.equal(seen[2][1].reason, 'draining');
    assert.equal(FakeWebSocket.all.length, 1, 'no socket of its own accord: the state machine decides');
  });

  test('close() is quiet: no closed event, no frames delivered afterwards', () => {
    const m = new MatcherClient('ws://gw/ws');
    const seen = record(m, ['hello', 'closed', 'matched']);
    m.open();
    const ws = FakeWebSocket.all[0];
    ws.serverOpen();
    m.close();
    ws.serverSends({ event: 'matched', ticket: 't' });
    ws.serverCloses();
    assert.deepEqual(seen, []);
    assert.equal(ws.closed.code, 1000);
  });
});

describe('RoomClient', () => {
  test('a reconnect frame from the signaller is not acted on (the signaller sends none)', () => {
    const r = new RoomClient('ws://sig/ws', 'T');
    const seen = record(r, ['joined', 'rejoining', 'lost']);
    r.open();
    const ws = FakeWebSocket.all[0];
    ws.serverOpen();
    assert.deepEqual(ws.sent, [{ event: 'join', ticket: 'T' }]);
    ws.serverSends({ event: 'joined', room_code: 'R', role: 'initiator', peer_present: true });
    ws.serverSends({ event: 'reconnect', reason: 'draining' });
    assert.deepEqual(seen.map(([n]) => n), ['joined']);
    assert.equal(ws.closed, null, 'the socket stays');
    assert.equal(FakeWebSocket.all.length, 1);
    r.close();
  });

  test('every chat line is passed on as it comes (delivery is exactly once)', () => {
    const r = new RoomClient('ws://sig/ws', 'T');
    const seen = record(r, ['chat']);
    r.open();
    const ws = FakeWebSocket.all[0];
    ws.serverOpen();
    ws.serverSends({ event: 'joined', room_code: 'R', role: 'polite', peer_present: true });
    const line = { event: 'chat', sender: 'Bob', message: 'again', timestamp: 1 };
    ws.serverSends(line);
    ws.serverSends(line);
    assert.equal(seen.length, 2, 'two identical lines the peer really sent twice are both shown');
    r.close();
  });

  test('signals queued before the join go out after it, in order', () => {
    const r = new RoomClient('ws://sig/ws', 'T');
    r.open();
    const ws = FakeWebSocket.all[0];
    r.signal({ n: 1 });
    r.signal({ n: 2 });
    ws.serverOpen();
    ws.serverSends({ event: 'joined', room_code: 'R', role: 'initiator', peer_present: false });
    assert.deepEqual(ws.sent, [
      { event: 'join', ticket: 'T' },
      { event: 'signal', data: { n: 1 } },
      { event: 'signal', data: { n: 2 } },
    ]);
    r.close();
  });

  test('peer-left ends the room with its reason', () => {
    const r = new RoomClient('ws://sig/ws', 'T');
    const seen = record(r, ['peer-left', 'lost']);
    r.open();
    const ws = FakeWebSocket.all[0];
    ws.serverOpen();
    ws.serverSends({ event: 'joined', room_code: 'R', role: 'initiator', peer_present: true });
    ws.serverSends({ event: 'peer-left', peer_name: 'Bob', reason: 'node_lost' });
    ws.serverCloses(1000);
    assert.deepEqual(seen, [['peer-left', { peer_name: 'Bob', reason: 'node_lost' }]]);
  });
});
