"""Participant files made directly with PyAV, in the writer's format (VP8 + Opus, tagged).

Solid colours make a composite checkable by the mean colour of its cells.
"""

from __future__ import annotations

import array
import math
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
from av import AudioFrame, VideoFrame

from tavkit.recording.info import TAG_STARTED_AT, TAG_USER_ID

# BT.601 limited-range YUV of pure colours.
RED = (81, 90, 240)
BLUE = (41, 240, 110)


def solid(width: int, height: int, colour: tuple[int, int, int]) -> VideoFrame:
    """A yuv420p frame of one colour."""
    frame = VideoFrame(width, height, "yuv420p")
    for plane, level in zip(frame.planes, colour, strict=True):
        plane.update(bytes([level]) * plane.buffer_size)
    return frame


def participant_file(
    path: Path,
    *,
    user_id: str,
    started_at: datetime,
    seconds: float,
    size: tuple[int, int],
    colour: tuple[int, int, int],
    tone: int | None,
    fps: int = 15,
) -> Path:
    """Write ``seconds`` of a solid picture and a tone (or silence) like a recording."""
    with av.open(str(path), "w", format="matroska") as container:
        container.metadata[TAG_USER_ID] = user_id
        container.metadata[TAG_STARTED_AT] = started_at.isoformat()
        video = container.add_stream("libvpx", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"deadline": "realtime", "cpu-used": "8"}
        audio = container.add_stream("libopus", rate=48_000)
        audio.layout = "stereo"
        for index in range(round(seconds * fps)):
            frame = solid(*size, colour)
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = 960
        level = 0.0 if tone is None else 0.4
        second = array.array(
            "h",
            (
                int(32767 * level * math.sin(2 * math.pi * (tone or 0) * (n // 2) / 48_000))
                for n in range(2 * 48_000)  # interleaved stereo: each value twice
            ),
        ).tobytes()
        for index in range(round(seconds * 48_000 / samples)):
            frame = AudioFrame(format="s16", layout="stereo", samples=samples)
            offset = (index * samples % 48_000) * 4
            frame.planes[0].update(second[offset : offset + samples * 4])
            frame.sample_rate = 48_000
            frame.pts, frame.time_base = index * samples, Fraction(1, 48_000)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path
