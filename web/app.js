// The page: Start → searching → talking to a stranger → Next/Stop.
//
// One `App` owns the state; every change goes through `render()`, which
// derives the status line and the buttons from that state, so the status
// line says what is true now and never lags behind.
//
// Query parameters:
//   ?ice=<JSON array of RTCIceServer>  or  ?ice=stun:host:3478,stun:other:3478
//   (default: no ICE servers, enough on one machine or one LAN)

import { MatcherClient } from './matcher-client.js';
import { RoomClient } from './room-client.js';
import { Call } from './call.js';
import { ChatPanel } from './chat.js';
import { openCameraAndMic, stopStream } from './media.js';
import { Backoff } from './backoff.js';

/** How long we wait for a matched stranger to show up in the room. */
const PEER_NO_SHOW_MS = 15000;
/** How long a register may go unanswered before the status line says so. */
const SLOW_SERVER_MS = 4000;
/** How long "connecting" may last before the status line admits it is slow. */
const SLOW_CONNECT_MS = 15000;

const $ = (id) => document.getElementById(id);

class App {
  constructor() {
    this.el = {
      status: $('status'),
      notice: $('notice'),
      name: $('name'),
      start: $('start'),
      next: $('next'),
      stop: $('stop'),
      localVideo: $('local-video'),
      remoteVideo: $('remote-video'),
      remotePlaceholder: $('remote-placeholder'),
      peerLabel: $('peer-label'),
      unmute: $('unmute'),
    };
    this.chat = new ChatPanel(
      { log: $('chat-log'), form: $('chat-form'), input: $('chat-input'), send: $('chat-send') },
      (text) => this.sendChat(text),
    );
    this.iceServers = readIceServers();

    /** idle | starting | media-error | searching | in-room | peer-left | lost */
    this.phase = 'idle';
    this.stopped = false; // Stop was pressed at least once (for the idle wording)
    this.localStream = null;
    this.matcher = null;
    this.matcherDown = null; // {retryAt, everUp, draining} while the matcher socket is away
    this.registered = false; // register sent on the current matcher session
    this.queued = false; // the server confirmed we are in the pool
    this.registerSentAt = 0;
    this.serverTrouble = false; // the last register was answered `unavailable`
    this.unavailableRetry = null; // timer re-sending register after `unavailable`
    this.unavailableBackoff = new Backoff(1000, 15000);
    this.unavailableUntil = 0;

    this.room = null;
    this.call = null;
    this.peerName = 'Stranger';
    this.joined = false;
    this.peerPresent = false;
    this.rejoining = false;
    this.callState = 'connecting';
    this.roomStartedAt = 0;
    this.endReason = '';
    this.noShowTimer = null;
    this.tickTimer = null;

    this.el.start.addEventListener('click', () => this.start());
    this.el.next.addEventListener('click', () => this.next());
    this.el.stop.addEventListener('click', () => this.stop());
    this.el.unmute.addEventListener('click', () => this.unmute());
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && !this.el.next.disabled) {
        ev.preventDefault();
        this.next();
      }
    });
    window.addEventListener('pagehide', () => this.teardownRoom(true));
    this.render();
  }

  // ---- user actions -------------------------------------------------------

  async start() {
    if (this.phase !== 'idle' && this.phase !== 'media-error') return;
    this.hideNotice();
    if (!this.localStream) {
      this.phase = 'starting';
      this.render();
      try {
        const { stream, note } = await openCameraAndMic();
        this.localStream = stream;
        this.el.localVideo.srcObject = stream;
        playQuietly(this.el.localVideo);
        if (note) this.showNotice(note, 'info');
      } catch (err) {
        this.phase = 'media-error';
        this.mediaError = shortMediaProblem(err.code);
        this.showNotice(err.message || String(err), 'error');
        this.render();
        return;
      }
    }
    this.phase = 'searching';
    this.chat.clear();
    this.connectMatcher();
    this.render();
  }

  next() {
    if (!['in-room', 'peer-left', 'lost'].includes(this.phase)) return;
    const wasTalking = this.phase === 'in-room';
    this.teardownRoom(true);
    if (wasTalking) this.chat.system('You left the chat.');
    this.search();
  }

  stop() {
    if (['idle', 'starting', 'media-error'].includes(this.phase)) return;
    this.teardownRoom(true);
    if (this.matcher) {
      if (this.phase === 'searching' && this.matcher.ready) this.matcher.cancel();
      this.matcher.close();
      this.matcher = null;
    }
    this.matcherDown = null;
    this.registered = false;
    this.queued = false;
    this.serverTrouble = false;
    this.clearUnavailable();
    stopStream(this.localStream);
    this.localStream = null;
    this.el.localVideo.srcObject = null;
    this.phase = 'idle';
    this.stopped = true;
    this.render();
  }

  unmute() {
    this.el.remoteVideo.muted = false;
    this.el.unmute.hidden = true;
    playQuietly(this.el.remoteVideo);
  }

  sendChat(text) {
    if (this.phase !== 'in-room' || !this.room) return false;
    return this.room.chat(text);
  }

  // ---- matcher ------------------------------------------------------------

  connectMatcher() {
    if (this.matcher) {
      if (this.matcher.ready && !this.registered) this.register();
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const matcher = new MatcherClient(`${scheme}//${location.host}/ws`);
    this.matcher = matcher;
    this.registered = false;
    matcher.addEventListener('hello', () => {
      this.matcherDown = null;
      this.registered = false;
      if (this.phase === 'searching') this.register();
      this.render();
    });
    matcher.addEventListener('down', (ev) => {
      const { retryInMs, everUp, draining } = ev.detail;
      this.matcherDown = { retryAt: Date.now() + retryInMs, everUp, draining };
      this.registered = false;
      this.clearUnavailable();
      this.render();
    });
    matcher.addEventListener('queued', () => {
      this.queued = true;
      this.serverTrouble = false;
      this.unavailableBackoff.reset();
      this.render();
    });
    matcher.addEventListener('matched', (ev) => this.onMatched(ev.detail));
    matcher.addEventListener('chat', (ev) => this.onPeerChat(ev.detail));
    matcher.addEventListener('error', (ev) => this.onMatcherError(ev.detail));
    matcher.open();
  }

  /** Ask for a (new) partner; waits for the socket when it is away. */
  search() {
    this.phase = 'searching';
    this.connectMatcher();
    this.render();
  }

  register() {
    this.clearUnavailable();
    const name = this.el.name.value.trim();
    this.registered = this.matcher.register(name);
    this.queued = false;
    this.registerSentAt = Date.now();
  }

  onMatcherError({ code, message }) {
    switch (code) {
      case 'already_waiting':
        this.queued = true; // we are in the pool already: fine
        break;
      case 'draining':
        // This gateway is shutting down: go elsewhere and register there.
        if (this.matcher) this.matcher.reconnectNow('draining');
        break;
      case 'unavailable': {
        // Redis is away behind the gateway: try again later.
        this.registered = false;
        if (this.phase === 'searching') {
          this.serverTrouble = true;
          const delay = this.unavailableBackoff.next();
          this.unavailableUntil = Date.now() + delay;
          clearTimeout(this.unavailableRetry);
          this.unavailableRetry = setTimeout(() => {
            this.unavailableRetry = null;
            this.unavailableUntil = 0;
            if (this.phase === 'searching' && this.matcher && this.matcher.ready) this.register();
            this.render();
          }, delay);
        }
        break;
      }
      case 'bad_name':
        this.registered = false;
        if (this.phase === 'searching') {
          this.phase = 'idle';
          this.teardownMatcherOnly();
        }
        this.showNotice(`That name cannot be used: ${message || 'choose another'}. Change it and press Start.`, 'error');
        this.el.name.focus();
        break;
      case 'no_partner':
        break;
      default:
        console.warn('matcher error', code, message);
        if (this.phase === 'in-room' || this.phase === 'searching') {
          this.showNotice(`Server: ${message || code}`, 'info');
        }
    }
    this.render();
  }

  clearUnavailable() {
    clearTimeout(this.unavailableRetry);
    this.unavailableRetry = null;
    this.unavailableUntil = 0;
  }

  teardownMatcherOnly() {
    if (this.matcher) {
      this.matcher.close();
      this.matcher = null;
    }
    this.matcherDown = null;
    this.registered = false;
    this.clearUnavailable();
  }

  // ---- the room -----------------------------------------------------------

  onMatched(m) {
    if (this.phase !== 'searching' || !m.ticket || !m.signaller_url) {
      // Matched after we stopped looking (or a server without native fields):
      // join and leave at once so the other person is told right away.
      if (m.ticket && m.signaller_url) releaseRoom(signallerUrl(m.signaller_url), m.ticket);
      return;
    }
    this.registered = false;
    this.queued = false;
    this.serverTrouble = false;
    this.phase = 'in-room';
    this.peerName = m.peer_name || 'Stranger';
    this.joined = false;
    this.peerPresent = false;
    this.rejoining = false;
    this.callState = 'connecting';
    this.roomStartedAt = Date.now();
    this.hideNotice();
    this.chat.clear();
    this.chat.system(`You are now talking to ${this.peerName}. Say hi!`);

    const room = new RoomClient(signallerUrl(m.signaller_url), m.ticket);
    this.room = room;
    const polite = !m.initiator;
    room.addEventListener('joined', (ev) => {
      if (this.room !== room) return;
      this.joined = true;
      this.rejoining = false;
      this.peerPresent = !!ev.detail.peer_present;
      if (ev.detail.peer_name) this.peerName = ev.detail.peer_name;
      if (!this.call) this.startCall(polite);
      this.chat.setEnabled(true);
      if (this.peerPresent) this.call.peerPresent();
      else this.armNoShow();
      this.render();
    });
    room.addEventListener('peer-joined', (ev) => {
      if (this.room !== room) return;
      this.peerPresent = true;
      if (ev.detail.peer_name) this.peerName = ev.detail.peer_name;
      clearTimeout(this.noShowTimer);
      if (this.call) this.call.peerPresent();
      this.render();
    });
    room.addEventListener('signal', (ev) => {
      if (this.room !== room || !this.call) return;
      this.peerPresent = true;
      this.call.receive(ev.detail.data);
    });
    room.addEventListener('chat', (ev) => {
      if (this.room !== room) return;
      this.onPeerChat(ev.detail);
    });
    room.addEventListener('peer-left', (ev) => {
      if (this.room !== room) return;
      const reason = ev.detail.reason || 'left';
      this.endRoom('peer-left', reason);
      this.chat.system(peerLeftLine(this.peerName, reason));
    });
    room.addEventListener('lost', (ev) => {
      if (this.room !== room) return;
      this.endRoom('lost', ev.detail.reason);
      this.chat.system(`Lost the connection to ${this.peerName}.`);
    });
    room.addEventListener('rejoining', () => {
      if (this.room !== room) return;
      this.rejoining = true;
      this.render();
    });
    room.addEventListener('error', (ev) => {
      if (this.room !== room) return;
      const { code, message } = ev.detail;
      if (code === 'too_long' || code === 'rate_limited') {
        this.chat.system(`Not sent: ${message || code}.`);
      } else {
        console.warn('signaller error', code, message);
      }
    });
    room.open();
    this.render();
  }

  startCall(polite) {
    const room = this.room;
    const call = new Call({
      polite,
      localStream: this.localStream,
      iceServers: this.iceServers,
      sendSignal: (data) => room.signal(data),
    });
    this.call = call;
    call.addEventListener('remote-stream', (ev) => {
      if (this.call !== call) return;
      const video = this.el.remoteVideo;
      if (video.srcObject !== ev.detail.stream) {
        video.srcObject = ev.detail.stream;
        this.playRemote();
      }
      this.render();
    });
    call.addEventListener('state', (ev) => {
      if (this.call !== call) return;
      this.callState = ev.detail.state;
      if (this.callState === 'connected') {
        this.peerPresent = true;
        clearTimeout(this.noShowTimer);
      }
      this.render();
    });
  }

  playRemote() {
    const video = this.el.remoteVideo;
    video.play().catch((err) => {
      if (err && err.name === 'NotAllowedError') {
        // Autoplay with sound refused: play muted and offer to unmute.
        video.muted = true;
        this.el.unmute.hidden = false;
        playQuietly(video);
      }
      // AbortError: a newer srcObject replaced this one; nothing to do.
    });
  }

  armNoShow() {
    clearTimeout(this.noShowTimer);
    const room = this.room;
    this.noShowTimer = setTimeout(() => {
      if (this.room !== room || this.peerPresent || this.phase !== 'in-room') return;
      this.teardownRoom(true);
      this.chat.system(`${this.peerName} never arrived. Looking for someone else…`);
      this.search();
    }, PEER_NO_SHOW_MS);
  }

  onPeerChat({ sender, message, timestamp }) {
    if (this.phase !== 'in-room' || typeof message !== 'string') return;
    this.chat.add('peer', sender || this.peerName, message, timestamp);
  }

  /** The room is over (the stranger left, or we lost it); offer Next. */
  endRoom(phase, reason) {
    this.teardownRoom(false);
    this.phase = phase;
    this.endReason = reason || '';
    this.render();
    if (document.activeElement === document.body || document.activeElement === null ||
        document.activeElement === this.el.start || document.activeElement.disabled) {
      this.el.next.focus();
    }
  }

  /** Close the call and the room socket; `leave` tells the peer first. */
  teardownRoom(leave) {
    clearTimeout(this.noShowTimer);
    if (this.call) {
      this.call.close();
      this.call = null;
    }
    if (this.room) {
      if (leave) this.room.leave();
      else this.room.close();
      this.room = null;
    }
    this.joined = false;
    this.peerPresent = false;
    this.rejoining = false;
    this.el.remoteVideo.srcObject = null;
    this.el.remoteVideo.muted = false;
    this.el.unmute.hidden = true;
    this.chat.setEnabled(false);
  }

  // ---- what the user sees -------------------------------------------------

  showNotice(text, kind) {
    this.el.notice.textContent = text;
    this.el.notice.dataset.kind = kind;
    this.el.notice.hidden = false;
  }

  hideNotice() {
    this.el.notice.hidden = true;
    this.el.notice.textContent = '';
  }

  /** [data-state, text] for the status line, from the current state. */
  status() {
    const peer = this.peerName;
    switch (this.phase) {
      case 'idle':
        return ['idle', this.stopped ? 'Stopped. Press Start to meet a stranger.' : 'Press Start to meet a stranger.'];
      case 'starting':
        return ['starting', 'Waiting for your camera and microphone…'];
      case 'media-error':
        return ['media-error', this.mediaError];
      case 'searching': {
        const away = this.matcherStatus();
        if (away) return away;
        if (this.serverTrouble) {
          const wait = secondsUntil(this.unavailableUntil);
          return ['unreachable', wait > 0 ? `The server is unavailable. Retrying in ${wait} s…` : 'The server is unavailable. Retrying…'];
        }
        if (this.registered && !this.queued && Date.now() - this.registerSentAt > SLOW_SERVER_MS) {
          return ['unreachable', 'The server is not answering. Still trying…'];
        }
        return ['searching', 'Looking for a stranger…'];
      }
      case 'in-room': {
        if (this.rejoining) return ['reconnecting', `Reconnecting to ${peer}…`];
        if (this.callState === 'connected') return ['connected', `Connected to ${peer}. Say hi!`];
        if (this.callState === 'unstable') return ['reconnecting', `The connection to ${peer} is unstable. Trying to recover…`];
        if (this.callState === 'failed') {
          return ['failed', `Could not connect to ${peer} (the network may be blocking it). Press Next to meet someone else.`];
        }
        const slow = Date.now() - this.roomStartedAt > SLOW_CONNECT_MS ? ' This is taking a while; press Next to try someone else.' : '';
        if (!this.joined) return ['connecting', `Found ${peer}. Connecting…${slow}`];
        if (!this.peerPresent) return ['connecting', `Found ${peer}. Waiting for them to join…${slow}`];
        return ['connecting', `Connecting to ${peer}…${slow}`];
      }
      case 'peer-left':
        return ['peer-left', `${peerLeftLine(peer, this.endReason)} Press Next to meet someone else.`];
      case 'lost':
        return ['lost', `Lost the connection to ${peer} (${this.endReason || 'network problem'}). Press Next to meet someone else.`];
      default:
        return ['idle', ''];
    }
  }

  /** The status while the matcher socket is away, or null when it is up. */
  matcherStatus() {
    const m = this.matcher;
    if (m && m.ready) return null;
    const down = this.matcherDown;
    if (!down) return ['connecting-server', 'Connecting to the server…'];
    const wait = secondsUntil(down.retryAt);
    if (down.draining) return ['reconnecting', 'The server is restarting. Reconnecting…'];
    if (down.everUp) {
      return ['reconnecting', wait > 0 ? `Lost the server. Reconnecting in ${wait} s…` : 'Lost the server. Reconnecting…'];
    }
    return ['unreachable', wait > 0 ? `Server unreachable. Retrying in ${wait} s…` : 'Server unreachable. Retrying…'];
  }

  render() {
    const [state, text] = this.status();
    const s = this.el.status;
    if (s.dataset.state !== state) s.dataset.state = state;
    if (s.textContent !== text) s.textContent = text;

    const p = this.phase;
    this.el.start.disabled = !(p === 'idle' || p === 'media-error');
    this.el.start.hidden = !(p === 'idle' || p === 'media-error' || p === 'starting');
    this.el.next.disabled = !(p === 'in-room' || p === 'peer-left' || p === 'lost');
    this.el.next.classList.toggle('btn--attention', p === 'peer-left' || p === 'lost' || (p === 'in-room' && this.callState === 'failed'));
    this.el.stop.disabled = !(p === 'searching' || p === 'in-room' || p === 'peer-left' || p === 'lost');
    this.el.name.disabled = p === 'starting';
    document.body.dataset.phase = p;

    const inRoom = p === 'in-room';
    this.el.peerLabel.hidden = !inRoom;
    this.el.peerLabel.textContent = inRoom ? this.peerName : '';
    const hasRemote = inRoom && !!this.el.remoteVideo.srcObject;
    this.el.remotePlaceholder.hidden = hasRemote;
    this.el.remotePlaceholder.textContent = placeholderText(p, state);

    // Count down the retry delays shown in the status line.
    const ticking =
      (p === 'searching' && (this.matcherDown || this.serverTrouble || (this.registered && !this.queued))) ||
      (inRoom && state === 'connecting');
    if (ticking && !this.tickTimer) {
      this.tickTimer = setInterval(() => this.render(), 1000);
    } else if (!ticking && this.tickTimer) {
      clearInterval(this.tickTimer);
      this.tickTimer = null;
    }
  }
}

