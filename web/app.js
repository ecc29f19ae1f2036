// The page's shell: Start → searching → talking to a stranger → Next/Stop.
//
// Every decision is made by the state machine in state.js; this file only
// performs its effects (sockets, the camera, the WebRTC call, timers) and
// feeds back what happened as events. view.js draws the page from the
// state after every event, so the status line says what is true now.

import { Machine, allowed } from './state.js';
import { View } from './view.js';
import { MatcherClient } from './matcher-client.js';
import { RoomClient } from './room-client.js';
import { Call } from './call.js';
import { ChatPanel } from './chat.js';
import { openCameraAndMic, stopStream } from './media.js';
import { InterestsField, registerFields } from './interests.js';

class App {
  constructor() {
    this.machine = new Machine({ now: () => Date.now(), random: Math.random });
    this.view = new View(document);
    this.interests = new InterestsField(document, window.localStorage, navigator.language);
    /** Whether the last register asked for shared interests only. */
    this.sentStrict = false;
    const el = this.view.el;
    this.chat = new ChatPanel({ log: el.chatLog, form: el.chatForm, input: el.chatInput, send: el.chatSend }, (text) =>
      this.sendChat(text),
    );
    // ICE servers are never chosen by the URL (a crafted link must not route
    // a call through someone else's relay): the matcher hands them out with
    // `hello` (state.iceServers). The URL may only force our own relay:
    // `?relay=only` sets iceTransportPolicy 'relay', so a call connects
    // through the TURN server or not at all (used by the browser tests, and
    // handy to check a TURN deployment).
    this.iceTransportPolicy = new URLSearchParams(location.search).get('relay') === 'only' ? 'relay' : 'all';

    // What the effects act on; each is replaced, never reused.
    this.localStream = null;
    this.matcher = null;
    this.room = null; // {id, client}
    this.call = null;
    this.timers = new Map();
    this.tickTimer = null;
    this.queue = [];
    this.busy = false;

    el.start.addEventListener('click', () => this.dispatch({ type: 'start' }));
    el.next.addEventListener('click', () => this.dispatch({ type: 'next' }));
    el.stop.addEventListener('click', () => this.dispatch({ type: 'stop' }));
    el.report.addEventListener('click', () => this.dispatch({ type: 'report', reason: el.reportReason.value }));
    el.block.addEventListener('click', () => this.dispatch({ type: 'block' }));
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && !el.next.disabled) {
        ev.preventDefault();
        this.dispatch({ type: 'next' });
      }
    });
    window.addEventListener('pagehide', () => this.dispatch({ type: 'page-hide' }));
    // Back online (a network switch, a laptop waking up): reconnect now.
    window.addEventListener('online', () => this.dispatch({ type: 'online' }));
    this.render();
  }

  /**
   * Feed one event to the machine, perform its effects, draw the page.
   * Events raised while effects run (a socket failing at once) wait their turn.
   * Returns what the effects returned (for send-chat).
   */
  dispatch(event) {
    if (this.busy) {
      this.queue.push(event);
      return [];
    }
    this.busy = true;
    let results = [];
    try {
      results = this.#apply(event);
      while (this.queue.length) this.#apply(this.queue.shift());
    } finally {
      this.busy = false;
    }
    return results;
  }

  #apply(event) {
    const { effects, refused } = this.machine.dispatch(event);
    if (refused) {
      console.info(`page: ignored ${event.type}${event.name ? ` ${event.name}` : ''}: ${refused}`);
      return [];
    }
    const later = [];
    const results = [];
    for (const effect of effects) {
      if (effect.type === 'focus') later.push(effect);
      else results.push(this.#perform(effect));
    }
    this.render();
    for (const effect of later) {
      if (effect.target === 'next') this.view.focusNext();
      else this.view.focusName();
    }
    return results;
  }

  #perform(e) {
    switch (e.type) {
      case 'open-media':
        this.#openMedia();
        return;
      case 'stop-media':
        stopStream(this.localStream);
        this.localStream = null;
        this.view.hideLocal();
        return;
      case 'open-matcher':
        this.#openMatcher(e.resume);
        return;
      case 'close-matcher':
        if (this.matcher) {
          if (e.cancel) this.matcher.cancel();
          this.matcher.close();
          this.matcher = null;
        }
        return;
      case 'send-report':
        return this.matcher ? this.matcher.report(e.reason) : false;
      case 'send-block':
        return this.matcher ? this.matcher.block() : false;
      case 'send-register': {
        if (!this.matcher) return false;
        const fields = registerFields(this.interests.current());
        this.sentStrict = fields.strict === true;
        return this.matcher.register(this.view.name(), fields);
      }
      case 'start-timer': {
        clearTimeout(this.timers.get(e.name));
        const handle = setTimeout(() => {
          if (this.timers.get(e.name) !== handle) return;
          this.timers.delete(e.name);
          this.dispatch({ type: 'timer', name: e.name });
        }, e.ms);
        this.timers.set(e.name, handle);
        return;
      }
      case 'cancel-timer':
        clearTimeout(this.timers.get(e.name));
        this.timers.delete(e.name);
        return;
      case 'open-room':
        this.#openRoom(e.room, signallerUrl(e.url), e.ticket);
        return;
      case 'close-room':
        this.#closeRoom(e.leave);
        return;
      case 'release-room':
        releaseRoom(signallerUrl(e.url), e.ticket);
        return;
      case 'start-call':
        this.#startCall(e.polite);
        return;
      case 'call-peer-present':
        if (this.call) this.call.peerPresent();
        return;
      case 'call-receive':
        if (this.call) this.call.receive(e.data);
        return;
      case 'call-ice-servers':
        if (this.call) this.call.setIceServers(e.iceServers);
        return;
      case 'call-restart-ice':
        if (this.call) this.call.restartIce();
        return;
      case 'room-reconnect-now':
        if (this.room) this.room.client.reconnectNow();
        return;
      case 'room-chat':
        return !!this.room && this.room.client.chat(e.text);
      case 'attach-remote':
        this.view.showRemote(e.stream);
        return;
      case 'chat-clear':
        this.chat.clear();
        return;
      case 'chat-system':
        this.chat.system(e.text);
        return;
      case 'chat-peer':
        this.chat.add('peer', e.who, e.text, e.timestamp);
        return;
      case 'log':
        console.warn(e.message);
        return;
      default:
        console.warn('page: unknown effect', e.type);
    }
  }

  render() {
    const ticking = this.view.render(this.machine.state, Date.now(), this.chat);
    if (ticking && !this.tickTimer) {
      this.tickTimer = setInterval(() => this.render(), 1000);
    } else if (!ticking && this.tickTimer) {
      clearInterval(this.tickTimer);
      this.tickTimer = null;
    }
  }

  sendChat(text) {
    const [sent] = this.dispatch({ type: 'send-chat', text });
    return sent === true;
  }

  async #openMedia() {
    let result;
    try {
      result = await openCameraAndMic();
    } catch (err) {
      this.dispatch({ type: 'media-failed', code: err.code, message: err.message || String(err) });
      return;
    }
    if (!allowed(this.machine.state, 'media-ready')) {
      stopStream(result.stream); // nobody wants it any more
      return;
    }
    // Held before the event, so a search it starts already has the camera.
    this.localStream = result.stream;
    this.view.showLocal(result.stream);
    this.dispatch({ type: 'media-ready', note: result.note });
  }

  #openMatcher(resume) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const matcher = new MatcherClient(`${scheme}//${location.host}/ws`, resume, loadDevice());
    this.matcher = matcher;
    const forward = (name, type) =>
      matcher.addEventListener(name, (ev) => {
        if (this.matcher === matcher) this.dispatch({ ...ev.detail, type });
      });
    matcher.addEventListener('hello', (ev) => {
      // The device identity the gateway signed: presented on every visit.
      if (this.matcher === matcher && ev.detail.device) saveDevice(ev.detail.device);
    });
    forward('hello', 'matcher-hello');
    forward('reported', 'matcher-reported');
    forward('blocked', 'matcher-blocked');
    forward('ice-servers', 'matcher-ice-servers');
    forward('closed', 'matcher-closed');
    forward('reconnect', 'matcher-reconnect');
    matcher.addEventListener('queued', (ev) => {
      if (this.matcher === matcher) this.dispatch({ ...ev.detail, strict: this.sentStrict, type: 'matcher-queued' });
    });
    forward('cancelled', 'matcher-cancelled');
    forward('matched', 'matcher-matched');
    forward('error', 'matcher-error');
    matcher.open();
  }

  #openRoom(id, url, ticket) {
    const client = new RoomClient(url, ticket);
    this.room = { id, client };
    const forward = (name, type) =>
      client.addEventListener(name, (ev) => {
        if (this.room && this.room.client === client) this.dispatch({ ...ev.detail, type, room: id });
      });
    forward('joined', 'room-joined');
    forward('peer-joined', 'room-peer-joined');
    forward('signal', 'room-signal');
    forward('chat', 'room-chat');
    forward('peer-left', 'room-peer-left');
    forward('lost', 'room-lost');
    forward('rejoining', 'room-rejoining');
    forward('reconnecting', 'room-reconnecting');
    forward('resumed', 'room-resumed');
    forward('peer-reconnecting', 'room-peer-reconnecting');
    forward('peer-resumed', 'room-peer-resumed');
    forward('error', 'room-error');
    client.open();
  }

  #closeRoom(leave) {
    if (this.call) {
      this.call.close();
      this.call = null;
    }
    if (this.room) {
      if (leave) this.room.client.leave();
      else this.room.client.close();
      this.room = null;
    }
    this.view.hideRemote();
  }

  #startCall(polite) {
    const { id, client } = this.room;
    const call = new Call({
      polite,
      localStream: this.localStream,
      iceServers: this.machine.state.iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
      sendSignal: (data) => client.signal(data),
    });
    this.call = call;
    call.addEventListener('remote-stream', (ev) => {
      if (this.call === call) this.dispatch({ type: 'call-remote-stream', room: id, stream: ev.detail.stream });
    });
    call.addEventListener('route', (ev) => {
      if (this.call === call) this.dispatch({ type: 'call-route', room: id, ...ev.detail });
    });
    call.addEventListener('ice-error', (ev) => {
      if (this.call === call) this.dispatch({ type: 'call-ice-error', room: id, ...ev.detail });
    });
    call.addEventListener('state', (ev) => {
      // `closed` comes from our own close(); the machine has moved on already.
      if (this.call === call && ev.detail.state !== 'closed') {
        this.dispatch({ type: 'call-state', room: id, state: ev.detail.state });
      }
    });
  }
}

const DEVICE_KEY = 'rvc.device';

/** This browser's device identity token, if the gateway gave one before. */
function loadDevice() {
  try {
    return window.localStorage.getItem(DEVICE_KEY) || undefined;
  } catch {
    return undefined;
  }
}

function saveDevice(token) {
  try {
    window.localStorage.setItem(DEVICE_KEY, token);
  } catch {
    // Private browsing: a new identity next visit.
  }
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

const app = new App();
// For debugging in the console and for tests that want to look inside.
window.rvc = app;
