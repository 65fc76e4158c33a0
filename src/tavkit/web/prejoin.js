// The pre-join check: see and hear yourself before entering, as Meet's green room.
//
// start() with `prejoin` shows it first (tavkit-call.js): the camera's preview, a
// live microphone level, camera / microphone / speaker pickers and microphone and
// camera toggles, then Join. Nothing touches the room before Join, so a refused
// signature is still the end screen's business, after it. The stream it opened is
// handed to the call as is (no second prompt, the same devices), with the toggles'
// state; the pickers' choice is remembered (devices.js), and the speaker is the
// view's to apply.
//
// When the devices cannot be opened at all (refused, missing), the check steps
// aside and the call starts without it, so the end screen and the permission dialog
// explain, as they do without a check.

import { canChooseSpeaker, deviceOf, fillSelect, levelMeter, listDevices, recall, remember } from "./devices.js";
import { fitFor } from "./fit.js";
import { icons } from "./icons.js";
import { openLocalMedia } from "./media.js";

const speakerIcon = icons.volume;

const TEMPLATE = `
<div class="tv-pj-main">
  <div class="tv-pj-preview">
    <video class="tv-pj-video" playsinline autoplay muted></video>
    <div class="tv-pj-off" hidden><span class="tv-pj-off-text"></span></div>
    <div class="tv-pj-level" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">
      <i></i><i></i><i></i>
    </div>
    <div class="tv-pj-toggles">
      <button class="tv-pj-toggle" type="button" data-pj="mic"></button>
      <button class="tv-pj-toggle" type="button" data-pj="camera"></button>
    </div>
  </div>
  <div class="tv-pj-devices">
    <label class="tv-pj-device" data-kind="microphone"><span class="tv-pj-device-icon">${icons.mic}</span>
      <select></select></label>
    <label class="tv-pj-device" data-kind="speaker"><span class="tv-pj-device-icon">${speakerIcon}</span>
      <select></select></label>
    <label class="tv-pj-device" data-kind="camera"><span class="tv-pj-device-icon">${icons.camera}</span>
      <select></select></label>
  </div>
</div>
<div class="tv-pj-side">
  <h2 class="tv-pj-title"></h2>
  <p class="tv-pj-room"></p>
  <button class="tv-pj-join" type="button"></button>
</div>`;

/** The pre-join screen inside `box` (an element of the call's shadow root). */
export class Prejoin {
  #box;
  #t;
  #stream = null;
  #stopMeter = () => {};
  #resolve = null;
  #choice = { camera: "", microphone: "", speaker: "" };
  #micOn = true;
  #cameraOn = true;
  #onDeviceChange = () => this.#refresh();

  /** `t` is the translator (i18n.js). */
  constructor(box, t) {
    this.#box = box;
    this.#t = t;
  }

