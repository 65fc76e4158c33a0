"""REST v1 for calls (``docs/protocol.md`` section 7): ring, answer, cancel, the records.

Every route takes the same credential headers as the room routes
(:mod:`tavkit.server.auth`); who may do what is the service's to decide (only the
caller cancels and hangs up, only a callee accepts or declines, a participant or the
app's admin reads). Writes spend a token of the client address's bucket, then of the
user's (``enter`` to ring and accept, ``exit`` to decline, cancel and hang up); reads
spend ``history``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import AvkitCode, AvkitError, ServerCode, ServerError
from tavkit.protocol import FrameError
from tavkit.protocol._fields import Fields
from tavkit.protocol.calls import MAX_DECLINE_REASON_CHARS, parse_call_request
from tavkit.protocol.rooms import RoomId
from tavkit.server.auth import USER_ID_RE, Caller, CredentialsDep, authenticate
from tavkit.server.context import ServerContext, context_of
from tavkit.server.http import (
    EMPTY_BODY,
    UUID_PATTERN,
    SessionUuid,
    body_with,
    error_responses,
    json_body,
)
from tavkit.server.journal import JournalEntry, read_entries
from tavkit.server.store.ledger import session_record
from tavkit.server.store.unit_of_work import Outbox, transaction

__all__ = ["api"]

api = APIRouter(prefix="/v1")
"""Calls: ring, accept, decline, cancel, hang up; a user's calls; a call's events."""

CallUuid = Annotated[
    str, PathParam(alias="uuid", pattern=UUID_PATTERN, description="A call UUID, lowercase.")
]
_MAX_HISTORY = 500


class CallBody(BaseModel):
    """A call (``docs/protocol.md`` section 7 lists every field)."""

    callId: str
    caller: str
    callees: list[dict[str, Any]]
    media: str
    roomId: int | str = Field(description="The room: a number, or a string for a string room.")
    state: str
    createdAt: float
    ringUntil: float
    data: Any = None
    answeredAt: float | None = None
    endedAt: float | None = None
    endReason: str | None = None


class CallResponse(BaseModel):
    """The call after the request's change."""

    call: CallBody


class CallsResponse(BaseModel):
    """Call records, newest first."""

    calls: list[dict[str, Any]]


class EventsResponse(BaseModel):
    """Journal entries in order (the webhook bodies)."""

    events: list[dict[str, Any]]


_CREATE_BODY = body_with(
    {
        "type": "object",
        "properties": {
            "callees": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "media": {"enum": ["video", "audio"]},
            "roomId": {
                "oneOf": [
                    {"type": "integer", "minimum": 1, "maximum": 4294967295},
                    {"type": "string", "minLength": 1, "maxLength": 64},
                ]
            },
            "timeout": {"type": "number"},
            "data": {},
        },
        "required": ["callees", "media"],
    }
)
_DECLINE_BODY = body_with({"type": "object", "properties": {"reason": {"type": "string"}}})


async def _caller(
    request: Request, creds: CredentialsDep, kind: Any
) -> tuple[ServerContext, Caller]:
    ctx = context_of(request)
    ctx.limits.address(request)
    caller = authenticate(ctx, creds)
    ctx.limits.user(kind, caller)
    return ctx, caller


