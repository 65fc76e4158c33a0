// The calls card of the session list: the app's newest calls (GET /v1/calls, all of
// them for the admin) with each callee's outcome, next to the sessions they happened in.

import { formatOffset } from "./charts.js";
import { badge, h, stamp } from "./common.js";

const SHOWN = 20;

// How each state reads at a glance (badge colour).
const TONE = {
  ringing: "fair",
  accepted: "good",
  ended: "open",
  declined: "poor",
  busy: "poor",
  timeout: "poor",
  cancelled: "open",
};

function outcome(callee) {
  const tone = TONE[callee.outcome] ?? "open";
  return h("span", { class: "callee" }, `${callee.userId} `, badge(tone, callee.outcome));
}

/** The card, or null when the app has had no call. */
export function callsCard(calls) {
  if (!calls?.length) return null;
  return h(
    "section",
    { class: "card calls", id: "calls" },
    h("h2", {}, "Calls"),
    h(
      "table",
      { class: "call-list" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Started", "Caller", "Callees", "Media", "State", "Talk time", "Session"].map((t) =>
            h("th", {}, t),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        calls.slice(0, SHOWN).map((c) =>
          h(
            "tr",
            { "data-call-id": c.callId },
            h("td", {}, stamp(c.createdAt)),
            h("td", {}, c.caller),
            h("td", {}, c.callees.map(outcome)),
            h("td", {}, c.media),
            h(
              "td",
              {},
              badge(TONE[c.state] ?? "open", c.state),
              c.endReason ? h("span", { class: "dim" }, ` ${c.endReason}`) : null,
            ),
            h("td", { class: "num" }, c.duration === null ? "–" : formatOffset(c.duration)),
            h(
              "td",
              { class: "mono" },
              c.roomUuid ? h("a", { href: `#/session/${c.roomUuid}` }, c.roomUuid.slice(0, 8)) : "–",
            ),
          ),
        ),
      ),
    ),
  );
}
