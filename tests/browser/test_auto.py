"""``<tavkit-call>`` in an ``auto`` room: two pages meet in a mesh, a third member moves
the call to the SFU (a real Janus, real Chromium pages, a Python member).

The server runs ``--media-mode auto`` (SFU above 2 members) in front of a Janus this
module starts, as ``test_sfu.py`` does; the Python member is ``sfu_member.py`` in a
process of its own, gathering on the address Janus uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser
from sfu.conftest import RunningJanus

from .pages import CallPage, Server
from .test_sfu import (
    LAYERS,
    Members,
    advancing,
    browser,
    janus,
    page_opener,
    python_members,
    sending,
    wait_until,
)

__all__ = ["browser", "janus"]  # the module-scoped fixtures, shared with test_sfu

pytestmark = pytest.mark.browser

# Whether the page decodes video from every member through its SFU subscription and
# holds no mesh connection any more (the element's connections are then the
# subscription's per-member views, not RTCPeerConnections).
_THROUGH_SFU = """
async ([expected]) => {
  const el = document.getElementById("call");
  if (!el.sfuMedia()) return false;
  const conns = el.peerConnections();
  if (conns.size !== expected) return false;
  for (const view of conns.values()) {
    if (view instanceof RTCPeerConnection) return false;
    let decoded = 0;
    for (const r of (await view.getStats()).values()) {
      if (r.type === "inbound-rtp" && r.kind === "video") decoded += r.framesDecoded || 0;
    }
    if (decoded === 0) return false;
  }
  return true;
}
"""


@pytest.fixture
def auto_server(sqlite_server_factory: Callable[..., Server], janus: RunningJanus) -> Server:
    """A real tavkit server whose rooms are auto: a mesh up to two, then the SFU."""
    return sqlite_server_factory(
        media_mode="auto", janus_urls=(janus.url,), janus_api_secret=janus.api_secret
    )


@pytest.fixture
def open_page(browser: Browser, auto_server: Server) -> Iterator[Callable[..., CallPage]]:
    """``open_page(user_id)``: a 1280×800 tab of its own from the auto server."""
    with page_opener(browser, auto_server) as open_one:
        yield open_one


@pytest.fixture
def members(auto_server: Server, janus: RunningJanus) -> Iterator[Members]:
    """Python members of the test, hung up afterwards."""
    with python_members(auto_server, janus) as started:
        yield started


def test_two_pages_in_an_auto_room_move_to_the_sfu_when_a_third_member_enters(
    open_page: Callable[..., CallPage], members: Members, auto_server: Server, room: int
) -> None:
    """Two pages of an auto room call each other in a mesh (no SFU media); a Python member
    entering as the third switches the room: each page then decodes video from both
    others through its SFU subscription, its mesh connection is closed, it sends only on
    its publish connection (audio and simulcast layers advancing), and the Python member
    decodes both pages and sends one audio and one video stream. Prints the time from the
    third member's join until both pages decode everyone through the SFU."""
    pages = [open_page(name) for name in ("ann", "ben")]
    for page in pages:
        assert page.join(auto_server, room) is True
    ann, ben = pages
    ann.wait_video_decoding("ben", frames=10)
    ben.wait_video_decoding("ann", frames=10)
    assert all(page.call("(el) => el.sfuMedia()") is None for page in pages)  # a mesh
    made = {page.user_id: int(page.page.evaluate("window.__tv.allPcs.length")) for page in pages}
    assert all(n >= 1 for n in made.values()), made

    started = time.monotonic()
    members.join("py", room, 0, ["ann", "ben"], ["ann", "ben"])
    members.joined("py")
    joined = time.monotonic()  # its enter answered, its socket open (the switch is under way)
    wait_until(
        "both pages decoding everyone through the SFU, no mesh connection left",
        lambda: all(page.page.evaluate(_THROUGH_SFU, [2]) for page in pages),
        explain=lambda: [page.call("(el) => el.sfuMedia()?.streams") for page in pages],
    )
    done = time.monotonic()
    print(
        f"\nauto switch (pages): both decode everyone through the SFU {done - joined:.2f} s"
        f" after the third member joined ({done - started:.2f} s after its process started)"
    )

    report = members.report("py")
    assert "error" not in report, report
    assert all(report["last"][o] > n >= 10 for o, n in report["first"].items()), report
    assert report["uploads"] == ["audio", "video"], report
    for page in pages:
        others = [o for o in ("ann", "ben", "py") if o != page.user_id]
        for other in others:  # and it keeps coming
            page.wait_video_decoding(other, frames=10)
        meshes_closed = page.page.evaluate(
            "(n) => window.__tv.allPcs.slice(0, n).every((pc) => pc.connectionState === 'closed')",
            made[page.user_id],
        )
        assert meshes_closed, f"{page.user_id}: a mesh connection is still open"
        before = sending(page)
        wait_until(
            f"{page.user_id}'s audio and two of its layers to advance",
            lambda p=page, b=before: advancing(b, sending(p)),
            explain=lambda p=page, b=before: (b, sending(p)),
        )
        kinds = set(sending(page))
        assert ("audio", "") in kinds and kinds <= {("audio", ""), *LAYERS}, kinds
