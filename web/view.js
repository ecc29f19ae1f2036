// What the user sees, derived from the state (state.js) alone: the status
// line, the buttons, the notice, the labels. `statusLine` and `controls` are
// pure (tested in node); `View` writes them into the page and holds the few
// DOM-only pieces (videos, chat log, focus) the shell's effects address.
//
// The status line's `data-state` values and texts are what the end-to-end
// tests and style.css read: idle, starting, media-error, connecting-server,
// unreachable, reconnecting, searching, connecting, connected, failed,
// relay-refused, peer-left, lost. A call carried by the TURN relay says
// "Connected via relay".

import { allowed, canModerate, peerLeftLine } from './state.js';
import { commonLine } from './interests.js';

/** How long a register may go unanswered before the status line says so. */
export const SLOW_SERVER_MS = 4000;
/** How long "connecting" may last before the status line admits it is slow. */
export const SLOW_CONNECT_MS = 15000;

/** [data-state, text] of the status line for `state` at time `now`. */
export function statusLine(state, now) {
  const peer = state.peerName;
  switch (state.phase) {
    case 'idle':
      return ['idle', 'Press Start to meet a stranger.'];
    case 'stopped':
      return ['idle', 'Stopped. Press Start to meet a stranger.'];
    case 'starting':
      return ['starting', 'Waiting for your camera and microphone…'];
    case 'media-error':
      return ['media-error', shortMediaProblem(state.mediaProblem)];
    case 'searching': {
      const away = linkStatus(state.link, now);
      if (away) return away;
      const search = state.search;
      if (search.trouble) {
        const wait = search.reg === 'backoff' ? secondsUntil(search.retryAt, now) : 0;
        return ['unreachable', wait > 0 ? `The server is unavailable. Retrying in ${wait} s…` : 'The server is unavailable. Retrying…'];
      }
      if (search.reg === 'sent' && now - search.sentAt > SLOW_SERVER_MS) {
        return ['unreachable', 'The server is not answering. Still trying…'];
      }
      switch (search.reg === 'queued' ? search.looking : null) {
        case 'interests':
          return ['searching', 'Looking for someone who shares your interests…'];
        case 'interests-only':
          return ['searching', 'Looking for someone who shares your interests (only them)…'];
        case 'widened':
          return ['searching', 'Nobody with your interests yet. Looking for anyone…'];
        default:
          return ['searching', 'Looking for a stranger…'];
      }
    }
    case 'joining':
    case 'in-call': {
      const room = state.room;
      if (room.reconnecting) {
        const wait = secondsUntil(room.reconnectUntil, now);
        return ['reconnecting', `Reconnecting… (the link to the server dropped${wait > 0 ? `; giving up in ${wait} s` : ''})`];
      }
      if (room.peerAway) return ['reconnecting', `${peer} is reconnecting…`];
      if (room.rejoining) return ['reconnecting', `Reconnecting to ${peer}…`];
      if (room.callState === 'connected') {
        if (room.route === 'relay') return ['connected', `Connected via relay to ${peer}. Say hi!`];
        return ['connected', `Connected to ${peer}. Say hi!`];
      }
      if (room.iceError) {
        return ['relay-refused', `The relay server refused our credentials (error ${room.iceError.code}), so the call to ${peer} cannot connect. Press Next to try again.`];
      }
      if (room.callState === 'unstable') return ['reconnecting', `The connection to ${peer} is unstable. Trying to recover…`];
      if (room.callState === 'failed') {
        return ['failed', `Could not connect to ${peer} (the network may be blocking it). Press Next to meet someone else.`];
      }
      const slow = now - room.startedAt > SLOW_CONNECT_MS ? ' This is taking a while; press Next to try someone else.' : '';
      if (state.phase === 'joining') return ['connecting', `Found ${peer}. Connecting…${slow}`];
      if (!room.peerPresent) return ['connecting', `Found ${peer}. Waiting for them to join…${slow}`];
      return ['connecting', `Connecting to ${peer}…${slow}`];
    }
    case 'peer-left':
      return ['peer-left', `${peerLeftLine(peer, state.endReason)} Press Next to meet someone else.`];
    case 'lost':
      return ['lost', `Lost the connection to ${peer} (${state.endReason || 'network problem'}). Press Next to meet someone else.`];
    default:
      return ['idle', ''];
  }
}

/** The status while the matcher socket is not up, or null when it is. */
function linkStatus(link, now) {
  if (link.state === 'up') return null;
  if (link.draining) return ['reconnecting', 'The server is restarting. Reconnecting…'];
  if (link.attempt === 0) return ['connecting-server', 'Connecting to the server…'];
  const wait = link.state === 'down' ? secondsUntil(link.retryAt, now) : 0;
  if (link.everUp) {
    return ['reconnecting', wait > 0 ? `Lost the server. Reconnecting in ${wait} s…` : 'Lost the server. Reconnecting…'];
  }
  return ['unreachable', wait > 0 ? `Server unreachable. Retrying in ${wait} s…` : 'Server unreachable. Retrying…'];
}

