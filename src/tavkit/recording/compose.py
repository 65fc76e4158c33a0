"""Render a session's per-participant recordings into one MP4: a video grid, mixed audio.

Input is a list of :class:`ComposeInput` - a file, its wall-clock start and whose it
is - so the caller decides where they come from (the database's recording rows, or a
scan of the session's directory, see :func:`inputs_from_directory`). The session's
time 0 is the earliest start; every file is placed at its own start, so a participant
who joined later appears (and is heard) later.

Video: one cell per participant (a participant's several files share their cell),
in order of first appearance; each frame is letterboxed into its cell; a cell is
black before the participant's first frame, after their file ends, and when no frame
came for :data:`HOLD` seconds. Audio: every file's audio resampled to 48 kHz stereo
and summed, clipped. Output: H.264 (libx264, or MPEG-4 Part 2 where PyAV's FFmpeg
lacks it) and AAC.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, cast

import av
from av import VideoFrame, VideoStream

from tavkit.recording._grid import Canvas, Cell, Placed, grid_cells, place
from tavkit.recording._mix import CHUNK, RATE, AudioLane, Mixer
from tavkit.recording.info import probe

__all__ = [
    "DEFAULT_SIZE",
    "HOLD",
    "ComposeInput",
    "ComposeResult",
    "compose",
    "inputs_from_directory",
]

DEFAULT_SIZE: Final = (1280, 720)
DEFAULT_FPS: Final = 25
HOLD: Final = 1.0
"""Seconds a participant's last frame stays on screen when no newer one comes."""
LAYOUTS: Final = ("grid",)
_AAC_FRAME: Final = 1024
_END_GRACE: Final = 0.1  # the last frame of a file stays up for about its own duration


@dataclass(frozen=True)
class ComposeInput:
    """One participant file to compose: where it is, when it starts, whose it is."""

    path: Path
    started_at: datetime
    user_id: str | None = None


@dataclass(frozen=True)
class ComposeResult:
    """What :func:`compose` wrote."""

    path: Path
    duration: float
    frames: int
    size: tuple[int, int]
    video_codec: str
    participants: int


def inputs_from_directory(directory: Path) -> list[ComposeInput]:
    """The ``*.mkv`` files of a session directory, with the start stored in each file.

    For when the database is not at hand. Files without a readable start tag are
    skipped: they cannot be placed on the timeline.
    """
    inputs = []
    for path in sorted(Path(directory).glob("*.mkv")):
        info = probe(path)
        if info.started_at is not None and info.duration:
            inputs.append(ComposeInput(path, info.started_at, info.user_id))
    return sorted(inputs, key=lambda item: item.started_at)


