"""The tables: apps, room sessions, memberships and each session's event log.

The room rules that must hold even when two server replicas race are written as
database constraints, so a bug or a race ends in an ``IntegrityError`` rather than
in a room with two open sessions:

* one open session per ``(sdk_app_id, room_id, room_str)``: a partial unique index
  over the rows whose ``closed_at`` is NULL. A room is ``(n, "")`` for the numeric
  room n or ``(0, s)`` for the string room s (:mod:`tavkit.protocol.rooms`), so room
  123 and room ``"123"`` are different rows, and a check constraint allows only those
  two shapes;
* one live membership per ``(sdk_app_id, user_id)`` -- a user is in one room per
  app: a partial unique index over the rows whose ``left_at`` is NULL;
* a session is closed exactly when it has a close reason, and a membership has
  left exactly when it has a leave reason (check constraints).

Times are Unix seconds as double-precision floats, the unit the wire uses, so
nothing is converted between the database and JSON. Membership rows are never
reused: a replaced connection leaves a row behind and a new row starts, so the
tables double as the call ledger.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tavkit.protocol.rooms import RoomId, room_columns, room_from_columns

__all__ = [
    "AppRow",
    "Base",
    "EventRow",
    "MemberRow",
    "MessageRow",
    "SessionRow",
]

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ROOM_KIND_CHECK = (
    "(room_id BETWEEN 1 AND 4294967295 AND room_str = '') OR (room_id = 0 AND room_str <> '')"
)
"""A session's room is numeric or a string room, never both nor neither."""

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a bigint.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")

ADDED_LATER = 1
"""``sort_order`` of a column a migration added to an existing table: it goes last in
the table, where ``ALTER TABLE ... ADD COLUMN`` put it, so a fresh database created
from the models has the columns in the migrated database's order (see ``store.db``)."""


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AppRow(Base):
    """An sdkAppId the server has served; sessions refer to it.

    Keys stay in the settings, never in the database.
    """

    __tablename__ = "apps"

    sdk_app_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[float] = mapped_column(Double)
    last_event_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """The ``app_seq`` of the app's last journal event (:mod:`tavkit.server.journal`)."""
    journal_messages: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    """Whether the journal keeps the app's in-call messages (``message.created``): its
    webhooks asked for them."""


