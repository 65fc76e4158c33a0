// What every dashboard view shares: the REST client, DOM building, formatting.
//
// The credentials live in sessionStorage (gone with the tab) and go out as the usual
// X-TAvKit-* headers; all text from the server enters the page through textContent.

import { formatNumber, formatOffset } from "./charts.js";
import { demoName } from "../demo/names.js";
import { gradeSample } from "../quality.js";

export const KEY = "tavkit-dashboard-auth";
export const BASE = new URL(".", location.href);
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// -- API -------------------------------------------------------------------------

export function credentials() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export async function api(path, params = {}) {
  const auth = credentials();
  const url = new URL(path, BASE);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  const response = await fetch(url, {
    cache: "no-store",
    headers: {
      "X-TAvKit-SdkAppId": String(auth?.sdkAppId ?? ""),
      "X-TAvKit-UserId": auth?.userId ?? "",
      "X-TAvKit-UserSig": auth?.userSig ?? "",
    },
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const err = new Error(body?.errorMsg || `HTTP ${response.status}`);
    err.seed = body && "errorCode" in body ? body : null;
    err.status = response.status;
    throw err;
  }
  return body;
}

export function describe(err) {
  return err.seed
    ? `${err.seed.module} ${err.seed.errorCode}: ${err.seed.errorMsg}`
    : String(err.message || err);
}

// -- formatting ------------------------------------------------------------------

export const offset = (s) => (s < -0.5 ? formatOffset(s) : `+${formatOffset(s)}`);
export const clock = (at) => new Date(at * 1000).toLocaleTimeString([], { hour12: false });
export const stamp = (at) => {
  const d = new Date(at * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(at)}`;
};
export const pct = (loss) =>
  loss === null || loss === undefined ? "–" : `${(loss * 100).toFixed(loss < 0.1 ? 1 : 0)} %`;
export const ms = (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`);
export const kbps = (v) => (v === null || v === undefined ? "–" : `${formatNumber(v)} kbps`);

/** good / fair / poor from the worst loss and round-trip time, by the call's bars' rule (quality.js). */
export function grade(loss, rtt) {
  if ((loss ?? null) === null && (rtt ?? null) === null) return "unknown";
  return gradeSample({ packetLoss: loss ?? undefined, rttMs: rtt ?? undefined }, { video: false }).level;
}

// -- people ----------------------------------------------------------------------

/** The name to show for `userId`: one a client reported (`names`), else a demo userId's, else none. */
export function nameOf(userId, names = {}) {
  return (Object.hasOwn(names, userId) && names[userId]) || demoName(userId) || "";
}

/** A member as the dashboard shows one: the name, and the userId (the identity) beside it. */
export function person(userId, names) {
  const name = nameOf(userId, names);
  if (!name || name === userId) return h("span", { class: "person" }, userId || "");
  return h(
    "span",
    { class: "person", title: userId },
    h("span", { class: "person-name" }, name),
    " ",
    h("span", { class: "person-id mono dim" }, userId),
  );
}

export function badge(kind, text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

// -- routing ---------------------------------------------------------------------
