"""Demo mode: the userSig mint endpoint and the demo page (included only with ``--demo``).

The endpoint mints for anyone who asks, so it never mints an identity that means more
than "some user": not the admin userId (whose app-key userSig would be an ordinary user
anyway, but a page should not be able to look like the admin), and not the userIds
starting with ``__`` that the server keeps for itself (the recorder).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from tavkit.auth import gen_user_sig
from tavkit.errors import ServerCode, ServerError
from tavkit.server.auth import USER_ID_RE
from tavkit.server.context import context_of
from tavkit.server.errors import error_response
from tavkit.server.http import (
    body_with,
    error_responses,
    json_body,
)
from tavkit.server.rooms.service import HIDDEN_PREFIX

__all__ = ["DEMO_SIG_LIFETIME", "demo", "demo_page"]


DEMO_SIG_LIFETIME: Final = 24 * 3600
"""Lifetime of the userSigs the demo endpoint mints."""


class DemoUserSigRequest(BaseModel):
    """Whom to mint a userSig for."""

    userId: str


class DemoUserSigResponse(BaseModel):
    """A freshly minted userSig for the demo app."""

    sdkAppId: int
    userId: str
    userSig: str


demo = APIRouter(prefix="/v1")
"""Included only in demo mode; elsewhere its path is an ordinary 404."""


@demo.post(
    "/demo/usersig",
    response_model=DemoUserSigResponse,
    responses=error_responses(400, 404, 422),
    openapi_extra=body_with(DemoUserSigRequest.model_json_schema()),
    tags=["demo"],
)
async def demo_usersig(request: Request) -> dict[str, Any]:
    """Demo mode only: mint a userSig of the demo app for a userId (404 otherwise).

    Not for the admin userId nor ids starting with ``__`` (server 10004).
    """
    settings = context_of(request).settings
    body = await json_body(request) or {}
    user_id = body.get("userId")
    if not isinstance(user_id, str) or not USER_ID_RE.fullmatch(user_id):
        raise ServerError(
            ServerCode.INVALID_PARAMETER,
            "userId: expected 1-64 characters of A-Z a-z 0-9 _ . @ -",
        )
    if user_id == settings.admin_user:
        raise ServerError(
            ServerCode.INVALID_PARAMETER,
            f"userId: the demo does not mint the admin userId {user_id}",
        )
    if user_id.startswith(HIDDEN_PREFIX):
        raise ServerError(
            ServerCode.INVALID_PARAMETER,
            f"userId: ids starting with {HIDDEN_PREFIX} are reserved for the server",
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
