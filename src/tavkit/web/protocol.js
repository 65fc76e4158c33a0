// The contract's numbers the browser needs (protocol.md sections 1-2), named once.
//
// Each is a copy of a Python definition, kept identical by tests/web/test_pinned.py:
// CLOSE is tavkit.protocol.CloseCode, PRIVILEGE is tavkit.auth.Privilege (the
// privateMapKey bits, as the enter response's `privileges` carries them),
// MAX_FRAME_BYTES is tavkit.protocol.MAX_FRAME_BYTES, USER_ID the contract's
// userId pattern, STR_ROOM_ID tavkit.protocol.STR_ROOM_ID_RE, MAX_ROOM_ID
// tavkit.protocol.ROOM_ID_MAX and MEDIA_LAYERS tavkit.protocol.MEDIA_LAYERS. Change
// them there first.

/** How and why the server closes the signaling socket. */
export const CLOSE = Object.freeze({
  NORMAL: 1000, // after `leave`: the member has left
  TOO_BIG: 1009, // a frame was over MAX_FRAME_BYTES
  SERVER_ERROR: 1011, // the server lost this socket's events; resume
  SERVICE_RESTART: 1012, // the replica is draining; resume at once (on another replica)
  TRY_AGAIN_LATER: 1013, // we read too slowly; resume
  REPLACED: 4001, // the same user entered elsewhere
  REMOVED: 4002, // an admin removed the member, it timed out, or its credentials expired
  ROOM_CLOSED: 4003, // the session was closed
  UNAUTHORISED: 4401, // the token was bad, expired, or its connection has left
});

/** The privilege bits of a privateMapKey, in the vendor's bit order. */
export const PRIVILEGE = Object.freeze({
  CREATE: 1,
  ENTER: 2,
  SEND_AUDIO: 4,
  RECV_AUDIO: 8,
  SEND_VIDEO: 16,
  RECV_VIDEO: 32,
  SEND_SUB: 64,
  RECV_SUB: 128,
  ALL: 255,
  VIEWER: 2 | 8 | 32, // enter and receive, publish nothing (42)
});

/** The largest frame the server accepts on the socket (UTF-8 bytes); larger ones close it. */
export const MAX_FRAME_BYTES = 64 * 1024;

/** The layers a receiver may ask the SFU for, per video stream (`media-layers`); "paused" stops it. */
export const MEDIA_LAYERS = Object.freeze(["high", "medium", "low", "paused"]);

/** A userId: 1-64 characters of A-Z a-z 0-9 _ . @ - (no flags: safe to share). */
export const USER_ID = /^[A-Za-z0-9_.@-]{1,64}$/;

/** The largest numeric roomId (a u32 inside the privateMapKey). */
export const MAX_ROOM_ID = 4294967295;

/** A string room (TRTC's strRoomId): 1-64 letters, digits and _-+=.:@!#$%&()*;<>?[]^{}|~. */
export const STR_ROOM_ID = /^[A-Za-z0-9_\-+=.:@!#$%&()*;<>?\[\]^{}|~]{1,64}$/;

/**
 * A room's REST path below /v1: `rooms/1234` for a number, `str-rooms/<encoded>` for
 * a string room. The JS type is the room's kind, so 1234 and "1234" never meet.
 */
export function roomPath(room) {
  return typeof room === "string" ? `str-rooms/${encodeURIComponent(room)}` : `rooms/${room}`;
}

/** The room for people: 1234, or "1234" quoted when it is a string room. */
export function roomLabel(room) {
  return typeof room === "string" ? JSON.stringify(room) : String(room);
}

/** start()'s room option for `room`: a string room as strRoomId (as roomId, text of
 * digits would read as the number), a numeric room as roomId. */
export function roomOption(room) {
  return typeof room === "string" ? { strRoomId: room } : { roomId: room };
}
