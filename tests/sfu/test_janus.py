"""tavkit's Janus client against a real Janus: rooms, publishers, subscribers, real media.

The peers are aiortc with tavkit's own client pieces: a :class:`TestPattern` read by the
encode-once :class:`Publisher` (VP8 and Opus encoded once, as ``tavkit call`` sends),
an explicit ICE configuration with no servers, and host candidates gathered on the
address Janus uses (see ``conftest.py``). What aiortc and Janus needed to agree is in
``docs/sfu.md`` ("Janus quirks").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from tavkit.client._publish import Publisher
from tavkit.client.media import TestPattern
from tavkit.client.peer import _prefer_vp8
from tavkit.client.sinks import PeerStats
from tavkit.ice import configuration, gather_on
from tavkit.server.sfu.janus import JanusError, JanusSession, JanusUnavailable, VideoRoomHandle
from tavkit.server.sfu.videoroom import Detached, Leaving, Publishers, Stream, WebRTCUp
from tavkit.testing._wait import until

from .conftest import RunningJanus, launch, stop_janus

EVENT_TIMEOUT = 10.0
MEDIA_TIMEOUT = 15.0
FRAMES = 30  # two seconds of the 15 fps pattern


@dataclass
class Peer:
    """One aiortc PeerConnection with Janus, and what it received from each publisher."""

    pc: RTCPeerConnection
    publishers: list[Publisher] = field(default_factory=list)
    stats: dict[str, PeerStats] = field(default_factory=dict)
    video_pts: dict[str, list[int]] = field(default_factory=dict)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        for publisher in self.publishers:
            await publisher.aclose()
        await self.pc.close()


@pytest.fixture
async def session(janus: RunningJanus) -> AsyncIterator[JanusSession]:
    """A Janus session, destroyed after the test."""
    session = await JanusSession.connect(janus.url, api_secret=janus.api_secret)
    yield session
    await session.close()


async def publish(handle: VideoRoomHandle, address: str, variant: int = 0) -> Peer:
    """Publish a test pattern (audio and video) through ``handle``, which has joined."""
    source = TestPattern(width=320, height=240, fps=15, variant=variant)
    await source.open()
    assert source.audio is not None and source.video is not None
    peer = Peer(RTCPeerConnection(configuration([])))
    for track in (source.audio, source.video):
        publisher = Publisher(track.kind, track)  # type: ignore[arg-type]
        publisher.start()
        peer.publishers.append(publisher)
        sender = peer.pc.addTransceiver(publisher.subscribe(), direction="sendonly").sender
        if track.kind == "video":
            # Janus asks for keyframes (PLI/FIR) when a subscriber starts: encode-once
            # answers them from the shared encoder, as the kit does.
            setattr(sender, "_send_keyframe", publisher.request_keyframe)  # noqa: B010
    _prefer_vp8(peer.pc)
    gather_on(peer.pc, [address])
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    answer = await handle.publish(peer.pc.localDescription.sdp)
    await peer.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return peer


async def subscribe(
    handle: VideoRoomHandle, room: str, feeds: list[str], private_id: int | None, address: str
) -> Peer:
    """Subscribe to ``feeds`` in one PeerConnection through ``handle``: Janus offers,
    aiortc answers; each track is counted under the feed its mid carries."""
    subscription = await handle.subscribe(room, feeds, private_id=private_id)
    assert {s.feed for s in subscription.streams} == set(feeds)
    peer = Peer(RTCPeerConnection(configuration([])))
    for feed in feeds:
        peer.stats[feed], peer.video_pts[feed] = PeerStats(feed), []

    @peer.pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        mid = next(t.mid for t in peer.pc.getTransceivers() if t.receiver.track is track)
        feed = subscription.feed_of(mid)
        assert feed is not None, f"no feed on mid {mid}"
        peer.readers.append(asyncio.create_task(read(feed, track)))

    async def read(feed: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                peer.stats[feed].count(frame)
                if isinstance(frame, VideoFrame) and frame.pts is not None:
                    peer.video_pts[feed].append(frame.pts)

    await peer.pc.setRemoteDescription(RTCSessionDescription(subscription.offer, "offer"))
    gather_on(peer.pc, [address])
    await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    await handle.start(peer.pc.localDescription.sdp)
    return peer


async def test_publishers_reach_a_subscriber_through_janus_in_one_peer_connection(
    janus: RunningJanus, session: JanusSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Alice and Carol publish through a VideoRoom; Bob learns of them from events,
    subscribes to both in one PeerConnection and decodes frames from each that advance;
    a subscriber without a member's private id is refused; Alice leaving reaches Bob as
    an event; no secret reaches a log line."""
    caplog.set_level(logging.DEBUG)
    room, room_secret = f"room-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    admin = await session.attach_videoroom()
    await admin.create_room(room, secret=room_secret, publishers=6)
    alice, carol, bob, bob_feeds = [await session.attach_videoroom() for _ in range(4)]
    assert (await alice.join_publisher(room, id="alice", display="Alice")).publishers == ()
    await carol.join_publisher(room, id="carol")
    bob_joined = await bob.join_publisher(room, id="bob")
    assert bob_joined.private_id is not None
    peers: list[Peer] = []
    try:
        peers.append(await publish(alice, janus.address))
        await alice.wait_for(WebRTCUp, EVENT_TIMEOUT)
        # A trickled candidate (a browser's way) and the end of candidates are accepted.
        sdp = peers[0].pc.localDescription.sdp
        line = next(x for x in sdp.splitlines() if "candidate:" in x)
        await alice.trickle(line.removeprefix("a="), "0", 0)
        await alice.trickle_complete()
        told = await bob.wait_for(Publishers, EVENT_TIMEOUT)
        assert isinstance(told, Publishers)
        assert [p.id for p in told.publishers] == ["alice"]
        assert told.publishers[0].display == "Alice"
        kinds = {(s.type, s.codec) for s in told.publishers[0].streams}
        assert kinds == {("audio", "opus"), ("video", "vp8")}
        peers.append(await publish(carol, janus.address, variant=1))
        told = await bob.wait_for(Publishers, EVENT_TIMEOUT)
        assert isinstance(told, Publishers) and [p.id for p in told.publishers] == ["carol"]

        with pytest.raises(JanusError) as caught:  # not one of the room's members
            await (await session.attach_videoroom()).subscribe(room, ["alice"], private_id=None)
        assert caught.value.janus_code == 433
        received = await subscribe(
            bob_feeds, room, ["alice", "carol"], bob_joined.private_id, janus.address
        )
        peers.append(received)
        await bob_feeds.wait_for(WebRTCUp, EVENT_TIMEOUT)
        stats = received.stats.values()
        await until(
            lambda: all(s.video_frames >= FRAMES and s.audio_frames >= FRAMES for s in stats),
            f"{FRAMES} video and audio frames from alice and from carol",
            MEDIA_TIMEOUT,
        )
        for feed, pts in received.video_pts.items():
            assert (received.stats[feed].width, received.stats[feed].height) == (320, 240)
            assert len(set(pts)) >= FRAMES and pts[-1] > pts[0], f"{feed}'s video is stuck"

        await alice.leave()
        left = await bob.wait_for(Leaving, EVENT_TIMEOUT)
        assert left == Leaving(room, "alice")
    finally:
        for peer in peers:
            await peer.close()
    await admin.destroy_room(room, secret=room_secret)
    assert not await admin.room_exists(room)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "-> message/publish" in text  # the requests were logged, by verb
    assert janus.api_secret not in text and room_secret not in text


