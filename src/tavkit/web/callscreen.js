// The incoming and the outgoing call screens: who, what kind of call, and the round
// buttons (Decline / Accept, or Cancel).
//
// A view only: the element (tavkit-call.js) says which call to show and turns the
// buttons' clicks (data-call="accept|decline|cancel") into calls.js requests. Names and
// avatars come from the page's onUserInfoListener, as the call's tiles get theirs; until
// the page answers (or when it has no listener) the screen shows the userId and its
// initials, so it never waits on the page to appear.

import { icons } from "./icons.js";
import { colourFor, updateAvatar } from "./tiles.js";

const MAX_AVATARS = 3; // a group call shows the first few callees' faces

const STYLESHEET = new URL("./callscreen.css", import.meta.url).href;

/** The screen's markup, inside the element's .tv-call. */
export const CALL_SCREEN = `
<link rel="stylesheet" href="${STYLESHEET}">
<div class="tv-callscreen" part="callscreen" role="dialog" aria-modal="true" tabindex="-1"
     aria-labelledby="tv-cs-name" aria-describedby="tv-cs-text" hidden>
  <p class="tv-cs-kind"></p>
  <div class="tv-cs-person">
    <div class="tv-cs-avatars" aria-hidden="true"></div>
    <h2 class="tv-cs-name" id="tv-cs-name"></h2>
    <p class="tv-cs-text" id="tv-cs-text"><span class="tv-cs-words"></span><span
      class="tv-cs-dots" aria-hidden="true"><i>.</i><i>.</i><i>.</i></span></p>
  </div>
  <div class="tv-cs-actions">
    <button class="tv-cs-button" type="button" data-call="decline">
      <span class="tv-cs-disc tv-cs-red"></span><span class="tv-cs-label"></span></button>
    <button class="tv-cs-button" type="button" data-call="accept">
      <span class="tv-cs-disc tv-cs-green"></span><span class="tv-cs-label"></span></button>
    <button class="tv-cs-button" type="button" data-call="cancel">
      <span class="tv-cs-disc tv-cs-red"></span><span class="tv-cs-label"></span></button>
  </div>
</div>`;

/** The call screen inside `root` (the .tv-callscreen element). */
export class CallScreen {
  constructor(root) {
    this.root = root;
    this.shown = null; // {kind: "incoming"|"outgoing", call}
    this.info = new Map(); // userId -> {userName, avatarUrl} from onUserInfoListener
  }

  /** The userIds the screen shows for `kind` and `call`: the caller, or the callees. */
  static people(kind, call) {
    return kind === "incoming" ? [call.caller] : call.callees.map((c) => c.userId);
  }

  /** Show `call` as `kind`; hide() takes it down. */
  show(kind, call, t) {
    this.shown = { kind, call };
    this.render(t);
  }

  /** Take the screen down. */
  hide() {
    this.shown = null;
    this.root.hidden = true;
  }

  /** The page's answer to onUserInfoListener: [{userId, userName, avatarUrl}] or one. */
  applyInfo(infos, t) {
    for (const info of Array.isArray(infos) ? infos : [infos]) {
      if (!info || typeof info.userId !== "string") continue;
      const known = this.info.get(info.userId) || {};
      if (typeof info.userName === "string") known.userName = info.userName;
      if (typeof info.avatarUrl === "string") known.avatarUrl = info.avatarUrl;
      this.info.set(info.userId, known);
    }
    if (this.shown) this.render(t);
  }

  /** The name to show for `userId`: the page's, else the userId. */
  nameOf(userId) {
    return this.info.get(userId)?.userName || userId;
  }

  /** Paint the shown call in the words of `t` (i18n.js). */
  render(t) {
    const root = this.root;
    root.hidden = !this.shown;
    if (!this.shown) return;
    const { kind, call } = this.shown;
    const video = call.media !== "audio";
    const people = CallScreen.people(kind, call);
    root.dataset.kind = kind;
    root.dataset.group = String(people.length > 1);
    root.style.setProperty("--tv-cs-tint", colourFor(people[0]));
    this.#avatars(people);
    const names = people.map((id) => this.nameOf(id)).join(t("listSeparator"));
    root.querySelector(".tv-cs-name").textContent = names;
    const words =
      kind === "incoming"
        ? t(video ? "callInviteVideo" : "callInviteAudio")
        : t(people.length > 1 ? "callWaitingGroup" : "callWaiting");
    root.querySelector(".tv-cs-words").textContent = words;
    root.querySelector(".tv-cs-kind").textContent =
      kind === "incoming" ? t(video ? "callIncomingVideo" : "callIncomingAudio") : t(video ? "callVideo" : "callAudio");
    const buttons = {
      decline: [kind === "incoming", "callDecline", icons.hangup],
      accept: [kind === "incoming", "callAccept", video ? icons.camera : icons.phone],
      cancel: [kind === "outgoing", "callCancel", icons.hangup],
    };
    for (const [action, [visible, label, icon]] of Object.entries(buttons)) {
      const button = root.querySelector(`[data-call="${action}"]`);
      button.hidden = !visible;
      button.querySelector(".tv-cs-label").textContent = t(label);
      const disc = button.querySelector(".tv-cs-disc");
      if (disc.dataset.icon !== icon) {
        disc.dataset.icon = icon;
        disc.innerHTML = icon;
      }
    }
  }

  #avatars(people) {
    const box = this.root.querySelector(".tv-cs-avatars");
    const shown = people.slice(0, MAX_AVATARS);
    while (box.children.length > shown.length) box.lastElementChild.remove();
    while (box.children.length < shown.length) {
      const circle = document.createElement("span");
      circle.className = "tv-avatar-circle tv-cs-avatar";
      box.append(circle);
    }
    shown.forEach((userId, i) => {
      const circle = box.children[i];
      circle.style.setProperty("--tv-avatar-bg", colourFor(userId));
      const info = this.info.get(userId) || {};
      updateAvatar(circle, { name: this.nameOf(userId), avatarUrl: info.avatarUrl || "" });
    });
  }
}
