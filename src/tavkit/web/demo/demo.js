// The demo lobby: a name and a room number, then a <tavkit-call>.
//
// Demo mode has no user directory, so the display name travels inside the userId:
// base64url of the name's UTF-8 bytes (every base64url character is legal in a
// userId) plus a random suffix so two "Alice"s differ. onUserInfoListener decodes
// it back, which is exactly the hook the seed gives an app for naming tiles. The codec
// is names.js, which the dashboard reads such userIds with too.

import { nameToUserId, userIdToName } from "./names.js";

export { nameToUserId, userIdToName };

const TEXT = {
  en: {
    title: "tavkit video call",
    lead: "Enter a name and a room number. Anyone who joins the same room is in the call.",
    name: "Your name",
    namePlaceholder: "e.g. Alice",
    room: "Room number",
    join: "Join call",
    joining: "Joining…",
    hint: "Tip: open this page in a second tab to call yourself.",
    back: "← Back",
    left: "You left the call.",
    needName: "Please enter your name.",
    needRoom: "The room number is 1 to 9 digits.",
    failed: "Could not join: {msg}",
  },
  zh: {
    title: "tavkit 视频通话",
    lead: "输入名字和房间号。进入同一房间的人会立即加入通话。",
    name: "你的名字",
    namePlaceholder: "例如：小明",
    room: "房间号",
    join: "加入通话",
    joining: "正在加入…",
    hint: "提示：在第二个标签页打开本页，就能和自己通话。",
    back: "← 返回",
    left: "你已离开通话。",
    needName: "请输入名字。",
    needRoom: "房间号为 1 到 9 位数字。",
    failed: "无法加入：{msg}",
  },
};

const $ = (id) => document.getElementById(id);
let lang = (localStorage.getItem("tavkit-demo:lang") || navigator.language || "en")
  .toLowerCase()
  .startsWith("zh")
  ? "zh"
  : "en";

function t(key, vars = {}) {
  return (TEXT[lang][key] || key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
}

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const button of document.querySelectorAll(".lang button")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
  }
  $("call").setAttribute("lang", lang);
}

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind === "info" ? "message info" : "message";
  box.hidden = !text;
}

function showLobby(text, kind) {
  $("stage").hidden = true;
  $("back-bar").hidden = true;
  $("lobby").hidden = false;
  $("join").disabled = false;
  $("join").textContent = t("join");
  showMessage(text || "", kind);
}

async function join(event) {
  event.preventDefault();
  const name = $("name").value.trim();
  const room = $("room").value.trim();
  if (!name) return showMessage(t("needName"));
  if (!/^\d{1,9}$/.test(room) || Number(room) < 1) return showMessage(t("needRoom"));
  localStorage.setItem("tavkit-demo:name", name);
  $("join").disabled = true;
  $("join").textContent = t("joining");
  showMessage("");
  let sig;
  try {
    sig = await mintSig(nameToUserId(name));
  } catch (err) {
    return showLobby(t("failed", { msg: err.message || err }));
  }
  const url = new URL(location.href);
  url.searchParams.set("room", room);
  history.replaceState(null, "", url);
  $("lobby").hidden = true;
  $("stage").hidden = false;
  $("back-bar").hidden = true;
  $("call").start({
    sdkAppId: sig.sdkAppId,
    userId: sig.userId,
    userSig: sig.userSig,
    roomId: Number(room),
    prejoin: true, // the camera, microphone and speaker are checked before entering
    listener: {
      onUserInfoListener(userIds, callback) {
        callback(userIds.map((userId) => ({ userId, userName: userIdToName(userId) })));
      },
      onHandupListener() {
        showLobby(t("left"), "info");
      },
      // A signature that runs out (or the end screen's Try again after one was
      // refused) gets a fresh one from the demo endpoint.
      onUserSigExpiredListener(callback) {
        mintSig(sig.userId).then((fresh) => callback(fresh.userSig), () => callback(null));
      },
      // Any other ending: the element itself says what happened and what to do (its
      // end screen, with Try again where that helps); the page adds a way back.
      onErrorListener() {
        const state = $("call").state;
        if (!$("stage").hidden && (state === "ended" || state === "idle")) {
          $("back-bar").hidden = false;
        }
      },
    },
  });
}

/** A demo userSig for `userId` from the server's demo endpoint. */
async function mintSig(userId) {
  const response = await fetch("/v1/demo/usersig", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ userId }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.errorMsg || `HTTP ${response.status}`);
  return body;
}

function init() {
  $("name").value = localStorage.getItem("tavkit-demo:name") || "";
  const fromUrl = new URLSearchParams(location.search).get("room");
  $("room").value = /^\d{1,9}$/.test(fromUrl || "")
    ? fromUrl
    : String(1000 + Math.floor(Math.random() * 9000));
  for (const button of document.querySelectorAll(".lang button")) {
    button.addEventListener("click", () => {
      lang = button.dataset.lang;
      localStorage.setItem("tavkit-demo:lang", lang);
      applyLang();
    });
  }
  $("join-form").addEventListener("submit", join);
  $("back").addEventListener("click", () => showLobby(""));
  // Try again on the end screen worked: back in a call, the bar goes.
  $("call").addEventListener("tavkit:joined", () => {
    $("back-bar").hidden = true;
  });
  applyLang();
  ($("name").value ? $("join") : $("name")).focus();
}

init();
