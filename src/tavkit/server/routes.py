"""REST v1 (``docs/protocol.md`` section 1): rooms, sessions, admin, demo, health.

Handlers are thin: read the credentials (:mod:`.auth`), call the room service
(:mod:`.rooms`) or the ledger, shape the answer. Bodies are read by
:func:`json_body` rather than by FastAPI's model binding, so each malformed body
gets the seed's code (10003 not JSON, 10001 not an object, 10004 a bad field)
whatever its Content-Type; the response models below document the answers in
``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from tavkit.auth import gen_user_sig
from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol import MAX_SEQ
from tavkit.server.auth import USER_ID_RE, CredentialsDep, authenticate, context_of
from tavkit.server.errors import error_response
from tavkit.server.ice import ice_servers_for
from tavkit.server.im import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, message_service
from tavkit.server.settings import U32_MAX
from tavkit.server.store.ledger import SessionRecord, open_rooms, session_record
from tavkit.server.tokens import mint

__all__ = ["DEMO_SIG_LIFETIME", "api", "demo", "demo_page", "health", "json_body"]

DEMO_SIG_LIFETIME: Final = 24 * 3600
"""Lifetime of the userSigs the demo endpoint mints."""

_UUID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

RoomId = Annotated[
    int,
    PathParam(alias="roomId", ge=1, le=U32_MAX, description="The room: an integer 1..2^32-1."),
]
SessionUuid = Annotated[
    str,
    PathParam(alias="uuid", pattern=_UUID_PATTERN, description="A session UUID, lowercase."),
]
UserIdParam = Annotated[
    str,
    PathParam(alias="userId", pattern=f"^{USER_ID_RE.pattern}$", description="A userId."),
]


# -- documentation models --------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error: the seed's shape."""

    module: Literal["trtc", "server", "http", "avkit"]
    errorCode: int
    errorMsg: str


class Member(BaseModel):
    """A live member."""

    userId: str
    joinedAt: float
    muted: bool
    camera: bool


class EnterResponse(BaseModel):
    """What ``enter`` returns: the session, the others, and how to connect."""

    roomUuid: str
    roomId: int
    userId: str
    members: list[Member]
    heartbeatInterval: float
    heartbeatTimeout: float
    iceServers: list[dict[str, Any]]
    iceTransportPolicy: Literal["all", "relay"]
    privileges: int
    socketUrl: str
    socketToken: str
    socketTokenExpiresIn: float


class HeartbeatResponse(BaseModel):
    """The session the heartbeat kept the caller in."""

    roomUuid: str
    heartbeatInterval: float


class RoomUuidResponse(BaseModel):
    """The session an action applied to."""

    roomUuid: str


class UsersResponse(BaseModel):
    """A session's live members, the caller included."""

    roomUuid: str
    members: list[Member]


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
    roomId: int
    openedAt: float
    closedAt: float | None
    closeReason: str | None
    members: list[SessionMember]
    events: list[SessionEvent]


class MessagesResponse(BaseModel):
    """A page of a session's in-call messages, ``seq`` order."""

    roomUuid: str
    messages: list[dict[str, Any]]
    lastSeq: int
    hasMore: bool


class AdminRoom(BaseModel):
    """An open room."""

    roomUuid: str
    sdkAppId: int
    roomId: int
    openedAt: float
    members: list[Member]


class AdminRoomsResponse(BaseModel):
    """The app's open rooms."""

    rooms: list[AdminRoom]


class DemoUserSigRequest(BaseModel):
    """Whom to mint a userSig for."""

    userId: str


class DemoUserSigResponse(BaseModel):
    """A freshly minted userSig for the demo app."""

    sdkAppId: int
    userId: str
    userSig: str


class HealthResponse(BaseModel):
    """Liveness and database reachability."""

    status: str
    database: str


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


_COMMON = _errors(400, 401, 422, 503)


# -- bodies ------------------------------------------------------------------------------


async def json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object, None when there is no body.

    Server 10003 when the body is not JSON at all, 10001 when it is JSON but not an
    object; size was already capped by the guard middleware.
    """
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServerError(ServerCode.JSON_DECODE, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ServerError(ServerCode.BAD_REQUEST, "the body must be a JSON object")
    return data


def _body_with(fields: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a JSON object with ``fields`` (a JSON schema)."""
    return {
        "requestBody": {
            "content": {"application/json": {"schema": fields}},
            "required": False,
        }
    }


_EMPTY_BODY = _body_with({"type": "object", "properties": {}})


# -- rooms -------------------------------------------------------------------------------

api = APIRouter(prefix="/v1")


