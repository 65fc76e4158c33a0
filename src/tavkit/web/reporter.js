// The elk-component, browser half: structured logs and call-quality samples, batched
// to the server's POST /v1/logs so an operator can see why a call went bad.
//
// Rules, in order of importance:
// 1. Never slow or break the call. Every public method swallows its own failures
//    (they are counted in `stats`), getStats has a timeout, and nothing here is
//    awaited by the call's own logic unless it asks to.
// 2. Bounded. The queue holds `maxQueue` items; past that the oldest are dropped
//    and counted, and the count is sent with the next batch so the server knows.
// 3. Retried with backoff. A network failure, a 5xx or a 429 keeps the batch and
//    waits (1 s doubling to 30 s, with jitter); any other refusal drops the batch
//    (the server said it is wrong; sending it again would not help).
// 4. Flushed at the end. stop() (hang-up) samples once more and sends what is left;
//    on page unload (pagehide) what is left goes by navigator.sendBeacon, which
//    cannot set headers, so that request carries the credentials in its body
//    (`auth`), as text/plain so it needs no CORS preflight.
//
// A quality sample is one remote peer seen from here: RTT, jitter, inbound packet
// loss (fraction lost since the previous sample), bitrate in and out (kbps), the
// received video's frame rate and size, and the ICE candidate type of the path
// (host, srflx, prflx, relay; "relay" when either end is relayed).

import { MODULES as ERROR_MODULES } from "./errors.js";

const DEFAULTS = {
  sampleInterval: 2000, // ms between getStats samples
  flushInterval: 5000, // ms between batches
  maxQueue: 1000, // items held before the oldest are dropped
  maxBatch: 200, // items per request (the server takes 500)
  maxBatchBytes: 48 * 1024, // the server refuses bodies over 64 KiB
  timeout: 5000, // ms for one request
  statsTimeout: 2000, // ms for one getStats
  backoffMin: 1000,
  backoffMax: 30000,
};
const BEACON_BYTES = 60 * 1024; // browsers cap the beacon queue at 64 KiB
const LEVELS = new Set(["debug", "info", "warn", "error"]);
const MODULES = new Set(ERROR_MODULES);
const MAX_DATA_CHARS = 1500;

function sanitizeEvent(event) {
  const text = String(event ?? "event")
    .replace(/[^A-Za-z0-9_.:/-]+/g, "-")
    .slice(0, 64);
  return text || "event";
}

function seedError(error) {
  if (!error || typeof error !== "object") return null;
  const code = typeof error.errorCode === "string" ? Number(error.errorCode) : error.errorCode;
  if (!MODULES.has(error.module) || !Number.isInteger(code)) return null;
  return {
    module: error.module,
    errorCode: code,
    errorMsg: String(error.errorMsg ?? "").slice(0, 500),
  };
}

function withTimeout(promise, ms) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

const round = (v, digits = 1) => (v === null || !Number.isFinite(v) ? null : +v.toFixed(digits));

/** Batches a member's logs and quality samples to the server; see the header comment. */
export class Reporter {
  /**
   * `server`: base URL ("" = same origin); `credentials`: {sdkAppId, userId, userSig};
   * `roomUuid` (or `roomId`, same meaning): the session UUID from enter; `getPeers()`:
   * a Map (or object) userId → RTCPeerConnection; `onSample(sample)` sees each
   * quality sample as it is queued (the call's quality indicators); `tuning`
   * overrides DEFAULTS.
   */
  constructor({
    server = "",
    credentials,
    roomUuid,
    roomId,
    getPeers = () => new Map(),
    onSample = () => {},
    fetch: fetchImpl,
    tuning = {},
  } = {}) {
    this.server = String(server || "").replace(/\/+$/, "");
    this.credentials = credentials || {};
    this.roomUuid = String(roomUuid || roomId || "");
    this.getPeers = getPeers;
    this.onSample = onSample;
    this.tuning = { ...DEFAULTS, ...tuning };
    this.fetch = fetchImpl || ((...args) => globalThis.fetch(...args));
    this.stats = { logged: 0, sampled: 0, sent: 0, dropped: 0, rejected: 0, failed: 0, beacons: 0 };
    this.queue = [];
    this.unreported = 0; // drops not yet told to the server
    this.previous = new Map(); // userId → counters of the last sample
    this.timers = [];
    this.retryAt = 0;
    this.backoff = 0;
    this.flushing = null;
    this.running = false;
    this.onPageHide = () => this.#beaconRest();
  }

