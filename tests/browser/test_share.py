"""Screen share as its own tile: the screen beside the camera, never in its place.

Headless Chromium's getDisplayMedia (the prompt answered by
``--use-fake-ui-for-media-stream``) captures a fake 1280x720 screen; the fake camera
is 640x480, so a picture's shape tells the screen from the camera. A Python
participant (aiortc) in the same room receives the screen as an extra track.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from playwright.sync_api import expect

from tavkit.auth import Privilege
from tavkit.protocol.sdp import media_sections, refusal
from tavkit.testing import Participant

from .pages import POLL, RECORD_SDP, CallPage, Server, joined_pair, keep

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]
T = TypeVar("T")
NO_RECV_SUB = int(Privilege.ALL) & ~int(Privilege.RECV_SUB)
NO_SEND_SUB = int(Privilege.ALL) & ~int(Privilege.SEND_SUB)


class Loop:
    """An event loop in a thread, for a tavkit.testing Participant beside Playwright's sync API."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    """A background event loop, stopped after the test."""
    running = Loop()
    try:
        yield running
    finally:
        running.close()


# Frames a <video> has presented so far (what the person sees move).
_SHOWN = """
([selector]) => {
  const v = document.getElementById("call").shadowRoot.querySelector(selector);
  return v ? v.getVideoPlaybackQuality().totalVideoFrames : -1;
}
"""

# The shape (width / height) of the picture a <video> plays.
_ASPECT = """
([selector]) => {
  const v = document.getElementById("call").shadowRoot.querySelector(selector);
  return v && v.videoHeight ? v.videoWidth / v.videoHeight : 0;
}
"""


def _camera(user_id: str) -> str:
    return f'.tv-tile[data-user-id="{user_id}"] video'


def _screen(user_id: str) -> str:
    return f'.tv-screen-tile[data-screen-of="{user_id}"] video'


def _advancing(page: CallPage, selector: str, frames: int = 10) -> None:
    """Wait until the <video> at ``selector`` presents ``frames`` more frames."""
    page.page.wait_for_function(
        f"() => ({_SHOWN})([{selector!r}]) > 0", polling=POLL, timeout=30_000
    )
    first = int(page.page.evaluate(_SHOWN, [selector]))
    page.page.wait_for_function(
        f"() => ({_SHOWN})([{selector!r}]) >= {first + frames}", polling=POLL, timeout=30_000
    )


