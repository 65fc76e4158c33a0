"""The Python client's media in an SFU room: one connection up, one down.

In a room with ``mediaMode: "sfu"`` (``docs/protocol.md`` section 3b) there is no mesh:

* **publish**: one PeerConnection sends our tracks (encode-once VP8 and Opus) to the
  SFU, whoever is in the room; we offer, the server answers for Janus;
* **subscribe**: the server offers one PeerConnection carrying every other publisher
  (an audio and a video m-line each; ``streams`` says whose mid is whose); aiortc
  answers Janus's multistream offer as it is. A new ``subscription`` number replaces
  the connection (someone started or stopped publishing); frames from each member go
  to the same callbacks as a mesh link's, counted under that member.

A shared screen (:meth:`SfuMedia.share`) is one more video on the publish connection,
marked ``a=content:slides`` (it needs SEND_SUB); starting or stopping it makes the
publish connection anew (the others' subscriptions are made again, a short freeze of
our camera for them). A member's screen arrives on a video of the subscription whose
``streams`` entry says ``screen``: its frames go to ``on_screen_frame`` and
``PeerStats.screen_frames``, never to ``on_frame``, as in the mesh.

A ``publish`` with no ``data`` says "publish again": the room moved to another Janus
(the one it was on died), so we make the publish connection anew; the server sends a
new subscription as the others publish there.

aiortc gathers every candidate before ``setLocalDescription`` returns and Janus puts
its own in its SDP, so no candidate is trickled either way.

We answer the subscription without RTX (:func:`without_rtx`). aiortc routes an RTP
packet by its SSRC or, when the SSRC is unknown, by a payload type that only one
receiver has; it never registers the RTX SSRCs of ``a=ssrc-group:FID``. In Janus's
offer every video m-line has the same RTX payload type, so with two or more other
publishers each retransmission is dropped, a lost packet is never repaired, and that
video's jitter buffer waits behind the gap until 512 packets have piled up (half a
minute at 15 fps): frames stop while packets keep arriving. Without RTX, Janus
resends a NACKed packet on the stream's own SSRC, which aiortc routes.

That one socket also receives every other member's streams (a mesh spreads them over
one socket per link), so it gets a 4 MB kernel buffer
(:func:`~tavkit.ice.enlarge_receive_buffers`): with the default 200 KB, six members
in one busy process lost a quarter of their packets in the kernel. A packet lost all
the same (its retransmission too) holds a video back for half a second, not for 512
packets (:mod:`tavkit.client._jitter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, Literal

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from av import VideoFrame
from av.frame import Frame

from tavkit.client._decode import decode_audio_inline
from tavkit.client._jitter import skip_stuck_gaps
from tavkit.client._publish import Publisher
from tavkit.client.connections import MediaConnection
from tavkit.client.peer import _prefer_vp8
from tavkit.client.sinks import PeerStats, received_frames
from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.ice import enlarge_receive_buffers, gather_on
from tavkit.protocol import (
    DescriptionData,
    MediaLayer,
    MediaLayers,
    MediaSignalFrom,
    MediaSignalTo,
    SessionDescription,
    StreamLayer,
)
from tavkit.protocol.sdp import allowed_direction, mark_slides, may_send

__all__ = ["SfuMedia", "without_rtx"]

logger = logging.getLogger(__name__)

_STEP_TIMEOUT: Final = 20.0
_CLOSE_TIMEOUT: Final = 5.0
_RECEIVE_BUFFER: Final = 4 * 1024 * 1024
"""Bytes of kernel buffer asked for the subscription's socket (see the module docstring)."""