async def test_janus_refuses_a_session_without_the_api_secret(janus: RunningJanus) -> None:
    """A client without the API secret (or with a wrong one) gets no session: Janus 403."""
    for secret in (None, "not-" + janus.api_secret):
        with pytest.raises(JanusError) as caught:
            await JanusSession.connect(janus.url, api_secret=secret)
        assert caught.value.janus_code == 403


async def test_videoroom_refusals_come_back_as_errors_with_janus_s_code(
    session: JanusSession,
) -> None:
    """Room secrets, unique ids and feeds are enforced by Janus, and reported typed (a
    trickle to a detached handle too)."""
    room, room_secret = f"room-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    admin = await session.attach_videoroom()
    await admin.create_room(room, secret=room_secret)
    codes = {}
    for name, attempt in {
        "exists": admin.create_room(room, secret=room_secret),
        "wrong secret": admin.destroy_room(room, secret="wrong"),
        "no room": (await session.attach_videoroom()).join_publisher("nowhere", id="x"),
    }.items():
        with pytest.raises(JanusError) as caught:
            await attempt
        codes[name] = caught.value.janus_code
    first, second, early = [await session.attach_videoroom() for _ in range(3)]
    await first.join_publisher(room, id="alice")
    with pytest.raises(JanusError) as caught:
        await second.join_publisher(room, id="alice")
    codes["id taken"] = caught.value.janus_code
    with pytest.raises(JanusError) as caught:
        await early.subscribe(room, ["alice"], private_id=None)  # alice is not publishing
    codes["no feed"] = caught.value.janus_code
    gone = await session.attach_videoroom()
    await gone.detach()
    with pytest.raises(JanusError) as caught:
        await gone.trickle_complete()  # an error, not the ack a live handle gets
    codes["no handle"] = caught.value.janus_code
    assert codes == {
        "no handle": 459,
        "exists": 427,
        "wrong secret": 433,
        "no room": 426,
        "id taken": 436,
        "no feed": 428,
    }
    await admin.destroy_room(room, secret=room_secret)


