"""A tile's own buttons: the other member full screen, or in a picture-in-picture window.

A tab and a Python member (``KitThread``, a small test pattern) in a 1v1: the Python
member's tile is the big one. On a desktop the buttons are reached by keyboard and by
mouse; full screen puts that tile (not the page) on the whole screen and leaving full
screen the browser's way puts it back; picture in picture opens the member's video in
its window (headless Chromium has one). On a phone, in Chinese, a tap shows the buttons,
each a 44 px target, and the PiP button goes while the member's camera is off.

Headless Chromium does not route Esc to its full-screen exit (the browser's window
does that), so leaving "the browser's way" is ``document.exitFullscreen()``, which is
what Esc does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, expect

from .pages import POLL, CallPage, Server
from .test_python_interop import KitThread

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]

# What is full screen and what is in picture in picture: the document's view (the
# shadow root's element retargeted to its host) and the shadow root's own.
_SHOWN = """
(el) => {
  const root = el.shadowRoot;
  const id = (node) => node ? (node.dataset.userId || node.localName) : null;
  return {
    documentFullscreen: document.fullscreenElement?.localName ?? null,
    fullscreen: id(root.fullscreenElement),
    documentPip: document.pictureInPictureElement?.localName ?? null,
    pip: id(root.pictureInPictureElement),
  };
}
"""


@pytest.fixture
def py(call_server: Server) -> Iterator[KitThread]:
    """A Python member ``py`` publishing a 320x240 test pattern; hung up after the test."""
    peer = KitThread(call_server, "py")
    try:
        yield peer
    finally:
        peer.close()


def in_call_with(tab: CallPage, py: KitThread, server: Server, room: int) -> None:
    """Put ``tab`` and ``py`` in ``room`` and wait for py's picture on the tab."""
    py.join(room)
    assert tab.join(server, room) is True
    tab.wait_connected("py")
    tab.video_frames("py", frames=3)


def test_the_other_members_tile_goes_full_screen_and_into_picture_in_picture(
    open_call: OpenCall, call_server: Server, room: int, py: KitThread
) -> None:
    """By keyboard the big tile goes full screen and comes back when full screen ends; by
    mouse its video opens in a picture-in-picture window and closes again; our own tile
    has no such buttons."""
    tab = open_call("web")
    in_call_with(tab, py, call_server, room)
    assert tab.tile("web").locator(".tv-tile-action").count() == 0
    before = tab.tile("py").bounding_box()

    full = tab.page.get_by_role("button", name="Show Name of py full screen")
    for _ in range(10):  # Tab from the page's start until the button has the focus
        tab.page.keyboard.press("Tab")
        if tab.call("(el) => el.shadowRoot.activeElement?.dataset.tileAction") == "fullscreen":
            break
    expect(full).to_be_focused()
    expect(tab.tile("py").locator(".tv-tile-actions")).to_have_css("opacity", "1")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_function(
        "() => document.fullscreenElement !== null", timeout=10_000, polling=POLL
    )
    shown = tab.call(_SHOWN)
    assert shown["documentFullscreen"] == "tavkit-call" and shown["fullscreen"] == "py", shown
    box = tab.tile("py").bounding_box()
    size = tab.page.evaluate("() => [innerWidth, innerHeight]")
    assert box and (box["width"], box["height"]) == tuple(size), (box, size)
    # Its video is fitted to the whole screen by fit.js's rule: 80 % of the picture or all.
    fit = tab.call(
        """(el) => {
          const v = el.shadowRoot.querySelector('video[data-user-id="py"]');
          const a = v.videoWidth / v.videoHeight, b = v.clientWidth / v.clientHeight;
          return { fit: getComputedStyle(v).objectFit, share: Math.min(a, b) / Math.max(a, b) };
        }"""
    )
    assert fit["fit"] == ("cover" if fit["share"] >= 0.8 else "contain"), fit
    exit_button = tab.page.get_by_role("button", name="Exit full screen")
    expect(exit_button).to_be_visible()
    tab.screenshot("tile-fullscreen-desktop.png")

    tab.page.evaluate("() => document.exitFullscreen()")  # what Esc does
    expect(full).to_be_attached()
    assert tab.call(_SHOWN)["fullscreen"] is None
    expect(tab.tile("py")).not_to_have_attribute("data-fullscreen", "")
    assert tab.tile("py").bounding_box() == before

    tab.tile("py").hover()
    tab.screenshot("tile-actions-desktop-hover.png")
    tab.page.get_by_role("button", name="Show Name of py in picture-in-picture").click()
    tab.page.wait_for_function(
        "() => document.pictureInPictureElement !== null", timeout=10_000, polling=POLL
    )
    shown = tab.call(_SHOWN)
    assert shown["documentPip"] == "tavkit-call" and shown["pip"] == "py", shown
    tab.page.get_by_role("button", name="Close picture-in-picture").click()
    tab.page.wait_for_function(
        "() => document.pictureInPictureElement === null", timeout=10_000, polling=POLL
    )
    expect(
        tab.page.get_by_role("button", name="Show Name of py in picture-in-picture")
    ).to_be_attached()
    assert tab.tv("errors") == []


def test_on_a_phone_a_tap_shows_finger_sized_buttons_in_chinese(
    phone: BrowserContext, call_server: Server, room: int, py: KitThread
) -> None:
    """On a touch phone the buttons wait for a tap on the tile, then offer 44 px targets
    named in Chinese; picture in picture is not offered while the member's camera is off."""
    tab = CallPage(phone.new_page(), call_server.url, "web")
    tab.page.evaluate("() => document.getElementById('call').setAttribute('lang', 'zh')")
    in_call_with(tab, py, call_server, room)
    actions = tab.tile("py").locator(".tv-tile-actions")
    expect(actions).to_have_css("opacity", "0")

    tab.tile("py").tap(position={"x": 150, "y": 300})
    expect(actions).to_have_css("opacity", "1")
    full = tab.page.get_by_role("button", name="全屏显示Name of py")
    pip = tab.page.get_by_role("button", name="以画中画显示Name of py")
    for button in (full, pip):
        box = button.bounding_box()
        assert box and box["width"] >= 44 and box["height"] >= 44, box
    tab.screenshot("tile-actions-phone-zh.png")

    py.run(py.kit.enable_camera(False))
    expect(tab.tile("py")).to_have_attribute("data-camera-off", "", timeout=15_000)
    expect(pip).to_be_hidden()
    expect(full).to_be_visible()
