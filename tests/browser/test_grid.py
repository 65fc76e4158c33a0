"""Three and four tabs in one room: a grid in which everyone sees everyone.

Four members stand 2×2 on a phone and on a desktop, every tile in its picture's
shape, so no video is cropped (layout.js gridChoices, fit.js).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from .pages import CallPage, Server

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]
SMALL = {"width": 480, "height": 360}
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def photograph(page: CallPage, size: dict[str, int], name: str) -> None:
    """Resize ``page`` to ``size``, let every remote video paint again, save a screenshot."""
    page.page.set_viewport_size(size)
    for user_id in page.tile_ids()[1:]:
        page.video_frames(user_id, frames=2, timeout=60_000)
    page.screenshot(name)
    page.page.set_viewport_size(SMALL)


# Each tile's box and its video's picture size, by userId.
_TILES = """
(el) => [...el.shadowRoot.querySelectorAll('.tv-tile')].map((t) => {
  const r = t.getBoundingClientRect();
  const v = t.querySelector('video');
  return { id: t.dataset.userId, x: Math.round(r.x), y: Math.round(r.y), w: r.width, h: r.height,
           vw: v.videoWidth, vh: v.videoHeight };
})
"""


def assert_two_by_two(page: CallPage, size: dict[str, int]) -> None:
    """At ``size``, ``page``'s four tiles stand in two rows of two, each in its video's shape."""
    page.page.set_viewport_size(size)
    for user_id in page.tile_ids()[1:]:
        page.video_frames(user_id, frames=2, timeout=60_000)
    page.page.evaluate(
        "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    tiles = page.call(_TILES)
    assert len(tiles) == 4
    assert len({t["x"] for t in tiles}) == 2 and len({t["y"] for t in tiles}) == 2, (size, tiles)
    for t in tiles:
        assert t["vw"] > 0, t
        assert t["w"] / t["h"] == pytest.approx(t["vw"] / t["vh"], rel=0.02), (size, t)


def everyone_sees_everyone(pages: list[CallPage]) -> None:
    """Every page is connected to every other and keeps decoding its video."""
    try:
        for viewer in pages:
            for other in pages:
                if other is not viewer:
                    viewer.wait_connected(other.user_id, timeout=60_000)
    except AssertionError as exc:
        states = {p.user_id: (p.state(), p.tv("errors"), p.peer_states()) for p in pages}
        raise AssertionError(f"{exc}\nall peers: {states}") from None
    for viewer in pages:
        for other in pages:
            if other is not viewer:
                viewer.wait_video_decoding(other.user_id, frames=10)
        assert viewer.layout() == "grid"
        assert sorted(viewer.tile_ids()) == sorted(p.user_id for p in pages)
        assert viewer.tile_ids()[0] == viewer.user_id  # our own tile comes first
        assert viewer.tv("errors") == []


def video_budgets(page: CallPage) -> list[int | None]:
    """The ``maxBitrate`` each of ``page``'s video senders is held to, one per peer."""
    return list(
        page.call(
            """(el) => [...el.peerConnections().values()].flatMap((pc) => pc.getSenders())
                .filter((s) => s.track && s.track.kind === 'video')
                .map((s) => s.getParameters().encodings?.[0]?.maxBitrate ?? null)"""
        )
    )


# Four tabs run twelve encoders and decoders on one machine; on a loaded 2-core box
# that takes minutes, so this test gets more than the suite's default 300 s.
@pytest.mark.timeout(600)
def test_three_then_four_tabs_form_a_grid(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """A third and then a fourth member switch every tab to a grid of everyone's video."""
    pages: list[CallPage] = []
    for user_id in ("alice", "bob", "carol"):
        page = open_call(user_id)
        # Small tabs spare a 2-core machine four software-composited call UIs; a tab
        # grows to a real screen size only to be photographed.
        page.page.set_viewport_size(SMALL)
        assert page.join(call_server, room) is True
        pages.append(page)
    everyone_sees_everyone(pages)
    # Three in a mesh: each sends two streams, so each is held to the 3-4 member budget.
    for page in pages:
        assert video_budgets(page) == [400_000, 400_000], page.user_id
    photograph(pages[0], DESKTOP, "call-grid3-desktop.png")

    dave = open_call("dave")
    dave.page.set_viewport_size(SMALL)
    assert dave.join(call_server, room) is True
    pages.append(dave)
    everyone_sees_everyone(pages)
    # Every member learnt about the others through onUserInfoListener, once each.
    for page in pages:
        named = sorted(u for batch in page.tv("userInfo") for u in batch)
        assert named == sorted(p.user_id for p in pages if p is not page)
    pages[1].call("(el) => el.mute(true)")
    expect(dave.tile("bob")).to_have_attribute("data-muted", "", timeout=30_000)
    assert_two_by_two(dave, PHONE)
    assert_two_by_two(dave, DESKTOP)
    photograph(dave, PHONE, "call-grid4-phone.png")
    photograph(pages[0], DESKTOP, "call-grid4-desktop.png")
