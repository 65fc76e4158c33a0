// Video tiles: one per participant, built once and then updated in place.
//
// Updating in place matters: replacing a <video> element restarts playback and
// flashes black, so a tile keeps its element and only its attributes, texts and
// srcObject change. State a user must see (microphone off, camera off, connecting)
// is a data-* attribute on the tile that the stylesheet turns into icons.
//
// The top-right corner says what a person hears: a mic-off badge for a muted member,
// moving bars while the member speaks (the tile's ring lights too, speaking.js).
// The top-left holds the connection's bars (quality.js): good, fair or poor, with
// the reason as the tooltip and the accessible name.

import { icons } from "./icons.js";

// Three signal bars; the stylesheet fills as many as the grade earns.
const SIGNAL =
  '<svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">' +
  '<rect class="tv-bar tv-bar-1" x="1.5" y="10" width="3" height="4.5" rx="1"/>' +
  '<rect class="tv-bar tv-bar-2" x="6.5" y="6" width="3" height="8.5" rx="1"/>' +
  '<rect class="tv-bar tv-bar-3" x="11.5" y="2" width="3" height="12.5" rx="1"/></svg>';
// The speaking badge: three bars the stylesheet makes dance.
const VOICE = '<span class="tv-voice-bars" aria-hidden="true"><i></i><i></i><i></i></span>';

const PALETTE = ["#5b7cfa", "#14b8a6", "#f59e0b", "#ec4899", "#8b5cf6", "#22c55e", "#ef6c4a"];

/** The avatar's background colour for `userId`: stable, from a small palette. */
export function colourFor(userId) {
  let hash = 0;
  for (const ch of userId) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** One or two letters for the avatar: initials of a name, or the userId's start. */
export function initials(name) {
  const words = String(name || "?").trim().split(/[\s._@-]+/).filter(Boolean);
  if (words.length === 0) return "?";
  const first = [...words[0]][0] || "?";
  // A CJK name reads best as its first character alone.
  if (/\p{Script=Han}/u.test(first)) return first;
  const second = words.length > 1 ? [...words[1]][0] : [...words[0]][1] || "";
  return (first + second).toUpperCase();
}

/** Build an empty tile for `userId`; `local` tiles get a muted, mirrored video. */
export function createTile(userId, local) {
  const tile = document.createElement("div");
  tile.className = "tv-tile";
  tile.dataset.userId = userId;
  if (local) tile.dataset.local = "";
  tile.style.setProperty("--tv-avatar-bg", colourFor(userId));
  tile.innerHTML =
    '<video class="tv-video" playsinline autoplay></video>' +
    '<div class="tv-avatar" aria-hidden="true"><span class="tv-avatar-circle"></span></div>' +
    '<div class="tv-tile-status" role="status"><span class="tv-spinner"></span>' +
    '<span class="tv-tile-status-text"></span></div>' +
    `<span class="tv-quality" role="img" hidden>${SIGNAL}</span>` +
    `<span class="tv-voice"><span class="tv-voice-muted">${icons.micOff}</span>${VOICE}</span>` +
    '<div class="tv-label"><span class="tv-name"></span></div>';
  const video = tile.querySelector("video");
  video.dataset.userId = userId;
  // The local preview must never play our own microphone back to us.
  video.muted = local;
  return tile;
}

/**
 * Bring a tile up to date.
 *
 * `info` = {name, initialsOf?, avatarUrl, muted, camera, status, stream, mirror,
 * speaking, quality: {level, reason} | null}; `t` is the translator. Returns the
 * <video> when its stream changed, so the caller can start playback (which may need
 * the autoplay fallback).
 */
export function updateTile(tile, info, t) {
  setFlag(tile, "muted", info.muted);
  setFlag(tile, "cameraOff", !info.camera || !hasLiveVideo(info.stream));
  setFlag(tile, "mirror", info.mirror);
  setFlag(tile, "speaking", info.speaking && !info.muted);
  updateQuality(tile.querySelector(".tv-quality"), info.quality, t);
  tile.dataset.status = info.status || "connected";
  const name = tile.querySelector(".tv-name");
  if (name.textContent !== info.name) name.textContent = info.name;
  const mic = tile.querySelector(".tv-voice-muted");
  mic.setAttribute("aria-label", info.muted ? t("micOff") : "");
  mic.setAttribute("role", info.muted ? "img" : "presentation");
  const statusText = { connecting: "tileConnecting", reconnecting: "tileReconnecting" };
  const label = statusText[info.status] ? t(statusText[info.status]) : "";
  tile.querySelector(".tv-tile-status-text").textContent =
    info.status === "lost" ? t("tileLost") : label;
  tile.setAttribute("aria-label", info.name);
  updateAvatar(tile.querySelector(".tv-avatar-circle"), info);
  const video = tile.querySelector("video");
  if (video.srcObject !== (info.stream || null)) {
    video.srcObject = info.stream || null;
    return info.stream ? video : null;
  }
  return null;
}

function updateQuality(badge, quality, t) {
  const level = quality?.level || "";
  const reason = quality?.reason ? t(quality.reason.key, quality.reason.vars) : "";
  const label = level ? [t(`quality_${level}`), reason].filter(Boolean).join(" · ") : "";
  if (badge.dataset.level === level && badge.title === label) return;
  badge.dataset.level = level;
  badge.hidden = !level;
  badge.title = label;
  badge.setAttribute("aria-label", label);
}

/** Show `info.avatarUrl` in `circle`, or the initials of `info.initialsOf || info.name`. */
export function updateAvatar(circle, info) {
  const url = info.avatarUrl || "";
  const name = info.initialsOf || info.name; // whose initials: ours are not "You"'s
  if (circle.dataset.url === url && circle.dataset.name === name) return;
  circle.dataset.url = url;
  circle.dataset.name = name;
  circle.replaceChildren();
  if (url) {
    const img = document.createElement("img");
    img.alt = "";
    img.src = url;
    img.referrerPolicy = "no-referrer";
    img.addEventListener("error", () => {
      circle.textContent = initials(name);
    });
    circle.append(img);
  } else {
    circle.textContent = initials(name);
  }
}

function hasLiveVideo(stream) {
  if (!stream) return true; // still connecting: show the spinner, not the avatar
  return stream.getVideoTracks().some((track) => track.readyState === "live");
}

function setFlag(el, name, on) {
  if (on) el.dataset[name] = "";
  else delete el.dataset[name];
}
