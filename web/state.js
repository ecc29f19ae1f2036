// The page's states and transitions, in one place and without I/O.
//
// `step(state, event, env)` is the whole machine: it returns the next state
// and the list of effects the shell (app.js) must perform. It opens no
// socket, touches no DOM, reads no clock and starts no timer: the shell
// passes the time and a random source in `env`, performs the effects, and
// feeds what happens (socket frames, closes, timers firing, the camera's
// answer) back in as events. That is why every state and transition can be
// tested with plain `node --test`, and why the page can never be in a state
// the table below does not name.
//
// ## Phases (what the user is doing)
//
//   idle         nothing yet                                  (start page)
//   starting     waiting for the camera and microphone
//   media-error  the camera was refused or missing; Start again
//   searching    in (or on the way into) the matcher's pool
//   joining      matched; the room socket is joining with the ticket
//   in-call      joined the room: WebRTC call and chat with the stranger
//   peer-left    the stranger left the room; Next or Stop
//   lost         the room could not be reached any more; Next or Stop
//   stopped      the user pressed Stop; like idle, says so
//
// ## Transition table (phase × event → phase); every other pair is refused
//
//   idle, stopped, media-error
//       start ──────────────────▶ starting (open-media)
//                                 searching, when the camera is already open
//   starting
//       media-ready ────────────▶ searching
//       media-failed ───────────▶ media-error
//   searching
//       matcher-queued ─────────▶ searching (in the pool; start-timer interest-window
//                                 when the pool looks for shared interests first)
//       timer interest-window ──▶ searching (now looking for anyone)
//       matcher-matched ────────▶ joining (open-room)
//       matcher-error ──────────▶ searching (retry / reconnect) or idle (bad name)
//       timer register-retry ───▶ searching (register again)
//       stop ───────────────────▶ stopped
//   joining
//       room-joined ────────────▶ in-call (start-call)
//       room-rejoining, room-error ▶ joining
//       room-reconnecting, room-resumed,
//       room-peer-reconnecting, room-peer-resumed ▶ joining
//       room-peer-left ─────────▶ peer-left
//       room-lost ──────────────▶ lost
//       next ───────────────────▶ searching
//       stop ───────────────────▶ stopped
//       matcher-matched ────────▶ joining (release-room: we are not looking)
//       matcher-error ──────────▶ joining
//   in-call
//       room-peer-joined, room-signal, room-chat, room-error,
//       call-state, call-remote-stream, call-route, call-ice-error,
//       send-chat, room-reconnecting, room-resumed,
//       room-peer-reconnecting, room-peer-resumed ▶ in-call
//       timer no-show ──────────▶ searching (the stranger never came)
//       room-peer-left ─────────▶ peer-left
//       room-lost ──────────────▶ lost
//       next ───────────────────▶ searching
//       stop ───────────────────▶ stopped
//       matcher-matched ────────▶ in-call (release-room)
//       matcher-error ──────────▶ in-call
//   peer-left, lost
//       next ───────────────────▶ searching
//       stop ───────────────────▶ stopped
//       matcher-matched ────────▶ same (release-room)
//       matcher-error ──────────▶ same
//   searching (registration `resuming`: the matcher socket came back with
//   its old session, whose verdict comes right after hello)
//       matcher-cancelled ──────▶ searching (register: the session is not waiting)
//   any phase
//       page-hide ──────────────▶ stopped where Stop is allowed, else no change
//       online ─────────────────▶ same (reconnect the sockets now; ICE restart)
//
// ## The matcher link (the matcher socket), beside the phase
//
// The matcher socket stays open from the first search until Stop, through
// calls, so Next registers again at once. Its own small table:
//
//   off ──(a search needs it: open-matcher)──▶ connecting
//   connecting ──matcher-hello──▶ up            (register, if searching; keep its
//                                                iceServers; after a resume, once
//                                                the session says it is not waiting)
//   up ──matcher-ice-servers──▶ up              (fresh TURN credentials; call-ice-servers in a call)
//   connecting, up ──matcher-closed──▶ down     (start-timer matcher-retry, with backoff)
//   down ──timer matcher-retry, or online──▶ connecting (open-matcher)
//
// A socket opened again after one was lost (or moved by a drain) resumes
// the matcher session it had (`open-matcher` with `resume`: the session id
// from hello): within the server's grace window it keeps its place in the
// pool, or gets the `matched` made while it was away, exactly once. A
// session the server no longer has (`expired_resume`) is forgotten: the
// next socket starts a new one.
//   up ──matcher-reconnect, or error `draining`──▶ connecting
//        (the gateway is draining: close-matcher, open-matcher at once; the
//         load balancer sends the new socket elsewhere)
//   any ──stop──▶ off                           (close-matcher)
//
// Frames from the matcher (matcher-queued, -matched, -error) are
// refused unless the link is up: the shell only delivers frames of the
// current socket, so such a frame means a bug, not a race.
//
// ## Refusals
//
// An event the table does not allow in the current state is refused:
// `step` returns the very same state object, no effects, and `refused`
// with the reason. Nothing is half-applied. Refusals are expected in a
// few races (a timer the shell could not cancel in time, a late frame of a
// room we have left) and are harmless there; the shell logs them.
//
// ## The room socket's reconnects
//
// room-client.js reconnects the room socket by itself (backoff and jitter:
// `reconnectDelay`), resuming the signalling session with its credential
// and the id of the last event it handled, so the signaller replays what
// it missed exactly once; the machine only learns that it is reconnecting
// (`room-reconnecting`), back (`room-resumed`), or given up after the grace
// window (`room-lost`), and that the stranger is (`room-peer-reconnecting`,
// `room-peer-resumed`). The status line says so, truthfully.

