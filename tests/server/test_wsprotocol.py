"""The WebSocket protocol tavkit serves sockets with: what a held socket keeps of its handshake."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import TYPE_CHECKING

import httpx
from websockets.protocol import State

from tavkit.server.wsprotocol import LeanWebSocketProtocol

from .test_signaling import enter, frame
from .test_socket_resume import socket

if TYPE_CHECKING:
    from conftest import RunningServer


def _held_signaling_sockets() -> list[LeanWebSocketProtocol]:
    """The server side of every open signaling socket in this process."""
    # type(), not isinstance(): the heap may hold dead weak proxies, which raise on it.
    return [
        held
        for held in gc.get_objects()
        if type(held) is LeanWebSocketProtocol
        and held.handshake_complete
        and not held.disconnected
        and str(held.scope.get("path", "")).endswith("/v1/ws")
    ]


async def test_a_held_socket_keeps_neither_its_handshake_nor_its_token(
    sqlite_server: RunningServer,
) -> None:
    """Once welcomed, the server side of a socket holds no handshake header and no copy
    of the socket token it opened with, and frames still flow both ways."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        entered = await enter(http, sqlite_server, "alice", 71)
        token = entered["socketToken"]
        async with socket(sqlite_server, token) as ws:
            assert (await frame(ws))["type"] == "welcome"
            t = time.time()
            await ws.send(json.dumps({"type": "ping", "t": t}))
            assert await frame(ws) == {"type": "pong", "t": t}
            held = _held_signaling_sockets()
            assert held, "no signaling socket found on the server side"
            for protocol in held:
                assert len(protocol.request.headers) == 0
                assert len(protocol.response.headers) == 0
                assert protocol.scope["headers"] == []
                assert protocol.scope["subprotocols"] == []
                assert token not in repr(protocol.scope)


async def test_shutting_down_a_socket_whose_client_just_hung_up_does_not_raise(
    sqlite_server: RunningServer,
) -> None:
    """A socket whose client's close frame has been answered, still among the server's
    connections when the server shuts down (a hang-up racing a stop), is shut down
    without an exception: uvicorn's own raised ``InvalidState`` and ended the server's
    shutdown there (seen as a thread exception in a clean run of the suite)."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        entered = await enter(http, sqlite_server, "alice", 72)
        async with socket(sqlite_server, entered["socketToken"]) as ws:
            assert (await frame(ws))["type"] == "welcome"
            (held,) = _held_signaling_sockets()
        deadline = time.monotonic() + 10
        while held.conn.state is State.OPEN and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert held.conn.state is not State.OPEN and not held.close_sent
        held.shutdown()  # what the server's shutdown does to each connection it still lists
        assert held.transport.is_closing()
