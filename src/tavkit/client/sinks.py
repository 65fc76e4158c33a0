"""Where remote media goes: counters, a per-participant file recorder, a frame callback.

Every remote track is read by exactly one task (in ``peer.py``) that updates the
participant's :class:`PeerStats`, calls the user's ``on_frame(user_id, frame)`` if
any, and hands the frame to that participant's :class:`ParticipantRecorder` if
recording. Without a recorder or callback the frames are counted and dropped
("discard").

The recorder writes one Matroska file per participant with both its audio (Opus)
and video (H.264, ``ultrafast``). Encoding and muxing run in the recorder's own
thread, so a slow disk or encoder never stalls the event loop; frames are dropped
(and counted) if the thread falls behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.frame import Frame

__all__ = ["FrameTap", "ParticipantRecorder", "PeerStats", "received_frames"]

logger = logging.getLogger(__name__)

_VIDEO_TB: Final = fractions.Fraction(1, 90_000)
_AUDIO_RATE: Final = 48_000
# Frames buffered before the file's streams are known; the header waits for both
# kinds, or for this long after the first frame when one kind never comes.
_HEADER_WAIT: Final = 3.0
_QUEUE_FRAMES: Final = 300
_TAP_FRAMES: Final = 30
_CLOSE_WAIT: Final = 10.0


async def received_frames(track: MediaStreamTrack) -> AsyncIterator[Frame]:
    """The decoded frames of a remote track until it ends (mesh link and SFU alike).

    aiortc's remote tracks yield decoded frames and raise ``MediaStreamError`` once the
    receiver stops; anything else (a packet) is skipped, so readers see frames only.
    """
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, Frame):
            yield frame


@dataclass
class PeerStats:
    """What arrived from one participant; counters survive peer-connection rebuilds."""

    user_id: str
    joined_at: float = field(default_factory=time.monotonic)
    video_frames: int = 0
    audio_frames: int = 0
    first_frame_ms: float | None = None
    first_audio_ms: float | None = None
    width: int = 0
    height: int = 0
    connected: bool = False
    rebuilds: int = 0
    last_frame_at: float | None = None
    """When the last frame (either kind) was decoded (monotonic): a stalled link shows here."""
    last_video_at: float | None = None
    """When the last video frame was decoded: video frozen while audio flows shows here."""
    screen_frames: int = 0
    """Frames decoded from the participant's shared screen (its own m-line), all shares."""
    screen_width: int = 0
    screen_height: int = 0

    def count(self, frame: Frame) -> None:
        """Count one decoded frame; note the first video and audio frame times."""
        now = time.monotonic()
        self.last_frame_at = now
        elapsed = (now - self.joined_at) * 1000.0
        if isinstance(frame, VideoFrame):
            self.last_video_at = now
            self.video_frames += 1
            self.width, self.height = frame.width, frame.height
            if self.first_frame_ms is None:
                self.first_frame_ms = elapsed
        else:
            self.audio_frames += 1
            if self.first_audio_ms is None:
                self.first_audio_ms = elapsed

    def count_screen(self, frame: VideoFrame) -> None:
        """Count one decoded frame of the shared screen (never in ``video_frames``)."""
        self.screen_frames += 1
        self.screen_width, self.screen_height = frame.width, frame.height

    def summary(self) -> dict[str, Any]:
        """The ``tavkit call --json`` entry for this participant."""
        return {
            "videoFrames": self.video_frames,
            "audioFrames": self.audio_frames,
            "firstFrameMs": None if self.first_frame_ms is None else round(self.first_frame_ms, 1),
        }


