"""Recording an SFU room from Janus: tavkit subscribes to each publisher, as no member.

In ``--media-mode sfu`` every member already sends its media once, to Janus, so the
recorder asks Janus for it rather than linking to each member as the mesh's hidden
participant does (:mod:`tavkit.server.recording.recorder`). The files, their rows, the
quotas and the recordings API are that recorder's: :class:`SfuSessionRecorder` replaces
only how a member's media arrives.

* **Its place in the room.** Through :meth:`SfuBridge.observe
  <tavkit.server.sfu.bridge.SfuBridge.observe>` it attaches a VideoRoom handle of its
  own to the session's room and joins it as a publisher that never publishes, under
  the session's recorder id (``__rec.<uuid hex>``, which no userId can be). Janus gives
  it the ``private_id`` every subscription in the room needs (``require_pvtid``) and
  tells it who publishes (``joined``, ``publishers``) and who stops (``unpublished``,
  ``leaving``). Janus lists it among the room's participants, but tavkit never makes it
  a member: no member row, no ``member-joined``, no ``media-signal`` names it, and a
  participant that does not publish is never announced to the members' handles.
* **A stint per publishing.** When a member publishes, the recorder opens the member's
  next file (``<userId>-<n>.mkv``) and subscribes to that one feed on a connection of
  its own (aiortc, receive-only), whose receivers go to the file's
  :class:`~tavkit.recording.ParticipantRecorder`. One connection per feed, unlike a
  member's single subscription to everyone: a member joining or leaving never
  interrupts the others' files. Unpublishing, leaving (Janus, or ``member-left`` on the
  bus) ends the stint; ``room-closed`` ends them all.
* **Janus gone.** The recorder's handle is detached: every file is finalised
  (``stop_reason`` ``error``). The bridge may move the members to another Janus
  (several Janus); the recording does not follow them there yet.

ICE: the recorder gathers where aioice chooses (every non-loopback address): Janus
never pairs with a loopback candidate, so the mesh recorder's loopback-only gathering
for a loopback server would never connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from tavkit.errors import TAvKitError
from tavkit.protocol import RoomId
from tavkit.server.bus import Subscription
from tavkit.server.events import MemberJoinedEvent, MemberLeftEvent, RoomClosedEvent
from tavkit.server.recording.recorder import SessionRecorder, _Stint
from tavkit.server.sfu.janus import JanusError, VideoRoomHandle
from tavkit.server.sfu.videoroom import (
    SCREEN,
    Detached,
    Leaving,
    Publisher,
    Publishers,
    Unpublished,
)

if TYPE_CHECKING:
    from tavkit.server.recording.service import RecordingService
    from tavkit.server.sfu.bridge import JanusRoom, SfuBridge

__all__ = ["SfuSessionRecorder"]

logger = logging.getLogger(__name__)

_STEP_TIMEOUT: Final = 20.0
"""How long subscribing to one feed may take (Janus's offer, our answer, Janus's ack)."""
_CLOSE_TIMEOUT: Final = 5.0


@dataclass(eq=False)
class _Feed:
    """The recorder's subscription to one member's feed, for one stint."""

    stint: _Stint
    mids: list[str] | None = None
    """The feed's streams to record (its screen left out, as in the mesh); None: all."""
    handle: VideoRoomHandle | None = None
    pc: RTCPeerConnection | None = None
    task: asyncio.Task[None] | None = None