/** How long a matched stranger may take to appear in the room. */
export const PEER_NO_SHOW_MS = 15000;
/** Reconnecting a socket (matcher and room): 0 s plus up to 1 s, then 3, 5, 7 s (and 7 s on), each ±50%. */
export const RECONNECT_STEPS_MS = Object.freeze([0, 3000, 5000, 7000]);
/** How long a dropped room session may take to come back (the servers' default `--resume-grace-secs`). */
export const RESUME_GRACE_MS = 15000;
/** Registering again after `unavailable` / `rate_limited`: first delay and ceiling. */
export const REGISTER_BACKOFF = { firstMs: 1000, maxMs: 15000 };

export const PHASES = Object.freeze([
  'idle',
  'starting',
  'media-error',
  'searching',
  'joining',
  'in-call',
  'peer-left',
  'lost',
  'stopped',
]);

/** The state of a page that was just opened. */
export function initialState() {
  return {
    phase: 'idle',
    /** {text, kind: 'info'|'error'} shown beside the controls, or null. */
    notice: null,
    /** The camera problem's code (media.js MediaProblem) while in media-error. */
    mediaProblem: null,
    /** Whether we hold the camera stream (kept from a bad-name stop to the next Start). */
    hasMedia: false,
    /** The matcher socket; see the link table above. `session`: the id from hello, to resume. */
    link: { state: 'off', everUp: false, attempt: 0, retryAt: 0, draining: false, session: null, resuming: false },
    /**
     * While searching, the registration:
     * reg: 'waiting' (for the socket) | 'sent' | 'queued' | 'backoff' (register-retry timer running);
     * trouble: the last register was answered `unavailable`.
     */
    search: null,
    /** Consecutive `unavailable`/`rate_limited` answers to register (backoff step). */
    registerAttempt: 0,
    /** The current room from matched until it is over (joining, in-call); see onMatched. */
    room: null,
    /** Room ids count up so a late event of an older room is recognised. */
    roomSeq: 0,
    /** The stranger's name (kept after the room ends, for peer-left/lost). */
    peerName: 'Stranger',
    /** The interests we share with the stranger (from matched). */
    commonInterests: [],
    /** Why the last room ended (peer-left reason or lost reason). */
    endReason: '',
    /**
     * The RTCIceServer list the matcher gave with `hello` (STUN, TURN with a
     * credential minted for this session), replaced by `ice-servers`
     * refreshes; the shell hands it to each new call. Never from the URL.
     */
    iceServers: [],
    /** When the last room ended: its stranger may be reported or blocked for a minute more. */
    lastRoomEndedAt: 0,
    /** While banned: when the ban lifts (ms), for the notice. */
    bannedUntil: 0,
  };
}

// ---- the tables -------------------------------------------------------------

/** Events handled the same way in every phase that allows Next/Stop. */
const AFTER_MATCH = {
  next: onNext,
  stop: onStop,
  'matcher-matched': onMatchedElsewhere,
  'matcher-error': onMatcherError,
  report: onReport,
  block: onBlock,
  'matcher-reported': onReported,
  'matcher-blocked': onBlocked,
};

/** The room socket reconnecting, and the stranger's doing so. */
const ROOM_RECONNECTS = {
  'room-reconnecting': onRoomReconnecting,
  'room-resumed': onRoomResumed,
  'room-peer-reconnecting': onPeerReconnecting,
  'room-peer-resumed': onPeerResumed,
};

const ROOM_EVENTS_WHILE_JOINING = {
  'room-joined': onRoomJoined,
  'room-rejoining': onRoomRejoining,
  'room-error': onRoomError,
  'room-peer-left': onPeerLeft,
  'room-lost': onRoomLost,
  ...ROOM_RECONNECTS,
};

