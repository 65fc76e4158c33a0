"""The operator's dashboard: ``/dashboard`` (a static page) and the session list it reads.

The page itself (``tavkit/web/dashboard/``) is plain HTML, CSS and ES modules
with hand-written SVG charts, served from the package like the web component:
no build step, no CDN, works offline. It signs in with the admin userId's userSig,
kept in ``sessionStorage`` (gone when the tab closes) and sent as the usual
``X-TAvKit-*`` headers, so the dashboard has no authority of its own: it can do
exactly what the admin API allows, and every call it makes is checked the same way.

Besides the existing session endpoints (``/v1/sessions/{uuid}``, ``.../logs``,
``.../quality``), the page needs one list: ``GET /v1/admin/sessions``, the app's
sessions newest first, each with its duration, participants and worst quality.

Members are shown by name where a client reported one: the browser component logs
the names its page gave through ``onUserInfoListener`` as a ``user-info`` line
(``{"names": {userId: name}}``). A name is a member's word about another member, so
it is only ever shown beside the userId it names, never instead of it in a place
that decides anything.
"""

from __future__ import annotations

import json
import time
import uuid
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import ServerCode, ServerError
from tavkit.server.auth import CredentialsDep, authenticate
from tavkit.server.context import context_of
from tavkit.server.errors import error_response
from tavkit.server.http import error_responses
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.logs_models import ClientLogRow, QualitySampleRow
from tavkit.server.store.models import MemberRow, SessionRow

__all__ = ["dashboard_dir", "list_sessions", "router"]

DEFAULT_SESSIONS: Final = 50
MAX_SESSIONS: Final = 500
USER_INFO_EVENT: Final = "user-info"
"""The client log event that carries names (``web/controller.js``)."""
MAX_NAME_LINES: Final = 1000
"""The most ``user-info`` lines one listing reads, newest first, whatever members send."""
MAX_NAME_CHARS: Final = 64


def dashboard_dir() -> Path:
    """The packaged dashboard page and its assets (``tavkit/web/dashboard``)."""
    return Path(str(files("tavkit") / "web" / "dashboard"))


class Worst(BaseModel):
    """The worst figures any participant reported in the session."""

    packetLoss: float | None
    rttMs: float | None


class SessionSummary(BaseModel):
    """One session as the dashboard lists it."""

    roomUuid: str
    roomId: int | str = Field(description="The room: a number, or a string for a string room.")
    openedAt: float
    closedAt: float | None
    closeReason: str | None
    duration: float
    members: list[str]
    names: dict[str, str] = Field(
        description="userId → the name a client reported for that member, where one did."
    )
    samples: int
    errors: int
    worst: Worst


class SessionsResponse(BaseModel):
    """The app's sessions, newest first."""

    sessions: list[SessionSummary]


async def list_sessions(
    store: Store, sdk_app_id: int, *, limit: int, before: float | None = None
) -> list[dict[str, Any]]:
    """The app's sessions opened before ``before``, newest first, with their summaries."""
    query = select(SessionRow).where(SessionRow.sdk_app_id == sdk_app_id)
    if before is not None:
        query = query.where(SessionRow.opened_at < before)
    query = query.order_by(SessionRow.opened_at.desc()).limit(limit)
    now = time.time()
    with storage_errors("listing sessions"):
        async with store.sessions() as s:
            sessions = list(await s.scalars(query))
            ids = [row.id for row in sessions]
            if not ids:
                return []
            members: dict[uuid.UUID, list[str]] = {}
            rows = await s.execute(
                select(MemberRow.session_id, MemberRow.user_id)
                .where(MemberRow.session_id.in_(ids))
                .order_by(MemberRow.joined_at, MemberRow.id)
            )
            for session_id, user_id in rows:
                names = members.setdefault(session_id, [])
                if user_id not in names:
                    names.append(user_id)
            quality = {
                session_id: (count, loss, rtt)
                for session_id, count, loss, rtt in await s.execute(
                    select(
                        QualitySampleRow.session_id,
                        func.count(),
                        func.max(QualitySampleRow.packet_loss),
                        func.max(QualitySampleRow.rtt_ms),
                    )
                    .where(QualitySampleRow.session_id.in_(ids))
                    .group_by(QualitySampleRow.session_id)
                )
            }
            reported = await _reported_names(s, ids, members)
            errors = dict(
                (session_id, count)
                for session_id, count in await s.execute(
                    select(ClientLogRow.session_id, func.count())
                    .where(ClientLogRow.session_id.in_(ids), ClientLogRow.error_code.is_not(None))
                    .group_by(ClientLogRow.session_id)
                )
            )
    out = []
    for row in sessions:
        count, loss, rtt = quality.get(row.id, (0, None, None))
        out.append(
            {
                "roomUuid": str(row.id),
                "roomId": row.room,
                "openedAt": row.opened_at,
                "closedAt": row.closed_at,
                "closeReason": row.close_reason,
                "duration": max(0.0, (row.closed_at or now) - row.opened_at),
                "members": members.get(row.id, []),
                "names": reported.get(row.id, {}),
                "samples": int(count),
                "errors": int(errors.get(row.id, 0)),
                "worst": {"packetLoss": loss, "rttMs": rtt},
            }
        )
    return out


