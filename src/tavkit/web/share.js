// Screen share: what may be shared, and opening the screen.
//
// A shared screen goes out beside the camera, not in its place: a second video
// m-line on every connection, marked `a=content:slides` in the SDP (mesh.js,
// slides.js), which adding and stopping renegotiate. The others see it as a large
// tile of its own with the sharer's camera small beside it (screen-tiles.js, layout
// "share"); our own share shows as a local preview the same way. Stopping, from our
// button or from the browser's own "Stop sharing" (the track ends), sets that m-line
// inactive and the layout returns.
//
// Who may share: a browser with getDisplayMedia (phones have none, so the button is
// not shown there) and a member whose privileges allow sending the video sub-stream
// (bit 64, privileges.js). The server checks it on every relayed SDP: a slides
// section needs bit 64 to send and 128 to receive (tavkit.protocol.sdp); a member
// without 128 answers the screen's m-line inactive and never receives it.

import { callError } from "./errors.js";
import { maySend } from "./privileges.js";

/** Whether this browser can capture a screen at all. */
export function canShareScreen() {
  return typeof globalThis.navigator?.mediaDevices?.getDisplayMedia === "function";
}

/** Whether a member with `privileges` may share its screen from this browser. */
export function mayShareScreen(privileges) {
  return canShareScreen() && maySend("sub", privileges);
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
