// The signaling socket (protocol.md section 2): one WebSocket, kept alive and resumed.
//
// The server lets the same token resume the member's place for a heartbeat timeout
// after the last activity, so a dropped socket is reopened with backoff until the
// server refuses the token (close 4401) or that window has surely passed; only then
// is the connection "lost" (the controller reports trtc -1307). The client cannot
// know when the server last heard from it, so it keeps trying rather than guess.
// A browser WebSocket does not notice a silently dead TCP path for minutes, so the
// socket pings every heartbeat interval and treats a long silence as a drop, early
// enough to resume before the server's timeout; a false alarm on a busy machine
// costs one reconnect, not the call.
// In-call message frames (`message`, `sync`) are never queued: the chat (chat.js)
// resends what the server has not acknowledged once the socket is back, and asks
// for what it missed with a fresh `sync`.
// A busy server refuses a `signal` rather than queue it for seconds (server 10000,
// `ref` = the frame's `id`, protocol.md section 2): every signal goes out with an id,
// and one refused that way is sent again after a short random pause, up to
// SIGNAL_TRIES times in all (a lost offer or candidate would stall that media link);
// only the last refusal reaches onMessage.

import { callError, fromWire } from "./errors.js";
import { CLOSE } from "./protocol.js";

// Close codes after which reopening would be wrong: the server ended our place.
const FINAL_CLOSE = new Set([CLOSE.NORMAL, CLOSE.REPLACED, CLOSE.REMOVED, CLOSE.ROOM_CLOSED]);
// Ours, not the contract's: we close a silent socket with SILENCED and handle it as
// a drop, which is what a socket gone without a close frame reports (RFC 6455 1006).
const SILENCED = 4000;
const ABNORMAL = 1006;
const MAX_QUEUED = 500; // frames kept while reconnecting; negotiation needs them in order
const GIVE_UP_SLACK = 5000; // ms past the heartbeat timeout before reconnecting stops
const UNQUEUED = new Set(["message", "sync"]); // the chat resends these itself
const SIGNAL_TRIES = 6; // sends of one signal while a busy server refuses it
const SIGNAL_PAUSE_MS = [100, 400]; // random pause before sending a refused signal again
const SIGNALS_KEPT = 256; // recent signals kept to send again (a refusal comes within an RTT)

/**
 * `token` percent-encoded so any token is a valid subprotocol (the server's always are;
 * the server decodes): encodeURIComponent leaves `!'()*`, and `(` `)` are not allowed.
 */
