// What the person sees when a call cannot start or ends: the end screen's words.
//
// DOM-free, so node tests every case (tests/web/test_screens_js.py) and the view
// (tavkit-call.js) only paints. The controller records why a call ended as an
// `ending` {reason, error}: `reason` is what the controller knew for sure (the
// user hung up, the server removed us, the peer hung up, the network was lost), and
// `error` the CallError it reported, whose (module, errorCode) and message tell
// apart what one reason covers: an enter refused for an expired or a wrong userSig,
// a full room, a camera refused or busy. classify() turns that into one screen kind
// and screenFor() into the words: a title (what happened), a hint (what to do) and
// an action ("retry", "rejoin" or none) when trying again can help.
//
// A signature refusal (avkit 70346, 80-87) retries only with fresh credentials, so
// its Try again button is offered only when the page can give them (its
// onUserSigExpiredListener, asked as when renewing); the same userSig would be
// refused again.
//
// The hints name what a person can do on the device in their hand: a phone has no
// address-bar camera icon to click, so the permission hint there points to the
// site's settings instead (`phone` is the view's pointer: coarse).

/** Screen kinds whose retry is simply entering again with the same options. */
const RETRYABLE = new Set([
  "roomFull",
  "network",
  "lost",
  "cameraDenied",
  "micDenied",
  "deviceBusy",
  "deviceMissing",
  "failed",
]);
/** Kinds whose retry needs fresh credentials from the page. */
const NEEDS_SIG = new Set(["expiredSig", "wrongSig"]);
/** Kinds that end a call the person was in: the button says Rejoin, not Try again. */
const REJOIN = new Set(["lost", "replaced", "hungUp"]);

/** Kinds that are a call's ordinary end rather than a failure (a hang-up icon, not an alert). */
const ENDINGS = new Set([
  "hungUp",
  "peerHungUp",
  "closed",
  "callDeclined",
  "callBusy",
  "callNoAnswer",
  "callCancelled",
]);

/** Server messages that name why an enter was refused (they come from tavkit's server). */
const EXPIRED = /expired/i;
const FULL = /\bfull\b/i;

/**
 * The screen kind for an ending; "" while no screen is due.
 *
 * `ending` = {reason, error}: reason is one of "hangup", "peerHungUp", "replaced",
 * "removed", "expired", "closed", "lost", "failed" (could not start), a rung call's
 * end for its caller ("declined", "busy", "noAnswer", "cancelled"), or "" (the
 * call is not over); `error` is the reported CallError (media.js sets `failure` on a device's).
 */
export function classify(ending) {
  const { reason = "", error = null } = ending || {};
  if (!reason) return "";
  const direct = {
    hangup: "hungUp",
    peerHungUp: "peerHungUp",
    replaced: "replaced",
    removed: "removed",
    expired: "expiredSig",
    closed: "closed",
    lost: "lost",
    declined: "callDeclined",
    busy: "callBusy",
    noAnswer: "callNoAnswer",
    cancelled: "callCancelled",
  };
  if (direct[reason]) return direct[reason];
  return classifyError(error);
}

/** The screen kind for an error that kept the call from starting. */
export function classifyError(error) {
  if (!error) return "failed";
  const { module, errorCode: code, errorMsg = "", failure = "" } = error;
  if (module === "avkit") {
    if (code === 70346 || code === 86 || code === 87 || code === 80 || code === 82) {
      return EXPIRED.test(errorMsg) || code === 86 ? "expiredSig" : "wrongSig";
    }
    if (code === 88 || code === 10001) return "noPermission";
    return "badOptions"; // a missing or malformed option: the page's mistake
  }
  if (module === "trtc") {
    if (code === 10001) return "cameraDenied";
    if (code === 10002) return "micDenied";
    if (code === -1301 || code === -1302) {
      if (failure === "insecure") return "insecure";
      if (failure === "missing") return "deviceMissing";
      return "deviceBusy";
    }
    if (code === -1307) return "lost";
  }
  if (module === "server") {
    if (code === 14000 && FULL.test(errorMsg)) return "roomFull";
    if (code === 14003) return "closed";
    if (code === 10005) return "wrongSig";
    if (code === 10000) return "network";
  }
  if (module === "http") return "network";
  return "failed";
}

/**
 * The words of screen `kind`: {kind, title, hint, action, needsSig} for `t` (i18n.js).
 *
 * `device` is "camera" or "microphone" for the device kinds; `canRenew` says the
 * page gave an onUserSigExpiredListener (so a signature refusal can be retried);
 * `phone` picks the touch-screen wording; `name` is who a call's ending is about (the
 * callee who declined, was busy or did not answer), "They" when not known.
 */
export function screenFor(kind, t, { device = "camera", canRenew = false, phone = false, name = "" } = {}) {
  if (!kind) return null;
  const deviceName = t(device === "microphone" ? "deviceMicrophone" : "deviceCamera");
  const vars = { device: deviceName, name: name || t("otherParty") };
  const hintKey = phone && t.has(`${kind}HintPhone`) ? `${kind}HintPhone` : `${kind}Hint`;
  let action = "";
  if (RETRYABLE.has(kind) || REJOIN.has(kind)) action = REJOIN.has(kind) ? "rejoin" : "retry";
  if (NEEDS_SIG.has(kind) && canRenew) action = "retry";
  return {
    kind,
    title: t(`${kind}Title`, vars),
    hint: t(hintKey, vars),
    action,
    actionLabel: action ? t(action === "rejoin" ? "rejoin" : "retry") : "",
    needsSig: NEEDS_SIG.has(kind),
    ending: ENDINGS.has(kind), // a call that ended as calls do, not something that failed
  };
}

/** Which device a device screen is about, from the error's code. */
export function deviceOf(error) {
  if (!error) return "camera";
  if (error.module === "trtc" && (error.errorCode === 10002 || error.errorCode === -1302)) {
    return "microphone";
  }
  return "camera";
}
