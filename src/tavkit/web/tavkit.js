// Entry point: `<script type="module" src="/tavkit/tavkit.js">` registers the elements.
//
// define() is idempotent, so a page that imports tavkit twice (or defines one of the
// tags itself first) keeps working instead of throwing on a second registration.

import { TavkitCall } from "./tavkit-call.js";
import { TavkitDialog } from "./tavkit-dialog.js";

/** Register <tavkit-call> and <tavkit-dialog> (each only if not yet defined). */
export function define(registry = globalThis.customElements) {
  if (!registry.get("tavkit-dialog")) registry.define("tavkit-dialog", TavkitDialog);
  if (!registry.get("tavkit-call")) registry.define("tavkit-call", TavkitCall);
}

define();

export { TavkitCall, TavkitDialog };
