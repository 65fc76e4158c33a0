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
* **No ICE restart.** A path that died (the network dropped, the address changed)
  shows first as media that stopped: aiortc calls the connection ``failed`` only after
  its consent checks fail for about 30 s. So the side whose offer created the session
  watches for a **stall** (connected, but nothing decoded for ``stall_after``
  seconds, or its offer unanswered for :data:`UNANSWERED_AFTER`) and offers again on a
  new connection, which gathers the current addresses: our ICE restart. It does so
  only when ``may_restart()`` says the signaling path is up and the peer is not
  reconnecting (an offer sent into an outage is lost), and at growing intervals.
  ``stall_after`` is longer than the server takes to mark a silent member
  reconnecting, so an outage on the peer's side stops us before we tear down a path
  that would have come back by itself. :meth:`PeerLink.kick` says "the signaling path
  just came back" (our socket resumed, or the peer's): a link still stalled a moment
  later, or with an offer that may have been lost, is restarted at once.
* **No skipping of lost video packets.** aiortc's video jitter buffer waits for a
  missing packet until 512 newer ones arrive, so after an outage video stays frozen
  for many seconds while audio plays. Video frozen while audio flows makes the link
  reset that buffer and ask for a keyframe (:meth:`PeerLink._unfreeze_video`).
  When a connection fails, the side whose offer created it also
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

Screen share: a remote's shared screen is a video m-line of its own that its
descriptions mark ``a=content:slides`` (:func:`~tavkit.protocol.sdp.slides_mids`).
Such a section gets the sub-stream's direction (``recvonly`` with bit 128, else
``inactive``), our answers carry the same mark (the server checks them with bits
64/128), and its track's frames go to ``on_screen_frame`` and ``stats.screen_frames``,
never to ``on_frame``. The Python client shares no screen in a mesh (in an SFU room
it does: ``TAvKit.share_screen``, ``_sfu.py``).

All negotiation steps run in order on one task per peer, so a signal never races
another signal; every step has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
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
from aiortc.sdp import candidate_from_sdp
from av import VideoFrame
from av.frame import Frame

from tavkit.auth import Privilege
from tavkit.client._decode import decode_audio_inline
from tavkit.client._publish import Publisher
from tavkit.client.dtls import retransmit_early
from tavkit.client.sinks import PeerStats, received_frames
from tavkit.ice import gather_on
from tavkit.protocol import (
    CandidateData,
    DescriptionData,
    IceCandidate,
    JoinPhase,
    SessionDescription,
    SignalData,
)
from tavkit.protocol.sdp import allowed_direction, mark_slides, may_send, slides_mids

__all__ = [
    "KICK_GRACE",
    "MAX_REBUILDS",
    "STALL_AFTER",
    "UNANSWERED_AFTER",
    "PeerLink",
    "on_first_rtp",
]

