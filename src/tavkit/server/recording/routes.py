"""REST for recordings (``docs/protocol.md`` section 6): list, download, delete, policy, control.

The files are written by :mod:`tavkit.server.recording.service`; this module only reads
rows and files. Downloads go through Starlette's :class:`FileResponse`, which
serves single and multiple byte ranges (206 with ``Content-Range``); the ``Range``
header is checked here first so a bad one is answered with 416 in the seed's error
shape (Starlette would answer 400 or 416 in plain text). The ``ETag`` is the file's
SHA-256, known once the file is complete.

Who reads what: a member of a session (ever) lists and downloads **their own**
recordings only; another member's file is 403 with server 10005. The app's admin lists,
downloads and deletes every recording. Someone who was never in the session is 401
with server 10005, an unknown session 404 with 14007.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import uuid
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import RoomId, room_label
from tavkit.server.auth import CredentialsDep, authenticate
from tavkit.server.context import context_of
from tavkit.server.errors import error_response
from tavkit.server.http import (
    ErrorBody,
    RoomInPath,
    SessionUuid,
    error_responses,
    json_body,
    room_routes,
)
from tavkit.server.recording import rows
from tavkit.server.recording.service import DiskFloorError, RecordingService
from tavkit.server.rooms.access import visible_session
from tavkit.server.settings import RECORDING_POLICIES
from tavkit.server.store.ledger import SessionRecord
from tavkit.server.store.recording_models import RecordingRow, StopReason

__all__ = ["recordings_of", "router"]

MEDIA_TYPE: Final = "video/x-matroska"
_RANGE_PART: Final = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")

RecordingId = Annotated[str, PathParam(alias="id", description="A recording's id (a UUID).")]

router = APIRouter(prefix="/v1")


class Recording(BaseModel):
    """One participant's stint in a session, as one file."""

    id: str
    userId: str
    startedAt: float
    endedAt: float | None
    duration: float | None
    size: int | None
    sha256: str | None
    status: Literal["recording", "complete", "partial", "failed"]
    hasVideo: bool
    hasAudio: bool
    stopReason: StopReason | None
    """Why the file ended (null while it is written): its member left, an admin stopped
    it, the session closed, the server shut down, the file or session limit, the
    free-disk floor, the server died (found at its next start), or the writer failed."""


class RecordingsResponse(BaseModel):
    """A session's recordings, whichever replica wrote them, and whether any replica is
    recording it now."""

    roomUuid: str
    recording: bool
    recordings: list[Recording]


class DeletedResponse(BaseModel):
    """A recording that is gone, file and row."""

    id: str
    deleted: bool


class PolicyResponse(BaseModel):
    """The app's recording policy; ``default`` when it follows ``--recording``."""

    sdkAppId: int
    policy: Literal["off", "auto", "on-demand"]
    default: bool


class QuotaResponse(BaseModel):
    """The app's recording limits and the recordings disk against its floor."""

    sdkAppId: int
    maxFileSeconds: float
    """A file is closed at this length and the recording goes on in a new one (0: none)."""
    maxSessionSeconds: float
    """A session's recorder stops after this long (0: no limit)."""
    minFreeBytes: int
    """Below this much free space recording stops and is refused (0: no floor)."""
    freeBytes: int
    belowFloor: bool
    lastDiskStopAt: float | None
    """When recording last stopped at the floor (since the server started)."""


class RecordingStateResponse(BaseModel):
    """Whether the room's open session is being recorded after the call."""

    roomUuid: str
    recording: bool


def recordings_of(request: Request) -> RecordingService:
    """The app's recording service."""
    return context_of(request).recordings


# -- sessions ----------------------------------------------------------------------------


@router.get(
    "/sessions/{uuid}/recordings",
    response_model=RecordingsResponse,
    responses=error_responses(400, 401, 404, 422, 503),
    tags=["recordings"],
)
async def list_recordings(
    request: Request, room_uuid: SessionUuid, creds: CredentialsDep
) -> dict[str, Any]:
    """A session's recordings in ``startedAt`` order: all for the admin, their own for a member.

    A member (ever) of the session sees only their own files; anyone never in it is
    401 (server 10005).
    """
    ctx = context_of(request)
    caller = authenticate(ctx, creds)
    record = await visible_session(request, room_uuid, creds)
    only = None if caller.is_admin else caller.user_id
    found = await rows.session_rows(ctx.store, record.room_uuid, user_id=only)
    return {
        "roomUuid": str(record.room_uuid),
        "recording": await recordings_of(request).recording_now(record.room_uuid),
        "recordings": [rows.recording_to_wire(rec) for rec in found],
    }


