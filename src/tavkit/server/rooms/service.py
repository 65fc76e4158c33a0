"""Rooms: who is in which session, and every change to that, as the seed's users expect it.

The rules (``docs/protocol.md``, DESIGN "Rooms"):

* ``(sdkAppId, room)`` has at most one open session, named by a UUID, where a room
  is a number or a string room (:mod:`tavkit.protocol.rooms`); the first enter
  opens it, and once it has closed a later enter opens a new one;
* a user is in one room per app: entering another room leaves the first (``moved``);
  entering the same room again replaces the old connection (``replaced``);
* a member whose heartbeats stop for ``heartbeat_timeout`` is removed (``timeout``);
* a session closes ``close_grace`` after its last member leaves, or when an admin
  closes it;
* userIds starting with ``__`` are the server's own (:func:`is_hidden`): nobody enters
  with one. The server's participants (the recorder) never become members at all, so
  no member list, count or emptiness check can see them.

Every change is one database transaction, and changes within an app are serialised
in-process by a per-app :class:`asyncio.Lock`; the database's unique indexes catch
what the lock cannot see (another replica), and such a conflict is retried. Events
go to the bus only after the transaction commits, so nobody hears of a change that
was rolled back.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.auth import Privilege
from tavkit.errors import AvkitCode, AvkitError, ServerCode, ServerError
from tavkit.protocol import PUBLISH_ALL, LeaveReason, Member, RoomId, room_columns, room_label
from tavkit.server import journal
from tavkit.server.bus import Bus, session_channel
from tavkit.server.events import (
    MemberJoinedEvent,
    MemberLeftEvent,
    MemberStateEvent,
    RoomClosedEvent,
)
from tavkit.server.journal import (
    MemberJoinedNotice,
    MemberLeftNotice,
    RoomClosedNotice,
    RoomOpenedNotice,
)
from tavkit.server.rooms.departures import Departure, Departures
from tavkit.server.rooms.heartbeats import Liveness, flush_interval
from tavkit.server.rooms.queries import (
    empty_since_by,
    has_live_members,
    live_connection,
    live_member,
    live_rows,
    log_event,
    member_in,
    open_session,
)
from tavkit.server.settings import AppConfig, Settings
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.models import AppRow, MemberRow, SessionRow
from tavkit.server.store.unit_of_work import Body, Outbox, transaction

__all__ = [
    "HIDDEN_PREFIX",
    "Admission",
    "EmptiedHook",
    "RoomService",
    "SocketHistory",
    "SweepReport",
    "is_hidden",
    "member_of",
    "recorder_id",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

HIDDEN_PREFIX: Final = "__"
"""userIds with this prefix belong to the server (``docs/protocol.md`` section 6)."""

_TOUCH_CHUNK: Final = 500
"""Connection ids per ``UPDATE ... IN (...)`` of a touch batch (well under bind limits)."""
_MEMBER_TABLE: Final = cast(Table, MemberRow.__table__)
_MEMBERS: Final = _MEMBER_TABLE.c
_TOUCH_MANY: Final = (
    update(_MEMBER_TABLE)
    .where(_MEMBERS.connection_id.in_(bindparam("ids", expanding=True)), _MEMBERS.left_at.is_(None))
    .values(last_heartbeat=bindparam("now"))
    .returning(_MEMBERS.connection_id, _MEMBERS.session_id, _MEMBERS.user_id)
)
"""The heartbeat of a batch of connections, returning those still live (built once)."""
# Event-log kind for each leave reason; the reason itself goes into the detail.
_LEAVE_EVENT: Final = {
    "exit": "left",
    "moved": "left",
    "closed": "left",
    "replaced": "replaced",
    "timeout": "timed-out",
    "removed": "removed",
    "expired": "expired",
}


EmptiedHook = Callable[[AsyncSession, Outbox, uuid.UUID, str, float], Awaitable[None]]
"""``hook(s, out, room_uuid, why, now)``, run inside the transaction in which a session's last
member left (``why`` ``empty``) or the session closed (``why`` its close reason)."""


def is_hidden(user_id: str) -> bool:
    """Whether ``user_id`` is one of the server's own, hidden participants."""
    return user_id.startswith(HIDDEN_PREFIX)


