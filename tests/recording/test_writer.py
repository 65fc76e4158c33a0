"""ParticipantRecorder on real aiortc peers over loopback, and its files read back with PyAV."""

from __future__ import annotations

import array
import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
from av import AudioFrame, VideoFrame

from tavkit.errors import ServerCode, ServerError
from tavkit.recording import ParticipantRecorder, RecordingInfo, probe
from tavkit.recording._mkv import vp8_intact
from tavkit.recording.info import TAG_STARTED_AT, TAG_USER_ID

from ._peers import linked_peers

TIMEOUT = float(os.environ.get("TAVKIT_TEST_TIMEOUT", "20"))
CRASH_SCRIPT = Path(__file__).with_name("_crash_writer.py")


@dataclass
class Decoded:
    """What a recording decodes to."""

    tags: dict[str, str]
    codecs: dict[str, str]
    video_frames: int = 0
    audio_samples: int = 0
    peak: float = 0.0
    first_video_keyframe: bool | None = None
    starts: dict[str, float] = field(default_factory=dict)


def decode(path: Path) -> Decoded:
    """Decode every packet of ``path`` (a cut file ends where its data ends)."""
    with av.open(str(path)) as container:
        result = Decoded(
            tags=dict(container.metadata),
            codecs={s.type: s.codec_context.name for s in container.streams},
        )
        try:
            for packet in container.demux():
                if packet.size == 0:
                    continue
                kind = packet.stream.type
                if packet.pts is not None and packet.time_base is not None:
                    result.starts.setdefault(kind, float(packet.pts * packet.time_base))
                if kind == "video" and result.first_video_keyframe is None:
                    result.first_video_keyframe = packet.is_keyframe
                for frame in packet.decode():
                    if isinstance(frame, VideoFrame):
                        result.video_frames += 1
                    elif isinstance(frame, AudioFrame):
                        result.audio_samples += frame.samples
                        result.peak = max(result.peak, peak(frame))
        except av.FFmpegError:
            pass  # the torn end of a killed file
    return result


def peak(frame: AudioFrame) -> float:
    """Loudest sample of the first channel, 0..1 (the Opus decoder gives float planes)."""
    assert frame.format.name in ("flt", "fltp"), frame.format.name
    samples = array.array("f", bytes(frame.planes[0])[: frame.samples * 4])
    return max((abs(v) for v in samples), default=0.0)


async def record(
    path: Path, seconds: float, codecs: dict[str, str] | None = None, **options: bool
) -> tuple[float, RecordingInfo]:
    """Record a fresh link for ``seconds``; return the time spent and the info."""
    async with linked_peers(codecs=codecs) as link:
        recorder = ParticipantRecorder(path, user_id="alice", **options)
        for receiver, track in link.received:
            recorder.add_receiver(receiver, track)
        await recorder.start()
        async with asyncio.timeout(TIMEOUT):
            while recorder.started_at is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        began = time.monotonic()
        await asyncio.sleep(seconds)
        info = await recorder.stop()
        return time.monotonic() - began, info


async def test_vp8_and_opus_are_stored_as_received(tmp_path: Path) -> None:
    """A 3 s call is stored without re-encoding and decodes to that much video and tone."""
    path = tmp_path / "rec" / "alice-1.mkv"
    spent, info = await record(path, 3.0)
    assert info.passthrough == {"video": True, "audio": True}
    assert info.has_video and info.has_audio
    assert info.duration is not None and abs(info.duration - spent) < 1.0
    assert info.started_at is not None and info.ended_at is not None
    assert info.size == path.stat().st_size and len(info.sha256) == 64

    decoded = decode(path)
    assert decoded.codecs == {"video": "vp8", "audio": "opus"}
    assert decoded.tags[TAG_USER_ID] == "alice"
    assert decoded.tags[TAG_STARTED_AT] == info.started_at.isoformat()
    assert decoded.first_video_keyframe is True
    assert decoded.video_frames >= 15 * 2  # 15 fps pattern, at least 2 of the 3 s
    assert abs(decoded.audio_samples / 48_000 - spent) < 1.0
    assert decoded.peak > 0.05  # the tone, not silence
    assert all(start < 0.5 for start in decoded.starts.values())  # A/V start together

    probed = probe(path)
    assert (probed.sha256, probed.size, probed.started_at) == (
        info.sha256,
        info.size,
        info.started_at,
    )
    assert probed.has_video and probed.has_audio
    assert probed.duration is not None and abs(probed.duration - info.duration) < 0.1


async def test_forced_transcoding_still_records_both_kinds(tmp_path: Path) -> None:
    """With passthrough off the decoded frames are encoded again into the same format."""
    path = tmp_path / "bob-1.mkv"
    _, info = await record(path, 2.0, passthrough=False)
    assert info.passthrough == {"video": False, "audio": False}
    decoded = decode(path)
    assert decoded.codecs == {"video": "vp8", "audio": "opus"}
    assert decoded.video_frames >= 15 and decoded.audio_samples >= 48_000
    assert decoded.peak > 0.05