  /** Whether the check is on screen. */
  get open() {
    return Boolean(this.#resolve);
  }

  /**
   * Show the check for `room` (its label); resolves to {stream, muted, camera,
   * speaker} on Join, to null when the devices could not be opened (start without
   * the check), or to false when cancel() closed it.
   */
  async run(room, lang) {
    this.cancel();
    this.#choice = recall();
    const media = await openLocalMedia(lang, true, {}, this.#choice);
    if (media.fatal) {
      media.stream?.getTracks().forEach((t) => t.stop());
      return null;
    }
    this.#stream = media.stream;
    this.#micOn = Boolean(this.#stream?.getAudioTracks().length);
    this.#cameraOn = Boolean(this.#stream?.getVideoTracks().length);
    const done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#build(room);
    this.#box.hidden = false;
    const video = this.#box.querySelector(".tv-pj-video");
    video.addEventListener("resize", () => this.#fit());
    video.srcObject = this.#stream;
    video.play().catch(() => {});
    this.#meter();
    navigator.mediaDevices.addEventListener?.("devicechange", this.#onDeviceChange);
    await this.#refresh();
    // A keyboard can press Enter at once; a touch screen would only show a focus ring.
    if (globalThis.matchMedia?.("(pointer: fine)").matches) {
      this.#box.querySelector(".tv-pj-join").focus({ preventScroll: true });
    }
    return done;
  }

  /** Close the check without joining; its devices are released. */
  cancel() {
    if (!this.#resolve) return;
    this.#stream?.getTracks().forEach((t) => t.stop());
    this.#finish(false);
  }

  /** Re-translate the words (the element's lang changed). */
  translate(t) {
    this.#t = t;
    if (this.open) this.#paint();
  }

  #finish(result) {
    const resolve = this.#resolve;
    this.#resolve = null;
    this.#stopMeter();
    this.#stopMeter = () => {};
    navigator.mediaDevices.removeEventListener?.("devicechange", this.#onDeviceChange);
    this.#box.querySelector(".tv-pj-video").srcObject = null;
    this.#box.hidden = true;
    this.#stream = null;
    resolve?.(result);
  }

  /**
   * The preview takes the picture's shape where it can (a phone's upright camera is
   * tall) and, where its box is bounded, fit.js's rule: no face cut off.
   */
  #fit() {
    const video = this.#box.querySelector(".tv-pj-video");
    const preview = this.#box.querySelector(".tv-pj-preview");
    if (!video.videoWidth) return;
    preview.style.setProperty("--tv-pj-aspect", `${video.videoWidth} / ${video.videoHeight}`);
    requestAnimationFrame(() => {
      video.dataset.fit = fitFor(video.videoWidth, video.videoHeight, preview.clientWidth, preview.clientHeight);
    });
  }

  #build(room) {
    this.#box.innerHTML = TEMPLATE;
    this.#box.dataset.room = room;
    this.#box.querySelector(".tv-pj-join").addEventListener("click", () => this.#join());
    this.#box.querySelector('[data-pj="mic"]').addEventListener("click", () => {
      this.#micOn = !this.#micOn;
      this.#applyToggles();
    });
    this.#box.querySelector('[data-pj="camera"]').addEventListener("click", () => {
      this.#cameraOn = !this.#cameraOn;
      this.#applyToggles();
    });
    for (const label of this.#box.querySelectorAll(".tv-pj-device")) {
      const kind = label.dataset.kind;
      label.querySelector("select").addEventListener("change", (e) => this.#pick(kind, e.target.value));
    }
    this.#applyToggles();
  }

