// In-call messages (protocol.md section 5) without a DOM: what the chat panel shows.
//
// The server numbers a session's messages 1, 2, 3, … and sends each socket its
// messages in order, but one message can arrive twice (live and again in a `sync`
// reply) and a resumed socket has missed whatever was sent while it was away. So a
// Chat delivers by `seq`: exactly once and in order, dropping what it has delivered
// and holding anything past a gap until a `sync` fills it. On every (re)connect it
// asks for `sync {after: delivered}` (0 the first time: a late joiner gets the
// session's history) and sends again every message the server has not acknowledged;
// the server stores a clientMsgId once, so a resend never makes a second message.
//
// A message is acknowledged by its own echo (the server sends every message to its
// sender too) or refused by an `error` whose `ref` is the frame's id.

import { callError, fromWire } from "./errors.js";
import { MAX_FRAME_BYTES } from "./protocol.js"; // a larger frame would close the socket
const KEEP = 1000; // delivered messages kept for the panel
const encoder = new TextEncoder();

/** A fresh clientMsgId: 32 hex digits (getRandomValues works outside secure contexts too). */
export function newClientMsgId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether `m` has the shape of the contract's message object. */
function isMessage(m) {
  return (
    m !== null &&
    typeof m === "object" &&
    Number.isSafeInteger(m.seq) &&
    m.seq >= 1 &&
    typeof m.from === "string" &&
    (m.kind === "text" || m.kind === "custom")
  );
}

/** The message object a listener receives: the contract's fields and nothing else. */
function publicMessage(m) {
  const out = { seq: m.seq, from: m.from, kind: m.kind };
  if (m.kind === "text") out.text = m.text;
  else out.data = m.data;
  out.clientMsgId = m.clientMsgId;
  out.sentAt = m.sentAt;
  return out;
}

/** One call's messages: ordering, acknowledgements, resends. */
export class Chat {
  /**
   * `send(frame)` puts a frame on the socket and returns false when it cannot now;
   * `onDeliver(message)` gets each message once, in `seq` order; `ackTimeoutMs`
   * bounds how long a send waits for its echo, reconnects included.
   */
  constructor({ selfId, send, onDeliver, lang = "en", ackTimeoutMs = 15000 }) {
    this.selfId = selfId;
    this.sendFrame = send;
    this.onDeliver = onDeliver || (() => {});
    this.lang = lang;
    this.ackTimeoutMs = ackTimeoutMs;
    this.delivered = 0;
    this.messages = [];
    this.held = new Map(); // seq → message past a gap
    this.pending = new Map(); // clientMsgId → {frame, resolve, reject, timer}
    this.online = false;
    this.syncing = false;
    this.closed = null; // the error pending and later sends are refused with
  }

  /** The socket is (again) open: ask for what we missed and resend what is unacknowledged. */
  connected() {
    if (this.closed) return;
    this.online = true;
    this.#sync();
    for (const entry of this.pending.values()) this.#transmit(entry.frame);
  }

  /** The socket dropped; sends wait (within their timeout) for the next `connected()`. */
  disconnected() {
    this.online = false;
    this.syncing = false;
  }

  /**
   * Send a message of `kind` ("text" with a string, "custom" with any JSON value).
   * Resolves with the stored message; rejects with a CallError ({module, errorCode,
   * errorMsg}) when the server refuses it, the call ends, or no echo comes in time.
   */
  send(kind, value) {
    if (this.closed) return Promise.reject(this.closed);
    const clientMsgId = newClientMsgId();
    const frame = { type: "message", id: clientMsgId, clientMsgId, kind };
    if (kind === "text") {
      if (typeof value !== "string") return this.#invalid("text must be a string");
      frame.text = value;
    } else {
      let json;
      try {
        json = JSON.stringify(value);
      } catch (err) {
        return this.#invalid(`data is not JSON: ${err}`);
      }
      if (json === undefined) return this.#invalid("data must be a JSON value");
      frame.data = JSON.parse(json); // exactly what the wire will carry
    }
    if (encoder.encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES) {
      return this.#invalid(`${kind === "text" ? "text" : "data"} is too long`);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(clientMsgId);
        reject(callError("http", 10000, this.lang, "the message was not acknowledged in time"));
      }, this.ackTimeoutMs);
      this.pending.set(clientMsgId, { frame, resolve, reject, timer });
      if (this.online) this.#transmit(frame);
    });
  }

  /** A `message` frame from the server. */
  receive(frame) {
    if (!isMessage(frame)) return;
    const message = publicMessage(frame);
    if (message.seq <= this.delivered) {
      this.#ack(message); // our own resend's answer, or a duplicate of a delivered one
      return;
    }
    this.held.set(message.seq, message);
    while (this.held.has(this.delivered + 1)) {
      const next = this.held.get(this.delivered + 1);
      this.held.delete(next.seq);
      this.delivered = next.seq;
      this.messages.push(next);
      if (this.messages.length > KEEP) this.messages.splice(0, this.messages.length - KEEP);
      this.onDeliver(next);
      this.#ack(next);
    }
    if (this.held.size > 0) this.#sync(); // a gap: ask for it unless a sync is on its way
  }

  /** A `synced` frame: the reply to our `sync` is complete. */
  synced() {
    this.syncing = false;
    if (this.held.size > 0) this.#sync();
  }

  /** An `error` frame; returns true when it refused one of our messages. */
  refused(frame) {
    const entry = frame && typeof frame.ref === "string" ? this.pending.get(frame.ref) : null;
    if (!entry) return false;
    this.#settle(frame.ref);
    entry.reject(fromWire(frame) || callError("server", 10004, this.lang));
    return true;
  }

  /** The call is over: refuse pending and later sends with `error`. */
  close(error) {
    this.closed = error || callError("server", 14004, this.lang, "not in a call");
    this.online = false;
    for (const [clientMsgId, entry] of [...this.pending]) {
      this.#settle(clientMsgId);
      entry.reject(this.closed);
    }
  }

  #sync() {
    if (this.syncing || !this.online) return;
    this.syncing = this.#transmit({ type: "sync", after: this.delivered });
  }

  #transmit(frame) {
    return this.online && this.sendFrame(frame) !== false;
  }

  #ack(message) {
    if (message.from !== this.selfId) return;
    const entry = this.pending.get(message.clientMsgId);
    if (!entry) return;
    this.#settle(message.clientMsgId);
    entry.resolve({ ...message });
  }

  #settle(clientMsgId) {
    const entry = this.pending.get(clientMsgId);
    if (entry) clearTimeout(entry.timer);
    this.pending.delete(clientMsgId);
  }

  #invalid(detail) {
    return Promise.reject(callError("server", 10004, this.lang, detail));
  }
}
