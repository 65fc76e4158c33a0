// The in-call devices menu: change camera, microphone or speaker without leaving.
//
// A small panel above the controls (a sheet at the bottom on a phone). Picking a
// camera or microphone asks the controller to switch (replaceTrack on every
// connection, no new offer); picking a speaker is the view's (setSinkId on the
// others' videos). The lists follow `devicechange`: a headset plugged in mid-call
// appears at once.

import { canChooseSpeaker, deviceOf, fillSelect, listDevices } from "./devices.js";

const KINDS = [
  ["camera", "pickCamera", "deviceCameraN"],
  ["microphone", "pickMicrophone", "deviceMicrophoneN"],
  ["speaker", "pickSpeaker", "deviceSpeakerN"],
];

/** The menu inside `box`; `speaker()` / `setSpeaker(id)` are the view's output choice. */
export class DeviceMenu {
  #box;
  #controller;
  #t;
  #speaker;
  #setSpeaker;
  #devices = { camera: [], microphone: [], speaker: [] };
  #onDeviceChange = () => this.refresh();

  constructor(box, { controller, t, speaker, setSpeaker }) {
    this.#box = box;
    this.#controller = controller;
    this.#t = t;
    this.#speaker = speaker;
    this.#setSpeaker = setSpeaker;
    box.innerHTML =
      '<h2 class="tv-menu-title"></h2>' +
      KINDS.map(
        ([kind]) =>
          `<label class="tv-menu-row" data-kind="${kind}"><span class="tv-menu-label"></span>` +
          "<select></select></label>",
      ).join("");
    for (const row of box.querySelectorAll(".tv-menu-row")) {
      row.querySelector("select").addEventListener("change", (e) => this.#pick(row.dataset.kind, e.target.value));
    }
    navigator.mediaDevices?.addEventListener?.("devicechange", this.#onDeviceChange);
  }

  /** Whether the menu is showing. */
  get open() {
    return !this.#box.hidden;
  }

  /** Show or hide the menu; showing lists the devices afresh. */
  toggle(open = !this.open) {
    this.#box.hidden = !open;
    if (open) this.refresh();
  }

  /** Re-read the browser's devices, then repaint. */
  async refresh() {
    this.#devices = await listDevices();
    this.render(this.#t);
  }

  /** Paint the words and the lists (after a change of language, device or call state). */
  render(t) {
    this.#t = t;
    const c = this.#controller;
    this.#box.querySelector(".tv-menu-title").textContent = t("devicesTitle");
    const current = {
      camera: deviceOf(c.localStream?.getVideoTracks()[0]),
      microphone: deviceOf(c.localStream?.getAudioTracks()[0]),
      speaker: this.#speaker(),
    };
    const has = {
      camera: Boolean(current.camera) && c.maySend("video"),
      microphone: Boolean(current.microphone) && c.maySend("audio"),
      speaker: canChooseSpeaker(),
    };
    for (const [kind, label, unnamed] of KINDS) {
      const row = this.#box.querySelector(`[data-kind="${kind}"]`);
      row.hidden = !has[kind] || this.#devices[kind].length === 0;
      row.querySelector(".tv-menu-label").textContent = t(label);
      const select = row.querySelector("select");
      fillSelect(select, this.#devices[kind], current[kind], (n) => t(unnamed, { n }));
    }
  }

  /** Stop following the devices (the element is going away). */
  close() {
    navigator.mediaDevices?.removeEventListener?.("devicechange", this.#onDeviceChange);
  }

  async #pick(kind, deviceId) {
    if (kind === "speaker") this.#setSpeaker(deviceId);
    else await this.#controller.useDevice(kind === "camera" ? "video" : "audio", deviceId);
    this.render(this.#t);
  }
}
