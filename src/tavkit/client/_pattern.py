"""Synthetic media: a moving test pattern and a tone, paced in real time.

Made with PyAV frames and byte slicing only (no numpy, no FFmpeg filter graph, no
thread): one 640x480 frame costs well under a millisecond, so the pattern is cheap
enough to publish from a test or a bot, and every frame differs from the last, so
encoders do real work and a receiver can tell a frozen stream from a live one.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
from typing import Final

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

__all__ = ["AUDIO_RATE", "VIDEO_CLOCK", "Pacer", "PatternVideoTrack", "ToneAudioTrack"]

VIDEO_CLOCK: Final = 90_000
AUDIO_RATE: Final = 48_000
AUDIO_PTIME: Final = 0.020  # 20 ms, the WebRTC norm and Opus's natural frame
_SAMPLES: Final = int(AUDIO_RATE * AUDIO_PTIME)
# A pacer that falls further behind than this jumps ahead instead of bursting frames.
_MAX_LAG: Final = 0.5


class Pacer:
    """Sleeps until a timestamp's moment arrives, so a generator runs at its nominal rate."""

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self._origin: float | None = None

    async def wait(self, timestamp: int) -> None:
        """Wait until ``timestamp`` (in clock units since the first call) is due."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        offset = timestamp / self._clock_rate
        if self._origin is None or now - (self._origin + offset) > _MAX_LAG:
            self._origin = now - offset
        delay = self._origin + offset - now
        if delay > 0:
            await asyncio.sleep(delay)


class PatternVideoTrack(MediaStreamTrack):
    """Diagonal bands that slide every frame over a background whose colour drifts.

    ``variant`` changes the hue and the direction of motion, so a second pattern
    (the "back camera" of :meth:`tavkit.client.TAvKit.switch_camera`) is visibly
    different from the first.
    """

    kind = "video"

    def __init__(
        self, width: int = 640, height: int = 480, fps: int = 30, variant: int = 0
    ) -> None:
        super().__init__()
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError("the pattern needs an even size of at least 16x16")
        if not 1 <= fps <= 120:
            raise ValueError("fps must be between 1 and 120")
        self.width = width
        self.height = height
        self.fps = fps
        self._variant = variant
        self._step = VIDEO_CLOCK // fps
        self._pts = 0
        self._index = 0
        self._pacer = Pacer(VIDEO_CLOCK)
        self._ramp = bytes((i * 2) & 0xFF for i in range(width + 256))
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK)

    async def recv(self) -> VideoFrame:
        """The next frame, once its time has come."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._pts)
        frame = self._draw(self._index)
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += self._step
        self._index += 1
        return frame

    def _draw(self, index: int) -> VideoFrame:
        frame = VideoFrame(self.width, self.height, "yuv420p")
        direction = -1 if self._variant % 2 else 1
        shift = (direction * index * 3) % 128
        luma = frame.planes[0]
        pad = b"\x00" * (luma.line_size - self.width)
        rows = [
            self._ramp[(shift + y) % 128 : (shift + y) % 128 + self.width] + pad
            for y in range(self.height)
        ]
        luma.update(b"".join(rows))
        hue = (index / (self.fps * 4) + self._variant * 0.37) * 2 * math.pi
        for plane, phase in ((frame.planes[1], 0.0), (frame.planes[2], math.pi / 2)):
            level = 128 + int(90 * math.sin(hue + phase))
            plane.update(bytes([level]) * plane.buffer_size)
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A sine tone in 20 ms mono s16 frames at 48 kHz.

    One second of samples (a whole number of periods for any integer frequency, so it
    loops without a click) is made once and served in slices. Only the shortest
    stretch that repeats exactly is computed (1200 samples for 440 Hz) and the second
    is copies of it: the tone is made inside a join, on the event loop, where
    computing all 48,000 samples took 30-100 ms.
    """

    kind = "audio"

    def __init__(self, frequency: int = 440, volume: float = 0.3) -> None:
        super().__init__()
        if not 20 <= frequency <= 20_000:
            raise ValueError("frequency must be between 20 and 20000 Hz")
        if not 0.0 <= volume <= 1.0:
            raise ValueError("volume must be between 0 and 1")
        amplitude = int(32767 * volume)
        # frequency * period / AUDIO_RATE whole periods: the samples repeat exactly.
        period = AUDIO_RATE // math.gcd(frequency, AUDIO_RATE)
        samples = array.array(
            "h",
            (
                int(amplitude * math.sin(2 * math.pi * frequency * n / AUDIO_RATE))
                for n in range(period)
            ),
        )
        self._second = samples.tobytes() * (AUDIO_RATE // period)
        self._chunk = _SAMPLES * 2
        self._pts = 0
        self._pacer = Pacer(AUDIO_RATE)
        self._time_base = fractions.Fraction(1, AUDIO_RATE)

    async def recv(self) -> AudioFrame:
        """The next 20 ms of tone, once its time has come."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._pts)
        start = (self._pts % AUDIO_RATE) * 2
        frame = AudioFrame(format="s16", layout="mono", samples=_SAMPLES)
        frame.planes[0].update(self._second[start : start + self._chunk])
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += _SAMPLES
        return frame
