"""Where the kit delivers decoded remote frames: recorders, track copies, ``on_frame``.

Each remote track has exactly one reader (in ``peer.py``); it hands every decoded
frame to :meth:`RemoteMedia.deliver`, which fans it out to whatever the application
asked for. Recording starts at a participant's first frame (one ``.mkv`` per
participant per visit: a participant who leaves and comes back gets ``<id>-2.mkv``)
and ends when the participant leaves or the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from av import VideoFrame
from av.frame import Frame

from tavkit.client.sinks import FrameTap, ParticipantRecorder

__all__ = ["RemoteMedia"]


class RemoteMedia:
    """The remote frames' destinations for one call.

    ``call(callback, *args)`` runs an application callback safely (the kit's rule:
    exceptions logged, coroutines awaited in an owned task).
    """

    def __init__(
        self,
        record_dir: Path | None,
        on_frame: Callable[[str, Frame], Any] | None,
        call: Callable[..., None],
    ) -> None:
        self._record_dir = record_dir
        self._on_frame = on_frame
        self._call = call
        self._recorders: dict[str, ParticipantRecorder] = {}
        self._taps: dict[str, list[FrameTap]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def deliver(self, user_id: str, frame: Frame) -> None:
        """One decoded frame from ``user_id``: record it, copy it, call ``on_frame``."""
        if self._record_dir is not None:
            recorder = self._recorders.get(user_id)
            if recorder is None:
                recorder = ParticipantRecorder(self._record_path(user_id))
                self._recorders[user_id] = recorder
            recorder.write(frame)
        kind = "video" if isinstance(frame, VideoFrame) else "audio"
        for tap in self._taps.get(user_id, ()):
            if tap.kind == kind:
                tap.push(frame)
        if self._on_frame is not None:
            self._call(self._on_frame, user_id, frame)

    def tap(self, user_id: str, kind: str) -> FrameTap:
        """A new readable copy of ``user_id``'s ``kind`` track."""
        tap = FrameTap(kind)
        self._taps.setdefault(user_id, []).append(tap)
        return tap

    def left(self, user_id: str) -> None:
        """``user_id`` left: end its copies and finish its recording (in the background)."""
        for tap in self._taps.pop(user_id, []):
            tap.push(None)
        recorder = self._recorders.pop(user_id, None)
        if recorder is not None:
            task = asyncio.ensure_future(recorder.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Finish every recording and end every copy."""
        for user_id in list(self._taps):
            for tap in self._taps.pop(user_id):
                tap.push(None)
        recorders, self._recorders = list(self._recorders.values()), {}
        for recorder in recorders:
            await recorder.aclose()
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _record_path(self, user_id: str) -> Path:
        assert self._record_dir is not None
        self._record_dir.mkdir(parents=True, exist_ok=True)
        path = self._record_dir / f"{user_id}.mkv"
        visit = 2
        while path.exists():
            path = self._record_dir / f"{user_id}-{visit}.mkv"
            visit += 1
        return path
