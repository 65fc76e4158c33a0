// The media mesh: one RTCPeerConnection per remote member, "perfect negotiation".
//
// protocol.md section 3: the newcomer creates the connection and offers; the member
// already in the room creates its connection when the first signal arrives, adds its
// tracks with addTrack (so JSEP pairs them with the offer's m-lines and the answer
// sends media at once), then applies the offer. Glare is settled by the polite peer
// (the lower userId) rolling back its own offer; the impolite one ignores the
// colliding offer. Candidates are trickled. A connection that fails is restarted
// (ICE restart) a few times before it is reported lost (once); it is then still
// restarted now and then, so a network that comes back brings the peer back.
//
// Perfect negotiation assumes no message is lost, but a socket that drops and
// resumes loses what was relayed meanwhile. An offer left unanswered would then
// wedge both sides (the impolite peer keeps ignoring the polite one's offers), so
// until a connection is up it is nudged every few seconds: an unanswered offer is
// sent again, and a connection on which no negotiation is under way starts one. A
// duplicate is harmless (an offer applied twice is answered twice, a stale answer
// is dropped) and glare is what perfect negotiation settles.
//
// A peer whose userId starts with "__" is the server's own (the recorder, protocol.md
// section 6): we answer its offers with our tracks, but it is no participant. It is
// left out of the video budget and of connections(); it is never nudged, restarted
// or reported lost; a connection with it that fails or closes is simply dropped, and
// its next offer (it repairs what it offered) makes a fresh one.
//
// Privileges (privileges.js): every transceiver gets the widest direction the
// member's privileges allow, sending only with a track of that kind, both those we
// create (an offerer has one audio and one video m-line whatever it sends) and those
// the browser creates for a remote offer, before every offer and answer. So an
// audience member answers a sendrecv offer with recvonly (inactive towards the
// recorder) and a member without a receive bit never asks for that kind: the
// server, which checks every relayed SDP, never has to refuse one of ours.
//
// A shared screen (Mesh.setScreen) is a video m-line of its own, beside the camera's:
// a sendonly transceiver added to every connection, which renegotiates. Every
// description we send marks the screen's sections `a=content:slides` (slides.js), so
// the other side, the Python client and the server's check (bits 64/128 for it, not
// the camera's 16/32) tell it from the camera; a remote description's marks say which
// of its tracks is a screen (Peer.screenStream). Stopping sets the transceiver
// inactive (another renegotiation) and keeps it for the next share, so the m-lines do
// not pile up.

import { allowedDirection, maySend } from "./privileges.js";
import { PRIVILEGE } from "./protocol.js";
import { markSlides, slidesMids } from "./slides.js";

const RESTARTS = 3; // ICE restarts before a peer is reported lost (trtc -1307)
const SLOW_RESTART = 10000; // ms between the restarts of a peer reported lost
const DISCONNECT_GRACE = 4000; // ms in "disconnected" before forcing a restart
const NUDGE = 3000; // ms between nudges of a connection that is not up (plus jitter)
const OFFER_RETRIES = 20;

// What each outgoing video stream may cost. In a mesh every member encodes and
// uploads one stream per peer, so a bigger room sends each one smaller: a grid tile
// is a fraction of the screen, and N-1 full-size streams would swamp an uplink and
// a phone's CPU alike.
const VIDEO_BUDGET = [
  { upTo: 2, maxBitrate: 1_200_000, scaleResolutionDownBy: 1, maxFramerate: 30 },
  { upTo: 4, maxBitrate: 400_000, scaleResolutionDownBy: 1.5, maxFramerate: 15 },
  { upTo: Infinity, maxBitrate: 250_000, scaleResolutionDownBy: 2, maxFramerate: 12 },
];

/** The per-stream video budget for a call of `members` people (us included). */
export function videoBudget(members) {
  const { upTo, ...budget } = VIDEO_BUDGET.find((b) => members <= b.upTo);
  return budget;
}

/** Whether `userId` is one of the server's hidden participants (the recorder). */
export function isHidden(userId) {
  return typeof userId === "string" && userId.startsWith("__");
}

