"""tavkit's side of the SFU: VideoRoom rooms and handles on members' behalf.

In ``--media-mode sfu`` the server holds one :class:`SfuBridge` (``ServerContext.sfu``).
It speaks for the members to Janus; the members only ever see ``media-signal`` frames
(:mod:`tavkit.protocol.media`)::

    tavkit session opens       first socket of an SFU session -> VideoRoom room (a
    (a member's socket)        secret of its own); the member joins it as a publisher
                               (not publishing: every member needs a private_id)
    media-signal publish       privileges checked here; the offer goes to Janus, the
                               answer comes back. An audience member is refused before
                               Janus: tavkit never asks Janus to let it publish. A
                               video marked a=content:slides is the member's screen:
                               it needs SEND_SUB, and Janus is told it is a screen
    Janus: publishers change   the member's subscription is made again (every other
                               publisher, one PeerConnection): media-signal subscribe,
                               whose streams say which video is a screen (none for a
                               member without RECV_SUB: Janus is not asked for them)
    media-signal subscribe     the member's answer starts the forwarding
    media-layers               the simulcast layer (or a pause) per video stream of the
                               member's own subscription: VideoRoom configure
    Janus: publisher hung up   the member's publish connection broke (ICE or DTLS gave
                               up, e.g. a starved client): a bare media-signal publish
                               asks it to publish again, at most REPUBLISH_LIMIT times
                               a REPUBLISH_WINDOW; past that the member is told (10000)
    member-left (the bus)      the member's handles are detached (Janus tells the others)
    room-closed (the bus)      the VideoRoom room is destroyed, its placement row goes
    Janus session dies         each of its rooms moves to another Janus (below); with
                               none reachable, every member is told (server 10000)

Several Janus (``--janus-url`` given more than once): which one holds a session's room
is :mod:`tavkit.server.sfu.placement`'s choice (the least loaded reachable one), kept
in the store so replicas agree. When a Janus dies mid-call, each of its rooms is made
again on another: every member joins it anew (fresh handles, the same subscription
numbering) and gets a bare ``media-signal publish`` ("publish again"); as they publish
there, Janus tells the others and their subscriptions are made again as usual. A
periodic sweep destroys the rooms of closed sessions (``sweep_every``), so a replica
killed mid-call leaves no ghost rooms in Janus.

The members' live handles are this replica's; a room's members are all on the replica
whose sockets they hold (another replica taking a resumed socket joins the same Janus
room, which the placement row names). Janus's ICE candidates pass the same
``ice_allowed_networks`` filter as the mesh's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
from tavkit.protocol.sdp import refusal, slides_mids
from tavkit.server.bus import session_channel
from tavkit.server.events import MemberLeftEvent, RoomClosedEvent
from tavkit.server.ice import filter_signal
from tavkit.server.settings import SFU_MAX_MEMBERS
from tavkit.server.sfu.janus import JanusError, JanusSession, VideoRoomHandle
from tavkit.server.sfu.placement import Instance, Placements, shown
from tavkit.server.sfu.videoroom import (
    SCREEN,
    Detached,
    Hangup,
    Leaving,
    Publisher,
    Publishers,
    Stream,
    Unpublished,
)

if TYPE_CHECKING:
    from tavkit.server.bus import Bus
    from tavkit.server.settings import Network
    from tavkit.server.store.db import Store

__all__ = ["JanusRoom", "MemberSocket", "SfuBridge"]

logger = logging.getLogger(__name__)

RESUBSCRIBE_AFTER: Final = 0.2
"""Seconds a change of publishers waits, so several joining at once cost one subscription."""
_RESUBSCRIBE_TRIES: Final = 3
_TEARDOWN_TIMEOUT: Final = 5.0
_UNPUBLISH_TIMEOUT: Final = 5.0
"""Seconds a new publication waits for the hangup of the one it replaces (see ``_publish``).
2 s until 7 Dec: a rehearsal of the suite once saw a Python member's new publication
(its screen) never reach a page, a publish made too early being one explanation; the
member's reader waits this long at most, well inside the heartbeat's slack."""
REPUBLISH_LIMIT: Final = 3
REPUBLISH_WINDOW: Final = 60.0
"""A member is asked to publish again after at most REPUBLISH_LIMIT hangups of its publish
connection in REPUBLISH_WINDOW seconds (:func:`_may_republish`)."""
_NO_SUCH_ROOM: Final = 426
_ROOM_EXISTS: Final = 427
SWEEP_EVERY: Final = 10.0
"""Seconds between sweeps for rooms of closed sessions (the first sweep is at start)."""
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
    streams_of: dict[str, tuple[Stream, ...]] = field(default_factory=dict)
    """What each of ``feeds`` publishes, as Janus last told us (its screen included)."""
    published: bool = False
    hangups_expected: int = 0
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the hangup of a connection we unpublished (see ``_publish``)."""
    republished: list[float] = field(default_factory=list)
    """When the member was last asked to publish again after a hangup (monotonic)."""
    subscriber: VideoRoomHandle | None = None
    subscription: int = 0
    kinds: dict[str, str] = field(default_factory=dict)
    """The current subscription's streams: mid -> kind."""
    screens: set[str] = field(default_factory=set)
    """The current subscription's mids that carry a member's screen (checked as such)."""
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
    url: str
    """The Janus the room is on (moves when that one dies)."""
    members: dict[str, _Member] = field(default_factory=dict)
    watcher: asyncio.Task[None] | None = None


