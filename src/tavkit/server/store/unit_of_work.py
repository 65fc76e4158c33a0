"""One way to change the database: a transaction, retried on conflicts, events after commit.

Every service that writes (rooms, in-call messages, client logs, recordings) runs its
change through :func:`transaction`, so they share one discipline:

* **SQLite's one writer.** Writers queue on the store's in-process lock
  (:attr:`Store.writer`) before ``BEGIN IMMEDIATE``, rather than polling SQLite's busy
  handler; readers (``readonly=True``) never take it.
* **Conflicts are retried.** A unique index that caught a race (another replica, or a
  path the per-app lock does not cover), or a PostgreSQL deadlock or serialisation
  failure, reruns the whole body up to :data:`ATTEMPTS` times; after that the caller's
  ``conflict`` code is raised.
* **Events after commit.** The body appends ``(channel, event)`` pairs to its outbox;
  they are published on the bus only once the transaction has committed, so nobody
  hears of a change that was rolled back.
* **Journal last.** The events the body noted with :func:`tavkit.server.journal.record`
  are written as the last statement before commit, so they exist exactly when the
  change does.
* **Bounded.** The whole thing (lock waits included) runs under a timeout; running out
  is server 10006, like any other database failure (:func:`storage_errors`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import ServerCode, ServerError
from tavkit.server.events import Event
from tavkit.server.journal import write_recorded
from tavkit.server.store.db import Store, storage_errors

if TYPE_CHECKING:
    from tavkit.server.bus import Bus

__all__ = ["ATTEMPTS", "Body", "Outbox", "is_conflict", "transaction"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

Outbox = list[tuple[str, Event]]
"""Events a transaction's body wants published after commit: ``(channel, event)``."""
Body = Callable[[AsyncSession, Outbox], Awaitable[T]]
"""A transaction's body: it reads and writes through the session, appends to the outbox."""

ATTEMPTS: Final = 3
"""How many times a body runs when unique-index conflicts keep happening."""
_RETRYABLE_SQLSTATES: Final = frozenset({"40001", "40P01"})  # serialization, deadlock


def is_conflict(exc: DBAPIError) -> bool:
    """Whether retrying the transaction can succeed: a unique index caught a race, or
    PostgreSQL broke a deadlock or a serialisation conflict."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


async def transaction(
    store: Store,
    action: str,
    body: Body[T],
    *,
    bus: Bus | None = None,
    conflict: ServerCode = ServerCode.DATABASE,
    readonly: bool = False,
    lock: asyncio.Lock | None = None,
    op_timeout: float | None = 30.0,
) -> T:
    """Run ``body`` in one transaction and return what it returns; publish its outbox.

    ``action`` names the work in errors and logs ("entering the room"). ``lock`` is the
    caller's own serialisation (the room service's per-app lock), held around every
    attempt; the SQLite writer lock is taken inside it, so the two always nest the same
    way. Events go to ``bus`` after the commit; a body that appends events with no bus
    is a programming error.
    """
    try:
        async with asyncio.timeout(op_timeout), _held(lock):
            return await _attempts(store, action, body, bus, conflict, readonly)
    except TimeoutError:
        raise ServerError(ServerCode.DATABASE, f"timed out while {action}") from None


async def _attempts(
    store: Store,
    action: str,
    body: Body[T],
    bus: Bus | None,
    conflict: ServerCode,
    readonly: bool,
) -> T:
    sessions = store.reads if readonly else store.sessions
    writer = None if readonly else store.writer
    for attempt in range(1, ATTEMPTS + 1):
        out: Outbox = []
        with storage_errors(action):
            try:
                async with _held(writer), sessions() as s, s.begin():
                    result = await body(s, out)
                    await write_recorded(s)  # last: it takes the app's journal counter
            except DBAPIError as exc:
                if not is_conflict(exc):
                    raise
                logger.info("conflict while %s (attempt %d): %s", action, attempt, exc.orig)
                if attempt < ATTEMPTS:
                    continue
                raise ServerError(
                    conflict, f"the data changed concurrently while {action}; try again"
                ) from exc
        if out:
            if bus is None:
                raise RuntimeError(f"events to publish while {action}, but no bus was given")
            for channel, event in out:
                await bus.publish(channel, event)
        return result
    raise AssertionError("unreachable: the last attempt returns or raises")


@asynccontextmanager
async def _held(lock: asyncio.Lock | None) -> AsyncIterator[None]:
    """Hold ``lock`` for the block, or nothing when there is no lock."""
    if lock is None:
        yield
        return
    async with lock:
        yield
