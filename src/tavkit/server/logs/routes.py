"""The elk-component's server side: clients' logs and quality samples in, per session out.

``POST /v1/logs`` takes a batch from a member's reporter (``tavkit/web/reporter.js``
or :mod:`tavkit.client.reporter`) and stores it under the session UUID and the
caller's userId; ``GET /v1/sessions/{uuid}/logs`` and ``.../quality`` read them
back, the app's admin seeing everyone's entries and a member only their own.

The order of checks on ingest, and why:

1. the body is JSON (10003) and an object (10001), at most 64 KiB (10001: the
   server's body guard) - before anything is looked at;
2. credentials, from the ``X-TAvKit-*`` headers or, for ``navigator.sendBeacon``
   which cannot set headers, from the body's ``auth`` object; both are verified
   the same way (10005) - so an anonymous caller learns nothing more;
3. a token bucket per user (2 batches/s, bursts of 20), after the client address's
   bucket (:mod:`tavkit.server.ratelimit`, checked first of all): past either, 429
   with server 10004 and ``Retry-After``;
4. the batch itself (:mod:`.wire`: types, ranges, lengths, 500 items, the shape of a
   ``join-timeline`` line; 10004);
5. the app's daily cap on stored items: past it, 429 with server 10004 and a
   ``Retry-After`` until midnight UTC (:mod:`tavkit.server.logs.service`);
6. the session: unknown or another app's is 14007, a caller who never was a
   member of it is 10005 - a user can only report about calls they were in - and
   one closed more than 5 minutes ago is 14003 (HTTP 410).

A batch is stored in one transaction or not at all, then handed to the
forwarder (if one is configured), which never makes the request wait.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, Request
from prometheus_client.core import Metric
from pydantic import BaseModel
from sqlalchemy import exists, select

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.server.auth import (
    USER_ID_RE,
    CredentialsDep,
    authenticate,
    credentials,
)
from tavkit.server.context import context_of
from tavkit.server.http import SessionUuid, error_responses, json_body
from tavkit.server.logformat import log_context
from tavkit.server.logs.forwarder import Forwarder, ForwarderConfig
from tavkit.server.logs.service import LogService
from tavkit.server.logs.wire import body_credentials, parse_batch
from tavkit.server.metrics import Metrics, counter_family, gauge_family
from tavkit.server.ratelimit import RateLimited
from tavkit.server.settings import Settings
from tavkit.server.store.db import storage_errors
from tavkit.server.store.models import MemberRow, SessionRow

__all__ = ["LogService", "forwarder_config", "router"]

DEFAULT_LIMIT: Final = 5000
MAX_LIMIT: Final = 20_000


# -- lifetime ------------------------------------------------------------------------------


def forwarder_config(settings: Settings) -> ForwarderConfig | None:
    """The forwarder the settings ask for (``TAVKIT_LOG_FORWARD_URL``), or None."""
    if not settings.log_forward_url:
        return None
    return ForwarderConfig(
        url=settings.log_forward_url,
        index=settings.log_forward_index,
        flavor=settings.log_forward_flavor,
    )


def _forwarder_series(forwarder: Forwarder) -> Iterator[Metric]:
    stats = forwarder.stats
    yield counter_family("tavkit_log_forward_sent", "Documents the cluster accepted.", stats.sent)
    yield counter_family(
        "tavkit_log_forward_dropped", "Documents dropped: the buffer was full.", stats.dropped
    )
    yield counter_family(
        "tavkit_log_forward_rejected", "Documents the cluster refused for good.", stats.rejected
    )
    yield counter_family(
        "tavkit_log_forward_failures", "Bulk requests that failed as a whole.", stats.failures
    )
    yield gauge_family(
        "tavkit_log_forward_buffered", "Documents waiting to be sent.", stats.buffered
    )


def watch_forwarder(metrics: Metrics | None, forwarder: Forwarder) -> None:
    """Show the forwarder's counters on ``/metrics`` (when metrics are installed)."""
    if metrics is not None:
        metrics.watch("forwarder", lambda: _forwarder_series(forwarder))


# -- routes ----------------------------------------------------------------------------------

router = APIRouter(prefix="/v1", tags=["logs"])


class ErrorDoc(BaseModel):
    """A seed error."""

    module: Literal["trtc", "server", "http", "avkit"]
    errorCode: int
    errorMsg: str


class LogLine(BaseModel):
    """A stored client log line."""

    userId: str
    at: float
    receivedAt: float
    level: Literal["debug", "info", "warn", "error"]
    event: str
    error: ErrorDoc | None
    data: dict[str, Any] | None


class QualitySample(BaseModel):
    """A stored quality sample: ``userId``'s view of its connection to ``peerId``."""

    userId: str
    peerId: str
    at: float
    rttMs: float | None
    jitterMs: float | None
    packetLoss: float | None
    bitrateInKbps: float | None
    bitrateOutKbps: float | None
    fps: float | None
    width: int | None
    height: int | None
    candidateType: Literal["host", "srflx", "prflx", "relay"] | None


class IngestResponse(BaseModel):
    """How many items of the batch were stored."""

    roomUuid: str
    accepted: dict[str, int]


