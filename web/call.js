// One WebRTC call with one stranger: the browser's own RTCPeerConnection,
// trickle ICE and the "perfect negotiation" pattern
// (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example), so both
// sides may offer at once (glare) and the call still comes up. The polite
// peer (the non-initiator) gives way when offers collide.
//
// Signals are opaque to the servers. We send them in the shape simple-peer
// uses ({type, sdp} for descriptions, {type: "candidate", candidate} for ICE).
// The signaller delivers each of them exactly once and in order, so there
// is no replay to guard against.
//
// Events (CustomEvent, payload in `detail`):
//   remote-stream  {stream}
//   state          {state}  'connecting' | 'connected' | 'unstable' | 'failed' | 'closed'
//   route          {relay, local, remote}  once connected: the selected candidate
//                  pair's types (relay: the call goes through the TURN server)
//   ice-error      {code, text, url}  a STUN/TURN server could not be used
//                  (401: the TURN server refused our credential)

/** How long the polite peer waits for the initiator's first offer. */
const FIRST_OFFER_WAIT_MS = 3000;
/** ICE still idle this long after offer and answer: restart it (at most MAX_STALL_RESTARTS times). */
const STALL_MS = 3000;
const MAX_STALL_RESTARTS = 2;
/** Longest wait for our own ICE gathering to finish before rolling an offer back. */
const ROLLBACK_GATHER_WAIT_MS = 2000;
/** ICE restarts in a row without the call coming back, before it is given up. */
const MAX_RESTARTS = 5;

export class Call extends EventTarget {
  /**
   * @param {object} opts
   * @param {boolean} opts.polite        true for the non-initiator
   * @param {MediaStream|null} opts.localStream
   * @param {RTCIceServer[]} opts.iceServers
   * @param {RTCIceTransportPolicy} [opts.iceTransportPolicy]  'relay' forces the TURN relay (tests)
   * @param {(data: object) => void} opts.sendSignal
   */
  constructor({ polite, localStream, iceServers, iceTransportPolicy = 'all', sendSignal }) {
    super();
    this.polite = polite;
    this.sendSignal = sendSignal;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswerPending = false;
    this.closed = false;
    this.remoteStream = null;
    this.state = 'connecting';
    this.restarts = 0;
    this.stallRestarts = 0;
    this.stallTimer = null;
    // Incoming signals are handled strictly one after another.
    this.incoming = Promise.resolve();
    // The polite peer lets the initiator make the first offer. Glare is
    // survived either way, but a rollback costs time (see #answer), so the
    // common case avoids it. The polite peer offers by itself only if no
    // offer came within FIRST_OFFER_WAIT_MS of the peer being there.
    this.holdFirstOffer = polite;
    this.heldNegotiation = false;
    this.firstOfferTimer = null;

    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    this.pc = pc;

    pc.onnegotiationneeded = () => this.#negotiate();
    pc.onicecandidate = ({ candidate }) => {
      // `null` marks the end of gathering; trickle ICE needs no message for it.
      if (candidate) this.#send({ type: 'candidate', candidate: candidate.toJSON() });
    };
    pc.ontrack = (ev) => {
      let stream = ev.streams && ev.streams[0];
      if (!stream) {
        if (!this.remoteStream) this.remoteStream = new MediaStream();
        this.remoteStream.addTrack(ev.track);
        stream = this.remoteStream;
      }
      this.remoteStream = stream;
      this.dispatchEvent(new CustomEvent('remote-stream', { detail: { stream } }));
    };
    pc.onconnectionstatechange = () => this.#onConnectionState();
    pc.onicecandidateerror = (ev) => {
      if (this.closed) return;
      this.dispatchEvent(
        new CustomEvent('ice-error', { detail: { code: ev.errorCode, text: ev.errorText || '', url: ev.url || '' } }),
      );
    };
    pc.onsignalingstatechange = () => this.#armStallWatchdog();

    if (localStream) {
      for (const track of localStream.getTracks()) pc.addTrack(track, localStream);
    } else {
      // No camera: still ask to receive the stranger's media.
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
    }
  }