def recorder_id(room_uuid: uuid.UUID) -> str:
    """The userId of the session's recorder: ``__rec.`` and the UUID's 32 hex digits."""
    return f"{HIDDEN_PREFIX}rec.{room_uuid.hex}"


def member_of(row: MemberRow) -> Member:
    """The protocol's view of a live membership row (what the other members see)."""
    return Member(row.user_id, row.joined_at, row.muted, row.camera, row.privileges & PUBLISH_ALL)


@dataclass(frozen=True)
class Admission:
    """What ``enter`` decided: the session, the new connection, and who else is there."""

    room_uuid: uuid.UUID
    connection_id: str
    members: list[Member]
    """The other live members, oldest first."""
    opened: bool = False
    """Whether this enter opened the session."""
    opened_at: float = 0.0
    """When the session opened (epoch seconds): every member's call timer counts from it."""


class SocketHistory(enum.Enum):
    """What the database says of a connection as a signaling socket opens for it."""

    GONE = "gone"
    """It is no longer in the room (left, replaced, timed out, removed)."""
    FIRST = "first"
    """It is in the room and never had a socket: this one is its first."""
    RESUMING = "resuming"
    """It is in the room and had a socket before, on this replica or another."""


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    timed_out: int = 0
    closed: int = 0


class RoomService:
    """Room membership over a :class:`Store`, announcing changes on a :class:`Bus`."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        op_timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._settings = settings
        self._clock = clock
        self._op_timeout = op_timeout
        self._locks: dict[int, asyncio.Lock] = {}
        # Sockets' heartbeats, heard in memory and written in batches (see touch()).
        self._liveness = Liveness(
            self._touch_many,
            clock=clock,
            flush_every=flush_interval(settings.heartbeat_interval, settings.heartbeat_timeout),
            trust_for=settings.heartbeat_timeout / 2,
        )
        # Members who hang up, written in one transaction per batch (see leave_connection()).
        self._departures = Departures(self._leave_many)
        self._open_listeners: list[Callable[[int, RoomId, uuid.UUID], None]] = []
        self._emptied_hooks: list[EmptiedHook] = []

    def on_session_opened(self, listener: Callable[[int, RoomId, uuid.UUID], None]) -> None:
        """Call ``listener(sdk_app_id, room, room_uuid)`` after each enter that opens a session.

        Called in this process only, after the commit: the replica that opened a session
        is the one that acts on it (the recorder), whatever bus the replicas share.
        """
        self._open_listeners.append(listener)

    def on_session_emptied(self, hook: EmptiedHook) -> None:
        """Run ``hook`` in every transaction that empties or closes a session (see
        :data:`EmptiedHook`): what it changes commits, or rolls back, with the room's change
        (the calls end their call there, journal event included)."""
        self._emptied_hooks.append(hook)

    def session_opened(self, sdk_app_id: int, room_id: RoomId, room_uuid: uuid.UUID) -> None:
        """Tell the session-opened listeners of a session another service opened (a call)."""
        for listener in self._open_listeners:
            try:
                listener(sdk_app_id, room_id, room_uuid)
            except Exception:  # a listener's bug must not fail the caller
                logger.exception("a session-opened listener failed")

    # -- setup -------------------------------------------------------------------------

    async def register_apps(self, apps: Iterable[AppConfig]) -> None:
        """Record every configured app, so sessions can refer to it."""
        for app in apps:

            async def add(s: AsyncSession, _out: Outbox, app_id: int = app.sdk_app_id) -> None:
                if await s.get(AppRow, app_id) is None:
                    s.add(AppRow(sdk_app_id=app_id, created_at=self._clock()))

            await self._write(app.sdk_app_id, "registering apps", ServerCode.INTERNAL, add)

    # -- membership --------------------------------------------------------------------

    async def enter(
        self,
        sdk_app_id: int,
        room: RoomId,
        user_id: str,
        *,
        privileges: int,
        may_create: bool = True,
        may_open: Callable[[], None] | None = None,
    ) -> Admission:
        """Put ``user_id`` in ``room`` (number or string), opening a session if none is open.

        Raises ``ServerError(ENTER_FAILED)`` (14000) when the room is full.
        ``privileges`` is the privateMapKey's map, already checked for the enter bit;
        it is kept with the membership (what the member may send). Without
        ``may_create`` (a privateMapKey lacking the create bit) a room with no open
        session is refused with avkit 87 and no session is opened.
        ``may_open`` is called before an enter opens a session and may refuse it by
        raising (the per-user session cap: :mod:`tavkit.server.ratelimit`); nothing is
        written then. Entering a session already open never calls it.
        A reserved userId (:func:`is_hidden`) is server 10004.
        """
        if is_hidden(user_id):
            raise ServerError(
                ServerCode.INVALID_PARAMETER,
                f"userId: ids starting with {HIDDEN_PREFIX} are reserved for the server",
            )

        # Published by this method, not by the transaction: see _withdraw.
        announced: Outbox = []

        async def run(s: AsyncSession, _out: Outbox) -> Admission:
            announced.clear()  # a retried attempt starts over
            out = announced
            now = self._clock()
            current = await live_member(s, sdk_app_id, user_id, lock=True)
            session = await open_session(s, sdk_app_id, room, lock=True)
            same_session = (
                current is not None and session is not None and current.session_id == session.id
            )
            others: list[Member] = []
            if session is not None:
                others = [
                    member_of(row)
                    for row in await live_rows(s, session.id)
                    if row.user_id != user_id
                ]
                limit = self._settings.max_members_of(self._settings.media_mode_of(sdk_app_id))
                if len(others) >= limit:
                    raise ServerError(
                        ServerCode.ENTER_FAILED,
                        f"room {room_label(room)} is full ({limit} members)",
                    )
            if current is not None:
                reason = "replaced" if same_session else "moved"
                # _leave flushes, freeing the one-live-membership index for the insert below.
                await self._leave(s, out, current, reason, now, rejoining=same_session)
            opened = session is None
            if session is None and not may_create:
                raise AvkitError(
                    AvkitCode.PRIVATE_MAP_KEY_WRONG,
                    f"room {room_label(room)} has no open session and the privateMapKey lacks"
                    f" {Privilege.CREATE.name} ({int(Privilege.CREATE)})",
                )
            if session is None and may_open is not None:
                may_open()  # raising rolls back the leave above too
            if session is None:
                room_id, room_str = room_columns(room)
                session = SessionRow(
                    id=uuid.uuid4(),
                    sdk_app_id=sdk_app_id,
                    room_id=room_id,
                    room_str=room_str,
                    opened_at=now,
                )
                s.add(session)
                await s.flush()  # no relationship() orders the inserts: the session goes first
                log_event(s, session.id, now, "opened")
                journal.record(s, RoomOpenedNotice(session.id))
            else:
                session.empty_since = None
            member = MemberRow(
                session_id=session.id,
                sdk_app_id=sdk_app_id,
                room_id=session.room_id,
                room_str=session.room_str,
                user_id=user_id,
                connection_id=uuid.uuid4().hex,
                joined_at=now,
                last_heartbeat=now,
                muted=False,
                camera=True,
                privileges=privileges,
            )
            s.add(member)
            log_event(s, session.id, now, "joined", user_id, f"privileges={privileges}")
            journal.record(s, MemberJoinedNotice(session.id, user_id))
            await s.flush()
            joined = MemberJoinedEvent(member_of(member), member.connection_id)
            out.append((session_channel(session.id), joined))
            return Admission(
                room_uuid=session.id,
                connection_id=member.connection_id,
                members=others,
                opened=opened,
                opened_at=session.opened_at,
            )

        result = await self._write(sdk_app_id, "entering the room", ServerCode.ENTER_FAILED, run)
        try:
            for channel, event in announced:
                await self._bus.publish(channel, event)
        except ServerError:
            await self._withdraw(sdk_app_id, result.connection_id)
            raise
        if result.opened:
            self.session_opened(sdk_app_id, room, result.room_uuid)
        return result

    async def _withdraw(self, sdk_app_id: int, connection_id: str) -> None:
        """Undo an enter the bus could not announce (Redis away): the caller is refused.

        Without this the refused caller would stay in the room as a ghost that the
        others' snapshots show until its heartbeat timeout. Nobody heard it join, so
        its leave is not announced either (and the bus is down anyway). A member the
        enter replaced or moved stays gone: its client enters again like the caller.
        """

        async def run(s: AsyncSession, _out: Outbox) -> None:
            member = await s.scalar(
                select(MemberRow)
                .where(MemberRow.connection_id == connection_id, MemberRow.left_at.is_(None))
                .with_for_update()
            )
            if member is not None:
                await self._leave(s, [], member, "exit", self._clock())

        try:
            await self._write(sdk_app_id, "withdrawing a refused enter", ServerCode.INTERNAL, run)
        except ServerError as exc:  # the sweeper removes it after its heartbeat timeout
            logger.warning("could not withdraw a refused enter: %s", exc)

    async def heartbeat(self, sdk_app_id: int, room: RoomId, user_id: str) -> uuid.UUID:
        """Record that ``user_id`` is still in ``room``; return the session's UUID.

        14002 when the user is in another room (or never was in this one), 14003 when
        the session was closed under them, 14004 when they have left.
        """

        async def run(s: AsyncSession, _out: Outbox) -> uuid.UUID:
            session_id: uuid.UUID | None = await s.scalar(
                update(MemberRow)
                .where(
                    MemberRow.sdk_app_id == sdk_app_id,
                    MemberRow.user_id == user_id,
                    *MemberRow.in_room(room),
                    MemberRow.left_at.is_(None),
                )
                .values(last_heartbeat=self._clock())
                .returning(MemberRow.session_id)
            )
            if session_id is not None:
                return session_id
            # Not there: find out why, for the right code. (If the user entered in the
            # meantime, _member_in finds them and the heartbeat simply counts.)
            member = await member_in(s, sdk_app_id, room, user_id)
            member.last_heartbeat = self._clock()
            return member.session_id

        # No app lock: one guarded UPDATE, so heartbeats never queue behind enters.
        return await self._transaction("updating the heartbeat", ServerCode.HEARTBEAT_FAILED, run)

    async def exit(
        self, sdk_app_id: int, room: RoomId, user_id: str, reason: str = "exit"
    ) -> uuid.UUID:
        """Take ``user_id`` out of ``room``; same refusals as :meth:`heartbeat`."""
        if reason not in _LEAVE_EVENT:
            raise ValueError(f"unknown leave reason {reason!r}")

        async def run(s: AsyncSession, out: Outbox) -> uuid.UUID:
            member = await member_in(s, sdk_app_id, room, user_id, lock=True)
            await self._leave(s, out, member, reason, self._clock())
            return member.session_id

        return await self._write(sdk_app_id, "leaving the room", ServerCode.EXIT_FAILED, run)

    async def remove(self, sdk_app_id: int, room: RoomId, user_id: str) -> uuid.UUID:
        """Admin: take ``user_id`` out of ``room`` (reason ``removed``); 14004 if not there."""

        async def run(s: AsyncSession, out: Outbox) -> uuid.UUID:
            member = await live_member(s, sdk_app_id, user_id, lock=True)
            if member is None or member.room != room:
                raise ServerError(
                    ServerCode.USER_EXITED, f"user {user_id} is not in room {room_label(room)}"
                )
            await self._leave(s, out, member, "removed", self._clock())
            return member.session_id

        return await self._write(sdk_app_id, "removing the user", ServerCode.EXIT_FAILED, run)

    async def close(self, sdk_app_id: int, room: RoomId, reason: str = "admin") -> uuid.UUID:
        """Admin: close the room's open session, removing every member (reason ``closed``).

        14003 when the room has no open session.
        """

        async def run(s: AsyncSession, out: Outbox) -> uuid.UUID:
            session = await open_session(s, sdk_app_id, room, lock=True)
            if session is None:
                raise ServerError(
                    ServerCode.ROOM_CLOSED, f"room {room_label(room)} has no open session"
                )
            now = self._clock()
            for member in await live_rows(s, session.id):
                await self._leave(s, out, member, "closed", now, rejoining=True)
            await self._close(s, out, session, reason, now)
            return session.id

        return await self._write(sdk_app_id, "closing the room", ServerCode.ROOM_CLOSED, run)

    # -- the socket's view -------------------------------------------------------------

    async def touch(self, room_uuid: uuid.UUID, user_id: str, connection_id: str) -> bool:
        """Count socket traffic as a heartbeat; False when the connection is no longer live.

        Heard in memory and written in batches (:class:`.heartbeats.Liveness`): every
        connection heard since the last flush in one transaction, once a second (less
        with short timers) and before each sweep of this replica, so the store is at most
        a flush behind what the sockets say. A connection the store confirmed live less
        than half a timeout ago is answered at once; any other touch waits for a write,
        group-committed with the others that wait.
        """
        return await self._liveness.touch(room_uuid, user_id, connection_id)

    async def aclose(self) -> None:
        """Write the leaves queued and the heartbeats heard since the last flush (before
        the store closes)."""
        await self._departures.aclose()
        await self._liveness.aclose()

    async def _touch_many(self, wanted: dict[str, tuple[uuid.UUID, str]], at: float) -> set[str]:
        """Record heartbeat time ``at`` for every connection in ``wanted`` in one transaction.

        ``wanted`` maps a connection id to its (session, userId); the result holds the
        ids whose membership is live, the others having left or been replaced.
        """

        async def run(s: AsyncSession, _out: Outbox) -> set[str]:
            ids = list(wanted)
            live: set[str] = set()
            conn = await s.connection()  # Core, not the ORM's bulk UPDATE: no objects to sync
            for start in range(0, len(ids), _TOUCH_CHUNK):
                rows = await conn.execute(
                    _TOUCH_MANY, {"ids": ids[start : start + _TOUCH_CHUNK], "now": at}
                )
                live.update(
                    connection_id
                    for connection_id, session_id, user_id in rows
                    if wanted[connection_id] == (session_id, user_id)
                )
            return live

        return await self._transaction("updating the heartbeat", ServerCode.HEARTBEAT_FAILED, run)

    async def leave_connection(
        self,
        room_uuid: uuid.UUID,
        user_id: str,
        connection_id: str,
        reason: str,
        *,
        sdk_app_id: int | None = None,
    ) -> None:
        """The socket hung up for its member; a no-op once that connection was replaced.

        Written with the app's other leaves queued at the same time, in one transaction
        (:mod:`tavkit.server.rooms.departures`). A caller that knows the session's app
        (a socket does) saves the read that finds it.
        """
        if reason not in _LEAVE_EVENT:
            raise ValueError(f"unknown leave reason {reason!r}")
        if sdk_app_id is None:
            sdk_app_id = await self._app_of(room_uuid)
            if sdk_app_id is None:
                return
        departure = Departure(room_uuid, user_id, connection_id, reason)
        await self._departures.leave(sdk_app_id, departure)

    async def _leave_many(self, sdk_app_id: int, departures: Sequence[Departure]) -> None:
        """Write ``departures`` (one app's) in one transaction under the app's lock."""

        async def run(s: AsyncSession, out: Outbox) -> None:
            now = self._clock()
            wanted = {d.connection_id: d for d in departures}
            rows = await s.scalars(
                select(MemberRow)
                .where(MemberRow.connection_id.in_(wanted), MemberRow.left_at.is_(None))
                .order_by(MemberRow.id)
                .with_for_update()
            )
            left: dict[uuid.UUID, None] = {}  # the sessions left, in order
            for member in rows:
                departure = wanted[member.connection_id]
                if (member.session_id, member.user_id) != (
                    departure.room_uuid,
                    departure.user_id,
                ):
                    continue  # not the connection's live member (see live_connection)
                self._mark_left(s, out, member, departure.reason, now)
                left[member.session_id] = None
            await s.flush()  # the updates and inserts of every leave together
            if not left:
                return
            emptied = set(
                await s.scalars(
                    select(SessionRow.id).where(SessionRow.id.in_(left), ~has_live_members())
                )
            )
            for session_id in left:
                if session_id in emptied:
                    await self._emptied(s, out, session_id, now)

        await self._write(sdk_app_id, "leaving the room", ServerCode.EXIT_FAILED, run)

    async def set_state(
        self, room_uuid: uuid.UUID, user_id: str, *, muted: bool, camera: bool, screen: bool = False
    ) -> None:
        """Record a member's mute/camera state and tell the others; 14004 if not a member.

        ``screen`` (sharing a screen) is told, not stored: a sharer tells newcomers again.
        A change of mute or camera is also a line of the session's event log
        (``muted``, ``unmuted``, ``camera-off``, ``camera-on``), so the session's
        timeline shows it; a state that changes nothing is broadcast but not logged.
        """

        async def run(s: AsyncSession, out: Outbox) -> None:
            row = await s.scalar(
                select(MemberRow)
                .where(
                    MemberRow.session_id == room_uuid,
                    MemberRow.user_id == user_id,
                    MemberRow.left_at.is_(None),
                )
                .with_for_update()
            )
            if row is None:
                raise ServerError(ServerCode.USER_EXITED, f"user {user_id} is not in the room")
            now = self._clock()
            if row.muted != muted:
                log_event(s, room_uuid, now, "muted" if muted else "unmuted", user_id)
            if row.camera != camera:
                log_event(s, room_uuid, now, "camera-on" if camera else "camera-off", user_id)
            row.muted, row.camera = muted, camera
            event = MemberStateEvent(user_id, muted, camera, screen)
            out.append((session_channel(room_uuid), event))

        await self._transaction("saving the member state", ServerCode.INTERNAL, run)

    async def members(self, room_uuid: uuid.UUID) -> list[Member]:
        """The session's live members, oldest first."""

        async def run(s: AsyncSession, _out: Outbox) -> list[Member]:
            return [member_of(row) for row in await live_rows(s, room_uuid)]

        return await self._transaction(
            "listing members", ServerCode.QUERY_MEMBERS_FAILED, run, readonly=True
        )

    async def connections(self, room_uuid: uuid.UUID) -> list[tuple[Member, str]]:
        """The session's live members with their connection ids, oldest first."""

        async def run(s: AsyncSession, _out: Outbox) -> list[tuple[Member, str]]:
            return [(member_of(row), row.connection_id) for row in await live_rows(s, room_uuid)]

        return await self._transaction(
            "listing members", ServerCode.QUERY_MEMBERS_FAILED, run, readonly=True
        )

    async def open_session_of(self, sdk_app_id: int, room: RoomId) -> uuid.UUID | None:
        """The room's open session, if it has one."""

        async def run(s: AsyncSession, _out: Outbox) -> uuid.UUID | None:
            session = await open_session(s, sdk_app_id, room)
            return session.id if session is not None else None

        return await self._transaction(
            "finding the session", ServerCode.INTERNAL, run, readonly=True
        )

    async def is_member(self, room_uuid: uuid.UUID, user_id: str, connection_id: str) -> bool:
        """Whether ``connection_id`` is still ``user_id``'s live connection to the session."""

        async def run(s: AsyncSession, _out: Outbox) -> bool:
            found = await s.scalar(
                select(MemberRow.id).where(*live_connection(room_uuid, user_id, connection_id))
            )
            return found is not None

        return await self._transaction(
            "checking membership", ServerCode.INTERNAL, run, readonly=True
        )

    async def socket_history(
        self, room_uuid: uuid.UUID, user_id: str, connection_id: str
    ) -> SocketHistory:
        """Whether the connection is live, and whether it had a socket before (any replica).

        One indexed read, what a membership check costs anyway: every socket asks it
        as it opens, and a resume past the token's first-connection window needs it.
        """

        async def run(s: AsyncSession, _out: Outbox) -> SocketHistory:
            row = (
                await s.execute(
                    select(MemberRow.socket_opened_at).where(
                        *live_connection(room_uuid, user_id, connection_id)
                    )
                )
            ).first()
            if row is None:
                return SocketHistory.GONE
            return SocketHistory.FIRST if row.socket_opened_at is None else SocketHistory.RESUMING

        return await self._transaction(
            "checking membership", ServerCode.INTERNAL, run, readonly=True
        )

    async def socket_opened(self, room_uuid: uuid.UUID, user_id: str, connection_id: str) -> bool:
        """Record that the connection's first socket opened; True if this call recorded it.

        Callers write it only for a connection :meth:`socket_history` found
        ``FIRST``, so it is one UPDATE in a connection's life and a resume never
        writes; two first sockets racing (on two replicas) write it once between them.
        """
        now = self._clock()

        async def run(s: AsyncSession, _out: Outbox) -> bool:
            result = await s.execute(
                update(MemberRow)
                .where(
                    *live_connection(room_uuid, user_id, connection_id),
                    MemberRow.socket_opened_at.is_(None),
                )
                .values(socket_opened_at=now)
            )
            return bool(getattr(result, "rowcount", 0))

        recorded = await self._transaction("recording the socket", ServerCode.INTERNAL, run)
        if recorded:  # the membership was live at ``now``
            self._liveness.confirmed(connection_id, now)
        return recorded

    async def room_members(
        self, sdk_app_id: int, room: RoomId, user_id: str
    ) -> tuple[uuid.UUID, list[Member]]:
        """The caller's session in ``room`` and its live members (caller included).

        Only a member may look; the refusals are those of :meth:`heartbeat`.
        """

        async def run(s: AsyncSession, _out: Outbox) -> tuple[uuid.UUID, list[Member]]:
            member = await member_in(s, sdk_app_id, room, user_id)
            rows = await live_rows(s, member.session_id)
            return member.session_id, [member_of(row) for row in rows]

        return await self._transaction(
            "listing members", ServerCode.QUERY_MEMBERS_FAILED, run, readonly=True
        )

    # -- background --------------------------------------------------------------------

    async def sweep(self) -> SweepReport:
        """Remove members silent for the heartbeat timeout; close sessions empty past the grace."""
        # What this replica heard goes first, so its own sweep never removes it.
        await self._liveness.flush()
        now = self._clock()
        cutoff = now - self._settings.heartbeat_timeout
        timed_out = closed = 0
        with storage_errors("sweeping"):
            async with asyncio.timeout(self._op_timeout), self._store.reads() as s:
                silent = (
                    await s.execute(
                        select(MemberRow.sdk_app_id, MemberRow.id).where(
                            MemberRow.left_at.is_(None), MemberRow.last_heartbeat < cutoff
                        )
                    )
                ).all()
                # Only sessions whose grace is over: one still inside it would cost a
                # write transaction under its app's lock at every sweep (two or three a
                # session with the defaults), queued with the enters, to decide nothing.
                empty = (
                    await s.execute(
                        select(SessionRow.sdk_app_id, SessionRow.id).where(
                            SessionRow.closed_at.is_(None),
                            empty_since_by(now - self._settings.close_grace),
                            ~has_live_members(),
                        )
                    )
                ).all()
        for sdk_app_id, member_id in silent:
            timed_out += await self._expire(sdk_app_id, member_id, cutoff)
        for sdk_app_id, session_id in empty:
            closed += await self._close_if_empty(sdk_app_id, session_id, now)
        self._liveness.prune(cutoff)
        return SweepReport(timed_out=timed_out, closed=closed)

    async def _expire(self, sdk_app_id: int, member_id: int, cutoff: float) -> int:
        async def run(s: AsyncSession, out: Outbox) -> int:
            member = await s.scalar(
                select(MemberRow)
                .where(
                    MemberRow.id == member_id,
                    MemberRow.left_at.is_(None),
                    MemberRow.last_heartbeat < cutoff,
                )
                .with_for_update()
            )
            if member is None:  # it spoke up, or left, since the scan
                return 0
            await self._leave(s, out, member, "timeout", self._clock())
            return 1

        return await self._write(sdk_app_id, "expiring a member", ServerCode.INTERNAL, run)

    async def _close_if_empty(self, sdk_app_id: int, session_id: uuid.UUID, now: float) -> int:
        grace = self._settings.close_grace

        async def run(s: AsyncSession, out: Outbox) -> int:
            session = await s.scalar(
                select(SessionRow)
                .where(
                    SessionRow.id == session_id,
                    SessionRow.closed_at.is_(None),
                    empty_since_by(now - grace),
                    ~has_live_members(),
                )
                .with_for_update()
            )
            if session is None:  # someone entered, or it was closed, since the sweep read
                return 0
            await self._close(s, out, session, "empty", self._clock())
            return 1

        return await self._write(sdk_app_id, "closing an empty room", ServerCode.INTERNAL, run)

    # -- helpers -----------------------------------------------------------------------

    async def _write(
        self,
        sdk_app_id: int,
        action: str,
        conflict: ServerCode,
        body: Body[T],
    ) -> T:
        """Run ``body`` in a transaction holding the app's lock, then publish its events."""
        lock = self._locks.setdefault(sdk_app_id, asyncio.Lock())
        return await self._transaction(action, conflict, body, lock=lock)

    async def _transaction(
        self,
        action: str,
        conflict: ServerCode,
        body: Body[T],
        *,
        readonly: bool = False,
        lock: asyncio.Lock | None = None,
    ) -> T:
        """Run ``body`` in a transaction (under ``lock`` if given), then publish its events."""
        return await transaction(
            self._store,
            action,
            body,
            bus=self._bus,
            conflict=conflict,
            readonly=readonly,
            lock=lock,
            op_timeout=self._op_timeout,
        )

    async def _leave(
        self,
        s: AsyncSession,
        out: Outbox,
        member: MemberRow,
        reason: str,
        now: float,
        *,
        rejoining: bool = False,
    ) -> None:
        """Mark ``member`` gone and log it; start the close grace if the session emptied.

        ``rejoining`` skips the emptiness check when the caller refills or closes the
        session itself in the same transaction.
        """
        self._mark_left(s, out, member, reason, now)
        await s.flush()
        if not rejoining and not await live_rows(s, member.session_id):
            await self._emptied(s, out, member.session_id, now)

    def _mark_left(
        self, s: AsyncSession, out: Outbox, member: MemberRow, reason: str, now: float
    ) -> None:
        """Mark ``member`` gone, log it and announce it (written at the next flush)."""
        member.left_at = now
        member.leave_reason = reason
        self._liveness.forget(member.connection_id)
        kind = _LEAVE_EVENT[reason]
        log_event(s, member.session_id, now, kind, member.user_id, reason)
        journal.record(s, MemberLeftNotice(member.session_id, member.user_id, reason))
        # Every caller checked ``reason`` against _LEAVE_EVENT (the lookup above too).
        left = MemberLeftEvent(member.user_id, cast(LeaveReason, reason), member.connection_id)
        out.append((session_channel(member.session_id), left))

    async def _emptied(
        self, s: AsyncSession, out: Outbox, session_id: uuid.UUID, now: float
    ) -> None:
        """The session's last live member has left: start its close grace (or close it)."""
        session = await s.get(SessionRow, session_id, with_for_update=True)
        if session is None or session.closed_at is not None:
            return
        for hook in self._emptied_hooks:
            await hook(s, out, session.id, "empty", now)
        if self._settings.close_grace == 0:
            await self._close(s, out, session, "empty", now)
        else:
            session.empty_since = now

    async def _close(
        self, s: AsyncSession, out: Outbox, session: SessionRow, reason: str, now: float
    ) -> None:
        for hook in self._emptied_hooks:
            await hook(s, out, session.id, reason, now)
        session.closed_at = now
        session.close_reason = reason
        session.empty_since = None
        log_event(s, session.id, now, "closed", None, reason)
        journal.record(s, RoomClosedNotice(session.id, reason))
        out.append((session_channel(session.id), RoomClosedEvent(reason)))

    async def _app_of(self, room_uuid: uuid.UUID) -> int | None:
        async def run(s: AsyncSession, _out: Outbox) -> int | None:
            return await s.scalar(select(SessionRow.sdk_app_id).where(SessionRow.id == room_uuid))

        return await self._transaction(
            "finding the session", ServerCode.INTERNAL, run, readonly=True
        )
