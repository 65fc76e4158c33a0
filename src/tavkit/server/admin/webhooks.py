"""REST v1 for the app's webhooks: set the endpoint, see how delivery goes, replay.

Admin only, like the other admin routes; each spends a token of the address's bucket,
then of the admin's. The secret goes in (``PUT``) and never comes out.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from tavkit.errors import ServerCode, ServerError
from tavkit.server.auth import Caller, CredentialsDep, authenticate
from tavkit.server.context import ServerContext, context_of
from tavkit.server.http import body_with, error_responses, json_body
from tavkit.server.webhooks import dead_letters, endpoint_state, replay, set_endpoint

__all__ = ["api"]

api = APIRouter(prefix="/v1")


class WebhookResponse(BaseModel):
    """The app's endpoint (``url`` null: none) and its delivery state."""

    sdkAppId: int
    url: str | None
    messages: bool
    position: int | None
    lastEventId: int | None
    pending: int
    dead: int
    attempts: int
    nextAttemptAt: float | None
    lastError: str | None


class DeadLetterItem(BaseModel):
    """One delivery given up on (``type`` null once retention removed its event)."""

    eventId: int
    type: str | None
    roomUuid: str | None
    attempts: int
    lastError: str
    diedAt: float


class DeadLettersResponse(BaseModel):
    """The app's newest dead letters, newest first."""

    deadLetters: list[DeadLetterItem]


class ReplayResponse(BaseModel):
    """Where the replay starts and how many entries it will send."""

    fromEventId: int
    count: int


_MAX_ID = 2**63 - 1
"""The largest id a database column holds."""
_MAX_DEAD = 500
"""The most dead letters one request lists."""
_PUT_BODY = body_with(
    {
        "type": "object",
        "properties": {
            "url": {"type": "string"},
            "secret": {"type": "string", "minLength": 16, "maxLength": 256},
            "messages": {"type": "boolean"},
        },
        "required": ["url", "secret"],
    }
)
_REPLAY_BODY = body_with(
    {
        "type": "object",
        "properties": {
            "fromEventId": {"type": "integer", "minimum": 1, "maximum": _MAX_ID},
            "since": {"type": "number"},
        },
    }
)


def _none(sdk_app_id: int) -> dict[str, Any]:
    return {
        "sdkAppId": sdk_app_id,
        "url": None,
        "messages": False,
        "position": None,
        "lastEventId": None,
        "pending": 0,
        "dead": 0,
        "attempts": 0,
        "nextAttemptAt": None,
        "lastError": None,
    }


async def _admin(
    request: Request, creds: CredentialsDep, *, body: bool
) -> tuple[ServerContext, Caller, dict[str, Any]]:
    """The context, the admin caller and (with ``body``) the JSON body, each route's opening.

    The address limit comes first and the body is read before the signature is checked,
    as on every other admin route (so a bad body and a bad signature answer alike).
    """
    ctx = context_of(request)
    ctx.limits.address(request)
    read = (await json_body(request) or {}) if body else {}
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    return ctx, caller, read


@api.get(
    "/admin/webhooks",
    response_model=WebhookResponse,
    responses=error_responses(400, 401, 429, 503),
    tags=["admin"],
)
async def get_webhooks(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """The app's webhook endpoint (never its secret), position, pending and dead counts."""
    ctx, caller, _ = await _admin(request, creds, body=False)
    state = await endpoint_state(ctx.store, caller.sdk_app_id)
    return _none(caller.sdk_app_id) if state is None else state.to_wire()


@api.get(
    "/admin/webhooks/dead",
    response_model=DeadLettersResponse,
    responses=error_responses(400, 401, 429, 503),
    tags=["admin"],
)
async def get_dead_letters(
    request: Request,
    creds: CredentialsDep,
    limit: Annotated[int, Query(ge=1, le=_MAX_DEAD)] = 50,
) -> dict[str, Any]:
    """The deliveries given up on, newest first: what to fix, then replay."""
    ctx, caller, _ = await _admin(request, creds, body=False)
    found = await dead_letters(ctx.store, caller.sdk_app_id, limit)
    return {"deadLetters": [letter.to_wire() for letter in found]}


@api.put(
    "/admin/webhooks",
    response_model=WebhookResponse,
    responses=error_responses(400, 401, 422, 429, 503),
    openapi_extra=_PUT_BODY,
    tags=["admin"],
)
async def put_webhooks(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """Set the app's endpoint and secret; ``messages`` journals in-call messages too."""
    ctx, caller, body = await _admin(request, creds, body=True)
    url, secret, messages = body.get("url"), body.get("secret"), body.get("messages")
    if not isinstance(url, str) or not isinstance(secret, str):
        raise ServerError(ServerCode.INVALID_PARAMETER, "url and secret: expected strings")
    if messages is not None and not isinstance(messages, bool):
        raise ServerError(ServerCode.INVALID_PARAMETER, "messages: expected a boolean")
    try:
        state = await set_endpoint(ctx.store, caller.sdk_app_id, url, secret, messages=messages)
    except ValueError as exc:
        # The checks' messages never repeat the URL or the secret.
        raise ServerError(ServerCode.INVALID_PARAMETER, str(exc)) from None
    if ctx.webhooks is not None:
        ctx.webhooks.wake()
    return state.to_wire()


@api.post(
    "/admin/webhooks/replay",
    response_model=ReplayResponse,
    responses=error_responses(400, 401, 422, 429, 503),
    openapi_extra=_REPLAY_BODY,
    tags=["admin"],
)
async def replay_webhooks(request: Request, creds: CredentialsDep) -> dict[str, Any]:
    """Send the app's entries again from ``fromEventId`` (or the first at ``since``) on."""
    ctx, caller, body = await _admin(request, creds, body=True)
    from_event, since = body.get("fromEventId"), body.get("since")
    if (from_event is None) == (since is None):
        raise ServerError(ServerCode.INVALID_PARAMETER, "give fromEventId or since, not both")
    if from_event is not None and (type(from_event) is not int or not 1 <= from_event <= _MAX_ID):
        raise ServerError(ServerCode.INVALID_PARAMETER, "fromEventId: expected an id from 1")
    if since is not None and (
        isinstance(since, bool) or not isinstance(since, int | float) or not math.isfinite(since)
    ):
        raise ServerError(ServerCode.INVALID_PARAMETER, "since: expected Unix seconds")
    start, count = await replay(ctx.store, caller.sdk_app_id, from_event=from_event, since=since)
    if ctx.webhooks is not None:
        ctx.webhooks.wake()
    return {"fromEventId": start, "count": count}
