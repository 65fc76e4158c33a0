"""The local side of a call: one publisher per kind, read once, fanned out to every peer.

A :class:`Publisher` owns one pump task that reads the current source track, applies
what the user controls (mute and camera-off turn frames into silence and black, as a
browser does for ``track.enabled = false``; a camera switch changes the source
without the peers renegotiating), restamps the frames on one clock (sources come and
go, the outgoing timeline must not jump back) and then either

* encodes the frame **once** (:mod:`tavkit.client._encode`) and gives the packets to
  every subscriber - video in a worker thread that always takes the newest frame
  (frames the encoder had no time for are dropped, as a browser does under load),
  Opus inline (a tenth of a millisecond) - or
* gives the raw frame to every subscriber, each of which aiortc then encodes.

Each peer connection's sender reads its own :class:`PublishedTrack` subscription.
A slow subscriber loses frames (bounded queue) rather than delaying the others; with
encoded video it then waits for the next keyframe, which it asks for.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fractions
import logging
from typing import Any, Final, Literal, TypeAlias

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

from tavkit.client._encode import OpusPacketEncoder, Vp8PacketEncoder
from tavkit.client._pattern import VIDEO_CLOCK

__all__ = ["PublishedTrack", "Publisher"]

logger = logging.getLogger(__name__)

Kind = Literal["audio", "video"]
Item: TypeAlias = "Frame | Packet[Any]"
_QUEUE: Final = {"audio": 25, "video": 8}
# A source silent this long is logged (a stalled device or file); the pump keeps waiting.
_SOURCE_STALL: Final = 5.0
# Keyframes asked for (peers' PLIs, new readers) come at most this often (seconds).
_MIN_KEY_SPACING: Final = 0.1
_VIDEO_TIME_BASE: Final = fractions.Fraction(1, VIDEO_CLOCK)


class PublishedTrack(MediaStreamTrack):
    """One subscriber's view of a publisher: what one ``RTCRtpSender`` reads."""

    def __init__(self, publisher: Publisher) -> None:
        super().__init__()
        self.kind = publisher.kind
        self._publisher: Publisher | None = publisher
        self._queue: collections.deque[Item | None] = collections.deque(
            maxlen=_QUEUE[publisher.kind]
        )
        self._ready = asyncio.Event()
        self._needs_key = publisher.encoded and publisher.kind == "video"
        self._active = False
        self.delivered = 0

    async def recv(self) -> Item:
        """The next frame or packet for this subscriber."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if not self._active and self._publisher is not None:
                # The sender reads only once DTLS is up; feeding it before that would
                # only overflow its queue, so it joins the fan-out (at a keyframe) now.
                self._active = True
                self._publisher._activate(self)
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            item = self._queue.popleft()
            if item is None:
                self.stop()
                raise MediaStreamError
            if self._needs_key:
                if not (isinstance(item, Packet) and item.is_keyframe):
                    continue
                self._needs_key = False
            self.delivered += 1
            return item

    def stop(self) -> None:
        """Unsubscribe; the publisher forgets this track."""
        super().stop()
        if self._publisher is not None:
            self._publisher._unsubscribe(self)
            self._publisher = None
        self._ready.set()

    def _push(self, items: list[Item | None]) -> None:
        if len(self._queue) + len(items) > (self._queue.maxlen or 0) and self.kind == "video":
            # Dropping part of an encoded stream breaks decoding until the next keyframe.
            self._queue.clear()
            if self._publisher is not None and self._publisher.encoded:
                self._needs_key = True
                self._publisher.request_keyframe()
        self._queue.extend(items)
        self._ready.set()


class Publisher:
    """Reads one local source of ``kind`` and feeds every subscribed peer connection.

    ``encoded`` chooses encode-once (VP8/Opus packets shared by every sender) over
    aiortc's per-sender encoding. ``keyframe_interval`` (seconds) bounds how long a
    receiver that lost packets waits for a clean picture in encode-once mode.
    """

    def __init__(
        self,
        kind: Kind,
        source: MediaStreamTrack,
        *,
        encoded: bool = True,
        video_bitrate: int = 1_000_000,
        keyframe_interval: float = 2.0,
    ) -> None:
        if source.kind != kind:
            raise ValueError(f"a {kind} publisher needs a {kind} track, got {source.kind}")
        self.kind: Kind = kind
        self.encoded = encoded
        self.blank = False
        self.frames_out = 0
        self._source = source
        self._subscribers: set[PublishedTrack] = set()  # reading: fed by the pump
        self._waiting: set[PublishedTrack] = set()  # subscribed, not reading yet
        self._delivered_before = 0
        self._keyframe_interval = keyframe_interval
        self._want_key = True
        self._last_key = 0.0
        self._encoder: Vp8PacketEncoder | OpusPacketEncoder | None = None
        if encoded:
            self._encoder = (
                Vp8PacketEncoder(video_bitrate) if kind == "video" else OpusPacketEncoder()
            )
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: VideoFrame | None = None
        # The newest video frame read while nobody was subscribed (never encoded).
        self._unsent: VideoFrame | None = None
        self._frame_ready = asyncio.Event()
        self.frames_dropped = 0
        self._clock_origin: float | None = None
        self._last_pts = -1
        self._samples = 0
        self._blank_video: dict[tuple[int, int], VideoFrame] = {}

    @property
    def source(self) -> MediaStreamTrack:
        """The track currently read."""
        return self._source

    def start(self) -> None:
        """Start the pump task (and the video encoder task) once."""
        if not self._tasks:
            if self.encoded and self.kind == "video":
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix=f"tavkit-{self.kind}-encoder"
                )
            self._tasks.append(
                asyncio.create_task(self._pump(), name=f"tavkit-publish-{self.kind}")
            )
            if self.encoded and self.kind == "video":
                self._tasks.append(
                    asyncio.create_task(self._encode_video(), name="tavkit-encode-video")
                )

    def subscribe(self) -> PublishedTrack:
        """A new track for one more peer connection."""
        track = PublishedTrack(self)
        self._waiting.add(track)
        return track

    def switch(self, source: MediaStreamTrack) -> None:
        """Read ``source`` from now on (a camera switch); the old track is not stopped."""
        if source.kind != self.kind:
            raise ValueError(f"cannot switch a {self.kind} publisher to a {source.kind} track")
        self._source = source
        self._want_key = True

    def request_keyframe(self) -> None:
        """Make an encoded video frame a keyframe soon: a new reader, a drop, a peer's PLI.

        Requests closer than ``_MIN_KEY_SPACING`` to the last keyframe wait for it to
        pass, so many receivers asking at once cost one keyframe, not many.
        """
        self._want_key = True

    async def aclose(self) -> None:
        """Stop the pump, end every subscription and release the encoder thread."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for track in list(self._subscribers | self._waiting):
            track._push([None])
        self._subscribers.clear()
        self._waiting.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    @property
    def delivered(self) -> int:
        """Frames (or encoded packets) taken by subscribers so far, summed over them."""
        live = sum(track.delivered for track in self._subscribers | self._waiting)
        return self._delivered_before + live

    def _activate(self, track: PublishedTrack) -> None:
        first = not self._subscribers
        self._waiting.discard(track)
        self._subscribers.add(track)
        self.request_keyframe()
        unsent, self._unsent = self._unsent, None
        if first and unsent is not None and self._pending is None and not self.blank:
            # The first reader (a call's first peer, as DTLS comes up) would otherwise
            # wait up to a frame interval for the source's next frame: the newest one,
            # read while nobody listened and never encoded, becomes its keyframe now.
            # Not while the camera is off: that frame may predate the switch.
            self._pending = unsent
            self._frame_ready.set()

    def _unsubscribe(self, track: PublishedTrack) -> None:
        if track in self._subscribers or track in self._waiting:
            self._delivered_before += track.delivered
        self._subscribers.discard(track)
        self._waiting.discard(track)

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            source = self._source
            try:
                async with asyncio.timeout(_SOURCE_STALL):
                    frame = await source.recv()
            except TimeoutError:
                logger.warning("%s source gave no frame for %.0f s", self.kind, _SOURCE_STALL)
                continue
            except MediaStreamError:
                if source is not self._source:
                    continue  # switched away from a source that then ended
                logger.info("%s source ended", self.kind)
                for track in list(self._subscribers | self._waiting):
                    track._push([None])
                return
            if source is not self._source or not isinstance(frame, Frame):
                continue
            frame = self._prepare(frame, loop.time())
            self.frames_out += 1
            if not self._subscribers:
                if self._encoder is not None and isinstance(frame, VideoFrame):
                    self._unsent = frame
                continue
            self._unsent = None
            if isinstance(self._encoder, OpusPacketEncoder) and isinstance(frame, AudioFrame):
                self._fan_out(list(self._encoder.encode(frame)))  # ~0.1 ms: inline
            elif isinstance(frame, VideoFrame) and self._encoder is not None:
                if self._pending is not None:
                    self.frames_dropped += 1
                self._pending = frame
                self._frame_ready.set()
            else:
                self._fan_out([frame])

    async def _encode_video(self) -> None:
        """Encode the newest frame whenever the encoder is free; older ones are dropped.

        Decoupled from the pump so a slow encoder (a busy machine) lowers the frame
        rate instead of stalling the source and skewing its clock.
        """
        loop = asyncio.get_running_loop()
        while True:
            await self._frame_ready.wait()
            self._frame_ready.clear()
            frame, self._pending = self._pending, None
            if frame is None or not isinstance(self._encoder, Vp8PacketEncoder):
                continue
            keyframe = self._keyframe_due(loop.time())
            packets = await loop.run_in_executor(
                self._executor, self._encoder.encode, frame, keyframe
            )
            self._fan_out(list(packets))

    def _fan_out(self, items: list[Item | None]) -> None:
        if items:
            for track in list(self._subscribers):
                track._push(items)

    def _keyframe_due(self, now: float) -> bool:
        if self.kind != "video":
            return False
        since = now - self._last_key
        if (self._want_key and since >= _MIN_KEY_SPACING) or since >= self._keyframe_interval:
            self._want_key = False
            self._last_key = now
            return True
        return False

    def _prepare(self, frame: Frame, now: float) -> Frame:
        if isinstance(frame, VideoFrame):
            if self.blank:
                frame = self._black(frame.width, frame.height)
            if self._clock_origin is None:
                self._clock_origin = now
            pts = max(int((now - self._clock_origin) * VIDEO_CLOCK), self._last_pts + 1)
            self._last_pts = pts
            frame.pts = pts
            frame.time_base = _VIDEO_TIME_BASE
        elif isinstance(frame, AudioFrame):
            if self.blank:
                frame = _silence(frame)
            frame.pts = self._samples
            frame.time_base = fractions.Fraction(1, frame.sample_rate)
            self._samples += frame.samples
        return frame

    def _black(self, width: int, height: int) -> VideoFrame:
        cached = self._blank_video.get((width, height))
        if cached is None:
            cached = VideoFrame(width, height, "yuv420p")
            for plane, level in zip(cached.planes, (16, 128, 128), strict=True):
                plane.update(bytes([level]) * plane.buffer_size)
            self._blank_video = {(width, height): cached}
        # Encoders and aiortc stamp the frame, so every use gets its own copy.
        copy = VideoFrame(width, height, "yuv420p")
        for dst, src in zip(copy.planes, cached.planes, strict=True):
            dst.update(bytes(src))
        return copy


def _silence(frame: AudioFrame) -> AudioFrame:
    quiet = AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=frame.samples)
    for plane in quiet.planes:
        plane.update(bytes(plane.buffer_size))
    quiet.sample_rate = frame.sample_rate
    return quiet