async def test_h264_and_pcmu_are_decoded_and_stored_as_vp8_and_opus(tmp_path: Path) -> None:
    """Codecs the file cannot hold as received are transcoded, without reading the track."""
    path = tmp_path / "carol-1.mkv"
    _, info = await record(path, 2.5, codecs={"video": "H264", "audio": "PCMU"})
    assert info.passthrough == {"video": False, "audio": False}
    decoded = decode(path)
    assert decoded.codecs == {"video": "vp8", "audio": "opus"}
    assert decoded.video_frames >= 15 and decoded.audio_samples >= 48_000
    assert decoded.peak > 0.05
    assert all(start < 0.5 for start in decoded.starts.values())


async def test_joining_mid_stream_starts_at_a_requested_keyframe(tmp_path: Path) -> None:
    """Hooked after video flows, the recorder asks for a keyframe and the file starts on it."""
    path = tmp_path / "late.mkv"
    async with linked_peers() as link:
        video = next(track for _, track in link.received if track.kind == "video")
        async with asyncio.timeout(TIMEOUT):
            await video.recv()  # media flows; aiortc's encoder sends no keyframes by itself
        await asyncio.sleep(1.0)
        recorder = ParticipantRecorder(path, user_id="late")
        for receiver, track in link.received:
            recorder.add_receiver(receiver, track)
        await recorder.start()
        await asyncio.sleep(2.0)
        info = await recorder.stop()
    assert info.has_video
    decoded = decode(path)
    assert decoded.first_video_keyframe is True
    assert decoded.video_frames >= 8


def headless(data: bytes) -> bytes:
    """``data`` from a later packet boundary on, as if its first packet were lost: the
    first cut past a third of it whose bytes do not pass for a VP8 header (about one
    in a thousand would, and then no recorder could tell)."""
    cut = len(data) // 3
    while vp8_intact(data[cut:]):
        cut += 1
    return data[cut:]


def decode_errors(path: Path) -> tuple[int, int]:
    """(video frames decoded, packets the decoder refused) over the whole file."""
    frames = refused = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size == 0:
                continue
            try:
                frames += len(packet.decode())
            except av.FFmpegError:
                refused += 1
    return frames, refused


async def test_a_frame_that_lost_its_head_is_left_out_until_the_next_keyframe(
    tmp_path: Path,
) -> None:
    """A video frame handed over without its first bytes (what aiortc's jitter buffer gives
    after losing a frame's first packet) is not written, nor are the frames after it until
    the keyframe the recorder asks for: every video packet of the file decodes, and the
    picture goes on after the damage."""
    path = tmp_path / "damaged.mkv"
    async with linked_peers() as link:
        recorder = ParticipantRecorder(path, user_id="dave")
        for receiver, track in link.received:
            recorder.add_receiver(receiver, track)
        video = next(r for r, t in link.received if t.kind == "video")
        decoder_queue = video._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        hooked = decoder_queue.put  # the recorder's tap
        seen: list[int] = []
        cut_at = 20  # frames: past the first keyframe, over a second into the call

        def damaging(item: Any, block: bool = True, timeout: float | None = None) -> None:
            if item is not None:
                seen.append(len(seen))
                if len(seen) in (cut_at, cut_at + 1):  # a frame without its head, twice
                    frame = item[1]
                    frame.data = headless(frame.data)
            hooked(item, block, timeout)

        decoder_queue.put = damaging
        await recorder.start()
        async with asyncio.timeout(TIMEOUT):
            while len(seen) < cut_at + 30:  # noqa: ASYNC110 (two seconds of frames)
                await asyncio.sleep(0.05)
        info = await recorder.stop()
    assert recorder.damaged == 2
    frames, refused = decode_errors(path)
    assert refused == 0, f"{refused} packets refused by the decoder"
    assert frames >= cut_at + 15, frames  # the frames before, and most of those after
    assert info.has_video


def test_a_killed_recording_still_decodes(tmp_path: Path) -> None:
    """SIGKILL mid-recording leaves a file with the video and audio written so far."""
    path = tmp_path / "crash.mkv"
    process = subprocess.Popen(
        [sys.executable, str(CRASH_SCRIPT), str(path), "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the script exits (EOF) if anything fails
        assert line.strip() == "recording"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(TIMEOUT)
    assert process.returncode == -signal.SIGKILL

    info = probe(path)
    assert info.user_id == "crash" and info.started_at is not None
    assert info.has_video and info.has_audio
    assert info.duration is not None and info.duration >= 1.5
    decoded = decode(path)
    assert decoded.video_frames >= 15 and decoded.audio_samples >= 48_000


async def test_stop_without_media_writes_no_file(tmp_path: Path) -> None:
    """A recorder that never got a packet leaves nothing on disk and says so; stop repeats."""
    recorder = ParticipantRecorder(tmp_path / "none" / "x.mkv", user_id="nobody")
    await recorder.start()
    info = await recorder.stop()
    assert (info.size, info.started_at, info.duration) == (0, None, None)
    assert not info.has_video and not info.has_audio
    assert not (tmp_path / "none").exists()
    assert await recorder.stop() is info


def test_probe_of_a_missing_or_bad_file_is_error_14008(tmp_path: Path) -> None:
    """probe() reports a missing or non-Matroska file as server error 14008."""
    with pytest.raises(ServerError) as missing:
        probe(tmp_path / "missing.mkv")
    assert missing.value.code is ServerCode.RECORDING_FAILED
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"not a recording" * 100)
    with pytest.raises(ServerError) as bad:
        probe(junk)
    assert bad.value.code is ServerCode.RECORDING_FAILED
