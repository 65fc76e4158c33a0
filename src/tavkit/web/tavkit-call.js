// <tavkit-call>: the seed's tavkit-component as a custom element.
//
// A thin view over CallController (controller.js), which owns the call. This file
// renders the controller's state into an open shadow root (so pages and tests can
// reach the <video data-user-id> elements), turns clicks into controller calls,
// and re-dispatches the controller's events as bubbling, composed CustomEvents.
// The chat panel shows the text messages the controller delivered (chat-panel.js
// builds the list).
//
// A call that could not start or has ended shows its end screen (screens.js): what
// happened, what to do, and a Try again / Rejoin button where that can help; the
// words fit a touch screen or a desktop. Brief notices ("X left the call") show
// above the controls for a few seconds without blocking anything.
//
// With the `prejoin` attribute or start({prejoin: true}) a pre-join check comes
// first (prejoin.js); its devices and toggles carry into the call. In the call a
// devices menu (device-menu.js) switches camera, microphone and speaker, and Share
// (share.js) sends the screen beside the camera; every shared screen, ours too, is a
// large tile of its own with the cameras small beside it (screen-tiles.js).
//
// Tiles are for members who publish: none for us when our privileges let us send
// nothing, none for a remote member whose `publish` bits are 0 (an audience member,
// still counted among the participants). The microphone and camera buttons are
// hidden for a kind we may not send.

import { CallFlow } from "./callflow.js";
import { CALL_SCREEN } from "./callscreen.js";
import { CallController } from "./controller.js";
import { pickLang, translator } from "./i18n.js";
import { MessageList, swipeToClose } from "./chat-panel.js";
import { icons } from "./icons.js";
import { fitFor, tileAspect } from "./fit.js";
import { roomLabel } from "./protocol.js";
import { roomOf } from "./options.js";
import { gridShape, layoutFor, makeDraggable } from "./layout.js";
import { askForCredentials } from "./renewal.js";
import { classify, deviceOf, screenFor } from "./screens.js";
import { createTile, updateTile } from "./tiles.js";
import { addTileActions, updateTileActions } from "./tile-actions.js";
import { ScreenTiles } from "./screen-tiles.js";
import { DeviceMenu } from "./device-menu.js";
import { applySpeaker, recall, remember } from "./devices.js";
import { Prejoin } from "./prejoin.js";

const STYLESHEET = new URL("./tavkit.css", import.meta.url).href;
const DEVICES_STYLESHEET = new URL("./devices.css", import.meta.url).href;
const TILE_ACTIONS_STYLESHEET = new URL("./tile-actions.css", import.meta.url).href;
const SCREENS_STYLESHEET = new URL("./screen-tiles.css", import.meta.url).href;
const NOTICE_MS = 4000; // how long a notice stays up
const STATUS_TEXT = {
  idle: "idle",
  entering: "entering",
  connecting: "connecting",
  waiting: "waiting",
  reconnecting: "reconnecting",
  ended: "ended",
};

const TEMPLATE = `
<link rel="stylesheet" href="${STYLESHEET}">
<link rel="stylesheet" href="${DEVICES_STYLESHEET}">
<link rel="stylesheet" href="${TILE_ACTIONS_STYLESHEET}">
<link rel="stylesheet" href="${SCREENS_STYLESHEET}">
<div class="tv-call" part="call" data-state="idle" data-layout="solo">
  <header class="tv-topbar" part="topbar">
    <span class="tv-room"></span>
    <span class="tv-dot" aria-hidden="true"></span>
    <span class="tv-timer" aria-live="off"></span>
    <span class="tv-count"></span>
  </header>
  <div class="tv-stage" part="stage"></div>
  <div class="tv-status" part="status" role="status" aria-live="polite">
    <span class="tv-status-icon"></span><span class="tv-spinner"></span>
    <span class="tv-status-text"></span>
    <p class="tv-status-hint" hidden></p>
    <button class="tv-rejoin" type="button" hidden></button>
  </div>
  <div class="tv-notice" part="notice" role="status" aria-live="polite" hidden></div>
  <button class="tv-sound" type="button" hidden></button>
  <div class="tv-controls" part="controls" role="toolbar">
    <button class="tv-control" type="button" data-action="mute"></button>
    <button class="tv-control" type="button" data-action="camera"></button>
    <button class="tv-control" type="button" data-action="switch-camera"></button>
    <button class="tv-control" type="button" data-action="share" hidden></button>
    <button class="tv-control" type="button" data-action="devices" aria-expanded="false"></button>
    <button class="tv-control" type="button" data-action="chat" aria-pressed="false"></button>
    <button class="tv-control tv-control-danger" type="button" data-action="hangup"></button>
  </div>
  <aside class="tv-chat" part="chat" hidden>
    <header class="tv-chat-head">
      <span class="tv-chat-grip" aria-hidden="true"></span>
      <h2 class="tv-chat-title"></h2>
      <button class="tv-chat-close" type="button"></button>
    </header>
    <ol class="tv-chat-list" role="log" aria-live="polite"></ol>
    <p class="tv-chat-empty"></p>
    <p class="tv-chat-error" role="alert" hidden></p>
    <form class="tv-chat-form">
      <input class="tv-chat-input" type="text" autocomplete="off" enterkeyhint="send">
      <button class="tv-chat-send" type="submit"></button>
    </form>
  </aside>
  <div class="tv-menu" part="devices" role="group" hidden></div>
  <section class="tv-prejoin" part="prejoin" hidden></section>
  <tavkit-dialog></tavkit-dialog>
  ${CALL_SCREEN}
</div>`;
/** The call element: start(options), hangup(), mute(b), enableCamera(b), switchCamera(). */
export class TavkitCall extends HTMLElement {
  static observedAttributes = ["lang"];