class LogsResponse(BaseModel):
    """A session's log lines."""

    roomUuid: str
    logs: list[LogLine]


class QualityResponse(BaseModel):
    """A session's quality samples."""

    roomUuid: str
    quality: list[QualitySample]


_INGEST_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["roomUuid"],
                    "properties": {
                        "roomUuid": {"type": "string", "format": "uuid"},
                        "sentAt": {"type": "number", "description": "client clock at send"},
                        "dropped": {"type": "integer", "description": "items the client dropped"},
                        "logs": {"type": "array", "maxItems": 500, "items": {"type": "object"}},
                        "quality": {"type": "array", "maxItems": 500, "items": {"type": "object"}},
                        "auth": {
                            "type": "object",
                            "description": "sendBeacon only: sdkAppId, userId, userSig",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/logs",
    response_model=IngestResponse,
    responses=error_responses(400, 401, 404, 410, 422, 429, 503),
    openapi_extra=_INGEST_BODY,
)
async def ingest(request: Request) -> Any:
    """Store a batch of log lines and quality samples for a session the caller was in."""
    ctx = context_of(request)
    service = context_of(request).logs
    ctx.limits.address(request)
    body = await json_body(request)
    if body is None:
        raise ServerError(ServerCode.BAD_REQUEST, "the body must be a JSON object")
    stage = "auth"
    try:
        raw = body_credentials(body)
        headers = request.headers
        if raw is None or headers.get("X-TAvKit-UserSig"):
            raw = {
                "sdkAppId": headers.get("X-TAvKit-SdkAppId", ""),
                "userId": headers.get("X-TAvKit-UserId", ""),
                "userSig": headers.get("X-TAvKit-UserSig", ""),
            }
        creds = credentials(raw.get("sdkAppId"), raw.get("userId"), raw.get("userSig"), None)
        caller = authenticate(ctx, creds)
        stage = "rate"
        service.limit(caller)
        stage = "invalid"
        now = time.time()
        batch = parse_batch(body, now=now)
        stage = "session"
        with log_context(session=str(batch.room_uuid), user=caller.user_id):
            await service.ingest(caller, batch, now=now)
    except TAvKitError as exc:
        if exc.code != ServerCode.DATABASE:
            service.refused(exc.reason if isinstance(exc, RateLimited) else stage)
        raise
    return {
        "roomUuid": str(batch.room_uuid),
        "accepted": {"logs": len(batch.logs), "quality": len(batch.quality)},
    }


async def _readable(
    request: Request, room_uuid: str, creds: CredentialsDep, user_id: str | None
) -> str | None:
    """Check the caller may read the session; the userId filter they are allowed."""
    ctx = context_of(request)
    caller = authenticate(ctx, creds)
    parsed = uuid.UUID(room_uuid)
    with storage_errors("reading the session"):
        async with ctx.store.sessions() as s:
            row = await s.get(SessionRow, parsed)
            if row is None or row.sdk_app_id != caller.sdk_app_id:
                raise ServerError(ServerCode.SESSION_NOT_FOUND, f"no session {room_uuid}")
            if caller.is_admin:
                return user_id
            was_member = await s.scalar(
                select(
                    exists().where(
                        MemberRow.session_id == parsed, MemberRow.user_id == caller.user_id
                    )
                )
            )
    if not was_member:
        raise ServerError(
            ServerCode.UNAUTHORISED, f"{caller.user_id} was never in session {room_uuid}"
        )
    if user_id is not None and user_id != caller.user_id:
        raise ServerError(ServerCode.UNAUTHORISED, "members may read their own entries only")
    return caller.user_id


UserFilter = Annotated[
    str | None,
    Query(
        alias="userId", pattern=f"^{USER_ID_RE.pattern}$", description="Only this user's entries."
    ),
]
Since = Annotated[
    float | None,
    Query(allow_inf_nan=False, description="Only entries after this time (Unix seconds)."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many entries.")]


@router.get(
    "/sessions/{uuid}/logs",
    response_model=LogsResponse,
    responses=error_responses(400, 401, 404, 422, 503),
)
async def session_logs(
    request: Request,
    room_uuid: SessionUuid,
    creds: CredentialsDep,
    user_id: UserFilter = None,
    since: Since = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Any:
    """A session's client log lines (admin: everyone's; a member: their own)."""
    who = await _readable(request, room_uuid, creds, user_id)
    rows = await context_of(request).logs.logs(
        uuid.UUID(room_uuid), user_id=who, since=since, limit=limit
    )
    return {"roomUuid": room_uuid, "logs": rows}


@router.get(
    "/sessions/{uuid}/quality",
    response_model=QualityResponse,
    responses=error_responses(400, 401, 404, 422, 503),
)
async def session_quality(
    request: Request,
    room_uuid: SessionUuid,
    creds: CredentialsDep,
    user_id: UserFilter = None,
    since: Since = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Any:
    """A session's quality samples (admin: everyone's; a member: their own)."""
    who = await _readable(request, room_uuid, creds, user_id)
    rows = await context_of(request).logs.quality(
        uuid.UUID(room_uuid), user_id=who, since=since, limit=limit
    )
    return {"roomUuid": room_uuid, "quality": rows}
