// The demo's userIds carry their person's name: base64url of the name's UTF-8 bytes
// (every base64url character is legal in a userId) plus "." and a random suffix, so
// two "Alice"s differ. The demo page makes them (demo.js) and names tiles by them;
// the dashboard shows these names where no client reported a better one.

const MAX_NAME_BYTES = 42; // base64url(42 bytes) = 56 chars, plus ".xxxx" stays within 64

/** Encode a display name into a userId (see the module comment). */
export function nameToUserId(name) {
  let bytes = new TextEncoder().encode(name.trim());
  while (bytes.length > MAX_NAME_BYTES) {
    name = [...name.trim()].slice(0, -1).join("");
    bytes = new TextEncoder().encode(name);
  }
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  const encoded = btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const suffix = Math.random().toString(36).slice(2, 6).padEnd(4, "0");
  return `${encoded}.${suffix}`;
}

/** The display name inside a demo userId, or the userId itself for anyone else. */
export function userIdToName(userId) {
  const cut = userId.lastIndexOf(".");
  if (cut <= 0) return userId;
  try {
    const b64 = userId.slice(0, cut).replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "===".slice((b64.length + 3) % 4));
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(binary, (c) => c.charCodeAt(0)),
    );
  } catch {
    return userId;
  }
}

/**
 * The name inside `userId` if it is shaped like a demo userId and holds readable
 * text, else null: a userId that merely has a dot in it is not taken for one.
 */
export function demoName(userId) {
  if (!/^[A-Za-z0-9_-]{2,56}\.[a-z0-9]{4}$/.test(String(userId))) return null;
  const name = userIdToName(userId);
  return name !== userId && name.trim() && !/[\p{Cc}\p{Cf}]/u.test(name) ? name : null;
}
