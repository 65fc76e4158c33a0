// How good each member's connection is, from the quality samples the reporter
// already takes for the dashboard (reporter.js: RTT, inbound loss, bitrate, every 2 s).
//
// A sample grades one link good, fair or poor by its worst figure, and says which
// figure that was, so the tile can tell a person why ("12 % of packets lost"):
//
//   figure                      fair from   poor from
//   packet loss (inbound)       3 %         10 %
//   round-trip time             300 ms      600 ms
//   bitrate received, while     60 kbps     30 kbps    (only while the member's camera
//   the member sends video                              is on: a voice alone needs ~30)
//
// The bitrate floors are low on purpose: a still picture in a big call is rightly
// sent at 100 kbps or so, and that is no fault of the connection; under 60 kbps
// video no longer moves.
//
// A link shows the worse of its last two grades, so one bad sample lights the bars
// at once but a single good one does not clear them (no flicker on a wobbly link).
// Our own tile shows the best of our links, by loss and delay only (what a member
// sends is its own choice): when every link is bad, the trouble is most likely
// ours; when one is, it is most likely theirs, and their tile says so.

export const LEVELS = ["good", "fair", "poor"];

const RULES = [
  // [sample field, fair at, poor at, worse when higher, reason key, value for the text]
  ["packetLoss", 0.03, 0.1, true, "qualityLoss", (v) => ({ pct: Math.round(v * 100) })],
  ["rttMs", 300, 600, true, "qualityDelay", (v) => ({ ms: Math.round(v) })],
  ["bitrateInKbps", 60, 30, false, "qualityBandwidth", (v) => ({ kbps: Math.round(v) })],
];

/**
 * Grade one sample: {level, reason: {key, vars} | null}. `video` says whether the
 * member sends video now (the bitrate rule applies only then).
 */
export function gradeSample(sample, { video = true } = {}) {
  let level = 0;
  let reason = null;
  for (const [field, fair, poor, higherIsWorse, key, vars] of RULES) {
    const value = sample?.[field];
    if (typeof value !== "number" || !Number.isFinite(value)) continue;
    if (field === "bitrateInKbps" && !video) continue;
    const worse = (limit) => (higherIsWorse ? value >= limit : value < limit);
    const grade = worse(poor) ? 2 : worse(fair) ? 1 : 0;
    if (grade > level) {
      level = grade;
      reason = { key, vars: vars(value) };
    }
  }
  return { level: LEVELS[level], reason };
}

/** The links' grades, userId → the last two; see the module comment. */
export class LinkQuality {
  constructor() {
    this.recent = new Map(); // userId → [older, newer] grades
    this.paths = new Map(); // userId → the same without the bitrate rule, for our own tile
  }

  /** Add a reporter sample (`peerId` is the member); whether that member's grade changed. */
  add(sample, options) {
    const userId = sample?.peerId;
    if (typeof userId !== "string") return false;
    const before = this.of(userId);
    const keep = (map, grade) => map.set(userId, [map.get(userId)?.at(-1), grade].filter(Boolean));
    keep(this.recent, gradeSample(sample, options));
    keep(this.paths, gradeSample(sample, { video: false }));
    const after = this.of(userId);
    return before?.level !== after.level || before?.reason?.key !== after.reason?.key;
  }

  /** `userId`'s grade {level, reason}, or null before its first sample. */
  of(userId, map = this.recent) {
    const grades = map.get(userId);
    if (!grades?.length) return null;
    return grades.reduce((a, b) => (LEVELS.indexOf(b.level) > LEVELS.indexOf(a.level) ? b : a));
  }

  /** Our own grade: the best of our links, or null with no link graded yet. */
  best() {
    let best = null;
    for (const userId of this.paths.keys()) {
      const grade = this.of(userId, this.paths);
      if (!best || LEVELS.indexOf(grade.level) < LEVELS.indexOf(best.level)) best = grade;
    }
    return best;
  }

  /** Forget a member who left. */
  remove(userId) {
    this.recent.delete(userId);
    this.paths.delete(userId);
  }

  clear() {
    this.recent.clear();
    this.paths.clear();
  }
}
