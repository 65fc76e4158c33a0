"""REST v1 for rooms and sessions (``docs/protocol.md`` section 1).

Handlers are thin: read the credentials (:mod:`tavkit.server.auth`), call the room
service or the ledger, shape the answer. ``enter``, ``heartbeat`` and ``exit`` spend
a token of the client address's bucket, then of the user's
(:mod:`tavkit.server.ratelimit`: 429 with server 10004 past either).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tavkit.auth import Privilege
from tavkit.server.auth import CredentialsDep, authenticate
from tavkit.server.context import context_of
from tavkit.server.http import (
    EMPTY_BODY,
    MemberBody,
    RoomInPath,
    RoomUuidResponse,
    SessionUuid,
    error_responses,
    json_body,
    room_routes,
    socket_url,
)
from tavkit.server.ice import ice_servers_for
from tavkit.server.rooms.access import visible_session
from tavkit.server.signaling.tokens import mint

__all__ = ["api"]

# -- documentation models ---------------------------------------------------------------


class EnterResponse(BaseModel):
    """What ``enter`` returns: the session, the others, and how to connect."""

    roomUuid: str
    roomId: int | str = Field(description="The room: a number, or a string for a string room.")
    userId: str
    openedAt: float
    members: list[MemberBody]
    heartbeatInterval: float
    heartbeatTimeout: float
    iceServers: list[dict[str, Any]]
    iceTransportPolicy: Literal["all", "relay"]
    mediaMode: Literal["mesh", "sfu"] = Field(
        description="sfu: media goes through the SFU (media-signal frames), never the mesh."
        " In an auto room, mesh until the room grows past its threshold (then a media-mode"
        " frame on the socket)."
    )
    privileges: int
    socketUrl: str
    socketToken: str
    socketTokenExpiresIn: float


class HeartbeatResponse(BaseModel):
    """The session the heartbeat kept the caller in."""

    roomUuid: str
    heartbeatInterval: float


class UsersResponse(BaseModel):
    """A session's live members, the caller included."""

    roomUuid: str
    members: list[MemberBody]


class SessionMember(BaseModel):
    """A membership in a session's history."""

    userId: str
    joinedAt: float
    leftAt: float | None
    leaveReason: str | None


class SessionEvent(BaseModel):
    """One line of a session's event log."""

    at: float
    kind: str
    userId: str | None
    detail: str | None


class SessionResponse(BaseModel):
    """A session's history."""

    roomUuid: str
    sdkAppId: int
    roomId: int | str = Field(description="The room: a number, or a string for a string room.")
    openedAt: float
    closedAt: float | None
    closeReason: str | None
    members: list[SessionMember]
    events: list[SessionEvent]


# -- routes -----------------------------------------------------------------------------

api = APIRouter(prefix="/v1")
"""Rooms and sessions: enter, heartbeat, exit, users, a session's history."""


