"""A tab whose network drops: the others see it reconnecting, it comes back or enters again.

Bob's tab reaches the server only through a TCP relay the test can break (the
client tests' ``TcpRelay``, run on a loop thread): cutting it and refusing new
connections is Bob's network going down for signaling and REST. The media between
the tabs stays on loopback, so these tests are about the call's membership and what
each side shows; the NAT lab's outage tests cut the media path too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, expect

from tavkit.testing.relay import TcpRelay

from .pages import SHORT_HEARTBEAT_TIMEOUT, CallPage, Server

pytestmark = pytest.mark.browser

T = TypeVar("T")
WAIT = 30.0
AWAY_FOR_GOOD = 1_000_000
"""Connections to refuse for "the network stays down"."""


class RelayThread:
    """A :class:`TcpRelay` to ``server`` on an event loop of its own, driven from sync code."""

    def __init__(self, server: Server) -> None:
        parts = urlsplit(server.url)
        assert parts.hostname is not None and parts.port is not None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.relay = self._run(TcpRelay(parts.hostname, parts.port).start())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(WAIT)

    def _call(self, function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return self._run(call())

    @property
    def url(self) -> str:
        """Where the tab behind the relay loads its page and talks to the server."""
        return self.relay.url

    def down(self) -> None:
        """The network goes down: open connections reset, new ones refused."""
        self._call(lambda: self.relay.refuse(AWAY_FOR_GOOD))
        assert self._call(self.relay.cut) >= 1

    def up(self) -> None:
        """The network is back."""
        self._call(lambda: self.relay.refuse(0))

    def close(self) -> None:
        """Stop the relay and its loop."""
        self._run(self.relay.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def relayed(short_timeout_server: Server) -> Iterator[RelayThread]:
    """A breakable path from Bob's tab to the short-timeout server."""
    relay = RelayThread(short_timeout_server)
    try:
        yield relay
    finally:
        relay.close()


def call_through(
    context: BrowserContext, server: Server, relay: RelayThread, room: int
) -> tuple[CallPage, CallPage]:
    """Alice (direct) and Bob (through ``relay``) in a call, both connected."""
    alice = CallPage(context.new_page(), server.url, "alice")
    assert alice.join(server, room) is True
    alice.wait_state("waiting")
    bob = CallPage(context.new_page(), relay.url, "bob")
    assert bob.join(server, room) is True
    alice.wait_connected("bob")
    bob.wait_connected("alice")
    return alice, bob


def shorten_rejoin(tab: CallPage, ms: int) -> None:
    """Make the tab give up entering again after ``ms`` (a minute by default)."""
    tab.page.evaluate(
        "async (ms) => { (await import('/tavkit/controller.js')).CallController"
        ".rejoinPatienceMs = ms; }",
        ms,
    )


def come_back(tab: CallPage, relay: RelayThread) -> None:
    """With ``relay`` down past the tab's heartbeat timeout: wait until the tab starts to
    enter again, bring the network back, and wait until it is in the call, entered once."""
    tab.page.wait_for_function(
        "() => window.__tv.events.some((e) => e.type === 'tavkit:rejoining')",
        timeout=(SHORT_HEARTBEAT_TIMEOUT + 15) * 1000,
    )
    relay.up()
    tab.wait_state("in-call", timeout=WAIT * 1000)
    assert len(tab.events("tavkit:rejoined")) == 1


def test_a_short_outage_shows_reconnecting_on_both_sides_and_resumes(
    context: BrowserContext, short_timeout_server: Server, relayed: RelayThread, room: int
) -> None:
    """Bob offline for a moment: he shows reconnecting, Alice's tile of him too; nobody left."""
    alice, bob = call_through(context, short_timeout_server, relayed, room)
    relayed.down()
    bob.wait_state("reconnecting")
    expect(alice.tile("bob")).to_have_attribute("data-status", "reconnecting", timeout=15_000)
    assert alice.events("tavkit:user-connection") == [{"userId": "bob", "status": "reconnecting"}]
    alice.screenshot("outage-peer-reconnecting.png")
    bob.screenshot("outage-self-reconnecting.png")

    relayed.up()
    bob.wait_state("in-call", timeout=WAIT * 1000)
    expect(alice.tile("bob")).not_to_have_attribute("data-status", "reconnecting")
    assert alice.events("tavkit:user-connection")[-1] == {"userId": "bob", "status": "connected"}
    assert alice.events("tavkit:user-leave") == []
    assert bob.events("tavkit:rejoining") == []
    frames = alice.video_frames("bob", frames=10)
    assert frames["last"] > frames["first"]


def test_away_past_the_timeout_the_tab_enters_again_by_itself(
    context: BrowserContext, short_timeout_server: Server, relayed: RelayThread, room: int
) -> None:
    """Bob offline longer than his heartbeat timeout stays on the call screen and re-enters."""
    alice, bob = call_through(context, short_timeout_server, relayed, room)
    relayed.down()
    alice.page.wait_for_function(
        "() => window.__tv.events.some((e) => e.type === 'tavkit:user-leave')",
        timeout=(SHORT_HEARTBEAT_TIMEOUT + 10) * 1000,
    )
    assert alice.events("tavkit:user-leave") == [{"userId": "bob", "reason": "timeout"}]
    assert bob.state() == "reconnecting"  # still on the call screen, never "ended"

    come_back(bob, relayed)
    alice.wait_connected("bob")
    bob.wait_connected("alice")
    for viewer, other in ((alice, "bob"), (bob, "alice")):
        frames = viewer.video_frames(other, frames=10)
        assert frames["last"] > frames["first"]
    assert [e["userId"] for e in alice.events("tavkit:user-enter")] == ["bob", "bob"]
    assert all(e["errorCode"] != 5000 for e in bob.tv("errors"))


def test_when_entering_again_fails_the_call_ends_with_a_reason_and_a_rejoin_button(
    context: BrowserContext, short_timeout_server: Server, relayed: RelayThread, room: int
) -> None:
    """The network stays down: a translated reason (no close code) and Rejoin, which works."""
    _, bob = call_through(context, short_timeout_server, relayed, room)
    shorten_rejoin(bob, 3000)
    relayed.down()
    bob.wait_state("ended", timeout=(SHORT_HEARTBEAT_TIMEOUT + 20) * 1000)
    status = bob.page.locator("tavkit-call .tv-status-text")
    expect(status).to_have_text("The connection was lost and the call could not be resumed")
    assert "1006" not in status.inner_text() and "close" not in status.inner_text()
    rejoin = bob.page.locator("tavkit-call .tv-rejoin")
    expect(rejoin).to_be_visible()
    expect(rejoin).to_have_text("Rejoin")
    bob.screenshot("outage-ended-rejoin.png")
    bob.page.set_viewport_size({"width": 390, "height": 844})
    bob.screenshot("outage-ended-rejoin-phone.png")

    relayed.up()
    rejoin.click()
    bob.wait_state("in-call", timeout=WAIT * 1000)
    expect(rejoin).to_be_hidden()
    bob.wait_connected("alice")