/** phase → event type → handler. A pair missing here is refused. */
const PAGE = {
  idle: { start: onStart },
  stopped: { start: onStart },
  'media-error': { start: onStart },
  starting: {
    'media-ready': onMediaReady,
    'media-failed': onMediaFailed,
  },
  searching: {
    stop: onStop,
    'matcher-queued': onQueued,
    'matcher-cancelled': onNotWaiting,
    'matcher-matched': onMatched,
    'matcher-error': onMatcherError,
    'timer:register-retry': onRegisterRetry,
    'timer:interest-window': onInterestWindowOver,
    report: onReport,
    block: onBlock,
    'matcher-reported': onReported,
    'matcher-blocked': onBlocked,
  },
  joining: { ...AFTER_MATCH, ...ROOM_EVENTS_WHILE_JOINING },
  'in-call': {
    ...AFTER_MATCH,
    'room-peer-joined': onPeerJoined,
    'room-signal': onSignal,
    // Chat in a room comes from the room only (matcher-client.js does not
    // pass on a line the matcher relays, from a previous partner, say).
    'room-chat': onPeerChat,
    'room-error': onRoomError,
    'room-peer-left': onPeerLeft,
    'room-lost': onRoomLost,
    'call-state': onCallState,
    'call-remote-stream': onRemoteStream,
    'call-route': onCallRoute,
    'call-ice-error': onIceError,
    'send-chat': onSendChat,
    'timer:no-show': onNoShow,
    ...ROOM_RECONNECTS,
  },
  'peer-left': { ...AFTER_MATCH },
  lost: { ...AFTER_MATCH },
};

/** Events about the matcher socket itself: link state → event → handler. */
const LINK = {
  off: {},
  connecting: { 'matcher-hello': onHello, 'matcher-closed': onLinkClosed },
  up: { 'matcher-closed': onLinkClosed, 'matcher-reconnect': onDrainReconnect, 'matcher-ice-servers': onIceServers },
  down: { 'timer:matcher-retry': onLinkRetry },
};
const LINK_EVENTS = new Set([
  'matcher-hello',
  'matcher-closed',
  'matcher-reconnect',
  'matcher-ice-servers',
  'timer:matcher-retry',
]);

/** Frames from the matcher: only while its socket is up. */
const MATCHER_FRAMES = new Set([
  'matcher-queued',
  'matcher-cancelled',
  'matcher-matched',
  'matcher-error',
  'matcher-reported',
  'matcher-blocked',
]);

/** Room and call events name their room; those of another room are refused. */
const ROOM_SCOPED = (type) => type.startsWith('room-') || type.startsWith('call-');

// ---- the machine ------------------------------------------------------------

/**
 * One transition.
 *
 * @param {object} state  the current state (never modified)
 * @param {{type: string}} event  what happened; timers are `{type: 'timer', name}`
 * @param {{now: number, random?: () => number}} env  the time (ms) and a random
 *   source in [0, 1) for backoff jitter (0.5 means none)
 * @returns {{state: object, effects: object[], refused?: string}}
 */
export function step(state, event, env) {
  const type = eventType(event);
  const ctx = { now: env.now, random: env.random || (() => 0.5), effects: [] };

  const { handler, refused } = route(state, type);
  if (refused) return refuse(state, refused);
  if (ROOM_SCOPED(type) && (!state.room || event.room !== state.room.id)) {
    return refuse(state, `${type} of room ${event.room}, which is not the current room`);
  }

  const out = handler(state, event, ctx);
  if (out && out.refused) return refuse(state, out.refused);
  return { state: out, effects: ctx.effects };
}

/** Whether `type` would be accepted now (e.g. whether the Next button works). */
export function allowed(state, type) {
  return !route(state, type).refused;
}

/** The table's handler for `type` in `state`: `{handler}`, or `{refused}` with the reason. */
function route(state, type) {
  if (type === 'page-hide') return { handler: onPageHide };
  if (type === 'online') return { handler: onOnline };
  const link = state.link.state;
  if (LINK_EVENTS.has(type)) {
    const handler = LINK[link][type];
    return handler ? { handler } : { refused: `${type} while the matcher socket is ${link}` };
  }
  if (MATCHER_FRAMES.has(type) && link !== 'up') return { refused: `${type} while the matcher socket is ${link}` };
  const handler = PAGE[state.phase][type];
  return handler ? { handler } : { refused: `${type} is not allowed in ${state.phase}` };
}

/** A small holder for the shell: the current state, and `dispatch`. */
export class Machine {
  /** @param {{now: () => number, random: () => number}} env */
  constructor(env) {
    this.env = env;
    this.state = initialState();
  }

  /** Apply one event; returns the effects to perform (and `refused`, if so). */
  dispatch(event) {
    const out = step(this.state, event, { now: this.env.now(), random: this.env.random });
    this.state = out.state;
    return out;
  }
}

