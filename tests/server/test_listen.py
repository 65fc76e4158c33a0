"""The servers' listening socket: connections it accepts send small writes at once."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tavkit.server.listen import listening_socket


async def _nodelay_of_accepted(sock: socket.socket) -> int:
    """Serve ``sock`` with asyncio, connect once, and return TCP_NODELAY of the server side
    of that connection (what uvicorn's transports are built on)."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = writer.get_extra_info("socket")
        seen.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    try:
        host, port = sock.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        try:
            async with asyncio.timeout(10):
                return await seen
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_connections_the_servers_socket_accepts_have_nagle_off() -> None:
    """A connection accepted on ``listening_socket`` has TCP_NODELAY, so a response
    written in two parts does not wait for the client's delayed ACK (the test server's
    REST answers on a kept-alive connection came about 40 ms late before). A socket made
    the plain way, which ``tavkit serve`` and the test server used, gets no such option
    from asyncio: that difference is why the helper exists, and it is checked here too."""
    assert await _nodelay_of_accepted(listening_socket("127.0.0.1", 0)) != 0
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    plain.bind(("127.0.0.1", 0))
    assert await _nodelay_of_accepted(plain) == 0


def test_an_ipv6_host_bracketed_or_not_gets_an_ipv6_socket() -> None:
    """``--host [::1]`` and ``--host ::1`` both bind the IPv6 loopback."""
    if not socket.has_ipv6:
        pytest.fail("this machine's Python has no IPv6")
    for host in ("::1", "[::1]"):
        sock = listening_socket(host, 0)
        try:
            assert sock.family == socket.AF_INET6
            assert sock.getsockname()[0] == "::1"
        finally:
            sock.close()


def test_an_address_that_cannot_be_bound_raises_and_leaks_no_socket() -> None:
    """A port already taken raises OSError (``tavkit serve`` prints "cannot bind")."""
    taken = listening_socket("127.0.0.1", 0)
    taken.listen()
    try:
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