/** One remote member: its connection, negotiation flags and received stream. */
class Peer {
  constructor(mesh, userId) {
    this.mesh = mesh;
    this.userId = userId;
    this.hidden = isHidden(userId);
    this.polite = mesh.selfId < userId; // plain string comparison, as both sides do it
    this.pc = new RTCPeerConnection(mesh.rtcConfig);
    this.stream = null;
    this.screenStream = null; // the remote's shared screen, or null
    this.screenTx = null; // our screen's transceiver, once we shared on this connection
    this.screenMids = new Set(); // the mids of screen sections, ours and the remote's
    this.status = "connecting";
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingAnswer = false;
    this.restarts = 0;
    this.reportedLost = false;
    this.graceTimer = null;
    this.nudgeTimer = null;
    this.offerRetries = 0;
    this.chain = Promise.resolve();
    this.#wire();
    this.#armNudge();
  }

  #log(...args) {
    this.mesh.log(`[${this.mesh.selfId}→${this.userId}]`, ...args);
  }

  /** Note a phase of this member's join (timeline.js); the recorder's link is no join. */
  #mark(phase) {
    if (!this.hidden) this.mesh.mark?.(phase, this.userId);
  }

  #wire() {
    const pc = this.pc;
    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        this.#limitDirections();
        await pc.setLocalDescription();
        this.#send({ description: this.#described() });
        this.#mark("offer");
        this.offerRetries = 0;
        this.tune(); // now, so the encoder starts with its budget (see tune())
      } catch (err) {
        this.#log("offer failed", err);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => {
      this.#send({ candidate: candidate ? candidate.toJSON() : null });
    };
    pc.ontrack = ({ track, streams, transceiver }) => {
      if (this.screenMids.has(transceiver?.mid)) {
        // Without the receive bit we answered inactive: nothing will ever play.
        if (allowedDirection("sub", this.mesh.privileges, false) === "inactive") return;
        const show = () => {
          this.screenStream = new MediaStream([track]); // a fresh one: the tile restarts
          this.mesh.changed(this.userId);
        };
        // Shown from its first packet, so a share never opens on a black tile.
        if (track.muted) track.addEventListener("unmute", show, { once: true });
        else show();
        return;
      }
      // A remote track is muted until its first RTP packet arrives.
      if (!track.muted) this.#mark("first-rtp");
      else track.addEventListener("unmute", () => this.#mark("first-rtp"), { once: true });
      if (streams && streams[0]) {
        this.stream = streams[0];
      } else {
        if (!this.stream) this.stream = new MediaStream();
        this.stream.addTrack(track);
      }
      this.mesh.changed(this.userId);
    };
    pc.onconnectionstatechange = () => this.#connectionState();
    pc.oniceconnectionstatechange = () => {
      if (["connected", "completed"].includes(pc.iceConnectionState)) this.#mark("ice-connected");
    };
  }

  /**
   * Add the tracks we may send (addTrack, so JSEP pairs them with a remote offer's
   * m-lines); the offerer also gets an m-line for each kind it does not send, as
   * wide as the privileges allow (recvonly, or inactive without the receive bit).
   */
  addLocalTracks(stream, offerer) {
    const privileges = this.mesh.privileges;
    const kinds = new Set();
    for (const track of this.mesh.outgoing(stream)) {
      if (kinds.has(track.kind) || !maySend(track.kind, privileges)) continue;
      this.pc.addTrack(track, stream);
      kinds.add(track.kind);
    }
    if (offerer) {
      for (const kind of ["audio", "video"]) {
        if (kinds.has(kind)) continue;
        this.pc.addTransceiver(kind, { direction: allowedDirection(kind, privileges, false) });
      }
      this.#limitDirections(); // an answerer's are set once the offer has paired them
    }
    // An answerer's screen waits for the answer (#apply): added now, it could start an
    // offer of ours while the remote's is being applied.
    if (offerer && this.mesh.screen) this.setScreen(this.mesh.screen);
  }

  /**
   * Send `screen` on this connection's screen transceiver (added the first time),
   * or nothing (null: the transceiver goes inactive). Either renegotiates.
   */
  async setScreen(screen) {
    // The recorder records cameras and microphones; its offers are its own to repair.
    if (this.hidden || this.pc.signalingState === "closed") return;
    if (screen && !this.screenTx) {
      const direction = maySend("sub", this.mesh.privileges) ? "sendonly" : "inactive";
      this.screenTx = this.pc.addTransceiver(screen, { direction, streams: [new MediaStream([screen])] });
      return;
    }
    if (!this.screenTx) return;
    await this.screenTx.sender.replaceTrack(screen || null);
    this.#limitDirections();
  }

  /** Our local description as sent: the screen's sections marked (slides.js). */
  #described() {
    const description = this.pc.localDescription.toJSON();
    if (this.screenTx?.mid) this.screenMids.add(this.screenTx.mid);
    return { ...description, sdp: markSlides(description.sdp, this.screenMids) };
  }

  /** Our privileges changed (a renewed privateMapKey): narrow, renegotiating if need be. */
  restrict() {
    this.#limitDirections();
  }

  /** Give every transceiver the widest direction our privileges allow, and no wider. */
  #limitDirections() {
    const privileges = this.mesh.privileges;
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.direction === "stopped" || transceiver.currentDirection === "stopped") continue;
      const direction = this.#allowed(transceiver, privileges);
      if (transceiver.direction === direction) continue;
      try {
        transceiver.direction = direction;
      } catch (err) {
        this.#log("cannot set a transceiver's direction", err); // stopped meanwhile
      }
    }
  }

  /** A transceiver's widest direction: a screen's sends one way only (ours) or receives. */
  #allowed(transceiver, privileges) {
    if (transceiver === this.screenTx) {
      return transceiver.sender.track && maySend("sub", privileges) ? "sendonly" : "inactive";
    }
    if (this.screenMids.has(transceiver.mid)) return allowedDirection("sub", privileges, false);
    const kind = transceiver.receiver.track.kind;
    return allowedDirection(kind, privileges, Boolean(transceiver.sender.track));
  }

  /** Queue one signal; they are applied strictly in arrival order. */
  receive(data) {
    this.chain = this.chain.then(() => this.#apply(data)).catch((err) => this.#log("signal", err));
    return this.chain;
  }

  async #apply(data) {
    const pc = this.pc;
    if (pc.signalingState === "closed") return;
    if (data.description) {
      const description = data.description;
      if (description.type === "rollback") return; // implicit in setRemoteDescription
      this.#mark(description.type); // an offer received, or the answer to ours
      const readyForOffer =
        !this.makingOffer && (pc.signalingState === "stable" || this.settingAnswer);
      const collision = description.type === "offer" && !readyForOffer;
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) {
        this.#log("ignoring colliding offer");
        return;
      }
      if (description.type === "answer" && pc.signalingState !== "have-local-offer") {
        return; // a duplicate of an answer already applied
      }
      this.settingAnswer = description.type === "answer";
      for (const mid of slidesMids(description.sdp)) this.screenMids.add(mid); // before ontrack
      await pc.setRemoteDescription(description);
      this.settingAnswer = false;
      if (description.type === "offer") {
        this.#limitDirections(); // the m-lines the offer added ask to receive
        await pc.setLocalDescription();
        this.#send({ description: this.#described() });
        this.#mark("answer");
        this.tune();
        if (this.mesh.screen && !this.screenTx) this.setScreen(this.mesh.screen); // we offer it next
      }
    } else if ("candidate" in data) {
      // A null candidate ends the remote's gathering; browsers infer that anyway.
      if (!data.candidate || !data.candidate.candidate) return;
      try {
        await pc.addIceCandidate(data.candidate);
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
    }
  }

  #send(data) {
    this.mesh.send(this.userId, data);
  }

  #armNudge() {
    if (this.hidden) return; // the recorder repairs its own offers
    clearTimeout(this.nudgeTimer);
    this.nudgeTimer = setTimeout(() => this.#nudge(), NUDGE + Math.random() * 1000);
  }

  /** Until the connection is up, repair a negotiation that messages lost have wedged. */
  #nudge() {
    const pc = this.pc;
    if (pc.signalingState === "closed" || pc.connectionState === "connected") return;
    if (pc.signalingState === "have-local-offer") {
      this.resendOffer();
    } else if (pc.signalingState === "stable" && pc.connectionState === "new") {
      this.#log("no negotiation under way, starting one");
      pc.restartIce(); // sets negotiation-needed even before the first offer
    }
    this.#armNudge();
  }

  /** Send our pending offer again (it, or its answer, may have been lost). */
  resendOffer() {
    const pc = this.pc;
    if (pc.signalingState !== "have-local-offer" || !pc.localDescription) return;
    if (this.offerRetries >= OFFER_RETRIES) return;
    this.offerRetries += 1;
    this.#log("offer unanswered, sending it again");
    this.#send({ description: this.#described() });
  }

  #connectionState() {
    const state = this.pc.connectionState;
    this.#log("connection", state);
    clearTimeout(this.graceTimer);
    if (this.hidden) {
      if (state === "failed" || state === "closed") this.mesh.remove(this.userId);
      return;
    }
    if (state === "connected") {
      this.#mark("dtls-connected"); // connected: ICE and DTLS both
      this.restarts = 0;
      this.reportedLost = false;
      this.tune();
      this.#setStatus("connected");
    } else if (state === "disconnected") {
      this.#setStatus("reconnecting");
      this.graceTimer = setTimeout(() => this.restart(), DISCONNECT_GRACE);
    } else if (state === "failed") {
      this.restart();
    }
  }

  /**
   * Apply the mesh's current video budget to our video sender (no renegotiation).
   *
   * First as soon as our description is set (the sender has its encodings then), so the
   * encoder starts with the budget: applied only once the link connects, it reset the
   * encoder just as the first frames went out, and the other side saw its first frame
   * later. Again when the link connects and whenever the mesh grows or shrinks; a budget
   * already in place is not applied twice.
   */
  async tune() {
    const budget = videoBudget(this.mesh.size() + 1);
    for (const sender of this.pc.getSenders()) {
      if (!sender.track || sender.track.kind !== "video") continue;
      if (sender === this.screenTx?.sender) continue; // a screen keeps its text legible
      const params = sender.getParameters();
      if (!params.encodings || params.encodings.length === 0) continue; // not negotiated yet
      const current = params.encodings[0];
      if (Object.entries(budget).every(([k, v]) => current[k] === v)) continue;
      Object.assign(current, budget);
      try {
        await sender.setParameters(params);
      } catch (err) {
        this.#log("cannot set the video budget", err);
      }
    }
  }

  /** ICE restart; after RESTARTS failed attempts the peer is reported lost, once. */
  restart() {
    if (this.hidden) return;
    if (this.pc.connectionState === "connected" || this.pc.signalingState === "closed") return;
    if (this.restarts >= RESTARTS) {
      this.#setStatus("lost");
      if (!this.reportedLost) {
        this.reportedLost = true;
        this.mesh.lost(this.userId);
      }
      clearTimeout(this.graceTimer);
      this.graceTimer = setTimeout(() => {
        if (this.pc.connectionState !== "connected") this.pc.restartIce();
      }, SLOW_RESTART);
      return;
    }
    this.restarts += 1;
    this.#setStatus("reconnecting");
    this.pc.restartIce();
    this.#armNudge();
  }

  #setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.mesh.changed(this.userId);
  }

  close() {
    clearTimeout(this.graceTimer);
    clearTimeout(this.nudgeTimer);
    this.pc.onnegotiationneeded = null;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.close();
  }
}