  /** Queue a log line; `data.error` (a seed error) becomes the line's error. */
  log(level, event, data) {
    try {
      const lvl = level === "warning" ? "warn" : LEVELS.has(level) ? level : "info";
      const item = { at: Date.now() / 1000, level: lvl, event: sanitizeEvent(event) };
      let rest = data;
      if (data && typeof data === "object" && !Array.isArray(data)) {
        const { error, ...others } = data;
        const seed = seedError(error);
        if (seed) item.error = seed;
        rest = seed ? others : data;
      } else if (data !== undefined && data !== null) {
        rest = { value: data };
      }
      if (rest && Object.keys(rest).length) {
        let text = JSON.stringify(rest);
        if (text.length > MAX_DATA_CHARS)
          text = JSON.stringify({ truncated: text.slice(0, MAX_DATA_CHARS) });
        item.data = JSON.parse(text);
      }
      this.#push("logs", item);
      this.stats.logged += 1;
    } catch {
      this.stats.failed += 1;
    }
  }

  /** Start sampling and flushing on timers, and beaconing on page unload. */
  start() {
    if (this.running) return;
    this.running = true;
    const { sampleInterval, flushInterval } = this.tuning;
    this.timers.push(setInterval(() => this.sample(), sampleInterval));
    this.timers.push(setInterval(() => this.flush(), flushInterval));
    globalThis.addEventListener?.("pagehide", this.onPageHide);
  }

  /** Take one quality sample of every peer now; resolves to the number of samples queued. */
  async sample() {
    let count = 0;
    try {
      const peers = this.getPeers() || new Map();
      const entries = peers instanceof Map ? [...peers] : Object.entries(peers);
      await Promise.all(
        entries.map(async ([peerId, pc]) => {
          try {
            const sample = await withTimeout(this.#measure(peerId, pc), this.tuning.statsTimeout);
            if (sample) {
              this.#push("quality", sample);
              this.stats.sampled += 1;
              count += 1;
              this.onSample(sample);
            }
          } catch {
            this.stats.failed += 1;
          }
        }),
      );
    } catch {
      this.stats.failed += 1;
    }
    return count;
  }

  /** Send what is queued (one flush at a time); resolves true when the queue emptied. */
  flush() {
    if (!this.flushing) {
      this.flushing = this.#drain()
        .catch(() => {
          this.stats.failed += 1;
          return false;
        })
        .finally(() => {
          this.flushing = null;
        });
    }
    return this.flushing;
  }

  /** Hang-up: stop the timers, sample once more, send the rest (by beacon if sending fails). */
  async stop() {
    if (!this.running && !this.queue.length) return;
    this.running = false;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    try {
      await this.sample();
      this.retryAt = 0; // a hang-up is worth one more try even during backoff
      await this.flush();
      if (this.queue.length) this.#beaconRest();
    } catch {
      this.stats.failed += 1;
    } finally {
      // Only now: a stop() begun by the page unloading must still beacon on pagehide.
      globalThis.removeEventListener?.("pagehide", this.onPageHide);
    }
  }

  // -- queue -----------------------------------------------------------------------

  #push(kind, item) {
    this.queue.push({ kind, item });
    while (this.queue.length > this.tuning.maxQueue) {
      this.queue.shift();
      this.stats.dropped += 1;
      this.unreported += 1;
    }
  }

