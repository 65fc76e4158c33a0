"""The privateMapKey's bits in <tavkit-call>: what a tab asks for, offers, answers and shows.

Every description a tab sends is recorded on its way to the socket and read with
the server's own check (:func:`tavkit.protocol.sdp.refusal`); what getUserMedia was
asked for is recorded too, so a test can prove a device was never requested.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext

from tavkit.auth import Privilege
from tavkit.protocol.sdp import media_sections, refusal

from .pages import POLL, RECORD_SDP, CallPage

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]
VIEWER = int(Privilege.VIEWER)  # 42: enter, receive audio, receive video
SPEAKER = int(Privilege.ENTER | Privilege.SEND_AUDIO | Privilege.RECV_AUDIO | Privilege.RECV_VIDEO)

# Runs after pages.INSTRUMENT: keeps each getUserMedia's constraints (the page's offers
# and answers are kept by pages.RECORD_SDP, added with it).
RECORD = """
(() => {
  const tv = window.__tv;
  tv.asked = [];
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const open = md.getUserMedia.bind(md);
    md.getUserMedia = (constraints) => {
      tv.asked.push({ audio: Boolean(constraints?.audio), video: Boolean(constraints?.video) });
      return open(constraints);
    };
  }
})();
"""

_CONTROLS = """(el) => Object.fromEntries(
  [...el.shadowRoot.querySelectorAll('.tv-controls button[data-action]')].map(
    (b) => [b.dataset.action, getComputedStyle(b).display !== 'none'],
  ),
)"""


@pytest.fixture
def recording(context: BrowserContext) -> BrowserContext:
    """The test's browser context, recording requested media and sent descriptions."""
    context.add_init_script(RECORD)
    context.add_init_script(RECORD_SDP)
    return context


def directions(sdp: str) -> set[str]:
    """The directions of the audio and video m-lines of ``sdp``."""
    return {s.direction for s in media_sections(sdp) if s.kind in ("audio", "video")}


def wait_tiles(page: CallPage, wanted: list[str], timeout: float = 30_000) -> None:
    """Wait until ``page`` shows exactly the tiles of ``wanted`` (in any order)."""
    try:
        page.page.wait_for_function(
            """(wanted) => {
                const el = document.getElementById('call');
                const tiles = [...el.shadowRoot.querySelectorAll('.tv-tile')];
                const ids = tiles.map((t) => t.dataset.userId);
                return JSON.stringify(ids.sort()) === JSON.stringify([...wanted].sort());
            }""",
            arg=wanted,
            timeout=timeout,
            polling=POLL,
        )
    except Exception:
        raise AssertionError(f"{page.user_id} shows {page.tile_ids()}, not {wanted}") from None


@pytest.mark.timeout(600)
def test_an_audience_tab_watches_without_devices_tiles_or_a_send_bit(
    open_call: OpenCall, recording: BrowserContext, call_server: Any, room: int
) -> None:
    """A privilege-42 tab decodes two publishers, asks for no device, shows no own tile."""
    host, viewer, guest = (open_call(u, recording) for u in ("host", "viewer", "guest"))
    assert host.join(call_server, room) is True
    key = call_server.pmk("viewer", room, VIEWER)
    assert viewer.join(call_server, room, privateMapKey=key) is True
    viewer.wait_connected("host")  # the viewer offered to the host
    viewer.wait_video_decoding("host")
    assert guest.join(call_server, room) is True
    viewer.wait_connected("guest")  # the guest offered to the viewer, who answered
    viewer.wait_video_decoding("guest")

    assert viewer.tv("gum") == 0 and viewer.tv("asked") == []
    assert viewer.call("(el) => el.localStream") is None
    wait_tiles(viewer, ["host", "guest"])
    assert viewer.call(_CONTROLS) == {
        "mute": False,
        "camera": False,
        "switch-camera": False,
        "share": False,  # no sub-stream bit (64), so no screen
        "devices": True,  # a viewer still chooses its speaker
        "chat": True,
        "hangup": True,
    }
    sent = viewer.tv("sdps")
    assert {(to, kind) for to, kind, _ in sent} >= {("host", "offer"), ("guest", "answer")}
    for to, kind, sdp in sent:
        assert refusal(sdp, VIEWER) is None, f"{kind} to {to}"
        assert directions(sdp) <= {"recvonly", "inactive"}, f"{kind} to {to}"
    assert viewer.tv("errors") == []

    # The others see the viewer in the member count but give it no (empty) tile.
    for page in (host, guest):
        wait_tiles(page, ["host", "guest"])
        assert "3" in page.call("(el) => el.shadowRoot.querySelector('.tv-count').textContent")
        assert page.tv("errors") == []
        controls = page.call(_CONTROLS)
        assert controls["camera"] is True and controls["share"] is True


def test_a_tab_that_may_send_only_audio_never_asks_for_the_camera(
    open_call: OpenCall, recording: BrowserContext, call_server: Any, room: int
) -> None:
    """Send-audio without send-video: getUserMedia is asked for the microphone only."""
    host, speaker = open_call("host", recording), open_call("speaker", recording)
    assert host.join(call_server, room) is True
    key = call_server.pmk("speaker", room, SPEAKER)
    assert speaker.join(call_server, room, privateMapKey=key) is True
    speaker.wait_connected("host")
    speaker.wait_video_decoding("host")
    host.wait_audio_rising("speaker")

    assert speaker.tv("asked") == [{"audio": True, "video": False}]
    tracks = speaker.call("(el) => el.localStream.getTracks().map((t) => t.kind)")
    assert tracks == ["audio"]
    controls = speaker.call(_CONTROLS)
    assert controls["mute"] is True and controls["camera"] is False
    assert controls["switch-camera"] is False and controls["share"] is False
    wait_tiles(speaker, ["speaker", "host"])
    for to, kind, sdp in speaker.tv("sdps"):
        assert refusal(sdp, SPEAKER) is None, f"{kind} to {to}"
    assert speaker.tv("errors") == []


def test_an_audience_member_leaving_a_two_member_call_ends_nothing(
    open_call: OpenCall, recording: BrowserContext, call_server: Any, room: int
) -> None:
    """A viewer is no "other party": its leaving neither ends the host's call nor notifies."""
    host, viewer = (open_call(u, recording) for u in ("host", "viewer"))
    assert host.join(call_server, room) is True
    key = call_server.pmk("viewer", room, VIEWER)
    assert viewer.join(call_server, room, privateMapKey=key) is True
    viewer.wait_connected("host")
    viewer.call("(el) => el.hangup()")
    host.page.wait_for_function(
        "() => window.__tv.events.some((e) => e.type === 'tavkit:user-leave')", polling=POLL
    )
    # Ending would have stopped the host's devices at once (before leaving the room).
    live = "(el) => el.localStream.getTracks().every((t) => t.readyState === 'live')"
    assert host.call(live) is True
    assert host.state() == "waiting"
    assert host.page.locator("tavkit-call .tv-notice").is_hidden()