async def _reported_names(
    s: AsyncSession, ids: list[uuid.UUID], members: dict[uuid.UUID, list[str]]
) -> dict[uuid.UUID, dict[str, str]]:
    """session → userId → the latest name reported for that session's members."""
    rows = await s.execute(
        select(ClientLogRow.session_id, ClientLogRow.data)
        .where(ClientLogRow.session_id.in_(ids), ClientLogRow.event == USER_INFO_EVENT)
        .order_by(ClientLogRow.id.desc())
        .limit(MAX_NAME_LINES)
    )
    out: dict[uuid.UUID, dict[str, str]] = {}
    for session_id, data in rows:
        try:
            reported = json.loads(data or "{}").get("names")
        except (ValueError, AttributeError):
            continue
        if not isinstance(reported, dict):
            continue
        named = out.setdefault(session_id, {})
        for user_id, name in reported.items():
            ok = isinstance(name, str) and 0 < len(name.strip()) <= MAX_NAME_CHARS
            # Newest first: a name already taken is the latest one.
            if ok and user_id in members.get(session_id, ()) and user_id not in named:
                named[user_id] = name.strip()
    return out


router = APIRouter()


APP_ID_MARKER = "<!-- tavkit:sdk-app-id -->"
"""Where the page gets ``<meta name="tavkit-sdk-app-id">`` when the server has one app."""


@router.get("/dashboard", include_in_schema=False)
async def dashboard_page(request: Request) -> Response:
    """The dashboard's single page (sign-in, session list and session view).

    A server with exactly one app names its sdkAppId in a ``<meta>`` tag so the sign-in
    form comes prefilled (an operator of a single-app server should not have to look the
    number up). The sdkAppId is no secret - every client sends it - but with several
    apps the page names none, leaving the choice to whoever signs in.
    """
    index = dashboard_dir() / "index.html"
    if not index.is_file():
        missing = ServerError(ServerCode.BAD_REQUEST, "the dashboard is not installed")
        return error_response(missing, status=404)
    apps = context_of(request).settings.apps
    meta = (
        f'<meta name="tavkit-sdk-app-id" content="{apps[0].sdk_app_id}" />'
        if len(apps) == 1
        else ""
    )
    page = index.read_text(encoding="utf-8").replace(APP_ID_MARKER, meta)
    # The page holds a credential in sessionStorage. Frames, caches and referrers are
    # kept out for every response (tavkit.server.headers); this page also runs nothing
    # but its own files.
    headers = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"}
    return HTMLResponse(page, headers=headers)


@router.get(
    "/v1/admin/sessions",
    response_model=SessionsResponse,
    responses=error_responses(400, 401, 422, 429, 503),
    tags=["admin"],
)
async def admin_sessions(
    request: Request,
    creds: CredentialsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_SESSIONS)] = DEFAULT_SESSIONS,
    before: Annotated[
        float | None,
        Query(allow_inf_nan=False, description="Sessions opened before this time."),
    ] = None,
) -> Any:
    """The caller's app's sessions, open and closed, newest first (admin only)."""
    ctx = context_of(request)
    ctx.limits.address(request)
    caller = authenticate(ctx, creds, admin=True)
    ctx.limits.user("admin", caller)
    sessions = await list_sessions(ctx.store, caller.sdk_app_id, limit=limit, before=before)
    return {"sessions": sessions}
