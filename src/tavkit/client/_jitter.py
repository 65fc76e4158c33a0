"""A video jitter buffer that gives up on a lost packet after half a second.

aiortc's video jitter buffer (``aiortc.jitterbuffer.JitterBuffer``, 512 packets) hands
the decoder a frame only when every packet from its origin up to that frame is there.
A packet that is lost and never repaired (the NACK was lost, or the retransmission,
or the sender no longer had it) therefore holds back every later frame until 512
packets have piled up behind the gap: half a minute of a small 15 fps video, while
``packetsReceived`` keeps growing. aiortc asks for a retransmission once, when it sees
the gap, and never again. An SFU subscription carries many streams over one socket
into one busy process, where that happens (``docs/sfu.md``).

:class:`GapSkippingJitterBuffer` does what a browser's does instead: when no frame
has come out for :data:`STALL_AFTER` while packets kept arriving, and a gap is what
holds it, it drops everything up to the first frame that starts after the gap and
asks for a keyframe (the ``pli_flag`` aiortc already acts on), so the picture
resumes at the next keyframe instead of half a minute later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

__all__ = ["STALL_AFTER", "GapSkippingJitterBuffer", "skip_stuck_gaps"]

logger = logging.getLogger(__name__)

STALL_AFTER: Final = 0.5
"""Seconds without a frame, packets arriving, before a gap is given up on."""
_VIDEO_CAPACITY: Final = 512  # aiortc's, kept: a keyframe of a big picture needs room


class GapSkippingJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, except that a gap stops it for :data:`STALL_AFTER` at most."""

    def __init__(
        self,
        capacity: int = _VIDEO_CAPACITY,
        *,
        stall_after: float = STALL_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity, is_video=True)
        self._stall_after = stall_after
        self._clock = clock
        self._last_frame = clock()
        #: How many times a gap was given up on (each with a keyframe request).
        self.skipped = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Add a packet; the frame it completes, and whether to ask for a keyframe."""
        pli_flag, frame = super().add(packet)
        now = self._clock()
        if frame is not None:
            self._last_frame = now
        elif now - self._last_frame >= self._stall_after and self._skip_gap():
            self.skipped += 1
            self._last_frame = now
            logger.info("video: a gap held frames back for %.1f s; skipped it", self._stall_after)
            return True, self._remove_frame(packet.sequence_number)
        return pli_flag, frame

    def _skip_gap(self) -> bool:
        """Drop the packets before the first frame that starts after a gap, if there is one."""
        if self._origin is None:
            return False
        gap = after = None
        first_timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:
                if gap is None:
                    gap = count
                continue
            if gap is None:
                continue
            if after is None:  # the first packet after the gap: maybe the middle of a frame
                after, first_timestamp = count, packet.timestamp
            elif packet.timestamp != first_timestamp:
                self.remove(count)  # the origin is now the first packet of a whole frame
                return True
        return False


def skip_stuck_gaps(receiver: RTCRtpReceiver) -> None:
    """Give a video receiver a :class:`GapSkippingJitterBuffer` (before its first packet).

    aiortc has no option for it, so this replaces the receiver's private buffer; if a
    later aiortc names it differently, the receiver is left as it is (and logged).
    """
    name = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, name, None)
    if not isinstance(current, JitterBuffer):
        logger.warning("aiortc's receiver has no jitter buffer where expected; not replaced")
        return
    setattr(receiver, name, GapSkippingJitterBuffer(current.capacity))