class SfuSessionRecorder(SessionRecorder):
    """The recorder of one SFU session: a subscription per publishing member, from Janus."""

    def __init__(
        self,
        service: RecordingService,
        sdk_app_id: int,
        room: RoomId,
        room_uuid: uuid.UUID,
        bridge: SfuBridge,
    ) -> None:
        super().__init__(service, sdk_app_id, room, room_uuid)
        self._bridge = bridge
        self._janus_room: JanusRoom | None = None
        self._presence: VideoRoomHandle | None = None
        self._private_id: int | None = None
        self._feeds: dict[str, _Feed] = {}  # userId -> the subscription of its stint

    async def stop(self, reason: str = "stopped") -> None:
        """Stop, finalise every file, then leave the Janus room."""
        await super().stop(reason)
        await self._leave()

    # -- the session's and Janus's events ------------------------------------------------

    async def _run(self) -> None:
        reason = "session-closed"
        tasks: list[asyncio.Task[str]] = []
        try:
            async with self._service.bus.subscribe(self._channel) as events:
                # Subscribed before the snapshot, so no member falls between the two.
                for member, connection_id in await self._service.rooms.connections(self.room_uuid):
                    self._members[member.user_id] = connection_id
                if not self._members and not await self._still_open():
                    return  # it closed before we subscribed
                presence = await self._join()
                self._ready.set()
                self._log(logging.INFO, "recording from the SFU: %d feed(s)", len(self._stints))
                tasks = [
                    asyncio.create_task(self._follow_bus(events), name=f"{self._tag} bus"),
                    asyncio.create_task(self._follow_janus(presence), name=f"{self._tag} janus"),
                ]
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                reason = next(iter(done)).result()
        except TAvKitError as exc:
            self._log(logging.WARNING, "stopped: %s", exc)
            reason = "error"
        finally:
            for task in tasks:
                task.cancel()
            self._ready.set()
            if self._session_limit is not None:
                self._session_limit.cancel()
        self._log(logging.INFO, "stopped (%s)", reason)
        await self._finish_all(reason)
        await self._leave()

    async def _join(self) -> VideoRoomHandle:
        """Join the session's Janus room (not publishing) and record who publishes there."""
        self._janus_room = await self._bridge.observe(self.room_uuid)
        handle = self._presence = await self._janus_room.janus.attach_videoroom()
        joined = await handle.join_publisher(self._janus_room.room, id=self.user_id)
        self._private_id = joined.private_id
        for publisher in joined.publishers:
            self._published(publisher)
        return handle

    async def _follow_bus(self, events: Subscription) -> str:
        async for event in events:
            if isinstance(event, MemberJoinedEvent):
                self._members[event.member.user_id] = event.connection_id
            elif isinstance(event, MemberLeftEvent):
                if self._members.get(event.user_id) == event.connection_id:
                    del self._members[event.user_id]
                stint = self._stints.get(event.user_id)
                if stint is not None and stint.connection_id in ("", event.connection_id):
                    self._end(event.user_id)
            elif isinstance(event, RoomClosedEvent):
                return "session-closed"
        return "error"  # the bus's stream ended without the room closing

    async def _follow_janus(self, presence: VideoRoomHandle) -> str:
        while True:
            try:
                event = await presence.next_event(within=3600.0)
            except TimeoutError:
                continue
            if isinstance(event, Publishers):
                for publisher in event.publishers:
                    self._published(publisher)
            elif isinstance(event, Unpublished | Leaving):
                self._end(event.id)
            elif isinstance(event, Detached):
                self._log(logging.WARNING, "the SFU went away (%s)", event.reason)
                return "error"

    # -- stints ----------------------------------------------------------------------------

    def _published(self, publisher: Publisher) -> None:
        """A member publishes: record it, unless its stint is already under way."""
        user_id = publisher.id
        if user_id == self.user_id or user_id in self._stints:
            return
        if not any(s.type in ("audio", "video") for s in publisher.streams):
            return
        stint = _Stint(user_id, self._members.get(user_id, ""), self._new_file(user_id))
        self._stints[user_id] = stint
        self._arm(stint)
        camera = [s.mid for s in publisher.streams if s.description != SCREEN]
        mids = camera if len(camera) < len(publisher.streams) else None
        feed = self._feeds[user_id] = _Feed(stint, mids)
        feed.task = asyncio.create_task(self._subscribe(feed), name=f"{self._tag} {user_id}")
        self._log(logging.INFO, "recording %s (file %d)", user_id, stint.file.n)

    def _end(self, user_id: str) -> None:
        stint = self._stints.pop(user_id, None)
        if stint is not None:
            self._spawn_finish(stint, "left")

    async def _subscribe(self, feed: _Feed) -> None:
        """Subscribe to the stint's member's feed and hand its receivers to the file."""
        user_id = feed.stint.user_id
        room = self._janus_room
        if room is None:
            return
        try:
            async with asyncio.timeout(_STEP_TIMEOUT):
                feed.handle = await room.janus.attach_videoroom()
                offer = await feed.handle.subscribe(
                    room.room,
                    [user_id],
                    private_id=self._private_id,
                    only=None if feed.mids is None else {user_id: feed.mids},
                )
                pc = feed.pc = RTCPeerConnection(self._configuration())

                @pc.on("track")
                def on_track(track: MediaStreamTrack) -> None:
                    if self._feeds.get(user_id) is feed:
                        self._on_track(feed.stint, track)

                await pc.setRemoteDescription(RTCSessionDescription(offer.offer, "offer"))
                for transceiver in pc.getTransceivers():
                    transceiver.direction = "recvonly"
                await pc.setLocalDescription(await pc.createAnswer())
                await feed.handle.start(pc.localDescription.sdp)
        except (TimeoutError, TAvKitError) as exc:
            # The member stopped publishing meanwhile (Janus 428), or Janus is unwell:
            # the stint ends with no file (nothing arrived), or with what did.
            self._log(logging.WARNING, "cannot subscribe to %s: %s", user_id, exc)
            if self._stints.get(user_id) is feed.stint:
                self._end(user_id)

    # -- the stint's connection ------------------------------------------------------------

    def _pc_of(self, stint: _Stint) -> RTCPeerConnection | None:
        feed = self._feeds.get(stint.user_id)
        return feed.pc if feed is not None and feed.stint is stint else None

    async def _hang_up(self, stint: _Stint) -> None:
        feed = self._feeds.get(stint.user_id)
        if feed is None or feed.stint is not stint:
            return
        del self._feeds[stint.user_id]
        if feed.task is not None and not feed.task.done():
            feed.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed.task
        if feed.pc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.pc.close(), _CLOSE_TIMEOUT)
        await _detach(feed.handle)

    async def _leave(self) -> None:
        """Leave the Janus room (the presence handle goes last: subscriptions use its id)."""
        handle, self._presence = self._presence, None
        await _detach(handle)


async def _detach(handle: VideoRoomHandle | None) -> None:
    if handle is None or handle.session.closed.is_set():
        return
    with contextlib.suppress(JanusError, TimeoutError):
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await handle.detach()
