"""Screen share as its own tile: the screen beside the camera, never in its place.

Headless Chromium's getDisplayMedia (the prompt answered by
``--use-fake-ui-for-media-stream``) captures a fake 1280x720 screen; the fake camera
is 640x480, so a picture's shape tells the screen from the camera. A Python
participant (aiortc) in the same room receives the screen as an extra track.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .pages import POLL, CallPage, Server

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]

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
    page.page.wait_for_function(f"() => ({_SHOWN})([{selector!r}]) > 0", polling=POLL, timeout=30_000)
    first = int(page.page.evaluate(_SHOWN, [selector]))
    page.page.wait_for_function(
        f"() => ({_SHOWN})([{selector!r}]) >= {first + frames}", polling=POLL, timeout=30_000
    )


def _keep(page: CallPage, name: str) -> None:
    """Save a screenshot for review (test-artifacts/ and /tmp)."""
    shutil.copy(page.screenshot(name), f"/tmp/{name}")


def _pair(open_call: OpenCall, server: Server, room: int) -> tuple[CallPage, CallPage]:
    alice = open_call("alice")
    assert alice.join(server, room) is True
    bob = open_call("bob")
    assert bob.join(server, room) is True
    alice.wait_connected("bob")
    bob.wait_connected("alice")
    return alice, bob


def test_a_shared_screen_is_its_own_large_tile_beside_the_sharers_camera(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Alice shares: Bob sees a large 16:9 screen tile and Alice's 4:3 camera still moving
    small beside it, Alice sees her own preview the same way; Stop removes the tile and
    the 1:1 layout returns, on both pages."""
    alice, bob = _pair(open_call, call_server, room)
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
    expect(bob.page.locator("tavkit-call .tv-screen-tile .tv-name")).to_have_text("Name of alice's screen")
    # Large and small: the screen's tile has several times the area of a camera's.
    big = bob.page.locator("tavkit-call .tv-screen-tile").bounding_box()
    small = bob.tile("alice").bounding_box()
    assert big and small and big["width"] * big["height"] > 4 * small["width"] * small["height"]
    _advancing(alice, _screen("alice"))  # our own preview
    assert [e for e in bob.events("tavkit:remote-share")] == [{"userId": "alice", "sharing": True}]
    _keep(bob, "share-remote-desktop.png")
    _keep(alice, "share-local-desktop.png")
    bob.page.set_viewport_size({"width": 390, "height": 844})
    bob.page.wait_for_timeout(300)  # one layout pass; nothing is measured after it
    _keep(bob, "share-remote-phone.png")

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
