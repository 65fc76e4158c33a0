"""The recorder's writer thread: one participant's packets into a live Matroska file.

The event loop hands over items already stamped with their presentation time in the
stream's clock (90 kHz video, 48 kHz audio, 0 = the participant's first packet):
encoded VP8/Opus frames to store as they are, or decoded frames to encode first.

The file is opened on the first video keyframe (whose header carries the picture
size the Matroska track needs) or, when no video comes, ``HEADER_WAIT`` seconds after
the first audio. It is written as a live stream - no cues, no seeking back, one
cluster per second at most, the AVIO buffer flushed after every packet - so a
process killed mid-call leaves a file that decodes up to its last closed cluster.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av
from av import AudioFrame, VideoFrame
from av.frame import Frame

from tavkit.recording.info import TAG_STARTED_AT, TAG_USER_ID

__all__ = [
    "AUDIO_CLOCK",
    "STORED",
    "VIDEO_CLOCK",
    "EncodedItem",
    "FrameItem",
    "MkvWriter",
    "vp8_intact",
    "vp8_size",
]

VIDEO_CLOCK: Final = 90_000
AUDIO_CLOCK: Final = 48_000
HEADER_WAIT: Final = 3.0
_PLACEHOLDER_SIZE: Final = (640, 480)
_OPUS_SAMPLES: Final = 960
_AUDIO_GAP: Final = AUDIO_CLOCK // 4  # more than the resampler and encoder ever hold back
_MUXER_OPTIONS: Final = {
    "live": "1",  # streamable: nothing is ever rewritten, so a cut file stays valid
    "cluster_time_limit": "1000",  # ms; a crash loses at most the open cluster
    "cluster_size_limit": str(1 << 20),
    "flush_packets": "1",  # closed clusters reach the OS at once, not at 32 KiB
    "max_interleave_delta": "1000000",  # µs; audio is not held back while video is absent
}
_TRANSCODE_VIDEO_OPTIONS: Final = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
_TRANSCODE_VIDEO_BITRATE: Final = 1_000_000
STORED: Final = {"video": "vp8", "audio": "opus"}
"""The codec each kind is stored in; frames in it are muxed as received."""
# aiortc codec name -> (FFmpeg decoder, sample rate for audio decoders that need one).
_DECODERS: Final = {
    "h264": ("h264", 0),
    "vp8": ("vp8", 0),
    "opus": ("opus", AUDIO_CLOCK),
    "pcmu": ("pcm_mulaw", 8000),
    "pcma": ("pcm_alaw", 8000),
    "g722": ("g722", 16000),
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EncodedItem:
    """An encoded frame as the network delivered it, ``codec`` in aiortc's lower-case name.

    VP8 and Opus are stored as they are; anything else is decoded here and encoded again.
    """

    kind: str
    codec: str
    data: bytes
    ticks: int
    keyframe: bool


@dataclass(frozen=True, slots=True)
class FrameItem:
    """A decoded frame of a track whose codec cannot be stored as it is."""

    kind: str
    frame: Frame
    ticks: int


Item = EncodedItem | FrameItem


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """Picture size from a VP8 keyframe's header (RFC 6386 9.1), ``None`` if not one."""
    if len(data) < 10 or data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def vp8_intact(data: bytes) -> bool:
    """Whether ``data`` starts like a whole VP8 frame (RFC 6386 9.1): a version FFmpeg
    knows, a first partition that fits, and for a keyframe the start code and a size.

    aiortc's jitter buffer, after a loss it cannot wait out, may hand over a frame that
    begins at a later packet than its first: a frame with no header. Half of those read
    as keyframes by their first bit, and a decoder refuses them (FFmpeg: invalid data),
    so such a frame must not reach a file. A random first three bytes pass this check
    about once in three hundred (the partition size must fit the frame)."""
    if len(data) < 3:
        return False
    tag = int.from_bytes(data[:3], "little")
    version = (tag >> 1) & 0b111
    first_partition = tag >> 5
    if tag & 1:  # an interframe
        return version <= 3 and 0 < first_partition <= len(data) - 3
    return version <= 3 and vp8_size(data) is not None and first_partition <= len(data) - 10


