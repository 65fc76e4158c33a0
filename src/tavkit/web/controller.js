// The call's lifecycle, with no DOM: what <tavkit-call> shows and does.
//
// start() runs enter → (camera/microphone ∥ signaling socket) → mesh. Enter comes
// first so a refused userSig or privateMapKey never opens a device. The socket opens
// while the devices do, and its frames wait until there are tracks to send. Once in
// the room a Heartbeat (heartbeat.js) keeps our place; the other members, their
// state and their names are the Roster's (roster.js), fed from the socket's frames.
//
// The controller tells the page through the seed's listener callbacks and, through
// `emit(name, detail)`, the element's DOM events; it tells the view through its own
// "change" and "permission" events. Listener calls are guarded: a throwing page
// callback is logged and never breaks the call.
//
// Ending a call (decided here, the seed is silent): hang-up, from the button or
// hangup(), fires onHandupListener and then reports trtc 5000 "exit call" through
// onErrorListener, the seed listing 5000 among trtc's codes. A call ended by the
// server (replaced, removed, room closed) or by a lost connection reports its error
// but not onHandupListener, which stays the user's action.
//
// Once in the room, a Reporter (reporter.js, the seed's elk-component) sends the
// call's log lines and getStats quality samples to the server; it never affects the
// call itself. Its samples also grade each link for the tiles' quality bars
// (quality.js), and a SpeakingMonitor (speaking.js) lights the tile of whoever
// speaks. The names the page gives (onUserInfoListener) are logged too, so the
// dashboard can show people by name.
//
// Privileges (privileges.js): the enter response's `privileges` decide what the call
// opens and offers. Only the kinds the member may send are asked of getUserMedia (an
// audience member, who may send nothing, is never asked at all), the mesh bounds
// every transceiver by them, and a member who may send nothing has no local tile.
// A kind the member may not send reads as switched off for the call, as a device
// that failed to open does; both are switched back on when the call ends, so they
// never carry over into the next call.
//
// Credentials that end mid-call go through a Renewal (renewal.js): on the server's
// `expiring` it asks the page's onUserSigExpiredListener(callback) for a fresh
// userSig and sends `renew`; the accepted credentials then serve the REST calls, the
// reporter, socket resumes and new peer connections. Unrenewed, the server removes us
// ("expired") and the call ends like any removal.
//
// Riding out a network outage (decided here; the seed is silent). A dropped socket
// resumes by itself (signaling.js) and the mesh restarts ICE (mesh.js); the state is
// "reconnecting" meanwhile. When the server has let our place go (the socket cannot
// resume, the heartbeat hears 14004, or we were removed for a timeout), the call
// enters the room again by itself, keeping the camera, the screen and the timer,
// with backoff for up to a minute (rejoinPatienceMs). Only when that fails does it
// end, and the view shows why with a Rejoin button.
//
// Every ending is recorded as `ending` {reason, error}: what the controller knows
// for sure (hangup, peerHungUp, replaced, removed, expired, closed, lost, or failed:
// the call could not start) and the error it reported; screens.js turns it into the
// words of the end screen. Listener calls and DOM events do not depend on it.
//
// When the other member of a two-person call hangs up, the call ends too
// ("peerHungUp", reported as trtc 5000 with that detail, without onHandupListener):
// the `endOnPeerLeave` option, true to end whenever the last other member hangs up,
// false never, and by default only when the call never had more than two members.
// Any other leave is a "notice" to the view ("X left the call"), as is a device that
// failed to open while the call went on without it. Another member whose link dropped is marked reconnecting on its tile
// (member-connection frames) and reported through onUserConnectionListener(userId,
// status).
//
// In-call messages (protocol.md section 5) go through a Chat (chat.js), which
// delivers them exactly once and in order; each reaches onMessageListener and the
// `tavkit:message` event, own ones included. The chat panel's state (open, unread
// count of others' text messages while closed) lives here too.
//
// Devices (devices.js): start() may be handed the devices a pre-join check already
// opened (`prepared`: the stream, and whether the microphone and camera start on),
// else it opens the remembered ones. useDevice() switches the camera or microphone
// in the call with replaceTrack, no renegotiation. A shared screen (share.js) goes
// out beside the camera, on a video m-line of its own (mesh.js); our state frames
// say `screen: true` meanwhile, and a member's says when its share starts and stops
// (the `tavkit:remote-share` event, {userId, sharing}; false too when a sharer leaves).
//
// Rooms whose media goes through the server's SFU (the enter response's `mediaMode:
// "sfu"`) get an SfuMedia (sfu.js) where a mesh room gets a Mesh: the same calls, so
// the rest of the call does not tell them apart, except that the SFU's `media-signal`
// frames go to it, it publishes once at the welcome, and it asks the element how big
// each member's tile is (`viewOf`) to pick the simulcast layer it receives.
// An `auto` room switches from the first to the second while we are in it: a
// `media-mode` frame (or a welcome saying `sfu`, the switch having come between enter
// and socket) puts an SfuMedia in place of the Mesh, which it drains (sfu.js).

