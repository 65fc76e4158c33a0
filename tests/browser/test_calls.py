"""``<tavkit-call>`` ringing and rung: a tab and a Python client call each other."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import httpx
import pytest

from tavkit.auth import decode_sig

from .pages import CALL_SCRIPT, CALL_SERVER_SETTINGS, CallPage, Server
from .test_python_interop import WAIT, KitThread, OpenCall

pytestmark = pytest.mark.browser


def call_events(tab: CallPage) -> list[str]:
    """The onCallListener events the tab heard, by name."""
    return [e["type"] for e in tab.page.evaluate("window.__calls")]


def wait_event(tab: CallPage, name: str) -> None:
    """Wait until the tab's onCallListener heard ``name``."""
    tab.page.wait_for_function(
        "(name) => (window.__calls || []).some((e) => e.type === name)",
        arg=name,
        timeout=WAIT * 1000,
        polling=100,
    )


def screen(tab: CallPage) -> Any:
    """The call screen inside the element's shadow root."""
    return tab.page.locator("tavkit-call .tv-callscreen")


def record(server: Server, call_id: str) -> dict[str, Any]:
    """The call's record and its event types, as the admin reads them."""
    found: dict[str, Any] = httpx.get(
        f"{server.url}/v1/calls/{call_id}", headers=server.admin_headers()
    ).json()["call"]
    events = httpx.get(f"{server.url}/v1/calls/{call_id}/events", headers=server.admin_headers())
    found["events"] = [e["type"] for e in events.json()["events"]]
    return found


def test_a_tab_rung_by_python_accepts_talks_and_leaves_when_the_caller_hangs_up(
    open_call: OpenCall, call_server: Server
) -> None:
    """The tab's incoming screen names the caller; Accept joins, media flows both ways."""
    tab = open_call("web")
    options = {"sdkAppId": call_server.app_id, "userId": "web", "userSig": call_server.sig("web")}
    tab.page.evaluate(CALL_SCRIPT, [options, "listen"])
    peer = KitThread(call_server, "py")
    try:
        handle = peer.run(
            peer.kit.call(
                callees=["web"],
                sdk_app_id=call_server.app_id,
                user_id="py",
                user_sig=call_server.sig("py"),
            )
        )
        wait_event(tab, "onCallReceived")
        assert screen(tab).get_by_role("heading").inner_text() == "py"  # no onUserInfoListener
        assert "Invites you to a video call" in screen(tab).inner_text()
        screen(tab).get_by_role("button", name="Accept").click()
        assert peer.run(handle.result()) == "accepted"
        tab.wait_connected("py")
        assert tab.video_frames("py", frames=10)["last"] > 0
        video, _audio = peer.wait_frames("web", video=10, audio=10)
        assert video >= 10
        screen(tab).wait_for(state="hidden", timeout=WAIT * 1000)
        peer.run(handle.hangup())
        wait_event(tab, "onCallEnd")
        tab.wait_state("ended")
        found = record(call_server, handle.call_id)
        peer.run(handle.aclose())
    finally:
        peer.close()
    assert (found["state"], found["endReason"]) == ("ended", "hangup")
    assert found["events"] == ["call.ringing", "call.accepted", "call.ended"]
    assert call_events(tab)[:2] == ["onCallReceived", "onCallBegin"]


def test_a_tab_calling_python_hears_the_decline_and_leaves(
    open_call: OpenCall, call_server: Server
) -> None:
    """The tab's "calling…" screen shows until Python declines; then it leaves the room."""
    peer = KitThread(call_server, "py")
    try:

        async def decline_first() -> str:
            invitations = peer.kit.listen(
                sdk_app_id=call_server.app_id, user_id="py", user_sig=call_server.sig("py")
            )
            invitation = await anext(invitations)
            await invitation.decline(reason="not now")
            await invitations.aclose()
            return invitation.call.call_id

        declining = peer.submit(decline_first())
        tab = open_call("web")
        options = {
            "sdkAppId": call_server.app_id,
            "userId": "web",
            "userSig": call_server.sig("web"),
            "callees": ["py"],
            "media": "audio",
        }
        call_id = tab.page.evaluate(CALL_SCRIPT, [options, "call"])
        assert declining.result(WAIT) == call_id
        wait_event(tab, "onUserReject")
        screen(tab).wait_for(state="hidden", timeout=WAIT * 1000)
        # Out of the room: left it ("ended"), or never entered if the decline came first.
        tab.page.wait_for_function(
            "() => ['idle', 'ended'].includes(document.getElementById('call').state)",
            timeout=WAIT * 1000,
            polling=100,
        )
    finally:
        peer.close()
    found = record(call_server, call_id)
    assert (found["state"], found["callees"][0]["reason"]) == ("declined", "not now")


