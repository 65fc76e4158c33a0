"""The composite's sound: every file's audio on one timeline, summed by libavfilter.

Each file becomes a :class:`AudioLane`: its decoded audio as 48 kHz stereo s16, with
silence before the file starts and wherever packets are missing, cut into fixed
chunks on the session's timeline. :class:`Mixer` sums the lanes with ``amix``
(``normalize=0``: a plain sum, not an average) and clips to s16 with ``aformat``.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import av
from av import AudioFrame

__all__ = ["CHUNK", "RATE", "AudioLane", "Mixer"]

RATE: Final = 48_000
CHUNK: Final = 1024  # samples per frame handed to the mixer
_BYTES_PER_SAMPLE: Final = 4  # s16 stereo, packed
_SLACK: Final = RATE // 200  # 5 ms: timestamp rounding, not a gap


class AudioLane:
    """One file's audio as contiguous chunks from the session's time 0."""

    def __init__(self, path: Path, offset: float) -> None:
        self._offset = round(offset * RATE)
        self._pending = bytearray()  # samples from self._emitted on, not yet chunked
        self._emitted = 0  # samples handed out so far (a multiple of CHUNK)
        self._frames = _decoded(path)
        self._done = False

    def chunks_until(self, sample: int) -> list[AudioFrame]:
        """Chunks covering the timeline up to ``sample`` (rounded down to a chunk)."""
        while not self._done and self._emitted + len(self._pending) // _BYTES_PER_SAMPLE < sample:
            item = next(self._frames, None)
            if item is None:
                self._done = True
                break
            self._add(self._offset + item[0], item[1])
        chunks = []
        while self._emitted + CHUNK <= sample:
            size = CHUNK * _BYTES_PER_SAMPLE
            if len(self._pending) < size:
                self._pending.extend(bytes(size - len(self._pending)))  # silence
            chunk, self._pending = self._pending[:size], self._pending[size:]
            chunks.append(_frame(bytes(chunk), self._emitted))
            self._emitted += CHUNK
        return chunks

    def close(self) -> None:
        """Release the file."""
        self._frames.close()  # type: ignore[attr-defined]

    def _add(self, start: int, data: bytes) -> None:
        end = self._emitted + len(self._pending) // _BYTES_PER_SAMPLE
        if start > end + _SLACK:
            self._pending.extend(bytes((start - end) * _BYTES_PER_SAMPLE))
        elif start < end - _SLACK:
            data = data[(end - start) * _BYTES_PER_SAMPLE :]  # overlaps what we have
        self._pending.extend(data)


class Mixer:
    """Sums ``count`` lanes: push one chunk per lane, pull the mixed s16 stereo frames."""

    def __init__(self, count: int) -> None:
        graph = av.filter.Graph()
        self._sources = [
            graph.add_abuffer(
                format="s16", sample_rate=RATE, layout="stereo", time_base=Fraction(1, RATE)
            )
            for _ in range(count)
        ]
        amix = graph.add(
            "amix", f"inputs={count}:normalize=0:duration=longest:dropout_transition=0"
        )
        clip = graph.add("aformat", f"sample_fmts=s16:sample_rates={RATE}:channel_layouts=stereo")
        self._sink = graph.add("abuffersink")
        for index, source in enumerate(self._sources):
            source.link_to(amix, 0, index)
        amix.link_to(clip)
        clip.link_to(self._sink)
        graph.configure()
        self._graph = graph

    def push(self, lane: int, frame: AudioFrame | None) -> None:
        """Give lane ``lane`` its next chunk (``None``: the lane has ended)."""
        self._sources[lane].push(frame)

    def pull(self) -> list[AudioFrame]:
        """Every mixed frame available now."""
        frames: list[AudioFrame] = []
        while True:
            try:
                frame: Any = self._sink.pull()
            except (BlockingIOError, av.EOFError):
                return frames
            frames.append(frame)


def _frame(data: bytes, pts: int) -> AudioFrame:
    frame = AudioFrame(format="s16", layout="stereo", samples=CHUNK)
    frame.planes[0].update(data)
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = Fraction(1, RATE)
    return frame


def _decoded(path: Path) -> Iterator[tuple[int, bytes]]:
    """(start sample in the file, s16 stereo bytes) for each decoded audio frame."""
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        try:
            for frame in container.decode(stream):
                if frame.pts is None or frame.time_base is None:
                    continue
                start = round(frame.pts * frame.time_base * RATE)
                for out in resampler.resample(frame):
                    yield start, bytes(out.planes[0])[: out.samples * _BYTES_PER_SAMPLE]
                    start += out.samples
        except av.FFmpegError:
            return  # the torn end of a file cut by a crash