def compose(
    inputs: Sequence[ComposeInput],
    out: Path,
    *,
    layout: str = "grid",
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
) -> ComposeResult:
    """Render ``inputs`` into the MP4 ``out`` (blocking; minutes for long sessions).

    Raises ``ValueError`` for no inputs, an unknown layout or a bad size, and
    :class:`~tavkit.errors.ServerError` 14008 for an unreadable input file.
    """
    if not inputs:
        raise ValueError("nothing to compose: no recording files")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    if not 1 <= fps <= 60:
        raise ValueError("fps must be between 1 and 60")
    canvas = Canvas(*size)
    origin = min(item.started_at for item in inputs)
    spans = []
    for item in inputs:
        offset = (item.started_at - origin).total_seconds()
        spans.append((offset, offset + (probe(item.path).duration or 0.0)))
    total = max(end for _, end in spans)

    owners: dict[str, list[int]] = {}
    for index in sorted(range(len(inputs)), key=lambda i: spans[i][0]):
        owners.setdefault(inputs[index].user_id or f"#{index}", []).append(index)
    cells = grid_cells(len(owners), *size)
    screens = [
        _Screen(cell, [_VideoLane(inputs[i].path, *spans[i]) for i in files])
        for cell, files in zip(cells, owners.values(), strict=True)
    ]
    lanes = [AudioLane(item.path, offset) for item, (offset, _) in zip(inputs, spans, strict=True)]

    out.parent.mkdir(parents=True, exist_ok=True)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    frames = round(total * fps)
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = cast(VideoStream, container.add_stream(codec, rate=fps))
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        if codec == "libx264":
            video.options = {"preset": "veryfast", "crf": "23"}
        else:
            video.bit_rate = 4_000_000
        audio = container.add_stream("aac", rate=RATE)
        audio.layout = "stereo"
        mixer = Mixer(len(lanes))
        to_aac = av.AudioResampler(format="fltp", layout="stereo", rate=RATE, frame_size=_AAC_FRAME)
        audio_pts = 0
        total_samples = round(total * RATE)

        def mix_until(sample: int, *, last: bool = False) -> None:
            nonlocal audio_pts
            for index, lane in enumerate(lanes):
                for chunk in lane.chunks_until(sample):
                    mixer.push(index, chunk)
                if last:
                    mixer.push(index, None)
            for mixed in mixer.pull():
                for frame in to_aac.resample(mixed):
                    frame.pts, frame.time_base = audio_pts, Fraction(1, RATE)
                    audio_pts += frame.samples
                    container.mux(audio.encode(frame))

        for number in range(frames):
            moment = number / fps
            picture = canvas.render([p for s in screens if (p := s.at(moment)) is not None])
            picture.pts, picture.time_base = number, Fraction(1, fps)
            container.mux(video.encode(picture))
            mix_until(((number + 1) * total_samples // max(frames, 1)) // CHUNK * CHUNK)
        mix_until(-(-total_samples // CHUNK) * CHUNK, last=True)
        for frame in to_aac.resample(None):
            frame.pts, frame.time_base = audio_pts, Fraction(1, RATE)
            audio_pts += frame.samples
            container.mux(audio.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    for screen in screens:
        screen.close()
    for lane in lanes:
        lane.close()
    return ComposeResult(out, frames / fps, frames, size, codec, len(owners))


class _VideoLane:
    """One file's video on the session timeline, read forward as time advances."""

    def __init__(self, path: Path, start: float, end: float) -> None:
        self.start, self.end = start, end
        self._frames = _decoded_video(path, start)
        self._next: tuple[float, VideoFrame] | None = next(self._frames, None)
        self.current: tuple[float, VideoFrame] | None = None

    def advance(self, moment: float) -> None:
        """Make ``current`` the last frame due at ``moment``."""
        while self._next is not None and self._next[0] <= moment:
            self.current = self._next
            self._next = next(self._frames, None)

    def close(self) -> None:
        """Release the file."""
        self._frames.close()  # type: ignore[attr-defined]


class _Screen:
    """One participant's cell: their files in time order, the picture last placed."""

    def __init__(self, cell: Cell, lanes: list[_VideoLane]) -> None:
        self._cell = cell
        self._lanes = lanes
        self._shown: tuple[Any, Placed] | None = None

    def at(self, moment: float) -> Placed | None:
        """The picture for ``moment``, ``None`` for a black cell."""
        frame = None
        for lane in self._lanes:
            lane.advance(moment)
            if lane.start <= moment <= lane.end + _END_GRACE and lane.current is not None:
                shown_at, candidate = lane.current
                if moment - shown_at <= HOLD:
                    frame = candidate
        if frame is None:
            return None
        if self._shown is None or self._shown[0] is not frame:
            self._shown = (frame, place(frame, self._cell))
        return self._shown[1]

    def close(self) -> None:
        """Release the files."""
        for lane in self._lanes:
            lane.close()


def _decoded_video(path: Path, offset: float) -> Iterator[tuple[float, VideoFrame]]:
    """(session time, frame) for each decoded video frame of ``path``."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            return
        try:
            for frame in container.decode(container.streams.video[0]):
                if frame.pts is not None and frame.time_base is not None:
                    yield offset + float(frame.pts * frame.time_base), frame
        except av.FFmpegError:
            return  # the torn end of a file cut by a crash
