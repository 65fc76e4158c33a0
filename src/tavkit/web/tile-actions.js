// A tile's own buttons: show its member full screen, or in a picture-in-picture window.
//
// Every remote tile gets them (in a 1v1 that is the big tile); our own tile does not:
// nobody needs their own preview full screen. Full screen is the Fullscreen API on
// the tile element, so the name, the badges and these buttons come along; the
// browser's own way out (Esc, the system's gesture) restores the tile, and the tile
// refits its video through `onResize`. Where elements cannot go full screen (an
// iPhone) the video alone does, through the video's webkitEnterFullscreen. Picture in
// picture is the video's requestPictureInPicture(); where the browser has none, or a
// member's camera is off (a PiP window of a black picture helps nobody), that button
// is hidden.
//
// The buttons sit in the tile's lower right corner, 44 px touch targets. A mouse
// reveals them by hovering the tile, the keyboard by tabbing to them (they are
// ordinary buttons in the tab order), a finger by tapping the tile: they stay for
// REVEAL_MS after the last tap.
//
// The two icons live here rather than in icons.js: only these buttons draw them.

const REVEAL_MS = 4000;

const svg = (body) =>
  `<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" ` +
  `stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" ` +
  `focusable="false">${body}</svg>`;

const ICONS = {
  fullscreen: svg('<path d="M4 9V4h5M20 9V4h-5M4 15v5h5M20 15v5h-5"/>'),
  exitFullscreen: svg('<path d="M9 4v5H4M15 4v5h5M9 20v-5H4M15 20v-5h5"/>'),
  pip: svg('<rect x="2.5" y="4.5" width="19" height="15" rx="2"/><rect x="12" y="12" width="7" height="5" rx="1"/>'),
  exitPip: svg(
    '<rect x="2.5" y="4.5" width="19" height="15" rx="2"/><path d="M9 9l6 6M15 9l-6 6"/>',
  ),
};

const revealTimers = new WeakMap(); // tile → the timer that hides its buttons again
const words = new WeakMap(); // tile → {t, name}: the translator and the member's name

/**
 * Add the full-screen and picture-in-picture buttons to a remote `tile` (tiles.js).
 *
 * `onResize()` is called when the tile enters or leaves full screen, so the view can
 * refit its video (fit.js) to the tile's new size. Labels come from updateTileActions.
 */
export function addTileActions(tile, onResize) {
  const video = tile.querySelector("video");
  const bar = document.createElement("div");
  bar.className = "tv-tile-actions";
  bar.innerHTML =
    '<button class="tv-tile-action" type="button" data-tile-action="fullscreen"></button>' +
    '<button class="tv-tile-action" type="button" data-tile-action="pip"></button>';
  tile.append(bar);
  bar.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-tile-action]");
    if (!button) return;
    if (button.dataset.tileAction === "fullscreen") toggleFullscreen(tile, video);
    else togglePip(video);
  });
  // A tap on the tile (not on a button) shows the buttons for a while.
  tile.addEventListener("pointerup", (event) => {
    if (event.pointerType === "mouse" || bar.contains(event.target)) return;
    tile.dataset.reveal = "";
    clearTimeout(revealTimers.get(tile));
    const hide = () => delete tile.dataset.reveal;
    revealTimers.set(tile, setTimeout(hide, REVEAL_MS));
  });
  const changed = () => {
    refresh(tile);
    onResize();
  };
  // Fired on the element that entered or left full screen, however it left.
  tile.addEventListener("fullscreenchange", changed);
  video.addEventListener("enterpictureinpicture", () => refresh(tile));
  video.addEventListener("leavepictureinpicture", () => refresh(tile));
}

/** Label `tile`'s buttons in the language of `t` (i18n.js) for member `name`. */
export function updateTileActions(tile, t, name) {
  if (!tile.querySelector(".tv-tile-actions")) return;
  words.set(tile, { t, name });
  refresh(tile);
}

/** Whether `tile` is the element shown full screen now. */
export function isFullscreen(tile) {
  return tile.getRootNode().fullscreenElement === tile;
}

function refresh(tile) {
  const bar = tile.querySelector(".tv-tile-actions");
  if (!words.has(tile)) return;
  const { t, name } = words.get(tile);
  const video = tile.querySelector("video");
  const full = isFullscreen(tile);
  const pip = tile.getRootNode().pictureInPictureElement === video;
  label(bar.querySelector('[data-tile-action="fullscreen"]'), {
    text: full ? t("exitFullscreen") : t("fullscreenOf", { name }),
    icon: full ? ICONS.exitFullscreen : ICONS.fullscreen,
    hidden: !canFullscreen(video),
  });
  label(bar.querySelector('[data-tile-action="pip"]'), {
    text: pip ? t("exitPip") : t("pipOf", { name }),
    icon: pip ? ICONS.exitPip : ICONS.pip,
    hidden: !canPip(video),
  });
  tile.toggleAttribute("data-fullscreen", full);
}

function label(button, { text, icon, hidden }) {
  if (button.getAttribute("aria-label") !== text) {
    button.setAttribute("aria-label", text);
    button.title = text;
  }
  if (button.dataset.icon !== icon) {
    button.dataset.icon = icon;
    button.innerHTML = icon;
  }
  button.hidden = hidden;
}

function canFullscreen(video) {
  return Boolean(document.fullscreenEnabled || video.webkitEnterFullscreen);
}

function canPip(video) {
  return Boolean(document.pictureInPictureEnabled && !video.disablePictureInPicture);
}

async function toggleFullscreen(tile, video) {
  try {
    if (isFullscreen(tile)) await document.exitFullscreen();
    else if (document.fullscreenEnabled) await tile.requestFullscreen({ navigationUI: "hide" });
    else video.webkitEnterFullscreen?.(); // iPhone: the video alone, in the system's player
  } catch {
    // Refused (no user gesture, a frame without allowfullscreen): the tile stays as it is.
  }
}

async function togglePip(video) {
  try {
    if (video.getRootNode().pictureInPictureElement === video) await document.exitPictureInPicture();
    else await video.requestPictureInPicture();
  } catch {
    // No picture yet, or refused: nothing changes, and the button says so by not flipping.
  }
}
