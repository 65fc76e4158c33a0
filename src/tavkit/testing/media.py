"""Media a test can recognise on the other side: a solid colour with a tone.

The test pattern (:class:`tavkit.client.TestPattern`) moves and changes hue, which
proves that frames flow but not *which* frames: a test that wants to check that what
arrived is what was sent publishes :class:`ColourSource` and reads the colour back
(:meth:`tavkit.testing.Participant.mean_colour`). VP8 is lossy and the colour goes
through YUV 4:2:0 and back, so compare within a tolerance (about 10 per channel).
"""

from __future__ import annotations

import fractions
from typing import Final

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from tavkit.client._pattern import VIDEO_CLOCK, Pacer, ToneAudioTrack
from tavkit.client.media import MediaSource

__all__ = ["Colour", "ColourSource", "rgb_to_yuv"]

Colour = tuple[int, int, int]
"""An (r, g, b) colour, each 0-255."""

_TIME_BASE: Final = fractions.Fraction(1, VIDEO_CLOCK)


def rgb_to_yuv(colour: Colour) -> Colour:
    """BT.601 limited-range Y'CbCr of an RGB colour: what FFmpeg's rgb24 <-> yuv420p uses."""
    r, g, b = colour
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


class SolidVideoTrack(MediaStreamTrack):
    """Frames of one colour at ``fps``, paced in real time like a camera."""

    kind = "video"

    def __init__(self, colour: Colour, width: int, height: int, fps: int) -> None:
        super().__init__()
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError("the frame needs an even size of at least 16x16")
        if not 1 <= fps <= 120:
            raise ValueError("fps must be between 1 and 120")
        self._yuv = rgb_to_yuv(colour)
        self._size = (width, height)
        self._step = VIDEO_CLOCK // fps
        self._pts = 0
        self._pacer = Pacer(VIDEO_CLOCK)

    async def recv(self) -> VideoFrame:
        """The next frame, once its time has come."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._pts)
        frame = VideoFrame(*self._size, "yuv420p")
        for plane, level in zip(frame.planes, self._yuv, strict=True):
            plane.update(bytes([level]) * plane.buffer_size)
        frame.pts = self._pts
        frame.time_base = _TIME_BASE
        self._pts += self._step
        return frame


class ColourSource(MediaSource):
    """A solid ``colour`` (r, g, b) and a sine ``tone``, generated in-process."""

    def __init__(
        self,
        colour: Colour,
        *,
        width: int = 320,
        height: int = 240,
        fps: int = 30,
        tone: int = 440,
    ) -> None:
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            raise ValueError(f"a colour is three values 0-255, not {colour!r}")
        self.colour: Colour = (int(colour[0]), int(colour[1]), int(colour[2]))
        self._options = (width, height, fps)
        self._tone = tone

    async def open(self) -> None:
        """Make the tracks; nothing can fail but the arguments."""
        await self.open_kinds()

    async def open_kinds(self, *, audio: bool = True, video: bool = True) -> None:
        """Make only the tracks asked for."""
        self.video = SolidVideoTrack(self.colour, *self._options) if video else None
        self.audio = ToneAudioTrack(self._tone) if audio else None

    def __repr__(self) -> str:
        return f"ColourSource({self.colour!r})"