import { ApiClient } from "./api.js";
import { Chat } from "./chat.js";
import { CallError, asCallError, callError, fromWire } from "./errors.js";
import { Heartbeat } from "./heartbeat.js";
import { recall, remember } from "./devices.js";
import { countCameras, openCamera, openDevice, openLocalMedia } from "./media.js";
import { Mesh, isHidden } from "./mesh.js";
import { SfuMedia } from "./sfu.js";
import { checkOptions, pickListener } from "./options.js";
import { maySend, privilegesOf, publishes } from "./privileges.js";
import { CLOSE, PRIVILEGE } from "./protocol.js";
import { LinkQuality } from "./quality.js";
import { Renewal } from "./renewal.js";
import { Reporter } from "./reporter.js";
import { Roster } from "./roster.js";
import { mayShareScreen, openScreen } from "./share.js";
import { Signaling } from "./signaling.js";
import { SpeakingMonitor } from "./speaking.js";
import { JOIN_TIMELINE_EVENT, JoinClock, timelineData } from "./timeline.js";

const ACTIVE = new Set(["entering", "connecting", "waiting", "in-call", "reconnecting"]);
// Socket closes by which the server ended our place in the room, and the ending's reason.
const ENDED = new Map([
  [CLOSE.REPLACED, "replaced"],
  [CLOSE.REMOVED, "removed"],
  [CLOSE.ROOM_CLOSED, "closed"],
]);
const REJOIN_DELAYS_MS = [0, 1000, 2000, 4000, 8000]; // then the last one, until patience ends

/** Whether a failed enter is worth trying again: the network or the server, not a refusal. */
function transient(err) {
  if (!(err instanceof CallError)) return true;
  if (err.module === "http") return true; // network or server error (http 10000)
  return err.module === "server" && (err.errorCode === 10000 || err.retryAfter > 0);
}

/**
 * A pre-join check's media as openLocalMedia() would have opened it: only the kinds
 * the privileges (known only now, after entering) let us send; the rest is stopped.
 */
function usable(prepared, kinds) {
  const stream = prepared.stream;
  for (const track of stream?.getTracks() || []) {
    if (kinds[track.kind]) continue;
    track.stop();
    stream.removeTrack(track);
  }
  const empty = !stream || stream.getTracks().length === 0;
  return { stream: empty ? null : stream, errors: [], fatal: null, denied: null };
}

/** State and logic of one <tavkit-call>; an EventTarget for its view. */
export class CallController extends EventTarget {
  /** How long (ms) a call tries to enter again after losing its place; tests shorten it. */
  static rejoinPatienceMs = 60000;

