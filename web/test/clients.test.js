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

  test('a socket opened to resume names the session in its URL', () => {
    const m = new MatcherClient('ws://gw/ws', 'S 1');
    m.open();
    assert.equal(FakeWebSocket.all[0].url, 'ws://gw/ws?resume=S%201');
    m.close();
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
  test('a dropped socket after the join resumes with the credential and the last id; a replay seen already is dropped', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    const r = new RoomClient('ws://sig/ws', 'T');
    const seen = record(r, ['joined', 'signal', 'chat', 'reconnecting', 'resumed', 'peer-reconnecting', 'lost']);
    r.open();
    const ws = FakeWebSocket.all[0];
    ws.serverOpen();
    ws.serverSends({ event: 'joined', room_code: 'R', role: 'initiator', peer_present: true, resume: 'C1' });
    ws.serverSends({ event: 'signal', from: 'Bob', data: { n: 1 }, last_id: '5-0' });
    ws.serverSends({ event: 'chat', sender: 'Bob', message: 'hi', timestamp: 1, last_id: '6-0' });
    ws.serverCloses(1006);
    assert.equal(seen.at(-1)[0], 'reconnecting');
    assert.ok(seen.at(-1)[1].until > 0);
    // Sent while away: waits for the resume.
    r.signal({ n: 9 });
    assert.equal(r.chat('not now'), false);
    t.mock.timers.tick(1000); // the first attempt: 0 s plus up to 1 s
    assert.equal(FakeWebSocket.all.length, 2);
    const again = FakeWebSocket.all[1];
    again.serverOpen();
    assert.deepEqual(again.sent, [{ event: 'join', resume: 'C1', last_id: '6-0' }]);
    again.serverSends({ event: 'resumed', room_code: 'R', role: 'initiator', peer_present: true, peer_reconnecting: false, resume: 'C2' });
    assert.deepEqual(again.sent.at(-1), { event: 'signal', data: { n: 9 } });
    again.serverSends({ event: 'chat', sender: 'Bob', message: 'hi', timestamp: 1, last_id: '6-0' });
    again.serverSends({ event: 'peer-reconnecting', peer_name: 'Bob', last_id: '7-0' });
    assert.deepEqual(
      seen.map(([n]) => n),
      ['joined', 'signal', 'chat', 'reconnecting', 'resumed', 'peer-reconnecting'],
    );
    assert.equal(r.resume, 'C2', 'the fresh credential is kept for the next drop');
    r.close();
  });

  test('a draining node says reconnect: the client moves at once, with what it was given', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    const r = new RoomClient('ws://sig/ws', 'T');
    r.open();
    const ws = FakeWebSocket.all[0];
    ws.serverOpen();
    ws.serverSends({ event: 'joined', room_code: 'R', role: 'initiator', peer_present: true, resume: 'C1' });
    ws.serverSends({ event: 'reconnect', reason: 'draining', resume: 'C3', last_id: '8-0' });
    assert.deepEqual(ws.closed, { code: 1000, reason: 'moving' });
    t.mock.timers.tick(0);
    const moved = FakeWebSocket.all[1];
    moved.serverOpen();
    assert.deepEqual(moved.sent, [{ event: 'join', resume: 'C3', last_id: '8-0' }]);
    r.close();
  });

  test('reconnect attempts back off, and give up with a clear reason after the grace window', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    const r = new RoomClient('ws://sig/ws', 'T');
    const seen = record(r, ['reconnecting', 'lost']);
    r.open();
    FakeWebSocket.all[0].serverOpen();
    FakeWebSocket.all[0].serverSends({ event: 'joined', room_code: 'R', role: 'initiator', peer_present: true, resume: 'C1' });
    FakeWebSocket.all[0].serverCloses(1006);
    // Every attempt fails at once; between them the delays grow (0-1 s, 1.5-4.5 s, 2.5-7.5 s, ...).
    let opened = 1;
    for (let ms = 0; ms < 15000; ms += 100) {
      t.mock.timers.tick(100);
      while (FakeWebSocket.all.length > opened) {
        FakeWebSocket.all[opened].serverCloses(1006);
        opened += 1;
      }
    }
    assert.ok(opened >= 3 && opened <= 6, `${opened - 1} attempts in 15 s`);
    assert.deepEqual(seen.map(([n]) => n), ['reconnecting', 'lost']);
    assert.match(seen[1][1].reason, /could not reconnect/);
    t.mock.timers.tick(20000);
    assert.equal(FakeWebSocket.all.length, opened, 'no attempt after giving up');
  });

  test('a refused resume ends the room, saying why', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
    const r = new RoomClient('ws://sig/ws', 'T');
    const seen = record(r, ['lost']);
    r.open();
    FakeWebSocket.all[0].serverOpen();
    FakeWebSocket.all[0].serverSends({ event: 'joined', room_code: 'R', role: 'initiator', peer_present: true, resume: 'C1' });
    FakeWebSocket.all[0].serverCloses(1006);
    t.mock.timers.tick(1000);
    FakeWebSocket.all[1].serverOpen();
    FakeWebSocket.all[1].serverSends({ event: 'error', code: 'expired_resume', message: 'too late' });
    assert.deepEqual(seen, [['lost', { reason: 'the connection was gone for too long', code: 'expired_resume' }]]);
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
