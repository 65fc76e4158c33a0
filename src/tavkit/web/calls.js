// Calls for the browser, DOM-free (docs/protocol.md section 7): ring, be rung, answer.
//
// A CallClient holds one user's user socket (/v1/ws/user) and the call REST routes.
// It knows nothing of the page: it reports every change through `onCallListener(event)`
// under TUICallKit's observer names (eventName below), and the element decides what
// to show and when to start() in the call's room.
//
// The credentials travel in the handshake, as the subprotocol tavkit.user.<base64url of
// {sdkAppId, userId, userSig, device, after?}>, never in the URL.
//
// The socket resumes like the room socket: dropped (a lost link, 1011, 1012 from a
// draining replica, 1013), it reopens with backoff and `after` = the highest `seq` heard;
// the server replays the frames missed, and invitations still ringing come again in the
// welcome (each reported once). When the welcome says the gap could not be replayed
// (`resumed` false), the call in progress is re-read over REST. It stops for good on
// 1000, 4001 (a newer socket of this device), 4002 (userSig expired) and 4401.
//
// Its userSig is renewed as the room socket's is (renewal.js): the server's `expiring`
// asks the listener's onUserSigExpiredListener, the userSig it gives goes out in `renew`,
// and once `renewed` the REST calls, resumes and `onRenewed({userSig, privateMapKey})`
// (the room a call enters) use it.

import { ApiClient } from "./api.js";
import { CLOSE } from "./protocol.js";
import { Renewal } from "./renewal.js";

const FINAL_CLOSE = new Set([CLOSE.NORMAL, CLOSE.REPLACED, CLOSE.REMOVED, CLOSE.UNAUTHORISED]);
const RESUME_FOR_MS = 20000; // how long a dropped socket keeps trying to reopen
/** A final call state -> the frame that would have said so (for a re-read call). */
const FRAME_OF_STATE = Object.freeze({
  ended: "call-ended",
  cancelled: "call-cancelled",
  timeout: "call-timeout",
  declined: "call-declined",
  busy: "call-declined",
});

/**
 * Every name onCallListener(event) can hear, TUICallKit's where it has one (its
 * TUICallObserver: onCallReceived, onCallBegin, onCallEnd, onCallCancelled,
 * onUserReject, onUserNoResponse, onUserLineBusy; onUserAccept is its web engine's
 * USER_ACCEPT).
 */
export const EVENTS = Object.freeze([
  "onCallReceived", // rung: the invitation (a callee)
  "onCallBegin", // the call is connected for this user: they accepted, or the first callee did
  "onUserAccept", // another callee accepted a call already connected
  "onUserReject", // a callee declined
  "onUserLineBusy", // a callee was busy (in another call, or declined with "busy")
  "onUserNoResponse", // a callee's ring ran out
  "onCallCancelled", // the caller cancelled, or left, before an accept
  "onCallEnd", // an accepted call ended (hangup, empty room, closed by an admin)
]);

/**
 * The listener event a user-socket frame is for `me`, or "" for frames that are not
 * about a call. Accepts tell apart the call starting (for the one who accepted, and
 * for the caller at the first accept) from a further callee joining a call underway.
 */
export function eventName(frame, me) {
  const { type, call, userId } = frame;
  if (type === "call-invite") return "onCallReceived";
  if (type === "call-accepted") {
    const accepted = call.callees.find((c) => c.userId === userId);
    const first = accepted && accepted.answeredAt === call.answeredAt;
    return userId === me || (call.caller === me && first) ? "onCallBegin" : "onUserAccept";
  }
  if (type === "call-declined") return frame.reason === "busy" ? "onUserLineBusy" : "onUserReject";
  if (type === "call-timeout") return "onUserNoResponse";
  if (type === "call-cancelled") return "onCallCancelled";
  if (type === "call-ended") return "onCallEnd";
  return "";
}

/** The subprotocol that opens a user socket (tavkit.protocol.calls.user_subprotocol). */
export function userSubprotocol({ sdkAppId, userId, userSig }, device = "default", after = null) {
  const creds = { sdkAppId, userId, userSig, device };
  if (after !== null && after !== undefined) creds.after = after;
  const json = JSON.stringify(creds);
  const bytes = new TextEncoder().encode(json);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  const b64 = btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `tavkit.user.${b64}`;
}

/** One user's calls: the user socket and the call routes. */
export class CallClient {
  /**
   * `options`: {server, sdkAppId, userId, userSig, device?, listener?}; `onEvent({type, ...})`;
   * `onRenewed({userSig, privateMapKey})` once the server accepted renewed credentials.
   */
  constructor(options, onEvent, onRenewed = () => {}) {
    this.options = { ...options };
    this.onEvent = onEvent;
    this.renewal = new Renewal({
      listener: () => options.listener?.onUserSigExpiredListener,
      current: () => ({ userSig: this.options.userSig }), // the user socket takes no key
      send: (frame) => this.#send(frame),
      onRenewed: (_frame, credentials) => {
        this.options.userSig = credentials.userSig;
        this.api.setCredentials(credentials.userSig, credentials.privateMapKey);
        onRenewed(credentials);
      },
      onRefused: (error) => console.warn("tavkit: the user socket's renewal was refused", error),
      log: (message) => console.info(`tavkit: user socket: ${message}`),
    });
    this.api = new ApiClient({ ...options, server: options.server || location.origin });
    this.ringing = new Map(); // callId -> call, the invitations ringing this user
    this.current = null; // the call this client made or accepted
    this.seen = new Map(); // callId -> the call as the latest frame had it
    this.socket = null;
    this.lastSeq = null; // the highest seq heard: where a resume starts
    this.closed = false;
  }

