"""One peer connection of the mesh, negotiated the way ``<tavkit-call>`` negotiates.

``docs/protocol.md`` section 3: the newcomer (who found the other in ``welcome``)
creates the connection, adds its tracks and offers; the member already in the room
creates its connection on the first ``signal``, adds its tracks *before* applying
the offer, and answers. Glare follows "perfect negotiation": the polite side is the
one whose userId sorts lower, the impolite side ignores a colliding offer.

What aiortc cannot do, and what we do instead:

* **No rollback.** A polite browser rolls its own offer back on a collision; aiortc
  has no ``rollback`` description. The polite Python side therefore drops the
  colliding connection and answers the offer on a *fresh* one (its own offer was
  never answered - the impolite side ignores it - so nothing is lost).
* **No trickle.** aiortc gathers every candidate inside ``setLocalDescription`` and
  puts them in the SDP; remote candidates are trickled to us and queued until the
  remote description is set.
* **No ICE restart.** When a connection fails, the side whose offer created it
  repairs it: a Python offerer closes it and offers again on a new connection (up to
  ``MAX_REBUILDS`` times, with backoff); a browser offerer restarts ICE. A Python
  answerer that receives an offer with new ICE credentials answers it on a new
  connection, and Chrome accepts the new DTLS fingerprint that comes with it (both
  directions are tested against Chromium). The answerer never re-offers by itself:
  a fresh aiortc offer on a session the *browser* offered is refused by Chrome (RTP
  header-extension ids are reassigned), and a competing offer would only collide
  with the offerer's own repair. If the offerer has not repaired the connection
  within ``_PEER_GRACE`` seconds the link is reported lost (trtc -1307).

Privileges: every transceiver gets the widest direction the member's privileges
allow (:func:`~tavkit.protocol.sdp.allowed_direction`): ours when the connection is
made (sending only with a track of that kind), and those aiortc creates for a
remote offer's extra m-lines before each answer. So an audience member answers even
a ``sendrecv`` offer with ``recvonly`` (``inactive`` towards the recorder), and a
member without a receive bit never asks for that kind.

All negotiation steps run in order on one task per peer, so a signal never races
another signal; every step has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp
from av.frame import Frame

from tavkit.auth import Privilege
from tavkit.client._publish import Publisher
from tavkit.client.sinks import PeerStats
from tavkit.ice import gather_on
from tavkit.protocol import (
    CandidateData,
    DescriptionData,
    IceCandidate,
    SessionDescription,
    SignalData,
)
from tavkit.protocol.sdp import allowed_direction

__all__ = ["MAX_REBUILDS", "PeerLink"]

MAX_REBUILDS: Final = 5
_STEP_TIMEOUT: Final = 20.0
_PEER_GRACE: Final = 15.0
_CLOSE_TIMEOUT: Final = 5.0
_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)
_FINGERPRINT = re.compile(r"^a=fingerprint:(.+)$", re.MULTILINE)
_SEND_BIT: Final = {"audio": Privilege.SEND_AUDIO, "video": Privilege.SEND_VIDEO}

logger = logging.getLogger(__name__)

SendSignal = Callable[[SignalData], Awaitable[None]]


class PeerLink:
    """Our side of the connection with ``remote_id``; owns its pc, tasks and counters."""

    def __init__(
        self,
        *,
        local_id: str,
        remote_id: str,
        initiator: bool,
        configuration: Callable[[], RTCConfiguration],
        host_addresses: Sequence[str] | None,
        publishers: Sequence[Publisher],
        send: SendSignal,
        on_frame: Callable[[str, Frame], None],
        on_track: Callable[[str, MediaStreamTrack], None],
        on_give_up: Callable[[PeerLink], None],
        stats: PeerStats | None = None,
        privileges: int = Privilege.ALL,
    ) -> None:
        self.remote_id = remote_id
        self.polite = local_id < remote_id
        self.initiator = initiator
        self.stats = stats if stats is not None else PeerStats(remote_id)
        self._configuration = configuration
        self._host_addresses = host_addresses
        self._publishers = publishers
        self._privileges = int(privileges)
        self._send = send
        self._on_frame = on_frame
        self._on_track = on_track
        self._on_give_up = on_give_up
        self._pc: RTCPeerConnection | None = None
        self._ignore_offer = False
        self._pending: list[RTCIceCandidate | None] = []
        self._steps: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._consumers: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._failures = 0
        self._worker = asyncio.create_task(self._work(), name=f"tavkit-peer-{remote_id}")
        self._log = _PeerLog(logger, {"peer": remote_id})

    @property
    def pc(self) -> RTCPeerConnection | None:
        """The current peer connection (replaced on glare and on rebuild)."""
        return self._pc

    def offer(self) -> None:
        """Queue a fresh offer on a new connection (we are the newcomer, or rebuilding)."""
        self._steps.put_nowait(("offer", None))

    def handle(self, data: SignalData) -> None:
        """Queue a signal received from the remote member."""
        self._steps.put_nowait(("signal", data))

    async def aclose(self) -> None:
        """Close the connection and stop every task this link owns."""
        for task in (self._worker, self._watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._drop_pc()

    async def quality(self) -> dict[str, float]:
        """Round-trip time (s) and bytes received and sent so far, from aiortc's stats."""
        pc = self._pc
        result = {"rtt": 0.0, "bytesReceived": 0.0, "bytesSent": 0.0}
        if pc is None:
            return result
        with contextlib.suppress(Exception):
            report = await asyncio.wait_for(pc.getStats(), 2.0)
            for stat in report.values():
                if stat.type == "remote-inbound-rtp" and getattr(stat, "roundTripTime", None):
                    result["rtt"] = max(result["rtt"], float(stat.roundTripTime))
                elif stat.type == "transport":  # aiortc counts bytes per transport only
                    result["bytesReceived"] += float(getattr(stat, "bytesReceived", 0) or 0)
                    result["bytesSent"] += float(getattr(stat, "bytesSent", 0) or 0)
        return result

    # -- the negotiation task ---------------------------------------------------------

    async def _work(self) -> None:
        while True:
            kind, value = await self._steps.get()
            try:
                async with asyncio.timeout(_STEP_TIMEOUT):
                    if kind == "offer":
                        await self._make_offer()
                    elif isinstance(value, DescriptionData):
                        await self._on_description(value.description)
                    elif isinstance(value, CandidateData):
                        await self._on_candidate(value.candidate)
            except TimeoutError:
                self._log.warning("negotiation step %s timed out", kind)
            except Exception as exc:  # a bad SDP from the peer must not end the call
                self._log.warning("negotiation step %s failed: %r", kind, exc)

    async def _make_offer(self) -> None:
        pc = await self._new_pc()
        if self._host_addresses:
            gather_on(pc, self._host_addresses)
        await pc.setLocalDescription(await pc.createOffer())
        await self._send_description(pc)

    async def _on_description(self, description: SessionDescription) -> None:
        pc = self._pc
        if description.type == "offer":
            collision = pc is not None and pc.signalingState != "stable"
            self._ignore_offer = collision and not self.polite
            if self._ignore_offer:
                self._log.info("ignoring a colliding offer (impolite side)")
                return
            if pc is None or collision or self._is_new_session(pc, description.sdp):
                pc = await self._new_pc()
            await pc.setRemoteDescription(RTCSessionDescription(description.sdp, "offer"))
            self._limit_directions(pc)  # m-lines aiortc added for the offer ask to receive
            self.initiator = False  # this session is the remote's: it repairs it
            await self._flush_candidates(pc)
            if self._host_addresses:
                gather_on(pc, self._host_addresses)
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send_description(pc)
        elif description.type == "answer":
            if pc is None or pc.signalingState != "have-local-offer":
                self._log.info("ignoring an answer in state %s", pc and pc.signalingState)
                return
            await pc.setRemoteDescription(RTCSessionDescription(description.sdp, "answer"))
            self.initiator = True  # our offer made this session: we repair it
            await self._flush_candidates(pc)

    async def _on_candidate(self, candidate: IceCandidate | None) -> None:
        parsed = _parse_candidate(candidate)
        end_of_candidates = candidate is None or not candidate.candidate
        if parsed is None and not end_of_candidates:
            return  # a candidate aioice cannot use (TCP, or malformed)
        pc = self._pc
        if pc is None or pc.remoteDescription is None:
            self._pending.append(parsed)
            return
        try:
            await pc.addIceCandidate(parsed)
        except Exception as exc:
            if not self._ignore_offer:
                self._log.info("could not add a candidate: %r", exc)

    async def _flush_candidates(self, pc: RTCPeerConnection) -> None:
        pending, self._pending = self._pending, []
        for candidate in pending:
            with contextlib.suppress(Exception):
                await pc.addIceCandidate(candidate)

    async def _send_description(self, pc: RTCPeerConnection) -> None:
        local = pc.localDescription
        kind: Literal["offer", "answer"] = "offer" if local.type == "offer" else "answer"
        await self._send(DescriptionData(SessionDescription(kind, local.sdp)))

    @staticmethod
    def _is_new_session(pc: RTCPeerConnection, sdp: str) -> bool:
        """An offer from a new remote connection (or an ICE restart) needs a new pc."""
        if pc.connectionState in ("failed", "closed"):
            return True
        if pc.remoteDescription is None:
            return False
        current = pc.remoteDescription.sdp
        return _first(_UFRAG, sdp) != _first(_UFRAG, current) or _first(
            _FINGERPRINT, sdp
        ) != _first(_FINGERPRINT, current)

    # -- the peer connection ------------------------------------------------------------

    async def _new_pc(self) -> RTCPeerConnection:
        await self._drop_pc()
        pc = RTCPeerConnection(self._configuration())
        publishers = {publisher.kind: publisher for publisher in self._publishers}
        encoded_video = False
        # One audio and one video m-line, in that order, each as wide as the privileges
        # allow (even "inactive"): the SDP's shape does not depend on the privileges.
        for kind in ("audio", "video"):
            publisher = publishers.get(kind)
            if publisher is not None and not self._privileges & _SEND_BIT[kind]:
                publisher = None  # privileges narrowed since it started: send nothing
            direction = allowed_direction(kind, self._privileges, sending=publisher is not None)
            if publisher is None:
                pc.addTransceiver(kind, direction=direction)
                continue
            sender = pc.addTransceiver(publisher.subscribe(), direction=direction).sender
            if publisher.encoded and kind == "video":
                encoded_video = True
                # On a PLI/FIR aiortc's sender forces a keyframe from its own encoder,
                # which encode-once does not use: route the request to the shared one.
                setattr(sender, "_send_keyframe", publisher.request_keyframe)  # noqa: B010
        if encoded_video:
            _prefer_vp8(pc)
        self._pc = pc
        self._pending = []
        self._ignore_offer = False

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._consumers.add(asyncio.create_task(self._consume(track)))
            self._on_track(self.remote_id, track)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc is self._pc:
                self._state_changed(pc.connectionState)

        return pc

    def _limit_directions(self, pc: RTCPeerConnection) -> None:
        """Give every transceiver the widest direction the privileges allow, no wider."""
        for transceiver in pc.getTransceivers():
            if not transceiver.stopped:
                transceiver.direction = allowed_direction(
                    transceiver.kind,
                    self._privileges,
                    sending=transceiver.sender.track is not None,
                )

    async def _drop_pc(self) -> None:
        pc, self._pc = self._pc, None
        consumers, self._consumers = self._consumers, set()
        for task in consumers:
            task.cancel()
        for task in consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if pc is not None:
            try:
                await asyncio.wait_for(pc.close(), _CLOSE_TIMEOUT)
            except TimeoutError:
                self._log.warning("closing the peer connection timed out")

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, Frame):
                continue  # remote tracks are decoded; packets never arrive here
            self.stats.count(frame)
            self._on_frame(self.remote_id, frame)

    def _state_changed(self, state: str) -> None:
        self._log.debug("connection %s", state)
        if state == "connected":
            self.stats.connected = True
            self._failures = 0
        elif state == "failed":
            self.stats.connected = False
            self._failures += 1
            if self._failures > MAX_REBUILDS:
                self._on_give_up(self)
                return
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = asyncio.create_task(self._recover(self._failures))

    async def _recover(self, attempt: int) -> None:
        """Re-offer on a new pc if the failed session was ours; else wait for the offerer."""
        failed = self._pc
        if not self.initiator:
            await asyncio.sleep(_PEER_GRACE)
            if self._pc is failed and failed is not None and failed.connectionState == "failed":
                self._on_give_up(self)
            return
        await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        pc = self._pc
        if pc is None or pc.connectionState in ("failed", "closed"):
            self.stats.rebuilds += 1
            self._log.info("rebuilding the failed peer connection (attempt %d)", attempt)
            self.offer()


class _PeerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every message with the remote userId, as aiortc prefixes its objects."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['peer'] if self.extra else '?'}] {msg}", kwargs


def _prefer_vp8(pc: RTCPeerConnection) -> None:
    """Encode-once video is VP8, so every video transceiver must negotiate VP8."""
    codecs = [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType.lower() in ("video/vp8", "video/rtx")
    ]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(codecs)


def _parse_candidate(candidate: IceCandidate | None) -> RTCIceCandidate | None:
    if candidate is None or not candidate.candidate:
        return None
    text = candidate.candidate.removeprefix("a=").removeprefix("candidate:")
    try:
        parsed = candidate_from_sdp(text)
    except (AssertionError, ValueError, IndexError):
        return None
    if parsed.protocol.lower() != "udp":
        return None
    parsed.sdpMid = candidate.sdp_mid
    parsed.sdpMLineIndex = candidate.sdp_mline_index
    if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
        parsed.sdpMLineIndex = 0
    return parsed


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1).strip() if match else None