  /** The peer is in the room: from now on its first offer is awaited only briefly. */
  peerPresent() {
    if (this.holdFirstOffer && !this.firstOfferTimer && !this.closed) {
      this.firstOfferTimer = setTimeout(() => this.#releaseFirstOffer(), FIRST_OFFER_WAIT_MS);
    }
  }

  /** Handle a signal relayed from the peer. */
  receive(data) {
    this.incoming = this.incoming.then(() => this.#handle(data)).catch((err) => {
      if (!this.closed) console.warn('call: could not apply a signal from the peer:', err);
    });
    return this.incoming;
  }

  /** Fresh ICE servers (renewed TURN credential) for later gathering and ICE restarts. */
  setIceServers(iceServers) {
    if (this.closed) return;
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch (err) {
      console.warn('call: could not apply fresh ICE servers:', err);
    }
  }

  /**
   * Restart ICE (new credentials, new candidates): the network under the
   * call changed or broke. Perfect negotiation makes this safe from either
   * side, even from both at once; the media resumes without a new match.
   */
  restartIce() {
    if (this.closed) return;
    this.iceRestarts = (this.iceRestarts || 0) + 1;
    this.pc.restartIce();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.firstOfferTimer);
    this.pc.onnegotiationneeded = null;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.onsignalingstatechange = null;
    this.pc.onicecandidateerror = null;
    clearTimeout(this.stallTimer);
    this.pc.close();
    this.#setState('closed');
  }

  #send(data) {
    if (this.closed) return;
    this.sendSignal(data);
  }

  #releaseFirstOffer() {
    clearTimeout(this.firstOfferTimer);
    this.holdFirstOffer = false;
    if (this.heldNegotiation && !this.closed) {
      this.heldNegotiation = false;
      if (this.pc.signalingState === 'stable') this.#negotiate();
    }
  }

  async #negotiate() {
    if (this.holdFirstOffer || this.answering) {
      this.heldNegotiation = true;
      return;
    }
    try {
      this.makingOffer = true;
      this.offering = this.pc.setLocalDescription();
      await this.offering;
      if (this.closed) return;
      const { type, sdp } = this.pc.localDescription;
      this.#send({ type, sdp });
    } catch (err) {
      if (!this.closed) console.warn('call: could not make an offer:', err);
    } finally {
      this.makingOffer = false;
    }
  }

  async #handle(data) {
    if (this.closed || !data || typeof data !== 'object') return;
    const description = describe(data);
    const candidate = data.candidate;
    if (description) {
      const pc = this.pc;
      const readyForOffer =
        !this.makingOffer && (pc.signalingState === 'stable' || this.settingRemoteAnswerPending);
      const offerCollision = description.type === 'offer' && !readyForOffer;
      this.ignoreOffer = !this.polite && offerCollision;
      if (this.ignoreOffer) return;
      if (description.type === 'offer') {
        await this.#answer(description);
        return;
      }
      this.settingRemoteAnswerPending = true;
      try {
        await pc.setRemoteDescription(description);
      } finally {
        this.settingRemoteAnswerPending = false;
      }
    } else if (candidate && typeof candidate === 'object') {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (err) {
        // Candidates for an offer we ignored are expected to fail.
        if (!this.ignoreOffer && !this.closed) throw err;
      }
    }
  }

  /**
   * Answer an offer. When it collided with our own (we are polite), our offer
   * is rolled back explicitly once its setLocalDescription has settled, and
   * no offer of ours may start until the answer is out: Chromium can stop
   * gathering ICE candidates for good when an implicit rollback races a
   * pending setLocalDescription.
   */
  async #answer(offer) {
    const pc = this.pc;
    this.answering = true;
    try {
      if (this.makingOffer || pc.signalingState === 'have-local-offer') {
        await this.offering?.catch(() => {});
        await gatheringSettled(pc, ROLLBACK_GATHER_WAIT_MS);
        if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
      }
      await pc.setRemoteDescription(offer);
      await pc.setLocalDescription();
      if (this.closed) return;
      const { type, sdp } = pc.localDescription;
      this.#send({ type, sdp });
    } finally {
      this.answering = false;
    }
    // Our tracks usually ride on this answer; offer only if something is left.
    this.holdFirstOffer = false;
    clearTimeout(this.firstOfferTimer);
    if (this.heldNegotiation && !this.closed) {
      this.heldNegotiation = false;
      if (pc.signalingState === 'stable' && needsNegotiation(pc)) this.#negotiate();
    }
  }

  #onConnectionState() {
    const s = this.pc.connectionState;
    if (s === 'connected') {
      this.restarts = 0;
      clearTimeout(this.stallTimer);
      this.#setState('connected');
      this.#reportRoute();
    } else if (s === 'disconnected' || s === 'failed') {
      // The path broke (a network switch, a peer that went offline): restart
      // ICE at once, on either side, a few times before giving up.
      if (this.restarts < MAX_RESTARTS) {
        this.restarts += 1;
        this.#setState('unstable');
        this.restartIce();
      } else {
        this.#setState('failed');
      }
    } else if (s === 'connecting' || s === 'new') {
      if (this.state !== 'unstable') this.#setState('connecting');
    }
  }

  /**
   * Once offer and answer are both applied, ICE should start checking within
   * moments. Chromium sometimes gathers no candidates at all after an offer
   * was rolled back (glare); an ICE restart (new credentials, new gathering)
   * gets such a call going. The polite side waits longer so that both sides
   * rarely restart at once.
   */
  #armStallWatchdog() {
    const pc = this.pc;
    if (this.closed || this.state === 'connected' || this.stallRestarts >= MAX_STALL_RESTARTS) return;
    if (pc.signalingState !== 'stable' || !pc.localDescription || !pc.remoteDescription) return;
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.closed || pc.iceConnectionState !== 'new' || pc.signalingState !== 'stable') return;
      this.stallRestarts += 1;
      console.warn('call: ICE has not started; restarting it');
      pc.restartIce();
    }, this.polite ? STALL_MS * 2 : STALL_MS);
  }

  /** Tell which candidate pair connected: relayed through TURN or not. */
  async #reportRoute() {
    let route = null;
    try {
      route = selectedRoute(await this.pc.getStats());
    } catch (err) {
      console.warn('call: no stats for the route:', err);
    }
    if (route && !this.closed) this.dispatchEvent(new CustomEvent('route', { detail: route }));
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state } }));
  }
}

