"""Draining a replica: on SIGTERM stop taking new work, move the sockets away, then stop.

A replica behind a load balancer that simply exits drops every socket it holds at
once, and every client finds out by itself. Draining (as LiveKit's nodes do) turns
that into an orderly hand-over. ``tavkit serve`` runs it on SIGTERM when
``drain_timeout`` is above 0:

1. At once :class:`Drain` says ``draining``: ``/healthz`` answers 503
   ``{"status": "draining"}``, so the load balancer stops choosing this replica
   (HAProxy after ``fall`` failed checks); :class:`DrainMiddleware` refuses ``enter``
   with 503 and server 10000 plus ``Retry-After`` (the Python client retries a 503,
   and so can HAProxy), and accepts a new signaling or user socket only to close it
   with 1012.
2. :meth:`Drain.move` closes every socket held (room and user sockets) with 1012
   (``service restart``) and the reason :data:`DRAIN_REASON`, spread evenly over
   :data:`CLOSE_SPREAD` seconds so the clients' reconnects reach the other replicas as
   a stream rather than one burst. Both clients treat 1012 as "resume now": they
   reconnect through the load balancer with the same socket token and keep their place
   in the room (a user socket resumes with its ``after``).
3. It waits until this process holds no socket, or ``drain_timeout``
   has passed; then uvicorn's ordinary shutdown runs (whatever socket is left is
   closed with 1012 at once, and the lifespan finalises the recorder, the log
   forwarder and the store).

The spread stays short on purpose: HAProxy (``docs/deploy/haproxy.cfg``) marks the
replica down after two failed checks a second apart and then cuts the connections
it still routes to it (``on-marked-down shutdown-sessions``), so every socket should
have been told to move before that.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from typing import Final, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from tavkit.errors import ServerUnavailable
from tavkit.protocol import CloseCode
from tavkit.server.errors import error_response
from tavkit.server.signaling.tokens import SUBPROTOCOL

__all__ = ["CLOSE_SPREAD", "DRAIN_REASON", "Drain", "DrainMiddleware", "held", "refuse_socket"]

logger = logging.getLogger(__name__)

DRAIN_REASON: Final = "replica draining"
"""The close reason of every socket a draining replica closes or refuses."""
CLOSE_SPREAD: Final = 1.0
"""Seconds over which the held sockets are closed (at most half the drain timeout)."""
_POLL: Final = 0.05
_ENTER_PATH: Final = re.compile(r"/v1/rooms/[^/]+/enter$")


class Closable(Protocol):
    """A socket the drain can tell to move (a ``SignalingConnection``)."""

    def close(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason``; the first call wins."""
        ...


class Sockets(Protocol):
    """Where the drain finds the sockets this process holds (the ``SocketRegistry``)."""

    def live(self) -> Sequence[Closable]:
        """Every socket held now."""
        ...


class _Held:
    """Several registries as one (room sockets and user sockets move alike)."""

    def __init__(self, parts: Sequence[Sockets]) -> None:
        self._parts = parts

    def live(self) -> list[Closable]:
        return [socket for part in self._parts for socket in part.live()]


def held(*registries: Sockets) -> Sockets:
    """Every socket of ``registries``, for :meth:`Drain.move`."""
    return _Held(registries)


class Drain:
    """Whether this process is draining, and the drain itself (:meth:`move`)."""

    def __init__(self) -> None:
        self._since: float | None = None

    @property
    def draining(self) -> bool:
        """True from :meth:`begin` on: refuse new enters and sockets, fail the health check."""
        return self._since is not None

    def begin(self) -> None:
        """Start refusing new work (idempotent)."""
        if self._since is None:
            self._since = time.monotonic()
            logger.warning("draining: refusing new enters and sockets, /healthz says draining")

    async def move(self, sockets: Sockets, within: float) -> int:
        """Begin, close every held socket with 1012 over the spread, and wait up to
        ``within`` seconds (counted from the start) for them to be gone.

        Returns how many sockets were still held at the end (0: all moved).
        """
        self.begin()
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + within
        held = sockets.live()
        spread = min(CLOSE_SPREAD, within / 2)
        logger.warning("draining: telling %d socket(s) to move over %.1f s", len(held), spread)
        for n, socket in enumerate(held):
            await asyncio.sleep(max(start + spread * n / len(held) - loop.time(), 0.0))
            socket.close(CloseCode.SERVICE_RESTART, DRAIN_REASON)
        left = sockets.live()
        while left and loop.time() < deadline:
            for socket in left:  # one whose handshake was under way when the drain began
                socket.close(CloseCode.SERVICE_RESTART, DRAIN_REASON)
            await asyncio.sleep(_POLL)
            left = sockets.live()
        if left:
            logger.warning("drain timed out after %.1f s: %d socket(s) left", within, len(left))
        else:
            logger.warning("drained: no socket left after %.2f s", loop.time() - start)
        return len(left)


class DrainMiddleware:
    """While :attr:`Drain.draining`, ``enter`` gets 503 with server 10000.

    A new signaling socket never comes this way: the socket lane
    (:mod:`tavkit.server.signaling.lane`) refuses it with :func:`refuse_socket`."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.drain.draining
            and scope["type"] == "http"
            and scope.get("method") == "POST"
            and _ENTER_PATH.search(str(scope.get("path", "")))
        ):
            refusal = ServerUnavailable(
                "this server is shutting down; enter again (another replica takes it)"
            )
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def refuse_socket(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept (with our subprotocol, so the client reads the close) and close with 1012.

    No ``error`` frame: the clients take 1012 as "try again", an error frame as the end
    of the membership.
    """
    if (await receive())["type"] != "websocket.connect":
        return
    offered = scope.get("subprotocols") or []
    await send(
        {"type": "websocket.accept", "subprotocol": SUBPROTOCOL if SUBPROTOCOL in offered else None}
    )
    await send(
        {"type": "websocket.close", "code": int(CloseCode.SERVICE_RESTART), "reason": DRAIN_REASON}
    )