/** All of one member's peer connections. */
export class Mesh {
  /**
   * `send(to, data)` carries a signal; `onChange(userId)` is told when a peer's
   * status or stream changes; `onLost(userId)` when restarts are exhausted;
   * `privileges` (the enter response's, default all) bound every transceiver;
   * `mark(phase, userId)` hears each link's join phases (timeline.js).
   */
  constructor({
    selfId,
    iceServers,
    iceTransportPolicy,
    send,
    onChange,
    onLost,
    log,
    privileges,
    mark,
  }) {
    this.selfId = selfId;
    this.privileges = Number.isInteger(privileges) ? privileges : PRIVILEGE.ALL;
    // No default STUN: without the server's list the mesh uses host candidates only.
    this.rtcConfig = {
      iceServers: Array.isArray(iceServers) ? iceServers : [],
      iceTransportPolicy: iceTransportPolicy === "relay" ? "relay" : "all",
    };
    this.send = send;
    this.onChange = onChange;
    this.onLost = onLost;
    this.mark = mark || null;
    this.log = log || (() => {});
    this.localStream = null;
    this.screen = null; // a shared screen's track, sent beside the camera
    this.peers = new Map();
  }

  changed(userId) {
    this.onChange?.(userId);
  }

  /** How many members we are connected with (the server's hidden peers not counted). */
  size() {
    return [...this.peers.keys()].filter((id) => !isHidden(id)).length;
  }

