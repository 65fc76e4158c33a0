// Screen tiles: each shared screen as a large tile of its own, beside the cameras.
//
// A member's share (its screen's m-line, mesh.js) and our own (a local preview of
// what we send) each get one tile in the stage, first in order, marked data-screen
// so fit.js's rule is skipped and the picture is shown whole (its edges carry text).
// While any is shown the call uses the layout "share" (layout.js): the screen takes
// the stage and the camera tiles, still there and still updated by tiles.js, shrink
// into a strip beside it (screen-tiles.css). A tile is built once and updated in
// place, as camera tiles are, and goes when its share stops.
//
// A screen tile has no data-user-id (that names a member's camera tile); its tile
// and <video> carry data-screen-of="<userId>" instead. Another member's screen has
// the full-screen and picture-in-picture buttons of tile-actions.js, as their camera
// tiles do: a slide read on a phone wants the whole screen.

import { addTileActions, updateTileActions } from "./tile-actions.js";

/** The screen tiles of one stage. */
export class ScreenTiles {
  #play;
  #onResize;

  /** `play(video)` starts a new video's playback; `onResize()` runs when a picture's size changes. */
  constructor({ play, onResize }) {
    this.#play = play;
    this.#onResize = onResize;
  }

  /**
   * Show exactly `shares` in `stage`: [{userId, name, stream, local}], one tile each,
   * in that order before every camera tile; `t` is the translator.
   */
  render(stage, shares, t) {
    const wanted = new Map(shares.map((share) => [share.userId, share]));
    for (const tile of stage.querySelectorAll(":scope > .tv-screen-tile")) {
      if (!wanted.has(tile.dataset.screenOf)) tile.remove();
    }
    let order = -shares.length;
    for (const share of shares) {
      let tile = stage.querySelector(`:scope > .tv-screen-tile[data-screen-of="${CSS.escape(share.userId)}"]`);
      if (!tile) {
        tile = this.#create(share.userId, share.local);
        stage.prepend(tile);
      }
      tile.style.order = String(order++);
      const label = share.local ? t("yourScreen") : t("screenOf", { name: share.name });
      const name = tile.querySelector(".tv-name");
      if (name.textContent !== label) name.textContent = label;
      tile.setAttribute("aria-label", label);
      updateTileActions(tile, t, label);
      const video = tile.querySelector("video");
      if (video.srcObject !== share.stream) {
        video.srcObject = share.stream;
        this.#play(video);
      }
    }
  }

  #create(userId, local) {
    const tile = document.createElement("div");
    tile.className = "tv-tile tv-screen-tile";
    tile.dataset.screenOf = userId;
    tile.dataset.screen = "";
    tile.setAttribute("role", "img");
    if (local) tile.dataset.local = "";
    tile.innerHTML =
      '<video class="tv-video" playsinline autoplay muted data-fit="contain"></video>' +
      '<div class="tv-label"><span class="tv-name"></span></div>';
    const video = tile.querySelector("video");
    video.muted = true; // a screen carries no sound here
    video.dataset.screenOf = userId;
    video.addEventListener("resize", () => this.#onResize());
    if (!local) addTileActions(tile, () => this.#onResize());
    return tile;
  }
}