/** What to say when the stranger is gone, by the server's reason. */
function peerLeftLine(peer, reason) {
  switch (reason) {
    case 'disconnected':
      return `${peer} left (disconnected).`;
    case 'node_lost':
    case 'drained':
      return `${peer} left: their connection to the server was lost.`;
    default:
      return `${peer} left.`;
  }
}

/** The status line's short version of a MediaProblem (the notice has the details). */
function shortMediaProblem(code) {
  switch (code) {
    case 'denied':
      return 'Camera and microphone access was denied.';
    case 'no-device':
      return 'No camera or microphone found.';
    case 'busy':
      return 'Your camera or microphone is busy.';
    default:
      return 'Your camera could not be started.';
  }
}

function placeholderText(phase, state) {
  if (phase === 'searching') return state === 'searching' ? 'Looking for a stranger…' : 'Waiting for the server…';
  if (phase === 'in-room') return 'Connecting…';
  if (phase === 'peer-left') return 'The stranger left';
  if (phase === 'lost') return 'Connection lost';
  return 'No stranger yet';
}

function secondsUntil(t) {
  return Math.max(0, Math.ceil((t - Date.now()) / 1000));
}

/** Start a muted/local video; a refusal only means the user must press play. */
function playQuietly(video) {
  const p = video.play();
  if (p && p.catch) p.catch(() => {});
}

/** The signaller address, upgraded to wss: when the page itself is https. */
function signallerUrl(url) {
  if (location.protocol === 'https:' && url.startsWith('ws:')) return `wss:${url.slice(3)}`;
  return url;
}

/** Join a room only to leave it, so the stranger we will not talk to is told. */
function releaseRoom(url, ticket) {
  const room = new RoomClient(url, ticket);
  room.addEventListener('joined', () => room.leave());
  room.addEventListener('lost', () => room.close());
  room.open();
}

/** ICE servers from `?ice=`; none by default. */
function readIceServers() {
  const raw = new URLSearchParams(location.search).get('ice');
  if (!raw) return [];
  try {
    if (raw.trim().startsWith('[')) {
      const list = JSON.parse(raw);
      if (Array.isArray(list)) return list.filter((s) => s && (typeof s.urls === 'string' || Array.isArray(s.urls)));
      return [];
    }
    return raw
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean)
      .map((urls) => ({ urls }));
  } catch (err) {
    console.warn('ignoring ?ice=: not a JSON list of ICE servers', err);
    return [];
  }
}

const app = new App();
// For debugging in the console and for tests that want to look inside.
window.rvc = app;
