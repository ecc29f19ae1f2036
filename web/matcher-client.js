// One matcher socket (native protocol, `WS /ws` on the page's own origin):
// hello → register → queued → matched. It does not reconnect by itself:
// when it closes it says so (`closed`), and the page's state machine
// (state.js) decides when to open a new one, so the backoff lives in one
// place and is tested there.
//
// Events (CustomEvent, payload in `detail`):
//   hello      {session, iceServers} the session is open; register now if you want a partner.
//                                    iceServers (RTCIceServer[], TURN credential included) or undefined
//   ice-servers {iceServers, ttl}    fresh ICE servers before the earlier credential expires
//   queued     {}                    in the pool
//   matched    {room_code, initiator, peer_name, ticket, signaller_url}
//   error      {code, message}
//   reconnect  {reason}              the gateway is draining: open a new socket now
//   cancelled  {}                    not waiting (after a resume: register again)
//   closed     {}                    the socket is gone (never after `close()`)
//
// A socket opened with `resume` (the session id of the previous socket's
// hello) continues that session: within the server's grace window it keeps
// its place in the pool or gets the `matched` made meanwhile.

import { closeQuietly, parseEvent } from './socket.js';

const PING_EVERY_MS = 20000;

export class MatcherClient extends EventTarget {
  /**
   * @param {string} url  e.g. ws://host/ws
   * @param {string} [resume]  the session to continue
   * @param {string} [device]  this browser's device identity (from an earlier hello)
   */
  constructor(url, resume, device) {
    super();
    const query = [];
    if (resume) query.push(`resume=${encodeURIComponent(resume)}`);
    if (device) query.push(`device=${encodeURIComponent(device)}`);
    this.url = query.length ? `${url}?${query.join('&')}` : url;
    this.ws = null;
    this.session = null;
    this.pingTimer = null;
  }

  /** Connect once. */
  open() {
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      console.warn('matcher: bad socket URL', this.url, err);
      queueMicrotask(() => this.#emit('closed'));
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.#onFrame(ws, ev.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.#drop();
      this.#emit('closed');
    };
    // `error` is always followed by `close`; nothing to do here.
    ws.onerror = () => {};
  }

  /** Disconnect for good; no event follows. */
  close() {
    const ws = this.ws;
    this.#drop();
    closeQuietly(ws, 1000, 'bye');
  }

  /**
   * Join the waiting pool; `name` may be empty for the default; `prefs` are
   * the matchmaking fields (interests, language, strict), if any.
   */
  register(name, prefs = {}) {
    const frame = { event: 'register', ...prefs };
    if (name) frame.name = name;
    return this.#send(frame);
  }

  cancel() {
    return this.#send({ event: 'cancel' });
  }

  /** Report the stranger met last (`reason`: nudity, harassment, spam, underage, other). */
  report(reason) {
    return this.#send({ event: 'report', reason });
  }

  /** Never be paired with the stranger met last again. */
  block() {
    return this.#send({ event: 'block' });
  }

  #send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.session === null) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #onFrame(ws, data) {
    if (this.ws !== ws) return;
    const msg = parseEvent(data, 'matcher');
    if (!msg) return;
    switch (msg.event) {
      case 'hello':
        this.session = msg.session;
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => this.#send({ event: 'ping' }), PING_EVERY_MS);
        this.#emit('hello', {
          session: msg.session,
          iceServers: msg.iceServers,
          ...(msg.device ? { device: msg.device } : {}),
        });
        break;
      case 'ice-servers':
      case 'reported':
      case 'blocked':
      case 'queued':
      case 'cancelled':
      case 'matched':
      case 'error':
      case 'reconnect':
        this.#emit(msg.event, msg);
        break;
      default:
        // pong, chat (legacy chat relayed by the matcher: the page
        // chats through the room only), and whatever newer servers may add.
        break;
    }
  }

  #drop() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.ws = null;
    this.session = null;
  }
}