function eventType(event) {
  return event.type === 'timer' ? `timer:${event.name}` : event.type;
}

function refuse(state, reason) {
  return { state, effects: [], refused: reason };
}

/**
 * The delay before reconnect number `attempt` (0-based): 0 s plus up to 1 s,
 * then 3, 5, 7 s (7 s from then on), each ±50%, so that the clients of a
 * node that died do not all come back at the same instant.
 */
export function reconnectDelay(attempt, random) {
  if (attempt <= 0) return Math.round(random() * 1000);
  const base = RECONNECT_STEPS_MS[Math.min(attempt, RECONNECT_STEPS_MS.length - 1)];
  return Math.round(base * (0.5 + random()));
}

/** The delay before retry number `attempt` (0-based): doubling, capped, ±20% jitter. */
export function backoffDelay({ firstMs, maxMs }, attempt, random) {
  const base = Math.min(maxMs, firstMs * 2 ** attempt);
  return Math.round(base * (0.8 + random() * 0.4));
}

// ---- user actions -----------------------------------------------------------

function onStart(s, _ev, ctx) {
  if (s.hasMedia) {
    // Kept from a search that ended on a refused name: no need to ask again.
    ctx.effects.push({ type: 'chat-clear' });
    return enterSearch({ ...s, notice: null, mediaProblem: null }, ctx);
  }
  ctx.effects.push({ type: 'open-media' });
  return { ...s, phase: 'starting', notice: null, mediaProblem: null };
}

function onMediaReady(s, ev, ctx) {
  const notice = ev.note ? { text: ev.note, kind: 'info' } : null;
  ctx.effects.push({ type: 'chat-clear' });
  return enterSearch({ ...s, hasMedia: true, notice }, ctx);
}

function onMediaFailed(s, ev) {
  return {
    ...s,
    phase: 'media-error',
    mediaProblem: ev.code || 'failed',
    notice: { text: ev.message || 'Your camera could not be started.', kind: 'error' },
  };
}

/** Next: leave the stranger (telling them) and look for another. */
function onNext(s, _ev, ctx) {
  return leaveAndSearch(s, ctx, s.room ? 'You left the chat.' : null);
}

/** Stop: leave everything, close every socket, turn the camera off. */
function onStop(s, _ev, ctx) {
  stopInterestWindow(s, ctx);
  const left = leaveRoom(s, ctx, true);
  ctx.effects.push(
    { type: 'cancel-timer', name: 'register-retry' },
    { type: 'cancel-timer', name: 'matcher-retry' },
  );
  if (s.link.state !== 'off') {
    ctx.effects.push({ type: 'close-matcher', cancel: s.phase === 'searching' && s.link.state === 'up' });
  }
  ctx.effects.push({ type: 'stop-media' });
  return {
    ...left,
    phase: 'stopped',
    hasMedia: false,
    search: null,
    registerAttempt: 0,
    link: initialState().link,
  };
}

/** The page goes away (navigation, closing the tab): as Stop, where Stop is allowed. */
function onPageHide(s, ev, ctx) {
  return PAGE[s.phase].stop ? onStop(s, ev, ctx) : s;
}

/**
 * The browser is online again: whatever waits to reconnect does so now,
 * and a call restarts ICE (its network paths may all have changed).
 */
function onOnline(s, _ev, ctx) {
  let next = s;
  if (s.link.state === 'down') {
    ctx.effects.push({ type: 'cancel-timer', name: 'matcher-retry' });
    next = openMatcher({ ...s, link: { ...s.link, retryAt: 0 } }, ctx);
  }
  if (s.room) {
    ctx.effects.push({ type: 'room-reconnect-now' });
    if (s.phase === 'in-call') ctx.effects.push({ type: 'call-restart-ice' });
  }
  return next;
}

function onSendChat(s, ev, ctx) {
  if (typeof ev.text !== 'string' || !ev.text) return { refused: 'empty chat line' };
  ctx.effects.push({ type: 'room-chat', text: ev.text });
  return s;
}

// ---- searching --------------------------------------------------------------

/** Into the pool: register now if the socket is up, else once it is. */
function enterSearch(s, ctx) {
  let next = { ...s, phase: 'searching', search: { reg: 'waiting', sentAt: 0, trouble: false, retryAt: 0 } };
  if (next.link.state === 'off') next = openMatcher(next, ctx);
  return next.link.state === 'up' ? sendRegister(next, ctx) : next;
}

/** Open a matcher socket, resuming the session we had, if any. */
function openMatcher(s, ctx) {
  const session = s.link.session;
  ctx.effects.push(session ? { type: 'open-matcher', resume: session } : { type: 'open-matcher' });
  return { ...s, link: { ...s.link, state: 'connecting', resuming: !!session } };
}

