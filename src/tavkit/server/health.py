"""``GET /healthz``: liveness, database reachability, whether the bus can listen, and
whether the replica is draining."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.server.context import ServerContext, context_of
from tavkit.server.http import (
    ErrorBody,
)

__all__ = ["health"]

_BUS_PROBE_TIMEOUT: Final = 5.0


class HealthResponse(BaseModel):
    """Liveness and database reachability."""

    status: str
    database: str


health = APIRouter()


@health.get(
    "/healthz",
    response_model=HealthResponse,
    responses={
        503: {
            "model": ErrorBody,
            "description": "The database or the event bus (Redis) is unreachable, or the "
            "replica is draining.",
        }
    },
    tags=["health"],
)
async def healthz(request: Request) -> Any:
    """Liveness: 200 when the server, its database and its bus answer, 503 otherwise.

    A 503 for the bus (``"bus": "unreachable"``) means Redis is away: calls in progress
    go on, but nobody can enter until the bus reconnects (it does so by itself).
    A 503 with ``"status": "draining"`` means the replica got SIGTERM and is handing its
    sockets to the others (:mod:`tavkit.server.drain`): a load balancer stops choosing it.
    """
    ctx = context_of(request)
    if ctx.drain.draining:
        refusal = ServerError(ServerCode.INTERNAL, "this replica is draining (shutting down)")
        body = {"status": "draining", "replica": ctx.settings.replica_name, **refusal.to_dict()}
        return JSONResponse(body, status_code=503)
    try:
        await ctx.store.ping()
    except TAvKitError as exc:
        body = {"status": "error", "database": "unreachable", **exc.to_dict()}
        return JSONResponse(body, status_code=503)
    try:
        await _probe_bus(ctx)
    except TAvKitError as exc:
        body = {"status": "error", "database": "ok", "bus": "unreachable", **exc.to_dict()}
        return JSONResponse(body, status_code=503)
    return {"status": "ok", "database": "ok"}


async def _probe_bus(ctx: ServerContext) -> None:
    """Subscribe to a channel of its own and leave: for Redis, a SUBSCRIBE round trip.

    Only the :class:`~tavkit.server.bus.Bus` protocol is used, so this works through
    any wrapper; a bus that cannot listen refuses the subscription (server 10000).
    """
    try:
        async with (
            asyncio.timeout(_BUS_PROBE_TIMEOUT),
            ctx.bus.subscribe(f"health:{uuid.uuid4().hex}"),
        ):
            pass
    except TimeoutError:
        raise ServerError(ServerCode.INTERNAL, "the event bus did not answer") from None