@api.post(
    "/rooms/{roomId}/enter",
    response_model=EnterResponse,
    responses=_errors(400, 401, 403, 409, 422, 503),
    openapi_extra=_EMPTY_BODY,
    tags=["rooms"],
)
async def enter(request: Request, room_id: RoomId, creds: CredentialsDep) -> dict[str, Any]:
    """Enter a room: opens a session if none is open, replaces the caller's other connection.

    Refusals: avkit 70346 (userSig), 80/82/86/87 (privateMapKey), 88 (unknown
    sdkAppId), server 14000 (room full).
    """
    ctx = context_of(request)
    await json_body(request)
    caller = authenticate(ctx, creds, entering_room=room_id)
    result = await ctx.rooms.enter(
        caller.sdk_app_id, room_id, caller.user_id, privileges=caller.privileges
    )
    settings = ctx.settings
    token = mint(
        ctx.socket_secret,
        sdk_app_id=caller.sdk_app_id,
        room_uuid=result.room_uuid,
        user_id=caller.user_id,
        connection_id=result.connection_id,
        ttl=settings.socket_token_ttl,
    )
    return {
        "roomUuid": str(result.room_uuid),
        "roomId": room_id,
        "userId": caller.user_id,
        "members": [member.to_wire() for member in result.members],
        "heartbeatInterval": settings.heartbeat_interval,
        "heartbeatTimeout": settings.heartbeat_timeout,
        "iceServers": ice_servers_for(settings, caller.user_id, time.time()),
        "iceTransportPolicy": settings.ice_transport_policy,
        "privileges": caller.privileges,
        "socketUrl": _socket_url(request, settings.public_url),
        "socketToken": token,
        "socketTokenExpiresIn": settings.socket_token_ttl,
    }


@api.post(
    "/rooms/{roomId}/heartbeat",
    response_model=HeartbeatResponse,
    responses=_errors(400, 401, 409, 410, 422, 503),
    openapi_extra=_EMPTY_BODY,
    tags=["rooms"],
)
async def heartbeat(request: Request, room_id: RoomId, creds: CredentialsDep) -> dict[str, Any]:
    """Tell the server the caller is still in the room (14002 other room, 14003/14004 gone)."""
    ctx = context_of(request)
    await json_body(request)
    caller = authenticate(ctx, creds)
    room_uuid = await ctx.rooms.heartbeat(caller.sdk_app_id, room_id, caller.user_id)
    return {"roomUuid": str(room_uuid), "heartbeatInterval": ctx.settings.heartbeat_interval}


@api.post(
    "/rooms/{roomId}/exit",
    response_model=RoomUuidResponse,
    responses=_errors(400, 401, 409, 410, 422, 503),
    openapi_extra=_EMPTY_BODY,
    tags=["rooms"],
)
async def exit_room(request: Request, room_id: RoomId, creds: CredentialsDep) -> dict[str, Any]:
    """Leave the room; the session closes shortly after its last member leaves."""
    ctx = context_of(request)
    await json_body(request)
    caller = authenticate(ctx, creds)
    room_uuid = await ctx.rooms.exit(caller.sdk_app_id, room_id, caller.user_id)
    return {"roomUuid": str(room_uuid)}


@api.get(
    "/rooms/{roomId}/users",
    response_model=UsersResponse,
    responses=_errors(400, 401, 409, 410, 422, 503),
    tags=["rooms"],
)
async def users(request: Request, room_id: RoomId, creds: CredentialsDep) -> dict[str, Any]:
    """The room's live members, the caller included; only a member may ask."""
    ctx = context_of(request)
    caller = authenticate(ctx, creds)
    room_uuid, members = await ctx.rooms.room_members(caller.sdk_app_id, room_id, caller.user_id)
    return {"roomUuid": str(room_uuid), "members": [m.to_wire() for m in members]}


# -- sessions ----------------------------------------------------------------------------


@api.get(
    "/sessions/{uuid}",
    response_model=SessionResponse,
    responses=_errors(400, 401, 404, 422, 503),
    tags=["sessions"],
)
async def session(request: Request, room_uuid: SessionUuid, creds: CredentialsDep) -> Any:
    """A session's members and event log, for anyone who was in it or the app's admin."""
    record = await visible_session(request, room_uuid, creds)
    return record.to_wire()


@api.get(
    "/sessions/{uuid}/messages",
    response_model=MessagesResponse,
    responses=_errors(400, 401, 404, 422, 503),
    tags=["sessions"],
)
async def messages(
    request: Request,
    room_uuid: SessionUuid,
    creds: CredentialsDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Only seq > after.")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_HISTORY_LIMIT, description="At most this many messages.")
    ] = DEFAULT_HISTORY_LIMIT,
) -> Any:
    """A session's in-call messages, also after it closed (its members, ever, and the admin)."""
    record = await visible_session(request, room_uuid, creds)
    page = await message_service(request.app).history(record.room_uuid, after=after, limit=limit)
    return {
        "roomUuid": str(record.room_uuid),
        "messages": [m.to_wire() for m in page.messages],
        "lastSeq": page.last_seq,
        "hasMore": page.has_more,
    }


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