class SfuBridge:
    """The server's Janus: sessions with each, a VideoRoom room per SFU session, handles
    per member.

    Use as an async context manager (the app's lifespan): entering it starts the sweep
    for rooms of closed sessions; leaving it destroys the rooms it made and closes the
    Janus sessions.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        api_secret: str | None,
        bus: Bus,
        store: Store,
        allowed_networks: Sequence[Network] = (),
        sweep_every: float = SWEEP_EVERY,
    ) -> None:
        self._placements = Placements(urls, api_secret=api_secret, store=store)
        self._bus = bus
        self._networks = tuple(allowed_networks)
        self._sweep_every = sweep_every
        self._rooms: dict[str, _Room] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._watches: dict[JanusSession, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SfuBridge:
        self._sweeper = asyncio.create_task(self._sweep(), name="sfu-sweep")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Destroy every room this bridge made and close the Janus sessions."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for key in list(self._rooms):
            await self._close_room(key)
        for watch in self._watches.values():
            watch.cancel()
        await self._placements.aclose()

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
        await self._join(room, socket)

    async def _join(self, room: _Room, socket: MemberSocket, subscription: int = 0) -> _Member:
        """Join the member to the room's VideoRoom as a publisher (publishing nothing yet).

        ``subscription``: the number its last subscription had (in a room that moved),
        so the next one is higher and the client takes it.
        """
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
            subscription=subscription,
        )
        _note_publishers(member, joined.publishers)
        room.members[member.user_id] = member
        reader = asyncio.create_task(self._read(room, member), name=f"sfu-{member.user_id}")
        member.tasks.add(reader)
        logger.info("SFU: %s joined room %s", member.user_id, room.key)
        if member.feeds:
            self._schedule_resubscribe(room, member)
        return member

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
        # The marked sections passed the check as screens (SEND_SUB); Janus is told
        # which they are, and tells every subscriber (any replica's) in turn.
        screens = dict.fromkeys(slides_mids(description.sdp), SCREEN)
        if member.published:  # a new publish connection (the client rebuilt it)
            member.hangups_expected += 1  # the old connection's, which is no news
            member.hung_up.clear()
            with contextlib.suppress(JanusError):
                await member.publisher.unpublish()
            # Janus tears the old connection down after answering; a publish before that
            # is answered but never announced to the others. Its hangup says it is done.
            try:
                async with asyncio.timeout(_UNPUBLISH_TIMEOUT):
                    await member.hung_up.wait()
            except TimeoutError:
                logger.warning(
                    "SFU: %s's old publication not hung up within %g s; publishing anyway "
                    "(Janus may not announce it to the others)",
                    member.user_id,
                    _UNPUBLISH_TIMEOUT,
                )
        answer = await member.publisher.publish(description.sdp, descriptions=screens)
        member.published = True
        logger.info(
            "SFU: %s publishes in room %s%s",
            member.user_id,
            room.key,
            " with a screen" if screens else "",
        )
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
        # Answers keep no a=content mark: the screens are the mids the offer said.
        why = refusal(description.sdp, member.socket.privileges, screens=member.screens)
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
                _note_publishers(member, event.publishers)
                self._schedule_resubscribe(room, member)
            elif isinstance(event, Unpublished | Leaving) and event.id != member.user_id:
                member.streams_of.pop(event.id, None)
                if event.id in member.feeds:
                    member.feeds.discard(event.id)
                    self._schedule_resubscribe(room, member)
            elif isinstance(event, Hangup) and member.hangups_expected:
                member.hangups_expected -= 1
                member.hung_up.set()
            elif isinstance(event, Hangup) and not member.gone:
                member.published = False
                if _may_republish(member):
                    logger.info(
                        "SFU: %s's publish connection ended (%s); asked to publish again",
                        member.user_id,
                        event.reason,
                    )
                    member.socket.send(MediaSignalFrom("publish", None))
                else:
                    _tell(
                        member, f"SFU: the connection publishing your media ended ({event.reason})"
                    )
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
        feeds, only = _wanted(member)
        if not feeds:
            member.socket.send(MediaSignalFrom("subscribe", None, member.subscription))
            return True
        handle = await room.janus.attach_videoroom()
        try:
            offer = await handle.subscribe(room.key, feeds, private_id=member.private_id, only=only)
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
        member.screens = {s.mid for s in offer.streams if s.screen}
        member.layers = {}
        streams = tuple(
            MediaStream(s.mid, s.feed, s.type, s.screen)
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
            instance = await self._session(key)
            room = _Room(key, self._placements.secret_of(key), instance.janus, instance.url)
            await self._create(instance, room)
            room.watcher = asyncio.create_task(self._watch_room(room), name=f"sfu-room-{key}")
            self._rooms[key] = room
            return room

    async def _create(self, instance: Instance, room: _Room) -> None:
        """Make the room on ``instance``; one already there (another replica's) is taken."""
        try:
            await instance.admin.create_room(
                room.key, secret=room.secret, publishers=SFU_MAX_MEMBERS
            )
            logger.info("SFU: room %s created on %s", room.key, shown(instance.url))
        except JanusError as exc:
            if exc.janus_code != _ROOM_EXISTS:
                raise
            logger.info("SFU: room %s already on %s; joining it", room.key, shown(instance.url))

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
        """Drop the members, destroy the room and delete its placement row.

        A room that could not be destroyed keeps its row: once its session is closed,
        the sweep destroys it (or learns that its Janus lost it).
        """
        for member in list(room.members.values()):
            await self._drop_member(room, member)
        if room.janus.closed.is_set():
            return  # its Janus went away: the sweep settles the row
        admin = next((i.admin for i in self._placements.connected() if i.janus is room.janus), None)
        if admin is None:
            return
        try:
            await admin.destroy_room(room.key, secret=room.secret)
            logger.info("SFU: room %s destroyed", room.key)
        except JanusError as exc:
            if exc.janus_code != _NO_SUCH_ROOM:  # 426: the sweep was first
                logger.warning("SFU: room %s not destroyed: %s", room.key, exc.reason)
                return
        try:
            await self._placements.forget(room.key)
        except TAvKitError as exc:  # the store is away: the sweep deletes it later
            logger.warning("SFU: placement of room %s kept: %s", room.key, exc)

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

    async def _session(self, key: str, exclude: Sequence[str] = ()) -> Instance:
        """The Janus for room ``key`` (placed by load, or where the store says), watched."""
        instance = await self._placements.place(key, exclude=exclude)
        if instance.janus not in self._watches:
            for janus in [j for j, task in self._watches.items() if task.done()]:
                del self._watches[janus]
            self._watches[instance.janus] = asyncio.create_task(
                self._watch_session(instance), name=f"sfu-session-{shown(instance.url)}"
            )
        return instance

    async def _watch_session(self, instance: Instance) -> None:
        """A Janus went away: each of its rooms moves to another, or its members are told."""
        await instance.janus.closed.wait()
        logger.warning("SFU: the session with Janus %s ended", shown(instance.url))
        for key, room in list(self._rooms.items()):
            if room.janus is not instance.janus:
                continue
            async with self._opening.setdefault(key, asyncio.Lock()):
                if self._rooms.get(key) is not room:
                    continue
                try:
                    await self._move(room, instance.url)
                except TAvKitError as exc:
                    logger.warning("SFU: room %s not moved: %s; its media stopped", key, exc)
                    self._rooms.pop(key, None)
                    if room.watcher is not None:
                        room.watcher.cancel()
                    for member in list(room.members.values()):
                        _abandon(member)
                        _tell(member, "SFU: the media server went away; media stopped")

    async def _move(self, room: _Room, dead: str) -> None:
        """Make the room again on another Janus; every member joins it and publishes again.

        Raises :class:`TAvKitError` when no other Janus can take it.
        """
        for member in room.members.values():
            _abandon(member)  # its handles died with the Janus
        moving = list(room.members.values())
        instance = await self._session(room.key, exclude=(dead,))
        await self._create(instance, room)
        room.janus, room.url, room.members = instance.janus, instance.url, {}
        logger.warning(
            "SFU: room %s moved to %s with %d members", room.key, shown(instance.url), len(moving)
        )
        for old in moving:
            try:
                member = await self._join(room, old.socket, old.subscription)
            except JanusError as exc:
                logger.warning("SFU: %s not moved: %s", old.user_id, exc.reason)
                _tell(old, "SFU: the media server went away; media stopped")
                continue
            member.socket.send(MediaSignalFrom("publish", None))

    async def _sweep(self) -> None:
        """Destroy the rooms of closed sessions now and every ``sweep_every`` seconds."""
        while True:
            try:
                cleaned = await self._placements.sweep()
                if cleaned:
                    logger.info("SFU: %d rooms of closed sessions cleaned", cleaned)
            except TAvKitError as exc:
                logger.warning("SFU: sweep for rooms of closed sessions failed: %s", exc)
            await asyncio.sleep(self._sweep_every)

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


def _note_publishers(member: _Member, publishers: Sequence[Publisher]) -> None:
    """Take Janus's word on who (else) publishes what."""
    for publisher in publishers:
        if publisher.id != member.user_id:
            member.feeds.add(publisher.id)
            member.streams_of[publisher.id] = publisher.streams


def _wanted(member: _Member) -> tuple[list[str], dict[str, list[str]]]:
    """The feeds of the member's next subscription, and (``only``) for which just some
    streams: a member without RECV_SUB is not given the others' screens at all."""
    feeds = sorted(member.feeds)
    if member.socket.privileges & Privilege.RECV_SUB:
        return feeds, {}
    only: dict[str, list[str]] = {}
    for feed in feeds:
        streams = member.streams_of.get(feed, ())
        if any(s.type == "video" and s.description == SCREEN for s in streams):
            only[feed] = [s.mid for s in streams if s.description != SCREEN]
    return [f for f in feeds if only.get(f, True)], only


def _abandon(member: _Member) -> None:
    """Stop the member's tasks; its handles are not detached (their Janus is gone)."""
    member.gone = True
    for task in list(member.tasks):
        task.cancel()


def _may_republish(member: _Member) -> bool:
    """Whether a member whose publish connection Janus hung up is asked to publish again.

    A connection that breaks now and then (a starved or roaming client) is made again
    without the member noticing more than a freeze; one that breaks every time it is made
    (a network that passes signaling but no media) would loop, so after REPUBLISH_LIMIT
    tries within REPUBLISH_WINDOW seconds the member is told instead.
    """
    now = time.monotonic()
    member.republished = [t for t in member.republished if now - t < REPUBLISH_WINDOW]
    if len(member.republished) >= REPUBLISH_LIMIT:
        return False
    member.republished.append(now)
    return True


def _tell(member: _Member, why: str) -> None:
    member.socket.send(ErrorFrame.from_error(ServerError(ServerCode.INTERNAL, why)))


async def _trickle(handle: VideoRoomHandle, data: CandidateData) -> None:
    candidate = data.candidate
    if candidate is None or not candidate.candidate:
        await handle.trickle_complete()
        return
    await handle.trickle(candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index or 0)
