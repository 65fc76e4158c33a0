// Which simulcast layer each remote tile should get in an SFU room, with no DOM.
//
// In an SFU room every browser publishes its camera three times (sfu.js: full, half
// and quarter resolution, rids h/m/l) and the SFU forwards each receiver one layer of
// each member, the one that receiver asks for in `media-layers` (protocol.md section
// 3b). The receiver asks from what it shows: the size a tile takes on the screen, in
// device pixels, picks the smallest layer at least as wide as the tile (a 1v1's big
// picture gets the high layer, a desktop grid's tiles the medium one, a phone's grid
// or a thumbnail the low one), and a tile that is not on the screen at all (scrolled away, hidden, zero-sized)
// gets nothing: its stream is paused at the SFU, so nobody's uplink nor our downlink
// pays for pixels nobody sees. A tile not drawn yet keeps what it has.
// The layer names are MEDIA_LAYERS (protocol.js).

// The layers' widths in device pixels: the camera is asked for 1280×720 in SFU rooms
// (sfu.js), sent whole, halved and quartered. A tile wider than a layer gets the next.
const MEDIUM_WIDTH = 640;
const LOW_WIDTH = 320;

/**
 * The layer for a tile shown as `view` = {width, height, visible} (device pixels);
 * null when there is no tile to go by (not drawn yet): keep what was asked before.
 */
export function layerFor(view) {
  if (!view) return null;
  if (!view.visible || view.width <= 0 || view.height <= 0) return "paused";
  // The width decides: a video is shown whole (fit.js) unless a crop keeps nearly all
  // of it, so it is never drawn much wider than its tile.
  if (view.width > MEDIUM_WIDTH) return "high";
  if (view.width > LOW_WIDTH) return "medium";
  return "low";
}

/**
 * What one subscription was asked, so only changes are sent. A new subscription
 * starts every stream at "high" (the SFU's default), as the server does.
 */
export class LayerPlan {
  constructor(subscription) {
    this.subscription = subscription;
    this.asked = new Map(); // video mid → layer
  }

  /**
   * The `media-layers` entries that change what was asked, recorded as asked:
   * `wanted` is [[mid, layer|null], ...]; null keeps a stream as it is.
   */
  changes(wanted) {
    const out = [];
    for (const [mid, layer] of wanted) {
      if (!layer || (this.asked.get(mid) || "high") === layer) continue;
      this.asked.set(mid, layer);
      out.push({ mid, layer });
    }
    return out;
  }
}