# -- admin -------------------------------------------------------------------------------


@api.get("/admin/rooms", response_model=AdminRoomsResponse, responses=_COMMON, tags=["admin"])
async def admin_rooms(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """The caller's app's open rooms and their members (admin only)."""
    ctx = context_of(request)
    caller = authenticate(ctx, creds, admin=True)
    rooms = await open_rooms(ctx.store, caller.sdk_app_id)
    return {"rooms": [room.to_wire() for room in rooms]}


@api.post(
    "/admin/rooms/{roomId}/close",
    response_model=RoomUuidResponse,
    responses=_errors(400, 401, 410, 422, 503),
    openapi_extra=_EMPTY_BODY,
    tags=["admin"],
)
async def admin_close(request: Request, room_id: RoomId, creds: CredentialsDep) -> dict[str, Any]:
    """Close the room's open session; every member leaves with reason ``closed``."""
    ctx = context_of(request)
    await json_body(request)
    caller = authenticate(ctx, creds, admin=True)
    room_uuid = await ctx.rooms.close(caller.sdk_app_id, room_id)
    return {"roomUuid": str(room_uuid)}


@api.post(
    "/admin/rooms/{roomId}/users/{userId}/remove",
    response_model=RoomUuidResponse,
    responses=_errors(400, 401, 410, 422, 503),
    openapi_extra=_EMPTY_BODY,
    tags=["admin"],
)
async def admin_remove(
    request: Request, room_id: RoomId, user_id: UserIdParam, creds: CredentialsDep
) -> dict[str, Any]:
    """Remove one member from the room (reason ``removed``)."""
    ctx = context_of(request)
    await json_body(request)
    caller = authenticate(ctx, creds, admin=True)
    room_uuid = await ctx.rooms.remove(caller.sdk_app_id, room_id, user_id)
    return {"roomUuid": str(room_uuid)}


# -- demo --------------------------------------------------------------------------------

demo = APIRouter(prefix="/v1")
"""Included only in demo mode; elsewhere its path is an ordinary 404."""


@demo.post(
    "/demo/usersig",
    response_model=DemoUserSigResponse,
    responses=_errors(400, 404, 422),
    openapi_extra=_body_with(DemoUserSigRequest.model_json_schema()),
    tags=["demo"],
)
async def demo_usersig(request: Request) -> dict[str, Any]:
    """Demo mode only: mint a userSig of the demo app for any userId (404 otherwise)."""
    settings = context_of(request).settings
    body = await json_body(request) or {}
    user_id = body.get("userId")
    if not isinstance(user_id, str) or not USER_ID_RE.fullmatch(user_id):
        raise ServerError(
            ServerCode.INVALID_PARAMETER,
            "userId: expected 1-64 characters of A-Z a-z 0-9 _ . @ -",
        )
    app = settings.apps[0]
    sig = gen_user_sig(app.sdk_app_id, app.key, user_id, DEMO_SIG_LIFETIME)
    return {"sdkAppId": app.sdk_app_id, "userId": user_id, "userSig": sig}


def demo_page(index: Path) -> Any:
    """A handler serving the demo page ``index`` (404 in the seed's shape if it is missing)."""

    async def page() -> Any:
        if not await asyncio.to_thread(index.is_file):
            return error_response(
                ServerError(ServerCode.BAD_REQUEST, "the demo page is not installed"), status=404
            )
        return FileResponse(index, media_type="text/html")

    return page


# -- health ------------------------------------------------------------------------------

health = APIRouter()


@health.get(
    "/healthz",
    response_model=HealthResponse,
    responses={503: {"model": ErrorBody, "description": "The database is unreachable."}},
    tags=["health"],
)
async def healthz(request: Request) -> Any:
    """Liveness: 200 when the server and its database answer, 503 otherwise."""
    ctx = context_of(request)
    try:
        await ctx.store.ping()
    except TAvKitError as exc:
        body = {"status": "error", "database": "unreachable", **exc.to_dict()}
        return JSONResponse(body, status_code=503)
    return {"status": "ok", "database": "ok"}


def _socket_url(request: Request, public_url: str | None) -> str:
    """The absolute URL of the signaling socket, as this client reaches the server.

    Under a mount (or uvicorn's ``--root-path``) the socket lives below that prefix too,
    which Starlette keeps in the scope's ``root_path``.
    """
    if public_url:
        base = public_url.rstrip("/")
    else:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        base = f"{request.url.scheme}://{request.url.netloc}{root}"
    return re.sub(r"^http", "ws", base) + "/v1/ws"