/** A resumed matcher session is not waiting (it was not, or its wait ended): register. */
function onNotWaiting(s, _ev, ctx) {
  if (s.search.reg !== 'resuming') return s;
  return sendRegister(s, ctx);
}

function sendRegister(s, ctx) {
  stopInterestWindow(s, ctx);
  ctx.effects.push({ type: 'send-register' });
  return { ...s, search: { ...s.search, reg: 'sent', sentAt: ctx.now, retryAt: 0, looking: 'anyone' } };
}

/**
 * In the pool. What the pool looks for (`search.looking`): 'interests' for
 * `interest_wait_ms` (then 'widened': anyone), 'interests-only' when the
 * register was strict (`ev.strict`, added by the shell), else 'anyone'.
 */
function onQueued(s, ev, ctx) {
  const waitMs = Number.isFinite(ev.interest_wait_ms) ? ev.interest_wait_ms : 0;
  const looking = waitMs > 0 ? 'interests' : ev.strict ? 'interests-only' : 'anyone';
  if (waitMs > 0) ctx.effects.push({ type: 'start-timer', name: 'interest-window', ms: waitMs });
  return inPool({ ...s, search: { ...s.search, looking } });
}

function inPool(s) {
  return { ...s, registerAttempt: 0, search: { ...s.search, reg: 'queued', trouble: false, retryAt: 0 } };
}

/** The interest-window timer, if it runs, is of a registration now over. */
function stopInterestWindow(s, ctx) {
  if (s.search && s.search.looking === 'interests') ctx.effects.push({ type: 'cancel-timer', name: 'interest-window' });
}

/** Nobody sharing an interest came in time: the pool now looks for anyone. */
function onInterestWindowOver(s) {
  if (s.search.looking !== 'interests') return { refused: `interest window over while looking for ${s.search.looking}` };
  return { ...s, search: { ...s.search, looking: 'widened' } };
}

function onRegisterRetry(s, _ev, ctx) {
  if (s.search.reg !== 'backoff') return { refused: `register-retry while the registration is ${s.search.reg}` };
  if (s.link.state !== 'up') return { ...s, search: { ...s.search, reg: 'waiting', retryAt: 0 } };
  return sendRegister(s, ctx);
}

function onMatcherError(s, ev, ctx) {
  const code = ev.code;
  const message = ev.message || '';
  const searching = s.phase === 'searching';
  switch (code) {
    case 'already_waiting':
      // We are in the pool already: as good as `queued`.
      return searching ? inPool(s) : s;
    case 'draining':
      // This gateway is shutting down: go elsewhere and register there.
      return onDrainReconnect(s, ev, ctx);
    case 'unavailable':
    case 'rate_limited': {
      // Redis is away behind the gateway, or we were too fast: register
      // again after a growing pause. Outside a search there is nothing to redo.
      if (!searching) return s;
      const delay = backoffDelay(REGISTER_BACKOFF, s.registerAttempt, ctx.random);
      ctx.effects.push({ type: 'start-timer', name: 'register-retry', ms: delay });
      const trouble = code === 'unavailable' || s.search.trouble;
      return {
        ...s,
        registerAttempt: s.registerAttempt + 1,
        search: { ...s.search, reg: 'backoff', trouble, retryAt: ctx.now + delay },
      };
    }
    case 'bad_name':
    case 'name_taken': {
      // The name is refused (name_taken: only legacy names must be unique,
      // but the socket is closed after it either way): stop searching and
      // let the user change it. The camera stays on for the next Start.
      const notice = {
        text: `That name cannot be used: ${message || 'choose another'}. Change it and press Start.`,
        kind: 'error',
      };
      if (!searching) return { ...s, notice };
      ctx.effects.push(
        { type: 'cancel-timer', name: 'register-retry' },
        { type: 'cancel-timer', name: 'matcher-retry' },
        { type: 'close-matcher', cancel: false },
        { type: 'focus', target: 'name' },
      );
      return { ...s, phase: 'idle', notice, search: null, link: initialState().link };
    }
    case 'no_partner':
      return s;
    case 'banned': {
      // Reports from other users banned us: say why and until when; stop
      // looking (the socket is closed by the server, and would be refused).
      const secs = Number.isFinite(ev.retry_after) ? ev.retry_after : 0;
      const notice = {
        text: `You are banned for now after reports from other users. You may come back in ${humanWait(secs)}.`,
        kind: 'error',
      };
      ctx.effects.push(
        { type: 'cancel-timer', name: 'register-retry' },
        { type: 'cancel-timer', name: 'matcher-retry' },
        { type: 'close-matcher', cancel: false },
      );
      const left = leaveRoom(s, ctx, true);
      return {
        ...left,
        phase: 'idle',
        notice,
        search: null,
        bannedUntil: ctx.now + secs * 1000,
        link: initialState().link,
      };
    }
    case 'expired_resume': {
      // The matcher session we came back for is over (its grace window
      // passed): forget it; the socket closes, and the next one starts anew.
      const link = { ...s.link, session: null, resuming: false };
      if (!searching) return { ...s, link };
      return { ...s, link, search: { ...s.search, reg: 'waiting', retryAt: 0 } };
    }
    default:
      ctx.effects.push({ type: 'log', message: `matcher error ${code}: ${message}` });
      if (searching || s.phase === 'joining' || s.phase === 'in-call') {
        return { ...s, notice: { text: `Server: ${message || code}`, kind: 'info' } };
      }
      return s;
  }
}

