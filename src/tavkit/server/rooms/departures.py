"""Members who hang up, written together: one transaction per batch of an app's leaves.

When a big room ends, or a load balancer drops a replica's sockets, thousands of members
leave within a second. Written one by one, each leave is a transaction of its own under
the app's lock (and SQLite's one writer): about 10 ms each on the build machine, so
3,000 leaves at once queued for 30 s and the last few hundred failed with 10006 ("timed
out while leaving the room"; ``bench/capacity.py``'s leave phase). Most of a lone leave's
time is the transaction around it (the lock hand-over, ``BEGIN``, the journal counter,
``COMMIT``), not the leave.

:class:`Departures` queues each app's leaves; one writer task per app writes everything
queued (up to :data:`MAX_BATCH`) in one transaction, then the next batch, until the queue
is empty. A lone leave on a quiet server is written at once, as before. Each caller
waits for its own batch and gets that batch's error, if any. A leave queued is written
even if its caller is cancelled: a socket whose client drops right after ``leave`` must
still leave.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_BATCH", "Departure", "Departures", "WriteDepartures"]

MAX_BATCH: Final = 200
"""Leaves in one transaction at most: keeps the app's lock from being held for long."""


@dataclass(frozen=True, slots=True)
class Departure:
    """One connection's member leaving its session, and why (a ``member-left`` reason)."""

    room_uuid: uuid.UUID
    user_id: str
    connection_id: str
    reason: str


WriteDepartures = Callable[[int, Sequence[Departure]], Awaitable[None]]
"""Write the leaves of one app (sdkAppId) in one transaction; raises for all of them."""


class Departures:
    """Each app's queued leaves and the task writing them (see the module docstring)."""

    def __init__(self, write: WriteDepartures, *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._queued: dict[int, list[tuple[Departure, asyncio.Future[None]]]] = {}
        self._writers: dict[int, asyncio.Task[None]] = {}

    async def leave(self, sdk_app_id: int, departure: Departure) -> None:
        """Queue ``departure`` and wait until its batch is written (or raise its error)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A caller cancelled while waiting never reads its future's error: read it here.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._queued.setdefault(sdk_app_id, []).append((departure, future))
        if sdk_app_id not in self._writers:
            self._writers[sdk_app_id] = asyncio.create_task(
                self._drain(sdk_app_id), name=f"tavkit-departures-{sdk_app_id}"
            )
        await asyncio.shield(future)

    async def aclose(self) -> None:
        """Wait for every queued leave to be written (the store is still open)."""
        while self._writers:
            await asyncio.gather(*self._writers.values(), return_exceptions=True)

    async def _drain(self, sdk_app_id: int) -> None:
        queued = self._queued[sdk_app_id]  # leave() appends to this same list
        try:
            while queued:
                batch = queued[: self._max_batch]
                del queued[: self._max_batch]
                try:
                    await self._write(sdk_app_id, [departure for departure, _ in batch])
                except asyncio.CancelledError:  # shutdown: the batch may not be written
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        future.set_exception(exc)
                else:
                    for _, future in batch:
                        future.set_result(None)
        except asyncio.CancelledError:
            for _, future in queued:
                future.cancel()
            raise
        finally:
            del self._queued[sdk_app_id]
            del self._writers[sdk_app_id]
