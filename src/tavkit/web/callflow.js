// Rung calls in <tavkit-call>: call(), listen() and what follows them.
//
// Ties together the user socket (calls.js), the incoming / outgoing screen
// (callscreen.js), the ring (ring.js) and the room (the element's start() and the
// controller). The element forwards its public methods here and stays a view.
//
// What ends a call this element made or accepted also ends its place in the room, with
// the ending the caller reads (screens.js): "Bob declined the call", "did not answer",
// "is in another call", "Call cancelled"; a callee whose caller hung up reads that the
// other party hung up.

import { CallClient } from "./calls.js";
import { CallScreen } from "./callscreen.js";
import { roomOption } from "./protocol.js";
import { roomOf } from "./options.js";
import { Ringer } from "./ring.js";

/** A rung call's states after which nobody can answer it any more. */
const CALL_OVER = new Set(["declined", "busy", "timeout", "cancelled", "ended"]);
/** How an unanswered call's state reads on its caller's end screen (screens.js). */
const CALLER_ENDING = { declined: "declined", busy: "busy", timeout: "noAnswer", cancelled: "cancelled" };
/** The callee outcome whose callees the caller's end screen names. */
const NAMED_OUTCOME = { declined: "declined", busy: "busy", timeout: "timeout" };

/** One element's rung calls. */
export class CallFlow {
  /**
   * `controller`: the element's CallController; `start(options)`: the element's start();
   * `translator()`: the words in the element's language now; `dispatch(detail)`: fires
   * the element's `tavkit-call` DOM event.
   */
  constructor({ controller, start, translator, dispatch }) {
    this.controller = controller;
    this.start = start;
    this.t = translator;
    this.dispatch = dispatch;
    this.calls = null; // the CallClient of call() / listen() (calls.js)
    this.options = null; // listen()'s or call()'s options: who we are, the listener
    this.screen = null; // the CallScreen, once the element has its shadow root
    this.ringer = new Ringer();
  }

