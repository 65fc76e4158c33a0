// One session: who was in it, how the call went (charts), and what happened when.
//
// renderSession(uuid, ctx) fetches the session, its client logs, its quality
// samples and its messages in parallel and renders them; `ctx` is the shell's:
// {main, view, refreshLater, signIn}. An open session re-renders every few seconds.
//
// People are shown by name beside their userId: the names clients reported
// (`user-info` log lines, see server/admin/dashboard.py), else a demo userId's own.
// The timeline holds the server's event log (joins, leaves, mute and camera changes),
// the chat messages and the client logs, in time order.

import { PALETTE, formatOffset, lineChart } from "./charts.js";
import { roomLabel } from "../protocol.js";
import {
  api,
  badge,
  clock,
  describe,
  grade,
  h,
  kbps,
  ms,
  nameOf,
  offset,
  pct,
  person,
  stamp,
} from "./common.js";

const SESSION_REFRESH_MS = 5000;
const STOP_REASONS = {
  left: "member left",
  stopped: "stopped by the admin",
  "session-closed": "session closed",
  shutdown: "server shut down",
  "file-limit": "file limit: goes on in the next file",
  "session-limit": "session limit reached",
  "disk-floor": "disk below its free-space floor",
  crashed: "server died (file cut)",
  "replica-lost": "recording replica died: another went on (file cut)",
  "lease-lost": "another replica took the recording over",
  error: "the writer failed",
};
const SERVER_EVENTS = {
  opened: "event",
  joined: "join",
  left: "leave",
  "timed-out": "error",
  replaced: "leave",
  removed: "leave",
  expired: "leave",
  closed: "event",
  muted: "mute",
  unmuted: "mute",
  "camera-off": "mute",
  "camera-on": "mute",
};
const USER_INFO = "user-info"; // a client's log line naming the others
const MESSAGE_CHARS = 200; // of a chat message, on the timeline

/** userId → the latest name a client reported for a member of `session`. */
function reportedNames(session, logs) {
  const members = new Set(session.members.map((m) => m.userId));
  const names = {};
  for (const line of logs) {
    const reported = line.event === USER_INFO ? line.data?.names : null;
    if (!reported || typeof reported !== "object") continue;
    for (const [userId, name] of Object.entries(reported)) {
      if (members.has(userId) && typeof name === "string" && name.trim()) names[userId] = name.trim();
    }
  }
  return names;
}

function seriesOf(quality, field, { mode, combine, scale = 1, colors, names }) {
  const label = (userId) => nameOf(userId, names) || userId;
  const groups = new Map();
  for (const s of quality) {
    if (s[field] === null || s[field] === undefined) continue;
    const key = mode === "participant" ? s.userId : `${s.userId} → ${s.peerId}`;
    if (!groups.has(key)) groups.set(key, { user: s.userId, peer: s.peerId, ticks: new Map() });
    const tick = Math.round(s.at * 2) / 2; // one reporter tick samples every link at once
    const ticks = groups.get(key).ticks;
    ticks.set(tick, ticks.has(tick) ? combine(ticks.get(tick), s[field]) : s[field]);
  }
  const named = [...groups.values()].map((g) => ({
    ...g,
    name: mode === "participant" ? label(g.user) : `${label(g.user)} → ${label(g.peer)}`,
  }));
  return named
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((g, i) => ({
      name: g.name,
      color: mode === "participant" ? colors.get(g.user) : PALETTE[i % PALETTE.length],
      points: [...g.ticks.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => [t, v * scale]),
    }));
}

