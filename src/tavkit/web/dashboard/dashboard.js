// The operator's dashboard: sign in with the admin userSig (signed with the admin key),
// list sessions, open one.
//
// Everything comes from the REST API with the usual X-TAvKit-* headers; the
// credentials live in sessionStorage, so they vanish with the tab. Routing is by
// hash (#/ and #/session/<uuid>) so the page works wherever the server is mounted.
// All text from the server goes in through textContent, never as HTML.

import { formatOffset } from "./charts.js";
import { KEY, api, badge, credentials, describe, grade, h, ms, nameOf, pct, stamp } from "./common.js";
import { roomLabel } from "../protocol.js";
import { renderSession } from "./session.js";
import { callsCard } from "./calls.js";
import { webhookCard } from "./deliveries.js";

const LIST_REFRESH_MS = 10000;

const main = document.getElementById("main");
const who = document.getElementById("who");
const view = { mode: "participant", info: false };
let timer = null;

function route() {
  clearTimeout(timer);
  timer = null;
  const auth = credentials();
  who.replaceChildren();
  if (!auth) return renderSignIn();
  who.append(
    h("span", {}, `${auth.userId} · app ${auth.sdkAppId}`),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
  const match = location.hash.match(/^#\/session\/([0-9a-f-]{36})$/);
  return match
    ? renderSession(match[1], { main, view, refreshLater, signIn: renderSignIn })
    : renderList();
}

function signOut() {
  sessionStorage.removeItem(KEY);
  location.hash = "#/";
  route();
}

function refreshLater(fn, delay) {
  clearTimeout(timer);
  timer = setTimeout(fn, delay);
}

// -- sign-in ---------------------------------------------------------------------

function renderSignIn(message) {
  const form = h(
    "form",
    { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h(
      "p",
      { class: "hint" },
      "The admin's userSig: the admin userId signed with the server's admin key (a userSig " +
        "signed with the app key is an ordinary user's and is refused), e.g. from ",
      h("code", {}, "TAVKIT_ADMIN_KEY=... tavkit usersig admin --sdk-app-id ID --expire 3600"),
      ".",
    ),
    h(
      "label",
      {},
      "sdkAppId",
      h("input", {
        name: "sdkAppId",
        inputmode: "numeric",
        required: true,
        autocomplete: "off",
        // A single-app server names its app (tavkit.server.admin.dashboard).
        value: document.querySelector('meta[name="tavkit-sdk-app-id"]')?.content ?? "",
      }),
    ),
    h(
      "label",
      {},
      "Admin userId",
      h("input", { name: "userId", value: "administrator", required: true }),
    ),
    h(
      "label",
      {},
      "userSig",
      h("textarea", { name: "userSig", rows: 3, required: true, spellcheck: "false" }),
    ),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const auth = {
      sdkAppId: String(data.get("sdkAppId")).trim(),
      userId: String(data.get("userId")).trim(),
      userSig: String(data.get("userSig")).trim(),
    };
    sessionStorage.setItem(KEY, JSON.stringify(auth));
    try {
      await api("v1/admin/sessions", { limit: 1 });
    } catch (err) {
      sessionStorage.removeItem(KEY);
      return renderSignIn(describe(err));
    }
    location.hash = "#/";
    route();
  });
  main.replaceChildren(form);
}

// -- session list ------------------------------------------------------------------

async function renderList() {
  let sessions;
  let quota;
  let hooks;
  let dead;
  let calls;
  try {
    [{ sessions }, quota, hooks, dead, calls] = await Promise.all([
      api("v1/admin/sessions", { limit: 100 }),
      api("v1/admin/recording/quota").catch(() => null),
      api("v1/admin/webhooks").catch(() => null),
      api("v1/admin/webhooks/dead", { limit: 10 }).catch(() => null),
      api("v1/calls", { limit: 20 }).catch(() => null),
    ]);
  } catch (err) {
    if (err.status === 401) return renderSignIn(describe(err));
    main.replaceChildren(h("p", { class: "error", role: "alert" }, describe(err)));
    return refreshLater(route, LIST_REFRESH_MS);
  }
  const rows = sessions.map((s) => {
    const quality = grade(s.worst.packetLoss, s.worst.rttMs);
    const open = s.closedAt === null;
    return h(
      "tr",
      {
        class: "row",
        "data-uuid": s.roomUuid,
        tabindex: 0,
        onclick: () => (location.hash = `#/session/${s.roomUuid}`),
        onkeydown: (e) => e.key === "Enter" && (location.hash = `#/session/${s.roomUuid}`),
      },
      h("td", {}, roomLabel(s.roomId)),
      h("td", { class: "mono" }, s.roomUuid.slice(0, 8)),
      h("td", {}, stamp(s.openedAt)),
      h("td", { class: "num" }, formatOffset(s.duration)),
      h(
        "td",
        { class: "members", title: s.members.join(", ") },
        s.members.map((userId) => nameOf(userId, s.names) || userId).join(", ") || "–",
      ),
      h(
        "td",
        {},
        badge(quality, quality),
        " ",
        h("span", { class: "dim" }, `${pct(s.worst.packetLoss)} · ${ms(s.worst.rttMs)}`),
      ),
      h("td", { class: "num" }, s.errors ? badge("poor", String(s.errors)) : "0"),
      h(
        "td",
        {},
        open ? badge("open", "open") : h("span", { class: "dim" }, `closed (${s.closeReason})`),
      ),
    );
  });
  main.replaceChildren(
    h(
      "div",
      { class: "toolbar" },
      h("h1", {}, "Sessions"),
      h("span", { class: "dim" }, `${sessions.length} most recent · refreshes every 10 s`),
    ),
    quota ? recordingDisk(quota) : null,
    webhookCard(hooks, dead),
    callsCard(calls?.calls),
    sessions.length
      ? h(
          "table",
          { class: "sessions" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              [
                "Room",
                "Session",
                "Opened",
                "Duration",
                "Members",
                "Worst quality",
                "Errors",
                "Status",
              ].map((t) => h("th", {}, t)),
            ),
          ),
          h("tbody", {}, rows),
        )
      : h(
          "p",
          { class: "card empty" },
          "No sessions yet. They appear here as soon as someone enters a room.",
        ),
  );
  refreshLater(route, LIST_REFRESH_MS);
}

// -- recording quotas ----------------------------------------------------------------

const bytes = (n) =>
  n >= 1024 ** 3 / 10 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
const hours = (s) => (s > 0 ? `${+(s / 3600).toFixed(2)} h` : "no limit");

/** The recordings disk against its floor, and the app's limits (GET /v1/admin/recording/quota). */
function recordingDisk(quota) {
  const limits =
    `Recording limits: ${hours(quota.maxFileSeconds)} per file · ` +
    `${hours(quota.maxSessionSeconds)} per session · ` +
    (quota.minFreeBytes > 0 ? `floor ${bytes(quota.minFreeBytes)}` : "no disk floor") +
    ` · ${bytes(quota.freeBytes)} free`;
  if (quota.belowFloor)
    return h(
      "div",
      { class: "card disk-floor", id: "disk-floor", role: "alert" },
      h(
        "p",
        { class: "error" },
        badge("poor", "recording stopped"),
        `${bytes(quota.freeBytes)} free on the recordings disk, below the floor of ` +
          `${bytes(quota.minFreeBytes)}: every recording was stopped (its files are complete) ` +
          "and new recordings are refused until there is room.",
      ),
      h("p", { class: "dim" }, limits),
    );
  return h(
    "p",
    { class: "dim", id: "recording-limits" },
    limits,
    quota.lastDiskStopAt
      ? ` · recording last stopped at the disk floor ${stamp(quota.lastDiskStopAt)}`
      : "",
  );
}

// -- one session ---------------------------------------------------------------------

/** Series for one quality field: per participant (summed or worst of their links) or per link. */
window.addEventListener("hashchange", route);
route();