  /** `emit(name, detail)` dispatches the element's DOM event; `server` is the default origin. */
  constructor({ emit, server, lang = "en", log = () => {} } = {}) {
    super();
    this.emit = emit || (() => {});
    this.defaultServer = server || "";
    this.lang = lang;
    this.log = log;
    this.state = "idle";
    this.listener = {};
    this.options = null;
    this.room = null;
    this.joinedAt = 0;
    this.openedAt = 0; // when the session opened (ms), from the enter response
    this.cameras = 0; // how many cameras the browser lists (0: not known yet)
    this.self = { userId: "", userName: "", avatarUrl: "", muted: false, camera: true, front: true };
    this.privileges = PRIVILEGE.ALL; // the enter response's, once in a room
    this.forcedOff = { muted: false, camera: false }; // what this call switched off itself
    this.roster = new Roster({
      self: () => this.self,
      askInfo: (userIds, callback) => {
        const named = (infos) => {
          callback(infos);
          this.#reportNames(infos);
        };
        this.#call("onUserInfoListener", userIds, named);
        this.emit("tavkit:user-info", { userIds, callback: named });
      },
      onChange: () => this.#changed(),
    });
    this.localStream = null;
    this.api = null;
    this.signaling = null;
    this.mesh = null;
    this.reporter = null;
    this.linkQuality = new LinkQuality(); // each member's link: good, fair or poor
    this.voices = new SpeakingMonitor({
      getPeers: () => this.peerConnections(),
      selfId: () => this.self.userId,
      muted: (userId) =>
        userId === this.self.userId ? this.self.muted : this.peers.get(userId)?.muted !== false,
      onChange: () => this.#changed(),
    });
    // When each phase of the join happened, per remote member (timeline.js).
    this.clock = new JoinClock({ onComplete: () => this.#reportTimelines() });
    this.generation = 0;
    this.pending = null;
    this.heartbeat = new Heartbeat({
      beat: () => this.api.heartbeat(this.options.roomId),
      // 14004: our place is gone (timed out while away), so enter again; else the room is.
      onGone: (err) =>
        err.errorCode === 14004 ? this.#rejoin(err) : this.#end(err, "closed"),
      log: (...args) => this.log(...args),
    });
    this.chat = null;
    this.chatOpen = false;
    this.unread = 0;
    this.renewal = null;
    this.rejoining = false;
    // Why the last call ended (see the module comment); reason "" while it has not.
    this.ending = { reason: "", error: null };
    this.mostMembers = 0; // the most members this call had at once, us included
    this.prepared = null; // media a pre-join check opened for the next start()
    this.screen = null; // the shared screen's track while sharing
    // userId → its tile's {width, height, visible} in device pixels, or null; the
    // element sets it (an SFU room picks each member's simulcast layer from it).
    this.viewOf = () => null;
  }

  /** Whether a call is being set up or is up. */
  get active() {
    return ACTIVE.has(this.state);
  }

  /** userId → the other members as the tiles show them (the roster's). */
  get peers() {
    return this.roster.peers;
  }

  /** userId → userName from onUserInfoListener, kept after they leave (the roster's). */
  get names() {
    return this.roster.names;
  }

  /** Whether our privileges let us send `kind` ("audio", "video"). */
  maySend(kind) {
    return maySend(kind, this.privileges);
  }

  /** Whether we may publish anything at all (an audience member may not: no local tile). */
  get publishing() {
    return publishes(this.privileges);
  }

  /** Whether we may share our screen now (share.js: the browser and our privileges). */
  get mayShare() {
    return this.active && this.publishing && mayShareScreen(this.privileges);
  }

  /**
   * Enter the room and start the call; resolves true once in the room, false when
   * it failed (the failure went to onErrorListener). Throws only for a second
   * start() while a call is active, a programming mistake. `prepared` =
   * {stream, muted, camera}: devices a pre-join check opened, used instead of
   * opening them again.
   */
  async start(raw, prepared = null) {
    if (this.active) throw new Error("tavkit-call: start() while a call is active; hangup() first");
    this.prepared?.stream?.getTracks().forEach((t) => t.stop());
    this.prepared = prepared;
    if (prepared) this.self = { ...this.self, muted: Boolean(prepared.muted), camera: prepared.camera !== false };
    const gen = ++this.generation;
    this.clock.start();
    this.listener = pickListener(raw?.listener);
    const { options, error } = checkOptions(raw, this.defaultServer, this.lang);
    if (error) {
      this.#dropPrepared();
      this.ending = { reason: "failed", error };
      this.#changed();
      this.#report(error);
      return false;
    }
    this.options = options;
    this.ending = { reason: "", error: null };
    this.mostMembers = 1;
    this.rejoining = false;
    this.roster.reset();
    this.self = { ...this.self, userId: options.userId, userName: "", avatarUrl: "", front: true };
    this.#setState("entering");
    this.privileges = PRIVILEGE.ALL;
    this.api = new ApiClient({ ...options, lang: this.lang });
    try {
      this.room = await this.api.enter(options.roomId);
      this.clock.mark("enter");
      // The session's opening (ms, our clock), so every member's timer agrees; a
      // rejoin keeps it, as it keeps the call.
      this.openedAt = Number(this.room.openedAt) > 0 ? this.room.openedAt * 1000 : 0;
      this.privileges = privilegesOf(this.room);
    } catch (err) {
      if (gen !== this.generation) return false;
      this.#dropPrepared();
      const error = asCallError(err, callError("http", 10000, this.lang, String(err)));
      this.ending = { reason: "failed", error };
      this.#setState("ended");
      this.#report(error);
      this.#report(callError("trtc", -1019, this.lang));
      return false;
    }
    if (gen !== this.generation) {
      this.#dropPrepared();
      this.api.exit(options.roomId).catch(() => {});
      return false;
    }
    return this.#connect(gen);
  }

  /** Release the devices a pre-join check opened for a start that will not use them. */
  #dropPrepared() {
    this.prepared?.stream?.getTracks().forEach((t) => t.stop());
    this.prepared = null;
  }

  async #connect(gen, rejoin = false) {
    const room = this.room;
    if (!rejoin) {
      this.#setState("connecting");
      this.#startChat();
    }
    this.pending = [];
    this.#startRenewal();
    this.signaling = new Signaling({
      url: room.socketUrl,
      token: room.socketToken,
      heartbeatInterval: room.heartbeatInterval,
      heartbeatTimeout: room.heartbeatTimeout,
      lang: this.lang,
      onMessage: (frame) => (this.pending ? this.pending.push(frame) : this.#frame(frame)),
      onStatus: (status, info) => this.#socketStatus(status, info),
      onPhase: (phase) => this.clock.mark(phase),
    });
    const welcomed = this.signaling.open();
    welcomed.catch(() => {}); // awaited below, after the devices
    if (rejoin) return this.#relink(gen, welcomed);
    const kinds = { audio: this.maySend("audio"), video: this.maySend("video") };
    const media = this.prepared ? usable(this.prepared, kinds) : await openLocalMedia(this.lang, true, kinds, recall());
    this.prepared = null;
    if (gen !== this.generation) {
      media.stream?.getTracks().forEach((t) => t.stop());
      return false;
    }
    for (const err of media.errors) {
      this.#report(err);
      this.#notice("deviceNotice", { device: err.errorCode === -1302 ? "microphone" : "camera" });
    }
    if (media.fatal) {
      this.ending = { reason: "failed", error: media.fatal };
      await this.#leave();
      this.#teardown("ended");
      this.#report(media.fatal);
      if (media.denied) this.dispatchEvent(new CustomEvent("permission", { detail: media.denied }));
      return false;
    }
    this.localStream = media.stream;
    if (media.stream) this.clock.mark("media");
    if (media.stream?.getVideoTracks().length) {
      countCameras().then((n) => {
        this.cameras = n;
        this.#changed();
      });
    }
    // A device that failed to open, or that we may not send, reads as switched off,
    // here and on the others' tiles (for this call only).
    if (!media.stream?.getVideoTracks().length && this.self.camera) {
      this.self.camera = false;
      this.forcedOff.camera = true;
    }
    if (!media.stream?.getAudioTracks().length && !this.self.muted) {
      this.self.muted = true;
      this.forcedOff.muted = true;
    }
    this.#applyTrackState();
    return this.#relink(gen, welcomed, true);
  }

  /** The mesh, the queued frames and the heartbeat of one membership (the devices are open). */
  async #relink(gen, welcomed, first = false) {
    const room = this.room;
    const mesh = new Mesh({
      ...this.#mediaOptions(),
      send: (to, data) => this.signaling?.send({ type: "signal", to, data }),
      onLost: (userId) => this.#report(callError("trtc", -1307, this.lang, `media to ${userId}`)),
    });
    // In an SFU room the Mesh only ever answers the mesh recorder of an auto room that
    // switched before we came (it records such a room for its whole life; sfu.js).
    this.mesh = room.mediaMode === "sfu" ? this.#sfuMedia(mesh) : mesh;
    this.mesh.localStream = this.localStream;
    this.mesh.screen = this.screen;
    this.#changed();
    const queued = this.pending;
    this.pending = null;
    for (const frame of queued) this.#frame(frame);
    try {
      await welcomed;
    } catch (err) {
      if (gen !== this.generation) return false;
      if (!first) throw err; // a rejoin: its loop decides
      const error = asCallError(err, callError("trtc", -1307, this.lang));
      this.ending = { reason: "failed", error };
      await this.#leave();
      this.#teardown("ended");
      this.#report(error);
      this.#report(callError("trtc", -1019, this.lang));
      return false;
    }
    if (gen !== this.generation) return false;
    this.#startReporter();
    this.heartbeat.start(room.heartbeatInterval, () => gen === this.generation);
    if (this.self.muted || !this.self.camera || this.screen) this.#sendState();
    return true;
  }