// ---- the matcher link -------------------------------------------------------

function onHello(s, ev, ctx) {
  const iceServers = validIceServers(ev.iceServers) || s.iceServers;
  const resumed = s.link.resuming && ev.session === s.link.session;
  const link = { state: 'up', everUp: true, attempt: 0, retryAt: 0, draining: false, session: ev.session || null, resuming: false };
  const next = { ...s, iceServers, link };
  if (next.phase === 'searching' && next.search.reg === 'waiting') {
    // A resumed session says at once whether it still waits (queued), was
    // matched meanwhile (matched) or not (cancelled): register only then.
    if (resumed) return { ...next, search: { ...next.search, reg: 'resuming' } };
    return sendRegister(next, ctx);
  }
  return next;
}

/** Fresh ICE servers (the TURN credential renewed before it expires); a live call gets them too. */
function onIceServers(s, ev, ctx) {
  const iceServers = validIceServers(ev.iceServers);
  if (!iceServers) return { refused: 'ice-servers without a list of servers' };
  if (s.phase === 'in-call') ctx.effects.push({ type: 'call-ice-servers', iceServers });
  return { ...s, iceServers };
}

/** `list` if it is an RTCIceServer list (each entry with `urls`), else null. */
export function validIceServers(list) {
  if (!Array.isArray(list)) return null;
  const ok = list.every(
    (e) => e && typeof e === 'object' && (typeof e.urls === 'string' || (Array.isArray(e.urls) && e.urls.length > 0)),
  );
  return ok ? list : null;
}

/** The socket is gone: try again after a growing pause; the registration went with it. */
function onLinkClosed(s, _ev, ctx) {
  const delay = reconnectDelay(s.link.attempt, ctx.random);
  ctx.effects.push({ type: 'start-timer', name: 'matcher-retry', ms: delay });
  const link = { ...s.link, state: 'down', attempt: s.link.attempt + 1, retryAt: ctx.now + delay, draining: false };
  return withRegistrationLost({ ...s, link }, ctx);
}

function onLinkRetry(s, _ev, ctx) {
  return openMatcher(s, ctx);
}

/** The gateway drains (`reconnect`, or a register answered `draining`): move now. */
function onDrainReconnect(s, _ev, ctx) {
  if (s.link.state !== 'up') return { refused: `drain while the matcher socket is ${s.link.state}` };
  ctx.effects.push({ type: 'close-matcher', cancel: false });
  const next = openMatcher(s, ctx);
  const link = { ...next.link, retryAt: ctx.now, draining: true };
  return withRegistrationLost({ ...next, link }, ctx);
}

/** The matcher socket went away: a search must register again on the next one (or resume). */
function withRegistrationLost(s, ctx) {
  if (s.phase !== 'searching') return s;
  ctx.effects.push({ type: 'cancel-timer', name: 'register-retry' });
  return { ...s, search: { ...s.search, reg: 'waiting', retryAt: 0 } };
}

// ---- the room ---------------------------------------------------------------

function onMatched(s, ev, ctx) {
  if (!ev.ticket || !ev.signaller_url) return { refused: 'matched without ticket or signaller_url' };
  const id = s.roomSeq + 1;
  const peerName = ev.peer_name || 'Stranger';
  const commonInterests = Array.isArray(ev.common_interests)
    ? ev.common_interests.filter((t) => typeof t === 'string')
    : [];
  stopInterestWindow(s, ctx);
  ctx.effects.push(
    { type: 'chat-clear' },
    { type: 'chat-system', text: `You are now talking to ${peerName}. Say hi!` },
  );
  if (commonInterests.length) {
    ctx.effects.push({ type: 'chat-system', text: `You both like: ${commonInterests.join(', ')}.` });
  }
  ctx.effects.push({ type: 'open-room', room: id, url: ev.signaller_url, ticket: ev.ticket });
  return {
    ...s,
    phase: 'joining',
    notice: null,
    search: null,
    roomSeq: id,
    peerName,
    commonInterests,
    endReason: '',
    room: {
      id,
      polite: !ev.initiator,
      peerPresent: false,
      rejoining: false,
      reconnecting: false,
      reconnectUntil: 0,
      peerAway: false,
      callState: 'connecting',
      remoteStream: false,
      startedAt: ctx.now,
      /** 'relay' | 'direct' once connected (call-route), else null. */
      route: null,
      /** {code, text} when the TURN server refused our credential, else null. */
      iceError: null,
    },
  };
}

