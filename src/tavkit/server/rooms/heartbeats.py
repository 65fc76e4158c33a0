"""Sockets' heartbeats: heard in memory, written to the store in batches.

A socket's traffic counts as its member's heartbeat (:meth:`RoomService.touch`). With
thousands of sockets, writing each touch as it comes would cost the server a database
round trip per ``ping``; :class:`Liveness` notes a touch in memory instead, and a flush
writes every connection heard since the last one in one transaction, every
:func:`flush_interval` seconds while there is something to write (and before this
replica's own sweep, and on shutdown).

The store stays the source of truth for who is in a room, within one flush: every
replica's sweeper reads the members' last heartbeat there. A batch is written with the
earliest time heard in it, so a member never looks fresher than it is (a silent member
is still removed within the timeout and one sweep) and a live one at most one flush
older; :func:`flush_interval` leaves that room within the timeout, so no replica's
sweeper ever removes a member another replica is hearing.

A touch also tells its socket whether the connection is still live. The store says so
with every write; a connection it confirmed less than ``trust_for`` ago is taken as live
at once (a flush that finds it gone makes its next touch False, and the bus has told the
socket why by then anyway), and so is one whose first socket was just recorded
(:meth:`Liveness.confirmed`). Any other touch -- one back from a long silence, a
connection this replica knows nothing of -- waits for a write of its own,
group-committed with every other touch that waits: one transaction for all that arrive
while one is being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

from tavkit.errors import TAvKitError

__all__ = ["FLUSH_EVERY", "Liveness", "Write", "flush_interval"]

logger = logging.getLogger(__name__)

FLUSH_EVERY: Final = 1.0
"""Seconds between flushes of the heartbeats heard in memory, at most."""

Write = Callable[[dict[str, tuple[uuid.UUID, str]], float], Awaitable[set[str]]]
"""Write one heartbeat time for connections (id -> (session, userId)); the live ones back."""


def flush_interval(heartbeat_interval: float, heartbeat_timeout: float) -> float:
    """How often heard heartbeats are written: :data:`FLUSH_EVERY`, less for short timers.

    A member that sends a heartbeat every ``heartbeat_interval`` is at most that plus two
    flushes old in the store (heard just after a flush, written with the earliest time
    of the next batch); a quarter of the slack between interval and timeout keeps half
    of that slack for a slow write and a late client.
    """
    return min(FLUSH_EVERY, (heartbeat_timeout - heartbeat_interval) / 4)


class Liveness:
    """This replica's view of its sockets' heartbeats, flushed to the store in batches.

    ``write(connections, at)`` records heartbeat time ``at`` for each connection in one
    transaction and returns the ids still live. ``trust_for`` is how long a write that
    found a connection live lets its touches answer from memory.
    """

    def __init__(
        self,
        write: Write,
        *,
        clock: Callable[[], float],
        flush_every: float,
        trust_for: float,
    ) -> None:
        if flush_every <= 0 or trust_for <= 0:
            raise ValueError("flush_every and trust_for must be positive")
        self._write = write
        self._clock = clock
        self._flush_every = flush_every
        self._trust_for = trust_for
        # connection id -> heartbeat time last written for it, in write order (prune()).
        self._confirmed: dict[str, float] = {}
        # connection id -> when a write found it no longer live (its next touch says so).
        self._gone: dict[str, float] = {}
        self._heard: dict[str, tuple[uuid.UUID, str]] = {}  # since the last flush
        self._heard_since = 0.0  # the earliest of them
        self._flusher: asyncio.Task[None] | None = None
        self._waiting: dict[str, tuple[uuid.UUID, str]] = {}
        self._waiters: list[tuple[str, asyncio.Future[bool]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def touch(self, room_uuid: uuid.UUID, user_id: str, connection_id: str) -> bool:
        """Count a heartbeat of ``connection_id``; False when it is no longer live."""
        if self._gone.pop(connection_id, None) is not None:
            return False
        now = self._clock()
        confirmed = self._confirmed.get(connection_id)
        if confirmed is None or now - confirmed >= self._trust_for:
            return await self._commit(room_uuid, user_id, connection_id)
        if not self._heard:
            self._heard_since = now
        self._heard[connection_id] = (room_uuid, user_id)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later(), name="tavkit heartbeat flush")
        return True

    async def flush(self) -> None:
        """Write every heartbeat heard since the last flush now (one transaction).

        A failed write (the database away) keeps them for the next flush and raises.
        """
        if not self._heard:
            return
        heard, since = self._heard, self._heard_since
        self._heard = {}
        try:
            live = await self._write(heard, since)
        except BaseException:
            for connection_id, member in heard.items():  # heard since stay the newer
                self._heard.setdefault(connection_id, member)
            self._heard_since = since
            raise
        self._learn(heard, live, since)

    def confirmed(self, connection_id: str, at: float) -> None:
        """Another write found ``connection_id`` live at ``at`` (its socket's first opening
        is recorded on a live membership only): its touches are answered from memory from
        then on, as after a write of ours, instead of each socket's first frame (in a join,
        the offer or the answer) waiting for a heartbeat write of its own."""
        if at > self._confirmed.get(connection_id, -math.inf):
            self._confirmed.pop(connection_id, None)  # re-insert: keep write order
            self._confirmed[connection_id] = at

    def forget(self, connection_id: str) -> None:
        """The connection left the room (this replica wrote it): nothing more to write."""
        self._confirmed.pop(connection_id, None)
        self._heard.pop(connection_id, None)

    def prune(self, older_than: float) -> None:
        """Drop what was learnt before ``older_than`` (a timeout ago): it is asked again."""
        for table in (self._confirmed, self._gone):
            while table:  # both are in the order they were written
                connection_id, at = next(iter(table.items()))
                if at >= older_than:
                    break
                del table[connection_id]

    async def aclose(self) -> None:
        """Stop flushing on a timer and write what was heard (a graceful shutdown)."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        try:
            await self.flush()
        except TAvKitError as exc:
            logger.warning("heartbeats heard last not written: %s", exc)

    # -- helpers -----------------------------------------------------------------------

    def _learn(self, written: dict[str, tuple[uuid.UUID, str]], live: set[str], at: float) -> None:
        now = self._clock()
        for connection_id in written:
            self._confirmed.pop(connection_id, None)  # re-insert: keep write order
            if connection_id in live:
                self._confirmed[connection_id] = at
            else:
                self._heard.pop(connection_id, None)
                self._gone.pop(connection_id, None)
                self._gone[connection_id] = now

    async def _flush_later(self) -> None:
        """Flush every ``flush_every`` seconds while something heard waits to be written."""
        try:
            while self._heard:
                await asyncio.sleep(self._flush_every)
                try:
                    await self.flush()
                except TAvKitError as exc:  # kept for the next one
                    logger.warning("heartbeats not written: %s", exc)
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None

    async def _commit(self, room_uuid: uuid.UUID, user_id: str, connection_id: str) -> bool:
        """Write this touch now, with every other that waits for a write (group commit)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[connection_id] = (room_uuid, user_id)
        self._waiters.append((connection_id, future))
        if self._committer is None:
            # A task of its own: a caller that is cancelled (its socket closed) stops
            # waiting without cancelling the others' write.
            self._committer = asyncio.create_task(self._drain(), name="tavkit touch batch")
        return await future

    async def _drain(self) -> None:
        """Write the waiting touches, batch after batch, until none waits."""
        waiters: list[tuple[str, asyncio.Future[bool]]] = []
        try:
            while self._waiters:
                wanted, self._waiting = self._waiting, {}
                waiters, self._waiters = self._waiters, []
                at = self._clock()
                try:
                    live = await self._write(wanted, at)
                except Exception as exc:  # every waiter of this batch hears of it
                    for _, future in waiters:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self._learn(wanted, live, at)
                for connection_id, future in waiters:
                    if not future.done():
                        future.set_result(connection_id in live)
        finally:
            self._committer = None
            for _, future in waiters + self._waiters:  # cancelled (shutdown): nobody hangs
                future.cancel()
            self._waiting, self._waiters = {}, []