function participants(session, quality, logs) {
  const users = [
    ...new Set([...session.members.map((m) => m.userId), ...quality.map((q) => q.userId)]),
  ];
  return users.map((userId) => {
    const spans = session.members.filter((m) => m.userId === userId);
    const mine = quality.filter((q) => q.userId === userId);
    const avg = (field) => {
      const vals = mine.map((q) => q[field]).filter((v) => v !== null);
      return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
    };
    const max = (field) => {
      const vals = mine.map((q) => q[field]).filter((v) => v !== null);
      return vals.length ? Math.max(...vals) : null;
    };
    return {
      userId,
      joinedAt: spans.length ? spans[0].joinedAt : null,
      left: spans.at(-1) || null,
      paths: [...new Set(mine.map((q) => q.candidateType).filter(Boolean))],
      inKbps: avg("bitrateInKbps"),
      outKbps: avg("bitrateOutKbps"),
      loss: max("packetLoss"),
      rtt: max("rttMs"),
      errors: logs.filter((l) => l.userId === userId && l.error).length,
    };
  });
}

// A client's join timeline for one remote member (tavkit/protocol/timeline.py): shown
// whatever the info filter, as "→ peer: enter 86 · socket-open 136 · … ms after start()".
const JOIN_TIMELINE = "join-timeline";

function joinPhases(data, names) {
  return h(
    "span",
    { class: "tl-phases" },
    `→ ${nameOf(data.peerId, names) || data.peerId}: `,
    data.phases.map(([phase, ms], i) =>
      h("span", { class: "tl-phase", "data-phase": phase }, `${i ? " · " : ""}${phase} ${Math.round(ms)}`),
    ),
    " ms after start()",
  );
}

function timeline(session, logs, messages, names, start, showInfo) {
  const items = session.events.map((e) => ({
    at: e.at,
    kind: SERVER_EVENTS[e.kind] || "event",
    label: e.kind,
    userId: e.userId,
    text: e.detail || "",
    source: "server",
  }));
  for (const message of messages) {
    const text = message.kind === "text" ? message.text : JSON.stringify(message.data);
    items.push({
      at: message.sentAt,
      kind: "chat",
      label: message.kind === "text" ? "message" : "custom message",
      userId: message.from,
      text: text.length > MESSAGE_CHARS ? `${text.slice(0, MESSAGE_CHARS)}…` : text,
      source: "chat",
    });
  }
  for (const line of logs) {
    if (line.event === JOIN_TIMELINE && line.data) {
      items.push({
        at: line.at,
        kind: "join",
        label: line.event,
        userId: line.userId,
        text: joinPhases(line.data, names),
        source: "client",
      });
      continue;
    }
    if (line.level === "debug" || (line.level === "info" && !showInfo)) continue;
    const error = line.error
      ? `${line.error.module} ${line.error.errorCode}: ${line.error.errorMsg}`
      : "";
    const data = line.data ? JSON.stringify(line.data) : "";
    items.push({
      at: line.at,
      kind: line.level === "error" ? "error" : line.level === "warn" ? "warn" : "info",
      label: line.event,
      userId: line.userId,
      text: [error, data].filter(Boolean).join(" "),
      source: "client",
    });
  }
  items.sort((a, b) => a.at - b.at);
  return h(
    "ol",
    { class: "timeline" },
    items.map((item) =>
      h(
        "li",
        { class: `tl tl-${item.kind}`, "data-kind": item.label },
        h("span", { class: "tl-time mono" }, offset(item.at - start)),
        h("span", { class: "tl-clock dim mono" }, clock(item.at)),
        badge(item.kind, item.label),
        h("span", { class: "tl-user" }, item.userId ? person(item.userId, names) : ""),
        h("span", { class: "tl-text" }, item.text),
        h("span", { class: "tl-source dim" }, item.source),
      ),
    ),
  );
}