function subprotocolSafe(token) {
  return encodeURIComponent(token).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** One member's signaling socket with resume, ping and an outbound queue. */
export class Signaling {
  /**
   * `url`/`token` come from the enter response; intervals are in seconds as the
   * server sends them. `onMessage(frame)` gets every server frame (welcome
   * included); `onStatus(status, info)` gets "open", "reconnecting", "closed"
   * ({code}) and "lost" ({error}); `onPhase(phase)` each handshake's "socket-open"
   * and "welcome" (the join timeline keeps the first of each).
   */
  constructor({ url, token, heartbeatInterval, heartbeatTimeout, onMessage, onStatus, onPhase, lang }) {
    // The token rides in the handshake header (Sec-WebSocket-Protocol), never in the URL
    // that access logs keep; the server answers "tavkit.v1".
    this.url = url;
    this.protocols = ["tavkit.v1", `tavkit.token.${subprotocolSafe(token)}`];
    this.intervalMs = Math.max(0.2, Number(heartbeatInterval) || 5) * 1000;
    this.timeoutMs = Math.max(1, Number(heartbeatTimeout) || 15) * 1000;
    // Silence that means a dead path: three missed pongs, but well inside the timeout.
    this.silenceMs = Math.min(Math.max(this.intervalMs * 3, 5000), this.timeoutMs * 0.6);
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onPhase = onPhase || null;
    this.lang = lang || "en";
    this.status = "idle";
    this.ws = null;
    this.queue = [];
    this.welcomed = false;
    this.lastError = null;
    this.lastReceived = 0;
    this.deadline = 0;
    this.timers = new Set();
    this.pinger = null;
    this.opened = null;
    this.attempt = 0;
    this.signals = new Map(); // id -> {frame, tries}: recent signals, oldest first
    this.signalCount = 0;
  }

  /** Resume with `token` from now on (the one a `renewed` frame carries). */
  setToken(token) {
    this.protocols = ["tavkit.v1", `tavkit.token.${subprotocolSafe(token)}`];
  }

  /** Connect; resolves with the first `welcome`, rejects with a CallError. */
  open() {
    if (this.opened) return this.opened.promise;
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.opened = { promise, resolve, reject };
    this.deadline = Date.now() + this.timeoutMs + GIVE_UP_SLACK;
    this.#connect(0);
    return promise;
  }

  /**
   * Send a frame; while reconnecting, signal and state frames wait in a queue.
   * Returns false when the frame was neither sent nor queued.
   */
  send(frame) {
    if (frame.type === "signal") this.#keepSignal(frame);
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.status === "open") {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    if (UNQUEUED.has(frame.type)) return false;
    if (this.status === "reconnecting" || this.status === "connecting") {
      if (this.queue.length < MAX_QUEUED) this.queue.push(frame);
      return true;
    }
    return false;
  }

  /**
   * Hang up through the socket: send `leave` and wait (bounded) for the server's
   * 1000 close. Resolves true when the server confirmed it.
   */
  leave(waitMs = 2000) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.status !== "open") {
      this.close();
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), waitMs);
      const finish = (ok) => {
        clearTimeout(timer);
        ws.removeEventListener("close", onClose);
        this.close();
        resolve(ok);
      };
      const onClose = (event) => finish(event.code === CLOSE.NORMAL);
      ws.addEventListener("close", onClose);
      this.status = "leaving";
      ws.send(JSON.stringify({ type: "leave" }));
    });
  }

  /** Best effort `leave` while the page unloads: no waiting is possible then. */
  leaveNow() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "leave" }));
    }
    this.close();
  }

  /** Stop everything; no status callbacks after this. */
  close() {
    this.status = "closed";
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    clearInterval(this.pinger);
    this.pinger = null;
    if (this.ws) {
      this.#detach(this.ws);
      if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(CLOSE.NORMAL);
      this.ws = null;
    }
    this.queue = [];
  }

  #later(fn, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  #setStatus(status, info = {}) {
    if (this.status === status) return;
    this.status = status;
    this.onStatus?.(status, info);
  }

  #connect(attempt) {
    if (this.status === "closed") return;
    if (!this.welcomed) this.status = "connecting";
    this.attempt = attempt;
    let ws;
    try {
      ws = new WebSocket(this.url, this.protocols);
    } catch (err) {
      this.#fail(callError("trtc", -1307, this.lang, `cannot open ${this.url}: ${err}`));
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.onPhase?.("socket-open");
    ws.onmessage = (event) => this.#receive(event);
    ws.onclose = (event) => this.#closed(ws, event.code);
    ws.onerror = () => {}; // a close event always follows and carries the decision
  }

  #receive(event) {
    this.lastReceived = Date.now();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return; // the server only sends JSON; ignore anything else rather than die
    }
    if (!frame || typeof frame.type !== "string") return;
    if (frame.type === "welcome") {
      this.onPhase?.("welcome");
      this.welcomed = true;
      this.attempt = 0;
      this.#setStatus("open");
      this.#startPinging();
      const queued = this.queue;
      this.queue = [];
      this.onMessage?.(frame);
      for (const f of queued) this.send(f);
      this.opened?.resolve(frame);
      return;
    }
    if (frame.type === "error" && this.#sendAgain(frame)) return;
    if (frame.type === "error") this.lastError = frame;
    if (frame.type === "pong") return;
    this.onMessage?.(frame);
  }

  /** Give a signal an id (if it has none) and keep it, so a busy server's refusal can be undone. */
  #keepSignal(frame) {
    if (typeof frame.id !== "string") frame.id = `sig-${++this.signalCount}`;
    if (!this.signals.has(frame.id)) this.signals.set(frame.id, { frame, tries: 1 });
    while (this.signals.size > SIGNALS_KEPT) this.signals.delete(this.signals.keys().next().value);
  }

  /** Send a signal the busy server refused again, later; false if `frame` is not that. */
  #sendAgain(frame) {
    const kept = frame.module === "server" && frame.errorCode === 10000 && this.signals.get(frame.ref);
    if (!kept) return false;
    if (kept.tries >= SIGNAL_TRIES) {
      this.signals.delete(frame.ref);
      return false;
    }
    kept.tries += 1;
    const [low, high] = SIGNAL_PAUSE_MS;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.status !== "closed" && this.status !== "lost") this.send(kept.frame);
    }, low + Math.random() * (high - low));
    this.timers.add(timer);
    return true;
  }

  #startPinging() {
    clearInterval(this.pinger);
    this.pinger = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastReceived > this.silenceMs) {
        // The path is dead even if TCP has not noticed: reopen while resuming still works.
        this.#detach(ws);
        ws.close(SILENCED);
        this.#closed(ws, ABNORMAL);
        return;
      }
      ws.send(JSON.stringify({ type: "ping", t: Date.now() / 1000 }));
    }, this.intervalMs);
  }

  #detach(ws) {
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
  }

  #closed(ws, code) {
    const attempt = this.attempt;
    if (ws !== this.ws || this.status === "closed" || this.status === "leaving") return;
    this.#detach(ws);
    this.ws = null;
    clearInterval(this.pinger);
    this.pinger = null;
    if (FINAL_CLOSE.has(code)) {
      this.status = "closed";
      this.onStatus?.("closed", { code });
      this.opened?.reject(callError("trtc", -1307, this.lang, `socket closed with ${code}`));
      return;
    }
    if (code === CLOSE.UNAUTHORISED) {
      const err = fromWire(this.lastError) || callError("server", 10005, this.lang);
      this.#fail(this.welcomed ? callError("trtc", -1307, this.lang, "resume refused") : err);
      return;
    }
    if (this.welcomed) {
      // Resume: the server's window counts from its last activity, which is at the
      // latest what it last said to us; past it plus some slack, it has let us go.
      if (attempt === 0) this.deadline = this.lastReceived + this.timeoutMs + GIVE_UP_SLACK;
      this.#setStatus("reconnecting");
    }
    const delay = Math.min(250 * 2 ** attempt, 2000);
    if (Date.now() + delay >= this.deadline) {
      this.#fail(callError("trtc", -1307, this.lang, `signaling lost (close ${code})`));
      return;
    }
    this.#later(() => this.#connect(attempt + 1), delay);
  }

  #fail(err) {
    const wasOpen = this.welcomed;
    this.close();
    this.opened?.reject(err);
    if (wasOpen) this.onStatus?.("lost", { error: err });
  }
}
