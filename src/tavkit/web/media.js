// Opening the camera and microphone, and naming what went wrong in the seed's codes.
//
// One getUserMedia call asks for both devices (one permission prompt). When it fails,
// the browser does not say which device was the problem, so each is probed alone:
// a refused permission is trtc 10001 (camera) / 10002 (microphone) and ends the
// start; a device that cannot open is -1301 / -1302 and the call goes on with the
// device that did open, as a call with only audio is still a call.
//
// Only the kinds the member may send are asked for (the caller passes them from the
// privileges): a member who may send only audio is never asked for the camera, and
// an audience member, who may send nothing, is never asked for anything.

import { callError } from "./errors.js";

// Mesh calls encode one stream per peer, so a modest capture size keeps a 4-way call
// within a laptop's CPU; the browser scales down further under load.
const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/**
 * Why a device did not open, for the end screen (screens.js): "missing" when the
 * browser found no such device, else "busy" (NotReadableError: another app holds
 * it; or any other failure, which a retry may cure). Not part of the wire shape.
 */
function failureOf(err) {
  const name = err?.name || "";
  return name === "NotFoundError" || name === "OverconstrainedError" ? "missing" : "busy";
}

/** A device's CallError carrying its `failure` ("busy", "missing", "insecure"). */
function deviceError(code, lang, err, failure = failureOf(err)) {
  const error = callError("trtc", code, lang, describe(err));
  error.failure = failure;
  return error;
}

function denied(err) {
  return err && (err.name === "NotAllowedError" || err.name === "SecurityError");
}

// A chosen camera is asked for by its id; without one, by the side it faces.
function videoConstraints(front, deviceId = "", exact = false) {
  if (deviceId) return { ...VIDEO, deviceId: exact ? { exact: deviceId } : { ideal: deviceId } };
  return { ...VIDEO, facingMode: { ideal: front ? "user" : "environment" } };
}

function audioConstraints(deviceId = "", exact = false) {
  if (!deviceId) return AUDIO;
  return { ...AUDIO, deviceId: exact ? { exact: deviceId } : { ideal: deviceId } };
}

async function probe(constraints) {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints) };
  } catch (err) {
    return { err };
  }
}

/**
 * Open the devices of the kinds asked for (`kinds` = {audio, video}, both by default).
 *
 * Resolves to `{stream, errors, fatal, denied}`: `errors` are non-fatal device
 * failures to report, `fatal` (a CallError or null) means the call cannot start,
 * `denied` is "camera" or "microphone" when a permission was refused (the caller
 * shows the help dialog). Asked for nothing, it resolves at once to a null stream
 * without touching navigator.mediaDevices. `devices` ({camera, microphone} deviceIds,
 * devices.js) are preferred (`ideal`): one that is gone falls back to another.
 */
export async function openLocalMedia(lang = "en", front = true, kinds = {}, devices = {}) {
  const wantAudio = kinds.audio !== false;
  const wantVideo = kinds.video !== false;
  if (!wantAudio && !wantVideo) return { stream: null, errors: [], fatal: null, denied: null };
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    // Insecure origins (plain http on a non-localhost host) have no mediaDevices.
    const code = wantVideo ? -1301 : -1302;
    const err = callError("trtc", code, lang, "media devices need https or localhost");
    err.failure = "insecure";
    return { stream: null, errors: [], fatal: err, denied: null };
  }
  const videoWanted = videoConstraints(front, devices.camera);
  const audioWanted = audioConstraints(devices.microphone);
  const both = await probe({
    audio: wantAudio ? audioWanted : false,
    video: wantVideo ? videoWanted : false,
  });
  if (both.stream) return { stream: both.stream, errors: [], fatal: null, denied: null };

  // Asked for one kind, the first attempt was already that kind alone.
  const video = !wantVideo ? {} : wantAudio ? await probe({ video: videoWanted }) : both;
  const audio = !wantAudio ? {} : wantVideo ? await probe({ audio: audioWanted }) : both;
  if (wantVideo && (denied(video.err) || (denied(both.err) && !denied(audio.err)))) {
    release(video.stream, audio.stream);
    const err = callError("trtc", 10001, lang, video.err?.message || both.err?.message || "");
    return { stream: null, errors: [], fatal: err, denied: "camera" };
  }
  if (denied(audio.err)) {
    release(video.stream, audio.stream);
    return {
      stream: null,
      errors: [],
      fatal: callError("trtc", 10002, lang, audio.err.message || ""),
      denied: "microphone",
    };
  }
  const errors = [];
  if (video.err) errors.push(deviceError(-1301, lang, video.err));
  if (audio.err) errors.push(deviceError(-1302, lang, audio.err));
  const tracks = [...(video.stream?.getTracks() || []), ...(audio.stream?.getTracks() || [])];
  if (tracks.length === 0) {
    return { stream: null, errors: errors.slice(0, -1), fatal: errors.at(-1), denied: null };
  }
  return { stream: new MediaStream(tracks), errors, fatal: null, denied: null };
}

/**
 * How many cameras the browser lists (0 when it cannot say). With one, there is no
 * other camera to switch to, so the view hides Switch camera. Labels are not needed,
 * so this never prompts.
 */
export async function countCameras() {
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.filter((d) => d.kind === "videoinput").length;
  } catch {
    return 0;
  }
}

/** Open the other camera; resolves to a video track or rejects with trtc -1301. */
export async function openCamera(lang, front) {
  const result = await probe({ video: videoConstraints(front) });
  if (result.stream) return result.stream.getVideoTracks()[0];
  throw callError("trtc", denied(result.err) ? 10001 : -1301, lang, describe(result.err));
}

/**
 * Open the camera ("video") or microphone ("audio") `deviceId`, exactly that one;
 * resolves to its track or rejects with trtc 10001/-1301 (camera), 10002/-1302 (mic).
 */
export async function openDevice(kind, deviceId, lang) {
  const video = kind === "video";
  const result = await probe(
    video ? { video: videoConstraints(true, deviceId, true) } : { audio: audioConstraints(deviceId, true) },
  );
  if (result.stream) return result.stream.getTracks()[0];
  const code = denied(result.err) ? (video ? 10001 : 10002) : video ? -1301 : -1302;
  throw deviceError(code, lang, result.err);
}

function describe(err) {
  if (!err) return "";
  return err.name ? `${err.name}${err.message ? ` (${err.message})` : ""}` : String(err);
}

function release(...streams) {
  for (const stream of streams) stream?.getTracks().forEach((t) => t.stop());
}
