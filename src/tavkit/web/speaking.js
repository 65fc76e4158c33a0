// Who is speaking: audio levels from WebRTC stats, turned into a lit tile.
//
// The level is the RMS of the audio over the last poll, from the stats' running
// totals (totalAudioEnergy / totalSamplesDuration): a remote member's from the
// inbound audio of our connection to it, our own from the microphone's
// `media-source` on one of our connections. Totals see every sample, so a short
// syllable between two polls still counts, where `audioLevel` (one instant) would
// miss it. Receiver/sender getStats reports only that track's stats, so polling a
// few times a second stays cheap. Alone in a room there is no connection and no
// level: nobody hears us, and nothing lights.
//
// A tile lights when the level passes ON and goes dark only after it stayed under
// OFF for HOLD_MS, so the ring does not flicker between words (hysteresis in both
// level and time). A muted member never lights, whatever its level.

/** RMS level (0-1) at which a silent member starts to count as speaking. */
export const ON = 0.04;
/** RMS level under which a speaking member starts to fall silent. */
export const OFF = 0.02;
/** How long (ms) a level must stay under OFF before the ring goes out. */
export const HOLD_MS = 700;
const POLL_MS = 250;

/** One member's speaking state from successive levels: on at ON, off after HOLD_MS under OFF. */
export class Hysteresis {
  constructor({ on = ON, off = OFF, holdMs = HOLD_MS } = {}) {
    Object.assign(this, { on, off, holdMs });
    this.speaking = false;
    this.quietSince = null;
  }

  /** Feed the level measured at `now` (ms); returns whether the member is speaking. */
  update(level, now) {
    if (level >= this.on || (this.speaking && level >= this.off)) {
      this.speaking = true;
      this.quietSince = null;
    } else if (this.speaking) {
      this.quietSince ??= now;
      if (now - this.quietSince >= this.holdMs) this.speaking = false;
    }
    return this.speaking;
  }
}

/** The RMS level between two {energy, duration} totals, or 0 when no audio went by. */
export function rmsBetween(previous, current) {
  if (!previous || !current) return 0;
  const seconds = current.duration - previous.duration;
  const energy = current.energy - previous.energy;
  if (!(seconds > 0) || !(energy >= 0)) return 0;
  return Math.sqrt(energy / seconds);
}

function totalsOf(report, type) {
  let out = null;
  report.forEach((s) => {
    if (s.type === type && s.kind === "audio" && typeof s.totalAudioEnergy === "number") {
      out = { energy: s.totalAudioEnergy, duration: s.totalSamplesDuration || 0 };
    }
  });
  return out;
}

/**
 * Polls audio levels of every member while a call is up; `onChange()` runs when
 * someone starts or stops speaking. `getPeers()` is userId → RTCPeerConnection,
 * `selfId()` our userId, `muted(userId)` whether that member's microphone is off.
 */
export class SpeakingMonitor {
  constructor({ getPeers, selfId, muted, onChange, interval = POLL_MS }) {
    Object.assign(this, { getPeers, selfId, muted, onChange, interval });
    this.speaking = new Set(); // userIds lit now, ours included
    this.states = new Map(); // userId → {totals, hysteresis}
    this.timer = null;
    this.busy = false;
  }

  start() {
    if (this.timer) return;
    this.timer = setInterval(() => this.poll(), this.interval);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.states.clear();
    if (this.speaking.size) {
      this.speaking.clear();
      this.onChange();
    }
  }

  /** Measure every member once; a poll still running when the next is due is skipped. */
  async poll() {
    if (this.busy) return;
    this.busy = true;
    try {
      const peers = this.getPeers();
      const jobs = [...peers].map(([userId, pc]) =>
        this.#measure(userId, receiverOf(pc), "inbound-rtp"),
      );
      const self = this.selfId();
      const mine = [...peers.values()].map(senderOf).find(Boolean);
      if (self && mine) jobs.push(this.#measure(self, mine, "media-source"));
      const levels = new Map(await Promise.all(jobs));
      let changed = false;
      for (const userId of [...this.states.keys()]) {
        if (!levels.has(userId)) this.states.delete(userId);
      }
      const now = Date.now();
      const lit = new Set();
      for (const [userId, level] of levels) {
        const state = this.states.get(userId);
        if (state && state.hysteresis.update(this.muted(userId) ? 0 : level, now)) lit.add(userId);
      }
      if (lit.size !== this.speaking.size || [...lit].some((id) => !this.speaking.has(id))) {
        changed = true;
      }
      this.speaking = lit;
      if (changed && this.timer) this.onChange();
    } catch {
      // A closing connection's stats can fail; the next poll sees the new set.
    } finally {
      this.busy = false;
    }
  }

  async #measure(userId, endpoint, type) {
    if (!endpoint) return [userId, 0];
    let totals = null;
    try {
      totals = totalsOf(await endpoint.getStats(), type);
    } catch {
      return [userId, 0];
    }
    let state = this.states.get(userId);
    if (!state) {
      state = { totals: null, hysteresis: new Hysteresis() };
      this.states.set(userId, state);
    }
    const level = rmsBetween(state.totals, totals);
    state.totals = totals;
    return [userId, level];
  }
}

function receiverOf(pc) {
  if (!pc || pc.connectionState === "closed") return null;
  return pc.getReceivers().find((r) => r.track?.kind === "audio") || null;
}

function senderOf(pc) {
  if (!pc || pc.connectionState !== "connected") return null;
  return pc.getSenders().find((s) => s.track?.kind === "audio") || null;
}
