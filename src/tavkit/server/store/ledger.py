"""Read-only views of the call ledger: one session's history, the open rooms of an app.

:mod:`tavkit.server.rooms.service` owns every change; these queries only read, so they take
no lock and can serve the session and admin pages while rooms change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from tavkit.protocol import PUBLISH_ALL, RoomId
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.models import EventRow, MemberRow, SessionRow

__all__ = ["OpenRoom", "SessionRecord", "open_rooms", "session_record"]


@dataclass(frozen=True)
class SessionRecord:
    """A session as ``GET /v1/sessions/{uuid}`` shows it: who came, who left, what happened."""

    room_uuid: uuid.UUID
    sdk_app_id: int
    room_id: RoomId
    """The room: an ``int``, or a ``str`` for a string room."""
    opened_at: float
    closed_at: float | None
    close_reason: str | None
    members: list[MemberRow]
    events: list[EventRow]

    def has_member(self, user_id: str) -> bool:
        """Whether ``user_id`` was ever in this session."""
        return any(row.user_id == user_id for row in self.members)

    def to_wire(self) -> dict[str, Any]:
        """The protocol's session object."""
        return {
            "roomUuid": str(self.room_uuid),
            "sdkAppId": self.sdk_app_id,
            "roomId": self.room_id,
            "openedAt": self.opened_at,
            "closedAt": self.closed_at,
            "closeReason": self.close_reason,
            "members": [
                {
                    "userId": row.user_id,
                    "joinedAt": row.joined_at,
                    "leftAt": row.left_at,
                    "leaveReason": row.leave_reason,
                }
                for row in self.members
            ],
            "events": [
                {"at": row.at, "kind": row.kind, "userId": row.user_id, "detail": row.detail}
                for row in self.events
            ],
        }


@dataclass(frozen=True)
class OpenRoom:
    """An open session and its live members, for the admin API."""

    room_uuid: uuid.UUID
    sdk_app_id: int
    room_id: RoomId
    """The room: an ``int``, or a ``str`` for a string room."""
    opened_at: float
    members: list[MemberRow]

    def to_wire(self) -> dict[str, Any]:
        """The protocol's admin room object."""
        return {
            "roomUuid": str(self.room_uuid),
            "sdkAppId": self.sdk_app_id,
            "roomId": self.room_id,
            "openedAt": self.opened_at,
            "members": [
                {
                    "userId": row.user_id,
                    "joinedAt": row.joined_at,
                    "muted": row.muted,
                    "camera": row.camera,
                    "publish": row.privileges & PUBLISH_ALL,
                }
                for row in self.members
            ],
        }


async def session_record(store: Store, room_uuid: uuid.UUID) -> SessionRecord | None:
    """The whole history of one session, or None if there is no such session."""
    with storage_errors("reading the session"):
        async with store.reads() as s:
            session = await s.get(SessionRow, room_uuid)
            if session is None:
                return None
            members = await s.scalars(
                select(MemberRow)
                .where(MemberRow.session_id == room_uuid)
                .order_by(MemberRow.joined_at, MemberRow.id)
            )
            events = await s.scalars(
                select(EventRow).where(EventRow.session_id == room_uuid).order_by(EventRow.id)
            )
            return SessionRecord(
                room_uuid=session.id,
                sdk_app_id=session.sdk_app_id,
                room_id=session.room,
                opened_at=session.opened_at,
                closed_at=session.closed_at,
                close_reason=session.close_reason,
                members=list(members),
                events=list(events),
            )


async def open_rooms(store: Store, sdk_app_id: int) -> list[OpenRoom]:
    """The app's open sessions, by room id, each with its live members."""
    with storage_errors("listing rooms"):
        async with store.reads() as s:
            sessions = list(
                await s.scalars(
                    select(SessionRow)
                    .where(SessionRow.sdk_app_id == sdk_app_id, SessionRow.closed_at.is_(None))
                    .order_by(SessionRow.room_id, SessionRow.room_str)
                )
            )
            live = await s.scalars(
                select(MemberRow)
                .where(MemberRow.sdk_app_id == sdk_app_id, MemberRow.left_at.is_(None))
                .order_by(MemberRow.joined_at, MemberRow.id)
            )
            by_session: dict[uuid.UUID, list[MemberRow]] = {}
            for row in live:
                by_session.setdefault(row.session_id, []).append(row)
            return [
                OpenRoom(
                    room_uuid=session.id,
                    sdk_app_id=session.sdk_app_id,
                    room_id=session.room,
                    opened_at=session.opened_at,
                    members=by_session.get(session.id, []),
                )
                for session in sessions
            ]
