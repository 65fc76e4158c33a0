"""Group-committed heartbeats: many sockets' touches written in one transaction.

A socket's traffic counts as its member's heartbeat (:meth:`RoomService.touch`); with
thousands of sockets a transaction per touch would take the database writer for most
of each second. :class:`TouchBatch` collects the touches that arrive while one write
runs and writes them together in the next.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

__all__ = ["TouchBatch"]


class TouchBatch:
    """Group commit for :meth:`RoomService.touch`: one transaction for every waiting touch.

    A touch starts a write at once when none is running; touches that arrive while one
    runs are collected and written together by the next, as soon as the running one
    ends. So at low load a touch costs what it did alone, and under load the number of
    transactions per second stays bounded by how long one takes, not by the sockets.
    The write runs as a task of its own: a caller that is cancelled (its socket closed)
    stops waiting without cancelling the others' write.
    """

    def __init__(
        self, write: Callable[[dict[str, tuple[uuid.UUID, str]]], Awaitable[set[str]]]
    ) -> None:
        self._write = write
        self._pending: dict[str, tuple[uuid.UUID, str]] = {}
        self._waiters: list[tuple[str, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None

    async def touch(self, room_uuid: uuid.UUID, user_id: str, connection_id: str) -> bool:
        """Wait for the batch holding this touch; True if the connection is live."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[connection_id] = (room_uuid, user_id)
        self._waiters.append((connection_id, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="tavkit touch batch")
        return await future

    async def _drain(self) -> None:
        waiters: list[tuple[str, asyncio.Future[bool]]] = []
        try:
            while self._waiters:
                wanted, self._pending = self._pending, {}
                waiters, self._waiters = self._waiters, []
                try:
                    live = await self._write(wanted)
                except Exception as exc:  # every waiter of this batch hears of it
                    for _, future in waiters:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for connection_id, future in waiters:
                    if not future.done():
                        future.set_result(connection_id in live)
        finally:
            self._task = None
            for _, future in waiters + self._waiters:  # cancelled (shutdown): nobody hangs
                future.cancel()
            self._pending, self._waiters = {}, []
