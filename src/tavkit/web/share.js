// Screen share: what may be shared, and opening the screen.
//
// A shared screen replaces the camera on the video that every connection already
// sends (Mesh.setScreen, RTCRtpSender.replaceTrack): no new m-line, no renegotiation,
// and the others' tiles show it where they showed our camera. Stopping, from our
// button or from the browser's own "Stop sharing" (the track ends), puts the camera
// back the same way.
//
// Who may share: a browser with getDisplayMedia (phones have none, so the button is
// not shown there) and a member whose privileges allow sending video and the video
// sub-stream (bits 16 and 64, privileges.js). The screen rides the camera's m-line,
// so the server's SDP check sees video, not a sub-stream; the sub-stream bit is
// honoured here, by the component, as the camera's is by the server.

import { callError } from "./errors.js";
import { maySend } from "./privileges.js";

/** Whether this browser can capture a screen at all. */
export function canShareScreen() {
  return typeof globalThis.navigator?.mediaDevices?.getDisplayMedia === "function";
}

/** Whether a member with `privileges` may share its screen from this browser. */
export function mayShareScreen(privileges) {
  return canShareScreen() && maySend("video", privileges) && maySend("sub", privileges);
}

/**
 * Ask the person for a screen, window or tab; resolves to its video track, or null
 * when they cancelled the browser's picker (not an error). Other failures reject
 * with trtc -1301 (the capture could not start).
 */
export async function openScreen(lang) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({
      video: { frameRate: { ideal: 15, max: 30 } },
      audio: false,
    });
  } catch (err) {
    if (err?.name === "NotAllowedError" || err?.name === "AbortError") return null;
    throw callError("trtc", -1301, lang, `screen capture: ${err?.name || err}`);
  }
  const track = stream.getVideoTracks()[0];
  // Text and edges stay sharp; the encoder drops frames rather than resolution.
  if (track && "contentHint" in track) track.contentHint = "detail";
  return track || null;
}