/**
 * Resolves once ICE gathering is not in progress (or after `ms`). Rolling
 * back an offer while its candidates are being gathered can leave Chromium's
 * ICE transport gathering nothing, for good.
 */
function gatheringSettled(pc, ms) {
  if (pc.iceGatheringState !== 'gathering' && pc.iceGatheringState !== 'new') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** Whether some transceiver is not yet negotiated as it is meant to be. */
function needsNegotiation(pc) {
  return pc
    .getTransceivers()
    .some((t) => !t.stopped && t.currentDirection !== 'stopped' && (t.mid === null || t.currentDirection !== t.direction));
}

/** A session description in either of the shapes we accept, or null. */
function describe(data) {
  const d = data.description && typeof data.description === 'object' ? data.description : data;
  if ((d.type === 'offer' || d.type === 'answer') && typeof d.sdp === 'string') {
    return { type: d.type, sdp: d.sdp };
  }
  if (d.type === 'rollback') return { type: 'rollback' };
  return null;
}

/**
 * The selected candidate pair of a stats report: `{relay, local, remote}`
 * with the two candidates' types ('host' | 'srflx' | 'prflx' | 'relay'), or
 * null before one is selected. `relay` is true when either side's
 * candidate is a TURN relay: the media then goes through that server.
 * @param {Map<string, object>|RTCStatsReport} report
 */
export function selectedRoute(report) {
  const byId = new Map();
  for (const r of report.values()) byId.set(r.id, r);
  let pair = null;
  for (const r of byId.values()) {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = byId.get(r.selectedCandidatePairId) || pair;
  }
  if (!pair) {
    // Browsers without transport stats mark the pair itself.
    for (const r of byId.values()) {
      if (r.type === 'candidate-pair' && (r.selected || (r.nominated && r.state === 'succeeded'))) pair = r;
    }
  }
  if (!pair) return null;
  const local = byId.get(pair.localCandidateId)?.candidateType || null;
  const remote = byId.get(pair.remoteCandidateId)?.candidateType || null;
  return { relay: local === 'relay' || remote === 'relay', local, remote };
}