  /** Use `root` (the .tv-callscreen element) for the screens and their buttons. */
  attach(root) {
    this.screen = new CallScreen(root);
    root.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-call]");
      if (button) this.#callAction(button.dataset.call);
    });
  }

  /** Paint the screen in the words of `t` (the element's render). */
  render(t) {
    this.screen?.render(t);
  }

  /** The caller's hang-up: it ends (or cancels) the call for everyone. */
  hangup() {
    const made = this.calls?.current;
    if (made && made.caller === this.options?.userId && ["ringing", "accepted"].includes(made.state)) {
      this.calls.hangup(made.callId).catch(() => {});
    }
  }

  /**
   * Ring `callees` and wait for them in the call's room, behind the "calling…" screen
   * (its Cancel cancels). `options` are start()'s without a room, plus callees, media and
   * optionally the room (roomId or strRoomId, as start() takes them), timeout, data; the
   * listener's onCallListener(event) hears each change. Resolves to the call.
   */
  async call(options) {
    const { callees, media, roomId, strRoomId, timeout, data, ...rest } = options;
    const calls = await this.#client(rest);
    // A room named as start() names it (strRoomId, or roomId); one it cannot read goes
    // as given, for the server to refuse with its reason.
    const named = roomId != null || strRoomId != null;
    const room = named ? (roomOf({ roomId, strRoomId }).room ?? strRoomId ?? roomId) : undefined;
    const call = await calls.call({ callees, media, roomId: room, timeout, data });
    if (call.state !== "ringing") {
      this.#callOver(call, "caller"); // answered before we knew: all busy
      return call;
    }
    this.#showCall("outgoing", call);
    await this.start({ ...rest, ...roomOption(call.roomId) });
    const now = calls.current;
    if (now.callId === call.callId && CALL_OVER.has(now.state)) this.#callOver(now, "caller");
    return now;
  }

  /**
   * Wait for calls to this user: each shows the incoming screen (the caller's name and
   * avatar from onUserInfoListener, Accept, Decline) and rings; Accept enters the call's
   * room with these `options` (start()'s, no roomId).
   */
  async listen(options) {
    await this.#client(options);
  }

  async #client(options) {
    this.options = options;
    if (!this.calls) {
      this.calls = new CallClient(
        { ...options, server: options.server || globalThis.location?.origin },
        (event) => this.#onCall(event),
        // The user socket's renewed userSig (and key) enter the rooms of later calls.
        ({ userSig, privateMapKey }) => {
          this.options = { ...this.options, userSig, ...(privateMapKey ? { privateMapKey } : {}) };
        },
      );
      await this.calls.listen();
    }
    return this.calls;
  }

  #onCall(event) {
    const listener = this.options?.listener;
    try {
      listener?.onCallListener?.(event);
    } catch (err) {
      console.error("tavkit: onCallListener threw", err);
    } finally {
      this.dispatch(event);
    }
    const { type, call } = event;
    const me = this.options.userId;
    const shown = this.screen?.shown;
    if (type === "onCallReceived" && !shown) this.#showCall("incoming", call);
    const over = CALL_OVER.has(call.state);
    if (shown?.call.callId === call.callId) {
      const mine = call.callees.find((c) => c.userId === me);
      const answered = shown.kind === "outgoing" && type === "onCallBegin";
      const settled = shown.kind === "incoming" && mine && mine.outcome !== "ringing";
      if (answered || settled || over) this.#showCall(null);
    }
    if (over && this.calls?.current?.callId === call.callId) {
      this.#callOver(call, call.caller === me ? "caller" : "callee");
    }
  }

  /** The call this element made or accepted is over: leave its room, saying why. */
  #callOver(call, role) {
    this.#showCall(null);
    if (role === "caller" && CALLER_ENDING[call.state]) {
      const outcome = NAMED_OUTCOME[call.state];
      const who = call.callees.filter((c) => c.outcome === outcome).map((c) => c.userId);
      const t = this.t();
      const name = who.map((id) => this.screen.nameOf(id)).join(t("listSeparator"));
      this.controller.leaveCall(CALLER_ENDING[call.state], name);
    } else if (this.controller.active) {
      // Ended by the caller's hang-up, or closed: the callee's call is over too.
      this.controller.leaveCall(call.endReason === "closed" ? "closed" : "peerHungUp");
    }
  }

  #showCall(kind, call = null) {
    const screen = this.screen;
    if (!screen) return;
    const t = this.t();
    if (!kind) {
      screen.hide();
      this.ringer.stop();
      return;
    }
    screen.show(kind, call, t);
    this.ringer.start(kind);
    this.#askNames(CallScreen.people(kind, call));
    // The dialog takes focus (screen readers announce it; Tab reaches its buttons) without
    // drawing a focus ring on a button nobody chose.
    screen.root.focus({ preventScroll: true });
  }

  /** Ask the page for the names and avatars on the call screen (the seed's onUserInfoListener). */
  #askNames(userIds) {
    const ask = this.options?.listener?.onUserInfoListener;
    if (typeof ask !== "function") return;
    try {
      ask(userIds, (infos) => this.screen.applyInfo(infos, this.t()));
    } catch (err) {
      console.error("tavkit: onUserInfoListener threw", err);
    }
  }

  async #callAction(action) {
    const shown = this.screen?.shown;
    if (!shown || !this.calls) return;
    const { callId } = shown.call;
    // A button pressed twice, or a call that ended meanwhile: the server says 14003.
    const quiet = (promise) => promise.catch((err) => console.warn("tavkit: call", action, err));
    if (action === "accept") {
      this.#showCall(null);
      const call = await quiet(this.calls.accept(callId));
      if (!call) return;
      if (this.controller.active) await this.controller.hangup(); // one room at a time
      await this.start({ ...this.options, ...roomOption(call.roomId) });
    } else if (action === "decline") {
      this.#showCall(null);
      await quiet(this.calls.decline(callId));
    } else if (action === "cancel") {
      this.ringer.stop();
      await quiet(this.calls.cancel(callId));
    }
  }
}