async def test_closing_a_session_leaves_no_participant_behind(
    janus: RunningJanus, session: JanusSession
) -> None:
    """When tavkit's session ends, its participants leave the room at once (no ghosts)."""
    room, room_secret = f"room-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    admin = await session.attach_videoroom()
    await admin.create_room(room, secret=room_secret)
    other = await JanusSession.connect(janus.url, api_secret=janus.api_secret)
    for user in ("alice", "bob"):
        await (await other.attach_videoroom()).join_publisher(room, id=user)
    assert sorted(await admin.participants(room)) == ["alice", "bob"]
    await other.close()
    with pytest.raises(JanusError):
        await other.attach_videoroom()
    async with asyncio.timeout(EVENT_TIMEOUT):
        while await admin.participants(room):  # noqa: ASYNC110 (polling Janus)
            await asyncio.sleep(0.05)
    await admin.destroy_room(room, secret=room_secret)


async def test_a_janus_that_dies_detaches_every_handle_and_fails_requests(
    tmp_path: Path,
) -> None:
    """Janus killed mid-call: every handle is told (Detached), the session is closed, and a
    request fails at once with JanusUnavailable instead of hanging."""
    running, process = launch(tmp_path)
    try:
        session = await JanusSession.connect(running.url, api_secret=running.api_secret)
        admin = await session.attach_videoroom()
        await admin.create_room("doomed", secret=secrets.token_urlsafe(16))
        alice = await session.attach_videoroom()
        await alice.join_publisher("doomed", id="alice")
        process.kill()
        detached = await alice.wait_for(Detached, EVENT_TIMEOUT)
        assert session.closed.is_set()
        with pytest.raises(JanusUnavailable):
            await admin.room_exists("doomed")
        assert isinstance(detached, Detached)
    finally:
        stop_janus(process)
    await session.close()  # closing a dead session is harmless


def test_streams_and_publishers_parse_janus_s_shapes() -> None:
    """A publishers entry reads into typed values; disabled streams are left out."""
    from tavkit.server.sfu.videoroom import Publisher as JanusPublisher

    entry = {
        "id": "alice",
        "display": "Alice",
        "streams": [
            {"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"},
            {"type": "video", "mindex": 1, "mid": "1", "codec": "vp8"},
            {"type": "video", "mindex": 2, "mid": "2", "disabled": True},
        ],
    }
    assert JanusPublisher.parse(entry) == JanusPublisher(
        "alice", "Alice", (Stream("0", "audio", "opus"), Stream("1", "video", "vp8"))
    )


def test_a_stream_described_as_a_screen_reads_as_one() -> None:
    """A publisher's stream keeps the description it was published with, and a
    subscription's video whose ``feed_description`` is ``screen`` is a screen (an audio or
    an undescribed video is not)."""
    from tavkit.server.sfu.videoroom import SCREEN, FeedStream

    entry = {"type": "video", "mid": "2", "codec": "vp8", "description": SCREEN}
    assert Stream.parse(entry) == Stream("2", "video", "vp8", SCREEN)
    shapes = [
        ({"mid": "3", "feed_id": "ann", "type": "video", "feed_description": SCREEN}, True),
        ({"mid": "2", "feed_id": "ann", "type": "video"}, False),
        ({"mid": "1", "feed_id": "ann", "type": "audio", "feed_description": SCREEN}, False),
    ]
    for data, screen in shapes:
        assert FeedStream.parse(data).screen is screen, data