class Relay:
    """A TCP relay on loopback (threads) whose links can be cut and held."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open = threading.Event()
        self.open.set()
        self._links: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Drop every link; new ones wait until ``open`` is set."""
        self.open.clear()
        for link in self._links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
        self._links.clear()

    def close(self) -> None:
        """Stop accepting and drop every link."""
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                threading.Thread(target=self._link, args=(client,), daemon=True).start()

    def _link(self, client: socket.socket) -> None:
        self.open.wait()
        upstream = socket.create_connection(("127.0.0.1", self.port))
        self._links += [client, upstream]

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)


_USER_SOCKET = """
async ([options]) => {
  const { CallClient } = await import("/tavkit/calls.js");
  window.__calls = [];
  window.__client = new CallClient(options, (event) => window.__calls.push(event));
  await window.__client.listen();
}
"""


def test_a_tabs_user_socket_resumes_after_a_drop_with_the_frames_it_missed(
    context: Any, call_server: Server
) -> None:
    """The link drops while the caller cancels: calls.js reopens with its after and hears
    onCallCancelled (replayed), having heard onCallReceived once."""
    relay = Relay(int(call_server.url.rsplit(":", 1)[1]))
    page = context.new_page()
    try:
        page.goto(f"{relay.url}/tavkit/demo/embed.html")  # its CSP lets it import modules
        options = {
            "server": relay.url,
            "sdkAppId": call_server.app_id,
            "userId": "bob",
            "userSig": call_server.sig("bob"),
        }
        page.evaluate(_USER_SOCKET, [options])
        body = {"callees": ["bob"], "media": "audio"}
        call = httpx.post(
            f"{call_server.url}/v1/calls", headers=call_server.headers("alice"), json=body
        ).json()["call"]
        heard = "(name) => (window.__calls || []).some((e) => e.type === name)"
        page.wait_for_function(heard, arg="onCallReceived", timeout=WAIT * 1000, polling=100)
        relay.cut()
        cancelled = httpx.post(
            f"{call_server.url}/v1/calls/{call['callId']}/cancel",
            headers=call_server.headers("alice"),
            json={},
        )
        assert cancelled.status_code == 200, cancelled.text
        relay.open.set()
        page.wait_for_function(heard, arg="onCallCancelled", timeout=WAIT * 1000, polling=100)
        assert [e["type"] for e in page.evaluate("window.__calls")] == [
            "onCallReceived",
            "onCallCancelled",
        ]
        assert page.evaluate("window.__client.lastSeq") > 0
    finally:
        page.close()
        relay.close()


_RENEWING_SOCKETS = """
async ([bob, carol, fresh]) => {
  const { CallClient } = await import("/tavkit/calls.js");
  window.__calls = [];
  window.__asked = 0;
  bob.listener = {
    onUserSigExpiredListener(callback) { window.__asked += 1; callback(fresh); },
  };
  window.__client = new CallClient(bob, (event) => window.__calls.push(event));
  window.__carol = new CallClient(carol, () => {});
  await Promise.all([window.__client.listen(), window.__carol.listen()]);
}
"""


def test_a_tabs_user_socket_renews_its_user_sig_and_answers_after_the_old_end(
    context: Any, sqlite_server_factory: Any
) -> None:
    """calls.js asks onUserSigExpiredListener when bob's userSig is ending and renews it;
    carol's, ending later and not renewed, closes. Bob's socket stays: rung after that,
    he hears the invitation and accepts with the renewed userSig."""
    server = sqlite_server_factory(**{**CALL_SERVER_SETTINGS, "renew_grace": 1.0})
    bob_sig, carol_sig = server.sig("bob", expire=4), server.sig("carol", expire=5)
    assert decode_sig(carol_sig).expires_at > decode_sig(bob_sig).expires_at
    page = context.new_page()
    try:
        page.goto(f"{server.url}/tavkit/demo/embed.html")
        who = {"server": server.url, "sdkAppId": server.app_id}
        bob = {**who, "userId": "bob", "userSig": bob_sig}
        carol = {**who, "userId": "carol", "userSig": carol_sig}
        page.evaluate(_RENEWING_SOCKETS, [bob, carol, server.sig("bob", expire=3600)])
        page.wait_for_function(  # carol's socket closed for good: past bob's old deadline too
            "() => window.__carol.socket.readyState === WebSocket.CLOSED",
            timeout=WAIT * 1000,
            polling=200,
        )
        assert page.evaluate("[window.__asked, window.__client.socket.readyState]") == [1, 1]
        body = {"callees": ["bob"], "media": "audio"}
        call = httpx.post(f"{server.url}/v1/calls", headers=server.headers("alice"), json=body)
        call_id = call.json()["call"]["callId"]
        page.wait_for_function(
            "() => window.__calls.some((e) => e.type === 'onCallReceived')",
            timeout=WAIT * 1000,
            polling=100,
        )
        accepted = page.evaluate("(id) => window.__client.accept(id).then((c) => c.state)", call_id)
        assert accepted == "accepted"
    finally:
        page.close()
