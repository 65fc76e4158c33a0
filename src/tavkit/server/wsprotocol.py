"""uvicorn's WebSocket protocol, holding less per open socket (``uvicorn.Config(ws=...)``).

Every held socket keeps one of these for its whole life. uvicorn's own
(``websockets-sansio``, what ``ws="auto"`` picks when ``websockets`` is installed)
keeps three things a held socket does not need, measured with tracemalloc on
``tavkit serve`` holding 800 sockets (``bench/capacity.py``'s load):

- the handshake: the request's and the response's ``Headers`` (about 4.5 KiB of
  strings, lists and dicts per socket). Dropping uvicorn's ``request`` and ``response``
  attributes frees nothing, because the ``websockets`` parser's generator still holds
  the request in a local variable for as long as the connection lives; so the
  ``Headers`` objects are emptied in place once the handshake has gone out. The ASGI
  scope keeps its own copy of the request headers (``scope["headers"]``), which is
  what the app reads.
- an ``asyncio.Queue`` for the frames read and not yet received by the app: four
  deques allocated up front, about 3 KiB while empty. uvicorn pauses reading after
  each frame until the app takes it, so this queue holds a frame or two at most.
- an ``asyncio.Event`` for write back-pressure: one more deque (~760 B).

Both are replaced by :mod:`tavkit.server.mailbox`'s ``Mailbox`` and ``Flag``, which
allocate nothing while idle and keep asyncio's semantics (an item is never lost to a
cancelled reader). Everything else is uvicorn's, unchanged: the handshake, the frame
handling, back-pressure, close and keepalive.
"""

from __future__ import annotations

import sys
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from tavkit.server.mailbox import Flag, Mailbox

__all__ = ["LeanWebSocketProtocol"]


class _Inbox(Mailbox[Any]):
    """uvicorn's receive queue: unbounded (reading pauses after each frame anyway)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(sys.maxsize)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol without its idle per-socket allocations."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        writable = Flag()
        writable.set()
        self.writable = writable  # type: ignore[assignment]

    def shutdown(self) -> None:
        """uvicorn's shutdown of one connection, which raised for a socket whose client had
        just hung up: its close frame answered, the transport closing, not yet gone from
        the server's connections (one turn of the loop). ``websockets`` refuses a second
        close frame (``InvalidState``), and the exception ended the server's shutdown
        there, skipping the other connections and the lifespan's shutdown. Such a socket
        only needs its transport closed."""
        try:
            super().shutdown()
        except InvalidState:
            self.transport.close()

    async def send(self, message: ASGISendEvent) -> None:
        """uvicorn's ``send``; once the handshake's answer is out, forget the handshake."""
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self._forget_handshake()

    def _forget_handshake(self) -> None:
        """Empty the handshake's headers, which the ``websockets`` parser keeps referenced."""
        request = getattr(self, "request", None)
        response = getattr(self, "response", None)
        if request is not None:
            request.headers.clear()
        if response is not None:
            response.headers.clear()
