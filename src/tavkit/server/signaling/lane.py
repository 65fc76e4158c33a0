"""A short way in for the signaling socket: past the HTTP layers, straight to its handler.

A signaling socket lives as long as its call, and every ASGI layer it came through
stays on its stack for all that time: a coroutine frame each, and, for the layers
that wrap ``send`` or ``receive``, one more call for every frame the socket sends or
reads. Through the full FastAPI stack that was about fifteen layers (security headers,
error counting, the body guard, FastAPI's exception, telemetry and exit-stack layers,
the router and its dependency solving), none of which does anything for a socket:
they all pass a ``websocket`` scope straight on. Measured with ``bench/capacity.py``
and ``bench/relay.py`` (the numbers are in ``bench/RESULTS.md``), they cost memory per
held socket and CPU per relayed frame.

:class:`SocketLane` sits outside those layers (inside only Starlette's own outermost
error and telemetry layers, and the proxy-headers layer when proxies are trusted, so
the client's address is still the real one) and takes exactly the two socket paths
under the app's root path: the signaling socket ``/v1/ws`` and the user socket
``/v1/ws/user`` (:mod:`tavkit.server.calls.socket`), which lives as long. What the
layers it skips did for a socket, it does itself: a draining replica accepts the
socket only to close it with 1012 (see :mod:`tavkit.server.drain`), and the accept
names the replica (:data:`~tavkit.server.headers.REPLICA_HEADER`), which the handler
adds to its own accept rather than through a wrapped ``send``. Every other scope goes
on unchanged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from tavkit.server.calls.socket import USER_SOCKET_PATH, user_socket
from tavkit.server.drain import Drain, refuse_socket
from tavkit.server.headers import named_send, replica_header
from tavkit.server.signaling.socket import SOCKET_PATH, signaling_socket

__all__ = ["SocketLane"]

_WEBSOCKET: Final = "websocket"
_Handler = Callable[..., Awaitable[None]]
_HANDLERS: Final[dict[str, _Handler]] = {
    SOCKET_PATH: signaling_socket,
    USER_SOCKET_PATH: user_socket,
}


class SocketLane:
    """ASGI middleware: ``/v1/ws`` and ``/v1/ws/user`` sockets to their handlers, the rest
    onward."""

    def __init__(self, app: ASGIApp, *, drain: Drain, replica: str) -> None:
        self.app = app
        self.drain = drain
        self.header = replica_header(replica)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = _HANDLERS.get(_route_path(scope)) if scope["type"] == _WEBSOCKET else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            await refuse_socket(scope, receive, named_send(send, self.header))
            return
        await handler(WebSocket(scope, receive, send), replica_header=self.header)


def _route_path(scope: Scope) -> str:
    """The path the router would match: without the app's root path (a proxy's prefix)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        return path[len(root) :]
    return path
