// The REST heartbeat (protocol.md section 1): keeps our place in the room while the
// call is up, every heartbeatInterval seconds as the enter response says.
//
// A failed beat is logged and otherwise ignored: network trouble is the signaling
// socket's to judge (it resumes, or reports the connection lost). Only an answer
// meaning "you are not in this room" ends the call.

import { CallError } from "./errors.js";

// server 14002 (room mismatch), 14003 (room closed), 14004 (user already left).
const GONE = new Set([14002, 14003, 14004]);

/** A periodic heartbeat with no DOM; one per controller, restarted per call. */
export class Heartbeat {
  /**
   * `beat()` sends one heartbeat and returns its promise; `onGone(err)` is called
   * with the server's CallError when our place is gone; `log(...)` gets failures.
   */
  constructor({ beat, onGone, log = () => {} }) {
    this.beat = beat;
    this.onGone = onGone;
    this.log = log;
    this.timer = null;
  }

  /**
   * Beat every `intervalSeconds` (at least 0.2 s; 5 s when unusable) until stop().
   * `current()` says whether the call that started it is still the one running, so
   * a late answer to an old call's beat is dropped.
   */
  start(intervalSeconds, current = () => true) {
    this.stop();
    const every = Math.max(0.2, Number(intervalSeconds) || 5) * 1000;
    this.timer = setInterval(() => {
      this.beat().catch((err) => {
        if (!current()) return;
        this.log("heartbeat failed", err);
        if (err instanceof CallError && err.module === "server" && GONE.has(err.errorCode)) {
          this.onGone(err);
        }
      });
    }, every);
  }

  /** Stop beating (idempotent). */
  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
