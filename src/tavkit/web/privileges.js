// What a member's privileges let it send and receive, in one place for the component.
//
// The privateMapKey's bits (PRIVILEGE in protocol.js) decide which media a member may
// publish and receive. The server reads every relayed offer and answer and refuses an
// m-line that would send without the send bit or receive without the receive bit
// (tavkit.protocol.sdp.refusal); the component sets every transceiver it owns to
// allowedDirection() so that a well-behaved member never trips that check.
// allowedDirection() is a copy of tavkit.protocol.sdp.allowed_direction, kept
// identical, value by value, by tests/web/test_pinned.py.
//
// A member object's `publish` carries the member's send bits (PUBLISH_ALL when the
// server does not say): a member who publishes nothing (an audience member) is in
// the roster but gets no tile.

import { PRIVILEGE } from "./protocol.js";

/** Media kind → [send bit, receive bit]; "sub" is a video sub-stream (screen share). */
const BITS = Object.freeze({
  audio: [PRIVILEGE.SEND_AUDIO, PRIVILEGE.RECV_AUDIO],
  video: [PRIVILEGE.SEND_VIDEO, PRIVILEGE.RECV_VIDEO],
  sub: [PRIVILEGE.SEND_SUB, PRIVILEGE.RECV_SUB],
});

/** Every send bit: what `publish` means when a member object has none (tavkit.protocol.PUBLISH_ALL). */
export const PUBLISH_ALL = PRIVILEGE.SEND_AUDIO | PRIVILEGE.SEND_VIDEO | PRIVILEGE.SEND_SUB;

/** The privileges of the enter response, or all of them when it carries none (an older server). */
export function privilegesOf(room) {
  const value = room?.privileges;
  return Number.isInteger(value) && value >= 0 ? value : PRIVILEGE.ALL;
}

/** Whether `privileges` allow sending `kind` ("audio", "video", "sub"). */
export function maySend(kind, privileges) {
  const bits = BITS[kind];
  return Boolean(bits && privileges & bits[0]);
}

/**
 * The widest transceiver direction `privileges` allow for `kind`; `sending` false
 * leaves sending out even when allowed (no track of that kind to send).
 */
export function allowedDirection(kind, privileges, sending = true) {
  const bits = BITS[kind];
  if (!bits) return sending ? "sendrecv" : "recvonly";
  const send = sending && Boolean(privileges & bits[0]);
  const receive = Boolean(privileges & bits[1]);
  if (send && receive) return "sendrecv";
  if (send) return "sendonly";
  if (receive) return "recvonly";
  return "inactive";
}

/** The send bits of a member object's `publish`: PUBLISH_ALL if absent or malformed. */
export function publishOf(member) {
  const value = member?.publish;
  return Number.isInteger(value) && value >= 0 ? value & PUBLISH_ALL : PUBLISH_ALL;
}

/** Whether send bits `publish` let a member publish anything at all (else: no tile). */
export function publishes(publish) {
  return (publish & PUBLISH_ALL) !== 0;
}