@router.get(
    "/sessions/{uuid}/recordings/{id}",
    response_class=FileResponse,
    responses={
        200: {"content": {MEDIA_TYPE: {}}, "description": "The whole file."},
        206: {"content": {MEDIA_TYPE: {}}, "description": "The requested byte range."},
        **error_responses(400, 401, 404, 416, 422, 503),
        403: {
            "model": ErrorBody,
            "description": "Server 10005: the file is another member's (members read their own).",
        },
    },
    tags=["recordings"],
)
async def download_recording(
    request: Request, room_uuid: SessionUuid, recording_id: RecordingId, creds: CredentialsDep
) -> Response:
    """Download one file (``video/x-matroska``), with ``Range`` and an ``ETag`` (its SHA-256).

    A member downloads their own files only: another member's is 403 (server 10005).
    The admin downloads every file.
    """
    ctx = context_of(request)
    caller = authenticate(ctx, creds)
    record = await visible_session(request, room_uuid, creds)
    rec = await _recording(request, record, recording_id)
    if not caller.is_admin and rec.user_id != caller.user_id:
        refused = ServerError(
            ServerCode.UNAUTHORISED,
            f"recording {rec.id} is {rec.user_id}'s: a member may read only their own",
        )
        return error_response(refused, status=403)
    path = ctx.settings.data_dir / rec.path
    try:
        info = await asyncio.to_thread(os.stat, path)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode) or not await _readable(path):
        raise ServerError(ServerCode.RECORDING_FAILED, f"the file of recording {rec.id} is gone")
    headers = {"Cache-Control": "private, no-cache"}
    if rec.sha256 and rec.status != "recording":
        headers["ETag"] = f'"{rec.sha256}"'
    bad = _bad_range(request.headers.get("range"), info.st_size)
    if bad is not None:
        return error_response(
            ServerError(ServerCode.INVALID_PARAMETER, f"Range: {bad}"),
            status=416,
            **{"Content-Range": f"bytes */{info.st_size}"},
        )
    return FileResponse(
        path,
        media_type=MEDIA_TYPE,
        headers=headers,
        filename=Path(rec.path).name,
        stat_result=info,
    )


@router.delete(
    "/sessions/{uuid}/recordings/{id}",
    response_model=DeletedResponse,
    responses=error_responses(400, 401, 404, 422, 429, 503),
    tags=["recordings"],
)
async def delete_recording(
    request: Request, room_uuid: SessionUuid, recording_id: RecordingId, creds: CredentialsDep
) -> dict[str, Any]:
    """Admin: remove a recording's file and row (not while it is being written: 10004)."""
    ctx = context_of(request)
    ctx.limits.address(request)
    ctx.limits.user("admin", authenticate(ctx, creds, admin=True))
    record = await visible_session(request, room_uuid, creds)
    rec = await _recording(request, record, recording_id)
    if rec.status == "recording":
        raise ServerError(
            ServerCode.INVALID_PARAMETER, f"recording {rec.id} is still being written"
        )
    path = ctx.settings.data_dir / rec.path
    try:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    except OSError as exc:
        raise ServerError(ServerCode.RECORDING_FAILED, f"cannot delete the file: {exc}") from None
    await rows.delete_row(ctx.store, rec.id)
    return {"id": str(rec.id), "deleted": True}


# -- admin -------------------------------------------------------------------------------