/** Matched after we stopped looking: join and leave at once so the other person is told. */
function onMatchedElsewhere(s, ev, ctx) {
  if (!ev.ticket || !ev.signaller_url) return { refused: 'matched without ticket or signaller_url' };
  ctx.effects.push({ type: 'release-room', url: ev.signaller_url, ticket: ev.ticket });
  return s;
}

function onRoomJoined(s, ev, ctx) {
  const peerPresent = !!ev.peer_present;
  ctx.effects.push({ type: 'start-call', polite: s.room.polite });
  if (peerPresent) ctx.effects.push({ type: 'call-peer-present' });
  else ctx.effects.push({ type: 'start-timer', name: 'no-show', ms: PEER_NO_SHOW_MS });
  return {
    ...s,
    phase: 'in-call',
    peerName: ev.peer_name || s.peerName,
    room: { ...s.room, rejoining: false, peerPresent },
  };
}

function onRoomRejoining(s) {
  return { ...s, room: { ...s.room, rejoining: true } };
}

/** Our room socket dropped; it is coming back (room-client.js retries until `until`). */
function onRoomReconnecting(s, ev) {
  return { ...s, room: { ...s.room, reconnecting: true, reconnectUntil: ev.until || 0 } };
}

/** Our room session is back on a new socket; what we missed follows. */
function onRoomResumed(s, ev) {
  const peerAway = ev.peer_reconnecting === undefined ? s.room.peerAway : !!ev.peer_reconnecting;
  return { ...s, room: { ...s.room, reconnecting: false, reconnectUntil: 0, peerAway } };
}

/** The stranger's socket dropped; they may come back within the grace window. */
function onPeerReconnecting(s) {
  return { ...s, room: { ...s.room, peerAway: true } };
}

function onPeerResumed(s) {
  return { ...s, room: { ...s.room, peerAway: false } };
}

function onPeerJoined(s, ev, ctx) {
  ctx.effects.push({ type: 'cancel-timer', name: 'no-show' }, { type: 'call-peer-present' });
  return { ...s, peerName: ev.peer_name || s.peerName, room: { ...s.room, peerPresent: true } };
}

function onSignal(s, ev, ctx) {
  if (!ev.data || typeof ev.data !== 'object') return { refused: 'signal without data' };
  ctx.effects.push({ type: 'cancel-timer', name: 'no-show' }, { type: 'call-receive', data: ev.data });
  return s.room.peerPresent ? s : { ...s, room: { ...s.room, peerPresent: true } };
}

function onPeerChat(s, ev, ctx) {
  if (typeof ev.message !== 'string') return { refused: 'chat without a message' };
  ctx.effects.push({ type: 'chat-peer', who: ev.sender || s.peerName, text: ev.message, timestamp: ev.timestamp });
  return s;
}

function onRoomError(s, ev, ctx) {
  const { code, message } = ev;
  if (code === 'too_long' || code === 'rate_limited') {
    ctx.effects.push({ type: 'chat-system', text: `Not sent: ${message || code}.` });
  } else {
    ctx.effects.push({ type: 'log', message: `signaller error ${code}: ${message || ''}` });
  }
  return s;
}

function onCallState(s, ev, ctx) {
  const room = { ...s.room, callState: ev.state };
  let notice = s.notice;
  if (ev.state === 'connected') {
    room.peerPresent = true;
    ctx.effects.push({ type: 'cancel-timer', name: 'no-show' });
    // Connected after all (another candidate worked): the relay's refusal no longer matters.
    if (room.iceError) {
      room.iceError = null;
      notice = null;
    }
  }
  return { ...s, notice, room };
}

/** Which candidate pair carries the call: through the TURN relay or not. */
function onCallRoute(s, ev) {
  return { ...s, room: { ...s.room, route: ev.relay ? 'relay' : 'direct' } };
}

/**
 * ICE could not use a server. A TURN server answering 401 (or 403) refused
 * our credential: it expired, or the relay's secret is not ours. With a
 * relay-only policy (or on a network that needs the relay) the call then
 * never starts, so the user is told at once instead of watching
 * "Connecting…" for ever. Other errors (a STUN server out of reach) are
 * only logged: other candidates may still work.
 */
