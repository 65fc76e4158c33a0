"""REST v1 for in-call message history (``GET /v1/sessions/{uuid}/messages``).

Each read spends a token of the client address's bucket, then of the caller's
``history`` bucket (:mod:`tavkit.server.ratelimit`), before the database is asked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from tavkit.protocol import MAX_SEQ
from tavkit.server.auth import CredentialsDep, authenticate
from tavkit.server.context import context_of
from tavkit.server.http import (
    SessionUuid,
    error_responses,
)
from tavkit.server.im.service import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT
from tavkit.server.rooms.access import visible_session

__all__ = ["api"]


class MessagesResponse(BaseModel):
    """A page of a session's in-call messages, ``seq`` order."""

    roomUuid: str
    messages: list[dict[str, Any]]
    lastSeq: int
    hasMore: bool


api = APIRouter(prefix="/v1")


@api.get(
    "/sessions/{uuid}/messages",
    response_model=MessagesResponse,
    responses=error_responses(400, 401, 404, 422, 429, 503),
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
    ctx = context_of(request)
    ctx.limits.address(request)
    ctx.limits.user("history", authenticate(ctx, creds))
    record = await visible_session(request, room_uuid, creds)
    page = await context_of(request).messages.history(record.room_uuid, after=after, limit=limit)
    return {
        "roomUuid": str(record.room_uuid),
        "messages": [m.to_wire() for m in page.messages],
        "lastSeq": page.last_seq,
        "hasMore": page.has_more,
    }