/** Everything else the page shows, from the state; pure. */
export function controls(state, now) {
  const [status, text] = statusLine(state, now);
  const p = state.phase;
  const inRoom = p === 'joining' || p === 'in-call';
  const searching = p === 'searching';
  return {
    status,
    text,
    phase: p,
    startEnabled: allowed(state, 'start'),
    startHidden: !(allowed(state, 'start') || p === 'starting'),
    nextEnabled: allowed(state, 'next'),
    nextAttention:
      p === 'peer-left' || p === 'lost' || (inRoom && (state.room.callState === 'failed' || !!state.room.iceError)),
    stopEnabled: allowed(state, 'stop'),
    nameDisabled: p === 'starting',
    chatEnabled: allowed(state, 'send-chat'),
    moderationEnabled: canModerate(state, now),
    peerLabel: inRoom ? state.peerName : null,
    common: inRoom ? commonLine(state.commonInterests) : '',
    placeholderHidden: inRoom && state.room.remoteStream,
    placeholder: placeholderText(p, status),
    notice: state.notice,
    // Count down the delays shown in the status line, or notice a slow server.
    ticking:
      (searching && (state.link.state !== 'up' || state.search.trouble || state.search.reg === 'sent')) ||
      (inRoom && (status === 'connecting' || !!state.room.reconnecting)),
  };
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

function placeholderText(phase, status) {
  if (phase === 'searching') return status === 'searching' ? 'Looking for a stranger…' : 'Waiting for the server…';
  if (phase === 'joining' || phase === 'in-call') return 'Connecting…';
  if (phase === 'peer-left') return 'The stranger left';
  if (phase === 'lost') return 'Connection lost';
  return 'No stranger yet';
}

function secondsUntil(t, now) {
  return Math.max(0, Math.ceil((t - now) / 1000));
}

// ---- the DOM ----------------------------------------------------------------

/** The page's elements, written from `controls()`; only this class touches them. */
export class View {
  /** @param {Document} doc */
  constructor(doc) {
    const $ = (id) => doc.getElementById(id);
    this.doc = doc;
    this.el = {
      status: $('status'),
      notice: $('notice'),
      name: $('name'),
      start: $('start'),
      next: $('next'),
      stop: $('stop'),
      report: $('report'),
      reportReason: $('report-reason'),
      block: $('block'),
      localVideo: $('local-video'),
      remoteVideo: $('remote-video'),
      remotePlaceholder: $('remote-placeholder'),
      peerLabel: $('peer-label'),
      common: $('common-interests'),
      unmute: $('unmute'),
      chatLog: $('chat-log'),
      chatForm: $('chat-form'),
      chatInput: $('chat-input'),
      chatSend: $('chat-send'),
    };
    this.el.unmute.addEventListener('click', () => this.unmute());
  }

  /** The display name typed by the user ('' for the default). */
  name() {
    return this.el.name.value.trim();
  }

  /** Write the state into the page; returns whether it must be rendered again each second. */
  render(state, now, chat) {
    const c = controls(state, now);
    const el = this.el;
    if (el.status.dataset.state !== c.status) el.status.dataset.state = c.status;
    if (el.status.textContent !== c.text) el.status.textContent = c.text;

    el.start.disabled = !c.startEnabled;
    el.start.hidden = c.startHidden;
    el.next.disabled = !c.nextEnabled;
    el.next.classList.toggle('btn--attention', c.nextAttention);
    el.stop.disabled = !c.stopEnabled;
    el.report.disabled = !c.moderationEnabled;
    el.reportReason.disabled = !c.moderationEnabled;
    el.block.disabled = !c.moderationEnabled;
    el.name.disabled = c.nameDisabled;
    this.doc.body.dataset.phase = c.phase;

    el.peerLabel.hidden = c.peerLabel === null;
    setText(el.peerLabel, c.peerLabel ?? '');
    el.common.hidden = !c.common;
    setText(el.common, c.common);
    el.remotePlaceholder.hidden = c.placeholderHidden;
    setText(el.remotePlaceholder, c.placeholder);

    // The notice is an alert: rewritten only when it changes, so it is announced once.
    setText(el.notice, c.notice ? c.notice.text : '');
    if (c.notice) el.notice.dataset.kind = c.notice.kind;
    el.notice.hidden = !c.notice;
    if (chat && chat.enabled !== c.chatEnabled) chat.setEnabled(c.chatEnabled);
    return c.ticking;
  }

  showLocal(stream) {
    this.el.localVideo.srcObject = stream;
    playQuietly(this.el.localVideo);
  }

  hideLocal() {
    this.el.localVideo.srcObject = null;
  }

  /** The stranger's stream; when autoplay with sound is refused, play muted and offer to unmute. */
  showRemote(stream) {
    const video = this.el.remoteVideo;
    if (video.srcObject === stream) return;
    video.srcObject = stream;
    video.play().catch((err) => {
      if (err && err.name === 'NotAllowedError') {
        video.muted = true;
        this.el.unmute.hidden = false;
        playQuietly(video);
      }
      // AbortError: a newer srcObject replaced this one; nothing to do.
    });
  }

  hideRemote() {
    const video = this.el.remoteVideo;
    video.srcObject = null;
    video.muted = false;
    this.el.unmute.hidden = true;
  }

  unmute() {
    this.el.remoteVideo.muted = false;
    this.el.unmute.hidden = true;
    playQuietly(this.el.remoteVideo);
  }

  /** Move focus to Next (after the room ended), unless the user is typing somewhere. */
  focusNext() {
    const active = this.doc.activeElement;
    if (active === this.doc.body || active === null || active === this.el.start || active.disabled) {
      this.el.next.focus();
    }
  }

  focusName() {
    this.el.name.focus();
  }
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Start a muted/local video; a refusal only means the user must press play. */
function playQuietly(video) {
  const p = video.play();
  if (p && p.catch) p.catch(() => {});
}
