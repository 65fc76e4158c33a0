"""The signaling endpoint ``GET /v1/ws``: authenticate the token, then run a connection.

The token travels in the handshake's ``Sec-WebSocket-Protocol`` header: the client
offers ``tavkit.v1`` and ``tavkit.token.<socketToken>``, and the server selects
``tavkit.v1`` (a browser fails a handshake whose answer names no offered protocol, and
the token is never echoed back). Headers are in no access log; the URL is, so a token
in the URL (the old ``?token=`` query parameter, accepted for one release) is refused
with a message that says where it goes, and the log filter of
:mod:`tavkit.server.logformat` still redacts it from the access line.

A socket is refused (one ``error`` frame, then close 4401) when its token is bad, or
when the connection it names has left the room. A token past its first-connection
window still resumes a connection that had a socket, on this replica or any other:
the member's row says so (``members.socket_opened_at``), so a client whose replica
went away resumes through the load balancer on another one, ``welcome.resumed`` true,
without entering again. Everything after that is
:class:`~tavkit.server.signaling.connection.SignalingConnection`'s.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

from starlette.websockets import WebSocket

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol import CloseCode
from tavkit.server.context import ServerContext, context_of
from tavkit.server.metrics import Metrics
from tavkit.server.rooms.service import SocketHistory
from tavkit.server.signaling.connection import SignalingConnection, refuse
from tavkit.server.signaling.tokens import (
    SUBPROTOCOL,
    TOKEN_SUBPROTOCOL_PREFIX,
    SocketClaims,
    verify,
)

__all__ = ["SOCKET_PATH", "signaling_socket"]

URL_TOKEN_REFUSED: Final = (
    "the socket token goes in the Sec-WebSocket-Protocol header (tavkit.token.<token>), "
    "never in the URL"
)

SOCKET_PATH: Final = "/v1/ws"
"""Where the signaling socket is served (by :class:`~tavkit.server.signaling.lane.SocketLane`)."""


async def signaling_socket(websocket: WebSocket, *, replica_header: tuple[bytes, bytes]) -> None:
    """The signaling socket; the ``socketToken`` from ``enter`` comes as a subprotocol.

    ``replica_header`` goes on the accept: the socket does not pass the middleware
    that names the replica on every other answer.
    """
    ctx = context_of(websocket)
    registry = ctx.sockets
    metrics = ctx.metrics
    offered = _offered(websocket)
    await websocket.accept(
        subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None, headers=[replica_header]
    )
    admitted = await _authenticate(websocket, ctx, metrics)
    _forget_handshake(websocket)
    if admitted is not None:
        claims, history = admitted
        resumed = history is SocketHistory.RESUMING
        socket = SignalingConnection(
            websocket, ctx, registry, claims, resumed=resumed, metrics=metrics
        )
        await socket.run()


async def _authenticate(
    websocket: WebSocket, ctx: ServerContext, metrics: Metrics | None
) -> tuple[SocketClaims, SocketHistory] | None:
    """The token's claims and what the database says of its connection, if it opens a
    socket now; otherwise refuse and return None."""
    try:
        token = _token(websocket)
        expired: ServerError | None = None
        try:
            claims = verify(ctx.socket_secret, token)
        except ServerError as exc:
            # Past its first-connection window a token still resumes a connection that
            # had a socket (on any replica) and is still in the room: asked below.
            try:
                claims = verify(ctx.socket_secret, token, ignore_expiry=True)
            except ServerError:
                raise exc from None
            expired = exc
        history = await ctx.rooms.socket_history(
            claims.room_uuid, claims.user_id, claims.connection_id
        )
        if history is SocketHistory.GONE:
            raise ServerError(
                ServerCode.UNAUTHORISED, "socket token is for a connection no longer in the room"
            )
        if expired is not None and history is not SocketHistory.RESUMING:
            raise expired
    except TAvKitError as exc:
        unauthorised = exc.code is ServerCode.UNAUTHORISED
        code = CloseCode.UNAUTHORISED if unauthorised else CloseCode.SERVER_ERROR
        await refuse(websocket, exc, code, metrics)
        return None
    return claims, history


def _forget_handshake(websocket: WebSocket) -> None:
    """Empty the scope's handshake headers and offered subprotocols once they are read.

    Nothing reads them after the token is checked, and the socket keeps its scope for
    as long as it lives: they would keep the socket token in memory that long, and
    about 2 KiB per held socket (uvicorn builds these lists for the handshake and hands
    the same objects to every layer, so they are emptied in place).
    """
    for key in ("headers", "subprotocols"):
        held = websocket.scope.get(key)
        if isinstance(held, list):
            held.clear()


def _offered(websocket: WebSocket) -> list[str]:
    """The subprotocols the client offered, in its order."""
    offered = websocket.scope.get("subprotocols") or []
    return [item for item in offered if isinstance(item, str)]


def _token(websocket: WebSocket) -> str:
    """The socket token, from the offered subprotocols.

    A token in the URL is refused even when the header carries one too: URLs land in
    access logs, proxies' logs and browser history, so accepting it there would teach
    clients to leak it.
    """
    if "token" in websocket.query_params:
        raise ServerError(ServerCode.UNAUTHORISED, URL_TOKEN_REFUSED)
    for item in _offered(websocket):
        if item.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            # Clients percent-encode the token so any token is a valid subprotocol; ours
            # never need it (tokens.TOKEN_ALPHABET), so this is a no-op for them.
            return unquote(item.removeprefix(TOKEN_SUBPROTOCOL_PREFIX))
    return ""