export async function renderSession(uuid, ctx) {
  let session;
  let logs;
  let quality;
  let recorded;
  let chat;
  try {
    [session, { logs }, { quality }, recorded, chat] = await Promise.all([
      api(`v1/sessions/${uuid}`),
      api(`v1/sessions/${uuid}/logs`),
      api(`v1/sessions/${uuid}/quality`),
      api(`v1/sessions/${uuid}/recordings`).catch(() => null),
      api(`v1/sessions/${uuid}/messages`, { limit: 1000 }).catch(() => null),
    ]);
  } catch (err) {
    if (err.status === 401 && !err.seed?.errorMsg?.includes("never in"))
      return ctx.signIn(describe(err));
    ctx.main.replaceChildren(
      h("a", { href: "#/", class: "back" }, "← Sessions"),
      h("p", { class: "error", role: "alert" }, describe(err)),
    );
    return undefined;
  }
  const start = session.openedAt;
  const end = session.closedAt ?? Math.max(Date.now() / 1000, ...quality.map((q) => q.at));
  const people = participants(session, quality, logs);
  const names = reportedNames(session, logs);
  const colors = new Map(people.map((p, i) => [p.userId, PALETTE[i % PALETTE.length]]));
  const worstLoss = Math.max(-1, ...people.map((p) => p.loss ?? -1));
  const worstRtt = Math.max(-1, ...people.map((p) => p.rtt ?? -1));
  const quality_ = grade(worstLoss < 0 ? null : worstLoss, worstRtt < 0 ? null : worstRtt);
  const errors = logs.filter((l) => l.error).length;
  const markers = [
    ...session.events
      .filter((e) => ["joined", "left", "timed-out", "removed", "replaced"].includes(e.kind))
      .map((e) => ({
        at: e.at,
        label: `${e.kind} ${e.userId || ""}`,
        kind: e.kind === "timed-out" ? "error" : "event",
      })),
    ...logs
      .filter((l) => l.error)
      .map((l) => ({
        at: l.at,
        label: `${l.userId}: ${l.error.module} ${l.error.errorCode}`,
        kind: "error",
      })),
  ];
  const opts = { mode: ctx.view.mode, colors, names };
  const sum = (a, b) => a + b;
  const worst = (a, b) => Math.max(a, b);
  const charts = [
    lineChart({
      title: "Bitrate received",
      unit: "kbps",
      floor: 100,
      start,
      end,
      markers,
      series: seriesOf(quality, "bitrateInKbps", { ...opts, combine: sum }),
    }),
    lineChart({
      title: "Bitrate sent",
      unit: "kbps",
      floor: 100,
      start,
      end,
      markers,
      series: seriesOf(quality, "bitrateOutKbps", { ...opts, combine: sum }),
    }),
    lineChart({
      title: "Packet loss",
      unit: "%",
      floor: 2,
      start,
      end,
      markers,
      series: seriesOf(quality, "packetLoss", { ...opts, combine: worst, scale: 100 }),
    }),
    lineChart({
      title: "Round-trip time",
      unit: "ms",
      floor: 100,
      start,
      end,
      markers,
      series: seriesOf(quality, "rttMs", { ...opts, combine: worst }),
    }),
  ];
  const modeButton = (mode, text) =>
    h(
      "button",
      {
        type: "button",
        "aria-pressed": String(ctx.view.mode === mode),
        onclick: () => {
          Object.assign(ctx.view, { mode });
          renderSession(uuid, ctx);
        },
      },
      text,
    );
  const status =
    session.closedAt === null
      ? badge("open", "open")
      : badge("closed", `closed · ${session.closeReason}`);

  ctx.main.replaceChildren(
    h("a", { href: "#/", class: "back" }, "← Sessions"),
    h(
      "div",
      { class: "toolbar" },
      h("h1", {}, `Room ${roomLabel(session.roomId)}`),
      h("span", { class: "mono dim" }, session.roomUuid),
      status,
    ),
    h(
      "div",
      { class: "cards" },
      card("Opened", stamp(start)),
      card("Duration", formatOffset(end - start)),
      card("Participants", String(people.length)),
      card(
        "Worst quality",
        badge(quality_, quality_),
        `${pct(worstLoss < 0 ? null : worstLoss)} loss · ${ms(worstRtt < 0 ? null : worstRtt)} RTT`,
      ),
      card("Client errors", String(errors)),
    ),
    h(
      "table",
      { class: "people" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          [
            "Participant",
            "Joined",
            "Left",
            "Media path",
            "Received",
            "Sent",
            "Worst loss",
            "Max RTT",
            "Errors",
          ].map((t) => h("th", {}, t)),
        ),
      ),
      h(
        "tbody",
        {},
        people.map((p) =>
          h(
            "tr",
            { "data-user": p.userId },
            h(
              "td",
              {},
              h("span", { class: "dot" }, swatch(colors.get(p.userId))),
              person(p.userId, names),
            ),
            h("td", { class: "num" }, p.joinedAt ? `+${formatOffset(p.joinedAt - start)}` : "–"),
            h(
              "td",
              {},
              p.left?.leftAt
                ? `+${formatOffset(p.left.leftAt - start)} (${p.left.leaveReason})`
                : "in the call",
            ),
            h(
              "td",
              {},
              p.paths.length ? p.paths.map((t) => badge(t === "relay" ? "fair" : "info", t)) : "–",
            ),
            h("td", { class: "num" }, kbps(p.inKbps)),
            h("td", { class: "num" }, kbps(p.outKbps)),
            h("td", { class: "num" }, pct(p.loss)),
            h("td", { class: "num" }, ms(p.rtt)),
            h("td", { class: "num" }, p.errors ? badge("poor", String(p.errors)) : "0"),
          ),
        ),
      ),
    ),
    recordingsTable(recorded, start) ?? "", // replaceChildren would write out a null
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "Quality over time"),
      h(
        "div",
        { class: "segmented", role: "group" },
        modeButton("participant", "Per participant"),
        modeButton("link", "Per connection"),
      ),
    ),
    h("div", { class: "charts" }, charts),
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "Timeline"),
      h(
        "label",
        { class: "check" },
        h("input", {
          type: "checkbox",
          checked: ctx.view.info,
          onchange: (e) => {
            Object.assign(ctx.view, { info: e.target.checked });
            renderSession(uuid, ctx);
          },
        }),
        "client info logs",
      ),
    ),
    timeline(session, logs, chat?.messages || [], names, start, ctx.view.info),
  );
  if (session.closedAt === null)
    ctx.refreshLater(() => renderSession(uuid, ctx), SESSION_REFRESH_MS);
  return undefined;
}