@room_routes(
    api,
    "POST",
    path="/enter",
    response_model=EnterResponse,
    responses=error_responses(400, 401, 403, 409, 422, 429, 503),
    openapi_extra=EMPTY_BODY,
    tags=["rooms"],
)
async def enter(request: Request, room: RoomInPath, creds: CredentialsDep) -> dict[str, Any]:
    """Enter a room: opens a session if none is open, replaces the caller's other connection.

    Refusals: avkit 70346 (userSig), 80/82/86/87 (privateMapKey), 88 (unknown
    sdkAppId), server 14000 (room full); 429 with server 10004 past the caller's enter
    bucket, or past their cap on new sessions when the room has none open.
    """
    ctx = context_of(request)
    ctx.limits.address(request)
    await json_body(request)
    caller = authenticate(ctx, creds, entering_room=room)
    ctx.limits.user("enter", caller)
    result = await ctx.rooms.enter(
        caller.sdk_app_id,
        room,
        caller.user_id,
        privileges=caller.privileges,
        may_create=bool(caller.privileges & Privilege.CREATE),
        may_open=lambda: ctx.limits.user("session", caller),
    )
    settings = ctx.settings
    # An auto room switches to the SFU here, as the member past its threshold enters.
    media_mode = await ctx.media_modes.entered(
        caller.sdk_app_id, result.room_uuid, len(result.members) + 1
    )
    token = mint(
        ctx.socket_secret,
        sdk_app_id=caller.sdk_app_id,
        room_uuid=result.room_uuid,
        user_id=caller.user_id,
        connection_id=result.connection_id,
        ttl=settings.socket_token_ttl,
        privileges=caller.privileges,
        room_id=room,
        user_sig_expires_at=caller.user_sig_expires_at,
        private_map_key_expires_at=caller.private_map_key_expires_at,
    )
    # TURN credentials end with the caller's own (plus the renewal grace): see ice.py.
    ends = caller.expires_at
    turn_until = None if ends is None else ends + settings.renew_grace
    return {
        "roomUuid": str(result.room_uuid),
        "roomId": room,
        "userId": caller.user_id,
        "openedAt": result.opened_at,
        "members": [member.to_wire() for member in result.members],
        "heartbeatInterval": settings.heartbeat_interval,
        "heartbeatTimeout": settings.heartbeat_timeout,
        "iceServers": ice_servers_for(settings, caller.user_id, time.time(), until=turn_until),
        "iceTransportPolicy": settings.ice_transport_policy_of(caller.sdk_app_id),
        "mediaMode": media_mode,
        "privileges": caller.privileges,
        "socketUrl": socket_url(request, settings.public_url),
        "socketToken": token,
        "socketTokenExpiresIn": settings.socket_token_ttl,
    }


@room_routes(
    api,
    "POST",
    path="/heartbeat",
    response_model=HeartbeatResponse,
    responses=error_responses(400, 401, 409, 410, 422, 429, 503),
    openapi_extra=EMPTY_BODY,
    tags=["rooms"],
)
async def heartbeat(request: Request, room: RoomInPath, creds: CredentialsDep) -> dict[str, Any]:
    """Tell the server the caller is still in the room (14002 other room, 14003/14004 gone)."""
    ctx = context_of(request)
    ctx.limits.address(request)
    await json_body(request)
    caller = authenticate(ctx, creds)
    ctx.limits.user("heartbeat", caller)
    room_uuid = await ctx.rooms.heartbeat(caller.sdk_app_id, room, caller.user_id)
    return {"roomUuid": str(room_uuid), "heartbeatInterval": ctx.settings.heartbeat_interval}


@room_routes(
    api,
    "POST",
    path="/exit",
    response_model=RoomUuidResponse,
    responses=error_responses(400, 401, 409, 410, 422, 429, 503),
    openapi_extra=EMPTY_BODY,
    tags=["rooms"],
)
async def exit_room(request: Request, room: RoomInPath, creds: CredentialsDep) -> dict[str, Any]:
    """Leave the room; the session closes shortly after its last member leaves."""
    ctx = context_of(request)
    ctx.limits.address(request)
    await json_body(request)
    caller = authenticate(ctx, creds)
    ctx.limits.user("exit", caller)
    room_uuid = await ctx.rooms.exit(caller.sdk_app_id, room, caller.user_id)
    return {"roomUuid": str(room_uuid)}


@room_routes(
    api,
    "GET",
    path="/users",
    response_model=UsersResponse,
    responses=error_responses(400, 401, 409, 410, 422, 503),
    tags=["rooms"],
)
async def users(request: Request, room: RoomInPath, creds: CredentialsDep) -> dict[str, Any]:
    """The room's live members, the caller included; only a member may ask."""
    ctx = context_of(request)
    caller = authenticate(ctx, creds)
    room_uuid, members = await ctx.rooms.room_members(caller.sdk_app_id, room, caller.user_id)
    return {"roomUuid": str(room_uuid), "members": [m.to_wire() for m in members]}


# -- sessions ----------------------------------------------------------------------------


@api.get(
    "/sessions/{uuid}",
    response_model=SessionResponse,
    responses=error_responses(400, 401, 404, 422, 503),
    tags=["sessions"],
)
async def session(request: Request, room_uuid: SessionUuid, creds: CredentialsDep) -> Any:
    """A session's members and event log, for anyone who was in it or the app's admin."""
    record = await visible_session(request, room_uuid, creds)
    return record.to_wire()
