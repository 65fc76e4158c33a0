// The REST client (the seed's request-component): credentials, timeout, retry.
//
// Failures leave this module in exactly two forms: the server's own error, as it
// sent it ({module, errorCode, errorMsg} with a non-2xx status), or http 10000 when
// there is no usable answer at all (the fetch rejects, times out, or the body is not
// JSON). Only the second kind, and 5xx answers, are retried: a 4xx is the server
// saying no, and asking again would not change its mind. A 429 (server 10004 "rate
// limited") says "not now": its CallError carries `retryAfter` (seconds, from the
// Retry-After header), enter() waits that long and asks again while its waits add up
// to at most `rateLimitWait`, and every other call rejects at once (the heartbeat
// skips beats until then).

import { callError, fromWire } from "./errors.js";
import { roomPath } from "./protocol.js";

const DEFAULTS = {
  timeout: 8000, // ms for one attempt; the browser's own limit is minutes
  retries: 2, // extra attempts after a network failure or a 5xx
  backoff: 300, // ms before the first retry, doubled each time
  rateLimitWait: 30000, // ms enter() may wait in all for 429s to pass; 0: never waits
};
const MAX_RETRY_AFTER = 3600; // s: a longer or unreadable Retry-After reads as this

/** The seconds a 429 asks us to wait: 1 to MAX_RETRY_AFTER, 1 when the header is missing. */
function retryAfterOf(response) {
  const raw = response.headers.get("Retry-After");
  if (raw === null) return 1;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0) return MAX_RETRY_AFTER;
  return Math.min(Math.max(seconds, 1), MAX_RETRY_AFTER); // never 0: no tight loop
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A REST client bound to one user's credentials on one server. */
export class ApiClient {
  /**
   * `options`: {server, sdkAppId, userId, userSig, privateMapKey, lang}; `tuning`
   * overrides timeout/retries/backoff (tests and the benchmark shorten them).
   */
  constructor(options, tuning = {}) {
    this.server = options.server;
    this.lang = options.lang || "en";
    this.tuning = { ...DEFAULTS, ...tuning };
    this.headers = {
      "Content-Type": "application/json",
      "X-TAvKit-SdkAppId": String(options.sdkAppId),
      "X-TAvKit-UserId": options.userId,
      "X-TAvKit-UserSig": options.userSig,
    };
    if (options.privateMapKey) this.headers["X-TAvKit-PrivateMapKey"] = options.privateMapKey;
  }

  /** Authenticate every later call with renewed credentials (a `renewed` frame's). */
  setCredentials(userSig, privateMapKey) {
    this.headers["X-TAvKit-UserSig"] = userSig;
    if (privateMapKey) this.headers["X-TAvKit-PrivateMapKey"] = privateMapKey;
  }

  /**
   * POST /v1/rooms/{roomId}/enter (a string room: /v1/str-rooms/{strRoomId}/enter);
   * resolves to the enter response (waits out 429s).
   */
  enter(roomId) {
    const patience = { rateLimitWait: this.tuning.rateLimitWait };
    return this.request("POST", `/v1/${roomPath(roomId)}/enter`, {}, patience);
  }

  /** POST …/heartbeat; one attempt, the next beat is the retry. */
  heartbeat(roomId) {
    return this.request("POST", `/v1/${roomPath(roomId)}/heartbeat`, {}, { retries: 0 });
  }

  /** POST …/exit. */
  exit(roomId) {
    return this.request("POST", `/v1/${roomPath(roomId)}/exit`, {}, { retries: 0 });
  }

  /**
   * Fire-and-forget exit that survives the page being unloaded.
   *
   * `keepalive` lets the request outlive the document, and unlike sendBeacon it
   * can carry the credential headers.
   */
  exitOnUnload(roomId) {
    try {
      fetch(`${this.server}/v1/${roomPath(roomId)}/exit`, {
        method: "POST",
        headers: this.headers,
        body: "{}",
        keepalive: true,
      }).catch(() => {});
    } catch {
      // the page is going away; nothing left to tell
    }
  }

  /**
   * One call with retries; resolves to the JSON body or rejects with a CallError.
   * `overrides.rateLimitWait` (ms, default 0) lets it wait out 429s that long in all.
   */
  async request(method, path, body, overrides = {}) {
    const { timeout, retries, backoff } = { ...this.tuning, ...overrides };
    const rateLimitWait = overrides.rateLimitWait || 0;
    let delay = backoff;
    let waited = 0;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.#once(method, path, body, timeout);
      } catch (err) {
        const wait = (err.retryAfter ?? Infinity) * 1000;
        if (waited + wait <= rateLimitWait) {
          waited += wait; // the server asked for a pause: not a failed attempt
          attempt -= 1;
          await sleep(wait);
          continue;
        }
        const retryable = err.retryable === true;
        if (!retryable || attempt >= retries) throw err.callError || err;
        await sleep(delay);
        delay *= 2;
      }
    }
  }

  async #once(method, path, body, timeout) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeout);
    let response;
    let text;
    try {
      response = await fetch(`${this.server}${path}`, {
        method,
        headers: this.headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort.signal,
        cache: "no-store",
      });
      text = await response.text();
    } catch (err) {
      const why = abort.signal.aborted ? `timed out after ${timeout} ms` : String(err?.message || err);
      throw this.#failure(`${method} ${path}: ${why}`, true);
    } finally {
      clearTimeout(timer);
    }
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      throw this.#failure(`${method} ${path}: HTTP ${response.status}, not JSON`, true);
    }
    if (response.ok) return data;
    const serverError = fromWire(data);
    if (serverError && response.status === 429) serverError.retryAfter = retryAfterOf(response);
    if (serverError && response.status < 500) throw serverError;
    const failure = serverError || callError("http", 10000, this.lang, `HTTP ${response.status}`);
    throw Object.assign(new Error(failure.message), { retryable: true, callError: failure });
  }

  #failure(detail, retryable) {
    const err = callError("http", 10000, this.lang, detail);
    return Object.assign(new Error(err.message), { retryable, callError: err });
  }
}
