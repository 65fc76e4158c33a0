"""Where a participant's audio and video come from: a test pattern, a file, a device.

A :class:`MediaSource` opens into at most one audio and one video
:class:`~aiortc.MediaStreamTrack`; :class:`~tavkit.client.TAvKit` reads them once
and fans them out to every peer (see ``_publish.py``). Failing to open a source is
the seed's ``trtc`` error: -1301 for video (camera), -1302 for audio (microphone).

The kit opens a source only after ``enter``, and only for the kinds the member's
privileges let it send (:meth:`MediaSource.open_kinds`): an audience member never
touches a camera or a microphone, and a member who may send only audio never opens
the camera.

Camera and microphone capture use FFmpeg's ``v4l2`` and ``alsa`` inputs through
aiortc's :class:`~aiortc.contrib.media.MediaPlayer`. They are not exercised by the
test suite: the build machines have no capture devices (and this PyAV build has no
``v4l2`` demuxer at all), so only the error path is tested there.
"""

from __future__ import annotations

import abc
import asyncio
import os
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError

from tavkit.client._pattern import PatternVideoTrack, ToneAudioTrack
from tavkit.errors import TrtcCode, TrtcError

__all__ = ["DeviceSource", "FileSource", "MediaSource", "TestPattern", "source_from_spec"]

_OPEN_TIMEOUT = 10.0


class MediaSource(abc.ABC):
    """A source of local media; :meth:`open` makes its tracks, :meth:`close` releases them."""

    audio: MediaStreamTrack | None = None
    video: MediaStreamTrack | None = None

    @abc.abstractmethod
    async def open(self) -> None:
        """Create :attr:`audio` and :attr:`video`; raise :class:`~tavkit.errors.TrtcError`."""

    async def open_kinds(self, *, audio: bool = True, video: bool = True) -> None:
        """Open only the kinds asked for (what the member may send); the others stay ``None``.

        The built-in sources never open a device or a stream they were not asked
        for. This default, for subclasses that only implement :meth:`open`, opens
        everything and at once stops and drops the tracks not asked for; override it
        when opening a kind alone is possible.
        """
        await self.open()
        for wanted, name in ((audio, "audio"), (video, "video")):
            track = getattr(self, name)
            if not wanted and track is not None:
                track.stop()
                setattr(self, name, None)

    async def close(self) -> None:
        """Stop the tracks (idempotent)."""
        for track in (self.audio, self.video):
            if track is not None:
                track.stop()


class TestPattern(MediaSource):
    """Moving colour bands and a sine tone, generated in-process at real-time pace.

    ``variant`` changes the colours and motion (a second "camera" for switching).
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        tone: int = 440,
        variant: int = 0,
        audio: bool = True,
    ) -> None:
        self._options = (width, height, fps, variant)
        self._tone = tone
        self._with_audio = audio

    async def open(self) -> None:
        """Make the tracks; nothing can fail but the arguments."""
        await self.open_kinds()

    async def open_kinds(self, *, audio: bool = True, video: bool = True) -> None:
        """Make only the tracks asked for."""
        width, height, fps, variant = self._options
        self.video = PatternVideoTrack(width, height, fps, variant) if video else None
        self.audio = ToneAudioTrack(self._tone) if audio and self._with_audio else None

    def __repr__(self) -> str:
        width, height, fps, variant = self._options
        return f"TestPattern({width}x{height}@{fps}, variant={variant})"


class FileSource(MediaSource):
    """Any file PyAV can read, played in real time and looped by default.

    aiortc's own ``MediaPlayer(loop=True)`` cannot loop with current PyAV (after the
    first pass its decoders are drained and refuse more input), so a loop here opens
    the file afresh each time it ends; the publisher restamps the frames, so the
    peers see one continuous stream.
    """

    def __init__(self, path: str | os.PathLike[str], *, loop: bool = True) -> None:
        self.path = os.fspath(path)
        self._loop = loop
        self._player: MediaPlayer | None = None
        self._generation = 0
        self._delivered = 0
        self._lock = asyncio.Lock()
        self._kinds = frozenset({"audio", "video"})

    async def open(self) -> None:
        """Open the file; -1301 if it cannot be read (the seed has no separate file error)."""
        await self.open_kinds()

    async def open_kinds(self, *, audio: bool = True, video: bool = True) -> None:
        """Open the file and play only the kinds asked for (the others are not even decoded)."""
        self._kinds = frozenset(k for k, on in (("audio", audio), ("video", video)) if on)
        player = await self._open_player()
        if player.audio is None and player.video is None:
            raise TrtcError(TrtcCode.CAMERA_OPEN_FAILED, f"{self.path!r} has no audio or video")
        self._player = player
        self.audio = _LoopedTrack(self, "audio") if self._plays(player, "audio") else None
        self.video = _LoopedTrack(self, "video") if self._plays(player, "video") else None

    async def close(self) -> None:
        """Stop the tracks and the player's thread."""
        await super().close()
        self._stop_player()

    async def _open_player(self) -> MediaPlayer:
        try:
            player = await asyncio.wait_for(
                asyncio.to_thread(MediaPlayer, self.path), _OPEN_TIMEOUT
            )
        except (av.FFmpegError, OSError, ValueError, TimeoutError) as exc:
            raise TrtcError(
                TrtcCode.CAMERA_OPEN_FAILED, f"cannot play {self.path!r}: {exc}"
            ) from exc
        # aiortc's player decodes every stream it found and queues each kind's frames
        # without bound, whether or not anyone reads them: keep only the kinds asked
        # for in its decode list (it has no public option for this).
        streams = getattr(player, "_MediaPlayer__streams", None)
        if isinstance(streams, list):
            streams[:] = [s for s in streams if s.type in self._kinds]
        return player

    def _plays(self, player: MediaPlayer, kind: str) -> bool:
        track = player.audio if kind == "audio" else player.video
        return kind in self._kinds and track is not None

    def _current(self, kind: str) -> tuple[int, MediaStreamTrack | None]:
        player = self._player
        track = None if player is None else (player.audio if kind == "audio" else player.video)
        return self._generation, track

    async def _rewind(self, generation: int) -> bool:
        """Start the next pass (once per pass, whichever track ends first); False: no more."""
        async with self._lock:
            if generation != self._generation:
                return True  # the other track already started the next pass
            if not self._loop or self._delivered == 0:
                return False
            self._stop_player()
            self._player = await self._open_player()
            self._generation += 1
            self._delivered = 0
            return True

    def _stop_player(self) -> None:
        player, self._player = self._player, None
        if player is not None:
            for track in (player.audio, player.video):
                if track is not None:
                    track.stop()

    def __repr__(self) -> str:
        return f"FileSource({self.path!r})"


