// The chat panel's message list: one <li> per text message, appended once, in seq order.
//
// Like the video tiles, items are built once and then only updated in place: a new
// message appends an item, a name that arrives later (onUserInfoListener's callback)
// is written into the items already shown. Message text is only ever textContent.
// Consecutive messages of one sender within two minutes form a group that shows the
// name and time once.

const GROUP_SECONDS = 120;

/** The list of one call's messages inside `list` (an <ol>). */
export class MessageList {
  constructor(list) {
    this.list = list;
    this.source = null; // the Chat whose messages are shown; a new call starts afresh
    this.seq = 0;
    this.last = null;
    this.names = new Map(); // sender → the name written on their items
  }

  /**
   * Show the text messages of `source` (a Chat). `view` has `selfId`, `locale` and
   * `displayName(userId)`. Returns whether one of our own messages was added.
   */
  update(source, view) {
    if (source !== this.source) {
      this.list.replaceChildren();
      this.names.clear();
      Object.assign(this, { source, seq: 0, last: null });
    }
    const texts = (source?.messages || []).filter((m) => m.kind === "text");
    let ownAdded = false;
    for (const message of texts) {
      if (message.seq <= this.seq) continue;
      const own = message.from === view.selfId;
      this.list.append(this.#item(message, own, view));
      this.seq = message.seq;
      this.last = message;
      ownAdded ||= own;
    }
    // The Chat keeps a bounded history; drop what it dropped.
    while (this.list.children.length > texts.length) this.list.firstElementChild.remove();
    this.#rename(view);
    return ownAdded;
  }

  /** How many messages are shown. */
  get size() {
    return this.list.children.length;
  }

  #item(message, own, view) {
    const item = document.createElement("li");
    item.className = "tv-msg";
    item.dataset.seq = String(message.seq);
    item.dataset.from = message.from;
    if (own) item.dataset.own = "";
    const previous = this.last;
    const grouped =
      previous && previous.from === message.from && message.sentAt - previous.sentAt < GROUP_SECONDS;
    if (grouped) {
      item.dataset.cont = "";
    } else {
      const meta = document.createElement("div");
      meta.className = "tv-msg-meta";
      if (!own) {
        const name = document.createElement("span");
        name.className = "tv-msg-name";
        name.textContent = view.displayName(message.from);
        this.names.set(message.from, name.textContent);
        meta.append(name);
      }
      const time = document.createElement("time");
      time.className = "tv-msg-time";
      const when = new Date(message.sentAt * 1000);
      time.dateTime = when.toISOString();
      time.textContent = when.toLocaleTimeString(view.locale, { hour: "2-digit", minute: "2-digit" });
      meta.append(time);
      item.append(meta);
    }
    const bubble = document.createElement("div");
    bubble.className = "tv-msg-bubble";
    bubble.textContent = message.text;
    item.append(bubble);
    return item;
  }

  #rename(view) {
    for (const [userId, shown] of this.names) {
      const name = view.displayName(userId);
      if (name === shown) continue;
      this.names.set(userId, name);
      const selector = `.tv-msg[data-from="${CSS.escape(userId)}"] .tv-msg-name`;
      for (const el of this.list.querySelectorAll(selector)) el.textContent = name;
    }
  }
}

/**
 * Let a bottom sheet (`panel`) be dragged down by its `handle`; let go past a third
 * of its height (or flicked down), it closes through `onClose`, else it springs
 * back. Only while the sheet sits at the bottom (a phone): the side panel of a
 * desktop does not move.
 */
export function swipeToClose(panel, handle, onClose) {
  let drag = null;
  const sheet = () => panel.offsetTop > 0; // a side panel spans the whole height
  handle.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || event.target.closest("button") || !sheet()) return;
    drag = { id: event.pointerId, y: event.clientY, at: event.timeStamp, dy: 0 };
    handle.setPointerCapture(event.pointerId);
    panel.classList.add("tv-dragging");
  });
  handle.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    drag.dy = Math.max(0, event.clientY - drag.y);
    panel.style.transform = `translateY(${drag.dy}px)`;
  });
  const end = (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    const { dy, at } = drag;
    drag = null;
    panel.classList.remove("tv-dragging");
    panel.style.transform = "";
    const flick = dy > 40 && dy / Math.max(1, event.timeStamp - at) > 0.5;
    if (dy > panel.getBoundingClientRect().height / 3 || flick) onClose();
  };
  handle.addEventListener("pointerup", end);
  handle.addEventListener("pointercancel", end);
}
