"""Record one participant's incoming aiortc media into one Matroska file, as received.

aiortc's :class:`~aiortc.RTCRtpReceiver` reassembles RTP packets into encoded frames
in its jitter buffer and puts each one, with its codec, on a queue that its decoder
thread reads. :class:`ParticipantRecorder` takes the frames at that queue - for the
receivers it is given, by shadowing that one queue object's ``put`` - so VP8 video and
Opus audio are stored byte for byte, and the decoder, which nobody needs on a
recording-only connection, is not fed at all. A codec the file cannot hold as it is
(H.264 from a browser, G.711 audio) is decoded by the recorder and encoded again as
VP8 or Opus; a receiver without that queue (another aiortc version) is read the slow
way, through its track's decoded frames. :attr:`RecordingInfo.passthrough` says which
way each kind went.

Timestamps come from the RTP timestamps (90 kHz video, 48 kHz audio). aiortc rebases
each receiver's to 0 at its first frame; the recorder places that first frame at its
arrival time relative to the participant's first packet, so audio and video stay
aligned and the file's time 0 is the wall-clock ``started_at`` stored in it.

VP8 can only be decoded from a keyframe: until one arrives, video frames are dropped
and the sender is asked for one with an RTCP picture-loss indication. The same happens
after a frame that arrives damaged (no VP8 header: aiortc's jitter buffer lost its first
packet), since the frames after it refer to a picture the file would not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from tavkit.recording._mkv import (
    AUDIO_CLOCK,
    STORED,
    VIDEO_CLOCK,
    EncodedItem,
    FrameItem,
    MkvWriter,
    vp8_intact,
)
from tavkit.recording.info import RecordingInfo, file_digest

__all__ = ["ParticipantRecorder"]

_PLI_INTERVAL: Final = 0.5
_STOP_TIMEOUT: Final = 10.0
_MAX_QUEUED: Final = 3000  # encoded frames (~30 s) waiting for the writer thread
_MAX_QUEUED_DECODED: Final = 60  # decoded frames are big: drop rather than pile up

logger = logging.getLogger(__name__)


class ParticipantRecorder:
    """One participant's audio and video, from aiortc receivers into one ``.mkv`` file.

    ``passthrough=False`` forces decoding and encoding again for every track (for
    benchmarks and debugging). Nothing is written before the first packet; the file
    and its parent directory are created then.
    """

    def __init__(self, path: Path, *, user_id: str, passthrough: bool = True) -> None:
        self.path = Path(path)
        self.user_id = user_id
        self._passthrough = passthrough
        self._writer = MkvWriter(self.path, user_id=user_id)
        self._taps: list[_Tap] = []
        self._modes: dict[str, bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._origin: float | None = None
        self._started_at: datetime | None = None
        self._stopping = False
        self._stop_lock = asyncio.Lock()
        self._info: RecordingInfo | None = None
        self.dropped = 0
        """Frames dropped because the writer thread was this far behind."""
        self.damaged = 0
        """Video frames that arrived without a whole VP8 header, left out of the file."""

    @property
    def started_at(self) -> datetime | None:
        """Wall-clock (UTC) time of the first packet written, ``None`` before it."""
        return self._started_at

    def add_receiver(self, receiver: RTCRtpReceiver, track: MediaStreamTrack) -> None:
        """Record the media of ``track``, which ``receiver`` delivers (audio or video).

        Call once per remote track, before or after :meth:`start`; after a peer
        connection is rebuilt, call again with the new receivers (the file goes on).
        The recorder takes the encoded frames before aiortc's decoder, whatever the
        codec, so ``track.recv()`` yields nothing while it runs. Only with
        ``passthrough=False``, or a receiver without that decoder queue, does it read
        the decoded frames from ``track`` itself; then nobody else should read it.
        """
        if self._stopping:
            raise RuntimeError("the recorder is stopped")
        if track.kind not in STORED:
            raise ValueError(f"cannot record a {track.kind!r} track")
        tap = _Tap(self, receiver, track)
        self._taps.append(tap)
        if not (self._passthrough and tap.hook()):
            self._transcode(tap)

    def detach(self) -> list[tuple[RTCRtpReceiver, MediaStreamTrack]]:
        """Stop taking media now, and return the receivers and tracks it was given.

        Synchronous, so another recorder can take the same receivers over without a
        packet falling between the two files (a file rolled over at its size or time
        limit). :meth:`stop` still closes this file; no receiver can be added after.
        """
        self._stopping = True
        for tap in self._taps:
            tap.unhook()
        for task in self._tasks:
            task.cancel()
        return [(tap.receiver, tap.track) for tap in self._taps]

    async def start(self) -> None:
        """Start the writer thread; packets that arrived before are kept."""
        if self._writer.thread.ident is None and not self._stopping:
            self._writer.thread.start()

    async def stop(self) -> RecordingInfo:
        """Stop recording and close the file; idempotent, the same result every time."""
        async with self._stop_lock:
            if self._info is None:
                self._info = await self._stop()
            return self._info

    # -- the event loop side ------------------------------------------------------------

    def _transcode(self, tap: _Tap) -> None:
        self._modes[tap.kind] = False
        task = asyncio.create_task(self._read(tap), name=f"tavkit-rec-{tap.kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, tap: _Tap) -> None:
        """Feed decoded frames of a track that is not stored as received."""
        clock = VIDEO_CLOCK if tap.kind == "video" else AUDIO_CLOCK
        while True:
            try:
                frame = await tap.track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, VideoFrame | AudioFrame) or frame.pts is None:
                continue
            if self._writer.queue.qsize() >= _MAX_QUEUED_DECODED:
                self.dropped += 1
                continue
            timestamp = round(frame.pts * frame.time_base * clock) if frame.time_base else 0
            ticks = self._stamp(tap, timestamp, clock)
            self._send(FrameItem(tap.kind, frame, ticks))

    def _on_encoded(
        self, tap: _Tap, codec: str, codec_clock: int, data: bytes, timestamp: int
    ) -> None:
        """One encoded frame from a hooked receiver (called in the event loop)."""
        if not data:
            return
        clock = VIDEO_CLOCK if tap.kind == "video" else AUDIO_CLOCK
        if codec_clock and codec_clock != clock:
            timestamp = timestamp * clock // codec_clock  # G.711 and G.722 tick at 8 kHz
        stored = codec == STORED[tap.kind]
        if tap.kind == "video" and stored and not vp8_intact(data):
            self.damaged += 1
            tap.wants_keyframe = True
            self._ask_keyframe(tap)
            return
        keyframe = tap.kind == "audio" or (stored and not data[0] & 1)
        if tap.kind == "video" and tap.wants_keyframe:
            if stored and not keyframe:
                self._ask_keyframe(tap)
                return
            if not stored:
                self._ask_keyframe(tap)  # our decoder may have joined mid-stream too
            tap.wants_keyframe = False
        ticks = self._stamp(tap, timestamp, clock)
        self._send(EncodedItem(tap.kind, codec, data, ticks, keyframe))

    def _stamp(self, tap: _Tap, timestamp: int, clock: int) -> int:
        """Presentation time of a frame in ``clock`` units from the participant's start."""
        now = time.monotonic()
        if self._origin is None:
            self._origin = now
            self._started_at = datetime.now(UTC)
            self._writer.started_at = self._started_at
        if tap.base is None:
            tap.base = round((now - self._origin) * clock) - timestamp
        return timestamp + tap.base

    def _send(self, item: EncodedItem | FrameItem) -> None:
        if self._writer.queue.qsize() >= _MAX_QUEUED:
            self.dropped += 1
            return
        self._writer.queue.put_nowait(item)

    def _ask_keyframe(self, tap: _Tap) -> None:
        now = time.monotonic()
        if now - tap.asked_at < _PLI_INTERVAL:
            return
        tap.asked_at = now
        send_pli: Callable[[int], Any] | None = getattr(tap.receiver, "_send_rtcp_pli", None)
        if send_pli is None:
            return
        for source in tap.receiver.getSynchronizationSources():
            task = asyncio.ensure_future(send_pli(source.source))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _stop(self) -> RecordingInfo:
        self._stopping = True
        for tap in self._taps:
            tap.unhook()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        writer = self._writer
        if writer.thread.ident is None:
            writer.thread.start()  # never started: still write what arrived
        writer.queue.put(None)
        await asyncio.to_thread(writer.thread.join, _STOP_TIMEOUT)
        if writer.thread.is_alive():
            logger.warning("recording %s did not close within %.0f s", self.path, _STOP_TIMEOUT)
        size, sha256 = await asyncio.to_thread(file_digest, self.path)
        return RecordingInfo.of_streams(
            self.path,
            user_id=self.user_id,
            started_at=self._started_at if writer.ends else None,
            ends=writer.ends,
            size=size,
            sha256=sha256,
            passthrough=self._modes,
        )


