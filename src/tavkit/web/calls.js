// Calls for the browser, DOM-free (docs/protocol.md section 7): ring, be rung, answer.
//
// A CallClient holds one user's user socket (/v1/ws/user) and the call REST routes.
// It knows nothing of the page: it reports every change through `onCallListener(event)`
// under TUICallKit's observer names (eventName below), and the element decides what
// to show and when to start() in the call's room.
//
// The credentials travel in the handshake, as the subprotocol tavkit.user.<base64url of
// {sdkAppId, userId, userSig, device}>, never in the URL.

import { ApiClient } from "./api.js";

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
export function userSubprotocol({ sdkAppId, userId, userSig }, device = "default") {
  const json = JSON.stringify({ sdkAppId, userId, userSig, device });
  const bytes = new TextEncoder().encode(json);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  const b64 = btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `tavkit.user.${b64}`;
}

/** One user's calls: the user socket and the call routes. */
export class CallClient {
  /** `options`: {server, sdkAppId, userId, userSig, device?}; `onEvent({type, ...})`. */
  constructor(options, onEvent) {
    this.options = options;
    this.onEvent = onEvent;
    this.api = new ApiClient({ ...options, server: options.server || location.origin });
    this.ringing = new Map(); // callId -> call, the invitations ringing this user
    this.current = null; // the call this client made or accepted
    this.seen = new Map(); // callId -> the call as the latest frame had it
    this.socket = null;
  }

  /** Open the user socket; resolves once its welcome arrived (invitations already ringing). */
  listen() {
    const base = (this.options.server || location.origin).replace(/^http/, "ws");
    const socket = new WebSocket(`${base}/v1/ws/user`, [
      "tavkit.v1",
      userSubprotocol(this.options, this.options.device),
    ]);
    this.socket = socket;
    return new Promise((resolve, reject) => {
      socket.addEventListener("message", (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === "user-welcome") {
          for (const call of frame.ringing) this.#frame({ type: "call-invite", call });
          resolve(frame);
        } else if (frame.type === "error") {
          reject(frame);
        } else {
          this.#frame(frame);
        }
      });
      socket.addEventListener("close", () => reject({ module: "http", errorCode: 10000 }));
    });
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

  /** Close the user socket. */
  close() {
    this.socket?.close(1000);
    this.socket = null;
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
