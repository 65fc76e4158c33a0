"""The queries behind the room service, one transaction's worth each.

Plain functions over an open ``AsyncSession``: they read or add rows and never
commit, so the room service decides what one transaction holds. ``lock=True``
selects ``FOR UPDATE`` (PostgreSQL row locks; SQLite's ``BEGIN IMMEDIATE`` already
serialises writers).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol.rooms import RoomId, room_label
from tavkit.server.store.models import EventRow, MemberRow, SessionRow

__all__ = [
    "empty_since_by",
    "has_live_members",
    "live_connection",
    "live_member",
    "live_rows",
    "log_event",
    "member_in",
    "open_session",
]


def has_live_members() -> Any:
    """A correlated ``EXISTS``: the session row in the outer query has a live member."""
    return exists().where(and_(MemberRow.session_id == SessionRow.id, MemberRow.left_at.is_(None)))


def empty_since_by(cutoff: float) -> ColumnElement[bool]:
    """The session row has been empty since ``cutoff`` or earlier: its ``empty_since``, or
    its ``opened_at`` when no one ever left it (a session whose only enter was withdrawn).
    The sweeper reads with it and the close checks again with it under the lock."""
    return func.coalesce(SessionRow.empty_since, SessionRow.opened_at) <= cutoff


def live_connection(
    room_uuid: uuid.UUID, user_id: str, connection_id: str
) -> tuple[ColumnElement[bool], ...]:
    """The WHERE clauses of the member row of a connection still live in its session."""
    return (
        MemberRow.session_id == room_uuid,
        MemberRow.user_id == user_id,
        MemberRow.connection_id == connection_id,
        MemberRow.left_at.is_(None),
    )


def log_event(
    s: AsyncSession,
    session_id: uuid.UUID,
    at: float,
    kind: str,
    user_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Add one line to the session's event log."""
    s.add(EventRow(session_id=session_id, at=at, kind=kind, user_id=user_id, detail=detail))


async def open_session(
    s: AsyncSession, sdk_app_id: int, room: RoomId, *, lock: bool = False
) -> SessionRow | None:
    """The room's open session, if any."""
    query = select(SessionRow).where(
        SessionRow.sdk_app_id == sdk_app_id,
        *SessionRow.in_room(room),
        SessionRow.closed_at.is_(None),
    )
    return await s.scalar(query.with_for_update() if lock else query)


async def live_rows(s: AsyncSession, session_id: uuid.UUID) -> list[MemberRow]:
    """The session's live memberships, oldest first."""
    rows = await s.scalars(
        select(MemberRow)
        .where(MemberRow.session_id == session_id, MemberRow.left_at.is_(None))
        .order_by(MemberRow.joined_at, MemberRow.id)
    )
    return list(rows)


async def live_member(
    s: AsyncSession, sdk_app_id: int, user_id: str, *, lock: bool = False
) -> MemberRow | None:
    """The user's live membership in the app (in whichever room), if any."""
    query = select(MemberRow).where(
        MemberRow.sdk_app_id == sdk_app_id,
        MemberRow.user_id == user_id,
        MemberRow.left_at.is_(None),
    )
    return await s.scalar(query.with_for_update() if lock else query)


async def member_in(
    s: AsyncSession, sdk_app_id: int, room: RoomId, user_id: str, *, lock: bool = False
) -> MemberRow:
    """The user's live membership in ``room``, or the seed's error saying why not.

    14002 when the user is in another room or never was in this one; 14003 when an
    admin closed the room under them; 14004 when they left it any other way.
    """
    member = await live_member(s, sdk_app_id, user_id, lock=lock)
    if member is not None:
        if member.room != room:
            raise ServerError(
                ServerCode.ROOM_MISMATCH,
                f"user {user_id} is in room {room_label(member.room)}, not room {room_label(room)}",
            )
        return member
    last = await s.scalar(
        select(MemberRow)
        .where(
            MemberRow.sdk_app_id == sdk_app_id,
            MemberRow.user_id == user_id,
            *MemberRow.in_room(room),
        )
        .order_by(MemberRow.id.desc())
        .limit(1)
    )
    if last is None:
        raise ServerError(
            ServerCode.ROOM_MISMATCH, f"user {user_id} is not in room {room_label(room)}"
        )
    if last.leave_reason == "closed":
        raise ServerError(
            ServerCode.ROOM_CLOSED,
            f"room {room_label(room)} was closed (session {last.session_id})",
        )
    raise ServerError(
        ServerCode.USER_EXITED,
        f"user {user_id} has left room {room_label(room)} (reason: {last.leave_reason})",
    )
