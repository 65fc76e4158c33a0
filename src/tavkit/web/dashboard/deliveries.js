// The webhook card of the session list: how delivery to the app's endpoint goes, and the
// deliveries it gave up on (GET /v1/admin/webhooks and /v1/admin/webhooks/dead).
//
// Only the endpoint's origin is shown: a receiver's path may carry a token of its own,
// and the server keeps it out of its logs for the same reason.

import { badge, h, stamp } from "./common.js";

const SHOWN = 10; // dead letters listed; the API has the rest

function origin(url) {
  try {
    return new URL(url).origin;
  } catch {
    return "(unreadable URL)";
  }
}

/** The card, or null when the app has no endpoint and nothing ever died. */
export function webhookCard(state, dead) {
  if (!state || (!state.url && !state.dead)) return null;
  const failing = state.attempts > 0;
  const status = failing
    ? badge("poor", "failing")
    : state.pending > 0
      ? badge("fair", "sending")
      : badge("good", "up to date");
  const letters = dead?.deadLetters ?? [];
  return h(
    "section",
    { class: "card webhooks", id: "webhooks" },
    h("h2", {}, "Webhooks ", status),
    h(
      "p",
      {},
      state.url ? h("span", { class: "mono" }, origin(state.url)) : "no endpoint",
      ` · delivered up to event ${state.position ?? 0} of ${state.lastEventId ?? 0}`,
      ` · ${state.pending} pending · ${state.dead} given up`,
    ),
    failing
      ? h(
          "p",
          { class: "error" },
          `Event ${(state.position ?? 0) + 1} failed ${state.attempts} time(s)`,
          state.nextAttemptAt ? `; next try at ${stamp(state.nextAttemptAt)}` : "",
          state.lastError ? `: ${state.lastError}` : "",
        )
      : null,
    letters.length
      ? h(
          "table",
          { class: "dead-letters" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Event", "Type", "Session", "Tries", "Last error", "Given up"].map((t) => h("th", {}, t)),
            ),
          ),
          h(
            "tbody",
            {},
            letters.slice(0, SHOWN).map((d) =>
              h(
                "tr",
                {},
                h("td", { class: "num" }, String(d.eventId)),
                h("td", {}, d.type ?? "(removed)"),
                h(
                  "td",
                  { class: "mono" },
                  d.roomUuid ? h("a", { href: `#/session/${d.roomUuid}` }, d.roomUuid.slice(0, 8)) : "–",
                ),
                h("td", { class: "num" }, String(d.attempts)),
                h("td", {}, d.lastError),
                h("td", {}, stamp(d.diedAt)),
              ),
            ),
          ),
        )
      : null,
    letters.length
      ? h(
          "p",
          { class: "dim" },
          "Fix the receiver, then send them again: POST /v1/admin/webhooks/replay {fromEventId}.",
        )
      : null,
  );
}