  #controller = null;
  #lastOptions = null;
  #corner = "tr";
  #painted = new WeakMap(); // element → the markup last written, to skip identical rewrites
  #renderQueued = false;
  #undrag = null;
  #clock = null;
  #resize = null;
  #messages = null; // the chat panel's MessageList
  #onPageHide = () => this.#controller.unload();
  #screen = null; // the end screen on show (screens.js), or null
  #noticeTimer = null;
  #flow = null; // rung calls: call(), listen(), their screens and ring (callflow.js)
  #prejoin = null; // the pre-join check (prejoin.js)
  #menu = null; // the devices menu (device-menu.js)
  #speaker = recall().speaker; // the chosen output device ("" = the browser's)
  #screenStream = null; // our shared screen as a stream for its preview tile
  #screens = new ScreenTiles({ play: (video) => this.#play(video, true), onResize: () => this.#fitGrid() });

  constructor() {
    super();
    this.#controller = new CallController({
      server: globalThis.location?.origin || "",
      lang: this.#lang(),
      emit: (name, detail) =>
        this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true })),
      log: (...args) => {
        if (globalThis.localStorage?.getItem("tavkit:debug")) console.debug("tavkit", ...args);
      },
    });
    this.#controller.viewOf = (userId) => this.#tileView(userId);
    this.#controller.addEventListener("change", () => this.#scheduleRender());
    this.#controller.addEventListener("permission", (e) => this.#permissionHelp(e.detail));
    this.#controller.addEventListener("notice", (e) => this.#showNotice(e.detail));
    this.#flow = new CallFlow({
      controller: this.#controller,
      start: (options) => this.start(options),
      translator: () => translator(this.#lang()),
      dispatch: (detail) =>
        this.dispatchEvent(new CustomEvent("tavkit-call", { detail, bubbles: true, composed: true })),
    });
  }

  connectedCallback() {
    if (!this.shadowRoot) {
      this.attachShadow({ mode: "open" }).innerHTML = TEMPLATE;
      this.shadowRoot.querySelector(".tv-controls").addEventListener("click", (e) => {
        const button = e.target.closest("button[data-action]");
        if (button) this.#action(button.dataset.action);
      });
      this.shadowRoot.querySelector(".tv-sound").addEventListener("click", () => this.#unmuteAll());
      this.shadowRoot.querySelector(".tv-rejoin").addEventListener("click", () => this.#retry());
      this.#flow.attach(this.shadowRoot.querySelector(".tv-callscreen"));
      this.#messages = new MessageList(this.shadowRoot.querySelector(".tv-chat-list"));
      const t = translator(this.#lang());
      this.#prejoin = new Prejoin(this.shadowRoot.querySelector(".tv-prejoin"), t);
      this.#menu = new DeviceMenu(this.shadowRoot.querySelector(".tv-menu"), {
        controller: this.#controller,
        t,
        speaker: () => this.#speaker,
        setSpeaker: (id) => this.#setSpeaker(id),
      });
      this.#wireMenu(this.shadowRoot);
      this.#wireChat(this.shadowRoot);
      this.#resize = new ResizeObserver(() => this.#fitGrid());
    }
    this.#resize.observe(this);
    // The stage also shrinks without the element doing so (the chat sheet opens).
    this.#resize.observe(this.shadowRoot.querySelector(".tv-stage"), { box: "border-box" });
    globalThis.addEventListener("pagehide", this.#onPageHide);
    this.#render();
  }

  disconnectedCallback() {
    this.#resize?.disconnect();
    globalThis.removeEventListener("pagehide", this.#onPageHide);
    // Moving the element fires disconnect then connect; only a real removal ends the call.
    queueMicrotask(() => {
      if (this.isConnected) return;
      this.#flow.ringer.stop();
      this.#controller.unload();
    });
  }

  attributeChangedCallback() {
    this.#controller.lang = this.#lang();
    this.#prejoin?.translate(translator(this.#lang()));
    if (this.shadowRoot) this.#render();
  }

  /**
   * Enter the room and start the call (the seed's start); see controller.js. With
   * `prejoin: true` (or the `prejoin` attribute) the pre-join check comes first and
   * this resolves once the call started after Join (false if hangup() closed the check).
   */
  start(options) {
    return this.#begin(options, options?.prejoin ?? this.hasAttribute("prejoin"));
  }

  async #begin(options, check) {
    this.#lastOptions = options;
    this.#controller.lang = this.#lang();
    if (!check || this.#controller.active || !this.#prejoin) return this.#controller.start(options);
    const t = translator(this.#lang());
    const { room } = roomOf(options || {});
    this.#prejoin.translate(t);
    const prepared = await this.#prejoin.run(room == null ? "" : t("room", { room: roomLabel(room) }), this.#lang());
    if (prepared === false) return false; // closed by hangup()
    if (prepared) this.#setSpeaker(prepared.speaker);
    return this.#controller.start(options, prepared);
  }

  /**
   * Ring `callees` and wait for them in the call's room, behind the "calling…" screen
   * (its Cancel cancels). `options` are start()'s without a room, plus callees, media and
   * optionally the room (roomId or strRoomId, as start() takes them), timeout, data; the
   * listener's onCallListener(event) hears each change. Resolves to the call.
   */
  call(options) {
    return this.#flow.call(options);
  }

  /**
   * Wait for calls to this user: each shows the incoming screen (the caller's name and
   * avatar from onUserInfoListener, Accept, Decline) and rings; Accept enters the call's
   * room with these `options` (start()'s, no roomId).
   */
  listen(options) {
    return this.#flow.listen(options);
  }

  /** The ring of incoming calls: a URL the page serves, or null for the default (TUICallKit's name). */
  setCallingBell(url) {
    this.#flow.ringer.setBell(url || "");
  }

  /** Silence (true) or allow (false) the ring and the ringback tone (TUICallKit's name). */
  enableMuteMode(enable) {
    this.#flow.ringer.setMuted(enable);
  }

  /** What rings now: "incoming", "outgoing" or "" (whether it is audible: ringAudible). */
  get ringing() {
    return this.#flow.ringer.kind || "";
  }

  /** Whether the ring can be heard now (browsers hold sound back until the page is used). */
  get ringAudible() {
    return this.#flow.ringer.audible;
  }

  /** Leave the call (no confirmation: the confirmation is for the button). */
  hangup() {
    this.#prejoin?.cancel();
    this.#flow.hangup(); // the caller's hang-up ends (or cancels) the call for everyone
    return this.#controller.hangup();
  }

  /** Mute (true) or unmute (false) the microphone. */
  mute(muted) {
    this.#controller.mute(muted);
  }

  /** Turn the camera on (true) or off (false). */
  enableCamera(enabled) {
    this.#controller.enableCamera(enabled);
  }

  /** Switch between the front and back camera. */
  switchCamera() {
    return this.#controller.switchCamera();
  }

  /** Use camera ("video") or microphone ("audio") `deviceId`; resolves to whether it switched. */
  useDevice(kind, deviceId) {
    return this.#controller.useDevice(kind, deviceId);
  }

  /** Share a screen beside the camera (the browser asks which); resolves to whether it is shared. */
  startShare() {
    return this.#controller.startShare();
  }

  /** Stop sharing the screen; its tile goes and the layout returns. */
  stopShare() {
    return this.#controller.stopShare();
  }

  /** Send a text message; resolves with the stored message, rejects with {module, errorCode, errorMsg}. */
  sendMessage(text) {
    return this.#controller.sendMessage(text);
  }

  /** Send a custom message (any JSON value) to every member; not shown in the chat panel. */
  sendCustomMessage(data) {
    return this.#controller.sendCustomMessage(data);
  }

  /** userId → RTCPeerConnection of the current call (for tests and diagnostics). */
  peerConnections() {
    return this.#controller.peerConnections();
  }

  /**
   * In an SFU room, {publish, subscribe, subscription, streams, layers}: our two
   * connections, who is on which mid and the layers asked (sfu.js); else null. For
   * tests and diagnostics.
   */
  sfuMedia() {
    return this.#controller.mesh?.snapshot?.() || null;
  }

  /**
   * Where each join's time went: userId → {userId, phases: [[phase, ms], ...]}, ms
   * after start(), in time order (timeline.js lists the phases).
   */
  joinTimeline() {
    return this.#controller.joinTimeline();
  }

  /** The call's state: idle, entering, connecting, waiting, in-call, reconnecting, ended. */
  get state() {
    return this.#controller.state;
  }

  /** Whether our microphone is muted. */
  get muted() {
    return this.#controller.self.muted;
  }

  /** Whether our camera is on. */
  get cameraEnabled() {
    return this.#controller.self.camera;
  }

  /** The local camera/microphone stream, or null. */
  get localStream() {
    return this.#controller.localStream;
  }

  #lang() {
    return pickLang(this.getAttribute("lang"));
  }

  async #action(action) {
    const c = this.#controller;
    if (action === "mute") c.mute(!c.self.muted);
    else if (action === "camera") c.enableCamera(!c.self.camera);
    else if (action === "switch-camera") await c.switchCamera();
    else if (action === "chat") this.#toggleChat(!c.chatOpen);
    else if (action === "devices") this.#menu.toggle();
    else if (action === "share") {
      if (c.screen) await c.stopShare();
      else if (await c.startShare()) this.#showNotice({ key: "sharing", vars: {} });
    }
    else if (action === "hangup") {
      const t = translator(this.#lang());
      const answer = await this.#dialog().show({
        kind: "confirm-hangup",
        title: t("confirmTitle"),
        message: t("confirmBody"),
        icon: "hangup",
        actions: [
          { id: "cancel", label: t("cancel"), variant: "plain" },
          { id: "hangup", label: t("confirmOk"), variant: "danger" },
        ],
        dismiss: "cancel",
      });
      if (answer === "hangup") await this.hangup(); // a caller's End ends the rung call for everyone
    }
  }

  async #permissionHelp(which) {
    const t = translator(this.#lang());
    const answer = await this.#dialog().show({
      kind: "permission",
      title: t(which === "microphone" ? "micDeniedTitle" : "cameraDeniedTitle"),
      message: t(this.#hintKey(which === "microphone" ? "micDenied" : "cameraDenied", t)),
      icon: "alert",
      actions: [
        { id: "close", label: t("close"), variant: "plain" },
        { id: "retry", label: t("retry"), variant: "primary" },
      ],
      dismiss: "close",
    });
    if (answer === "retry" && this.#lastOptions && !this.#controller.active) {
      this.#begin(this.#lastOptions, false);
    }
  }

  #dialog() {
    return this.shadowRoot.querySelector("tavkit-dialog");
  }

  /** Whether this is a touch screen (a phone or tablet): it changes some hints' words. */
  #phone() {
    return Boolean(globalThis.matchMedia?.("(pointer: coarse)").matches);
  }

  #hintKey(kind, t) {
    return this.#phone() && t.has(`${kind}HintPhone`) ? `${kind}HintPhone` : `${kind}Hint`;
  }

  /**
   * The end screen's button: start again with the same options, or, after a refused
   * signature, with the fresh credentials the page's onUserSigExpiredListener gives.
   */
  async #retry() {
    const c = this.#controller;
    const button = this.shadowRoot.querySelector(".tv-rejoin");
    if (!this.#lastOptions || c.active || button.disabled) return;
    let options = this.#lastOptions;
    if (this.#screen?.needsSig) {
      button.disabled = true;
      const fresh = await askForCredentials(c.listener.onUserSigExpiredListener).finally(() => {
        button.disabled = false;
      });
      if (!fresh || c.active) return;
      options = { ...options, userSig: fresh.userSig };
      if (fresh.privateMapKey) options.privateMapKey = fresh.privateMapKey;
    }
    this.#begin(options, false); // the devices were checked the first time
  }

  /** Show a brief notice ({key, vars}: i18n.js) above the controls. */
  #showNotice({ key, vars }) {
    const box = this.shadowRoot?.querySelector(".tv-notice");
    if (!box) return;
    const t = translator(this.#lang());
    const device = vars.device ? { device: t(vars.device === "microphone" ? "deviceMicrophone" : "deviceCamera") } : {};
    box.textContent = t(key, { ...vars, ...device });
    box.hidden = false;
    clearTimeout(this.#noticeTimer);
    this.#noticeTimer = setTimeout(() => {
      box.hidden = true;
    }, NOTICE_MS);
  }

  // -- rendering ----------------------------------------------------------------

  /**
   * Render once per burst of changes. A join changes state, adds peers and streams in
   * one go; rendering (and measuring the stage) after each would delay the offer.
   */
  #scheduleRender() {
    if (this.#renderQueued) return;
    this.#renderQueued = true;
    queueMicrotask(() => {
      this.#renderQueued = false;
      this.#render();
    });
  }

  #render() {
    const root = this.shadowRoot;
    if (!root) return;
    const c = this.#controller;
    const t = translator(this.#lang());
    const call = root.querySelector(".tv-call");
    const count = c.active ? c.peers.size + 1 : 0;
    const layout = layoutFor(this.#tileCount(c), this.#shares(c, t).length > 0);
    call.dataset.state = c.state;
    call.dataset.layout = layout;
    call.lang = this.#lang() === "zh" ? "zh-CN" : "en";
    this.#renderBars(root, c, t, count);
    this.#renderTiles(root, c, t, layout);
    this.#renderChat(root, c, t);
    this.#flow.render(t);
    this.#fitGrid();
    // From the session's opening, so both sides show the same time; never from later
    // than our own join (a clock behind the server's would otherwise count from the future).
    this.#tickClock(c.active && c.joinedAt && Math.min(c.openedAt || c.joinedAt, c.joinedAt));
  }

  /** How many tiles the call shows: the members who publish, us included if we do. */
  #tileCount(c) {
    if (!c.active) return 0;
    const remote = [...c.peers.keys()].filter((userId) => c.roster.visible(userId)).length;
    return remote + (c.publishing ? 1 : 0);
  }

  #renderBars(root, c, t, count) {
    root.querySelector(".tv-room").textContent = c.options ? t("room", { room: roomLabel(c.options.roomId) }) : "";
    root.querySelector(".tv-count").textContent = count > 1 ? t("participants", { n: count }) : "";
    this.#renderScreen(root, c, t);
    const screenIcon = !this.#screen ? "" : this.#screen.ending ? icons.hangup : icons.alert;
    const statusIcon = c.state === "waiting" ? icons.users : screenIcon;
    this.#paint(root.querySelector(".tv-status-icon"), statusIcon);
    root.querySelector(".tv-controls").setAttribute("aria-label", t("controls"));
    const sound = root.querySelector(".tv-sound");
    const soundHtml = `${icons.volume}<span>${t("enableSound")}</span>`;
    this.#paint(sound, soundHtml);
    const set = (action, aria, label, icon, pressed) => {
      const button = root.querySelector(`[data-action="${action}"]`);
      button.setAttribute("aria-label", t(aria));
      if (pressed !== undefined) button.setAttribute("aria-pressed", String(pressed));
      button.disabled = !c.active;
      const html = `<span class="tv-control-icon">${icon}</span><span class="tv-control-label">${t(label)}</span>`;
      this.#paint(button, html);
    };
    // The label says what a press does now ("Unmute" while muted), as Meet's and
    // TUICallKit's do; so no aria-pressed on these two (the name already flips).
    const muted = c.self.muted;
    const micIcon = muted ? icons.micOff : icons.mic;
    set("mute", muted ? "unmuteAria" : "muteAria", muted ? "unmute" : "mute", micIcon);
    const videoOff = !c.self.camera;
    set(
      "camera",
      videoOff ? "startVideoAria" : "cameraAria",
      videoOff ? "startVideo" : "camera",
      videoOff ? icons.cameraOff : icons.camera,
    );
    root.querySelector('[data-action="mute"]').toggleAttribute("data-off", muted);
    root.querySelector('[data-action="camera"]').toggleAttribute("data-off", videoOff);
    set("switch-camera", "switchCameraAria", "switchCamera", icons.switchCamera);
    root.querySelector('[data-action="mute"]').hidden = !c.maySend("audio");
    root.querySelector('[data-action="camera"]').hidden = !c.maySend("video");
    // One camera: nothing to switch to (a phone lists its front and back cameras).
    const oneCamera = c.cameras === 1;
    root.querySelector('[data-action="switch-camera"]').hidden = !c.maySend("video") || oneCamera;
    const unread = c.unread > 99 ? "99+" : String(c.unread);
    const badge = c.unread > 0 ? `<span class="tv-badge" aria-hidden="true">${unread}</span>` : "";
    set("chat", "chatAria", "chat", icons.chat + badge, c.chatOpen);
    if (c.unread > 0) {
      const label = `${t("chatAria")} (${t("chatUnread", { n: unread })})`;
      root.querySelector('[data-action="chat"]').setAttribute("aria-label", label);
    }
    set("hangup", "hangupAria", "hangup", icons.hangup);
    const sharing = Boolean(c.screen);
    const share = root.querySelector('[data-action="share"]');
    set("share", sharing ? "stopShareAria" : "shareAria", sharing ? "stopShare" : "share",
      sharing ? icons.stopShare : icons.share);
    share.hidden = !c.mayShare && !sharing;
    share.toggleAttribute("data-on", sharing);
    set("devices", "devicesAria", "devices", icons.settings);
    root.querySelector('[data-action="devices"]').setAttribute("aria-expanded", String(this.#menu.open));
    if (!c.active && this.#menu.open) this.#menu.toggle(false);
    else if (this.#menu.open) this.#menu.render(t);
  }

  // -- devices ----------------------------------------------------------------------

  #wireMenu(root) {
    const button = root.querySelector('[data-action="devices"]');
    const menu = root.querySelector(".tv-menu");
    // A click anywhere else, or Escape, closes the menu.
    root.addEventListener("pointerdown", (e) => {
      if (this.#menu.open && !menu.contains(e.target) && !button.contains(e.target)) {
        this.#menu.toggle(false);
        this.#render();
      }
    });
    menu.addEventListener("keydown", (e) => {
      if (e.key !== "Escape") return;
      this.#menu.toggle(false);
      this.#render();
      button.focus();
    });
  }

  /** Send the others' sound to output `deviceId` (setSinkId) and remember it. */
  #setSpeaker(deviceId) {
    this.#speaker = deviceId || "";
    if (deviceId) remember({ speaker: deviceId });
    for (const video of this.shadowRoot?.querySelectorAll(".tv-tile:not([data-local]) video") || []) {
      applySpeaker(video, this.#speaker);
    }
  }

  /**
   * The status line while the call is being set up, and the end screen once it
   * cannot start or has ended: why in a person's words (never a close code), what
   * to do, and a button when trying again can help.
   */
  #renderScreen(root, c, t) {
    const call = root.querySelector(".tv-call");
    const over = c.state === "ended" || (c.state === "idle" && c.ending.reason);
    const kind = over ? classify(c.ending) || "failed" : "";
    const screen = kind
      ? screenFor(kind, t, {
          device: deviceOf(c.ending.error),
          canRenew: typeof c.listener.onUserSigExpiredListener === "function",
          phone: this.#phone(),
          name: c.ending.name,
        })
      : null;
    this.#screen = screen;
    if (screen) call.dataset.screen = kind;
    else delete call.dataset.screen;
    const statusKey = c.state === "in-call" ? "" : STATUS_TEXT[c.state];
    const text = screen ? screen.title : statusKey ? t(statusKey) : "";
    root.querySelector(".tv-status-text").textContent = text;
    const hint = root.querySelector(".tv-status-hint");
    hint.textContent = screen?.hint || "";
    hint.hidden = !screen?.hint;
    const button = root.querySelector(".tv-rejoin");
    button.hidden = !(screen?.action && this.#lastOptions);
    button.textContent = screen?.actionLabel || "";
    button.dataset.action = screen?.action || "";
  }

  // -- chat -----------------------------------------------------------------------

  #wireChat(root) {
    const panel = root.querySelector(".tv-chat");
    const close = () => {
      this.#toggleChat(false);
      root.querySelector('[data-action="chat"]').focus(); // focus must not vanish with the panel
    };
    root.querySelector(".tv-chat-close").addEventListener("click", close);
    swipeToClose(panel, root.querySelector(".tv-chat-head"), close);
    panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") close();
    });
    root.querySelector(".tv-chat-input").addEventListener("input", () => {
      root.querySelector(".tv-chat-error").hidden = true;
    });
    root.querySelector(".tv-chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = root.querySelector(".tv-chat-input");
      const text = input.value;
      if (!text.trim()) return;
      input.value = "";
      const error = root.querySelector(".tv-chat-error");
      error.hidden = true;
      this.#controller.sendMessage(text).catch((err) => {
        if (!input.value) input.value = text;
        error.textContent = translator(this.#lang())("chatFailed", { reason: err.errorMsg || err });
        error.hidden = false;
      });
    });
  }

  #toggleChat(open) {
    this.#controller.setChatOpen(open);
    if (!this.#controller.chatOpen) return;
    const root = this.shadowRoot;
    this.#render(); // now, so the list can be scrolled and the input focused
    const list = root.querySelector(".tv-chat-list");
    list.scrollTop = list.scrollHeight;
    // A touch screen would pop up its keyboard over the call; a desktop just gets focus.
    if (globalThis.matchMedia?.("(pointer: fine)").matches) root.querySelector(".tv-chat-input").focus();
  }

  #renderChat(root, c, t) {
    const call = root.querySelector(".tv-call");
    const panel = root.querySelector(".tv-chat");
    call.dataset.chat = c.chatOpen ? "open" : "closed";
    panel.hidden = !c.chatOpen;
    panel.setAttribute("aria-label", t("chatTitle"));
    root.querySelector(".tv-chat-title").textContent = t("chatTitle");
    const close = root.querySelector(".tv-chat-close");
    close.setAttribute("aria-label", t("chatClose"));
    this.#paint(close, icons.close);
    const send = root.querySelector(".tv-chat-send");
    send.setAttribute("aria-label", t("chatSend"));
    this.#paint(send, icons.send);
    root.querySelector(".tv-chat-input").placeholder = t("chatPlaceholder");
    root.querySelector(".tv-chat-empty").textContent = t("chatEmpty");
    const list = root.querySelector(".tv-chat-list");
    // Read only while the panel is open: a scroll size read after the writes above
    // forces a layout of the whole call then and there, at every render (a join renders
    // at each of its changes; profiled: 41 ms of a joining tab's main thread).
    const atBottom = c.chatOpen && list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const ownAdded = this.#messages.update(c.chat, {
      selfId: c.self.userId,
      locale: this.#lang() === "zh" ? "zh-CN" : "en",
      displayName: (userId) => c.displayName(userId),
    });
    const empty = this.#messages.size === 0;
    list.hidden = empty;
    root.querySelector(".tv-chat-empty").hidden = !empty;
    // Follow new messages unless the user scrolled up to read; always after sending.
    if (c.chatOpen && (atBottom || ownAdded)) list.scrollTop = list.scrollHeight;
  }

  #paint(el, html) {
    if (this.#painted.get(el) === html) return;
    this.#painted.set(el, html);
    el.innerHTML = html;
  }

  /** The screens on show (screen-tiles.js): ours first, then each member's that plays. */
  #shares(c, t) {
    if (!c.active) return [];
    const screen = c.screen;
    if (this.#screenStream?.getVideoTracks()[0] !== screen) {
      this.#screenStream = screen ? new MediaStream([screen]) : null;
    }
    const shares = [];
    if (screen && c.self.userId) {
      shares.push({ userId: c.self.userId, name: t("you"), stream: this.#screenStream, local: true });
    }
    for (const peer of c.peers.values()) {
      if (!peer.screen || !peer.screenStream) continue;
      shares.push({ userId: peer.userId, name: peer.userName || peer.userId, stream: peer.screenStream });
    }
    return shares;
  }

  /**
   * How `userId`'s tile is shown now: {width, height} in device pixels and whether
   * any of it is on the screen; null when it has no tile. An SFU room picks the
   * simulcast layer it receives from this (layers.js).
   */
  #tileView(userId) {
    const tile = this.shadowRoot?.querySelector(`.tv-tile[data-user-id="${CSS.escape(userId)}"]`);
    if (!tile) return null;
    const rect = tile.getBoundingClientRect();
    const scale = globalThis.devicePixelRatio || 1;
    const onScreen =
      rect.width > 0 &&
      rect.height > 0 &&
      rect.bottom > 0 &&
      rect.right > 0 &&
      rect.top < globalThis.innerHeight &&
      rect.left < globalThis.innerWidth;
    return { width: rect.width * scale, height: rect.height * scale, visible: onScreen };
  }

  #renderTiles(root, c, t, layout) {
    const stage = root.querySelector(".tv-stage");
    this.#screens.render(stage, this.#shares(c, t), t);
    const wanted = new Map();
    if (c.active && c.self.userId && c.publishing) {
      wanted.set(c.self.userId, {
        local: true,
        name: c.self.userName || t("you"),
        initialsOf: c.self.userName || c.self.userId, // our initials, never "YO" of "You"
        avatarUrl: c.self.avatarUrl,
        muted: c.self.muted,
        camera: c.self.camera,
        status: "connected",
        stream: c.localStream,
        mirror: c.self.front,
        speaking: c.voices.speaking.has(c.self.userId),
        quality: c.linkQuality.best(),
      });
    }
    if (c.active) {
      for (const peer of c.peers.values()) {
        if (!c.roster.visible(peer.userId)) continue; // an audience member: no empty tile
        const status = c.roster.status(peer.userId);
        wanted.set(peer.userId, {
          ...peer,
          status,
          local: false,
          name: peer.userName || peer.userId,
          mirror: false,
          speaking: c.voices.speaking.has(peer.userId),
          quality: c.linkQuality.of(peer.userId),
        });
      }
    }
    for (const tile of stage.querySelectorAll(":scope > .tv-tile[data-user-id]")) {
      if (!wanted.has(tile.dataset.userId)) tile.remove();
    }
    let index = 0;
    for (const [userId, info] of wanted) {
      let tile = stage.querySelector(`.tv-tile[data-user-id="${CSS.escape(userId)}"]`);
      if (!tile) {
        tile = createTile(userId, info.local);
        // A new picture size (first frame, a switched camera, a rotated phone) refits.
        tile.querySelector("video").addEventListener("resize", () => this.#fitGrid());
        // Full screen and picture in picture for the others' tiles (tile-actions.js).
        if (!info.local) addTileActions(tile, () => this.#fitGrid());
        stage.append(tile);
      }
      tile.style.order = String(info.local ? 0 : ++index);
      const started = updateTile(tile, info, t);
      updateTileActions(tile, t, info.name);
      if (!info.local) applySpeaker(tile.querySelector("video"), this.#speaker);
      if (started) this.#play(started, info.local);
      if (started && !info.local && started.requestVideoFrameCallback) {
        // The first frame presented: the last phase of this member's join timeline.
        started.requestVideoFrameCallback(() => c.markFirstFrame(userId));
      }
    }
    this.#placePip(stage, layout, c.self.userId);
  }

  #placePip(stage, layout, selfId) {
    const local = selfId ? stage.querySelector(`.tv-tile[data-user-id="${CSS.escape(selfId)}"]`) : null;
    for (const tile of stage.querySelectorAll(".tv-pip")) {
      if (tile !== local || layout !== "pip") tile.classList.remove("tv-pip");
    }
    if (layout === "pip" && local) {
      local.classList.add("tv-pip");
      local.dataset.corner = this.#corner;
      if (!this.#undrag) {
        this.#undrag = makeDraggable(local, stage, (corner) => {
          this.#corner = corner;
          local.dataset.corner = corner;
        });
      }
    } else if (this.#undrag) {
      this.#undrag();
      this.#undrag = null;
    }
  }

  #fitGrid() {
    const stage = this.shadowRoot?.querySelector(".tv-stage");
    if (!stage) return;
    const count = stage.querySelectorAll(":scope > .tv-tile[data-user-id]").length; // cameras
    const box = stage.getBoundingClientRect();
    const videos = [...stage.querySelectorAll(".tv-tile video")];
    const cameras = videos.filter((v) => !v.parentElement.hasAttribute("data-screen"));
    const aspect = tileAspect(cameras.map((v) => [v.videoWidth, v.videoHeight]));
    const { cols, rows, width, height } = gridShape(count, box.width, box.height, aspect);
    stage.style.setProperty("--tv-cols", String(cols));
    stage.style.setProperty("--tv-rows", String(rows));
    stage.style.setProperty("--tv-tile-w", `${Math.floor(width)}px`);
    stage.style.setProperty("--tv-tile-h", `${Math.floor(height)}px`);
    // The wrapping row holds exactly `cols` tiles: its sides take up what they leave.
    const rowWidth = cols * Math.floor(width) + 8 * (cols - 1);
    stage.style.setProperty("--tv-grid-pad", `${Math.max(0, Math.floor((box.width - rowWidth) / 2))}px`);
    // Then each video by fit.js's rule, in the tile's size once the layout applied.
    for (const video of videos) {
      const tile = video.parentElement;
      // The floating PiP takes its picture's shape, so it never needs bars.
      const pip = tile.classList.contains("tv-pip") && video.videoWidth > 0;
      const ratio = pip ? `${video.videoWidth} / ${video.videoHeight}` : "";
      if (tile.style.aspectRatio !== ratio) tile.style.aspectRatio = ratio;
      // A shared screen is shown whole: its edges carry text.
      const fit = tile.hasAttribute("data-screen")
        ? "contain"
        : fitFor(video.videoWidth, video.videoHeight, tile.clientWidth, tile.clientHeight);
      if (video.dataset.fit !== fit) video.dataset.fit = fit;
    }
  }

  /** Play a video; when autoplay with sound is refused, play muted and offer a button. */
  #play(video, local) {
    video.play().catch((err) => {
      if (local || err.name !== "NotAllowedError") return;
      video.muted = true;
      video.play().catch(() => {});
      this.shadowRoot.querySelector(".tv-sound").hidden = false;
    });
  }

  #unmuteAll() {
    for (const video of this.shadowRoot.querySelectorAll(".tv-tile:not([data-local]) video")) {
      video.muted = false;
      video.play().catch(() => {});
    }
    this.shadowRoot.querySelector(".tv-sound").hidden = true;
  }

  #tickClock(since) {
    const timer = this.shadowRoot.querySelector(".tv-timer");
    const paint = () => {
      const seconds = Math.max(0, Math.floor((Date.now() - since) / 1000));
      const mm = String(Math.floor(seconds / 60)).padStart(2, "0");
      const ss = String(seconds % 60).padStart(2, "0");
      timer.textContent = `${mm}:${ss}`;
    };
    if (!since) {
      clearInterval(this.#clock);
      this.#clock = null;
      timer.textContent = "";
      return;
    }
    paint();
    if (!this.#clock) this.#clock = setInterval(paint, 1000);
  }
}
