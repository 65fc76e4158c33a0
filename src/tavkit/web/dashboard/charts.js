// Hand-written SVG line charts for the dashboard: time across, one line per series.
//
// No chart library: the dashboard must work offline and with a strict CSP, so the
// charts are built from SVG elements with presentation attributes (never inline
// style attributes). A chart is a <figure> holding a title with its unit, the SVG
// (axes with "nice" ticks, light grid, lines broken where samples stop, dashed
// event markers), a legend naming every series, and a crosshair tooltip.

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 250;
const M = { left: 54, right: 14, top: 14, bottom: 30 };
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400];

/** Okabe-Ito colours: distinguishable for the common kinds of colour blindness. */
export const PALETTE = [
  "#0072b2",
  "#e69f00",
  "#009e73",
  "#d55e00",
  "#cc79a7",
  "#56b4e9",
  "#7a5195",
  "#444444",
];

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function html(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** "m:ss" (or "h:mm:ss") for a number of seconds. */
export function formatOffset(seconds) {
  if (seconds < -0.5) return `-${formatOffset(-seconds)}`;
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** A round step (1, 2 or 5 times a power of ten) giving at most `maxTicks` ticks. */
export function niceStep(span, maxTicks = 5) {
  if (!(span > 0)) return 1;
  const raw = span / maxTicks;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

/** Compact number: 950, 1.2k, 12k, 1.5M; small values keep a decimal. */
export function formatNumber(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${Math.round(v / 1e3)}k`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (a >= 10 || a === 0) return String(Math.round(v));
  return String(+v.toFixed(1));
}

/** Split points where the gap is much longer than the usual sampling interval. */
function segments(points) {
  if (points.length < 2) return [points];
  const gaps = points
    .slice(1)
    .map((p, i) => p[0] - points[i][0])
    .sort((a, b) => a - b);
  const limit = Math.max(3 * gaps[Math.floor(gaps.length / 2)], 10);
  const out = [[points[0]]];
  for (let i = 1; i < points.length; i += 1) {
    if (points[i][0] - points[i - 1][0] > limit) out.push([]);
    out.at(-1).push(points[i]);
  }
  return out;
}

/**
 * Build a chart. `series`: [{name, color, points: [[unixSeconds, value], ...]}];
 * `start`/`end`: the time axis (the session); `markers`: [{at, label, kind}] drawn
 * as dashed verticals (`kind` "error" is red). `unit` goes in the title and tooltip;
 * `floor` is the smallest top the y axis may have.
 */
export function lineChart({
  title,
  unit,
  series,
  start,
  end,
  markers = [],
  format = formatNumber,
  floor = 1,
}) {
  const figure = html("figure", "chart");
  const heading = html("figcaption", "chart-title");
  heading.append(html("span", "chart-name", title), html("span", "chart-unit", unit));
  figure.append(heading);

  const values = series.flatMap((s) => s.points.map((p) => p[1]));
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `${title} (${unit})`,
  });
  figure.append(root);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const times = series.flatMap((s) => s.points.map((p) => p[0]));
  const t0 = Math.min(start, ...times);
  const t1 = Math.max(end, t0 + 1, ...times);
  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * plotW;
  // `floor`: the least top of the y axis, so a flat 0 % loss reads as "nothing", not noise.
  const maxValue = Math.max(floor, ...values);
  const yStep = niceStep(maxValue, 4);
  const yMax = Math.max(yStep, Math.ceil(maxValue / yStep) * yStep);
  const y = (v) => M.top + plotH - (v / yMax) * plotH;

  // Grid and y axis; labels get as many decimals as the step needs (0.05 → 2).
  const decimals = yStep < 1 ? Math.ceil(-Math.log10(yStep) - 1e-9) : 0;
  const tickLabel = (v) => (decimals ? v.toFixed(decimals) : formatNumber(v));
  for (let i = 0; i * yStep <= yMax + yStep / 2; i += 1) {
    const v = i * yStep;
    root.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "grid" }));
    root.append(
      svg(
        "text",
        { x: M.left - 8, y: y(v) + 4, "text-anchor": "end", class: "tick" },
        tickLabel(v),
      ),
    );
  }
  // Time axis: offsets from the start of the session (samples before it show negative).
  const span = t1 - t0;
  const tStep = TIME_STEPS.find((s) => span / s <= 8) || 28800;
  const first = Math.ceil((t0 - start) / tStep - 1e-9) * tStep;
  for (let s = first; start + s <= t1 + 1e-6; s += tStep) {
    const tx = x(start + s);
    root.append(
      svg("line", { x1: tx, x2: tx, y1: M.top + plotH, y2: M.top + plotH + 5, class: "axis" }),
    );
    root.append(
      svg("text", { x: tx, y: H - 8, "text-anchor": "middle", class: "tick" }, formatOffset(s)),
    );
  }
  root.append(
    svg("line", {
      x1: M.left,
      x2: W - M.right,
      y1: M.top + plotH,
      y2: M.top + plotH,
      class: "axis",
    }),
  );
  root.append(svg("line", { x1: M.left, x2: M.left, y1: M.top, y2: M.top + plotH, class: "axis" }));

  for (const marker of markers) {
    if (marker.at < t0 || marker.at > t1) continue;
    const line = svg("line", {
      x1: x(marker.at),
      x2: x(marker.at),
      y1: M.top,
      y2: M.top + plotH,
      class: `marker marker-${marker.kind || "event"}`,
    });
    line.append(svg("title", {}, marker.label));
    root.append(line);
  }

  for (const s of series) {
    for (const seg of segments(s.points)) {
      if (seg.length === 1) {
        root.append(
          svg("circle", {
            cx: x(seg[0][0]),
            cy: y(seg[0][1]),
            r: 2.5,
            fill: s.color,
            class: "dot",
          }),
        );
        continue;
      }
      const d = seg.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
      root.append(
        svg("polyline", {
          points: d,
          fill: "none",
          stroke: s.color,
          "stroke-width": 2,
          "stroke-linejoin": "round",
          class: "line",
        }),
      );
    }
  }
  if (!values.length) {
    root.append(
      svg(
        "text",
        { x: M.left + plotW / 2, y: M.top + plotH / 2, "text-anchor": "middle", class: "empty" },
        "no samples",
      ),
    );
  }

  const legend = html("ul", "legend");
  for (const s of series) {
    const item = html("li");
    const swatch = svg("svg", { width: 18, height: 10, "aria-hidden": "true" });
    swatch.append(svg("line", { x1: 1, x2: 17, y1: 5, y2: 5, stroke: s.color, "stroke-width": 3 }));
    item.append(swatch, document.createTextNode(s.name));
    legend.append(item);
  }
  figure.append(legend);
  crosshair(figure, root, { series, x, t0, t1, start, plotW, plotH, unit, format });
  return figure;
}

/** A vertical line that follows the pointer and a tooltip with each series' value there. */
function crosshair(figure, root, { series, x, t0, t1, start, plotW, plotH, unit, format }) {
  const line = svg("line", { y1: M.top, y2: M.top + plotH, class: "cursor", visibility: "hidden" });
  root.append(line);
  const tip = html("div", "chart-tip");
  tip.hidden = true;
  figure.append(tip);
  root.addEventListener("pointerleave", () => {
    line.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });
  root.addEventListener("pointermove", (event) => {
    const box = root.getBoundingClientRect();
    const vx = ((event.clientX - box.left) / box.width) * W;
    const t = t0 + ((vx - M.left) / plotW) * (t1 - t0);
    const rows = [];
    for (const s of series) {
      let best = null;
      for (const p of s.points) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
      if (best && Math.abs(best[0] - t) <= Math.max(2.5, (t1 - t0) / 60)) rows.push([s, best[1]]);
    }
    if (!rows.length || vx < M.left || vx > W - M.right) {
      line.setAttribute("visibility", "hidden");
      tip.hidden = true;
      return;
    }
    line.setAttribute("x1", x(t));
    line.setAttribute("x2", x(t));
    line.setAttribute("visibility", "visible");
    tip.replaceChildren(html("div", "tip-time", formatOffset(t - start)));
    for (const [s, v] of rows) {
      const row = html("div", "tip-row");
      const swatch = svg("svg", { width: 10, height: 10, "aria-hidden": "true" });
      swatch.append(svg("rect", { width: 10, height: 10, rx: 2, fill: s.color }));
      row.append(swatch, document.createTextNode(` ${s.name}: ${format(v)} ${unit}`));
      tip.append(row);
    }
    tip.hidden = false;
    const fx = event.clientX - figure.getBoundingClientRect().left;
    tip.style.left = `${Math.min(fx + 12, figure.clientWidth - 180)}px`;
  });
}
