"""Who may read a session's data: one check shared by every ``/sessions/{uuid}/...`` route."""

from __future__ import annotations

import uuid

from fastapi import Request

from tavkit.errors import ServerCode, ServerError
from tavkit.server.auth import CredentialsDep, authenticate
from tavkit.server.context import context_of
from tavkit.server.store.ledger import SessionRecord, session_record

__all__ = ["visible_session"]


async def visible_session(request: Request, room_uuid: str, creds: CredentialsDep) -> SessionRecord:
    """The session if the caller may see it: 14007 unknown, 10005 never a member.

    Shared by every ``/sessions/{uuid}/...`` route (messages, recordings), so who may
    read a session's data is decided in one place.
    """
    ctx = context_of(request)
    caller = authenticate(ctx, creds)
    record = await session_record(ctx.store, uuid.UUID(room_uuid))
    if record is None or record.sdk_app_id != caller.sdk_app_id:
        raise ServerError(ServerCode.SESSION_NOT_FOUND, f"no session {room_uuid}")
    if not caller.is_admin and not record.has_member(caller.user_id):
        raise ServerError(
            ServerCode.UNAUTHORISED, f"{caller.user_id} was never in session {room_uuid}"
        )
    return record
