"""In-call messages between a ``<tavkit-call>`` tab and a Python client, and the chat panel.

The Python side is a :class:`~tavkit.client.TAvKit` on its own event loop in a thread
(``KitThread`` from the interop tests), publishing a small test pattern only where a
screenshot shows it. The tab is started with a
listener that records ``onMessageListener`` calls, and a document listener records
``tavkit:message`` events, so each test can compare the two with what Python saw.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator

from tavkit.client import ChatMessage, Listener, MediaSource, TAvKit, TestPattern
from tavkit.testing.relay import TcpRelay

from .pages import POLL, CallPage, Server
from .test_python_interop import WAIT, KitThread, _poll

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]

# start() with the seed's listener plus onMessageListener; a document listener for the
# tavkit:message event. Both keep what they got in window.__chat.
_START = """
async (options) => {
  const chat = (window.__chat = { listener: [], events: [] });
  document.addEventListener("tavkit:message", (event) => {
    chat.events.push({ detail: event.detail, bubbles: event.bubbles, composed: event.composed });
  });
  options.listener = {
    onUserInfoListener(userIds, callback) {
      callback(userIds.map((userId) => ({ userId, userName: "Name of " + userId })));
    },
    onMessageListener(message) { chat.listener.push(message); },
  };
  return await document.getElementById("call").start(options);
}
"""

# Call el.sendMessage / el.sendCustomMessage; the outcome as {ok, value} or {ok: false, error}.
_SEND = """
async ([method, value]) => {
  try {
    return { ok: true, value: await document.getElementById("call")[method](value) };
  } catch (err) {
    return { ok: false, error: { module: err.module, errorCode: err.errorCode,
                                 errorMsg: err.errorMsg } };
  }
}
"""


class NoMedia(MediaSource):
    """A source with no tracks: the Python participant only chats."""

    async def open(self) -> None:
        """Nothing to open."""


class ChatKit(KitThread):
    """The interop tests' threaded TAvKit, keeping the messages it gets."""

    def __init__(self, server: Server, user_id: str, *, media: bool = False) -> None:
        self.messages: list[ChatMessage] = []
        self.media = media
        super().__init__(server, user_id)

    async def _make(self) -> TAvKit:
        source = TestPattern(width=320, height=240, fps=15) if self.media else NoMedia()
        return TAvKit(
            self.server.url, source=source, host_addresses=["127.0.0.1"], video_bitrate=300_000
        )

    def join(self, room: int) -> None:
        """Start the call in ``room``, recording every delivered message."""
        outer = self

        class Inbox(Listener):
            def on_message(self, message: ChatMessage) -> None:
                outer.messages.append(message)

        self.run(
            self.kit.start(
                sdk_app_id=self.server.app_id,
                user_id=self.user_id,
                user_sig=self.server.sig(self.user_id),
                room_id=room,
                listener=Inbox(),
            )
        )

    def send(self, text: str) -> ChatMessage:
        """Send a text message and return it as stored."""
        return self.run(self.kit.send_message(text))

    def send_custom(self, data: Any) -> ChatMessage:
        """Send a custom message and return it as stored."""
        return self.run(self.kit.send_custom_message(data))

    def wait_messages(self, count: int) -> list[ChatMessage]:
        """Wait until ``count`` messages were delivered; return them all."""
        self.run(_poll(lambda: len(self.messages) >= count), WAIT + 5)
        return list(self.messages)


@pytest.fixture
def chat_peer(call_server: Server) -> Iterator[ChatKit]:
    """A Python participant ``py`` (no media) on the call server, hung up after the test."""
    peer = ChatKit(call_server, "py")
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def video_peer(call_server: Server) -> Iterator[ChatKit]:
    """Like ``chat_peer`` with a test pattern, for the screenshots."""
    peer = ChatKit(call_server, "py", media=True)
    try:
        yield peer
    finally:
        peer.close()


def start(tab: CallPage, server: Server, room: int) -> None:
    """Start the tab's call with the recording listener."""
    options = {
        "sdkAppId": server.app_id,
        "userId": tab.user_id,
        "userSig": server.sig(tab.user_id),
        "roomId": room,
    }
    assert tab.page.evaluate(_START, options) is True


