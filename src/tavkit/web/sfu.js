// Media in an SFU room (protocol.md section 3b): one connection up, one down.
//
// When the enter response says `mediaMode: "sfu"`, the controller uses an SfuMedia
// where a mesh room uses a Mesh (mesh.js); both answer the same calls (connect, get,
// remove, heal, renewed, replaceTrack, connections, close), so the roster, the tiles
// and the layout do not know which one is there. Only the server speaks to the SFU:
//
// * publish: one RTCPeerConnection sends our microphone and camera, whoever is in the
//   room, as `media-signal` {pc: "publish"}; the camera goes out in three simulcast
//   layers (rids h, m, l at full, half and quarter resolution), so the SFU can give
//   each receiver the one its screen needs. The camera is asked for 1280×720 first
//   (CAPTURE): each member uploads once here, and Chromium sends all three layers
//   only from about 960×540 up (fewer below, its simulcast layer limit); the encoder
//   keeps the resolution under load and drops frames instead, which would otherwise
//   also cost layers. What we may not send (privileges.js) is not in the offer; an
//   audience member publishes nothing and has no such connection.
// * subscribe: the server offers one connection carrying every other publisher (an
//   audio and a video m-line each, one more video for a shared screen), with
//   `streams` saying which member is on which mid and which video is a screen
//   (`screen: true`); we answer, and each member's tracks become that member's stream
//   for its tile, its screen its screenStream (the screen tile, as in a mesh).
//   A higher `subscription` number replaces the connection (someone started or
//   stopped publishing); no `data` means nobody else publishes.
// * a `publish` with no `data`: the room moved to another Janus (its own died); the
//   publication is made again there, and new subscriptions follow.
// * layers: twice a second the tiles' sizes (`viewOf`, measured by the element) pick
//   a layer per member's video (layers.js), and what changed goes as `media-layers`.
//
// Both sides put every candidate in their SDP (Janus is half-trickle): we wait for
// gathering to end (a few ms on a LAN, bounded by GATHER_MS) and send no candidates.
//
// An `auto` room (docs/sfu.md) starts as a mesh and may switch while we are in it: the
// server's `media-mode` frame (or a welcome saying `sfu`) makes the controller put an
// SfuMedia in place of its Mesh, handing it the Mesh as `previous`. Each member's tile
// keeps the mesh's stream until that member's video arrives through the SFU (its first
// RTP packet: the track unmutes), then that member's mesh connection is closed, so the
// switch is a short freeze, not a blank. Signals still arriving for the old connections
// (sent before the switch) go to them; the server's hidden peer (the mesh recorder,
// which records an auto room for its whole life) keeps its connection.
//
// A publish connection that breaks is made again: when Janus hangs it up the server
// says "publish again" (a `publish` with no data, as after a move); when it fails on
// our side (ICE or DTLS gave up, e.g. a starved tab) we publish again ourselves after
// REPUBLISH_MS (longer each time until it connects); a socket resume checks it too
// (heal()).
//
// A shared screen (setScreen) is one more video m-line on the publish connection, one
// layer (the screen is shown big: simulcast would only cost), marked `a=content:slides`
// (slides.js) so the server checks it against SEND_SUB (64) and tells the SFU it is a
// screen. Starting or stopping a share publishes again (a new publish connection):
// the others' subscriptions are made anew, a short freeze of our camera for them.
// A member without RECV_SUB (128) is given no screens by the server at all.
//
// Not here yet: ICE restarts of the two connections, the repair of a failed
// subscription short of a resume, adding the screen without a new publish connection.

import { LayerPlan, layerFor } from "./layers.js";
import { isHidden } from "./mesh.js";
import { allowedDirection, maySend } from "./privileges.js";
import { PRIVILEGE } from "./protocol.js";
import { markSlides } from "./slides.js";