function onIceError(s, ev, ctx) {
  const code = Number(ev.code);
  const url = typeof ev.url === 'string' ? ev.url : '';
  ctx.effects.push({ type: 'log', message: `ICE server error ${code} ${ev.text || ''} (${url || 'unknown server'})` });
  if (!(code === 401 || code === 403) || !/^turns?:/.test(url) || s.room.callState === 'connected') return s;
  return {
    ...s,
    notice: {
      text: `The relay server refused our credentials (TURN error ${code}${ev.text ? `: ${ev.text}` : ''}): they may have expired. Press Next to try again, or reload the page.`,
      kind: 'error',
    },
    room: { ...s.room, iceError: { code, text: ev.text || '' } },
  };
}

function onRemoteStream(s, ev, ctx) {
  ctx.effects.push({ type: 'attach-remote', stream: ev.stream });
  return { ...s, room: { ...s.room, remoteStream: true } };
}

/** The stranger was matched but never came into the room: look again. */
function onNoShow(s, _ev, ctx) {
  if (s.room.peerPresent) return { refused: 'no-show, but the peer is present' };
  return leaveAndSearch(s, ctx, `${s.peerName} never arrived. Looking for someone else…`);
}

function onPeerLeft(s, ev, ctx) {
  const reason = ev.reason || 'left';
  const ended = endRoom(s, ctx, 'peer-left', reason);
  ctx.effects.push({ type: 'chat-system', text: peerLeftLine(s.peerName, reason) }, { type: 'focus', target: 'next' });
  return ended;
}

function onRoomLost(s, ev, ctx) {
  const ended = endRoom(s, ctx, 'lost', ev.reason || '');
  ctx.effects.push({ type: 'chat-system', text: `Lost the connection to ${s.peerName}.` }, { type: 'focus', target: 'next' });
  return ended;
}

/** The room is over by the other side or the network: close it, offer Next. */
function endRoom(s, ctx, phase, reason) {
  return { ...leaveRoom(s, ctx, false), phase, endReason: reason };
}

/** Leave the room, if any (telling the stranger), say `line` in the chat (if any), search again. */
function leaveAndSearch(s, ctx, line) {
  const left = leaveRoom(s, ctx, true);
  if (line) ctx.effects.push({ type: 'chat-system', text: line });
  return enterSearch(left, ctx);
}

/** Close the call and the room socket; `leave` tells the peer first. */
function leaveRoom(s, ctx, leave) {
  if (!s.room) return s;
  ctx.effects.push({ type: 'cancel-timer', name: 'no-show' }, { type: 'close-room', leave });
  return { ...s, room: null, lastRoomEndedAt: ctx.now };
}

/** How long the stranger met last may still be reported once the room is over (the server's minute). */
export const REPORT_AFTER_MS = 60000;

/** The report reasons the server knows. */
export const REPORT_REASONS = Object.freeze(['nudity', 'harassment', 'spam', 'underage', 'other']);

/** Whether a report or block about the stranger met last can be made now. */
export function canModerate(s, now) {
  if (s.link.state !== 'up') return false;
  if (s.room) return true;
  if (s.phase === 'peer-left' || s.phase === 'lost') return true;
  return s.phase === 'searching' && s.lastRoomEndedAt > 0 && now - s.lastRoomEndedAt < REPORT_AFTER_MS;
}

function onReport(s, ev, ctx) {
  if (!REPORT_REASONS.includes(ev.reason)) return { refused: `unknown report reason ${ev.reason}` };
  if (!canModerate(s, ctx.now)) return { refused: 'nobody to report now' };
  ctx.effects.push({ type: 'send-report', reason: ev.reason });
  return s;
}

function onBlock(s, _ev, ctx) {
  if (!canModerate(s, ctx.now)) return { refused: 'nobody to block now' };
  ctx.effects.push({ type: 'send-block' });
  return s;
}

function onReported(s, _ev, ctx) {
  ctx.effects.push({ type: 'chat-system', text: 'Thank you: your report was sent to the moderators.' });
  return s;
}

function onBlocked(s, _ev, ctx) {
  ctx.effects.push({ type: 'chat-system', text: `Blocked: you will not be paired with ${s.peerName} again.` });
  return s;
}

/** "2 h 5 min", "40 s": a wait told to a person. */
export function humanWait(secs) {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.ceil(secs / 60)} min`;
  const h = Math.floor(secs / 3600);
  const m = Math.ceil((secs % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

/** What to say when the stranger is gone, by the server's reason. */
export function peerLeftLine(peer, reason) {
  switch (reason) {
    case 'disconnected':
      return `${peer} left (disconnected).`;
    case 'node_lost':
    case 'drained':
      return `${peer} left: their connection to the server was lost.`;
    case 'timeout':
      return `${peer} left: their connection dropped and did not come back.`;
    default:
      return `${peer} left.`;
  }
}
