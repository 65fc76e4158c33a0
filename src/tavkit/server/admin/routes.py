"""REST v1 for the app's admin: open rooms, close a room, remove a member.

Every route spends a token of the client address's bucket, then of the admin's
(:mod:`tavkit.server.ratelimit`: 429 with server 10004 past either).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tavkit.server.auth import CredentialsDep, authenticate
from tavkit.server.context import context_of
from tavkit.server.http import (
    EMPTY_BODY,
    MemberBody,
    RoomInPath,
    RoomUuidResponse,
    UserIdParam,
    error_responses,
    json_body,
    room_routes,
)
from tavkit.server.store.ledger import open_rooms

__all__ = ["api"]


class AdminRoom(BaseModel):
    """An open room."""

    roomUuid: str
    sdkAppId: int
    roomId: int | str = Field(description="The room: a number, or a string for a string room.")
    openedAt: float
    members: list[MemberBody]


class AdminRoomsResponse(BaseModel):
    """The app's open rooms."""

    rooms: list[AdminRoom]


api = APIRouter(prefix="/v1")


@api.get(
    "/admin/rooms",
    response_model=AdminRoomsResponse,
    responses=error_responses(400, 401, 422, 429, 503),
    tags=["admin"],
)
async def admin_rooms(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """The caller's app's open rooms and their members (admin only)."""
    ctx = context_of(request)
    ctx.limits.address(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    rooms = await open_rooms(ctx.store, caller.sdk_app_id)
    return {"rooms": [room.to_wire() for room in rooms]}


@room_routes(
    api,
    "POST",
    prefix="/admin",
    path="/close",
    response_model=RoomUuidResponse,
    responses=error_responses(400, 401, 410, 422, 429, 503),
    openapi_extra=EMPTY_BODY,
    tags=["admin"],
)
async def admin_close(request: Request, room: RoomInPath, creds: CredentialsDep) -> dict[str, Any]:
    """Close the room's open session; every member leaves with reason ``closed``."""
    ctx = context_of(request)
    ctx.limits.address(request)
    await json_body(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    room_uuid = await ctx.rooms.close(caller.sdk_app_id, room)
    return {"roomUuid": str(room_uuid)}


@room_routes(
    api,
    "POST",
    prefix="/admin",
    path="/users/{userId}/remove",
    response_model=RoomUuidResponse,
    responses=error_responses(400, 401, 410, 422, 429, 503),
    openapi_extra=EMPTY_BODY,
    tags=["admin"],
)
async def admin_remove(
    request: Request, room: RoomInPath, user_id: UserIdParam, creds: CredentialsDep
) -> dict[str, Any]:
    """Remove one member from the room (reason ``removed``)."""
    ctx = context_of(request)
    ctx.limits.address(request)
    await json_body(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    room_uuid = await ctx.rooms.remove(caller.sdk_app_id, room, user_id)
    return {"roomUuid": str(room_uuid)}
