"""A browser's signals survive a busy server: each one refused is sent again.

The server's loop is stalled on purpose (as in ``tests/server/test_shedding.py``) while
the page's signaling socket (``signaling.js``, the one ``<tavkit-call>`` uses) sends
signals; the other member, a plain WebSocket, must get every one of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import BrowserContext
from server.test_shedding import CapturedApp
from server.test_signaling import LOOPBACK, TIMEOUT
from websockets.sync.client import connect
from websockets.typing import Subprotocol

pytestmark = pytest.mark.browser

SENT = 30

OPEN = """async ({url, token}) => {
  const { Signaling } = await import("/tavkit/signaling.js");
  window.__refused = [];
  const onMessage = (frame) => { if (frame.type === "error") window.__refused.push(frame); };
  window.__socket = new Signaling({
    url, token, heartbeatInterval: 5, heartbeatTimeout: 15, onMessage, onStatus: () => {},
  });
  await window.__socket.open();
  return true;
}"""

SEND = """async (count) => {
  for (let n = 0; n < count; n++) {
    const candidate = { candidate: "", sdpMid: String(n), sdpMLineIndex: null };
    window.__socket.send({ type: "signal", to: "bob", data: { candidate } });
    await new Promise((done) => setTimeout(done, 10));
  }
  return true;
}"""


def test_the_browser_sends_a_refused_signal_again_until_it_is_relayed(
    context: BrowserContext, sqlite_server_factory: Callable[..., Any]
) -> None:
    """Signals a page sends while the server sheds all reach the other member, each
    once, and the page's listener hears no refusal: signaling.js sends each refused
    signal again after a short pause."""
    captured = CapturedApp()
    server = sqlite_server_factory(ice_allowed_networks=LOOPBACK, app_factory=captured.build)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        bob = http.post("/v1/rooms/7105/enter", headers=server.headers("bob")).json()
        alice = http.post("/v1/rooms/7105/enter", headers=server.headers("alice")).json()
        # The token in the handshake header, as every client sends it (never in the URL).
        token = Subprotocol("tavkit.token." + quote(bob["socketToken"], safe=""))
        protocols = [Subprotocol("tavkit.v1"), token]
        with connect(server.ws_url, subprotocols=protocols, open_timeout=TIMEOUT) as ws:
            assert json.loads(ws.recv(TIMEOUT))["type"] == "welcome"
            page = context.new_page()
            page.goto(f"{server.url}/tavkit/demo/embed.html")  # the server's own page and origin
            page.evaluate(OPEN, {"url": alice["socketUrl"], "token": alice["socketToken"]})
            started = captured.stall()
            assert started.wait(TIMEOUT)
            page.evaluate(SEND, SENT)
            delivered: list[int] = []
            while len(delivered) < SENT:
                got = json.loads(ws.recv(TIMEOUT))
                if got["type"] == "signal":
                    delivered.append(int(got["data"]["candidate"]["sdpMid"]))
            assert sorted(delivered) == list(range(SENT))  # each once, none lost
            assert 'type="shed"' in http.get("/metrics").text, "nothing was shed"
            assert page.evaluate("() => window.__refused") == []