def send(tab: CallPage, method: str, value: Any) -> dict[str, Any]:
    """Call ``el.<method>(value)`` in the tab: ``{"ok": True, "value": message}`` or the error."""
    return dict(tab.page.evaluate(_SEND, [method, value]))


def wait_listener(tab: CallPage, count: int) -> list[dict[str, Any]]:
    """Wait until onMessageListener was called ``count`` times; return its messages."""
    tab.page.wait_for_function(
        "(n) => window.__chat.listener.length >= n", arg=count, timeout=WAIT * 1000, polling=POLL
    )
    return list(tab.page.evaluate("window.__chat.listener"))


def panel_items(tab: CallPage) -> list[dict[str, Any]]:
    """The chat panel's messages: sender, own or not, shown name (if any) and text."""
    return list(
        tab.call(
            """(el) => [...el.shadowRoot.querySelectorAll('.tv-chat-list .tv-msg')].map((li) => ({
                from: li.dataset.from,
                own: li.hasAttribute('data-own'),
                name: li.querySelector('.tv-msg-name')?.textContent ?? null,
                text: li.querySelector('.tv-msg-bubble').textContent,
            }))"""
        )
    )


def badge(tab: CallPage) -> Locator:
    """The unread badge on the chat button."""
    return tab.page.locator('tavkit-call [data-action="chat"] .tv-badge')


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def wire(message: ChatMessage) -> dict[str, Any]:
    """A Python message as the browser sees it (the contract's message object)."""
    return message.to_wire()


def test_python_and_browser_chat_both_ways_with_panel_and_badge(
    open_call: OpenCall, call_server: Server, room: int, video_peer: ChatKit
) -> None:
    """Text both ways, names in the panel, the unread badge, and a custom message off-panel."""
    chat_peer = video_peer
    chat_peer.join(room)
    tab = open_call("web")
    start(tab, call_server, room)
    tab.wait_state("in-call")
    assert not tab.page.locator("tavkit-call .tv-chat").is_visible()

    # Python → browser while the panel is closed: listener, event, badge.
    first = chat_peer.send("Hello from Python")
    second = chat_peer.send("Second line, still unread")
    assert wait_listener(tab, 2) == [wire(first), wire(second)]
    badge(tab).wait_for(state="visible", timeout=WAIT * 1000)
    assert badge(tab).text_content() == "2"
    custom = chat_peer.send_custom({"cmd": "raise-hand", "seat": 3})
    assert wait_listener(tab, 3)[2] == wire(custom)
    assert badge(tab).text_content() == "2"  # custom messages are not chat: no unread

    # Browser → Python through the API: the promise resolves with the stored message.
    sent = send(tab, "sendMessage", "Hi from the browser")
    assert sent["ok"], sent
    message = sent["value"]
    assert message["from"] == "web" and message["kind"] == "text" and message["seq"] == 4
    got = chat_peer.wait_messages(4)
    assert got[3].sender == "web" and got[3].text == "Hi from the browser"
    assert got[3].seq == 4 and got[3].client_msg_id == message["clientMsgId"]
    assert wait_listener(tab, 4)[3] == message  # own messages reach the listener too
    events = tab.page.evaluate("window.__chat.events")
    assert [e["detail"] for e in events] == wait_listener(tab, 4)
    assert all(e["bubbles"] and e["composed"] for e in events)

    # Opening the panel clears the badge and shows the text messages, named.
    tab.page.locator('tavkit-call [data-action="chat"]').click()
    tab.page.locator("tavkit-call .tv-chat").wait_for(state="visible", timeout=WAIT * 1000)
    assert badge(tab).count() == 0
    assert panel_items(tab) == [
        {"from": "py", "own": False, "name": "Name of py", "text": "Hello from Python"},
        {"from": "py", "own": False, "name": None, "text": "Second line, still unread"},
        {"from": "web", "own": True, "name": None, "text": "Hi from the browser"},
    ]

    # Typing in the panel and pressing Enter sends; Python gets it.
    chat_input = tab.page.locator("tavkit-call .tv-chat-input")
    chat_input.fill("Typed in the panel 你好")
    chat_input.press("Enter")
    assert chat_peer.wait_messages(5)[4].text == "Typed in the panel 你好"
    assert chat_input.input_value() == ""

    # While the panel is open, new messages are read: no badge.
    chat_peer.send("Seen right away")
    tab.page.wait_for_function(
        "() => window.__chat.listener.length >= 6", timeout=WAIT * 1000, polling=POLL
    )
    assert badge(tab).count() == 0
    texts = [item["text"] for item in panel_items(tab)]
    assert texts[-2:] == ["Typed in the panel 你好", "Seen right away"]
    assert "raise-hand" not in json.dumps(panel_items(tab))

    tab.video_frames("py", frames=5)  # the picture shows the call, not a black tile
    path = tab.screenshot("chat-panel-desktop.png")
    assert path.stat().st_size > 10_000
    tab.page.set_viewport_size({"width": 390, "height": 844})
    tab.page.wait_for_timeout(300)
    assert tab.page.locator("tavkit-call .tv-chat").bounding_box()["width"] == 390  # type: ignore[index]
    tab.screenshot("chat-panel-phone.png")

    # Closed again: the next message from Python counts as unread.
    tab.page.locator("tavkit-call .tv-chat-close").click()
    chat_peer.send("Unread again")
    badge(tab).wait_for(state="visible", timeout=WAIT * 1000)
    assert badge(tab).text_content() == "1"
    tab.screenshot("chat-badge-phone.png")
    assert tab.tv("errors") == []