class SfuMedia:
    """Our publish and subscription connections with the SFU; owns their tasks."""

    def __init__(
        self,
        *,
        user_id: str,
        configuration: Callable[[], RTCConfiguration],
        host_addresses: Sequence[str] | None,
        publishers: Sequence[Publisher],
        privileges: int,
        send: Callable[[MediaSignalTo | MediaLayers], Awaitable[None]],
        on_frame: Callable[[str, Frame], None],
        on_track: Callable[[str, MediaStreamTrack], None],
        stats_of: Callable[[str], PeerStats],
        report: Callable[[TAvKitError], None],
        on_receiving: Callable[[str], None] | None = None,
        on_screen_frame: Callable[[str, Frame], None] = lambda user_id, frame: None,
    ) -> None:
        self.user_id = user_id
        self._configuration = configuration
        self._hosts = host_addresses
        self._privileges = privileges
        self._publishers = [p for p in publishers if may_send(p.kind, privileges)]
        self._send = send
        self._on_frame = on_frame
        self._on_track = on_track
        self._stats_of = stats_of
        self._report = report
        #: Called with a member's userId at the first frame of theirs we decode through
        #: the SFU, a picture if they send video (an ``auto`` room then closes its mesh
        #: link with them).
        self._on_receiving = on_receiving
        self._on_screen_frame = on_screen_frame
        #: Our shared screen's publisher while we share (:meth:`share`).
        self._screen: Publisher | None = None
        #: Publish connections replaced by a new one not answered yet (:meth:`_publish`).
        self._retiring: list[RTCPeerConnection] = []
        self._with_video: set[str] = set()
        self.publishing: RTCPeerConnection | None = None
        self.receiving: RTCPeerConnection | None = None
        #: Who is on which mid of the current subscription: mid -> userId.
        self.feeds: dict[str, str] = {}
        self._subscription = 0
        #: The layer we want of members' video (``choose_layers``), kept for each new
        #: subscription; a member not named gets what Janus starts with (high).
        self._layers: dict[str, MediaLayer] = {}
        self._steps: asyncio.Queue[MediaSignalFrom | Literal["layers"] | None] = asyncio.Queue()
        self._readers: set[asyncio.Task[None]] = set()
        self._worker = asyncio.create_task(self._work(), name=f"tavkit-sfu-{user_id}")

    def start(self) -> None:
        """Publish what we may send (nothing for an audience member)."""
        if self._publishers or self._screen is not None:
            self._steps.put_nowait(None)

    def share(self, screen: Publisher | None) -> None:
        """Publish ``screen`` beside our camera, or (None) stop: the publish connection is
        made again with it or without it. The caller checks SEND_SUB first."""
        self._screen = screen
        self._steps.put_nowait(None)

    def handle(self, msg: MediaSignalFrom) -> None:
        """Take one ``media-signal`` from the server (in order, on our task)."""
        self._steps.put_nowait(msg)

    def receives_from(self, user_id: str) -> bool:
        """Whether the current subscription carries ``user_id``'s media."""
        return user_id in self.feeds.values()

    def choose_layers(self, layers: Mapping[str, MediaLayer]) -> None:
        """Ask for a simulcast layer (or a pause) of members' video: userId -> layer.

        Kept and sent again for every new subscription (a member's join or leave makes
        one, whose streams Janus starts at high).
        """
        self._layers.update(layers)
        self._steps.put_nowait("layers")

    def connections(self) -> list[MediaConnection]:
        """Our publish connection and the current subscription, those that exist."""
        found = []
        if self.publishing is not None:
            found.append(MediaConnection("publish", self.publishing))
        if self.receiving is not None:
            members = tuple(sorted(set(self.feeds.values())))
            found.append(
                MediaConnection(
                    "subscription", self.receiving, members, self._subscription, dict(self.feeds)
                )
            )
        return found

    async def aclose(self) -> None:
        """Close both connections and stop every task."""
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        await self._drop_receiving()
        await self._retire()
        if self.publishing is not None:
            pc, self.publishing = self.publishing, None
            await _close(pc)

    async def outbound(self) -> dict[str, int]:
        """What the publish connection sent, per kind: RTP packets (aiortc's ``getStats``)."""
        sent: dict[str, int] = {}
        if self.publishing is None:
            return sent
        for stat in (await self.publishing.getStats()).values():
            if getattr(stat, "type", "") == "outbound-rtp":
                sent[stat.kind] = sent.get(stat.kind, 0) + int(stat.packetsSent)
        return sent

    # -- the steps, one at a time -----------------------------------------------------

    async def _work(self) -> None:
        while True:
            msg = await self._steps.get()
            try:
                async with asyncio.timeout(_STEP_TIMEOUT):
                    if msg is None:
                        await self._publish()
                    elif isinstance(msg, str):  # "layers"
                        await self._ask_layers()
                    elif msg.pc == "publish":
                        await self._published(msg)
                    else:
                        await self._subscribe(msg)
            except (TimeoutError, ValueError, TAvKitError) as exc:
                logger.warning("%s: SFU media step failed: %s", self.user_id, exc)
                self._report(ServerError(ServerCode.INTERNAL, f"SFU media: {exc}"))

    async def _publish(self) -> None:
        # The connection we replace stays open until the new one is answered: closed
        # first, its DTLS alert could reach Janus before our new offer reached the
        # server, which would then hear of a broken publication and ask for another.
        if self.publishing is not None:
            self._retiring.append(self.publishing)
            self.publishing = None
        publishers = [*self._publishers, *([self._screen] if self._screen else [])]
        if not publishers:
            await self._retire()  # an audience member that stopped sharing: nothing to publish
            return
        pc = self.publishing = RTCPeerConnection(self._configuration())
        screen = None
        for publisher in publishers:
            transceiver = pc.addTransceiver(publisher.subscribe(), direction="sendonly")
            if publisher is self._screen:
                screen = transceiver
            if publisher.encoded and publisher.kind == "video":
                # Janus asks for a keyframe (PLI/FIR) for each new subscriber: the shared
                # encoder makes it, as in the mesh (peer.py).
                sender = transceiver.sender
                setattr(sender, "_send_keyframe", publisher.request_keyframe)  # noqa: B010
        if any(p.encoded and p.kind == "video" for p in publishers):
            _prefer_vp8(pc)
        if self._hosts is not None:
            gather_on(pc, self._hosts)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        if screen is not None and screen.mid is not None:
            sdp = mark_slides(sdp, {screen.mid})  # the server checks it against SEND_SUB
        offer = DescriptionData(SessionDescription("offer", sdp))
        await self._send(MediaSignalTo("publish", offer))

    async def _published(self, msg: MediaSignalFrom) -> None:
        if msg.data is None:  # the room moved to another Janus: our publication is gone
            if self._publishers or self._screen is not None:
                await self._publish()
            return
        pc = self.publishing
        if pc is None or not isinstance(msg.data, DescriptionData):
            return  # candidates: Janus's are in its answer
        description = msg.data.description
        await pc.setRemoteDescription(RTCSessionDescription(description.sdp, description.type))
        await self._retire()  # the server unpublished it before this answer

    async def _retire(self) -> None:
        """Close the publish connections we replaced."""
        retiring, self._retiring = self._retiring, []
        for pc in retiring:
            await _close(pc)

    async def _subscribe(self, msg: MediaSignalFrom) -> None:
        number = msg.subscription or 0
        if number <= self._subscription:
            return
        self._subscription = number
        await self._drop_receiving()
        if not isinstance(msg.data, DescriptionData):
            return  # nobody else publishes
        feeds = {s.mid: s.user_id for s in msg.streams}
        screens = {s.mid for s in msg.streams if s.screen}
        self._with_video = {s.user_id for s in msg.streams if s.kind == "video" and not s.screen}
        pc = self.receiving = RTCPeerConnection(self._configuration())
        self.feeds = feeds

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            transceiver = next((t for t in pc.getTransceivers() if t.receiver.track is track), None)
            user_id = feeds.get(transceiver.mid or "") if transceiver is not None else None
            if transceiver is None or user_id is None:
                return
            if track.kind == "video":  # a lost packet costs half a second, not 512 packets
                skip_stuck_gaps(transceiver.receiver)
            else:  # eight members' audio, 400 frames a second, without a thread hop each
                decode_audio_inline(transceiver.receiver)
            if transceiver.mid in screens:
                reader = asyncio.create_task(self._consume_screen(user_id, track))
            else:
                self._on_track(user_id, track)
                reader = asyncio.create_task(self._consume(user_id, track))
            self._readers.add(reader)
            reader.add_done_callback(self._readers.discard)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            connected = pc.connectionState == "connected"
            for user_id in set(feeds.values()):
                self._stats_of(user_id).connected = connected

        description = msg.data.description
        offer = RTCSessionDescription(without_rtx(description.sdp), description.type)
        await pc.setRemoteDescription(offer)
        for transceiver in pc.getTransceivers():  # "inactive" for a kind we may not receive
            kind = "sub" if transceiver.mid in screens else transceiver.kind
            transceiver.direction = allowed_direction(kind, self._privileges, sending=False)
        if self._hosts is not None:
            gather_on(pc, self._hosts)
        await pc.setLocalDescription(await pc.createAnswer())
        enlarge_receive_buffers(pc, _RECEIVE_BUFFER)
        answer = DescriptionData(SessionDescription("answer", pc.localDescription.sdp))
        await self._send(MediaSignalTo("subscribe", answer, subscription=number))
        await self._ask_layers()

    async def _ask_layers(self) -> None:
        """Send the chosen layers of the current subscription's video (after its answer)."""
        pc = self.receiving
        if pc is None or not self._layers:
            return
        choices = tuple(
            StreamLayer(t.mid, self._layers[self.feeds[t.mid]])
            for t in pc.getTransceivers()
            if t.kind == "video" and t.mid is not None and self.feeds.get(t.mid) in self._layers
        )
        if choices:
            await self._send(MediaLayers(self._subscription, choices))

    async def _consume(self, user_id: str, track: MediaStreamTrack) -> None:
        first = True
        async for frame in received_frames(track):
            if (
                first
                and self._on_receiving is not None
                and (isinstance(frame, VideoFrame) or user_id not in self._with_video)
            ):
                self._on_receiving(user_id)
                first = False
            self._stats_of(user_id).count(frame)  # looked up each time: a switch moves it
            self._on_frame(user_id, frame)

    async def _consume_screen(self, user_id: str, track: MediaStreamTrack) -> None:
        async for frame in received_frames(track):
            if isinstance(frame, VideoFrame):
                self._stats_of(user_id).count_screen(frame)
                self._on_screen_frame(user_id, frame)

    async def _drop_receiving(self) -> None:
        readers, self._readers = list(self._readers), set()
        for task in readers:
            task.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pc, self.receiving = self.receiving, None
        self.feeds = {}
        if pc is not None:
            await _close(pc)