  lost(userId) {
    this.onLost?.(userId);
  }

  /** Newcomer side: connect to a member already in the room (we offer). */
  connect(userId) {
    if (this.peers.has(userId)) return this.peers.get(userId);
    const peer = new Peer(this, userId);
    this.peers.set(userId, peer);
    peer.addLocalTracks(this.localStream, true);
    this.#retune();
    this.changed(userId);
    return peer;
  }

  /** The room's size changed: every connected peer gets the new budget. */
  #retune() {
    for (const peer of this.peers.values()) {
      if (peer.pc.connectionState === "connected") peer.tune();
    }
  }

  /** Apply a signal; a first signal from an unknown member creates the answering side. */
  handleSignal(from, data) {
    let peer = this.peers.get(from);
    if (peer && peer.hidden && data?.description?.type === "offer") {
      this.remove(from); // the recorder offers only on a fresh connection of its own
      peer = null;
    }
    if (!peer) {
      if (!data || !data.description || data.description.type !== "offer") return null;
      peer = new Peer(this, from);
      this.peers.set(from, peer);
      peer.addLocalTracks(this.localStream, false);
      this.#retune();
      this.changed(from);
    }
    return peer.receive(data || {});
  }

  /**
   * After the socket resumed: what was relayed while it was down is lost, so send
   * pending offers again and restart connections that broke meanwhile.
   */
  heal() {
    for (const peer of this.peers.values()) {
      peer.resendOffer();
      if (["failed", "disconnected"].includes(peer.pc.connectionState)) peer.restart();
    }
  }

  /**
   * Renewed credentials: new connections and ICE restarts use the fresh TURN
   * credentials; the privileges bound every transceiver from now on (a direction
   * they no longer allow is narrowed, which renegotiates).
   */
  renewed({ iceServers, privileges }) {
    if (Array.isArray(iceServers)) this.rtcConfig = { ...this.rtcConfig, iceServers };
    if (Number.isInteger(privileges)) this.privileges = privileges;
    for (const peer of this.peers.values()) {
      try {
        peer.pc.setConfiguration(this.rtcConfig);
      } catch (err) {
        this.log("the renewed ICE servers were refused", err);
      }
      peer.restrict();
    }
  }

  /** The tracks a new connection sends from the local stream (the screen goes apart). */
  outgoing(stream) {
    return stream?.getTracks() || [];
  }

  /**
   * Send `screen` (a getDisplayMedia track) beside the camera on every connection,
   * now and on those made later, or stop sending it (null); see the module comment.
   */
  async setScreen(screen) {
    this.screen = screen || null;
    await Promise.all([...this.peers.values()].map((peer) => peer.setScreen(this.screen)));
  }

  /** Swap the outgoing track of one kind everywhere (camera switch); no renegotiation. */
  async replaceTrack(kind, track) {
    const jobs = [];
    for (const peer of this.peers.values()) {
      for (const sender of peer.pc.getSenders()) {
        if (sender === peer.screenTx?.sender) continue; // the screen stays
        if (sender.track && sender.track.kind === kind) jobs.push(sender.replaceTrack(track));
      }
    }
    await Promise.all(jobs);
  }

  get(userId) {
    return this.peers.get(userId) || null;
  }

  remove(userId) {
    const peer = this.peers.get(userId);
    if (!peer) return;
    this.peers.delete(userId);
    peer.close();
    this.#retune();
  }

  /** userId → RTCPeerConnection, a snapshot for tests and diagnostics. */
  connections() {
    return new Map([...this.peers].filter(([id]) => !isHidden(id)).map(([id, p]) => [id, p.pc]));
  }

  close() {
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
  }
}
