// The signaller socket for one room (native protocol): join with the ticket
// from `matched`, then relay WebRTC signals and chat with the one peer.
//
// Events (CustomEvent, payload in `detail`):
//   joined       {room_code, role, peer_present, peer_name}  (once per room)
//   peer-joined  {peer_name}
//   signal       {from, data}
//   chat         {sender, message, timestamp}
//   peer-left    {peer_name, reason}
//   error        {code, message}
//   rejoining    {}        joining again after a pause (the join was refused for now)
//   lost         {reason}  the room cannot be reached any more (socket gone, join refused)
//
// The signaller delivers each room event exactly once (what the peer sent
// before our join, then live events), and a socket is never joined again
// after a successful join (a socket lost after the join loses the room), so
// nothing here deduplicates.

import { closeQuietly, parseEvent } from './socket.js';

const PING_EVERY_MS = 20000;
const JOIN_TIMEOUT_MS = 10000;
const MAX_REJOINS = 5;

/** Join refusals worth another try after a pause (anything else ends the room). */
const RETRYABLE_JOIN_ERRORS = new Set(['unavailable', 'rate_limited']);

export class RoomClient extends EventTarget {
  /**
   * @param {string} url     signaller_url from `matched`
   * @param {string} ticket  ticket from `matched`
   */
  constructor(url, ticket) {
    super();
    this.url = url;
    this.ticket = ticket;
    this.ws = null;
    this.joined = false;
    this.over = false; // left, peer left, or lost: nothing more will happen
    this.outbox = []; // frames waiting for the join
    this.rejoins = 0;
    this.pingTimer = null;
    this.joinTimer = null;
  }

  open() {
    this.#connect();
  }

  /** Relay an opaque WebRTC signal to the peer (queued until joined). */
  signal(data) {
    this.#sendOrQueue({ event: 'signal', data });
  }

  /** Send a chat line to the peer. Returns false when it cannot be sent now. */
  chat(message) {
    if (!this.joined || this.over) return false;
    return this.#send({ event: 'chat', message });
  }

  /** Leave the room for good (the peer is told) and close the socket. */
  leave() {
    if (this.over) return;
    this.over = true;
    if (this.joined) this.#send({ event: 'leave' });
    this.#drop(1000, 'leave');
  }

  /** Close without ceremony (the room is already over). */
  close() {
    this.over = true;
    this.#drop(1000, 'done');
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  #sendOrQueue(frame) {
    if (this.over) return;
    if (this.joined && this.#send(frame)) return;
    this.outbox.push(frame);
  }

  #connect() {
    this.joined = false;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.#lose(`bad signaller address (${err.message})`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ event: 'join', ticket: this.ticket }));
    };
    ws.onmessage = (ev) => this.#onFrame(ws, ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.joined = false;
      clearInterval(this.pingTimer);
      clearTimeout(this.joinTimer);
      if (this.over) return;
      // 1001: the node is draining; it has already ended the room for both of us.
      // 4410: a newer connection of ours joined the room and took it over.
      const why = {
        1001: 'the server restarted',
        4410: 'the call continued on another connection',
      }[ev.code];
      this.#lose(why || 'the connection to the server closed');
    };
    ws.onerror = () => {};
    clearTimeout(this.joinTimer);
    this.joinTimer = setTimeout(() => {
      if (this.ws === ws && !this.joined) {
        this.#drop(1000, 'join timeout');
        this.#lose('the signalling server did not answer');
      }
    }, JOIN_TIMEOUT_MS);
  }

  #onFrame(ws, data) {
    if (this.ws !== ws) return;
    const msg = parseEvent(data, 'signaller');
    if (!msg) return;
    switch (msg.event) {
      case 'joined': {
        this.joined = true;
        clearTimeout(this.joinTimer);
        clearInterval(this.pingTimer);
        this.pingTimer = setInterval(() => this.#send({ event: 'ping' }), PING_EVERY_MS);
        this.#emit('joined', msg);
        const queued = this.outbox;
        this.outbox = [];
        for (const frame of queued) this.#sendOrQueue(frame);
        break;
      }
      case 'peer-joined':
        this.#emit('peer-joined', msg);
        break;
      case 'signal':
        if (msg.data && typeof msg.data === 'object') this.#emit('signal', msg);
        break;
      case 'chat':
        this.#emit('chat', msg);
        break;
      case 'peer-left':
      case 'peer-disconnected':
        this.over = true;
        this.#emit('peer-left', { peer_name: msg.peer_name, reason: msg.reason || 'disconnected' });
        this.#drop(1000, 'peer left');
        break;
      case 'error':
        if (this.joined) {
          this.#emit('error', msg);
        } else if (RETRYABLE_JOIN_ERRORS.has(msg.code) && this.rejoins < MAX_REJOINS) {
          this.#drop(1000, 'join: retry');
          this.#rejoin();
        } else {
          this.#drop(1000, 'join refused');
          this.#lose(msg.message || msg.code, msg.code);
        }
        break;
      case 'pong':
        break;
      default:
        break;
    }
  }

  #rejoin() {
    this.rejoins += 1;
    this.#emit('rejoining');
    // A growing pause (bounded by MAX_REJOINS tries) so the server can recover.
    setTimeout(() => {
      if (!this.over && !this.ws) this.#connect();
    }, 300 * 2 ** this.rejoins);
  }

  #lose(reason, code) {
    if (this.over) return;
    this.over = true;
    this.#emit('lost', { reason, code });
  }

  #drop(code, reason) {
    clearInterval(this.pingTimer);
    clearTimeout(this.joinTimer);
    const ws = this.ws;
    this.ws = null;
    this.joined = false;
    closeQuietly(ws, code, reason);
  }
}
