// Where a join's time goes: when each phase of start() first happened, per remote member.
//
// The same phases, under the same names, as the Python client's JoinTimeline
// (docs/protocol.md, tavkit/protocol/timeline.py): the clock starts at start(), and
// each phase is the first time it happened, in ms (performance.now()) since then.
// The phases before the mesh (enter, socket-open, welcome, media) are shared by every
// remote member; the rest are each link's. A later rebuild or rejoin does not move a
// phase: the timeline is the join's. The controller reports each member's timeline
// once (a "join-timeline" log line) when its first frame is shown, or at hang-up as
// far as it got; <tavkit-call>.joinTimeline() reads them.
//
// Each phase is noted when the browser tells the page, so two that happen within a few
// ms of each other may be noted in either order: Chromium can deliver a connection's
// "connected" (dtls-connected) just after its first track's "unmute" (first-rtp).

/** Every phase, in the order a join normally passes them. */
export const JOIN_PHASES = Object.freeze([
  "enter",
  "socket-open",
  "welcome",
  "media",
  "offer",
  "answer",
  "ice-connected",
  "dtls-connected",
  "first-rtp",
  "first-frame",
]);
/** The log line's event that carries one remote member's timeline. */
export const JOIN_TIMELINE_EVENT = "join-timeline";

const SHARED = new Set(["enter", "socket-open", "welcome", "media"]);

/** Notes when each join phase first happened; builds each remote member's timeline. */
export class JoinClock {
  /** `onComplete(timeline)` is called once per remote member, at its first-frame. */
  constructor({ onComplete } = {}) {
    this.onComplete = onComplete || null;
    this.t0 = null;
    this.shared = new Map();
    this.peers = new Map();
    this.handedOut = new Set();
  }

  /** Start the clock (start() was called); forget any earlier call's phases. */
  start() {
    this.t0 = performance.now();
    this.shared.clear();
    this.peers.clear();
    this.handedOut.clear();
  }

  /** Note `phase` now, for everyone (no `userId`) or for one remote member. */
  mark(phase, userId = null) {
    if (this.t0 === null || !JOIN_PHASES.includes(phase)) return;
    let noted = this.shared;
    if (!SHARED.has(phase)) {
      if (!userId) return;
      if (!this.peers.has(userId)) this.peers.set(userId, new Map());
      noted = this.peers.get(userId);
    }
    if (noted.has(phase)) return;
    noted.set(phase, performance.now() - this.t0);
    if (phase === "first-frame") this.onComplete?.(this.timeline(userId));
  }

  /** `userId`'s timeline as far as it got: {userId, phases: [[phase, ms], ...]} in time order. */
  timeline(userId) {
    const noted = new Map([...this.shared, ...(this.peers.get(userId) || [])]);
    const phases = [...noted]
      .sort((a, b) => a[1] - b[1] || JOIN_PHASES.indexOf(a[0]) - JOIN_PHASES.indexOf(b[0]))
      .map(([phase, ms]) => [phase, Math.round(ms * 10) / 10]);
    return { userId, phases };
  }

  /** userId → timeline, for every remote member met so far. */
  timelines() {
    return new Map([...this.peers.keys()].map((userId) => [userId, this.timeline(userId)]));
  }

  /**
   * The timelines not handed out before, now handed out (each member's goes once):
   * those that reached first-frame, or every one when `partial` (at hang-up).
   */
  unreported(partial = false) {
    const out = [];
    for (const [userId, noted] of this.peers) {
      if (this.handedOut.has(userId) || !(partial || noted.has("first-frame"))) continue;
      this.handedOut.add(userId);
      out.push(this.timeline(userId));
    }
    return out;
  }
}

/** A timeline as the join-timeline log line's data (the server checks this shape). */
export function timelineData({ userId, phases }) {
  return { peerId: userId, phases };
}