@api.post(
    "/calls",
    response_model=CallResponse,
    responses=error_responses(400, 401, 409, 422, 429, 503),
    openapi_extra=_CREATE_BODY,
    tags=["calls"],
)
async def create_call(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """Ring ``callees``; the call (its ``roomId`` is the room to enter) as it now stands.

    With a ``roomId``, the caller's privateMapKey must open that room as ``enter``
    checks it (the same codes); an app that requires keys needs a ``roomId``.
    """
    ctx, caller = await _caller(request, creds, "enter")
    body = await json_body(request)
    call_request = parse_call_request(body if body is not None else {})
    if call_request.room_id is not None:
        # The caller waits in the room: its privateMapKey is checked now, as enter would.
        authenticate(ctx, creds, entering_room=call_request.room_id)
    elif caller.app.require_private_map_key:
        raise ServerError(
            ServerCode.INVALID_PARAMETER,
            "body.roomId: required, since this app requires a privateMapKey for the room",
        )
    info = await ctx.calls.create(caller.sdk_app_id, caller.user_id, call_request)
    return {"call": info.to_wire()}


@api.post(
    "/calls/{uuid}/accept",
    response_model=CallResponse,
    responses=error_responses(400, 401, 403, 404, 410, 422, 429, 503),
    openapi_extra=EMPTY_BODY,
    tags=["calls"],
)
async def accept_call(request: Request, call_id: CallUuid, creds: CredentialsDep) -> dict[str, Any]:
    """A callee answers; enter ``call.roomId`` next (avkit 10001 for anyone else).

    Their privateMapKey is checked for the call's room as ``enter`` will: a callee who
    could not enter cannot accept (the call goes on ringing the others).
    """
    ctx, caller = await _caller(request, creds, "enter")
    await json_body(request)

    def may_enter(room: RoomId) -> None:
        authenticate(ctx, creds, entering_room=room)  # the callee enters next: as enter would

    info = await ctx.calls.accept(
        caller.sdk_app_id, uuid.UUID(call_id), caller.user_id, may_enter=may_enter
    )
    return {"call": info.to_wire()}


@api.post(
    "/calls/{uuid}/decline",
    response_model=CallResponse,
    responses=error_responses(400, 401, 403, 404, 410, 422, 429, 503),
    openapi_extra=_DECLINE_BODY,
    tags=["calls"],
)
async def decline_call(
    request: Request, call_id: CallUuid, creds: CredentialsDep
) -> dict[str, Any]:
    """A callee refuses, with an optional ``reason`` (``busy`` makes their outcome busy)."""
    ctx, caller = await _caller(request, creds, "exit")
    body = await json_body(request)
    reason = Fields(body or {}, "body").opt_string("reason", max_bytes=MAX_DECLINE_REASON_CHARS)
    if reason == "":
        raise FrameError(ServerCode.INVALID_PARAMETER, "body.reason: expected a non-empty string")
    info = await ctx.calls.decline(caller.sdk_app_id, uuid.UUID(call_id), caller.user_id, reason)
    return {"call": info.to_wire()}


@api.post(
    "/calls/{uuid}/cancel",
    response_model=CallResponse,
    responses=error_responses(400, 401, 403, 404, 410, 422, 429, 503),
    openapi_extra=EMPTY_BODY,
    tags=["calls"],
)
async def cancel_call(request: Request, call_id: CallUuid, creds: CredentialsDep) -> dict[str, Any]:
    """The caller stops the ringing before anyone accepted."""
    ctx, caller = await _caller(request, creds, "exit")
    await json_body(request)
    info = await ctx.calls.cancel(caller.sdk_app_id, uuid.UUID(call_id), caller.user_id)
    return {"call": info.to_wire()}


@api.post(
    "/calls/{uuid}/hangup",
    response_model=CallResponse,
    responses=error_responses(400, 401, 403, 404, 410, 422, 429, 503),
    openapi_extra=EMPTY_BODY,
    tags=["calls"],
)
async def hangup_call(request: Request, call_id: CallUuid, creds: CredentialsDep) -> dict[str, Any]:
    """The caller ends the call for everyone (a call still ringing is cancelled)."""
    ctx, caller = await _caller(request, creds, "exit")
    await json_body(request)
    info = await ctx.calls.hangup(caller.sdk_app_id, uuid.UUID(call_id), caller.user_id)
    return {"call": info.to_wire()}


@api.get(
    "/calls",
    response_model=CallsResponse,
    responses=error_responses(400, 401, 403, 422, 429, 503),
    tags=["calls"],
)
async def list_calls(
    request: Request,
    creds: CredentialsDep,
    user: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[float, Query(ge=0, le=1e12)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=_MAX_HISTORY)] = 100,
) -> dict[str, Any]:
    """Call records since ``since``, newest first: a user's own (``user`` may only name
    them), the admin's every call of the app (or ``user``'s)."""
    ctx, caller = await _caller(request, creds, "history")
    if user is not None and not USER_ID_RE.fullmatch(user):
        raise ServerError(ServerCode.INVALID_PARAMETER, "user: expected a userId")
    if not caller.is_admin:
        if user is not None and user != caller.user_id:
            raise AvkitError(
                AvkitCode.NO_PERMISSION, f"{caller.user_id} may only read their own calls"
            )
        user = caller.user_id
    records = await ctx.calls.history(caller.sdk_app_id, user, since, limit)
    return {"calls": [r.to_wire() for r in records]}


@api.get(
    "/calls/{uuid}",
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
    tags=["calls"],
)
async def get_call(request: Request, call_id: CallUuid, creds: CredentialsDep) -> dict[str, Any]:
    """One call's record, for its participants and the admin."""
    ctx, caller = await _caller(request, creds, "history")
    reader = None if caller.is_admin else caller.user_id
    record = await ctx.calls.record(caller.sdk_app_id, uuid.UUID(call_id), reader)
    return {"call": record.to_wire()}


@api.get(
    "/calls/{uuid}/events",
    response_model=EventsResponse,
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
    tags=["calls"],
)
async def call_events(request: Request, call_id: CallUuid, creds: CredentialsDep) -> dict[str, Any]:
    """The call's journal entries in order (the same bodies its webhooks carry)."""
    ctx, caller = await _caller(request, creds, "history")
    reader = None if caller.is_admin else caller.user_id
    entries = await ctx.calls.events(caller.sdk_app_id, uuid.UUID(call_id), reader)
    return {"events": [e.to_wire() for e in entries]}


@api.get(
    "/sessions/{uuid}/events",
    response_model=EventsResponse,
    responses=error_responses(400, 401, 404, 422, 429, 503),
    tags=["sessions"],
)
async def session_events(
    request: Request,
    room_uuid: SessionUuid,
    creds: CredentialsDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=_MAX_HISTORY)] = _MAX_HISTORY,
) -> dict[str, Any]:
    """Admin: the session's journal entries with an id above ``after``, in order."""
    ctx = context_of(request)
    ctx.limits.address(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    session_id = uuid.UUID(room_uuid)
    record = await session_record(ctx.store, session_id)
    if record is None or record.sdk_app_id != caller.sdk_app_id:
        raise ServerError(ServerCode.SESSION_NOT_FOUND, f"no session {room_uuid}")

    async def run(s: AsyncSession, _out: Outbox) -> list[JournalEntry]:
        return await read_entries(
            s, caller.sdk_app_id, room_uuid=session_id, after=after, limit=limit
        )

    entries = await transaction(ctx.store, "reading the session's events", run, readonly=True)
    return {"events": [e.to_wire() for e in entries]}