  /** What a Mesh and an SfuMedia both take: who we are, our ICE, and the callbacks. */
  #mediaOptions() {
    const room = this.room;
    return {
      selfId: this.self.userId,
      privileges: this.privileges,
      iceServers: room.iceServers,
      iceTransportPolicy: room.iceTransportPolicy,
      onChange: (userId) => this.#peerChanged(userId),
      mark: (phase, userId) => this.clock.mark(phase, userId),
      log: this.log,
    };
  }

  /** Our media with the SFU; `previous`: the Mesh of an auto room that switched (sfu.js). */
  #sfuMedia(previous) {
    return new SfuMedia({
      ...this.#mediaOptions(),
      send: (frame) => this.signaling?.send(frame),
      viewOf: (userId) => this.viewOf(userId),
      previous,
    });
  }

  /** An auto room's media now goes through the SFU (a `media-mode` frame or a welcome). */
  #switchToSfu() {
    if (!this.mesh || this.mesh instanceof SfuMedia) return;
    this.room.mediaMode = "sfu";
    this.reporter?.log("info", "media-mode", { mediaMode: "sfu" });
    const previous = this.mesh;
    this.mesh = this.#sfuMedia(previous);
    this.mesh.localStream = this.localStream;
    this.mesh.screen = this.screen; // a share under way goes on through the SFU
    for (const userId of this.peers.keys()) this.mesh.connect(userId);
    if (this.joinedAt) this.mesh.start(); // else the welcome starts it
    this.#changed();
  }

  /** Leave the room at the user's request; see the module comment for the events. */
  async hangup() {
    if (!this.active) return;
    this.generation += 1;
    this.reporter?.log("info", "hangup");
    this.#stopReporter();
    const wasSignaling = this.signaling;
    this.#stopMedia();
    await this.#leave(wasSignaling);
    this.ending = { reason: "hangup", error: null };
    this.#teardown("ended");
    this.#call("onHandupListener");
    this.emit("tavkit:handup", {});
    this.#report(callError("trtc", 5000, this.lang));
  }

  /**
   * Leave (or show as over, when not in the room yet) because the rung call this element
   * made or accepted is over: `reason` is screens.js's ("declined", "busy", "noAnswer",
   * "cancelled", "peerHungUp"), `name` whom it is about. Not the user's hang-up, so
   * onHandupListener stays silent.
   */
  async leaveCall(reason, name = "") {
    if (this.active) {
      this.generation += 1;
      this.#stopReporter();
      const wasSignaling = this.signaling;
      this.#stopMedia();
      await this.#leave(wasSignaling);
      this.#teardown("ended");
    }
    this.ending = { reason, error: null, name };
    this.#changed();
  }

  /** The page is unloading: tell the server without waiting for anything. */
  unload() {
    if (!this.active) return;
    this.generation += 1;
    if (this.signaling && this.signaling.status === "open") this.signaling.leaveNow();
    else if (this.room) this.api.exitOnUnload(this.options.roomId);
    this.#teardown("ended");
  }

  /** Mute or unmute the microphone (track.enabled + a `state` frame). */
  mute(muted) {
    muted = Boolean(muted);
    if (this.self.muted === muted) return;
    this.self.muted = muted;
    this.#applyTrackState();
    this.#sendState();
    this.#changed();
    this.#call("onMutedListener", muted);
    this.emit("tavkit:muted", { muted });
  }

  /** Turn the camera on or off; the remote tiles show the avatar while it is off. */
  enableCamera(enabled) {
    enabled = Boolean(enabled);
    if (this.self.camera === enabled) return;
    this.self.camera = enabled;
    this.#applyTrackState();
    this.#sendState();
    this.#changed();
    this.emit("tavkit:camera", { enabled });
  }

  /** Switch between front and back cameras; resolves to the new `front`. */
  async switchCamera() {
    const front = !this.self.front;
    const old = this.localStream?.getVideoTracks()[0];
    if (!old) {
      this.#report(callError("trtc", -1301, this.lang, "no camera to switch"));
      return this.self.front;
    }
    let track;
    try {
      track = await openCamera(this.lang, front);
    } catch {
      // Phones often open one camera at a time: release ours and try again.
      old.stop();
      try {
        track = await openCamera(this.lang, front);
      } catch (err) {
        // Put the camera we had back, so a failed switch does not leave us without video.
        track = await openCamera(this.lang, !front).catch(() => null);
        if (track && this.localStream) await this.#swapTrack(old, track);
        else track?.stop();
        this.#report(asCallError(err, callError("trtc", -1301, this.lang)));
        return this.self.front;
      }
    }
    if (!this.localStream) {
      track.stop(); // hung up while the camera opened
      return this.self.front;
    }
    await this.#swapTrack(old, track);
    this.self.front = front;
    this.#changed();
    this.#call("onSwitchCameraListener", front);
    this.emit("tavkit:switch-camera", { front });
    return front;
  }

  /** Send a text message; resolves with the stored message (see chat.js for rejections). */
  sendMessage(text) {
    return this.#chatSend("text", text);
  }

  /** Send a custom message (any JSON value); delivered to listeners, not shown in the panel. */
  sendCustomMessage(data) {
    return this.#chatSend("custom", data);
  }

  /** Open or close the chat panel; opening clears the unread count. */
  setChatOpen(open) {
    this.chatOpen = Boolean(open) && this.active;
    if (this.chatOpen) this.unread = 0;
    this.#changed();
  }

  /** The name to show for `userId`: from onUserInfoListener, else the userId. */
  displayName(userId) {
    return this.roster.displayName(userId);
  }

  /** userId → RTCPeerConnection (a snapshot), for tests and diagnostics. */
  peerConnections() {
    return this.mesh ? this.mesh.connections() : new Map();
  }

  /** userId → {userId, phases: [[phase, ms after start()], ...]}: where each join's time went. */
  joinTimeline() {
    return this.clock.timelines();
  }

  /** The view presented `userId`'s first video frame: the last phase of its join. */
  markFirstFrame(userId) {
    this.clock.mark("first-frame", userId);
  }

  /**
   * Use camera or microphone `deviceId` (kind "video" or "audio") from now on; the
   * others keep receiving without a new offer (replaceTrack). Resolves true when
   * switched; a device that cannot open is reported and the old one stays.
   */
  async useDevice(kind, deviceId) {
    const old = this.localStream?.getTracks().find((t) => t.kind === kind);
    if (!old || !deviceId) return false;
    let track;
    try {
      track = await openDevice(kind, deviceId, this.lang);
    } catch (err) {
      this.#report(err);
      return false;
    }
    if (!this.localStream || !this.localStream.getTracks().includes(old)) {
      track.stop(); // hung up, or switched again, while the device opened
      return false;
    }
    await this.#swapTrack(old, track);
    remember({ [kind === "video" ? "camera" : "microphone"]: deviceId });
    this.#changed();
    this.emit("tavkit:device", { kind, deviceId });
    return true;
  }

  /** Share a screen beside the camera (the browser asks which); resolves to whether it is shared. */
  async startShare() {
    if (this.screen || !this.mayShare) return Boolean(this.screen);
    const gen = this.generation;
    let track;
    try {
      track = await openScreen(this.lang);
    } catch (err) {
      this.#report(err);
      return false;
    }
    if (!track) return false; // the person cancelled the picker
    if (gen !== this.generation || !this.active || this.screen) {
      track.stop();
      return Boolean(this.screen);
    }
    this.screen = track;
    track.addEventListener("ended", () => this.stopShare()); // the browser's own Stop
    await this.mesh?.setScreen(track);
    this.reporter?.log("info", "screen-share", { sharing: true });
    this.#sendState();
    this.#changed();
    this.emit("tavkit:screen-share", { sharing: true });
    return true;
  }

  /** Stop sharing the screen (the camera goes on). */
  async stopShare() {
    const track = this.screen;
    if (!track) return;
    this.screen = null;
    await this.mesh?.setScreen(null);
    track.stop();
    this.reporter?.log("info", "screen-share", { sharing: false });
    this.#sendState();
    this.#changed();
    this.emit("tavkit:screen-share", { sharing: false });
  }

  async #swapTrack(old, track) {
    track.enabled = track.kind === "video" ? this.self.camera : !this.self.muted;
    await this.mesh?.replaceTrack(track.kind, track);
    this.localStream.removeTrack(old);
    this.localStream.addTrack(track);
    old.stop();
  }

  // -- signaling frames ---------------------------------------------------------

  #frame(frame) {
    switch (frame.type) {
      case "welcome":
        return this.#welcome(frame);
      case "member-joined":
        return this.#addPeer(frame.member);
      case "member-left":
        return this.#removePeer(frame.userId, frame.reason);
      case "member-state":
        return this.#memberState(frame);
      case "member-connection":
        return this.#memberConnection(frame);
      case "signal":
        if (this.mesh instanceof SfuMedia) {
          return this.mesh.handleSignal(frame.from, frame.data); // an auto room's leftovers
        }
        if (!this.peers.has(frame.from) && !isHidden(frame.from)) {
          // An offer can outrun its sender's member-joined; anything else from an
          // unknown member is a straggler of someone who already left. The server's
          // hidden peer (the recorder) is answered by the mesh but never shown.
          // What the sender publishes is unknown until its member object arrives.
          if (frame.data?.description?.type !== "offer") return undefined;
          this.#addPeer({ userId: frame.from, publish: null });
        }
        this.mesh?.handleSignal?.(frame.from, frame.data); // none in an SFU room
        return undefined;
      case "media-signal":
        return this.mesh?.handleMediaSignal?.(frame); // an SFU room's (sfu.js)
      case "media-mode":
        if (frame.mediaMode === "sfu") this.#switchToSfu();
        return undefined;
      case "replaced":
        return this.#end(
          callError("trtc", -1019, this.lang, "entered the room elsewhere"),
          "replaced",
        );
      case "removed":
        if (frame.reason === "timeout") {
          return this.#rejoin(callError("trtc", -1307, this.lang, "timed out while away"));
        }
        return this.#end(
          callError("trtc", -1019, this.lang, `removed (${frame.reason})`),
          frame.reason === "expired" ? "expired" : "removed",
        );
      case "room-closed":
        return this.#end(callError("server", 14003, this.lang, frame.reason || ""), "closed");
      case "message":
        return this.chat?.receive(frame);
      case "synced":
        return this.chat?.synced();
      case "expiring":
        return this.renewal?.expiring(frame);
      case "renewed":
        return this.renewal?.renewed(frame);
      case "error":
        if (this.renewal?.refused(frame) || this.chat?.refused(frame)) return undefined;
        this.log("server refused a frame", frame);
        return undefined;
      default:
        return undefined;
    }
  }

  #welcome(frame) {
    const members = Array.isArray(frame.members) ? frame.members : [];
    if (frame.mediaMode === "sfu") this.#switchToSfu(); // an auto room switched meanwhile
    if (frame.roomUuid && this.room.roomUuid && frame.roomUuid !== this.room.roomUuid) {
      // Entered again into a fresh session: its messages are numbered afresh.
      this.room.roomUuid = frame.roomUuid;
      this.#startChat();
    }
    if (!this.joinedAt) {
      this.joinedAt = Date.now();
      this.room.roomUuid = frame.roomUuid || this.room.roomUuid;
      this.emit("tavkit:joined", {
        roomId: this.options.roomId,
        roomUuid: this.room.roomUuid,
        userId: this.self.userId,
        members: members.map((m) => m.userId),
      });
      for (const member of members) {
        this.#addPeer(member);
        this.mesh.connect(member.userId);
      }
      this.mesh.start?.(); // an SFU room publishes once, whoever is there (sfu.js)
    } else {
      // Resumed: the server's list is the truth; offer to anyone we missed.
      const present = new Set(members.map((m) => m.userId));
      for (const userId of [...this.peers.keys()]) {
        if (!present.has(userId)) this.#removePeer(userId, "timeout");
      }
      for (const member of members) {
        this.#addPeer(member); // a member we know is brought up to date
        if (!this.mesh.get(member.userId)) this.mesh.connect(member.userId);
      }
      this.mesh.heal();
    }
    this.chat?.connected();
    this.#settle();
  }

  #addPeer(member) {
    if (!this.roster.add(member)) {
      // Known already (from an early offer, or before a resume): bring it up to date.
      const published = this.roster.setPublish(member);
      const state = "muted" in member && this.roster.setState(member);
      if (published || state) this.#changed();
      return;
    }
    this.mostMembers = Math.max(this.mostMembers, this.peers.size + 1);
    if (this.screen) this.#sendState(); // the newcomer's welcome could not say we share
    this.emit("tavkit:user-enter", { userId: member.userId });
    this.reporter?.log("info", "user-enter", { peer: member.userId });
    this.#settle();
  }

  #removePeer(userId, reason) {
    if (!this.peers.has(userId)) return;
    const visible = this.roster.visible(userId);
    const name = this.displayName(userId);
    const sharing = Boolean(this.peers.get(userId)?.screen);
    this.mesh?.remove(userId);
    this.roster.remove(userId);
    if (sharing) this.emit("tavkit:remote-share", { userId, sharing: false }); // its share ends too
    this.linkQuality.remove(userId);
    this.emit("tavkit:user-leave", { userId, reason: reason || "exit" });
    this.reporter?.log("info", "user-leave", { peer: userId, reason: reason || "exit" });
    // Only a party the call showed: an audience member leaving ends nobody's call.
    if ((reason || "exit") === "exit" && visible && this.#endsWithPeer()) {
      this.#endByPeer();
      return;
    }
    // "replaced": the same member is back from another tab; nobody left.
    if (reason !== "replaced" && visible) this.#notice("peerLeft", { name });
    this.#settle();
  }

  /** Whether the last other member hanging up ends this call (the endOnPeerLeave option). */
  #endsWithPeer() {
    if (this.peers.size > 0 || this.rejoining || !this.joinedAt) return false;
    const option = this.options?.endOnPeerLeave;
    return option === true || (option == null && this.mostMembers <= 2);
  }

  /** The other party of a two-person call hung up: leave and end, as TUICallKit does. */
  async #endByPeer() {
    this.generation += 1;
    this.reporter?.log("info", "peer-hung-up");
    this.#stopReporter();
    const signaling = this.signaling;
    this.#stopMedia();
    this.ending = { reason: "peerHungUp", error: null };
    await this.#leave(signaling);
    this.#teardown("ended");
    this.#report(callError("trtc", 5000, this.lang, "the other party hung up"));
  }

  /** A brief message for the view ("X left the call"); `key` is an i18n key. */
  #notice(key, vars = {}) {
    this.dispatchEvent(new CustomEvent("notice", { detail: { key, vars } }));
  }

  #memberState(frame) {
    const wasSharing = Boolean(this.peers.get(frame.userId)?.screen);
    if (!this.roster.setState(frame)) return;
    const sharing = Boolean(this.peers.get(frame.userId)?.screen);
    if (sharing !== wasSharing) this.emit("tavkit:remote-share", { userId: frame.userId, sharing });
    this.#changed();
  }

  #memberConnection({ userId, status }) {
    if (status !== "reconnecting" && status !== "connected") return;
    if (!this.roster.setAway(userId, status === "reconnecting")) return;
    this.reporter?.log("info", "user-connection", { peer: userId, status });
    this.#call("onUserConnectionListener", userId, status);
    this.emit("tavkit:user-connection", { userId, status });
    this.#changed();
  }

  #peerChanged(userId) {
    const was = this.peers.get(userId)?.status;
    if (!this.roster.setConnection(userId, this.mesh?.get(userId))) return;
    // Our state on a newcomer's arrival can beat its socket (it enters over REST first)
    // and `screen` is not stored: once connected to it, say again that we share.
    const now = this.peers.get(userId)?.status;
    if (this.screen && now === "connected" && was !== "connected") this.#sendState();
    this.#changed();
  }

  #socketStatus(status, info) {
    if (!this.active) return;
    if (status === "reconnecting") {
      this.chat?.disconnected();
      this.reporter?.log("warn", "signaling-reconnecting");
      this.#setState("reconnecting");
    }
    else if (status === "lost") this.#rejoin(info.error);
    else if (status === "closed" && ENDED.has(info.code)) {
      const err = callError("trtc", -1019, this.lang, `closed by the server (${info.code})`);
      this.#end(err, ENDED.get(info.code));
    }
  }

  // -- messages -----------------------------------------------------------------

  #startChat() {
    this.chat?.close();
    this.unread = 0;
    this.chatOpen = false;
    this.chat = new Chat({
      selfId: this.self.userId,
      lang: this.lang,
      send: (frame) => this.signaling?.send(frame),
      onDeliver: (message) => this.#delivered(message),
    });
  }

  #chatSend(kind, value) {
    if (!this.chat || !this.active) {
      return Promise.reject(callError("server", 14004, this.lang, "not in a call"));
    }
    return this.chat.send(kind, value);
  }

  #delivered(message) {
    const others = message.from !== this.self.userId;
    if (message.kind === "text" && others && !this.chatOpen) this.unread += 1;
    this.#call("onMessageListener", { ...message });
    this.emit("tavkit:message", { ...message });
    this.#changed();
  }

  // -- credentials ---------------------------------------------------------------

  #startRenewal() {
    this.renewal?.close();
    this.renewal = new Renewal({
      listener: () => this.listener.onUserSigExpiredListener,
      current: () => this.options,
      send: (frame) => Boolean(this.signaling?.send(frame)),
      onRenewed: (frame, credentials) => this.#renewed(frame, credentials),
      onRefused: (error) => this.#report(fromWire(error) || callError("avkit", 70346, this.lang)),
      log: this.log,
    });
  }

  #renewed(frame, { userSig, privateMapKey }) {
    this.options = { ...this.options, userSig, privateMapKey: privateMapKey || "" };
    this.api?.setCredentials(userSig, privateMapKey);
    if (this.reporter) this.reporter.credentials = { ...this.reporter.credentials, userSig };
    if (frame.socketToken) this.signaling?.setToken(frame.socketToken);
    if (Number.isInteger(frame.privileges)) this.privileges = frame.privileges;
    this.mesh?.renewed(frame);
    this.emit("tavkit:renewed", { expiresAt: frame.expiresAt, privileges: this.privileges });
    this.#changed();
  }

  // -- helpers ------------------------------------------------------------------

  #applyTrackState() {
    for (const track of this.localStream?.getAudioTracks() || []) track.enabled = !this.self.muted;
    for (const track of this.localStream?.getVideoTracks() || []) track.enabled = this.self.camera;
  }

  #sendState() {
    const state = { type: "state", muted: this.self.muted, camera: this.self.camera };
    if (this.screen) state.screen = true; // not stored by the server: newcomers hear it again
    this.signaling?.send(state);
  }

  /** Recompute the call state from the socket and the peers. */
  #settle() {
    if (!this.active || this.state === "entering" || !this.joinedAt) {
      this.#changed();
      return;
    }
    if (this.signaling && this.signaling.status === "reconnecting") this.#setState("reconnecting");
    else this.#setState(this.peers.size > 0 ? "in-call" : "waiting");
    this.#changed();
  }

  /**
   * Our place in the room is gone but the call is not: enter again, keeping the
   * devices and the screen; end the call (with `err`'s reason) only if that fails.
   */
  async #rejoin(err) {
    if (!this.active || this.rejoining || !this.localStream) return this.#end(err, "lost");
    const gen = ++this.generation; // the old socket's, mesh's and heartbeat's news is stale
    this.rejoining = true;
    this.reporter?.log("warn", "rejoining", { error: err?.toJSON?.() || err });
    this.#stopReporter();
    this.heartbeat.stop();
    this.signaling?.close();
    this.signaling = null;
    this.mesh?.close();
    this.mesh = null;
    this.chat?.disconnected();
    for (const peer of this.peers.values()) peer.status = "reconnecting";
    this.#setState("reconnecting");
    this.emit("tavkit:rejoining", {});
    const deadline = Date.now() + CallController.rejoinPatienceMs;
    let last = err;
    for (let attempt = 0; ; attempt += 1) {
      const delay = REJOIN_DELAYS_MS[Math.min(attempt, REJOIN_DELAYS_MS.length - 1)];
      if (Date.now() + delay >= deadline) break;
      if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
      if (gen !== this.generation) return undefined; // hung up meanwhile
      try {
        const room = await this.api.enter(this.options.roomId);
        if (gen !== this.generation) {
          this.api.exit(this.options.roomId).catch(() => {});
          return undefined;
        }
        this.room = { ...room, roomUuid: this.room?.roomUuid || room.roomUuid };
        this.privileges = privilegesOf(room);
        if (await this.#connect(gen, true)) {
          this.rejoining = false;
          this.reporter?.log("info", "rejoined", { attempt });
          this.emit("tavkit:rejoined", { roomUuid: this.room.roomUuid });
          this.#settle();
          return undefined;
        }
      } catch (failure) {
        if (gen !== this.generation) return undefined;
        last = asCallError(failure, last);
        this.log("entering again failed", failure);
        this.signaling?.close();
        this.signaling = null;
        this.mesh?.close();
        this.mesh = null;
        if (!transient(failure)) break;
      }
    }
    this.rejoining = false;
    const lost = callError("trtc", -1307, this.lang, last?.errorMsg || "could not enter again");
    return this.#end(lost, "lost");
  }

  /** The call ended without the user hanging up; `reason` goes into `ending`. */
  #end(err, reason = "lost") {
    if (!this.active) return;
    this.generation += 1;
    this.rejoining = false;
    this.ending = { reason, error: err || null };
    if (err) this.reporter?.log("error", "call-ended", { error: err.toJSON?.() || err });
    this.#stopReporter();
    this.#stopMedia();
    this.signaling?.close();
    this.#teardown("ended");
    if (err) this.#report(err);
  }

  async #leave(signaling = this.signaling) {
    let confirmed = false;
    if (signaling) confirmed = await signaling.leave();
    if (!confirmed && this.room) {
      await this.api.exit(this.options.roomId).catch(() => {});
    }
  }

  #stopMedia() {
    this.localStream?.getTracks().forEach((t) => t.stop());
    this.screen?.stop();
    this.screen = null;
    this.mesh?.close();
  }

  #startReporter() {
    const { server, sdkAppId, userId, userSig } = this.options;
    this.reporter = new Reporter({
      server,
      credentials: { sdkAppId, userId, userSig },
      roomUuid: this.room.roomUuid,
      getPeers: () => this.peerConnections(),
      onSample: (sample) => {
        const video = this.peers.get(sample.peerId)?.camera !== false;
        if (this.linkQuality.add(sample, { video })) this.#changed();
      },
    });
    this.reporter.start();
    this.reporter.log("info", "joined", { members: [...this.peers.keys()] });
    // Names the page gave before the reporter ran (the members already in the room).
    this.#reportNames([...this.names].map(([userId, userName]) => ({ userId, userName })));
    this.voices.start();
    this.#reportTimelines();
  }

  /** Report each member's join timeline once: at its first frame, or at the end as far as it got. */
  #reportTimelines(partial = false) {
    if (!this.reporter) return;
    for (const timeline of this.clock.unreported(partial)) {
      this.reporter.log("info", JOIN_TIMELINE_EVENT, timelineData(timeline));
    }
  }

  /** Stop reporting; it samples once more and sends the rest without holding us up. */
  #stopReporter() {
    this.#reportTimelines(true); // where a join that showed no video got stuck
    const reporter = this.reporter;
    this.reporter = null;
    reporter?.stop().catch(() => {});
    this.voices.stop();
    this.linkQuality.clear();
  }

  /** Log the names the page gave, so the dashboard can show people by name. */
  #reportNames(infos) {
    const names = {};
    for (const info of Array.isArray(infos) ? infos : [infos]) {
      if (typeof info?.userId === "string" && typeof info.userName === "string" && info.userName) {
        names[info.userId] = info.userName.slice(0, 64);
      }
    }
    if (Object.keys(names).length) this.reporter?.log("info", "user-info", { names });
  }

  #teardown(state) {
    this.#dropPrepared();
    this.#stopReporter();
    this.heartbeat.stop();
    this.chat?.close();
    this.chatOpen = false;
    this.unread = 0;
    this.renewal?.close();
    this.renewal = null;
    this.#stopMedia();
    this.signaling?.close();
    this.signaling = null;
    this.mesh = null;
    this.localStream = null;
    if (this.forcedOff.camera) this.self.camera = true;
    if (this.forcedOff.muted) this.self.muted = false;
    this.forcedOff = { muted: false, camera: false };
    this.pending = null;
    this.room = null;
    this.joinedAt = 0;
    this.roster.clear();
    this.#setState(state);
  }

  #report(err) {
    const error = err instanceof CallError ? err.toJSON() : err;
    this.reporter?.log("error", "error", { error });
    this.#call("onErrorListener", error);
    this.emit("tavkit:error", error);
  }

  #call(name, ...args) {
    const fn = this.listener[name];
    if (!fn) return;
    try {
      fn(...args);
    } catch (err) {
      console.error(`tavkit: ${name} threw`, err);
    }
  }

  #setState(state) {
    if (this.state === state) return;
    this.log("state", this.state, "→", state);
    this.state = state;
    this.#changed();
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}
