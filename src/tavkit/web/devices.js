// Cameras, microphones and speakers: which there are, which one is chosen, how loud.
//
// The choice is remembered per origin (localStorage), so the next call, with or
// without the pre-join check, opens the same devices; a remembered device that is
// gone is asked for as `ideal`, so the browser falls back to another one instead of
// failing. A choice made in the call (the devices menu) is `exact`: the person asked
// for that device, and a failure to open it is reported and leaves the old one on.
//
// Speakers can be chosen only where media elements have setSinkId (Chromium,
// Firefox 116+); elsewhere the speaker picker is not shown at all.
//
// The level meter reads the microphone through an AnalyserNode every 100 ms (a
// timer, not requestAnimationFrame, which a hidden or headless page runs rarely).

const STORE_KEY = "tavkit:devices";
const KINDS = { camera: "videoinput", microphone: "audioinput", speaker: "audiooutput" };

/** Whether this browser can send a call's sound to a chosen output device. */
export function canChooseSpeaker() {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

/**
 * The devices the browser lists: {camera, microphone, speaker}, each a list of
 * {deviceId, label}. Labels are empty until the page may use a device (the view
 * numbers them then); speakers are listed only where they can be chosen.
 */
export async function listDevices() {
  const out = { camera: [], microphone: [], speaker: [] };
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return out;
  }
  for (const [name, kind] of Object.entries(KINDS)) {
    if (name === "speaker" && !canChooseSpeaker()) continue;
    // Chromium lists a "default" alias besides the device it stands for; keep it
    // only when it is the sole entry (its label then names the real device).
    const all = devices.filter((d) => d.kind === kind && d.deviceId);
    const real = all.filter((d) => d.deviceId !== "default" && d.deviceId !== "communications");
    out[name] = (real.length ? real : all).map((d) => ({ deviceId: d.deviceId, label: d.label }));
  }
  return out;
}

/** The remembered choice: {camera, microphone, speaker} deviceIds ("" = the browser's). */
export function recall() {
  try {
    const saved = JSON.parse(globalThis.localStorage?.getItem(STORE_KEY) || "{}");
    const pick = (v) => (typeof v === "string" ? v : "");
    return { camera: pick(saved.camera), microphone: pick(saved.microphone), speaker: pick(saved.speaker) };
  } catch {
    return { camera: "", microphone: "", speaker: "" };
  }
}

/** Remember part of the choice, e.g. remember({camera: id}). */
export function remember(choice) {
  try {
    globalThis.localStorage?.setItem(STORE_KEY, JSON.stringify({ ...recall(), ...choice }));
  } catch {
    // Storage may be off (private mode, a sandboxed frame): the choice lasts this call.
  }
}

/** Play `video`'s sound on output `deviceId` ("" = the browser's), where that can be chosen. */
export function applySpeaker(video, deviceId) {
  if (!video || !canChooseSpeaker() || (video.sinkId || "") === (deviceId || "")) return;
  video.setSinkId(deviceId || "").catch(() => {}); // a device gone since: the default plays
}

/** The deviceId a live track came from ("" when the browser does not say). */
export function deviceOf(track) {
  return track?.getSettings?.().deviceId || "";
}

/**
 * Fill a <select> with `devices` ({deviceId, label}), `current` selected. Unnamed
 * devices are numbered with `unnamed(n)`. Rewrites only when the list changed, so an
 * open picker is not reset by a devicechange that changed nothing.
 */
export function fillSelect(select, devices, current, unnamed) {
  const key = JSON.stringify(devices);
  if (select.dataset.list !== key) {
    select.dataset.list = key;
    select.replaceChildren(
      ...devices.map((d, i) => {
        const option = document.createElement("option");
        option.value = d.deviceId;
        option.textContent = d.label || unnamed(i + 1);
        return option;
      }),
    );
  }
  if (current && devices.some((d) => d.deviceId === current)) select.value = current;
  select.disabled = devices.length < 2;
}

/**
 * Measure the loudness of `stream`'s microphone; `onLevel(level)` hears a value from
 * 0 (silence, or no microphone) to 1 (-6 dBFS and louder) ten times a second.
 * Returns a function that stops it and releases the audio graph (not the track).
 */
export function levelMeter(stream, onLevel) {
  const track = stream?.getAudioTracks()[0];
  const Context = globalThis.AudioContext || globalThis.webkitAudioContext;
  if (!track || !Context) {
    onLevel(0);
    return () => {};
  }
  const ctx = new Context();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  // A context made before any click starts suspended; the page's first tap resumes it.
  const resume = () => ctx.state === "suspended" && ctx.resume().catch(() => {});
  resume();
  globalThis.addEventListener("pointerdown", resume, { once: true });
  const timer = setInterval(() => {
    if (track.readyState !== "live" || !track.enabled) return onLevel(0);
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    onLevel(Math.max(0, Math.min(1, (db + 60) / 54))); // -60 dBFS → 0, -6 dBFS → 1
  }, 100);
  return () => {
    clearInterval(timer);
    globalThis.removeEventListener("pointerdown", resume);
    source.disconnect();
    ctx.close().catch(() => {});
  };
}