class _Tap:
    """One receiver's encoded frames, taken where aiortc hands them to its decoder."""

    def __init__(self, owner: ParticipantRecorder, receiver: RTCRtpReceiver, track: Any) -> None:
        self.owner = owner
        self.receiver = receiver
        self.track = track
        self.kind: str = track.kind
        self.base: int | None = None
        self.wants_keyframe = True
        self.asked_at = float("-inf")
        self._queue: queue.Queue[Any] | None = None
        self._put: Callable[..., None] | None = None

    def hook(self) -> bool:
        """Divert this receiver's decoder queue to us; ``False`` if it has none."""
        decoder_queue = getattr(self.receiver, "_RTCRtpReceiver__decoder_queue", None)
        if not isinstance(decoder_queue, queue.Queue):
            return False
        self._queue, self._put = decoder_queue, decoder_queue.put
        # An instance attribute shadows Queue.put for this one queue only.
        decoder_queue.put = self._on_put  # type: ignore[method-assign]
        return True

    def unhook(self) -> None:
        """Give the decoder its frames back (from now on)."""
        if self._queue is not None and vars(self._queue).get("put") == self._on_put:
            del self._queue.put
        self._queue = None

    def _on_put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        assert self._put is not None
        if item is None or self._queue is None:
            self._put(item, block, timeout)  # the end of the track, or unhooked meanwhile
            return
        codec, frame = item
        name = str(codec.name).lower()
        stored = name == STORED[self.kind]
        modes = self.owner._modes
        if not stored or self.kind not in modes:
            # Passthrough for a kind means every frame of it was stored as received.
            modes[self.kind] = modes.get(self.kind, True) and stored
        self.owner._on_encoded(
            self, name, int(codec.clockRate or 0), bytes(frame.data), int(frame.timestamp)
        )