class _LoopedTrack(MediaStreamTrack):
    """One kind of a :class:`FileSource`, carrying on across the passes of the file."""

    def __init__(self, owner: FileSource, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._owner = owner

    async def recv(self) -> Any:
        """The next frame of the current pass, or of the next one at the end."""
        while self.readyState == "live":
            generation, track = self._owner._current(self.kind)
            if track is None:
                break
            try:
                frame = await track.recv()
            except MediaStreamError:
                if not await self._owner._rewind(generation):
                    break
                continue
            self._owner._delivered += 1
            return frame
        self.stop()
        raise MediaStreamError


class DeviceSource(MediaSource):
    """A camera and/or microphone through FFmpeg's capture inputs.

    ``video`` is a device path such as ``/dev/video0`` (format ``v4l2``), ``audio``
    an ALSA device such as ``default`` or ``hw:0`` (format ``alsa``); ``None`` skips
    that kind. ``video_options`` go to FFmpeg (e.g. ``{"video_size": "640x480"}``).
    """

    def __init__(
        self,
        video: str | None = "/dev/video0",
        audio: str | None = "default",
        *,
        video_format: str = "v4l2",
        audio_format: str = "alsa",
        video_options: dict[str, str] | None = None,
    ) -> None:
        if video is None and audio is None:
            raise ValueError("a device source needs a video or an audio device")
        self._video_device = video
        self._audio_device = audio
        self._formats = (video_format, audio_format)
        self._video_options = dict(video_options or {"video_size": "640x480", "framerate": "30"})
        self._players: list[MediaPlayer] = []

    async def open(self) -> None:
        """Open the devices: -1301 for the camera, -1302 for the microphone."""
        await self.open_kinds()

    async def open_kinds(self, *, audio: bool = True, video: bool = True) -> None:
        """Open only the devices asked for; a device not asked for is never touched."""
        if video and self._video_device is not None:
            player = await _open_device(
                self._video_device,
                self._formats[0],
                self._video_options,
                TrtcCode.CAMERA_OPEN_FAILED,
            )
            self._players.append(player)
            self.video = player.video
        if audio and self._audio_device is not None:
            try:
                player = await _open_device(
                    self._audio_device, self._formats[1], {}, TrtcCode.MICROPHONE_OPEN_FAILED
                )
            except TrtcError:
                await self.close()
                raise
            self._players.append(player)
            self.audio = player.audio

    def __repr__(self) -> str:
        return f"DeviceSource(video={self._video_device!r}, audio={self._audio_device!r})"


async def _open_device(
    device: str, fmt: str, options: dict[str, str], code: TrtcCode
) -> MediaPlayer:
    kwargs: dict[str, Any] = {"format": fmt, "options": options}
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(MediaPlayer, device, **kwargs), _OPEN_TIMEOUT
        )
    except (av.FFmpegError, OSError, ValueError, TimeoutError) as exc:
        raise TrtcError(code, f"cannot open {device!r} ({fmt}): {exc}") from exc


def source_from_spec(spec: str) -> MediaSource:
    """The source a command-line ``--source`` names.

    ``testsrc`` is the test pattern; ``/dev/video*`` (optionally ``VIDEO,AUDIO`` such as
    ``/dev/video0,hw:0``) is a capture device; anything else is a file path.
    """
    if spec == "testsrc":
        return TestPattern()
    if spec.startswith("/dev/video"):
        video, _, audio = spec.partition(",")
        return DeviceSource(video, audio or None)
    return FileSource(spec)
