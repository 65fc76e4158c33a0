// How a video fills its tile without cutting faces off.
//
// The rule: a video is shown with `cover` (it fills its tile, the overflow cropped)
// only while that crop keeps at least MIN_VISIBLE (80 %) of the picture; past that
// it is shown whole with `contain`, on the tile's dark backdrop. A 4:3 camera in a
// 16:10 desktop tile loses 17 % and fills it; the same camera in a phone's tall
// stage would lose more than half its width (the faces at its sides), so it is
// letterboxed instead. Pure arithmetic, so node can check it; the view applies it
// whenever a video's size or its tile's size changes (a resized stage, a new
// picture size, a tile entering or leaving full screen).
//
// Exceptions the view makes: a shared screen is always `contain` (its edges carry
// text); the floating PiP takes its picture's own shape, so it never needs either.
//
// Why 80 %: it is 10 % off each side at most, which leaves a person sitting in front
// of their camera whole, yet lets a tile whose shape is close to its picture's (a
// 4:3 camera in a 16:10 tile) fill instead of showing thin bars. Grids rarely need
// it: their tiles take the pictures' mean aspect (tileAspect, layout.js gridShape).
//
// Why a dark backdrop and not a blurred copy of the picture: the blur needs a second
// <video> of the same stream per tile, painted through a filter on every frame; with
// nine tiles that is nine more videos to composite, on the phones that letterbox most
// and have least to spare. The backdrop is the tile's own colour, so the bars read
// as the tile, not as a broken picture.

/** The least share of a picture that `cover` may keep before `contain` is used instead. */
export const MIN_VISIBLE = 0.8;

/** The share (0-1) of a videoW×videoH picture that `cover` shows in a boxW×boxH tile. */
export function coverVisible(videoW, videoH, boxW, boxH) {
  if (!(videoW > 0 && videoH > 0 && boxW > 0 && boxH > 0)) return 0;
  const video = videoW / videoH;
  const box = boxW / boxH;
  return Math.min(video, box) / Math.max(video, box);
}

/** "cover" or "contain" for a video in its tile, by the rule above. */
export function fitFor(videoW, videoH, boxW, boxH) {
  return coverVisible(videoW, videoH, boxW, boxH) >= MIN_VISIBLE ? "cover" : "contain";
}

/** The aspect (width/height) tiles should have for these videos' sizes: their mean, else 4:3. */
export function tileAspect(sizes) {
  const known = sizes.filter(([w, h]) => w > 0 && h > 0).map(([w, h]) => w / h);
  if (known.length === 0) return 4 / 3;
  return known.reduce((a, b) => a + b, 0) / known.length;
}
