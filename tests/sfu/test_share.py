"""Screen sharing in SFU rooms: the screen is one more stream of the member's publication.

A real tavkit server (``--media-mode sfu``) in front of the module's real Janus
(``conftest.py``); the members are Python clients. The cameras are 160x120 patterns and
the shared screen a 320x180 one, so a frame's size says which it is.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCPeerConnection

from tavkit.auth import Privilege
from tavkit.client.media import TestPattern
from tavkit.protocol import DescriptionData, MediaSignalTo, SessionDescription
from tavkit.protocol.sdp import mark_slides
from tavkit.testing import Participant

from .conftest import RunningJanus
from .test_rooms import FRAMES, WITHIN, inspector, small_pattern, tavkit_server

__all__ = ["inspector", "tavkit_server"]  # the fixtures, shared with test_rooms

NO_RECV_SUB = int(Privilege.ALL) & ~int(Privilege.RECV_SUB)
NO_SEND_SUB = int(Privilege.ALL) & ~int(Privilege.SEND_SUB)
SCREEN_FRAMES = 5  # one second of the 5 fps screen


def screen_pattern() -> TestPattern:
    """A 320x180, 5 fps pattern: a screen, twice the cameras' width."""
    return TestPattern(width=320, height=180, fps=5, variant=3, audio=False)


def subscribed(member: Participant, user_id: str) -> list[str]:
    """The kinds of ``user_id``'s streams on the member's current subscription, by mid."""
    for connection in member.kit.connections():
        if connection.role == "subscription":
            pc = connection.pc
            return [
                t.kind
                for t in sorted(pc.getTransceivers(), key=lambda t: int(t.mid or 0))
                if connection.feeds.get(t.mid or "") == user_id
            ]
    return []


def subscription_number(member: Participant) -> int:
    """The number of the member's current subscription (0 before the first)."""
    numbers = [c.subscription or 0 for c in member.kit.connections() if c.role == "subscription"]
    return max(numbers, default=0)


async def test_a_member_shares_its_screen_and_the_others_decode_it_apart_from_its_camera(
    participant: Any, janus: RunningJanus
) -> None:
    """A member who shares sends its screen as a second video of its publication: a member
    with RECV_SUB hears ``on_screen_share`` and decodes 320x180 screen frames (never in
    ``on_frame``) while the 160x120 camera goes on; a member without RECV_SUB is not given
    the screen at all and keeps the camera, with no error. Stopping removes the stream
    and the others hear the share end; the camera goes on."""
    host = [janus.address]
    alice = await participant("alice", host_addresses=host, source=small_pattern(0))
    bob = await participant("bob", host_addresses=host, source=small_pattern(1))
    carol = await participant(
        "carol", host_addresses=host, source=small_pattern(2), privilege=NO_RECV_SUB
    )
    for member in (bob, carol):
        await member.wait_for_video_from("alice", FRAMES, within=WITHIN)

    before = subscription_number(carol)
    await alice.kit.share_screen(screen_pattern())
    assert alice.kit.sharing
    await bob.wait_for_screen_from("alice", SCREEN_FRAMES, within=WITHIN)
    stats = bob.kit.peers["alice"]
    assert (stats.screen_width, stats.screen_height) == (320, 180)
    await bob.wait_for_video_from("alice", FRAMES, more=True, within=WITHIN)
    assert (bob.last_frame("alice").width, bob.last_frame("alice").height) == (160, 120)
    assert subscribed(bob, "alice") == ["audio", "video", "video"]

    await carol.wait_for(lambda: carol.sharing("alice"), "alice's share announced")
    await carol.wait_for(  # made again since alice published her screen
        lambda: subscription_number(carol) > before and bool(subscribed(carol, "alice")),
        "a subscription made since the share",
    )
    assert subscribed(carol, "alice") == ["audio", "video"]
    await carol.wait_for_video_from("alice", FRAMES, more=True, within=WITHIN)
    assert carol.screen_frames_from("alice") == 0
    assert carol.errors == [] and alice.errors == [] and bob.errors == []

    await alice.kit.stop_screen()
    assert not alice.kit.sharing
    await bob.wait_for_screen_stop("alice", within=WITHIN)
    await bob.wait_for(
        lambda: subscribed(bob, "alice") == ["audio", "video"], "alice's screen unsubscribed"
    )
    shown = bob.screen_frames_from("alice")
    await bob.wait_for_video_from("alice", FRAMES, more=True, within=WITHIN)
    assert bob.screen_frames_from("alice") == shown
    assert alice.errors == [] and bob.errors == []


async def test_a_member_without_send_sub_may_not_publish_a_screen(
    participant: Any, janus: RunningJanus, inspector: Any
) -> None:
    """Without SEND_SUB (64) the client does not offer a screen (``share_screen`` raises,
    nothing sent), and a publish offer carrying one anyway is refused by the server with
    server 10004 naming SEND_SUB (64): Janus never gets it, the camera stays published."""
    host = [janus.address]
    alice = await participant(
        "alice", host_addresses=host, source=small_pattern(0), privilege=NO_SEND_SUB
    )
    bob = await participant("bob", host_addresses=host, source=small_pattern(1))
    await bob.wait_for_video_from("alice", FRAMES, within=WITHIN)
    with pytest.raises(RuntimeError, match="SEND_SUB"):
        await alice.kit.share_screen(screen_pattern())
    assert not alice.kit.sharing

    room = alice.kit._room
    assert room is not None and room.socket is not None
    pc = RTCPeerConnection()
    camera, screen = small_pattern(2), screen_pattern()
    await camera.open()
    await screen.open()
    try:
        assert camera.video is not None and screen.video is not None
        pc.addTransceiver(camera.video, direction="sendonly")
        shared = pc.addTransceiver(screen.video, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert shared.mid is not None
        sdp = mark_slides(pc.localDescription.sdp, {shared.mid})
        offer = DescriptionData(SessionDescription("offer", sdp))
        await room.socket.send(MediaSignalTo("publish", offer, id="publish-screen"))
        await alice.wait_for(lambda: bool(alice.errors), "the refusal of its screen")
    finally:
        await pc.close()
        await camera.close()
        await screen.close()
    (error,) = alice.errors
    assert (error["module"], error["errorCode"]) == ("server", 10004)
    assert "SEND_SUB (64)" in error["errorMsg"]
    await bob.wait_for_video_from("alice", FRAMES, more=True, within=WITHIN)
    assert bob.screen_frames_from("alice") == 0
    assert alice.room_uuid is not None
    assert sorted(await inspector.publishers(alice.room_uuid)) == ["alice", "bob"]
