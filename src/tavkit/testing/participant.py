"""A Python participant for tests: enters a room, publishes, and keeps what it received.

:class:`Participant` is a :class:`tavkit.client.TAvKit` on loopback with a recording
listener, a frame sink and a network of its own (:class:`~tavkit.testing.network.Network`):

* what it publishes: a small test pattern (320x240, 15 fps, a tone), a solid
  ``colour``, a media ``file``, or any :class:`~tavkit.client.MediaSource`;
* what it received: per sender, the number of frames decoded since it entered, the
  last decoded video frame (as :class:`av.VideoFrame`, a numpy array, or its mean
  colour) and the level of the last audio frame; every listener callback
  (:attr:`Participant.events`) and in-call message (:attr:`Participant.messages`);
* waits that fail with a message naming what did not happen
  (:meth:`Participant.wait_for_video_from`, :meth:`Participant.wait_for_message`...);
* its network: :meth:`Participant.impair` (loss, delay, jitter, bandwidth each way),
  :meth:`Participant.blackout` and :meth:`Participant.change_address`.

The ``participant`` fixture (:mod:`tavkit.testing.plugin`) makes them and hangs them up
after the test.
"""

from __future__ import annotations

import array
import math
import os
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from av import AudioFrame, AudioResampler, VideoFrame

from tavkit.client.kit import TAvKit
from tavkit.client.media import FileSource, MediaSource, TestPattern
from tavkit.protocol import ChatMessage
from tavkit.testing._wait import TIMEOUT, until
from tavkit.testing.listener import RecordingListener
from tavkit.testing.media import Colour, ColourSource
from tavkit.testing.network import Conditions, Network
from tavkit.testing.relay import TcpRelay

if TYPE_CHECKING:
    from tavkit.testing.server import RunningServer

__all__ = ["Participant"]

LOOPBACK = ("127.0.0.1",)


def _source(
    colour: Colour | None, file: str | os.PathLike[str] | None, source: MediaSource | None
) -> MediaSource:
    if sum(x is not None for x in (colour, file, source)) > 1:
        raise ValueError("give at most one of colour, file and source")
    if colour is not None:
        return ColourSource(colour)
    if file is not None:
        return FileSource(file)
    return source if source is not None else TestPattern(width=320, height=240, fps=30)


