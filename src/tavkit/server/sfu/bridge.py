"""tavkit's side of the SFU: VideoRoom rooms and handles on members' behalf.

In ``--media-mode sfu`` the server holds one :class:`SfuBridge` (``ServerContext.sfu``).
It speaks for the members to Janus; the members only ever see ``media-signal`` frames
(:mod:`tavkit.protocol.media`)::

    tavkit session opens       first socket of an SFU session -> VideoRoom room (a
    (a member's socket)        secret of its own); the member joins it as a publisher
                               (not publishing: every member needs a private_id)
    media-signal publish       privileges checked here; the offer goes to Janus, the
                               answer comes back. An audience member is refused before
                               Janus: tavkit never asks Janus to let it publish
    Janus: publishers change   the member's subscription is made again (every other
                               publisher, one PeerConnection): media-signal subscribe
    media-signal subscribe     the member's answer starts the forwarding
    media-layers               the simulcast layer (or a pause) per video stream of the
                               member's own subscription: VideoRoom configure
    member-left (the bus)      the member's handles are detached (Janus tells the others)
    room-closed (the bus)      the VideoRoom room is destroyed
    Janus session dies         every member is told (server 10000); the rooms are gone

One process: the rooms are this replica's (rooms across replicas are issue 21's
"several Janus" step). Janus's ICE candidates pass the same ``ice_allowed_networks``
filter as the mesh's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from tavkit.auth import Privilege
from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol import (
    CandidateData,
    DescriptionData,
    ErrorFrame,
    FrameError,
    MediaLayer,
    MediaLayers,
    MediaSignalFrom,
    MediaSignalTo,
    MediaStream,
    ServerMessage,
    SessionDescription,
    SignalData,
)
from tavkit.protocol.sdp import refusal
from tavkit.server.bus import session_channel
from tavkit.server.events import MemberLeftEvent, RoomClosedEvent
from tavkit.server.ice import filter_signal
from tavkit.server.settings import SFU_MAX_MEMBERS
from tavkit.server.sfu.janus import JanusError, JanusSession, VideoRoomHandle
from tavkit.server.sfu.videoroom import Detached, Hangup, Leaving, Publishers, Unpublished

if TYPE_CHECKING:
    from tavkit.server.bus import Bus
    from tavkit.server.settings import Network

__all__ = ["JanusRoom", "MemberSocket", "SfuBridge"]

logger = logging.getLogger(__name__)

RESUBSCRIBE_AFTER: Final = 0.2
"""Seconds a change of publishers waits, so several joining at once cost one subscription."""
_RESUBSCRIBE_TRIES: Final = 3
_TEARDOWN_TIMEOUT: Final = 5.0
_SEND_BITS: Final = Privilege.SEND_AUDIO | Privilege.SEND_VIDEO
_SUBSTREAMS: Final[dict[MediaLayer, int]] = {"high": 2, "medium": 1, "low": 0}
"""VideoRoom's ``substream``: 0 is the lowest layer, whatever order the rids came in."""


class MemberSocket(Protocol):
    """What the bridge needs of a member's signaling socket."""

    user_id: str
    connection_id: str
    privileges: int

    def send(self, msg: ServerMessage) -> None:
        """Queue ``msg`` for the member."""


@dataclass(frozen=True)
class JanusRoom:
    """Where a session's media is in Janus, for a handle of tavkit's own (the recorder's)."""

    room: str
    """The VideoRoom room's id (the session's UUID)."""
    janus: JanusSession
    """The Janus session the room lives in; its ``closed`` is set if Janus goes away."""


