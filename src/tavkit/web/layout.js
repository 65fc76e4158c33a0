// Layout helpers: which layout a call uses, the grid's shape, the draggable
// picture-in-picture. The arithmetic is pure so it can be reasoned about (and
// tested) without a browser; only makeDraggable touches the DOM.

/**
 * "solo" (only us), "pip" (1v1: the other fills, we float), "grid" (3 and more), or
 * "share" while a screen is shown (the screen large, the cameras small: screen-tiles.js).
 */
export function layoutFor(count, sharing = false) {
  if (sharing) return "share";
  if (count <= 1) return "solo";
  if (count === 2) return "pip";
  return "grid";
}

/**
 * The shapes (columns × rows) a grid of `count` tiles may take, as Meet's grid does:
 * 2×2 for four, 3×3 for seven to nine; three may also stand in a row or a column and
 * five or six in 3×2 or 2×3, whichever fits the screen. A phone held upright fits
 * seven to nine in two columns (2×4, 2×5): its 3×3 tiles would be a third of the
 * width, half the area. Past nine, any shape.
 */
export function gridChoices(count) {
  if (count <= 2) return [[count, 1], [1, count]];
  if (count === 3) return [[2, 2], [3, 1], [1, 3]];
  if (count === 4) return [[2, 2]];
  if (count <= 6) return [[3, 2], [2, 3]];
  if (count <= 8) return [[3, 3], [2, 4]];
  if (count === 9) return [[3, 3], [2, 5]];
  return Array.from({ length: count }, (_, i) => [i + 1, Math.ceil(count / (i + 1))]);
}

/**
 * Columns and rows for `count` tiles in a `width`×`height` box.
 *
 * Of gridChoices(count), keeps the shape whose tiles, fitted at `aspect`
 * (width/height) with `gap` pixels between them, are largest: three on a wide
 * desktop stand in a row, on a phone upright in a column. Also returns the tile's
 * `width` and `height` at that aspect.
 */
export function gridShape(count, width, height, aspect = 4 / 3, gap = 8) {
  let best = { cols: 1, rows: Math.max(1, count), size: -1, tileW: 0 };
  if (count <= 0 || width <= 0 || height <= 0) return { cols: 1, rows: 1, width: 0, height: 0 };
  for (const [cols, rows] of gridChoices(count)) {
    const cellW = (width - gap * (cols - 1)) / cols;
    const cellH = (height - gap * (rows - 1)) / rows;
    if (cellW <= 0 || cellH <= 0) continue;
    const tileW = Math.min(cellW, cellH * aspect);
    const size = tileW * (tileW / aspect);
    // Prefer fewer empty cells when sizes tie within 2%.
    if (size > best.size * 1.02 || (size >= best.size * 0.98 && cols * rows < best.cols * best.rows)) {
      best = { cols, rows, size, tileW };
    }
  }
  // The tile itself, at `aspect`: tiles keep the pictures' shape instead of stretching.
  return { cols: best.cols, rows: best.rows, width: best.tileW, height: best.tileW / aspect };
}

/** The corner ("tl", "tr", "bl", "br") nearest to a box whose centre is (x, y). */
export function nearestCorner(x, y, width, height) {
  return `${y < height / 2 ? "t" : "b"}${x < width / 2 ? "l" : "r"}`;
}

/**
 * Let the user drag `el` (absolutely positioned inside `bounds`) with a pointer;
 * on release it snaps to the nearest corner, reported through `onCorner`.
 *
 * Pointer events with capture cover mouse, touch and pen alike. A press that
 * barely moves is left alone so a tap still reaches the tile. Returns a function
 * that removes the listeners.
 */
export function makeDraggable(el, bounds, onCorner) {
  let drag = null;
  const down = (event) => {
    if (event.button !== 0) return;
    const box = el.getBoundingClientRect();
    drag = { id: event.pointerId, dx: event.clientX - box.left, dy: event.clientY - box.top };
    drag.startX = event.clientX;
    drag.startY = event.clientY;
    drag.moved = false;
  };
  const move = (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    if (!drag.moved && Math.hypot(event.clientX - drag.startX, event.clientY - drag.startY) < 4) {
      return;
    }
    if (!drag.moved) {
      drag.moved = true;
      el.setPointerCapture(event.pointerId);
      el.classList.add("tv-dragging");
    }
    const area = bounds.getBoundingClientRect();
    const box = el.getBoundingClientRect();
    const x = clamp(event.clientX - area.left - drag.dx, 0, area.width - box.width);
    const y = clamp(event.clientY - area.top - drag.dy, 0, area.height - box.height);
    el.style.left = `${x}px`;
    el.style.top = `${y}px`;
    el.style.right = "auto";
    el.style.bottom = "auto";
  };
  const up = (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    const moved = drag.moved;
    drag = null;
    if (!moved) return;
    el.classList.remove("tv-dragging");
    const area = bounds.getBoundingClientRect();
    const box = el.getBoundingClientRect();
    const corner = nearestCorner(
      box.left - area.left + box.width / 2,
      box.top - area.top + box.height / 2,
      area.width,
      area.height,
    );
    for (const side of ["left", "top", "right", "bottom"]) el.style[side] = "";
    onCorner(corner);
  };
  el.addEventListener("pointerdown", down);
  el.addEventListener("pointermove", move);
  el.addEventListener("pointerup", up);
  el.addEventListener("pointercancel", up);
  return () => {
    el.removeEventListener("pointerdown", down);
    el.removeEventListener("pointermove", move);
    el.removeEventListener("pointerup", up);
    el.removeEventListener("pointercancel", up);
  };
}

function clamp(value, low, high) {
  return Math.max(low, Math.min(high, value));
}