  #join() {
    const stream = this.#stream;
    remember(this.#choice);
    this.#finish({
      stream,
      muted: !this.#micOn,
      camera: this.#cameraOn,
      speaker: this.#choice.speaker,
    });
  }

  /** Open the picked camera or microphone in place of the previewed one. */
  async #pick(kind, deviceId) {
    this.#choice[kind] = deviceId;
    if (kind === "speaker") {
      this.#box.querySelector(".tv-pj-video").dataset.speaker = deviceId;
      return;
    }
    const trackKind = kind === "camera" ? "video" : "audio";
    const old = this.#stream?.getTracks().find((t) => t.kind === trackKind);
    if (deviceOf(old) === deviceId) return;
    old?.stop(); // a phone opens one camera at a time
    let stream;
    try {
      const constraints = { [trackKind]: { deviceId: { exact: deviceId } } };
      stream = await navigator.mediaDevices.getUserMedia(constraints);
    } catch {
      stream = null; // that device failed: the toggle shows it off
    }
    if (!this.#resolve) {
      stream?.getTracks().forEach((t) => t.stop());
      return;
    }
    if (!this.#stream) this.#stream = new MediaStream();
    if (old) this.#stream.removeTrack(old);
    const track = stream?.getTracks()[0];
    if (track) this.#stream.addTrack(track);
    // A device that failed reads as off; one that opened where none was reads as on.
    const on = (was) => (track ? was || !old : false);
    if (trackKind === "video") this.#cameraOn = on(this.#cameraOn);
    else this.#micOn = on(this.#micOn);
    this.#box.querySelector(".tv-pj-video").srcObject = this.#stream;
    if (trackKind === "audio") this.#meter();
    this.#applyToggles();
  }

  #meter() {
    this.#stopMeter();
    const meter = this.#box.querySelector(".tv-pj-level");
    this.#stopMeter = levelMeter(this.#stream, (level) => {
      const percent = Math.round(level * 100);
      meter.setAttribute("aria-valuenow", String(percent));
      meter.style.setProperty("--tv-level", String(level));
    });
  }

  /** The toggles' state onto the tracks (a track off is disabled, so it can come back). */
  #applyToggles() {
    for (const track of this.#stream?.getAudioTracks() || []) track.enabled = this.#micOn;
    for (const track of this.#stream?.getVideoTracks() || []) track.enabled = this.#cameraOn;
    this.#paint();
  }

  async #refresh() {
    const devices = await listDevices();
    if (!this.#resolve) return;
    // What is open now is what is chosen (a remembered device may have been missing).
    const video = this.#stream?.getVideoTracks()[0];
    const audio = this.#stream?.getAudioTracks()[0];
    if (video) this.#choice.camera = deviceOf(video);
    if (audio) this.#choice.microphone = deviceOf(audio);
    const t = this.#t;
    const unnamed = {
      camera: (n) => t("deviceCameraN", { n }),
      microphone: (n) => t("deviceMicrophoneN", { n }),
      speaker: (n) => t("deviceSpeakerN", { n }),
    };
    for (const label of this.#box.querySelectorAll(".tv-pj-device")) {
      const kind = label.dataset.kind;
      label.hidden = devices[kind].length === 0 || (kind === "speaker" && !canChooseSpeaker());
      fillSelect(label.querySelector("select"), devices[kind], this.#choice[kind], unnamed[kind]);
    }
  }

  #paint() {
    const t = this.#t;
    const box = this.#box;
    const hasVideo = Boolean(this.#stream?.getVideoTracks().length);
    const hasAudio = Boolean(this.#stream?.getAudioTracks().length);
    box.querySelector(".tv-pj-title").textContent = t("prejoinTitle");
    box.querySelector(".tv-pj-room").textContent = box.dataset.room || "";
    box.querySelector(".tv-pj-join").textContent = t("prejoinJoin");
    const off = box.querySelector(".tv-pj-off");
    off.hidden = this.#cameraOn && hasVideo;
    box.querySelector(".tv-pj-off-text").textContent = t(hasVideo ? "prejoinCameraOff" : "prejoinNoCamera");
    box.querySelector(".tv-pj-level").hidden = !this.#micOn || !hasAudio;
    box.querySelector(".tv-pj-level").setAttribute("aria-label", t("micLevel"));
    const toggle = (name, on, has, onIcon, offIcon, onAria, offAria) => {
      const button = box.querySelector(`[data-pj="${name}"]`);
      button.innerHTML = on ? onIcon : offIcon;
      button.toggleAttribute("data-off", !on);
      button.disabled = !has;
      button.setAttribute("aria-label", t(on ? onAria : offAria));
      button.title = t(on ? onAria : offAria);
    };
    toggle("mic", this.#micOn, hasAudio, icons.mic, icons.micOff, "muteAria", "unmuteAria");
    toggle("camera", this.#cameraOn, hasVideo, icons.camera, icons.cameraOff, "cameraAria", "startVideoAria");
    for (const label of box.querySelectorAll(".tv-pj-device")) {
      const name = { camera: "pickCamera", microphone: "pickMicrophone", speaker: "pickSpeaker" }[label.dataset.kind];
      label.querySelector("select").setAttribute("aria-label", t(name));
      label.title = t(name);
    }
  }
}