class FrameTap(MediaStreamTrack):
    """A copy of a remote track for the application, fed by the track's one reader.

    Bounded: if the application reads slower than frames arrive, the oldest go.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._frames: collections.deque[Frame | None] = collections.deque(maxlen=_TAP_FRAMES)
        self._ready = asyncio.Event()

    def push(self, frame: Frame | None) -> None:
        """Offer a frame (``None`` ends the track)."""
        self._frames.append(frame)
        self._ready.set()

    async def recv(self) -> Frame:
        """The next frame; ``MediaStreamError`` once the remote track has ended."""
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        """Stop reading; wakes a pending ``recv``."""
        super().stop()
        self._ready.set()


class ParticipantRecorder:
    """One participant's audio and video into one ``.mkv`` file, encoded in a thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.dropped = 0
        self.written = {"audio": 0, "video": 0}
        self._queue: queue.Queue[tuple[float, Frame] | None] = queue.Queue(_QUEUE_FRAMES)
        self._thread = threading.Thread(
            target=self._run, name=f"tavkit-recorder-{os.path.basename(self.path)}", daemon=True
        )
        self._started = False
        self._error: BaseException | None = None

    def write(self, frame: Frame) -> None:
        """Queue a decoded frame (non-blocking; dropped if the writer is behind)."""
        if not self._started:
            self._started = True
            self._thread.start()
        try:
            self._queue.put_nowait((time.monotonic(), frame))
        except queue.Full:
            self.dropped += 1

    async def aclose(self) -> None:
        """Flush and close the file; wait at most ``_CLOSE_WAIT`` seconds for the writer."""
        if not self._started:
            return
        await asyncio.to_thread(self._queue.put, None, True, _CLOSE_WAIT)
        await asyncio.to_thread(self._thread.join, _CLOSE_WAIT)
        if self._thread.is_alive():
            logger.warning("recorder %s did not finish within %.0f s", self.path, _CLOSE_WAIT)
        if self._error is not None:
            logger.warning("recorder %s failed: %r", self.path, self._error)

    def _run(self) -> None:
        try:
            _Writer(self).run()
        except Exception as exc:  # reported in aclose(); a recorder must not kill the call
            self._error = exc
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()


class _Writer:
    """The recorder thread's state: pending frames, then the open container."""

    def __init__(self, owner: ParticipantRecorder) -> None:
        self._owner = owner
        self._pending: list[tuple[float, Frame]] = []
        self._container: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._resampler: av.AudioResampler | None = None
        self._origin = 0.0
        self._last_video_pts = -1
        self._audio_pts: int | None = None

    def run(self) -> None:
        owner = self._owner
        while True:
            try:
                item = owner._queue.get(timeout=0.5)
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                break
            if self._container is None:
                if item:
                    self._pending.append(item)
                if self._ready():
                    self._open()
            elif item:
                self._encode(*item)
        if self._container is None and self._pending:
            self._open()
        self._finish()

    def _ready(self) -> bool:
        if not self._pending:
            return False
        kinds = {type(frame) for _, frame in self._pending}
        waited = time.monotonic() - self._pending[0][0]
        return (VideoFrame in kinds and AudioFrame in kinds) or waited >= _HEADER_WAIT

    def _open(self) -> None:
        container = av.open(self._owner.path, "w", format="matroska")
        video = next((f for _, f in self._pending if isinstance(f, VideoFrame)), None)
        if video is not None:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height = video.width, video.height
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
            stream.codec_context.time_base = _VIDEO_TB
            self._video = stream
        if any(isinstance(f, AudioFrame) for _, f in self._pending):
            audio = container.add_stream("libopus", rate=_AUDIO_RATE)
            audio.layout = "stereo"
            self._audio = audio
            self._resampler = av.AudioResampler(
                format="s16", layout="stereo", rate=_AUDIO_RATE, frame_size=960
            )
        self._container = container
        self._origin = self._pending[0][0]
        pending, self._pending = self._pending, []
        for arrived, frame in pending:
            self._encode(arrived, frame)

    def _encode(self, arrived: float, frame: Frame) -> None:
        offset = max(arrived - self._origin, 0.0)
        if isinstance(frame, VideoFrame) and self._video is not None:
            pts = max(round(offset * 90_000), self._last_video_pts + 1)
            self._last_video_pts = pts
            if (frame.width, frame.height) != (self._video.width, self._video.height):
                frame = frame.reformat(self._video.width, self._video.height)
            frame.pts, frame.time_base = pts, _VIDEO_TB
            frame.pict_type = av.video.frame.PictureType.NONE
            self._mux(self._video.encode(frame), "video")
        elif isinstance(frame, AudioFrame) and self._audio is not None and self._resampler:
            if self._audio_pts is None:
                self._audio_pts = round(offset * _AUDIO_RATE)
            for chunk in self._resampler.resample(frame):
                chunk.pts = self._audio_pts
                chunk.time_base = fractions.Fraction(1, _AUDIO_RATE)
                self._audio_pts += chunk.samples
                self._mux(self._audio.encode(chunk), "audio")

    def _mux(self, packets: Any, kind: str) -> None:
        for packet in packets:
            self._container.mux(packet)
        self._owner.written[kind] += 1

    def _finish(self) -> None:
        if self._container is None:
            return
        for stream in (self._video, self._audio):
            if stream is not None:
                for packet in stream.encode(None):
                    self._container.mux(packet)
        self._container.close()