/** The camera's simulcast layers, high first (the SFU orders them itself). */
export const SIMULCAST = Object.freeze([
  { rid: "h", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
  { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
]);
/** What the camera is asked for in an SFU room (layers.js's widths follow from it). */
export const CAPTURE = Object.freeze({ width: { ideal: 1280 }, height: { ideal: 720 } });
const GATHER_MS = 3000; // longest wait for our candidates before the SDP goes anyway
const LAYER_POLL_MS = 500;
/** Waits before publishing again after our publish connection failed, one per try in a row. */
export const REPUBLISH_MS = Object.freeze([1000, 2000, 5000, 10000]);

/** Resolve once `pc` has gathered its candidates, or after GATHER_MS. */
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Under load, drop frames rather than resolution (a smaller input loses layers). */
async function keepResolution(sender) {
  const params = sender.getParameters();
  params.degradationPreference = "maintain-resolution";
  await sender.setParameters(params);
}

/** Prefer VP8, the codec the server's SFU rooms forward (with its RTX). */
function preferVp8(transceiver) {
  const codecs = globalThis.RTCRtpSender?.getCapabilities?.("video")?.codecs;
  if (!codecs || !transceiver.setCodecPreferences) return;
  const vp8 = codecs.filter((c) => /\/(VP8|rtx)$/i.test(c.mimeType));
  if (vp8.length) transceiver.setCodecPreferences(vp8);
}

/**
 * One member's share of the subscription, shaped like the RTCPeerConnection a mesh
 * gives per member, for the reporter, the speaking monitor and tests: its receivers
 * and its inbound stats only (the transport's too), our senders.
 */
class MemberView {
  constructor(sfu, userId) {
    this.sfu = sfu;
    this.userId = userId;
  }

  get connectionState() {
    return this.sfu.receiving?.connectionState || "closed";
  }

  getReceivers() {
    const mids = this.sfu.midsOf(this.userId);
    return (this.sfu.receiving?.getTransceivers() || [])
      .filter((t) => mids.has(t.mid))
      .map((t) => t.receiver);
  }

  getSenders() {
    return this.sfu.publishing?.getSenders() || [];
  }

  async getStats() {
    const pc = this.sfu.receiving;
    const out = new Map();
    if (!pc) return out;
    const tracks = new Set(this.getReceivers().map((r) => r.track.id));
    for (const [id, report] of await pc.getStats()) {
      if (report.type === "inbound-rtp" && !tracks.has(report.trackIdentifier)) continue;
      out.set(id, report);
    }
    return out;
  }
}

/** Our two connections with the SFU; the same outward shape as a Mesh. */
export class SfuMedia {
  /**
   * `send(frame)` sends a frame on the socket; `onChange(userId)` is told when a
   * member's stream or status changes; `viewOf(userId)` measures its tile
   * ({width, height, visible} in device pixels, or null); `privileges` bound what we
   * publish and receive; `mark(phase, userId)` hears join phases (timeline.js);
   * `previous` is the Mesh of an auto room that just switched (see the module comment).
   */
  constructor({ selfId, iceServers, iceTransportPolicy, send, onChange, log, privileges, mark, viewOf, previous }) {
    this.selfId = selfId;
    this.privileges = Number.isInteger(privileges) ? privileges : PRIVILEGE.ALL;
    this.rtcConfig = {
      iceServers: Array.isArray(iceServers) ? iceServers : [],
      iceTransportPolicy: iceTransportPolicy === "relay" ? "relay" : "all",
      bundlePolicy: "max-bundle", // the SFU requires BUNDLE
    };
    this.sendFrame = send;
    this.onChange = onChange;
    this.log = log || (() => {});
    this.mark = mark || null;
    this.viewOf = viewOf || (() => null);
    this.localStream = null;
    this.screen = null; // our shared screen's track, published beside the camera
    this.screenSender = null; // its sender on the publish connection
    this.publishing = null;
    this.retiring = []; // publish connections replaced, closed once the new one is answered
    this.receiving = null;
    this.subscription = 0;
    this.feeds = new Map(); // mid → {userId, kind, screen} of the current subscription
    this.streams = new Map(); // userId → MediaStream of its tracks
    this.screens = new Map(); // userId → MediaStream of its shared screen
    this.members = new Set(); // the other members the controller told us of
    this.plan = null;
    this.chain = Promise.resolve();
    this.layerTimer = setInterval(() => this.#chooseLayers(), LAYER_POLL_MS);
    this.closed = false;
    this.previous = previous || null; // an auto room's mesh, drained member by member
    this.arrived = new Set(); // members whose media came through the SFU since the switch
    this.failures = 0; // publish connections that failed in a row (REPUBLISH_MS)
    this.started = false; // start() was called: we publish (or may not)
  }

  // -- the Mesh's shape ---------------------------------------------------------

  /** Publish what we may send (nothing for an audience member); once welcomed. */
  start() {
    this.started = true;
    this.#queue(() => this.#publish());
  }

  /** A member is in the room: its tile learns its status (its media comes by subscription). */
  connect(userId) {
    this.members.add(userId);
    this.onChange?.(userId);
    return this.get(userId);
  }

  /** A member's {status, stream, screenStream}, as the roster wants it from a Mesh. */
  get(userId) {
    const old = this.previous?.get(userId);
    if (old) return old; // the mesh's picture until the SFU's arrives
    const stream = this.streams.get(userId) || null;
    let status = "connecting";
    if (stream) {
      const state = this.receiving?.connectionState;
      if (state === "connected") status = "connected";
      else if (state === "disconnected" || state === "failed") status = "reconnecting";
    }
    return { status, stream, screenStream: this.screens.get(userId) || null };
  }

  /** How many other members we know of. */
  size() {
    return this.members.size;
  }

  remove(userId) {
    this.members.delete(userId);
    this.streams.delete(userId);
    this.screens.delete(userId);
    this.previous?.remove(userId);
  }

  /** The socket resumed: an offer of ours may be lost, a broken publication is made again.
   * After the tab entered the room again (its membership had timed out) this SfuMedia is
   * new and the welcome says "resumed": it has never published, so it publishes now. */
  heal() {
    this.previous?.heal();
    if (!this.started) return this.start();
    const pc = this.publishing;
    if (!pc) return undefined;
    const broken = ["failed", "closed"].includes(pc.connectionState);
    if (broken || pc.signalingState === "have-local-offer") this.start();
    return undefined;
  }

  /** Renewed credentials: fresh TURN for new connections; narrower privileges republish. */
  renewed({ iceServers, privileges }) {
    this.previous?.renewed({ iceServers, privileges });
    if (Array.isArray(iceServers)) this.rtcConfig = { ...this.rtcConfig, iceServers };
    if (Number.isInteger(privileges) && privileges !== this.privileges) {
      this.privileges = privileges;
      this.start();
    }
  }

  /** Share `screen` beside the camera, or stop (null): publish again with it or without. */
  async setScreen(screen) {
    this.screen = screen || null;
    if (this.started) this.start(); // else the welcome publishes it
  }

  /** Swap the outgoing track of one kind (camera switch); no renegotiation. */
  async replaceTrack(kind, track) {
    const senders = (this.publishing?.getSenders() || []).filter((s) => s !== this.screenSender);
    await Promise.all([
      ...senders.filter((s) => s.track?.kind === kind).map((s) => s.replaceTrack(track)),
      this.previous?.replaceTrack(kind, track),
    ]);
  }

  /** userId → its view of the subscription (MemberView), or its mesh connection while
   * the switch of an auto room has not reached it yet; for stats and speaking. */
  connections() {
    const views = new Map(this.previous?.connections() || []);
    for (const userId of this.streams.keys()) {
      if (!views.has(userId)) views.set(userId, new MemberView(this, userId));
    }
    return views;
  }

  /** A mesh `signal` after an auto room switched: for a connection still open, else dropped. */
  handleSignal(from, data) {
    if (!this.previous) return null;
    if (!isHidden(from) && !this.previous.get(from)) return null; // its media comes from the SFU
    return this.previous.handleSignal(from, data);
  }

  close() {
    this.previous?.close();
    this.previous = null;
    this.closed = true;
    clearInterval(this.layerTimer);
    this.publishing?.close();
    this.publishing = null;
    this.#retire();
    this.#dropReceiving();
  }

  // -- frames from the server ---------------------------------------------------

  /** A `media-signal` frame: the answer to our publish, or a subscription. */
  handleMediaSignal(frame) {
    if (frame.pc === "publish") return this.#queue(() => this.#published(frame));
    if (frame.pc === "subscribe") return this.#queue(() => this.#subscribe(frame));
    return undefined;
  }

  /** The mids of `userId`'s streams in the current subscription. */
  midsOf(userId) {
    return new Set([...this.feeds].filter(([, f]) => f.userId === userId).map(([mid]) => mid));
  }

  /** For tests and diagnostics: both connections and who is on which mid. */
  snapshot() {
    return {
      publish: this.publishing,
      subscribe: this.receiving,
      subscription: this.subscription,
      streams: [...this.feeds].map(([mid, f]) => ({ mid, ...f })),
      layers: this.plan ? Object.fromEntries(this.plan.asked) : {},
    };
  }

  // -- the steps, one at a time -------------------------------------------------

  #queue(step) {
    this.chain = this.chain.then(() => (this.closed ? undefined : step())).catch((err) => this.log("SFU media", err));
    return this.chain;
  }

  async #publish() {
    // The connection we replace stays open until the new one is answered: closed first,
    // its DTLS alert could reach the SFU before our new offer reached the server, which
    // would then hear of a broken publication and ask for another.
    if (this.publishing) this.retiring.push(this.publishing);
    this.publishing = null;
    this.screenSender = null;
    const stream = this.localStream;
    const tracks = (stream?.getTracks() || []).filter((t) => maySend(t.kind, this.privileges));
    const screen = this.screen && maySend("sub", this.privileges) ? this.screen : null;
    if (!tracks.length && !screen) return this.#retire(); // an audience member, or no device opened
    const pc = (this.publishing = new RTCPeerConnection(this.rtcConfig));
    for (const kind of ["audio", "video"]) {
      const track = tracks.find((t) => t.kind === kind);
      if (!track) continue;
      const init = { direction: "sendonly", streams: [stream] };
      if (kind === "video") {
        init.sendEncodings = SIMULCAST.map((e) => ({ ...e }));
        await track.applyConstraints(CAPTURE).catch((err) => this.log("camera size", err));
      }
      const transceiver = pc.addTransceiver(track, init);
      if (kind === "video") {
        preferVp8(transceiver);
        await keepResolution(transceiver.sender).catch((err) => this.log("degradation", err));
      }
    }
    let screenTx = null;
    if (screen) {
      // One layer: the screen is shown big, and its text must stay sharp.
      screenTx = pc.addTransceiver(screen, { direction: "sendonly", streams: [new MediaStream([screen])] });
      preferVp8(screenTx);
      await keepResolution(screenTx.sender).catch((err) => this.log("degradation", err));
      this.screenSender = screenTx.sender;
    }
    pc.onconnectionstatechange = () => {
      this.log("SFU publish", pc.connectionState);
      if (pc.connectionState === "connected") this.failures = 0;
      if (pc.connectionState === "failed") this.#republishLater(pc);
    };
    await pc.setLocalDescription();
    await gathered(pc);
    if (pc !== this.publishing) return;
    const description = pc.localDescription.toJSON();
    // The server checks the marked section against SEND_SUB and tells the SFU it is a screen.
    if (screenTx?.mid) description.sdp = markSlides(description.sdp, new Set([screenTx.mid]));
    this.#send("publish", { description });
  }

  /** Publish again if `pc` is still ours and still failed after a wait. */
  #republishLater(pc) {
    const wait = REPUBLISH_MS[Math.min(this.failures, REPUBLISH_MS.length - 1)];
    this.failures += 1;
    setTimeout(() => {
      if (this.closed || this.publishing !== pc || pc.connectionState !== "failed") return;
      this.log("SFU publish: publishing again");
      this.start();
    }, wait);
  }

  async #published(frame) {
    if (!frame.data) return this.#publish(); // the room moved to another Janus: publish again
    const pc = this.publishing;
    const description = frame.data?.description;
    if (!pc || !description || pc.signalingState !== "have-local-offer") return;
    await pc.setRemoteDescription(description);
    this.#retire(); // the server unpublished it before this answer
  }

  /** Close the publish connections a new one replaced. */
  #retire() {
    for (const pc of this.retiring.splice(0)) pc.close();
  }

  async #subscribe(frame) {
    const number = Number(frame.subscription) || 0;
    if (number <= this.subscription) return;
    this.subscription = number;
    const had = [...this.streams.keys()];
    this.#dropReceiving();
    const description = frame.data?.description;
    if (!description) {
      for (const userId of had) this.onChange?.(userId);
      return; // nobody else publishes
    }
    this.feeds = new Map(
      (frame.streams || []).map((s) => [s.mid, { userId: s.userId, kind: s.kind, screen: s.screen === true }]),
    );
    this.plan = new LayerPlan(number);
    const pc = (this.receiving = new RTCPeerConnection(this.rtcConfig));
    pc.ontrack = ({ track, transceiver }) => this.#track(pc, track, transceiver);
    pc.onconnectionstatechange = () => {
      if (pc !== this.receiving) return;
      this.log("SFU subscription", number, pc.connectionState);
      const users = new Set([...this.feeds.values()].map((f) => f.userId));
      for (const userId of users) {
        if (pc.connectionState === "connected") this.mark?.("dtls-connected", userId);
        this.onChange?.(userId);
      }
    };
    await pc.setRemoteDescription(description);
    for (const transceiver of pc.getTransceivers()) {
      const screen = this.feeds.get(transceiver.mid)?.screen;
      const kind = screen ? "sub" : transceiver.receiver.track.kind;
      transceiver.direction = allowedDirection(kind, this.privileges, false);
    }
    await pc.setLocalDescription();
    await gathered(pc);
    if (pc !== this.receiving) return;
    this.#send("subscribe", { description: pc.localDescription.toJSON() }, number);
    for (const userId of had) {
      if (!this.streams.has(userId)) this.onChange?.(userId); // it stopped publishing
    }
  }

  #track(pc, track, transceiver) {
    if (pc !== this.receiving) return;
    const feed = this.feeds.get(transceiver?.mid);
    if (!feed) return;
    const { userId } = feed;
    if (feed.screen) {
      this.screens.set(userId, new MediaStream([track])); // its own tile (screen-tiles.js)
      this.onChange?.(userId);
      return;
    }
    if (!this.streams.has(userId)) this.streams.set(userId, new MediaStream());
    this.streams.get(userId).addTrack(track);
    // A remote track is muted until its first RTP packet arrives.
    const arrived = () => {
      this.mark?.("first-rtp", userId);
      if (track.kind === "video" || !this.#sendsVideo(userId)) this.#arrived(userId);
    };
    if (!track.muted) arrived();
    else track.addEventListener("unmute", arrived, { once: true });
    this.onChange?.(userId);
  }

  #sendsVideo(userId) {
    return [...this.feeds.values()].some((f) => f.userId === userId && f.kind === "video" && !f.screen);
  }

  /** `userId`'s media comes through the SFU: an auto room's mesh connection with it goes. */
  #arrived(userId) {
    if (this.arrived.has(userId)) return;
    this.arrived.add(userId);
    if (this.previous?.get(userId)) {
      this.log("SFU: media of", userId, "arrived; mesh connection closed");
      this.previous.remove(userId);
      this.onChange?.(userId);
    }
  }

  #send(pcName, data, subscription) {
    const frame = { type: "media-signal", pc: pcName, data };
    if (subscription) frame.subscription = subscription;
    this.sendFrame(frame);
  }

  /** Ask for the layer each member's tile needs now (layers.js); only what changed. */
  #chooseLayers() {
    const pc = this.receiving;
    if (!pc || !this.plan || pc.connectionState !== "connected") return;
    const wanted = [];
    for (const [mid, feed] of this.feeds) {
      // A screen has one layer, and its tile is not the camera's that viewOf measures.
      if (feed.kind === "video" && !feed.screen) wanted.push([mid, layerFor(this.viewOf(feed.userId))]);
    }
    const layers = this.plan.changes(wanted);
    if (!layers.length) return;
    this.log("SFU layers", layers);
    this.sendFrame({ type: "media-layers", subscription: this.plan.subscription, layers });
  }

  #dropReceiving() {
    this.receiving?.close();
    this.receiving = null;
    this.feeds = new Map();
    this.streams = new Map();
    this.screens = new Map();
    this.plan = null;
  }
}
