// The signaller socket for one room (native protocol): join with the ticket
// from `matched`, then relay WebRTC signals and chat with the one peer.
//
// Events (CustomEvent, payload in `detail`):
//   joined            {room_code, role, peer_present, peer_name}  (once per room)
//   peer-joined       {peer_name}
//   signal            {from, data}
//   chat              {sender, message, timestamp}
//   peer-left         {peer_name, reason}
//   peer-reconnecting {peer_name}   the peer's socket dropped; it may come back
//   peer-resumed      {peer_name}   it did
//   error             {code, message}
//   rejoining         {}        joining again after a pause (the join was refused for now)
//   reconnecting      {until}   our socket dropped after the join; resuming (until: give-up time, ms)
//   resumed           {peer_present, peer_reconnecting}  back, on a new socket
//   lost              {reason}  the room cannot be reached any more (join refused,
//                               or no resume within the grace window)
//
// Resume: once joined, a socket that closes (a network change, a signaller
// node that died), or a `reconnect` from a draining node, does not lose the
// room. The client opens a new socket (any node behind the same address)
// and joins with its resume credential and the `last_id` of the last event
// it handled; the signaller replays what came after, exactly once, in
// order. Attempts follow `reconnectDelay` (0 s plus up to 1 s, then 3, 5,
// 7 s, ±50%), at once on `reconnectNow()` (the browser is online again),
// and stop after RESUME_GRACE_MS, when the server has given the session up
// too. An event whose `last_id` is not past the last one handled is a
// replay already seen, and is dropped.

import { closeQuietly, parseEvent } from './socket.js';
import { RESUME_GRACE_MS, reconnectDelay } from './state.js';

const PING_EVERY_MS = 20000;
const JOIN_TIMEOUT_MS = 10000;
/** How long one resume attempt may go unanswered before the next. */
const RESUME_ATTEMPT_TIMEOUT_MS = 4000;
const MAX_REJOINS = 5;

/** Join refusals worth another try after a pause (anything else ends the room). */
const RETRYABLE_JOIN_ERRORS = new Set(['unavailable', 'rate_limited']);

/** What a refused resume means, for people. */
const RESUME_REFUSALS = {
  expired_resume: 'the connection was gone for too long',
  resume_used: 'the call continued on another connection',
  room_closed: 'the room is over',
};

