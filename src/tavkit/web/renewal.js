// Credentials that end during a call (protocol.md section 2, "Credential expiry").
//
// The server sends `expiring` {expiresAt, deadline} ahead of the end of the member's
// userSig (or privateMapKey); a member that has not sent an accepted `renew` by the
// deadline is removed with reason "expired". A Renewal answers `expiring` by asking
// the page through the listener's onUserSigExpiredListener(callback), TRTC's name:
// the page either calls `callback(userSig)` / `callback({userSig, privateMapKey})`,
// or returns (or resolves to) the same; nothing, null, or no listener at all lets
// the credentials run out. A userSig alone is sent with the privateMapKey the call
// already has, so a page need not mint a key to renew its signature.
//
// The server answers with `renewed` (new end, privileges, ICE servers, socket token)
// or an `error` naming the `renew` frame's id; `onRenewed(frame, credentials)` and
// `onRefused(error)` take it from there. DOM-free; no secret is ever logged.

let nextId = 1;

// The room socket and the user socket of one user carry the same userSig, so the server
// warns both at about the same time; the page is asked once and both sockets send its
// answer. An answer is shared while the question is open and for SHARED_MS after.
const SHARED_MS = 5000;
const questions = new WeakMap(); // the page's listener -> {answer: Promise, settledAt}

/** Asks the page for fresh credentials when the server warns, and sends them. */
export class Renewal {
  /**
   * `listener()` is the page's onUserSigExpiredListener, if it gave one;
   * `current()` is the credentials in use ({userSig, privateMapKey});
   * `send(frame)` goes out on the socket; `onRenewed(frame, credentials)` and
   * `onRefused(errorFrame)` receive the answer.
   */
  constructor({ listener, current, send, onRenewed, onRefused, log = () => {} }) {
    this.listener = listener;
    this.current = current;
    this.sendFrame = send;
    this.onRenewed = onRenewed;
    this.onRefused = onRefused;
    this.log = log;
    this.asking = false;
    this.pending = new Map(); // frame id -> the credentials it carried
    this.closed = false;
  }

  /** An `expiring` frame: ask the page once per warning, then send what it gave. */
  async expiring(frame) {
    if (this.asking || this.closed) return;
    const ask = this.listener();
    if (typeof ask !== "function") {
      this.log("no onUserSigExpiredListener: the credentials will run out");
      return;
    }
    this.asking = true;
    try {
      const waitMs = Math.max(0, Number(frame.deadline) * 1000 - Date.now());
      const answer = await askOnce(ask, waitMs);
      if (this.closed) return;
      const fresh = credentialsOf(answer);
      if (!fresh) {
        this.log("no fresh userSig from the page: the credentials will run out");
        return;
      }
      this.renew(fresh.userSig, fresh.privateMapKey);
    } finally {
      this.asking = false;
    }
  }

  /** Send `renew`; false when the socket could take nothing. */
  renew(userSig, privateMapKey) {
    const key = privateMapKey ?? this.current().privateMapKey ?? "";
    const id = `renew-${nextId++}`;
    const frame = { type: "renew", id, userSig };
    if (key) frame.privateMapKey = key;
    this.pending.set(id, { userSig, privateMapKey: key });
    const sent = this.sendFrame(frame);
    if (!sent) this.pending.delete(id);
    return sent;
  }

  /** A `renewed` frame: apply the credentials it accepted. */
  renewed(frame) {
    const credentials = this.pending.get(frame.ref);
    if (!credentials) return;
    this.pending.delete(frame.ref);
    this.onRenewed(frame, credentials);
  }

  /** An `error` frame: true when it refused one of our `renew` frames. */
  refused(frame) {
    if (!frame || !this.pending.has(frame.ref)) return false;
    this.pending.delete(frame.ref);
    this.onRefused(frame);
    return true;
  }

  close() {
    this.closed = true;
    this.pending.clear();
  }
}

/**
 * Ask the page's onUserSigExpiredListener `ask` for fresh credentials outside a
 * call (the end screen's Try again after a refused signature): {userSig,
 * privateMapKey?}, or null when it gave none within `waitMs`.
 */
export async function askForCredentials(ask, waitMs = 15000) {
  if (typeof ask !== "function") return null;
  return credentialsOf(await askPage(ask, waitMs));
}

/** `askPage`, unless another socket asked the same listener just now: its answer. */
function askOnce(ask, waitMs) {
  const open = questions.get(ask);
  if (open && (open.settledAt === null || Date.now() - open.settledAt < SHARED_MS)) {
    return open.answer;
  }
  const question = { answer: null, settledAt: null };
  question.answer = askPage(ask, waitMs).then((value) => {
    question.settledAt = Date.now();
    return value;
  });
  questions.set(ask, question);
  return question.answer;
}

/**
 * Call the page's listener with a callback; resolve with what it passes to the
 * callback or returns (resolves to), whichever comes first, or null after `waitMs`.
 * Returning nothing, or a promise of nothing, means "I will call back".
 */
function askPage(ask, waitMs) {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => settle(null), waitMs);
    function settle(value) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(value ?? null);
    }
    let result;
    try {
      result = ask(settle);
    } catch (err) {
      console.error("tavkit: onUserSigExpiredListener threw", err);
      settle(null);
      return;
    }
    if (result !== undefined) {
      // A promise resolving to undefined (an async listener that calls back) waits on.
      const answered = (value) => value !== undefined && settle(value);
      Promise.resolve(result).then(answered, (err) => {
        console.error("tavkit: onUserSigExpiredListener rejected", err);
        settle(null);
      });
    }
  });
}

/** {userSig, privateMapKey} from a string or an object the page gave, else null. */
function credentialsOf(answer) {
  if (typeof answer === "string" && answer.trim()) return { userSig: answer.trim() };
  if (answer && typeof answer === "object" && typeof answer.userSig === "string") {
    const userSig = answer.userSig.trim();
    if (!userSig) return null;
    const key = typeof answer.privateMapKey === "string" ? answer.privateMapKey.trim() : "";
    return { userSig, privateMapKey: key || undefined };
  }
  return null;
}