class MkvWriter:
    """Owns the file, the muxer and the fallback encoders; runs in its own thread."""

    def __init__(self, path: Path, *, user_id: str) -> None:
        self.path = path
        self.user_id = user_id
        self.started_at: datetime | None = None  # set by the loop before the first item
        self.queue: queue.Queue[Item | None] = queue.Queue()
        self.ends: dict[str, float] = {}  # kind -> end of its last packet, seconds
        self.errors = 0
        self.failure: BaseException | None = None
        # A daemon: a server that exits without stopping it leaves a valid (live) file.
        self.thread = threading.Thread(
            target=self._run, name=f"tavkit-rec-{path.name}", daemon=True
        )
        self._pending: list[Item] = []
        self._pending_since = 0.0
        self._video_size: tuple[int, int] | None = None
        self._container: Any = None
        self._streams: dict[str, Any] = {}
        self._last: dict[str, int] = {}
        self._video_encoder: Any = None
        self._audio_encoder: Any = None
        self._resampler: av.AudioResampler | None = None
        self._audio_next: int | None = None
        self._decoders: dict[str, tuple[str, Any]] = {}

    # -- thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self.queue.get(timeout=0.25)
                except queue.Empty:
                    pass  # still time to open the file on audio alone
                else:
                    if item is None:
                        break
                    self._take(item)
                if self._container is None and self._ready():
                    self._open()
            if self._container is None and self._pending:
                self._open()
            self._finish()
        except Exception as exc:  # reported by stop(); a recorder must not take the call down
            self.failure = exc
            logger.exception("recording %s failed", self.path)
            self._abandon()

    def _take(self, item: Item) -> None:
        if isinstance(item, EncodedItem) and item.codec != STORED[item.kind]:
            try:
                frames = self._decode(item)
            except (av.FFmpegError, ValueError):
                self.errors += 1  # e.g. H.264 before its first IDR picture
                return
            for frame in frames:
                self._take(FrameItem(item.kind, frame, item.ticks))
            return
        if self._container is not None:
            self._write(item)
            return
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(item)
        if item.kind == "video" and self._video_size is None:
            if isinstance(item, EncodedItem):
                self._video_size = vp8_size(item.data)
            elif isinstance(item.frame, VideoFrame):
                self._video_size = (item.frame.width, item.frame.height)

    def _ready(self) -> bool:
        if not self._pending:
            return False
        return self._video_size is not None or time.monotonic() - self._pending_since >= HEADER_WAIT

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(
            str(self.path), "w", format="matroska", container_options=dict(_MUXER_OPTIONS)
        )
        container.metadata[TAG_USER_ID] = self.user_id
        if self.started_at is not None:
            container.metadata[TAG_STARTED_AT] = self.started_at.isoformat()
        width, height = self._video_size or _PLACEHOLDER_SIZE
        # Both kinds are declared even if one never comes: the recorder always asks
        # for both, and a fixed layout (video 0, audio 1) keeps every file alike.
        self._streams["video"] = container.add_mux_stream(
            "vp8", rate=30, width=width, height=height
        )
        # An (unused) libopus encoder context makes PyAV write the OpusHead the
        # Matroska track needs; the packets muxed are the network's own.
        audio = container.add_stream("libopus", rate=AUDIO_CLOCK)
        audio.layout = "stereo"
        self._streams["audio"] = audio
        container.start_encoding()
        self._container = container
        pending, self._pending = self._pending, []
        for item in pending:
            self._write(item)

    def _write(self, item: Item) -> None:
        try:
            if isinstance(item, EncodedItem):
                self._mux(item.kind, item.data, item.ticks, item.keyframe)
            elif item.kind == "video" and isinstance(item.frame, VideoFrame):
                self._encode_video(item.frame, item.ticks)
            elif isinstance(item.frame, AudioFrame):
                self._encode_audio(item.frame, item.ticks)
        except (av.FFmpegError, ValueError) as exc:
            self.errors += 1
            if self.errors == 1:
                logger.warning("recording %s: dropped a %s item: %s", self.path, item.kind, exc)

    def _decode(self, item: EncodedItem) -> list[Frame]:
        """Decode a frame of a codec that is not stored as received."""
        current = self._decoders.get(item.kind)
        if current is None or current[0] != item.codec:
            name, rate = _DECODERS.get(item.codec, (item.codec, 0))
            decoder: Any = av.CodecContext.create(name, "r")
            if rate:
                decoder.sample_rate = rate
                decoder.layout = "mono" if item.codec != "opus" else "stereo"
            current = self._decoders[item.kind] = (item.codec, decoder)
        packet = av.Packet(item.data)
        frames: list[Frame] = current[1].decode(packet)
        return frames

    def _mux(self, kind: str, data: bytes, ticks: int, keyframe: bool) -> None:
        last = self._last.get(kind)
        if last is not None and ticks <= last:
            return  # Matroska needs rising timestamps; a repeat or reorder is dropped
        self._last[kind] = ticks
        clock = VIDEO_CLOCK if kind == "video" else AUDIO_CLOCK
        packet = av.Packet(data)
        packet.stream = self._streams[kind]
        packet.time_base = Fraction(1, clock)
        packet.pts = packet.dts = ticks
        packet.is_keyframe = keyframe
        self._container.mux(packet)
        length = _OPUS_SAMPLES if kind == "audio" else 0
        self.ends[kind] = (ticks + length) / clock

    def _encode_video(self, frame: VideoFrame, ticks: int) -> None:
        encoder = self._video_encoder
        if encoder is None:
            encoder = av.CodecContext.create("libvpx", "w")
            encoder.width, encoder.height = frame.width, frame.height
            encoder.pix_fmt = "yuv420p"
            encoder.time_base = Fraction(1, VIDEO_CLOCK)
            encoder.framerate = Fraction(30, 1)
            encoder.bit_rate = _TRANSCODE_VIDEO_BITRATE
            encoder.gop_size = 60
            encoder.options = dict(_TRANSCODE_VIDEO_OPTIONS)
            self._video_encoder = encoder
        if (frame.width, frame.height, frame.format.name) != (
            encoder.width,
            encoder.height,
            "yuv420p",
        ):
            frame = frame.reformat(width=encoder.width, height=encoder.height, format="yuv420p")
        frame.pts, frame.time_base = ticks, Fraction(1, VIDEO_CLOCK)
        frame.pict_type = av.video.frame.PictureType.NONE
        self._mux_encoded("video", encoder.encode(frame))

    def _encode_audio(self, frame: AudioFrame, ticks: int) -> None:
        if self._audio_encoder is None:
            encoder = av.CodecContext.create("libopus", "w")
            encoder.sample_rate = AUDIO_CLOCK
            encoder.layout = "stereo"
            encoder.format = "s16"
            encoder.time_base = Fraction(1, AUDIO_CLOCK)
            self._audio_encoder = encoder
            self._resampler = av.AudioResampler(
                format="s16", layout="stereo", rate=AUDIO_CLOCK, frame_size=_OPUS_SAMPLES
            )
            self._audio_next = ticks
        assert self._resampler is not None and self._audio_next is not None
        if ticks > self._audio_next + _AUDIO_GAP:
            self._audio_next = ticks  # a pause in the sound: keep it in step with the video
        for chunk in self._resampler.resample(frame):
            chunk.pts = None
            self._mux_encoded("audio", self._audio_encoder.encode(chunk))

    def _mux_encoded(self, kind: str, packets: list[Any]) -> None:
        for packet in packets:
            if kind == "audio":
                # Opus packets are 20 ms each; number them from the first frame's time.
                assert self._audio_next is not None
                ticks, self._audio_next = self._audio_next, self._audio_next + _OPUS_SAMPLES
            else:
                ticks = int(packet.pts)
            self._mux(kind, bytes(packet), ticks, kind == "audio" or packet.is_keyframe)

    def _finish(self) -> None:
        if self._container is None:
            return
        for kind, encoder in (("video", self._video_encoder), ("audio", self._audio_encoder)):
            if encoder is not None:
                try:
                    self._mux_encoded(kind, encoder.encode(None))
                except av.FFmpegError:
                    self.errors += 1
        self._container.close()
        self._container = None

    def _abandon(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # the file stays as streamed so far
                logger.debug("closing %s after a failure also failed", self.path)
