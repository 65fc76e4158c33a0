"""Screen sharing in an SFU room: ``<tavkit-call>`` and a Python member, through a real Janus.

One Chromium page (the module's Janus and browser are ``test_sfu.py``'s) and one Python
member stand in for two people, so both directions are seen with one page's CPU: the
page shares and the member decodes the screen; the member shares and the page shows it
as its own large tile, in the share layout, as in a mesh room. Headless Chromium's
fake screen is 1280x720; the member's camera is 160x120 and its screen 640x360.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, expect
from sfu.conftest import RunningJanus

from tavkit.client.media import TestPattern
from tavkit.testing import Participant

from .pages import CallPage, Server, keep
from .test_sfu import browser, janus, page_opener, sfu_server
from .test_share import _SHOWN, Loop, _advancing, _screen, loop

__all__ = ["browser", "janus", "loop", "sfu_server"]  # the fixtures, shared

pytestmark = pytest.mark.browser

WAIT = 30.0


@pytest.fixture
def open_page(browser: Browser, sfu_server: Server) -> Iterator[Callable[..., CallPage]]:
    """``open_page(user_id)``: a tab of its own from the SFU server."""
    with page_opener(browser, sfu_server) as open_one:
        yield open_one


def test_a_page_and_a_python_member_share_their_screens_through_the_sfu(
    open_page: Callable[..., CallPage],
    sfu_server: Server,
    janus: RunningJanus,
    room: int,
    loop: Loop,
) -> None:
    """In an SFU room the page offers Share: its 1280x720 screen reaches the Python member
    as a screen (apart from the camera, which goes on) and its stop ends it there; the
    member's 640x360 screen shows on the page as a large screen tile in the share layout
    beside its camera, and goes when the member stops. Nobody reports an error."""
    page = open_page("page")
    assert page.join(sfu_server, room) is True
    camera = TestPattern(width=160, height=120, fps=15, variant=1)
    py = loop.run(
        Participant.enter(sfu_server, "py", room, host_addresses=[janus.address], source=camera)
    )
    try:
        loop.run(py.wait_for_video_from("page", frames=10, within=WAIT))
        page.wait_video_decoding("py", frames=10)

        share = page.page.locator('tavkit-call [data-action="share"]')
        expect(share).to_be_visible()
        share.click()
        expect(share).to_have_attribute("aria-label", "Stop sharing your screen")
        loop.run(py.wait_for_screen_from("page", frames=10, within=WAIT))
        stats = py.kit.peers_seen["page"]
        assert (stats.screen_width, stats.screen_height) == (1280, 720)
        loop.run(py.wait_for_video_from("page", frames=10, more=True, within=WAIT))
        share.click()
        loop.run(py.wait_for_screen_stop("page", within=WAIT))

        screen = TestPattern(width=640, height=360, fps=5, variant=3, audio=False)
        loop.run(py.kit.share_screen(screen))
        tile = page.page.locator(f"tavkit-call {_screen('py')}")
        expect(tile).to_have_count(1, timeout=WAIT * 1000)
        _advancing(page, _screen("py"), frames=5)
        assert page.layout() == "share"
        assert page.page.evaluate(_SHOWN, [_screen("py")]) > 0
        keep(page, "sfu-share-desktop.png")
        loop.run(py.kit.stop_screen())
        expect(tile).to_have_count(0, timeout=WAIT * 1000)
        page.wait_video_decoding("py", frames=10)
        print(f"load average {os.getloadavg()}")
        assert py.errors == [] and page.tv("errors") == []
    finally:
        loop.run(py.aclose())
