"""Remote audio decoded on the event loop, not by a thread of its own per track.

aiortc gives every receiver a decoder thread. Each complete frame goes to it through a
``queue.Queue`` and each decoded frame comes back through
``asyncio.run_coroutine_threadsafe``: a lock, two switches of the interpreter lock, a
wake-up of the event loop and a new Task, per frame. For video that is worth it: a big
frame takes milliseconds to decode and must not stall the loop. For audio it is nearly
all overhead: an Opus packet of 20 ms decodes in tens of microseconds, and there are 50
of them a second per member. A Python member of a nine-member SFU room receives eight
members' audio, 400 round trips a second; measured there (``docs/sfu.md``), receiving
the audio made each Python receiver about three times as costly as receiving the
video alone, and six such members starved the machine.

:func:`decode_audio_inline` replaces an audio receiver's decoder queue, before its first
packet, with :class:`InlineDecoding`, which decodes each frame the moment aiortc hands
it over and puts the samples straight on the track's queue. The thread aiortc still
starts for the receiver waits, idle, until the receiver stops, and then ends the track
as it always did.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import av
from aiortc import RTCRtpReceiver
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

__all__ = ["InlineDecoding", "decode_audio_inline"]

logger = logging.getLogger(__name__)

_QUEUE = "_RTCRtpReceiver__decoder_queue"
_STARTED = "_RTCRtpReceiver__started"
_LOG_EVERY = 500
"""Undecodable frames between two log lines about them (the first is always logged)."""


class InlineDecoding:
    """What aiortc's receiver takes for its decoder queue: ``put`` decodes at once.

    aiortc calls ``put((codec, frame))`` for each complete frame and ``put(None)`` when
    the receiver stops; its decoder thread calls ``get()``, which here returns ``None``
    only once the receiver stops, so that thread ends the track (its last frame,
    ``None``) exactly as before, after every frame decoded here.
    """

    def __init__(self, output: asyncio.Queue[Any]) -> None:
        self._output = output
        self._decoder: Decoder | None = None
        self._codec_name: str | None = None
        self._stopped = threading.Event()
        #: Frames decoded here, and frames that failed to (each skipped; the next may decode).
        self.decoded = 0
        self.failed = 0

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        """Decode one encoded frame onto the track's queue, or stop on ``None``."""
        if item is None:
            self._stopped.set()
            return
        codec, encoded = item
        if not encoded.data:
            # An empty packet tells FFmpeg to drain: every later frame would then fail
            # with "End of file". (aiortc's thread passes it on; nothing is lost here.)
            return
        if codec.name != self._codec_name or self._decoder is None:
            self._decoder = get_decoder(codec)
            self._codec_name = codec.name
        try:
            frames = self._decoder.decode(encoded)
        except av.FFmpegError as exc:  # as aiortc's thread does: keep the decoder, go on
            self.failed += 1
            if self.failed == 1 or self.failed % _LOG_EVERY == 0:  # a sender of junk: 50/s
                logger.warning(
                    "audio: %d %s frame(s) failed to decode, the last: %s",
                    self.failed,
                    codec.name,
                    exc,
                )
            return
        self.decoded += 1
        for frame in frames:
            self._output.put_nowait(frame)

    def get(self) -> None:
        """The idle decoder thread's wait: ``None`` once the receiver stops."""
        self._stopped.wait()


def decode_audio_inline(receiver: RTCRtpReceiver) -> bool:
    """Have an audio receiver decode on the event loop (before it starts receiving).

    aiortc has no option for it, so this replaces the receiver's private decoder queue
    (as ``_jitter.skip_stuck_gaps`` does its jitter buffer). A receiver that has
    already started, a video receiver, or a later aiortc that names the queue
    differently is left as it is (the last logged). Returns whether it was replaced.
    """
    if receiver.track is None or receiver.track.kind != "audio":
        return False
    if getattr(receiver, _STARTED, True):
        return False  # its thread already reads the queue it has
    output = getattr(receiver.track, "_queue", None)
    if not hasattr(receiver, _QUEUE) or not isinstance(output, asyncio.Queue):
        logger.warning("aiortc's receiver has no decoder queue where expected; not replaced")
        return False
    setattr(receiver, _QUEUE, InlineDecoding(output))
    return True
