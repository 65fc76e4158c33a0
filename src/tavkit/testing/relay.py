"""A TCP relay on loopback that a test can break, like a flaky network between client and server.

The client is pointed at the relay; the server's ``enter`` answer then names the
relay in ``socketUrl`` too (it is derived from the request's Host), so both REST and
the signaling socket go through it. :meth:`TcpRelay.cut` resets every connection
that is open now (new ones still work); :meth:`TcpRelay.refuse` resets the next
``n`` connections as soon as they are accepted; :meth:`TcpRelay.block` cuts and
refuses everything until :meth:`TcpRelay.unblock`, like a network that is down.

Part of :mod:`tavkit.testing`: a participant's REST calls and signaling socket go
through a relay of its own, so a blackout can take its TCP traffic away too.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpRelay:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port``, byte for byte."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refuse = 0
        self._blocked = False
        self.accepted = 0
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` of the relay."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TcpRelay:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> int:
        """Reset every open connection (no close handshake); return how many there were."""
        pairs = list(self._pairs)
        for left, right in pairs:
            left.transport.abort()
            right.transport.abort()
        return len(pairs)

    def refuse(self, count: int) -> None:
        """Reset the next ``count`` connections right after accepting them."""
        self._refuse = count

    def block(self) -> int:
        """Cut every open connection and refuse new ones until :meth:`unblock`."""
        self._blocked = True
        return self.cut()

    def unblock(self) -> None:
        """Accept and forward connections again."""
        self._blocked = False

    @property
    def blocked(self) -> bool:
        """Whether the relay is refusing everything (:meth:`block`)."""
        return self._blocked

    async def aclose(self) -> None:
        """Stop listening and drop everything."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def __aenter__(self) -> TcpRelay:
        return self if self._server is not None else await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._blocked or self._refuse > 0:
            if not self._blocked:
                self._refuse -= 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self._target), 5)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            self._pairs.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
