"""Local media (pattern, file, encode-once fan-out), ICE gathering, and the file recorder."""

from __future__ import annotations

import asyncio
import fractions
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection
from av import AudioFrame, VideoFrame
from av.packet import Packet

from tavkit.client import FileSource
from tavkit.client._publish import Publisher
from tavkit.ice import configuration, gather_on, validate_addresses

from ._util import enter, make_kit, receiving, small_pattern, until


def _candidate_hosts(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def test_loopback_gathering_is_opt_in_and_per_connection() -> None:
    """gather_on puts exactly 127.0.0.1 in the SDP; an untouched pc never offers loopback."""
    restricted = RTCPeerConnection(configuration())
    plain = RTCPeerConnection(configuration())
    try:
        for pc in (restricted, plain):
            pc.addTransceiver("audio")
        gather_on(restricted, ["127.0.0.1"])
        await restricted.setLocalDescription(await restricted.createOffer())
        await plain.setLocalDescription(await plain.createOffer())
        assert _candidate_hosts(restricted.localDescription.sdp) == {"127.0.0.1"}
        assert "127.0.0.1" not in _candidate_hosts(plain.localDescription.sdp)
    finally:
        await restricted.close()
        await plain.close()


def test_configuration_never_falls_back_to_public_stun() -> None:
    """Without servers from enter the list is explicitly empty; given servers pass through."""
    assert configuration().iceServers == []
    turn = {"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "c"}
    (server,) = configuration([turn], "relay").iceServers
    assert server.urls == ["turn:127.0.0.1:3478"] and server.credential == "c"
    assert configuration([turn], "relay").iceTransportPolicy.value == "relay"


def test_host_addresses_must_be_ip_addresses() -> None:
    """Host names, a bare string, or nothing at all are refused as host_addresses."""
    assert validate_addresses(["127.0.0.1", "::1"]) == ("127.0.0.1", "::1")
    with pytest.raises(ValueError, match="not an IP address"):
        validate_addresses(["localhost"])
    with pytest.raises(TypeError):
        validate_addresses("127.0.0.1")
    with pytest.raises(ValueError):
        validate_addresses([])


async def test_pattern_moves_at_its_frame_rate() -> None:
    """Consecutive pattern frames differ and are stamped one frame period apart."""
    source = small_pattern()
    await source.open()
    assert source.video is not None and source.audio is not None
    try:
        first, second = await source.video.recv(), await source.video.recv()
        assert isinstance(first, VideoFrame) and isinstance(second, VideoFrame)
        assert second.pts - first.pts == 90_000 // 15
        assert bytes(first.planes[0]) != bytes(second.planes[0])
        tone = await source.audio.recv()
        assert isinstance(tone, AudioFrame) and tone.samples == 960
    finally:
        await source.close()


async def test_encode_once_hands_every_peer_the_same_packets() -> None:
    """Readers of one publisher get the very same encoded packets, starting at a keyframe."""
    source = small_pattern()
    await source.open()
    assert source.video is not None
    publisher = Publisher("video", source.video, video_bitrate=300_000)
    first, second = publisher.subscribe(), publisher.subscribe()
    publisher.start()
    try:
        a, b = await asyncio.gather(first.recv(), second.recv())
        assert isinstance(a, Packet) and a is b
        assert a.is_keyframe
        for _ in range(5):
            a, b = await asyncio.gather(first.recv(), second.recv())
            assert a is b
        assert publisher.delivered == 12
        late = publisher.subscribe()
        joined = await late.recv()
        assert isinstance(joined, Packet) and joined.is_keyframe
    finally:
        await publisher.aclose()
        await source.close()


def _write_clip(path: Path, seconds: int = 2, fps: int = 15) -> None:
    """A small real media file: moving grey levels and a 48 kHz tone track."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        audio = container.add_stream("aac", rate=48_000)
        audio.layout = "mono"
        for index in range(seconds * fps):
            frame = VideoFrame(160, 120, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(index * 8) % 256]) * plane.buffer_size)
            frame.pts = index
            frame.time_base = fractions.Fraction(1, fps)
            for packet in video.encode(frame):
                container.mux(packet)
        for index in range(seconds * 48_000 // 1024):
            chunk = AudioFrame(format="fltp", layout="mono", samples=1024)
            chunk.planes[0].update(bytes(chunk.planes[0].buffer_size))
            chunk.sample_rate = 48_000
            chunk.pts = index * 1024
            for packet in audio.encode(chunk):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)


async def test_a_file_source_plays_in_a_loop(sqlite_server_factory: Any, tmp_path: Path) -> None:
    """A 2-second clip published with FileSource keeps arriving after it has ended once."""
    clip = tmp_path / "clip.mp4"
    _write_clip(clip)
    server = sqlite_server_factory()
    async with (
        make_kit(server.url, source=FileSource(clip)) as player,
        make_kit(server.url) as viewer,
    ):
        await enter(player, server, "player", 501)
        await enter(viewer, server, "viewer", 501)
        await until(receiving(viewer, "player", video=45, audio=20), "more than one pass", 40)
        assert viewer.peers["player"].width == 160


async def test_recording_writes_one_file_per_participant(
    sqlite_server_factory: Any, tmp_path: Path
) -> None:
    """record_dir gets <userId>.mkv per remote participant, with its audio and its video."""
    server = sqlite_server_factory()
    recordings = tmp_path / "rec"
    async with make_kit(server.url, record_dir=recordings) as recorder:
        ann, ben = make_kit(server.url), make_kit(server.url, source=small_pattern(1))
        async with ann, ben:
            await enter(recorder, server, "rec", 502)
            await enter(ann, server, "ann", 502)
            await enter(ben, server, "ben", 502)
            await until(receiving(recorder, "ann", video=20, audio=30), "recording ann")
            await until(receiving(recorder, "ben", video=20, audio=30), "recording ben")
    assert sorted(p.name for p in recordings.iterdir()) == ["ann.mkv", "ben.mkv"]
    for name in ("ann", "ben"):
        with av.open(str(recordings / f"{name}.mkv")) as container:
            kinds = sorted(stream.type for stream in container.streams)
            assert kinds == ["audio", "video"]
            counts = {"audio": 0, "video": 0}
            for frame in container.decode(*container.streams):
                counts["video" if isinstance(frame, VideoFrame) else "audio"] += 1
        assert counts["video"] >= 10 and counts["audio"] >= 20, (name, counts)


class _OneFrameThenStall(MediaStreamTrack):
    """A camera that delivers one frame and then nothing more (a stalled device)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.read = asyncio.Event()
        self._sent = False

    async def recv(self) -> VideoFrame:
        if self._sent:
            await asyncio.Event().wait()
        self._sent = True
        frame = VideoFrame(width=160, height=120, format="yuv420p")
        frame.pts, frame.time_base = 0, fractions.Fraction(1, 90_000)
        self.read.set()
        return frame


async def test_the_first_reader_gets_the_frame_read_before_anyone_listened() -> None:
    """A frame the publisher read while nobody was subscribed is encoded for its first
    reader as a keyframe, without waiting for the source's next frame."""
    source = _OneFrameThenStall()
    publisher = Publisher("video", source, video_bitrate=300_000)
    publisher.start()
    try:
        await asyncio.wait_for(source.read.wait(), 10)
        await asyncio.sleep(0)  # the pump takes the frame in
        reader = publisher.subscribe()
        packet = await asyncio.wait_for(reader.recv(), 10)
        assert isinstance(packet, Packet) and packet.is_keyframe
    finally:
        await publisher.aclose()


async def test_a_frame_read_before_the_camera_went_off_is_never_sent() -> None:
    """With the camera off, the frame read before it went off is not what the first
    reader gets: it waits for the next (black) frame instead."""
    source = _OneFrameThenStall()
    publisher = Publisher("video", source, video_bitrate=300_000)
    publisher.start()
    try:
        await asyncio.wait_for(source.read.wait(), 10)
        await asyncio.sleep(0)
        publisher.blank = True
        reader = publisher.subscribe()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.recv(), 0.5)
    finally:
        await publisher.aclose()