def test_browser_refusals_history_for_a_late_python_joiner(
    open_call: OpenCall, call_server: Server, room: int, chat_peer: ChatKit
) -> None:
    """Refused sends reject with the seed's shape; a Python client entering later gets history."""
    tab = open_call("web")
    start(tab, call_server, room)
    tab.wait_state("waiting")

    too_long = send(tab, "sendMessage", "x" * 4001)
    assert not too_long["ok"]
    assert too_long["error"]["module"] == "server" and too_long["error"]["errorCode"] == 10004
    not_json = send(tab, "sendCustomMessage", None)  # null is a JSON value: accepted
    assert not_json["ok"], not_json
    empty = send(tab, "sendMessage", "")
    assert not empty["ok"] and empty["error"]["errorCode"] == 10004

    alone = send(tab, "sendMessage", "anyone here?")
    assert alone["ok"] and alone["value"]["seq"] == 2
    assert [m["seq"] for m in wait_listener(tab, 2)] == [1, 2]

    # The panel shows the text only, and says so when a send from it is refused.
    tab.page.locator('tavkit-call [data-action="chat"]').click()
    assert [item["text"] for item in panel_items(tab)] == ["anyone here?"]
    chat_input = tab.page.locator("tavkit-call .tv-chat-input")
    chat_input.fill("y" * 4001)
    chat_input.press("Enter")
    error = tab.page.locator("tavkit-call .tv-chat-error")
    error.wait_for(state="visible", timeout=WAIT * 1000)
    assert chat_input.input_value() == "y" * 4001  # given back to edit
    tab.screenshot("chat-refused-desktop.png")
    assert [item["text"] for item in panel_items(tab)] == ["anyone here?"]

    chat_peer.join(room)
    history = chat_peer.wait_messages(2)
    assert [(m.seq, m.sender, m.kind) for m in history] == [
        (1, "web", "custom"),
        (2, "web", "text"),
    ]
    assert history[0].data is None and history[1].text == "anyone here?"