  /** Up to maxBatch items, at most maxBytes once serialised; removed from the queue. */
  #take(maxBytes) {
    const batch = [];
    let bytes = 300; // the envelope and the credentials
    while (this.queue.length && batch.length < this.tuning.maxBatch) {
      const size = JSON.stringify(this.queue[0].item).length + 1;
      if (batch.length && bytes + size > maxBytes) break;
      batch.push(this.queue.shift());
      bytes += size;
    }
    return batch;
  }

  #body(batch, extra = {}) {
    return JSON.stringify({
      roomUuid: this.roomUuid,
      sentAt: Date.now() / 1000,
      dropped: this.unreported,
      logs: batch.filter((e) => e.kind === "logs").map((e) => e.item),
      quality: batch.filter((e) => e.kind === "quality").map((e) => e.item),
      ...extra,
    });
  }

  // -- sending ---------------------------------------------------------------------

  async #drain() {
    while (this.queue.length) {
      if (Date.now() < this.retryAt) return false;
      const batch = this.#take(this.tuning.maxBatchBytes);
      const reported = this.unreported;
      const outcome = await this.#post(this.#body(batch));
      if (outcome === "ok") {
        this.stats.sent += batch.length;
        this.unreported = Math.max(0, this.unreported - reported);
        this.backoff = 0;
      } else if (outcome === "retry") {
        this.queue.unshift(...batch);
        while (this.queue.length > this.tuning.maxQueue) {
          this.queue.shift();
          this.stats.dropped += 1;
          this.unreported += 1;
        }
        this.backoff = Math.min(
          this.tuning.backoffMax,
          Math.max(this.tuning.backoffMin, this.backoff * 2),
        );
        this.retryAt = Date.now() + this.backoff * (0.5 + Math.random() / 2);
        return false;
      } else {
        this.stats.rejected += batch.length;
        this.unreported += batch.length;
      }
    }
    return true;
  }

  async #post(body) {
    const c = this.credentials;
    const headers = {
      "Content-Type": "application/json",
      "X-TAvKit-SdkAppId": String(c.sdkAppId ?? ""),
      "X-TAvKit-UserId": String(c.userId ?? ""),
      "X-TAvKit-UserSig": String(c.userSig ?? ""),
    };
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.tuning.timeout);
    try {
      const response = await this.fetch(`${this.server}/v1/logs`, {
        method: "POST",
        headers,
        body,
        signal: abort.signal,
        cache: "no-store",
        keepalive: body.length < 60000,
      });
      if (response.ok) return "ok";
      this.stats.failed += 1;
      return response.status === 429 || response.status >= 500 ? "retry" : "refused";
    } catch {
      this.stats.failed += 1;
      return "retry";
    } finally {
      clearTimeout(timer);
    }
  }

  /** The page is going away: send what is left as beacons (credentials in the body). */
  #beaconRest() {
    try {
      if (!this.queue.length || typeof navigator === "undefined" || !navigator.sendBeacon) return;
      const c = this.credentials;
      const auth = {
        sdkAppId: String(c.sdkAppId ?? ""),
        userId: String(c.userId ?? ""),
        userSig: String(c.userSig ?? ""),
      };
      for (let i = 0; i < 2 && this.queue.length; i += 1) {
        const batch = this.#take(BEACON_BYTES - JSON.stringify(auth).length - 200);
        const blob = new Blob([this.#body(batch, { auth })], { type: "text/plain;charset=UTF-8" });
        if (navigator.sendBeacon(`${this.server}/v1/logs`, blob)) {
          this.stats.beacons += 1;
          this.stats.sent += batch.length;
        } else {
          this.stats.dropped += batch.length;
        }
      }
      this.stats.dropped += this.queue.length;
      this.queue = [];
    } catch {
      this.stats.failed += 1;
    }
  }

  // -- measuring -------------------------------------------------------------------

  async #measure(peerId, pc) {
    if (!pc || pc.connectionState === "closed" || typeof pc.getStats !== "function") return null;
    const report = await pc.getStats();
    const now = Date.now() / 1000;
    let pair = null;
    let bytesIn = 0;
    let bytesOut = 0;
    let lost = 0;
    let received = 0;
    let jitter = null;
    let remoteRtt = null;
    let video = null;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId)
        pair = report.get(s.selectedCandidatePairId) || pair;
      else if (s.type === "candidate-pair" && !pair && s.nominated && s.state === "succeeded")
        pair = s;
      else if (s.type === "inbound-rtp") {
        bytesIn += s.bytesReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
        if (typeof s.jitter === "number") jitter = Math.max(jitter ?? 0, s.jitter);
        if (s.kind === "video") video = s;
      } else if (s.type === "outbound-rtp") bytesOut += s.bytesSent || 0;
      else if (s.type === "remote-inbound-rtp" && typeof s.roundTripTime === "number") {
        remoteRtt = Math.max(remoteRtt ?? 0, s.roundTripTime);
      }
    });
    let candidateType = null;
    if (pair) {
      const local = report.get(pair.localCandidateId);
      const remote = report.get(pair.remoteCandidateId);
      candidateType =
        local?.candidateType === "relay" || remote?.candidateType === "relay"
          ? "relay"
          : local?.candidateType || null;
    }
    const rtt =
      typeof pair?.currentRoundTripTime === "number" ? pair.currentRoundTripTime : remoteRtt;
    const prev = this.previous.get(peerId);
    this.previous.set(peerId, { at: now, bytesIn, bytesOut, lost, received });
    const sample = { at: now, peerId };
    const put = (key, value) => {
      if (value !== null && value !== undefined && Number.isFinite(value)) sample[key] = value;
    };
    put("rttMs", round(rtt === null ? null : rtt * 1000));
    put("jitterMs", round(jitter === null ? null : jitter * 1000));
    if (prev && now > prev.at) {
      const dt = now - prev.at;
      put("bitrateInKbps", round((Math.max(0, bytesIn - prev.bytesIn) * 8) / 1000 / dt));
      put("bitrateOutKbps", round((Math.max(0, bytesOut - prev.bytesOut) * 8) / 1000 / dt));
      const dLost = Math.max(0, lost - prev.lost);
      const dReceived = Math.max(0, received - prev.received);
      if (dLost + dReceived > 0) put("packetLoss", round(dLost / (dLost + dReceived), 4));
    }
    if (video) {
      put("fps", round(video.framesPerSecond ?? null));
      if (Number.isInteger(video.frameWidth)) sample.width = video.frameWidth;
      if (Number.isInteger(video.frameHeight)) sample.height = video.frameHeight;
    }
    if (candidateType && ["host", "srflx", "prflx", "relay"].includes(candidateType))
      sample.candidateType = candidateType;
    return sample;
  }
}
