"""``GET /healthz``: liveness and database reachability."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tavkit.errors import TAvKitError
from tavkit.server.context import context_of
from tavkit.server.http import (
    ErrorBody,
)

__all__ = ["health"]


class HealthResponse(BaseModel):
    """Liveness and database reachability."""

    status: str
    database: str


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