def test_a_shared_screen_is_its_own_large_tile_beside_the_sharers_camera(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Alice shares: Bob sees a large 16:9 screen tile (with a full-screen button) and
    Alice's 4:3 camera still moving small beside it, Alice sees her own preview the same
    way; Stop removes the tile and the 1:1 layout returns, on both pages."""
    alice, bob = joined_pair(open_call, call_server, room)
    _advancing(bob, _camera("alice"))
    assert bob.layout() == "pip"

    share = alice.page.locator('tavkit-call [data-action="share"]')
    share.click()
    expect(share).to_have_attribute("aria-label", "Stop sharing your screen")
    bob_screen = bob.page.locator(f"tavkit-call {_screen('alice')}")
    expect(bob_screen).to_have_count(1, timeout=20_000)
    _advancing(bob, _screen("alice"))
    _advancing(bob, _camera("alice"))  # the camera goes on beside the screen
    assert bob.page.evaluate(_ASPECT, [_screen("alice")]) > 1.6
    assert bob.page.evaluate(_ASPECT, [_camera("alice")]) == pytest.approx(4 / 3, abs=0.05)
    assert bob.layout() == "share" and alice.layout() == "share"
    assert bob.tile_ids() == ["bob", "alice"]  # the camera tiles are all still there
    label = bob.page.locator("tavkit-call .tv-screen-tile .tv-name")
    expect(label).to_have_text("Name of alice's screen")
    # The others' screen can go full screen like their camera (tile-actions.js); ours not.
    expect(
        bob.page.locator('tavkit-call .tv-screen-tile [data-tile-action="fullscreen"]')
    ).to_have_attribute("aria-label", "Show Name of alice's screen full screen")
    expect(alice.page.locator("tavkit-call .tv-screen-tile .tv-tile-actions")).to_have_count(0)
    # Large and small: the screen's tile has several times the area of a camera's.
    big = bob.page.locator("tavkit-call .tv-screen-tile").bounding_box()
    small = bob.tile("alice").bounding_box()
    assert big and small and big["width"] * big["height"] > 4 * small["width"] * small["height"]
    _advancing(alice, _screen("alice"))  # our own preview
    assert [e for e in bob.events("tavkit:remote-share")] == [{"userId": "alice", "sharing": True}]
    keep(bob, "share-remote-desktop.png")
    keep(alice, "share-local-desktop.png")
    bob.page.set_viewport_size({"width": 390, "height": 844})
    bob.page.wait_for_timeout(300)  # one layout pass; nothing is measured after it
    keep(bob, "share-remote-phone.png")

    share.click()
    expect(bob_screen).to_have_count(0, timeout=20_000)
    expect(alice.page.locator("tavkit-call .tv-screen-tile")).to_have_count(0)
    bob.page.wait_for_function(
        "() => document.getElementById('call').shadowRoot.querySelector('.tv-call')"
        ".dataset.layout === 'pip'",
        polling=POLL,
    )
    assert alice.layout() == "pip"
    _advancing(bob, _camera("alice"))
    assert bob.events("tavkit:remote-share")[-1] == {"userId": "alice", "sharing": False}
    assert [e["sharing"] for e in alice.events("tavkit:screen-share")] == [True, False]
    assert alice.tv("errors") == [] and bob.tv("errors") == []


def test_a_member_who_joins_during_a_share_sees_the_screen_and_every_camera(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Carol enters while Alice shares: she gets the screen tile (Alice offers it once
    she has answered Carol) beside Alice's and Bob's cameras, in the share layout; when
    Alice leaves, her share goes with her and the layout returns."""
    alice, bob = joined_pair(open_call, call_server, room)
    assert alice.call("(el) => el.startShare()") is True
    _advancing(bob, _screen("alice"))
    carol = open_call("carol")
    assert carol.join(call_server, room) is True
    carol.wait_connected("alice")
    _advancing(carol, _screen("alice"))
    _advancing(carol, _camera("alice"))
    _advancing(carol, _camera("bob"))
    assert carol.layout() == "share"
    assert sorted(carol.tile_ids()) == ["alice", "bob", "carol"]
    keep(carol, "share-three-desktop.png")
    assert carol.tv("errors") == [] and alice.tv("errors") == []

    alice.call("(el) => el.hangup()")  # a sharer who leaves ends its share
    expect(carol.page.locator("tavkit-call .tv-screen-tile")).to_have_count(0, timeout=20_000)
    carol.page.wait_for_function(
        "() => document.getElementById('call').shadowRoot.querySelector('.tv-call')"
        ".dataset.layout === 'pip'",
        polling=POLL,
    )
    assert carol.events("tavkit:remote-share")[-1] == {"userId": "alice", "sharing": False}


def test_a_python_participant_receives_the_screen_as_an_extra_track(
    open_call: OpenCall, call_server: Any, room: int, loop: Loop
) -> None:
    """A tab shares: the Python participant hears on_screen_share, decodes 1280x720 screen
    frames apart from the camera's (which keep coming), and hears the stop."""
    alice = open_call("alice")
    assert alice.join(call_server, room) is True
    py = loop.run(Participant.enter(call_server, "py", room))
    try:
        loop.run(py.wait_for_video_from("alice", frames=10))
        assert alice.call("(el) => el.startShare()") is True
        loop.run(py.wait_for_screen_from("alice", frames=10))
        stats = py.kit.peers_seen["alice"]
        assert (stats.screen_width, stats.screen_height) == (1280, 720)
        assert (stats.width, stats.height) == (640, 480)  # the camera, still the camera
        loop.run(py.wait_for_video_from("alice", frames=10, more=True))
        alice.call("(el) => el.stopShare()")
        loop.run(py.wait_for_screen_stop("alice"))
        loop.run(py.wait_for_video_from("alice", frames=10, more=True))
        shares = [e for e in py.events if e[0] == "on_screen_share"]
        assert shares == [("on_screen_share", "alice", True), ("on_screen_share", "alice", False)]
        assert py.errors == [] and alice.tv("errors") == []
    finally:
        loop.run(py.aclose())


def test_a_member_without_the_receive_bit_is_never_sent_the_screen(
    open_call: OpenCall, context: Any, call_server: Any, room: int
) -> None:
    """Bob may not receive a sub-stream (no bit 128): he answers Alice's screen m-line
    inactive (the server's check passes), shows no screen tile, and her camera plays on."""
    context.add_init_script(RECORD_SDP)
    alice = open_call("alice")
    assert alice.join(call_server, room) is True
    bob = open_call("bob")
    key = call_server.pmk("bob", room, NO_RECV_SUB)
    assert bob.join(call_server, room, privateMapKey=key) is True
    bob.wait_connected("alice")
    assert alice.call("(el) => el.startShare()") is True
    # Bob answered an offer with Alice's screen in it: the screen reached him, or not.
    bob.page.wait_for_function(
        """() => window.__tv.sdps.some(([, type, sdp]) =>
            type === "answer" && sdp.includes("a=content:slides"))""",
        polling=POLL,
        timeout=20_000,
    )
    for to, kind, sdp in bob.tv("sdps"):
        assert refusal(sdp, NO_RECV_SUB) is None, f"{kind} to {to}"
    answers = [sdp for _, kind, sdp in bob.tv("sdps") if kind == "answer"]
    assert [s.direction for s in media_sections(answers[-1]) if s.kind == "sub"] == ["inactive"]
    _advancing(bob, _camera("alice"))
    expect(bob.page.locator("tavkit-call .tv-screen-tile")).to_have_count(0)
    assert bob.layout() == "pip"
    assert alice.tv("errors") == [] and bob.tv("errors") == []


def test_a_member_without_the_send_bit_is_offered_no_share(
    open_call: OpenCall, call_server: Any, room: int
) -> None:
    """Without bit 64 a tab shows no Share button and startShare() resolves false."""
    alice = open_call("alice")
    key = call_server.pmk("alice", room, NO_SEND_SUB)
    assert alice.join(call_server, room, privateMapKey=key) is True
    share = alice.page.locator('tavkit-call [data-action="share"]')
    expect(share).to_be_hidden()
    assert alice.call("(el) => el.startShare()") is False
    expect(alice.page.locator("tavkit-call .tv-screen-tile")).to_have_count(0)