@dataclass(eq=False)
class _Member:
    user_id: str
    connection_id: str
    socket: MemberSocket
    publisher: VideoRoomHandle
    private_id: int | None
    feeds: set[str] = field(default_factory=set)
    """The other members publishing in the room, as Janus told us."""
    published: bool = False
    hangups_expected: int = 0
    subscriber: VideoRoomHandle | None = None
    subscription: int = 0
    kinds: dict[str, str] = field(default_factory=dict)
    """The current subscription's streams: mid -> kind."""
    layers: dict[str, MediaLayer] = field(default_factory=dict)
    """What the member asked of each video mid of the current subscription (else high)."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    resubscribe: asyncio.Task[None] | None = None
    dirty: bool = False
    """The publishers changed since the subscription was last made."""
    gone: bool = False


@dataclass(eq=False)
class _Room:
    key: str
    secret: str = field(repr=False)
    janus: JanusSession
    members: dict[str, _Member] = field(default_factory=dict)
    watcher: asyncio.Task[None] | None = None


class SfuBridge:
    """The server's Janus: a session, a VideoRoom room per SFU session, handles per member.

    Use as an async context manager (the app's lifespan): leaving it destroys the rooms
    it made and closes the Janus session.
    """

    def __init__(
        self,
        url: str,
        *,
        api_secret: str | None,
        bus: Bus,
        allowed_networks: Sequence[Network] = (),
    ) -> None:
        self._url = url
        self._secret = api_secret
        self._bus = bus
        self._networks = tuple(allowed_networks)
        self._janus: JanusSession | None = None
        self._admin: VideoRoomHandle | None = None
        self._connecting = asyncio.Lock()
        self._rooms: dict[str, _Room] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._watch: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SfuBridge:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Destroy every room this bridge made and close the Janus session."""
        for key in list(self._rooms):
            await self._close_room(key)
        if self._watch is not None:
            self._watch.cancel()
        if self._janus is not None:
            await self._janus.close()

    def rooms(self) -> list[str]:
        """The VideoRoom rooms this bridge holds (tavkit session UUIDs)."""
        return sorted(self._rooms)

    # --- members ------------------------------------------------------------------------

    async def member_opened(self, room_uuid: object, socket: MemberSocket) -> None:
        """A member's socket opened (first or resumed): join it to the room's VideoRoom.

        A resumed socket of the same connection takes the place of the old one, and gets
        its subscription again (what was in flight may be lost).
        """
        room = await self._room(str(room_uuid))
        member = room.members.get(socket.user_id)
        if member is not None and member.connection_id == socket.connection_id:
            member.socket = socket
            self._schedule_resubscribe(room, member)
            return
        if member is not None:  # the user entered again from a new connection
            await self._drop_member(room, member)
        handle = await room.janus.attach_videoroom()
        try:
            joined = await handle.join_publisher(room.key, id=socket.user_id)
        except JanusError:
            with contextlib.suppress(JanusError):
                await handle.detach()
            raise
        member = _Member(
            user_id=socket.user_id,
            connection_id=socket.connection_id,
            socket=socket,
            publisher=handle,
            private_id=joined.private_id,
            feeds={p.id for p in joined.publishers if p.id != socket.user_id},
        )
        room.members[member.user_id] = member
        reader = asyncio.create_task(self._read(room, member), name=f"sfu-{member.user_id}")
        member.tasks.add(reader)
        logger.info("SFU: %s joined room %s", member.user_id, room.key)
        if member.feeds:
            self._schedule_resubscribe(room, member)

    async def media_signal(
        self, room_uuid: object, socket: MemberSocket, msg: MediaSignalTo
    ) -> None:
        """Carry a member's ``media-signal`` to Janus; refusals raise :class:`FrameError`."""
        room = self._rooms.get(str(room_uuid))
        member = room.members.get(socket.user_id) if room is not None else None
        if room is None or member is None or member.connection_id != socket.connection_id:
            raise FrameError(ServerCode.INTERNAL, "SFU: not joined to the room's media", ref=msg.id)
        if msg.pc == "publish":
            await self._publish(room, member, msg)
        else:
            await self._answer(member, msg)

    async def _publish(self, room: _Room, member: _Member, msg: MediaSignalTo) -> None:
        if isinstance(msg.data, CandidateData):
            await _trickle(member.publisher, msg.data)
            return
        description = msg.data.description
        if description.type != "offer":
            raise _refused(msg, "media-signal.data: the publish connection takes an offer")
        if not member.socket.privileges & _SEND_BITS:
            # Janus is never asked: the member's handle stays a publisher that publishes
            # nothing, whatever the member sends.
            raise _refused(msg, "publishing needs SEND_AUDIO (4) or SEND_VIDEO (16)")
        why = refusal(description.sdp, member.socket.privileges)
        if why is not None:
            raise _refused(msg, f"media-signal.data: {why}")
        if member.published:  # a new publish connection (the client rebuilt it)
            member.hangups_expected += 1  # the old connection's, which is no news
            with contextlib.suppress(JanusError):
                await member.publisher.unpublish()
        answer = await member.publisher.publish(description.sdp)
        member.published = True
        logger.info("SFU: %s publishes in room %s", member.user_id, room.key)
        data = self._filtered(DescriptionData(SessionDescription("answer", answer)))
        if data is not None:
            member.socket.send(MediaSignalFrom("publish", data))

    async def _answer(self, member: _Member, msg: MediaSignalTo) -> None:
        if msg.subscription != member.subscription or member.subscriber is None:
            logger.info("SFU: %s answered an old subscription; ignored", member.user_id)
            return
        if isinstance(msg.data, CandidateData):
            await _trickle(member.subscriber, msg.data)
            return
        description = msg.data.description
        if description.type != "answer":
            raise _refused(msg, "media-signal.data: a subscription takes an answer")
        why = refusal(description.sdp, member.socket.privileges)
        if why is not None:
            raise _refused(msg, f"media-signal.data: {why}")
        await member.subscriber.start(description.sdp)

    # --- layers ---------------------------------------------------------------------------

    async def set_layers(self, room_uuid: object, socket: MemberSocket, msg: MediaLayers) -> None:
        """Apply a member's ``media-layers`` to its own subscription (VideoRoom configure).

        Refusals raise :class:`FrameError` (10004, naming the field); a choice for an
        older subscription is ignored, as an answer to one is.
        """
        room = self._rooms.get(str(room_uuid))
        member = room.members.get(socket.user_id) if room is not None else None
        if room is None or member is None or member.connection_id != socket.connection_id:
            raise FrameError(ServerCode.INTERNAL, "SFU: not joined to the room's media", ref=msg.id)
        if msg.subscription != member.subscription or member.subscriber is None:
            logger.info("SFU: %s chose layers of an old subscription; ignored", member.user_id)
            return
        changes: list[dict[str, object]] = []
        for i, choice in enumerate(msg.layers):
            kind = member.kinds.get(choice.mid)
            where = f"media-layers.layers[{i}].mid"
            if kind is None:
                why = f"{where}: subscription {member.subscription} has no stream {choice.mid!r}"
                raise _refused_layers(msg, why)
            if kind != "video":
                raise _refused_layers(msg, f"{where}: stream {choice.mid!r} is {kind}, not video")
            if member.layers.get(choice.mid, "high") != choice.layer:
                changes.append(_configure_entry(choice.mid, choice.layer))
        if not changes:
            return
        await member.subscriber.configure_streams(changes)
        for choice in msg.layers:
            member.layers[choice.mid] = choice.layer

    # --- tavkit's own subscribers -------------------------------------------------------

    async def observe(self, room_uuid: object) -> JanusRoom:
        """The session's room in Janus (made now if no member's socket has made it yet).

        For tavkit's own subscribers, which are not members (the SFU recorder,
        :mod:`tavkit.server.sfu.recorder`): they attach handles of their own to the room's
        Janus session; the bridge keeps the room's lifetime (destroyed at ``room-closed``).
        """
        room = await self._room(str(room_uuid))
        return JanusRoom(room.key, room.janus)

    # --- Janus's events -----------------------------------------------------------------

    async def _read(self, room: _Room, member: _Member) -> None:
        """Map the events on a member's publisher handle to subscriptions and errors."""
        while not member.gone:
            try:
                event = await member.publisher.next_event(within=3600.0)
            except TimeoutError:
                continue
            if isinstance(event, Publishers):
                member.feeds |= {p.id for p in event.publishers if p.id != member.user_id}
                self._schedule_resubscribe(room, member)
            elif isinstance(event, Unpublished | Leaving) and event.id != member.user_id:
                if event.id in member.feeds:
                    member.feeds.discard(event.id)
                    self._schedule_resubscribe(room, member)
            elif isinstance(event, Hangup) and member.hangups_expected:
                member.hangups_expected -= 1
            elif isinstance(event, Hangup) and not member.gone:
                member.published = False
                _tell(member, f"SFU: the connection publishing your media ended ({event.reason})")
            elif isinstance(event, Detached):
                return  # our own teardown, or the Janus session died (_watch_session)

    def _schedule_resubscribe(self, room: _Room, member: _Member) -> None:
        """Make the member's subscription again soon; one task per member does it."""
        member.dirty = True
        if member.resubscribe is not None and not member.resubscribe.done():
            return  # it sees the flag when its current round ends
        task = asyncio.create_task(self._resubscriber(room, member), name="sfu-resubscribe")
        member.resubscribe = task
        member.tasks.add(task)
        task.add_done_callback(member.tasks.discard)

    async def _resubscriber(self, room: _Room, member: _Member) -> None:
        failures = 0
        while member.dirty and not member.gone:
            await asyncio.sleep(RESUBSCRIBE_AFTER)
            member.dirty = False
            try:
                if await self._resubscribe(room, member):
                    failures = 0
                    continue
            except TAvKitError as exc:
                logger.warning("SFU: %s not subscribed: %s", member.user_id, exc)
            failures += 1
            if failures >= _RESUBSCRIBE_TRIES:
                _tell(member, "SFU: could not subscribe to the others' media")
                return
            member.dirty = True

    async def _resubscribe(self, room: _Room, member: _Member) -> bool:
        """Give the member a new subscription to every other publisher (or none).

        False when a feed went away meanwhile (Janus 428; its event follows): try again.
        """
        old, member.subscriber = member.subscriber, None
        if old is not None:
            with contextlib.suppress(JanusError):
                await old.detach()
        member.subscription += 1
        feeds = sorted(member.feeds)
        if not feeds:
            member.socket.send(MediaSignalFrom("subscribe", None, member.subscription))
            return True
        handle = await room.janus.attach_videoroom()
        try:
            offer = await handle.subscribe(room.key, feeds, private_id=member.private_id)
        except JanusError as exc:
            with contextlib.suppress(JanusError):
                await handle.detach()
            if exc.janus_code != 428:
                raise
            return False
        if member.gone:
            with contextlib.suppress(JanusError):
                await handle.detach()
            return True
        member.subscriber = handle
        member.kinds = {s.mid: s.type for s in offer.streams}
        member.layers = {}
        streams = tuple(
            MediaStream(s.mid, s.feed, s.type)
            for s in offer.streams
            if s.type in ("audio", "video")
        )
        data = self._filtered(DescriptionData(SessionDescription("offer", offer.offer)))
        if data is not None:
            member.socket.send(MediaSignalFrom("subscribe", data, member.subscription, streams))
        return True

    # --- rooms --------------------------------------------------------------------------

    async def _room(self, key: str) -> _Room:
        room = self._rooms.get(key)
        if room is not None and not room.janus.closed.is_set():
            return room
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            room = self._rooms.get(key)
            if room is not None and not room.janus.closed.is_set():
                return room
            janus, admin = await self._session()
            secret = secrets.token_urlsafe(24)
            await admin.create_room(key, secret=secret, publishers=SFU_MAX_MEMBERS)
            room = _Room(key, secret, janus)
            room.watcher = asyncio.create_task(self._watch_room(room), name=f"sfu-room-{key}")
            self._rooms[key] = room
            logger.info("SFU: room %s created", key)
            return room

    async def _watch_room(self, room: _Room) -> None:
        """Follow the tavkit session: members leaving, the session closing."""
        try:
            async with self._bus.subscribe(session_channel(room.key)) as events:
                async for event in events:
                    if isinstance(event, MemberLeftEvent):
                        member = room.members.get(event.user_id)
                        if member is not None and member.connection_id == event.connection_id:
                            await self._drop_member(room, member)
                    elif isinstance(event, RoomClosedEvent):
                        break
        except TAvKitError as exc:  # the bus is away: no ghost room for all that
            logger.warning("SFU: lost the events of room %s (%s); closing it", room.key, exc)
        self._rooms.pop(room.key, None)
        self._opening.pop(room.key, None)
        await self._teardown(room)

    async def _close_room(self, key: str) -> None:
        room = self._rooms.pop(key, None)
        if room is None:
            return
        if room.watcher is not None:
            room.watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await room.watcher
        await self._teardown(room)

    async def _teardown(self, room: _Room) -> None:
        for member in list(room.members.values()):
            await self._drop_member(room, member)
        if self._admin is not None and not room.janus.closed.is_set():
            try:
                await self._admin.destroy_room(room.key, secret=room.secret)
                logger.info("SFU: room %s destroyed", room.key)
            except JanusError as exc:
                logger.warning("SFU: room %s not destroyed: %s", room.key, exc.reason)

    async def _drop_member(self, room: _Room, member: _Member) -> None:
        member.gone = True
        if room.members.get(member.user_id) is member:
            del room.members[member.user_id]
        current = asyncio.current_task()
        for task in list(member.tasks):
            if task is not current:
                task.cancel()
        for handle in (member.subscriber, member.publisher):
            if handle is not None and not room.janus.closed.is_set():
                with contextlib.suppress(JanusError, TimeoutError):
                    async with asyncio.timeout(_TEARDOWN_TIMEOUT):
                        await handle.detach()
        logger.info("SFU: %s left room %s", member.user_id, room.key)

    # --- the Janus session --------------------------------------------------------------

    async def _session(self) -> tuple[JanusSession, VideoRoomHandle]:
        async with self._connecting:
            if self._janus is None or self._janus.closed.is_set() or self._admin is None:
                self._janus = await JanusSession.connect(self._url, api_secret=self._secret)
                self._admin = await self._janus.attach_videoroom()
                if self._watch is not None:
                    self._watch.cancel()
                self._watch = asyncio.create_task(
                    self._watch_session(self._janus), name="sfu-session"
                )
            return self._janus, self._admin

    async def _watch_session(self, janus: JanusSession) -> None:
        """Janus went away: its rooms are gone; every member in them is told."""
        await janus.closed.wait()
        for key, room in list(self._rooms.items()):
            if room.janus is not janus:
                continue
            self._rooms.pop(key, None)
            if room.watcher is not None:
                room.watcher.cancel()
            for member in room.members.values():
                member.gone = True
                for task in member.tasks:
                    task.cancel()
                _tell(member, "SFU: the media server went away; media stopped")
        logger.warning("SFU: the Janus session ended; its rooms are gone")

    def _filtered(self, data: SignalData) -> SignalData | None:
        return filter_signal(data, self._networks)


def _refused(msg: MediaSignalTo, why: str) -> FrameError:
    return FrameError(ServerCode.INVALID_PARAMETER, why, ref=msg.id)


def _refused_layers(msg: MediaLayers, why: str) -> FrameError:
    return FrameError(ServerCode.INVALID_PARAMETER, why, ref=msg.id)


def _configure_entry(mid: str, layer: MediaLayer) -> dict[str, object]:
    """VideoRoom's ``configure`` entry for one stream: paused, or sent at a layer."""
    if layer == "paused":
        return {"mid": mid, "send": False}
    return {"mid": mid, "send": True, "substream": _SUBSTREAMS[layer]}


def _tell(member: _Member, why: str) -> None:
    member.socket.send(ErrorFrame.from_error(ServerError(ServerCode.INTERNAL, why)))


async def _trickle(handle: VideoRoomHandle, data: CandidateData) -> None:
    candidate = data.candidate
    if candidate is None or not candidate.candidate:
        await handle.trickle_complete()
        return
    await handle.trickle(candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index or 0)
