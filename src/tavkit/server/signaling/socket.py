"""The signaling endpoint ``GET /v1/ws``: authenticate the token, then run a connection.

A socket is refused (one ``error`` frame, then close 4401) when its token is bad, or
when the connection it names has left the room; a token past its first-connection
window still resumes a connection that had a socket here. Everything after that is
:class:`~tavkit.server.signaling.connection.SignalingConnection`'s.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol import CloseCode
from tavkit.server.context import ServerContext, context_of
from tavkit.server.metrics import Metrics
from tavkit.server.signaling.connection import SignalingConnection, refuse
from tavkit.server.signaling.registry import SocketRegistry
from tavkit.server.signaling.tokens import SocketClaims, verify

__all__ = ["router"]

router = APIRouter()


@router.websocket("/v1/ws")
async def signaling_socket(websocket: WebSocket) -> None:
    """The signaling socket; ``?token=`` is the ``socketToken`` from ``enter``."""
    ctx = context_of(websocket)
    registry = ctx.sockets
    metrics = ctx.metrics
    await websocket.accept()
    claims = await _authenticate(websocket, ctx, registry, metrics)
    if claims is not None:
        await SignalingConnection(websocket, ctx, registry, claims, metrics=metrics).run()


async def _authenticate(
    websocket: WebSocket,
    ctx: ServerContext,
    registry: SocketRegistry[SignalingConnection],
    metrics: Metrics | None,
) -> SocketClaims | None:
    """The token's claims if it opens a socket now; otherwise refuse and return None."""
    token = websocket.query_params.get("token", "")
    try:
        try:
            claims = verify(ctx.socket_secret, token)
        except ServerError as exc:
            # Past its first-connection window a token still resumes a connection that
            # had a socket here, as long as the member is in the room (checked below).
            try:
                claims = verify(ctx.socket_secret, token, ignore_expiry=True)
            except ServerError:
                raise exc from None
            if not registry.had_socket(claims.connection_id):
                raise
        live = await ctx.rooms.is_member(claims.room_uuid, claims.user_id, claims.connection_id)
    except TAvKitError as exc:
        unauthorised = exc.code is ServerCode.UNAUTHORISED
        code = CloseCode.UNAUTHORISED if unauthorised else CloseCode.SERVER_ERROR
        await refuse(websocket, exc, code, metrics)
        return None
    if not live:
        gone = ServerError(
            ServerCode.UNAUTHORISED, "socket token is for a connection no longer in the room"
        )
        await refuse(websocket, gone, CloseCode.UNAUTHORISED, metrics)
        return None
    return claims
