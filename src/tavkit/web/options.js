// Checking start(options) before anything touches the network or the devices.
//
// The seed gives each required option its own avkit code (userId 10002, sdkAppId
// 10003, userSig 10004, roomId 10005); a value of the wrong shape gets the same code
// as a missing one, because to the server it is just as absent. Checks run in code
// order, so the first problem reported is stable.

import { callError } from "./errors.js";
import { MAX_ROOM_ID, STR_ROOM_ID, USER_ID } from "./protocol.js";

const LISTENERS = [
  "onUserInfoListener",
  "onSwitchCameraListener",
  "onMutedListener",
  "onHandupListener",
  "onErrorListener",
  "onMessageListener",
  "onUserSigExpiredListener",
  "onUserConnectionListener",
];

/**
 * The room start() names, or `{why}`: `strRoomId` (TRTC's name) is always a string
 * room; `roomId` is a number, digits in a string are that number (as before string
 * rooms existed, e.g. read from a URL), and other text is a string room. So
 * `{strRoomId: "1234"}` and `{roomId: 1234}` are two different rooms, as in TRTC.
 */
export function roomOf(o) {
  const given = (v) => v != null && v !== "";
  if (given(o.strRoomId)) {
    if (given(o.roomId)) return { why: "give roomId or strRoomId, not both" };
    return stringRoom(o.strRoomId, "strRoomId");
  }
  if (typeof o.roomId === "string" && given(o.roomId) && !/^\d+$/.test(o.roomId.trim())) {
    return stringRoom(o.roomId, "roomId");
  }
  const room = positiveInteger(o.roomId, MAX_ROOM_ID);
  if (room !== null) return { room };
  return { why: given(o.roomId) ? "must be an integer 1-4294967295 or a string room" : "" };
}

function stringRoom(value, name) {
  if (typeof value === "string" && STR_ROOM_ID.test(value)) return { room: value };
  return {
    why: `${name} must be 1-64 letters, digits and _-+=.:@!#$%&()*;<>?[]^{}|~`,
  };
}

function positiveInteger(value, max) {
  const n = typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : value;
  return Number.isSafeInteger(n) && n >= 1 && n <= max ? n : null;
}

/**
 * Keep only the listener functions the caller gave, so calling one never throws a
 * TypeError for a missing or non-function entry.
 */
export function pickListener(listener) {
  const picked = {};
  if (listener && typeof listener === "object") {
    for (const name of LISTENERS) {
      if (typeof listener[name] === "function") picked[name] = listener[name].bind(listener);
    }
  }
  return picked;
}

/**
 * Validate and normalise start() options.
 *
 * Returns `{options}` with numbers as numbers, `roomId` a number or (a string room)
 * a string, and `server` as an origin without a trailing slash, or `{error}` (a CallError) for the first problem found.
 * `defaultServer` is the page's origin: the component talks to the server that
 * served it unless told otherwise.
 */
export function checkOptions(raw, defaultServer, lang = "en") {
  const o = raw && typeof raw === "object" ? raw : {};
  if (typeof o.userId !== "string" || !USER_ID.test(o.userId)) {
    const why = o.userId == null || o.userId === "" ? "" : "must be 1-64 of A-Z a-z 0-9 _ . @ -";
    return { error: callError("avkit", 10002, lang, why) };
  }
  const sdkAppId = positiveInteger(o.sdkAppId, MAX_ROOM_ID);
  if (sdkAppId === null) {
    const why = o.sdkAppId == null || o.sdkAppId === "" ? "" : "must be a positive integer";
    return { error: callError("avkit", 10003, lang, why) };
  }
  if (typeof o.userSig !== "string" || o.userSig.trim() === "") {
    return { error: callError("avkit", 10004, lang) };
  }
  const { room: roomId, why: roomWhy } = roomOf(o);
  if (roomId === undefined) return { error: callError("avkit", 10005, lang, roomWhy) };
  if (o.privateMapKey != null && typeof o.privateMapKey !== "string") {
    return { error: callError("avkit", 82, lang, "privateMapKey must be a string") };
  }
  let server = defaultServer;
  if (o.server != null && o.server !== "") {
    let url = null;
    try {
      url = new URL(String(o.server));
    } catch {
      url = null;
    }
    if (!url || !["http:", "https:"].includes(url.protocol)) {
      return { error: callError("avkit", 82, lang, "server must be an http(s) URL") };
    }
    server = url.href.replace(/\/+$/, "");
  }
  return {
    options: {
      sdkAppId,
      userId: o.userId,
      userSig: o.userSig.trim(),
      roomId,
      privateMapKey: o.privateMapKey ? o.privateMapKey.trim() : "",
      server,
      // true, false, or null: the default (end a call that never had more than two).
      endOnPeerLeave: o.endOnPeerLeave == null ? null : Boolean(o.endOnPeerLeave),
    },
  };
}