/** Order of two room-log ids (`<ms>-<seq>`): negative, zero or positive. */
export function compareIds(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}

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
    /** The resume credential (from joined / resumed / reconnect). */
    this.resume = null;
    /** The `last_id` of the last room event handled. */
    this.lastId = null;
    /** While resuming: the attempt number and when to give up (ms). */
    this.reconnecting = false;
    this.attempt = 0;
    this.giveUpAt = 0;
    this.retryTimer = null;
    this.giveUpTimer = null;
  }

  open() {
    this.#connect();
  }

  /** Relay an opaque WebRTC signal to the peer (queued until joined, or resumed). */
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
    this.#stopReconnecting();
    this.#drop(1000, 'leave');
  }

  /** Close without ceremony (the room is already over). */
  close() {
    this.over = true;
    this.#stopReconnecting();
    this.#drop(1000, 'done');
  }

  /** The network is back: a pending resume attempt goes now. */
  reconnectNow() {
    if (!this.reconnecting || this.over) return;
    if (this.ws && this.ws.readyState === WebSocket.CONNECTING) return;
    clearTimeout(this.retryTimer);
    this.#drop(1000, 'retry now');
    this.#resumeAttempt();
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

  #flushOutbox() {
    const queued = this.outbox;
    this.outbox = [];
    for (const frame of queued) this.#sendOrQueue(frame);
  }

  #startPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.#send({ event: 'ping' }), PING_EVERY_MS);
  }

  /** A new socket; `hello` is the frame it sends once open. */
  #socket(hello, onClose) {
    this.joined = false;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.#lose(`bad signaller address (${err.message})`);
      return null;
    }
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify(hello()));
    ws.onmessage = (ev) => this.#onFrame(ws, ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.joined = false;
      clearInterval(this.pingTimer);
      clearTimeout(this.joinTimer);
      if (!this.over) onClose(ev);
    };
    ws.onerror = () => {};
    return ws;
  }

  #connect() {
    const ws = this.#socket(
      () => ({ event: 'join', ticket: this.ticket }),
      (ev) => {
        if (this.resume) {
          this.#startReconnecting();
          return;
        }
        // 4410: a newer connection of ours joined the room and took it over.
        const why = { 4410: 'the call continued on another connection' }[ev.code];
        this.#lose(why || 'the connection to the server closed');
      },
    );
    if (!ws) return;
    clearTimeout(this.joinTimer);
    this.joinTimer = setTimeout(() => {
      if (this.ws === ws && !this.joined) {
        this.#drop(1000, 'join timeout');
        this.#lose('the signalling server did not answer');
      }
    }, JOIN_TIMEOUT_MS);
  }

  /** Our socket is gone after the join: resume, until the grace window ends. */
  #startReconnecting(now = false) {
    if (this.over) return;
    if (!this.reconnecting) {
      this.reconnecting = true;
      this.attempt = 0;
      this.giveUpAt = Date.now() + RESUME_GRACE_MS;
      clearTimeout(this.giveUpTimer);
      this.giveUpTimer = setTimeout(() => {
        if (this.reconnecting) {
          this.#drop(1000, 'gave up');
          this.#lose(`could not reconnect to the server within ${RESUME_GRACE_MS / 1000} s`);
        }
      }, RESUME_GRACE_MS);
      this.#emit('reconnecting', { until: this.giveUpAt });
    }
    this.#scheduleResume(now ? 0 : reconnectDelay(this.attempt, Math.random));
  }

  #scheduleResume(ms) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.#resumeAttempt(), ms);
  }

  #resumeAttempt() {
    if (this.over || !this.reconnecting || this.ws) return;
    this.attempt += 1;
    const ws = this.#socket(
      () => {
        const frame = { event: 'join', resume: this.resume };
        if (this.lastId) frame.last_id = this.lastId;
        return frame;
      },
      () => this.#scheduleResume(reconnectDelay(this.attempt, Math.random)),
    );
    if (!ws) return;
    clearTimeout(this.joinTimer);
    this.joinTimer = setTimeout(() => {
      if (this.ws === ws && !this.joined) {
        this.#drop(1000, 'resume timeout');
        this.#scheduleResume(reconnectDelay(this.attempt, Math.random));
      }
    }, RESUME_ATTEMPT_TIMEOUT_MS);
  }

  #stopReconnecting() {
    this.reconnecting = false;
    clearTimeout(this.retryTimer);
    clearTimeout(this.giveUpTimer);
  }

  /** Whether `msg` is a room event already handled (a replay); notes its id. */
  #seen(msg) {
    if (msg.event === 'reconnect' || typeof msg.last_id !== 'string') return false;
    if (this.lastId && compareIds(msg.last_id, this.lastId) <= 0) return true;
    this.lastId = msg.last_id;
    return false;
  }

  #onFrame(ws, data) {
    if (this.ws !== ws) return;
    const msg = parseEvent(data, 'signaller');
    if (!msg) return;
    if (this.#seen(msg)) return;
    switch (msg.event) {
      case 'joined': {
        this.joined = true;
        this.resume = msg.resume || null;
        clearTimeout(this.joinTimer);
        this.#startPing();
        this.#emit('joined', msg);
        this.#flushOutbox();
        break;
      }
      case 'resumed': {
        this.joined = true;
        this.resume = msg.resume || this.resume;
        clearTimeout(this.joinTimer);
        this.#stopReconnecting();
        this.#startPing();
        this.#emit('resumed', msg);
        this.#flushOutbox();
        break;
      }
      case 'reconnect':
        // The node drains: move now, with what it says we need.
        if (msg.resume) this.resume = msg.resume;
        if (typeof msg.last_id === 'string' && (!this.lastId || compareIds(msg.last_id, this.lastId) > 0)) {
          this.lastId = msg.last_id;
        }
        this.#drop(1000, 'moving');
        this.#startReconnecting(true);
        break;
      case 'peer-joined':
        this.#emit('peer-joined', msg);
        break;
      case 'peer-reconnecting':
      case 'peer-resumed':
        this.#emit(msg.event, msg);
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
        this.#stopReconnecting();
        this.#emit('peer-left', { peer_name: msg.peer_name, reason: msg.reason || 'disconnected' });
        this.#drop(1000, 'peer left');
        break;
      case 'error':
        if (this.joined) {
          this.#emit('error', msg);
        } else if (this.reconnecting) {
          this.#drop(1000, 'resume refused');
          if (RETRYABLE_JOIN_ERRORS.has(msg.code)) {
            this.#scheduleResume(reconnectDelay(this.attempt, Math.random));
          } else {
            this.#stopReconnecting();
            this.#lose(RESUME_REFUSALS[msg.code] || msg.message || msg.code, msg.code);
          }
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
    this.#stopReconnecting();
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