  /** Open the user socket; resolves once its welcome arrived (invitations already ringing). */
  listen() {
    this.closed = false;
    return this.#open(null);
  }

  #open(after) {
    const base = (this.options.server || location.origin).replace(/^http/, "ws");
    const socket = new WebSocket(`${base}/v1/ws/user`, [
      "tavkit.v1",
      userSubprotocol(this.options, this.options.device, after),
    ]);
    this.socket = socket;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      socket.addEventListener("message", (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === "user-welcome") {
          welcomed = true;
          this.lastSeq = Math.max(this.lastSeq ?? 0, frame.lastSeq ?? 0);
          for (const call of frame.ringing) {
            if (!this.ringing.has(call.callId)) this.#frame({ type: "call-invite", call });
          }
          if (after !== null && frame.resumed === false) this.#resync();
          resolve(frame);
        } else if (frame.type === "error" && !welcomed) {
          reject(frame);
        } else if (frame.type === "expiring") {
          this.renewal.expiring(frame);
        } else if (frame.type === "renewed") {
          this.renewal.renewed(frame);
        } else if (frame.type === "error") {
          if (!this.renewal.refused(frame)) console.warn("tavkit: user socket error", frame);
        } else {
          this.#frame(frame);
        }
      });
      socket.addEventListener("close", (event) => {
        if (!welcomed) reject({ module: "http", errorCode: 10000 });
        else if (this.socket === socket && !this.closed && !FINAL_CLOSE.has(event.code)) {
          this.#resume(Date.now() + RESUME_FOR_MS, 100);
        }
      });
    });
  }

  /** Reopen with `after`, with backoff, until the deadline. */
  #resume(deadline, delay) {
    if (this.closed || Date.now() > deadline) return;
    this.#open(this.lastSeq).catch((error) => {
      if (error?.errorCode !== 10000) return; // refused: the credentials no longer hold
      setTimeout(() => this.#resume(deadline, Math.min(delay * 2, 2000)), delay);
    });
  }

  /** The gap could not be replayed: re-read the call in progress and report its end. */
  async #resync() {
    const callId = this.current?.callId;
    if (!callId) return;
    try {
      const { call } = await this.api.request("GET", `/v1/calls/${callId}`);
      const type = FRAME_OF_STATE[call.state];
      if (type && this.current?.callId === callId && this.current.state !== call.state) {
        this.#frame({ type, call, reason: call.endReason });
      }
    } catch {
      // The next frame or the user's hang-up settles it.
    }
  }

  /** Ring `callees`; the call (its roomId is where to start()). */
  async call({ callees, media = "video", roomId, timeout, data }) {
    const body = { callees, media };
    if (roomId !== undefined) body.roomId = roomId;
    if (timeout !== undefined) body.timeout = timeout;
    if (data !== undefined) body.data = data;
    const { call } = await this.api.request("POST", "/v1/calls", body);
    // A frame may have overtaken the answer (a callee declined at once): keep the newer.
    this.current = this.seen.get(call.callId) || call;
    return this.current;
  }

  /** Answer `callId` (then start() in its room). */
  accept(callId) {
    return this.#act(callId, "accept");
  }

  /** Refuse `callId`; reason "busy" makes the outcome busy. */
  decline(callId, reason) {
    return this.#act(callId, "decline", reason ? { reason } : {});
  }

  /** Stop ringing a call this client made. */
  cancel(callId) {
    return this.#act(callId, "cancel");
  }

  /** End a call this client made for everyone. */
  hangup(callId) {
    return this.#act(callId, "hangup");
  }

  /** Close the user socket (it does not reopen). */
  close() {
    this.closed = true;
    this.socket?.close(1000);
    this.socket = null;
  }

  /** Send `frame` on the open socket; false when it is not open. */
  #send(frame) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  async #act(callId, verb, body = {}) {
    const { call } = await this.api.request("POST", `/v1/calls/${callId}/${verb}`, body);
    this.ringing.delete(callId);
    if (verb === "accept") this.current = call;
    return call;
  }

  #frame(frame) {
    const name = eventName(frame, this.options.userId);
    if (!name) return;
    if (typeof frame.seq === "number") this.lastSeq = Math.max(this.lastSeq ?? 0, frame.seq);
    const call = frame.call;
    if (frame.type === "call-invite") this.ringing.set(call.callId, call);
    this.seen.set(call.callId, call);
    const mine = call.callees.find((c) => c.userId === this.options.userId);
    if (frame.type !== "call-invite" && (!mine || mine.outcome !== "ringing")) {
      this.ringing.delete(call.callId);
    }
    if (this.current?.callId === call.callId) this.current = call;
    this.onEvent({ type: name, call, userId: frame.userId ?? null, reason: frame.reason ?? null });
  }
}
