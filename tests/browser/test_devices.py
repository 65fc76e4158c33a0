"""Devices before and during a call: the pre-join check and switching.

Chromium's fake devices give two cameras, three microphones (a beeping tone) and
three speakers. Screen share, its own tile beside the camera, is ``test_share.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from .pages import POLL, CallPage, Server, joined_pair, keep

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]

# start() with the check: it resolves only after Join, so the tests do not await it.
_START_WITH_CHECK = """
(options) => {
  const tv = window.__tv;
  options.listener = { onErrorListener(error) { tv.errors.push(error); } };
  tv.started = document.getElementById("call").start(options).then((ok) => { tv.joined = ok; });
}
"""

# What a page sends: the deviceId (or label) of its outgoing tracks, from the senders.
_SENT = """
(el) => {
  const pc = [...el.peerConnections().values()][0];
  const out = {};
  for (const sender of pc.getSenders()) {
    if (sender.track) out[sender.track.kind] = {
      deviceId: sender.track.getSettings().deviceId, label: sender.track.label,
      enabled: sender.track.enabled };
  }
  return out;
}
"""


def _remote_sdp(page: CallPage, user_id: str) -> str:
    """The remote description this page applied for ``user_id`` (changes with each offer)."""
    return str(page.call("(el, id) => el.peerConnections().get(id).remoteDescription.sdp", user_id))


def _pj(page: CallPage, selector: str) -> Any:
    return page.page.locator(f"tavkit-call .tv-prejoin {selector}")


def test_prejoin_check_shows_preview_and_level_and_its_choices_carry_into_the_call(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """The check previews the camera and a microphone level that moves with the fake
    microphone's beeps; the camera and microphone picked there, both switched off,
    are what the call sends (no second getUserMedia) and what the other side shows."""
    alice = open_call("alice")
    alice.page.evaluate(
        _START_WITH_CHECK,
        {
            "userId": "alice",
            "roomId": room,
            "sdkAppId": call_server.app_id,
            "userSig": call_server.sig("alice"),
            "prejoin": True,
        },
    )
    expect(_pj(alice, ".tv-pj-join")).to_be_visible()
    alice.page.wait_for_function(
        """() => document.getElementById('call').shadowRoot
             .querySelector('.tv-pj-video').videoWidth > 0""",
        polling=POLL,
    )
    # The meter follows the beeps: it rises above silence and falls back.
    levels = alice.page.evaluate(
        """async () => {
            const meter = document.getElementById('call').shadowRoot.querySelector('.tv-pj-level');
            const seen = [];
            for (let i = 0; i < 30; i += 1) {
              seen.push(Number(meter.getAttribute('aria-valuenow')));
              await new Promise((r) => setTimeout(r, 100));
            }
            return seen;
        }"""
    )
    assert max(levels) >= 20 and min(levels) < max(levels) - 15, levels
    # Nothing touches the room before Join.
    assert alice.state() == "idle"
    assert not [url for url in alice.tv("fetches") if "/enter" in url]

    cameras = _pj(alice, '[data-kind="camera"] select option')
    mics = _pj(alice, '[data-kind="microphone"] select option')
    assert cameras.count() == 2 and mics.count() >= 2
    expect(_pj(alice, '[data-kind="speaker"]')).to_be_visible()
    camera_id = cameras.nth(1).get_attribute("value")
    mic_id = mics.nth(1).get_attribute("value")
    _pj(alice, '[data-kind="camera"] select').select_option(camera_id)
    _pj(alice, '[data-kind="microphone"] select').select_option(mic_id)
    alice.page.wait_for_function(
        """([cam, mic]) => {
            const v = document.getElementById('call').shadowRoot.querySelector('.tv-pj-video');
            const ids = (v.srcObject?.getTracks() || []).map((t) => t.getSettings().deviceId);
            return ids.includes(cam) && ids.includes(mic);
        }""",
        arg=[camera_id, mic_id],
        polling=POLL,
    )
    keep(alice, "prejoin-desktop.png")
    _pj(alice, '[data-pj="mic"]').click()
    _pj(alice, '[data-pj="camera"]').click()
    expect(_pj(alice, ".tv-pj-off")).to_be_visible()
    expect(_pj(alice, ".tv-pj-level")).to_be_hidden()
    alice.page.set_viewport_size({"width": 390, "height": 844})
    keep(alice, "prejoin-phone-off.png")
    opened = alice.tv("gum")

    _pj(alice, ".tv-pj-join").click()
    alice.wait_state("waiting")
    expect(alice.page.locator("tavkit-call .tv-prejoin")).to_be_hidden()
    assert alice.tv("gum") == opened, "the call used the check's devices"
    assert alice.call("(el) => [el.muted, el.cameraEnabled]") == [True, False]

    bob = open_call("bob")
    assert bob.join(call_server, room) is True
    alice.wait_connected("bob")
    sent = alice.call(_SENT)
    assert sent["video"]["deviceId"] == camera_id and sent["audio"]["deviceId"] == mic_id
    assert not sent["video"]["enabled"] and not sent["audio"]["enabled"]
    at_bob = bob.tile("alice")
    expect(at_bob).to_have_attribute("data-muted", "")
    expect(at_bob).to_have_attribute("data-camera-off", "")
    # Remembered for the next call on this origin.
    saved = alice.page.evaluate("JSON.parse(localStorage.getItem('tavkit:devices'))")
    assert saved["camera"] == camera_id and saved["microphone"] == mic_id
    assert alice.tv("errors") == []


def test_switching_devices_in_the_call_keeps_the_other_side_receiving_without_an_offer(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Picking the other camera and microphone in the devices menu replaces the sent
    tracks on the connection; Bob keeps decoding Alice's video and no new offer is made."""
    alice, bob = joined_pair(open_call, call_server, room)
    bob.wait_video_decoding("alice", frames=5)
    offer = _remote_sdp(bob, "alice")
    before = alice.call(_SENT)

    alice.page.locator('tavkit-call [data-action="devices"]').click()
    menu = alice.page.locator("tavkit-call .tv-menu")
    expect(menu).to_be_visible()
    camera = menu.locator('[data-kind="camera"] select')
    mic = menu.locator('[data-kind="microphone"] select')
    expect(camera).to_have_value(before["video"]["deviceId"])
    other_camera = next(
        v
        for v in camera.locator("option").evaluate_all("os => os.map(o => o.value)")
        if v != before["video"]["deviceId"]
    )
    other_mic = next(
        v
        for v in mic.locator("option").evaluate_all("os => os.map(o => o.value)")
        if v != before["audio"]["deviceId"]
    )
    keep(alice, "prejoin-devices-menu.png")
    camera.select_option(other_camera)
    alice.page.wait_for_function(
        f"(id) => ({_SENT})(document.getElementById('call')).video.deviceId === id",
        arg=other_camera,
        polling=POLL,
    )
    mic.select_option(other_mic)
    alice.page.wait_for_function(
        f"(id) => ({_SENT})(document.getElementById('call')).audio.deviceId === id",
        arg=other_mic,
        polling=POLL,
    )
    bob.wait_video_decoding("alice", frames=15)
    bob.wait_audio_rising("alice")
    assert _remote_sdp(bob, "alice") == offer, "the switch renegotiated"
    assert alice.call("(el) => el.localStream.getVideoTracks()[0].getSettings().deviceId") == (
        other_camera
    )
    assert [e["kind"] for e in alice.events("tavkit:device")] == ["video", "audio"]
    assert alice.tv("errors") == [] and bob.tv("errors") == []