/** The session's files, each with why it ended (GET /v1/sessions/{uuid}/recordings). */
function recordingsTable(recorded, start) {
  if (!recorded || (!recorded.recordings.length && !recorded.recording)) return null;
  const size = (n) => (n === null ? "–" : `${(n / 1024 ** 2).toFixed(1)} MiB`);
  return h(
    "section",
    { class: "recordings" },
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "Recordings"),
      recorded.recording ? badge("open", "recording") : h("span", { class: "dim" }, "not recording"),
    ),
    h(
      "table",
      { class: "recordings" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Participant", "Started", "Length", "Size", "Status", "Why it ended"].map((t) =>
            h("th", {}, t),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        recorded.recordings.map((r) =>
          h(
            "tr",
            { "data-recording": r.id, "data-stop-reason": r.stopReason || "" },
            h("td", {}, r.userId),
            h("td", { class: "num" }, `+${formatOffset(r.startedAt - start)}`),
            h("td", { class: "num" }, r.duration === null ? "–" : formatOffset(r.duration)),
            h("td", { class: "num" }, size(r.size)),
            h(
              "td",
              {},
              badge(
                { complete: "good", recording: "open", partial: "fair", failed: "poor" }[r.status],
                r.status,
              ),
            ),
            h(
              "td",
              { class: "stop-reason" },
              r.stopReason === "disk-floor" || r.stopReason === "error"
                ? badge("poor", STOP_REASONS[r.stopReason])
                : STOP_REASONS[r.stopReason] || r.stopReason || "–",
            ),
          ),
        ),
      ),
    ),
  );
}

function swatch(color) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  el.setAttribute("width", "10");
  el.setAttribute("height", "10");
  const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  for (const [k, v] of Object.entries({ width: 10, height: 10, rx: 5, fill: color || "#888" }))
    rect.setAttribute(k, v);
  el.append(rect);
  return el;
}

function card(title, ...value) {
  return h(
    "div",
    { class: "card stat" },
    h("div", { class: "stat-title" }, title),
    h("div", { class: "stat-value" }, value),
  );
}
