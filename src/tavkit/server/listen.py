"""The listening socket every tavkit server serves from (``tavkit serve``, the test server).

uvicorn is handed a socket we bind ourselves (so ``--port 0`` can print the port it got,
and a restart can reuse one). asyncio turns Nagle's algorithm off (``TCP_NODELAY``) on
each connection it accepts only when the socket says it is TCP: ``proto`` must be
``IPPROTO_TCP``, and ``socket.socket(AF_INET, SOCK_STREAM)`` leaves it 0. Without it a
response written in two parts (uvicorn writes the headers, then the body) may wait for
the client's delayed ACK before its second part leaves. Measured on loopback with a
kept-alive httpx client (7 Dec): a server in a thread of the client's process (the
``tavkit_server`` fixture, the benchmarks) answered ``/healthz`` in 48 ms, 4 ms with
this, and a REST enter in 64 ms, 25 ms with this; ``tavkit serve`` in a process of its
own happened not to wait (``/healthz`` 4.3 ms, 3.1 ms with this), but whether a write
waits for an ACK should not depend on the client's timing.
"""

from __future__ import annotations

import socket

__all__ = ["listening_socket"]


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: any free port), not yet listening.

    ``host`` may be an IPv6 address, bracketed or not. Raises :class:`OSError` when the
    address cannot be bound; the socket is closed then.
    """
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections on Linux, whatever asyncio does.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((bare, port))
    except OSError:
        sock.close()
        raise
    return sock