@router.get(
    "/admin/recording",
    response_model=PolicyResponse,
    responses=error_responses(400, 401, 429, 503),
    tags=["admin"],
)
async def get_policy(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """The app's recording policy (admin only)."""
    ctx = context_of(request)
    ctx.limits.address(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    policy, default = await recordings_of(request).policy(caller.sdk_app_id)
    return {"sdkAppId": caller.sdk_app_id, "policy": policy, "default": default}


@router.put(
    "/admin/recording",
    response_model=PolicyResponse,
    responses=error_responses(400, 401, 422, 429, 503),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "policy": {"enum": [*RECORDING_POLICIES, None]},
                        },
                        "required": ["policy"],
                    }
                }
            },
            "required": True,
        }
    },
    tags=["admin"],
)
async def put_policy(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """Set the app's recording policy; ``null`` goes back to the ``--recording`` default."""
    ctx = context_of(request)
    ctx.limits.address(request)
    body = await json_body(request) or {}
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    policy = body.get("policy", ...)
    if policy is not None and policy not in RECORDING_POLICIES:
        raise ServerError(
            ServerCode.INVALID_PARAMETER, "policy: expected off, auto, on-demand or null"
        )
    now, default = await recordings_of(request).set_policy(caller.sdk_app_id, policy)
    return {"sdkAppId": caller.sdk_app_id, "policy": now, "default": default}


@router.get(
    "/admin/recording/quota",
    response_model=QuotaResponse,
    responses=error_responses(400, 401, 429, 503),
    tags=["admin"],
)
async def get_quota(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """The app's recording limits, and free space on the recordings disk (admin only)."""
    ctx = context_of(request)
    ctx.limits.address(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    service = recordings_of(request)
    per_file, per_session = ctx.settings.recording_limits_of(caller.sdk_app_id)
    try:
        disk = await service.disk_state()
    except OSError as exc:
        raise ServerError(ServerCode.INTERNAL, f"cannot read the free space: {exc}") from None
    return {
        "sdkAppId": caller.sdk_app_id,
        "maxFileSeconds": per_file,
        "maxSessionSeconds": per_session,
        "minFreeBytes": disk.floor,
        "freeBytes": disk.free,
        "belowFloor": disk.below_floor,
        "lastDiskStopAt": service.last_disk_stop,
    }


@room_routes(
    router,
    "POST",
    prefix="/admin",
    path="/recording/start",
    response_model=RecordingStateResponse,
    responses={
        **error_responses(400, 401, 410, 422, 429, 503),
        507: {
            "model": ErrorBody,
            "description": "Server 14008: the recordings disk is below its free-space floor.",
        },
    },
    tags=["admin"],
)
async def start_recording(request: Request, room: RoomInPath, creds: CredentialsDep) -> Any:
    """Record the room's open session from now on (14003 none open, 10004 policy ``off``).

    Under the free-disk floor (``--recording-min-free``) it is refused: 507 with 14008.
    """
    ctx = context_of(request)
    ctx.limits.address(request)
    await json_body(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    service = recordings_of(request)
    room_uuid = await _open_session(request, caller.sdk_app_id, room)
    policy, _default = await service.policy(caller.sdk_app_id)
    if policy == "off":
        raise ServerError(
            ServerCode.INVALID_PARAMETER, "recording is off for this app (PUT /v1/admin/recording)"
        )
    try:
        await service.start(caller.sdk_app_id, room, room_uuid)
    except DiskFloorError as exc:
        return error_response(exc, status=507)
    return {"roomUuid": str(room_uuid), "recording": await service.recording_now(room_uuid)}


@room_routes(
    router,
    "POST",
    prefix="/admin",
    path="/recording/stop",
    response_model=RecordingStateResponse,
    responses=error_responses(400, 401, 410, 422, 429, 503),
    tags=["admin"],
)
async def stop_recording(request: Request, room: RoomInPath, creds: CredentialsDep) -> Any:
    """Stop recording the room's open session, finalising its files (14003 none open)."""
    ctx = context_of(request)
    ctx.limits.address(request)
    await json_body(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    service = recordings_of(request)
    room_uuid = await _open_session(request, caller.sdk_app_id, room)
    await service.stop(room_uuid)
    return {"roomUuid": str(room_uuid), "recording": False}


# -- helpers -------------------------------------------------------------------------------


async def _recording(request: Request, record: SessionRecord, recording_id: str) -> RecordingRow:
    """The session's recording ``recording_id``, or 14008."""
    try:
        wanted = uuid.UUID(recording_id)
    except ValueError:
        wanted = None
    rec = None
    if wanted is not None:
        rec = await rows.row(context_of(request).store, record.room_uuid, wanted)
    if rec is None:
        raise ServerError(ServerCode.RECORDING_FAILED, f"no recording {recording_id}")
    return rec


async def _open_session(request: Request, sdk_app_id: int, room: RoomId) -> uuid.UUID:
    room_uuid = await context_of(request).rooms.open_session_of(sdk_app_id, room)
    if room_uuid is None:
        raise ServerError(ServerCode.ROOM_CLOSED, f"room {room_label(room)} has no open session")
    return room_uuid


async def _readable(path: Path) -> bool:
    def check() -> bool:
        try:
            with path.open("rb") as file:
                file.read(1)
        except OSError:
            return False
        return True

    return await asyncio.to_thread(check)


def _bad_range(header: str | None, size: int) -> str | None:
    """Why ``header`` cannot be served from a file of ``size`` bytes; None if it can.

    Accepts what RFC 9110 defines for bytes: ``a-b``, ``a-`` and ``-n`` (suffix),
    comma-separated; FileResponse then serves it.
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return "only bytes=first-last ranges are served"
    for part in spec.split(","):
        match = _RANGE_PART.match(part)
        if match is None or match.group(1) == match.group(2) == "":
            return f"cannot read {part.strip()!r}"
        first, last = match.group(1), match.group(2)
        if first == "":  # suffix: the last n bytes
            if int(last) == 0 or size == 0:
                return f"{part.strip()} is empty"
            continue
        if int(first) >= size:
            return f"{part.strip()} starts past the end ({size} bytes)"
        if last != "" and int(last) < int(first):
            return f"{part.strip()} ends before it starts"
    return None