def test_tab_messages_survive_a_socket_drop_exactly_once_in_order(
    context: BrowserContext, call_server: Server, room: int, chat_peer: ChatKit
) -> None:
    """The tab's connection drops while Python keeps talking: each message once, in order.

    A message the tab sends while offline is resent after the resume and stored once.
    """
    relay = chat_peer.run(TcpRelay(*_target(call_server.url)).start())
    try:
        chat_peer.join(room)
        tab = CallPage(context.new_page(), relay.url, "web")  # the tab's only path is the relay
        start(tab, call_server, room)
        tab.wait_state("in-call")
        before = [chat_peer.send(f"before {n}") for n in range(3)]
        wait_listener(tab, 3)

        chat_peer.in_loop(lambda: relay.refuse(6))  # the tab's network stays down a while
        assert chat_peer.in_loop(relay.cut) >= 1
        tab.wait_state("reconnecting")
        during = [chat_peer.send(f"during {n}") for n in range(3)]
        tab.page.evaluate(
            "() => { window.__offline = document.getElementById('call')"
            ".sendMessage('sent while offline'); }"
        )
        tab.wait_state("in-call", timeout=WAIT * 1000)
        offline = tab.page.evaluate("() => window.__offline")
        after = chat_peer.send("after")

        expected = len(before) + len(during) + 2
        delivered = wait_listener(tab, expected)
        got = chat_peer.wait_messages(expected)
        tab.page.wait_for_timeout(500)  # a duplicate would arrive now
        delivered = tab.page.evaluate("window.__chat.listener")
        assert [m["seq"] for m in delivered] == list(range(1, expected + 1))
        assert [e["detail"] for e in tab.page.evaluate("window.__chat.events")] == delivered
        assert [wire(m) for m in got] == delivered
        assert offline["from"] == "web" and offline in delivered
        assert [m["text"] for m in delivered].count("sent while offline") == 1
        assert [wire(m) for m in before + during + [after]] == [
            m for m in delivered if m["from"] == "py"
        ]
    finally:
        chat_peer.run(relay.aclose())


_CHAT_MODULE = """
async () => {
  const { Chat } = await import("/tavkit/chat.js");
  const sent = [];
  const delivered = [];
  const chat = new Chat({ selfId: "me", send: (f) => { sent.push(f); return true; },
                          onDeliver: (m) => delivered.push(m.seq), ackTimeoutMs: 60000 });
  const msg = (seq, from = "other", clientMsgId = `c${seq}`) =>
    ({ type: "message", seq, from, kind: "text", text: `t${seq}`, clientMsgId, sentAt: seq });
  const out = {};
  chat.connected();
  out.firstSync = sent.splice(0);
  chat.synced();
  // Shuffled arrivals with duplicates: each seq once, ascending.
  const order = [3, 1, 1, 2, 5, 3, 4, 2, 6, 6];
  for (const seq of order) chat.receive(msg(seq));
  out.delivered = delivered.splice(0);
  out.gapSyncs = sent.splice(0);
  chat.synced();
  // A send while offline waits; the next connected() syncs after 6 and resends it.
  chat.disconnected();
  const pending = chat.send("text", "hello");
  out.sentOffline = sent.splice(0);
  chat.connected();
  out.onResume = sent.splice(0).map((f) => f.type === "sync" ? f
    : { type: f.type, text: f.text, same: f.clientMsgId === f.id });
  const id = chat.pending.keys().next().value;
  chat.receive(msg(7, "me", id));
  out.acked = await pending;
  // A refusal (error whose ref is the frame id) rejects with the seed's shape.
  const refused = chat.send("text", "");
  const ref = sent.at(-1).id;
  chat.refused({ type: "error", module: "server", errorCode: 10004, errorMsg: "text", ref });
  out.refused = await refused.then(() => null, (e) => [e.module, e.errorCode]);
  // Hang-up rejects what is still pending, then anything new.
  const cut = chat.send("custom", { a: 1 });
  chat.close();
  out.closed = await cut.then(() => null, (e) => [e.module, e.errorCode]);
  out.after = await chat.send("text", "x").then(() => null, (e) => [e.module, e.errorCode]);
  out.kept = chat.messages.map((m) => m.seq);
  return out;
}
"""


def test_chat_module_orders_acknowledges_and_resends(open_call: OpenCall) -> None:
    """chat.js on its own: in-order exactly-once delivery, gap syncs, resend, ack, refusal."""
    tab = open_call("unit")
    out = tab.page.evaluate(_CHAT_MODULE)
    assert out["firstSync"] == [{"type": "sync", "after": 0}]
    assert out["delivered"] == [1, 2, 3, 4, 5, 6]
    assert out["gapSyncs"] == [{"type": "sync", "after": 0}]  # one sync for the first gap
    assert out["sentOffline"] == []
    assert out["onResume"] == [
        {"type": "sync", "after": 6},
        {"type": "message", "text": "hello", "same": True},
    ]
    assert out["acked"]["seq"] == 7 and out["acked"]["from"] == "me"
    assert out["refused"] == ["server", 10004]
    assert out["closed"] == ["server", 14004] and out["after"] == ["server", 14004]
    assert out["kept"] == [1, 2, 3, 4, 5, 6, 7]