MAX_REBUILDS: Final = 5
_STEP_TIMEOUT: Final = 20.0
_PEER_GRACE: Final = 15.0
STALL_AFTER: Final = 4.0
"""Seconds without a decoded frame on a connected link before its offerer restarts it:
longer than a video keyframe interval and any audio gap, well under aiortc's ~30 s."""
KICK_GRACE: Final = 2.0
"""After a kick, how long media has to come back by itself before the link restarts."""
UNANSWERED_AFTER: Final = 10.0
"""Seconds an offer may wait for its answer before it is made again (one lost in an outage)."""
CONNECT_WITHIN: Final = 15.0
"""Seconds an answered offer may take to connect (ICE and DTLS) before it is made again.

An answer can belong to an earlier offer of ours (two offers crossed a slow signaling
path, and the other side answered both): applied to the newer connection, its ICE
credentials match nothing, and aiortc would sit "connecting" for about 30 s. Well above
what a lossy relayed path needs (a few seconds with DTLS's 1 s retransmit timer)."""
_RESTART_SPACING: Final = (4.0, 30.0)
"""The first and the longest wait between two stall restarts of one link."""
_STALL_CHECK: Final = 1.0
_VIDEO_FREEZE: Final = 2.0
"""Seconds of no decoded video, while audio decodes, before the video receiver skips its
hole (see :func:`_skip_video_hole`)."""
_CLOSE_TIMEOUT: Final = 5.0
_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)
_FINGERPRINT = re.compile(r"^a=fingerprint:(.+)$", re.MULTILINE)

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
        may_restart: Callable[[], bool] = lambda: True,
        stall_after: float = STALL_AFTER,
        connect_within: float = CONNECT_WITHIN,
        mark: Callable[[JoinPhase], None] = lambda phase: None,
        on_screen_frame: Callable[[str, Frame], None] = lambda user_id, frame: None,
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
        self._on_screen_frame = on_screen_frame
        #: Mids of the remote's screen sections (``a=content:slides``) on the current pc.
        self._screen_mids: set[str] = set()
        self._on_give_up = on_give_up
        self._pc: RTCPeerConnection | None = None
        self._ignore_offer = False
        self._pending: list[RTCIceCandidate | None] = []
        self._steps: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._consumers: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()  # old connections being closed
        self._watchdog: asyncio.Task[None] | None = None
        self._failures = 0
        self._may_restart = may_restart
        self._offered_at: float | None = None
        self._answered_at: float | None = None
        self._restarted_at = -math.inf
        self._restart_spacing = _RESTART_SPACING[0]
        self._stall_after = stall_after
        self._connect_within = connect_within
        #: Notes this link's join phases (:mod:`tavkit.client.timeline`); only firsts count.
        self._mark = mark
        self._unfrozen_at = -math.inf
        self._kicked_at: float | None = None
        self._worker = asyncio.create_task(self._work(), name=f"tavkit-peer-{remote_id}")
        self._stall_watch = asyncio.create_task(
            self._watch_stalls(), name=f"tavkit-peer-stall-{remote_id}"
        )
        self._log = _PeerLog(logger, {"peer": remote_id})

    @property
    def pc(self) -> RTCPeerConnection | None:
        """The current peer connection (replaced on glare and on rebuild)."""
        return self._pc

    @property
    def awaiting_answer(self) -> bool:
        """Our last offer has had no answer yet (or one is about to be made)."""
        pc = self._pc
        return pc is None or pc.signalingState == "have-local-offer"

    def offer(self) -> None:
        """Queue a fresh offer on a new connection (we are the newcomer, or rebuilding)."""
        self._steps.put_nowait(("offer", None))

    def handle(self, data: SignalData) -> None:
        """Queue a signal received from the remote member."""
        self._steps.put_nowait(("signal", data))

    async def aclose(self) -> None:
        """Close the connection and stop every task this link owns."""
        for task in (self._worker, self._watchdog, self._stall_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._drop_pc()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

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
        self._offered_at = time.monotonic()
        self._answered_at = None
        pc = await self._new_pc()
        if self._host_addresses:
            gather_on(pc, self._host_addresses)
        await pc.setLocalDescription(await pc.createOffer())
        await self._send_description(pc)
        self._mark("offer")

    async def _on_description(self, description: SessionDescription) -> None:
        pc = self._pc
        if description.type in ("offer", "answer"):  # one received, or the answer to ours
            self._mark("offer" if description.type == "offer" else "answer")
        if description.type == "offer":
            collision = pc is not None and pc.signalingState != "stable"
            self._ignore_offer = collision and not self.polite
            if self._ignore_offer:
                self._log.info("ignoring a colliding offer (impolite side)")
                return
            if pc is None or collision or self._is_new_session(pc, description.sdp):
                pc = await self._new_pc()
            self._screen_mids |= slides_mids(description.sdp)  # before the track events
            await pc.setRemoteDescription(RTCSessionDescription(description.sdp, "offer"))
            self._limit_directions(pc)  # m-lines aiortc added for the offer ask to receive
            self.initiator = False  # this session is the remote's: it repairs it
            await self._flush_candidates(pc)
            if self._host_addresses:
                gather_on(pc, self._host_addresses)
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send_description(pc)
            self._mark("answer")
        elif description.type == "answer":
            if pc is None or pc.signalingState != "have-local-offer":
                self._log.info("ignoring an answer in state %s", pc and pc.signalingState)
                return
            await pc.setRemoteDescription(RTCSessionDescription(description.sdp, "answer"))
            self._answered_at = time.monotonic()
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
        sdp = mark_slides(local.sdp, self._screen_mids)  # the server checks them as screens
        await self._send(DescriptionData(SessionDescription(kind, sdp)))

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
            if publisher is not None and not may_send(kind, self._privileges):
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
        retransmit_early(pc)  # a lost DTLS flight is resent after 100 ms, not 1 s
        self._watch_first_rtp(pc)
        self._pc = pc
        self._pending = []
        self._ignore_offer = False
        self._screen_mids = set()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if self._is_screen(pc, track):
                self._consumers.add(asyncio.create_task(self._consume_screen(track)))
                return
            self._watch_first_rtp(pc)  # an answerer's receivers are made by the offer
            for transceiver in pc.getTransceivers():
                if transceiver.receiver.track is track:
                    decode_audio_inline(transceiver.receiver)  # no thread hop per 20 ms
            self._consumers.add(asyncio.create_task(self._consume(track)))
            self._on_track(self.remote_id, track)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc is self._pc:
                self._state_changed(pc.connectionState)

        @pc.on("iceconnectionstatechange")
        def on_ice_state() -> None:
            if pc is self._pc and pc.iceConnectionState in ("connected", "completed"):
                self._mark("ice-connected")

        return pc

    def _watch_first_rtp(self, pc: RTCPeerConnection) -> None:
        """Note ``first-rtp`` when any receiver of ``pc`` gets its first RTP packet."""
        for receiver in pc.getReceivers():
            on_first_rtp(receiver, lambda: self._mark("first-rtp"))

    def _limit_directions(self, pc: RTCPeerConnection) -> None:
        """Give every transceiver the widest direction the privileges allow, no wider."""
        for transceiver in pc.getTransceivers():
            if not transceiver.stopped:
                screen = transceiver.mid in self._screen_mids
                transceiver.direction = allowed_direction(
                    "sub" if screen else transceiver.kind,
                    self._privileges,
                    sending=transceiver.sender.track is not None and not screen,
                )

    def _is_screen(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> bool:
        """Whether ``track`` arrives on a section the remote marked as its screen."""
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is track:
                return transceiver.mid in self._screen_mids
        return False

    async def _drop_pc(self) -> None:
        """Let go of the current connection; it closes in the background.

        Closing a connection whose path died waits for aiortc's transports to give up
        (seconds); a restart must not wait for that before it offers or answers anew.
        """
        pc, self._pc = self._pc, None
        consumers, self._consumers = self._consumers, set()
        for task in consumers:
            task.cancel()
        for task in consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if pc is not None:
            closing = asyncio.create_task(self._close_pc(pc), name="tavkit-peer-close")
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _close_pc(self, pc: RTCPeerConnection) -> None:
        try:
            await asyncio.wait_for(pc.close(), _CLOSE_TIMEOUT)
        except TimeoutError:
            self._log.warning("closing the peer connection timed out")

    async def _consume(self, track: MediaStreamTrack) -> None:
        async for frame in received_frames(track):
            self.stats.count(frame)
            if isinstance(frame, VideoFrame):
                self._mark("first-frame")
            self._on_frame(self.remote_id, frame)

    async def _consume_screen(self, track: MediaStreamTrack) -> None:
        async for frame in received_frames(track):
            if isinstance(frame, VideoFrame):
                self.stats.count_screen(frame)
                self._on_screen_frame(self.remote_id, frame)

    def _state_changed(self, state: str) -> None:
        self._log.debug("connection %s", state)
        if state == "connected":  # ICE and DTLS both
            self._mark("dtls-connected")
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

    async def _unfreeze_video(self, now: float) -> None:
        """Video frozen while audio flows: the path is fine, the video receiver is stuck.

        aiortc's video jitter buffer (512 packets) holds every later frame behind a
        packet that never comes, such as one lost in an outage, until 512 newer ones
        pushed it out: seconds of frozen video at a low packet rate (measured ~14 s
        after a 10 s outage at 160x120). The receiver then skips the hole and asks for
        a keyframe, as libwebrtc does by itself.
        """
        stats, pc = self.stats, self._pc
        video, audio = stats.last_video_at, stats.last_frame_at
        if pc is None or video is None or audio is None:
            return
        if now - video < _VIDEO_FREEZE or now - audio > 1.0 or now - self._unfrozen_at < 2.0:
            return
        self._unfrozen_at = now
        for receiver in pc.getReceivers():
            if receiver.track is not None and receiver.track.kind == "video":
                self._log.info("video frozen while audio flows: skipping the missing packets")
                await _skip_video_hole(receiver)

    def kick(self) -> None:
        """The signaling path just came back: check this link again in :data:`KICK_GRACE`."""
        self._kicked_at = time.monotonic()

    def _stalled(self, now: float, kicked: bool) -> str | None:
        """Why the link needs a restart now (None: it is fine, or not ours to repair).

        ``kicked``: the signaling path came back :data:`KICK_GRACE` ago, so a pending
        offer may have been lost and a path silent since then is dead.
        """
        pc = self._pc
        if not self.initiator or pc is None:
            return None
        if pc.signalingState == "have-local-offer":
            offered = self._offered_at
            if offered is not None and (kicked or now - offered >= UNANSWERED_AFTER):
                return "offer unanswered"
            return None
        answered = self._answered_at
        if (
            pc.connectionState in ("new", "connecting")
            and answered is not None
            and now - answered >= self._connect_within
        ):
            return "answered but never connected"
        last = self.stats.last_frame_at
        stall_after = KICK_GRACE if kicked else self._stall_after
        if pc.connectionState == "connected" and last is not None and now - last >= stall_after:
            return "media stalled"
        return None

    async def _watch_stalls(self) -> None:
        """Restart a link whose path died, once the signaling path can carry the offer."""
        while True:
            await asyncio.sleep(_STALL_CHECK)
            now = time.monotonic()
            if self.stats.last_frame_at is not None and now - self.stats.last_frame_at < 1.0:
                self._restart_spacing = _RESTART_SPACING[0]  # healthy again
            await self._unfreeze_video(now)
            kicked = self._kicked_at is not None and now - self._kicked_at >= KICK_GRACE
            if kicked:
                self._kicked_at = None
            why = self._stalled(now, kicked)
            if kicked:
                self._log.debug("signaling came back: link %s", why or "fine")
            if why is None or (now - self._restarted_at < self._restart_spacing and not kicked):
                continue
            if not self._may_restart():
                continue
            self._restarted_at = now
            self._restart_spacing = min(self._restart_spacing * 2, _RESTART_SPACING[1])
            self.stats.rebuilds += 1
            self._log.info("%s: restarting on a new connection", why)
            self.offer()

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


async def _skip_video_hole(receiver: Any) -> None:
    """Give an aiortc video receiver a fresh jitter buffer and send its sender a PLI.

    The next packet starts the buffer again, so frames assemble from there; the PLI
    brings a keyframe to decode them from. Reaches into aiortc's private receiver state
    (checked: another aiortc leaves the receiver as it was).
    """
    buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    if buffer is None or not hasattr(buffer, "capacity"):
        return
    fresh = type(buffer)(capacity=buffer.capacity, is_video=True)
    setattr(receiver, "_RTCRtpReceiver__jitter_buffer", fresh)  # noqa: B010
    nacks = getattr(receiver, "_RTCRtpReceiver__nack_generator", None)
    if nacks is not None and isinstance(getattr(nacks, "missing", None), set):
        nacks.missing.clear()
    sources = getattr(receiver, "_RTCRtpReceiver__active_ssrc", {})
    send_pli = getattr(receiver, "_send_rtcp_pli", None)
    if send_pli is not None:
        for ssrc in list(sources):
            with contextlib.suppress(Exception):
                await send_pli(ssrc)


def on_first_rtp(receiver: Any, mark: Callable[[], None]) -> None:
    """Call ``mark`` on ``receiver``'s first RTP packet, then get out of its way.

    aiortc has no event for it: the DTLS transport hands each packet to
    ``receiver._handle_rtp_packet``, which is wrapped here, on the instance, until the
    first packet passes. Another aiortc without that method simply notes no
    ``first-rtp``.
    """
    original = getattr(receiver, "_handle_rtp_packet", None)
    if original is None or getattr(receiver, "_tavkit_first_rtp", False):
        return

    async def first(*args: Any, **kwargs: Any) -> None:
        setattr(receiver, "_handle_rtp_packet", original)  # noqa: B010
        mark()
        await original(*args, **kwargs)

    setattr(receiver, "_tavkit_first_rtp", True)  # noqa: B010
    setattr(receiver, "_handle_rtp_packet", first)  # noqa: B010


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