class Participant:
    """One member of a call in a test. Make it with :meth:`enter` (or the fixture)."""

    def __init__(
        self, server: RunningServer, user_id: str, room_id: int, *, relay: TcpRelay, **kit: Any
    ) -> None:
        self.server = server
        self.user_id = user_id
        self.room_id = room_id
        self.relay = relay
        self.listener = RecordingListener()
        self._video: dict[str, VideoFrame] = {}
        self._audio: dict[str, AudioFrame] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        seed = kit.pop("seed", None)  # repeatable random losses
        kit.setdefault("host_addresses", list(LOOPBACK))
        kit.setdefault("video_bitrate", 300_000)
        self.kit = TAvKit(
            relay.url, on_frame=self._on_frame, on_screen_frame=self._on_screen_frame, **kit
        )
        # The kit's own map of peer connections, the one its quality reporter reads.
        self.network = Network(self.kit._peer_connections, relay, seed=seed)

    @classmethod
    async def enter(
        cls,
        server: RunningServer,
        user_id: str,
        room_id: int = 1,
        *,
        colour: Colour | None = None,
        file: str | os.PathLike[str] | None = None,
        source: MediaSource | None = None,
        privilege: int | None = None,
        user_sig: str | None = None,
        **kit_options: Any,
    ) -> Participant:
        """Enter ``room_id`` of ``server`` as ``user_id`` and start publishing.

        ``colour`` (r, g, b), ``file`` or ``source`` choose the media (default: a small
        test pattern). ``privilege`` enters with a privateMapKey of those bits;
        ``user_sig`` replaces the valid userSig the server would mint. Other keywords
        go to :class:`~tavkit.client.TAvKit`. A refused entry raises the server's error.
        """
        relay = await TcpRelay("127.0.0.1", server.port).start()
        try:
            participant = cls(
                server,
                user_id,
                room_id,
                relay=relay,
                source=_source(colour, file, source),
                **kit_options,
            )
        except BaseException:
            await relay.aclose()
            raise
        try:
            participant.network.start()
            await participant.kit.start(
                sdk_app_id=server.app_id,
                user_id=user_id,
                user_sig=user_sig if user_sig is not None else server.sig(user_id),
                room_id=room_id,
                private_map_key=(
                    server.pmk(user_id, room_id, privilege) if privilege is not None else None
                ),
                listener=participant.listener,
            )
        except BaseException:
            await participant.aclose()  # the kit, its network watcher, the relay
            raise
        return participant

    # -- what it received -----------------------------------------------------------------

    @property
    def events(self) -> list[tuple[Any, ...]]:
        """Every listener callback so far, in order, as ``(name, *args)``."""
        return self.listener.events

    @property
    def messages(self) -> list[ChatMessage]:
        """Every in-call message so far (its own included), in ``seq`` order."""
        return self.listener.messages()

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Every error reported to ``on_error``, as ``{module, errorCode, errorMsg}``."""
        return self.kit.errors

    @property
    def room_uuid(self) -> str | None:
        """The session's UUID while in the call."""
        return self.kit.room_uuid

    @property
    def members(self) -> list[str]:
        """The other members, as the server last said."""
        return self.kit.members

    @property
    def resumes(self) -> int:
        """How many times the signaling socket came back after a drop."""
        return self.kit.resumes

    def video_frames_from(self, user_id: str) -> int:
        """Video frames decoded from ``user_id`` since entering (across reconnections)."""
        return self._counts[(user_id, "video")]

    def screen_frames_from(self, user_id: str) -> int:
        """Frames decoded from ``user_id``'s shared screen since entering (all its shares)."""
        return self._counts[(user_id, "screen")]

    def sharing(self, user_id: str) -> bool:
        """Whether ``user_id`` shares its screen now (its last ``on_screen_share``)."""
        return self._room_sharing(user_id)

    def audio_frames_from(self, user_id: str) -> int:
        """Audio frames decoded from ``user_id`` since entering (across reconnections)."""
        return self._counts[(user_id, "audio")]

    def connections_with(self, user_id: str) -> int:
        """How many peer connections this participant has had with ``user_id``.

        1 while the first one lasts; each restart on a new connection (tavkit's ICE
        restart, made by whichever side offered the session) adds one, on both sides.
        """
        return self.network.connections[user_id]

    def connected_to(self, user_id: str) -> bool:
        """Whether the peer connection to ``user_id`` is up now."""
        stats = self.kit.peers.get(user_id)
        return stats is not None and stats.connected

    def last_frame(self, user_id: str) -> VideoFrame:
        """The last video frame decoded from ``user_id`` (``LookupError`` if none yet)."""
        frame = self._video.get(user_id)
        if frame is None:
            raise LookupError(f"{self.user_id} has decoded no video from {user_id}")
        return frame

    def last_image(self, user_id: str) -> Any:
        """The last video frame from ``user_id`` as an RGB numpy array (height, width, 3).

        Needs numpy (``pip install tavkit[testing]`` has it).
        """
        return self.last_frame(user_id).to_ndarray(format="rgb24")

    def mean_colour(self, user_id: str) -> Colour:
        """The average (r, g, b) of the last video frame from ``user_id`` (no numpy needed)."""
        small = self.last_frame(user_id).reformat(width=16, height=16, format="rgb24")
        plane = small.planes[0]
        data = bytes(plane)
        sums = [0, 0, 0]
        for y in range(small.height):
            row = data[y * plane.line_size : y * plane.line_size + small.width * 3]
            for channel in range(3):
                sums[channel] += sum(row[channel::3])
        pixels = small.width * small.height
        return (round(sums[0] / pixels), round(sums[1] / pixels), round(sums[2] / pixels))

    def audio_level(self, user_id: str) -> float:
        """The RMS level (0 silence - 1 full scale) of the last audio frame from ``user_id``."""
        frame = self._audio.get(user_id)
        if frame is None:
            raise LookupError(f"{self.user_id} has decoded no audio from {user_id}")
        if frame.format.name != "s16":
            resampled = AudioResampler(format="s16", layout=frame.layout.name).resample(frame)
            frame = resampled[0]
        samples = array.array("h", bytes(frame.planes[0]))
        if not samples:
            return 0.0
        return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768.0

    async def stats(self, user_id: str) -> dict[str, int]:
        """What this side's receivers counted from ``user_id`` (aiortc's ``getStats``):
        ``packetsReceived`` and ``packetsLost``, audio and video together."""
        pc = self.kit._peer_connections().get(user_id)
        if pc is None:
            raise LookupError(f"{self.user_id} has no connection to {user_id}")
        received = lost = 0
        for stat in (await pc.getStats()).values():
            if getattr(stat, "type", "") == "inbound-rtp":
                received += int(stat.packetsReceived)
                lost += max(0, int(stat.packetsLost))
        return {"packetsReceived": received, "packetsLost": lost}

    async def quality(self) -> dict[str, dict[str, float]]:
        """Per peer: RTT (s) and bytes received/sent (see :meth:`TAvKit.quality`)."""
        return await self.kit.quality()

    # -- waiting --------------------------------------------------------------------------

    async def wait_for(
        self, condition: Callable[[], bool], what: str, *, within: float = TIMEOUT
    ) -> None:
        """Wait until ``condition()`` holds; fail naming ``what`` after ``within`` s."""
        await until(condition, f"{self.user_id}: {what}", within)

    async def wait_for_video_from(
        self, user_id: str, frames: int = 30, *, more: bool = False, within: float = TIMEOUT
    ) -> None:
        """Wait until ``frames`` video frames from ``user_id`` have been decoded since
        entering, or with ``more=True`` that many more from now (after a blackout, say)."""
        target = frames + (self.video_frames_from(user_id) if more else 0)
        await self.wait_for(
            lambda: self.video_frames_from(user_id) >= target,
            f"{target} video frames from {user_id} (has {self.video_frames_from(user_id)})",
            within=within,
        )

    async def wait_for_screen_from(
        self, user_id: str, frames: int = 10, *, within: float = TIMEOUT
    ) -> None:
        """Wait until ``user_id`` shares its screen and ``frames`` more of its frames
        have been decoded from now (the camera's go on counting apart)."""
        target = frames + self.screen_frames_from(user_id)
        await self.wait_for(
            lambda: self.sharing(user_id) and self.screen_frames_from(user_id) >= target,
            f"{target} screen frames from {user_id} (has {self.screen_frames_from(user_id)}, "
            f"sharing: {self.sharing(user_id)})",
            within=within,
        )

    async def wait_for_screen_stop(self, user_id: str, *, within: float = TIMEOUT) -> None:
        """Wait until ``user_id`` stops sharing its screen (``on_screen_share`` False)."""
        await self.wait_for(
            lambda: not self.sharing(user_id), f"{user_id} to stop sharing", within=within
        )

    async def wait_for_audio_from(
        self, user_id: str, frames: int = 25, *, more: bool = False, within: float = TIMEOUT
    ) -> None:
        """The same as :meth:`wait_for_video_from` for audio frames (20 ms each)."""
        target = frames + (self.audio_frames_from(user_id) if more else 0)
        await self.wait_for(
            lambda: self.audio_frames_from(user_id) >= target,
            f"{target} audio frames from {user_id} (has {self.audio_frames_from(user_id)})",
            within=within,
        )

    async def wait_for_member(self, user_id: str, *, within: float = TIMEOUT) -> None:
        """Wait until the server lists ``user_id`` among the other members."""
        await self.wait_for(lambda: user_id in self.members, f"{user_id} is in", within=within)

    async def wait_for_message(
        self,
        text: str | None = None,
        *,
        sender: str | None = None,
        within: float = TIMEOUT,
    ) -> ChatMessage:
        """Wait for an in-call message (with this ``text``, from this ``sender``); return it."""

        def found() -> list[ChatMessage]:
            return [
                m
                for m in self.messages
                if (text is None or m.text == text) and (sender is None or m.sender == sender)
            ]

        await self.wait_for(
            lambda: bool(found()), f"a message {text!r} from {sender}", within=within
        )
        return found()[0]

    async def wait_for_event(self, *event: Any, within: float = TIMEOUT) -> None:
        """Wait until the listener got this callback, e.g. ``("on_user_leave", "bob", "exit")``."""
        await self.wait_for(lambda: tuple(event) in self.events, f"event {event}", within=within)

    # -- acting ---------------------------------------------------------------------------

    async def send_message(self, text: str) -> ChatMessage:
        """Send an in-call text message; the stored message once the server has it."""
        return await self.kit.send_message(text)

    async def send_custom_message(self, data: Any) -> ChatMessage:
        """Send an in-call custom (app command) message."""
        return await self.kit.send_custom_message(data)

    def impair(
        self,
        *,
        loss: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        bandwidth: int | None = None,
        receive_bandwidth: int | None = None,
    ) -> Conditions:
        """Degrade this participant's own UDP traffic (see :class:`Network`): loss, delay
        and jitter both ways, ``bandwidth`` caps what it sends, ``receive_bandwidth``
        what it receives (bit/s)."""
        return self.network.impair(
            loss=loss,
            delay=delay,
            jitter=jitter,
            bandwidth=bandwidth,
            receive_bandwidth=receive_bandwidth,
        )

    async def blackout(self, seconds: float) -> None:
        """Take this participant's whole network away for ``seconds``, then give it back."""
        await self.network.blackout(seconds)

    async def change_address(self) -> int:
        """Move this participant to a new address (new UDP ports, TCP connections reset);
        return how many media sockets moved. See :meth:`Network.change_address`."""
        return await self.network.change_address()

    async def leave(self) -> None:
        """Hang up (the others see ``on_user_leave(..., "exit")``)."""
        await self.kit.hangup()

    async def aclose(self) -> None:
        """Hang up and release the kit, the network watcher and the relay."""
        try:
            await self.kit.aclose()
        finally:
            await self.network.aclose()
            await self.relay.aclose()

    def __repr__(self) -> str:
        return f"<Participant {self.user_id} in room {self.room_id}>"

    def _room_sharing(self, user_id: str) -> bool:
        shares = [e[2] for e in self.listener.events if e[:2] == ("on_screen_share", user_id)]
        return bool(shares and shares[-1])

    def _on_screen_frame(self, user_id: str, frame: Any) -> None:
        self._counts[(user_id, "screen")] += 1

    def _on_frame(self, user_id: str, frame: Any) -> None:
        if isinstance(frame, VideoFrame):
            self._video[user_id] = frame
            self._counts[(user_id, "video")] += 1
        elif isinstance(frame, AudioFrame):
            self._audio[user_id] = frame
            self._counts[(user_id, "audio")] += 1
