// The matcher socket (native protocol, `WS /ws` on the page's own origin):
// hello → register → queued → matched. It reconnects by itself with backoff
// and tells the page what is going on through events.
//
// Events (CustomEvent, payload in `detail`):
//   hello      {session}             a (new) session is open; register now if you want a partner
//   queued     {}                    in the pool
//   cancelled  {}
//   matched    {room_code, initiator, peer_name, ticket, signaller_url}
//   chat       {sender, message, timestamp}   (legacy-style chat via the matcher)
//   error      {code, message}
//   down       {retryInMs, everUp, draining}  the socket is gone; a retry is scheduled

import { Backoff } from './backoff.js';
import { closeQuietly, parseEvent } from './socket.js';

const PING_EVERY_MS = 20000;

export class MatcherClient extends EventTarget {
  /** @param {string} url  e.g. ws://host/ws */
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.session = null;
    this.wanted = false; // whether we should stay connected
    this.everUp = false; // whether any socket reached `hello`
    this.backoff = new Backoff(500, 15000);
    this.retryTimer = null;
    this.pingTimer = null;
  }

  /** Connect (and keep reconnecting) until `close()`. */
  open() {
    this.wanted = true;
    if (!this.ws) this.#connect();
  }

  /** Disconnect for good. */
  close() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.#drop(1000, 'bye');
  }

  /** Whether a session is open (hello received) and frames can be sent. */
  get ready() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN && this.session !== null;
  }

  /** Join the waiting pool; `name` may be empty for the default. */
  register(name) {
    const frame = { event: 'register' };
    if (name) frame.name = name;
    return this.#send(frame);
  }

  cancel() {
    return this.#send({ event: 'cancel' });
  }

  /** Reconnect right away (the server asked us to). */
  reconnectNow(reason) {
    this.#drop(1000, 'reconnect');
    this.#scheduleRetry(0, true, reason);
  }

  #send(frame) {
    if (!this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #connect() {
    this.session = null;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      console.warn('matcher: bad socket URL', this.url, err);
      this.#scheduleRetry(this.backoff.next(), false);
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this.#onFrame(ws, ev.data);
    ws.onclose = () => {
      if (this.ws !== ws) return; // an old socket we replaced
      this.ws = null;
      this.session = null;
      clearInterval(this.pingTimer);
      if (this.wanted) this.#scheduleRetry(this.backoff.next(), false);
    };
    // `error` is always followed by `close`; nothing to do here.
    ws.onerror = () => {};
  }

  #onFrame(ws, data) {
    if (this.ws !== ws) return;
    const msg = parseEvent(data, 'matcher');
    if (!msg) return;
    switch (msg.event) {
      case 'hello':
        this.session = msg.session;
        this.everUp = true;
        this.backoff.reset();
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => this.#send({ event: 'ping' }), PING_EVERY_MS);
        this.#emit('hello', { session: msg.session });
        break;
      case 'reconnect':
        // The gateway is draining: go elsewhere (the load balancer decides) now.
        this.reconnectNow(msg.reason || 'draining');
        break;
      case 'pong':
        break;
      case 'queued':
      case 'cancelled':
      case 'matched':
      case 'chat':
      case 'error':
        this.#emit(msg.event, msg);
        break;
      default:
        // Newer servers may add events; an old page ignores them.
        break;
    }
  }

  #drop(code, reason) {
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    this.session = null;
    closeQuietly(ws, code, reason);
  }

  #scheduleRetry(delayMs, draining, reason) {
    clearTimeout(this.retryTimer);
    this.#emit('down', { retryInMs: delayMs, everUp: this.everUp, draining: !!draining, reason });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.wanted && !this.ws) this.#connect();
    }, delayMs);
  }
}
