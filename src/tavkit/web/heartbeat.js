// The REST heartbeat (protocol.md section 1): keeps our place in the room while the
// call is up, every heartbeatInterval seconds as the enter response says.
//
// A failed beat is logged and otherwise ignored: network trouble is the signaling
// socket's to judge (it resumes, or reports the connection lost). Only an answer
// meaning "you are not in this room" ends the call. Beats never pile up: a tick
// while the last beat is unanswered is skipped, and so is every tick before a 429's
// `retryAfter` has passed.

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
    let inFlight = false;
    let quietUntil = 0; // no beat before this (ms): the server's Retry-After
    this.timer = setInterval(() => {
      if (inFlight || Date.now() < quietUntil) return; // skip this beat
      inFlight = true;
      this.beat()
        .catch((err) => {
          if (!current()) return;
          this.log("heartbeat failed", err);
          if (err?.retryAfter > 0) quietUntil = Date.now() + err.retryAfter * 1000;
          if (err instanceof CallError && err.module === "server" && GONE.has(err.errorCode)) {
            this.onGone(err);
          }
        })
        .finally(() => {
          inFlight = false;
        });
    }, every);
  }

  /** Stop beating (idempotent). */
  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