def without_rtx(sdp: str) -> str:
    """``sdp`` with no RTX: its payload types, their attributes and the FID SSRCs removed.

    For a multistream offer aiortc cannot route RTX (see the module docstring); an
    answer without it makes Janus retransmit on the media SSRC. Line ends are kept.
    """
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(eol)
    rtx = {
        line[len("a=rtpmap:") :].split()[0]
        for line in lines
        if line.startswith("a=rtpmap:") and " rtx/" in line.lower()
    }
    rtx_ssrcs = {
        line.split()[2]
        for line in lines
        if line.startswith("a=ssrc-group:FID ") and len(line.split()) >= 3
    }
    out: list[str] = []
    for line in lines:
        if line.startswith("m="):
            fields = line.split(" ")
            out.append(" ".join(fields[:3] + [f for f in fields[3:] if f not in rtx]))
        elif not _about_rtx(line, rtx, rtx_ssrcs):
            out.append(line)
    return eol.join(out)


def _about_rtx(line: str, payload_types: set[str], ssrcs: set[str]) -> bool:
    """Whether an attribute line describes an RTX payload type, FID group or RTX SSRC."""
    if line.startswith("a=ssrc-group:FID "):
        return True
    name, _, value = line.partition(":")
    first = value.split(" ")[0]
    if name in ("a=rtpmap", "a=fmtp", "a=rtcp-fb"):
        return first in payload_types
    return name == "a=ssrc" and first in ssrcs


async def _close(pc: RTCPeerConnection) -> None:
    try:
        await asyncio.wait_for(pc.close(), _CLOSE_TIMEOUT)
    except TimeoutError:
        logger.warning("closing an SFU connection timed out")
