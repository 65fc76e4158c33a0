// <tavkit-dialog>: the seed's dialog-component, a small modal that answers a promise.
//
// Built on the native <dialog> (focus trap, Escape, top layer for free) inside an
// open shadow root. show() resolves with the id of the button pressed, or with the
// `dismiss` id when the user presses Escape. While shown, the host carries `open`
// and `data-kind`, so a page (or a test) can see which dialog is up.

import { icons } from "./icons.js";

const STYLESHEET = new URL("./tavkit.css", import.meta.url).href;

/** A modal dialog with a title, a message and a row of buttons. */
export class TavkitDialog extends HTMLElement {
  #resolve = null;
  #dialog = null;

  connectedCallback() {
    if (this.shadowRoot) return;
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML =
      `<link rel="stylesheet" href="${STYLESHEET}">` +
      '<dialog class="tv-dialog" aria-labelledby="title" aria-describedby="message">' +
      '<div class="tv-dialog-icon" part="icon"></div>' +
      '<h2 class="tv-dialog-title" id="title" part="title"></h2>' +
      '<p class="tv-dialog-message" id="message" part="message"></p>' +
      '<div class="tv-dialog-actions" part="actions"></div>' +
      "</dialog>";
    this.#dialog = root.querySelector("dialog");
    this.#dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.close(this.dataset.dismiss || null);
    });
  }

  /** Whether the dialog is showing. */
  get open() {
    return this.hasAttribute("open");
  }

  /**
   * Show the dialog; resolves with the chosen action's id.
   *
   * `actions` is a list of {id, label, variant} (variant "primary", "danger" or
   * "plain"); `dismiss` is what Escape answers. Showing again replaces (and
   * dismisses) a dialog that is already up.
   */
  show({ kind = "info", title = "", message = "", icon = "", actions = [], dismiss = null }) {
    if (!this.shadowRoot) this.connectedCallback();
    if (this.open) this.close(this.dataset.dismiss || null);
    const root = this.shadowRoot;
    root.querySelector(".tv-dialog-title").textContent = title;
    root.querySelector(".tv-dialog-message").textContent = message;
    const iconBox = root.querySelector(".tv-dialog-icon");
    iconBox.innerHTML = icon ? icons[icon] || "" : "";
    iconBox.hidden = !icon;
    const row = root.querySelector(".tv-dialog-actions");
    row.replaceChildren(
      ...actions.map((action) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = `tv-button tv-button-${action.variant || "plain"}`;
        button.dataset.choice = action.id;
        button.textContent = action.label;
        button.addEventListener("click", () => this.close(action.id));
        return button;
      }),
    );
    this.dataset.kind = kind;
    this.dataset.dismiss = dismiss ?? "";
    this.setAttribute("open", "");
    if (!this.#dialog.open) this.#dialog.showModal();
    const preferred = row.querySelector(".tv-button-primary, .tv-button-danger") || row.firstChild;
    preferred?.focus();
    return new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** Close the dialog, answering `result` to whoever is waiting. */
  close(result = null) {
    if (this.#dialog?.open) this.#dialog.close();
    this.removeAttribute("open");
    const resolve = this.#resolve;
    this.#resolve = null;
    resolve?.(result === "" ? null : result);
  }

  disconnectedCallback() {
    this.close(null);
  }
}