class SessionRow(Base):
    """One session of a room: opened by the first enter, closed when empty or by an admin."""

    __tablename__ = "room_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    sdk_app_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("apps.sdk_app_id"))
    room_id: Mapped[int] = mapped_column(BigInteger)
    """The numeric room; 0 for a string room."""
    room_str: Mapped[str] = mapped_column(
        String(64), default="", server_default="", sort_order=ADDED_LATER
    )
    """The string room (TRTC's ``strRoomId``); ``""`` for a numeric room."""
    opened_at: Mapped[float] = mapped_column(Double)
    empty_since: Mapped[float | None] = mapped_column(Double, default=None)
    """When the last member left; the sweeper closes the session ``close_grace`` later."""
    closed_at: Mapped[float | None] = mapped_column(Double, default=None)
    close_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    last_msg_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The ``seq`` of the session's last in-call message (0: none yet); see :class:`MessageRow`."""
    recorder_replica: Mapped[str | None] = mapped_column(String(64), default=None)
    """The replica holding the session's recording lease (None: nobody records it)."""
    recorder_lease_until: Mapped[float | None] = mapped_column(Double, default=None)
    """When that lease ends unless its holder renews it; another replica may then take over."""
    sfu_since: Mapped[float | None] = mapped_column(Double, default=None, sort_order=ADDED_LATER)
    """When an ``auto`` session switched to the SFU (None: it has not; see
    :mod:`tavkit.server.sfu.modes`). On the row, so every replica and a restart agree."""

    @property
    def room(self) -> RoomId:
        """The session's room: an ``int`` or, for a string room, a ``str``."""
        return room_from_columns(self.room_id, self.room_str)

    @classmethod
    def in_room(cls, room: RoomId) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        """The WHERE clauses of the sessions of ``room`` (of either kind, never both)."""
        room_id, room_str = room_columns(room)
        return cls.room_id == room_id, cls.room_str == room_str

    __table_args__ = (
        CheckConstraint(_ROOM_KIND_CHECK, name="room_kind"),
        CheckConstraint("(closed_at IS NULL) = (close_reason IS NULL)", name="closed_has_reason"),
        Index(
            "uq_room_sessions_open",
            "sdk_app_id",
            "room_id",
            "room_str",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
        Index("ix_room_sessions_app_room", "sdk_app_id", "room_id", "room_str", "opened_at"),
    )


class MemberRow(Base):
    """One connection of a user to a session, from enter until it left (and why)."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("room_sessions.id"))
    sdk_app_id: Mapped[int] = mapped_column(BigInteger)
    """Copied from the session so the one-room-per-user index can name it."""
    room_id: Mapped[int] = mapped_column(BigInteger)
    room_str: Mapped[str] = mapped_column(
        String(64), default="", server_default="", sort_order=ADDED_LATER
    )
    """With ``room_id``, the session's room, as in :class:`SessionRow`."""
    user_id: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[str] = mapped_column(String(40), unique=True)
    joined_at: Mapped[float] = mapped_column(Double)
    last_heartbeat: Mapped[float] = mapped_column(Double)
    left_at: Mapped[float | None] = mapped_column(Double, default=None)
    leave_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    camera: Mapped[bool] = mapped_column(Boolean, default=True)
    privileges: Mapped[int] = mapped_column(BigInteger, default=255, server_default="255")
    """The privateMapKey's privilege map at enter (255 without a key): what it may send."""
    socket_opened_at: Mapped[float | None] = mapped_column(Double, default=None)
    """When the connection's first signaling socket opened (None: never), on any replica:
    what lets a socket token past its first-connection window resume anywhere."""

    @property
    def room(self) -> RoomId:
        """The membership's room: an ``int`` or, for a string room, a ``str``."""
        return room_from_columns(self.room_id, self.room_str)

    @classmethod
    def in_room(cls, room: RoomId) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        """The WHERE clauses of the memberships of ``room``."""
        room_id, room_str = room_columns(room)
        return cls.room_id == room_id, cls.room_str == room_str

    __table_args__ = (
        CheckConstraint("(left_at IS NULL) = (leave_reason IS NULL)", name="left_has_reason"),
        Index(
            "uq_members_live_user",
            "sdk_app_id",
            "user_id",
            unique=True,
            sqlite_where=text("left_at IS NULL"),
            postgresql_where=text("left_at IS NULL"),
        ),
        Index("ix_members_session", "session_id", "joined_at"),
        Index("ix_members_app_user", "sdk_app_id", "user_id", "id"),
        Index(
            "ix_members_live_heartbeat",
            "last_heartbeat",
            sqlite_where=text("left_at IS NULL"),
            postgresql_where=text("left_at IS NULL"),
        ),
    )


class EventRow(Base):
    """One line of a session's log: opened, joined, left, timed-out, replaced, removed, closed.

    ``expired`` too: a member whose credentials ended and were not renewed; and a
    member's state changes, ``muted``, ``unmuted``, ``camera-off``, ``camera-on``.
    """

    __tablename__ = "session_events"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("room_sessions.id"))
    at: Mapped[float] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[str | None] = mapped_column(String(200), default=None)

    __table_args__ = (Index("ix_session_events_session", "session_id", "id"),)


class MessageRow(Base):
    """One in-call message (``docs/protocol.md`` section 5), numbered ``seq`` within its session.

    ``seq`` comes from ``room_sessions.last_msg_seq``, bumped in the same transaction
    as the insert, so a session's numbers have no gaps; the two unique constraints
    keep them unique and make a resent ``client_msg_id`` a no-op even across replicas.
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("room_sessions.id"))
    seq: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(64))
    """The sender's userId, taken from the socket, never from the frame."""
    kind: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    """``{"text": ...}`` or ``{"data": ...}`` as JSON text."""
    client_msg_id: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        CheckConstraint("kind IN ('text', 'custom')", name="kind_known"),
        UniqueConstraint("session_id", "seq", name="uq_messages_session_seq"),
        UniqueConstraint(
            "session_id", "sender", "client_msg_id", name="uq_messages_session_sender_client_id"
        ),
    )
