"""Two tabs in one room: media both ways, mute, camera, hang-up and vanished tabs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from .pages import SHORT_HEARTBEAT_TIMEOUT, CallPage, Server

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]


def tab_opener(context: BrowserContext, server: Server) -> OpenCall:
    """Open tabs on ``server`` (for tests that need a server of their own)."""
    return lambda user_id: CallPage(context.new_page(), server.url, user_id)


def pair(open_call: OpenCall, server: Server, room: int) -> tuple[CallPage, CallPage]:
    """Alice waits in the room, then Bob joins; both are connected when this returns."""
    alice = open_call("alice")
    assert alice.join(server, room) is True
    alice.wait_state("waiting")
    bob = open_call("bob")
    assert bob.join(server, room) is True
    alice.wait_connected("bob")
    bob.wait_connected("alice")
    return alice, bob


def test_two_tabs_see_and_hear_each_other(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Each tab renders the other's advancing video and receives its audio."""
    alice, bob = pair(open_call, call_server, room)

    for viewer, other in ((alice, "bob"), (bob, "alice")):
        frames = viewer.video_frames(other, frames=15)
        assert frames["last"] > frames["first"], frames
        assert frames["width"] > 0 and frames["height"] > 0
        viewer.wait_audio_rising(other)

    assert alice.layout() == "pip" and bob.layout() == "pip"
    assert alice.tile_ids() == ["alice", "bob"]
    assert alice.state() == "in-call"
    # The newcomer learnt who was there; the member already in saw Bob arrive.
    assert bob.events("tavkit:joined")[0]["members"] == ["alice"]
    assert [e["userId"] for e in alice.events("tavkit:user-enter")] == ["bob"]
    assert alice.tv("userInfo") == [["bob"]]
    expect(alice.tile("bob").locator(".tv-name")).to_have_text("Name of bob")
    assert alice.tv("errors") == []

    alice.page.set_viewport_size({"width": 1280, "height": 800})
    alice.video_frames("bob", frames=3)
    alice.screenshot("call-1v1-desktop.png")
    bob.page.set_viewport_size({"width": 390, "height": 844})
    bob.video_frames("alice", frames=3)
    bob.screenshot("call-1v1-phone.png")


def test_mute_and_camera_show_on_the_other_side(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Bob's mute and camera buttons fire his listener and change his tile at Alice's; each
    button's label says what the next press does (Mute/Unmute, Stop video/Start video)."""
    alice, bob = pair(open_call, call_server, room)
    bob_at_alice = alice.tile("bob")

    mute = bob.page.locator('tavkit-call button[data-action="mute"]')
    expect(mute).to_have_attribute("aria-label", "Mute")
    mute.click()
    expect(mute).to_have_attribute("aria-label", "Unmute")
    expect(mute.locator(".tv-control-label")).to_have_text("Unmute")
    assert bob.tv("muted") == [True]
    assert bob.events("tavkit:muted") == [{"muted": True}]
    expect(bob_at_alice).to_have_attribute("data-muted", "")
    assert bob.call("(el) => el.localStream.getAudioTracks()[0].enabled") is False

    camera = bob.page.locator('tavkit-call button[data-action="camera"]')
    expect(camera.locator(".tv-control-label")).to_have_text("Stop video")
    camera.click()
    expect(camera).to_have_attribute("aria-label", "Start video")
    expect(camera.locator(".tv-control-label")).to_have_text("Start video")
    expect(bob_at_alice).to_have_attribute("data-camera-off", "")
    expect(bob_at_alice.locator(".tv-avatar")).to_be_visible()

    bob.call("(el) => el.mute(false)")
    bob.call("(el) => el.enableCamera(true)")
    expect(bob_at_alice).not_to_have_attribute("data-muted", "")
    expect(bob_at_alice).not_to_have_attribute("data-camera-off", "")
    expect(mute).to_have_attribute("aria-label", "Mute")
    expect(camera).to_have_attribute("aria-label", "Stop video")
    assert bob.tv("muted") == [True, False]


def test_switch_camera_reports_front_and_keeps_sending(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """switchCamera() tells the listener which camera is in use and video keeps flowing."""
    alice, bob = pair(open_call, call_server, room)
    bob.page.locator('tavkit-call button[data-action="switch-camera"]').click()
    bob.page.wait_for_function("window.__tv.switched.length === 1", polling=100)
    assert bob.tv("switched") == [False]
    frames = alice.video_frames("bob", frames=10)
    assert frames["last"] > frames["first"]


def test_hangup_asks_then_ends_the_call_for_both(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """The hang-up button confirms, fires onHandupListener and trtc 5000; Alice sees Bob go,
    and her two-person call ends with him (endOnPeerLeave's default), her listener told by
    trtc 5000 but not onHandupListener."""
    alice, bob = pair(open_call, call_server, room)

    bob.page.locator('tavkit-call button[data-action="hangup"]').click()
    dialog = bob.page.locator('tavkit-call tavkit-dialog[data-kind="confirm-hangup"]')
    expect(dialog).to_have_attribute("open", "")
    bob.screenshot("call-confirm-hangup.png")
    dialog.locator('button[data-choice="cancel"]').click()
    expect(dialog).not_to_have_attribute("open", "")
    assert bob.state() == "in-call"

    bob.page.locator('tavkit-call button[data-action="hangup"]').click()
    dialog.locator('button[data-choice="hangup"]').click()
    bob.wait_state("ended")
    assert bob.tv("handups") == 1
    assert bob.tv("errors") == [
        {"module": "trtc", "errorCode": 5000, "errorMsg": "The call was ended"}
    ]
    assert bob.call("(el) => el.peerConnections().size") == 0

    alice.wait_state("ended")
    assert alice.events("tavkit:user-leave") == [{"userId": "bob", "reason": "exit"}]
    assert alice.tile_ids() == []
    assert alice.tv("handups") == 0
    assert alice.tv("errors")[-1]["errorCode"] == 5000
    expect(alice.page.locator("tavkit-call .tv-status-text")).to_have_text(
        "The other party hung up"
    )


def test_closed_tab_leaves_the_call(
    context: BrowserContext, short_timeout_server: Server, room: int
) -> None:
    """Closing Bob's tab without hanging up removes him from Alice's call; the tab says it
    leaves as it closes, so her two-person call ends as for a hang-up."""
    alice, bob = pair(tab_opener(context, short_timeout_server), short_timeout_server, room)
    bob.page.close()
    alice.wait_state("ended", timeout=(SHORT_HEARTBEAT_TIMEOUT + 5) * 1000)
    assert alice.events("tavkit:user-leave") == [{"userId": "bob", "reason": "exit"}]
    assert alice.tile_ids() == []
    expect(alice.page.locator("tavkit-call .tv-status-text")).to_have_text(
        "The other party hung up"
    )


def test_hung_tab_times_out(
    context: BrowserContext, short_timeout_server: Server, room: int
) -> None:
    """A tab whose script stops (no heartbeats, socket still open) is dropped as a timeout."""
    alice, bob = pair(tab_opener(context, short_timeout_server), short_timeout_server, room)
    # The debugger's pause stops every timer and handler of Bob's page while the
    # browser keeps his socket open: a hung tab, as the server sees one.
    cdp = context.new_cdp_session(bob.page)
    cdp.send("Debugger.enable")
    cdp.send("Debugger.pause")
    alice.wait_state("waiting", timeout=(SHORT_HEARTBEAT_TIMEOUT + 5) * 1000)
    assert alice.events("tavkit:user-leave") == [{"userId": "bob", "reason": "timeout"}]
    cdp.send("Debugger.resume")
