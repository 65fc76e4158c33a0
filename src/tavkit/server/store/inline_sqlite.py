"""SQLite statements run on the event loop's thread, not a round trip to a worker thread.

aiosqlite gives every connection a thread of its own and sends it each call (execute,
fetch, commit) through a queue; the result comes back through
``call_soon_threadsafe`` and waits for the event loop's next turn. A transaction of
twenty statements (a member entering a room) makes twenty such round trips while it
holds its app's lock and the process's SQLite writer lock, and on a loop busy with
thousands of sockets each round trip waits behind everything else that is ready:
the round trips, not SQLite, were most of an enter's 15-20 ms and the reason joins
queued for seconds while 3,000 members ramped in (issue 17).

SQLite on a local file answers a statement of ours in microseconds, so
:class:`InlineConnection` (an aiosqlite connection, so SQLAlchemy's aiosqlite dialect
drives it unchanged) runs each call at once on the calling thread; the awaiting
coroutine finds its future already done and carries on without yielding to the loop.

The one thing that can make SQLite wait is a lock held by another connection: a
writer in another process (``tavkit gc`` or ``tavkit db`` beside a running server), or
one of this process's writers that did not queue on :attr:`Store.writer`. Waiting for
it inline would stall every socket of the server, so inline calls run with SQLite's
busy timeout at zero; a call that finds the database locked is run again in a worker
thread with the full busy timeout (:data:`BUSY_TIMEOUT`), where waiting blocks
nobody. A statement SQLite refused with "locked" did nothing, so running it again is
safe.

What it costs: the CPU of a statement is now spent on the loop's thread rather than
beside it (the server's statements are small and indexed), and an automatic WAL
checkpoint, which SQLite runs inside the commit that fills the log past 1,000 pages,
happens there too: 4-7 ms on the build machine's disk (with ``synchronous=NORMAL``),
once per 4 MB written, against tens of microseconds for an ordinary commit.

It subclasses aiosqlite's ``Connection`` and replaces its worker queue (private
attributes of aiosqlite 0.22, which ``pyproject.toml`` pins to that series); the tests
in ``tests/server/test_inline_sqlite.py`` fail if a release changes what it relies on.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Final

import aiosqlite

__all__ = ["BUSY_TIMEOUT", "InlineConnection", "connect"]

BUSY_TIMEOUT: Final = 15.0
"""How long a call that found the database locked waits for it, in a worker thread."""


def _locked(exc: BaseException) -> bool:
    """Whether SQLite refused a call because another connection holds a lock (SQLITE_BUSY,
    with any extended code such as a WAL recovery in progress)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == sqlite3.SQLITE_BUSY
    return "database is locked" in str(exc).lower()


class _InlineQueue:
    """Stands in for aiosqlite's queue to its worker thread: runs each call at once."""

    def __init__(self, owner: InlineConnection) -> None:
        self._owner = owner

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting coroutine
            if future is not None and _locked(exc) and self._owner._connection is not None:
                self._owner._wait_in_thread(future, function)
                return
            if future is None:
                raise
            if not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(result)

    def get(self) -> Any:  # aiosqlite's worker thread is never started
        raise RuntimeError("an inline SQLite connection has no worker thread")


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run on the caller's thread (see module doc)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _InlineQueue(self)  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no worker thread to start

    def _wait_in_thread(self, future: asyncio.Future[Any], function: Callable[[], Any]) -> None:
        """Run ``function`` again in a worker thread, waiting up to :data:`BUSY_TIMEOUT`
        for the lock; its outcome settles ``future``."""
        connection = self._conn

        def patiently() -> Any:
            connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            try:
                return function()
            finally:
                connection.execute("PRAGMA busy_timeout=0")

        waited = asyncio.get_running_loop().run_in_executor(None, patiently)

        def settle(done: asyncio.Future[Any]) -> None:
            if future.done():
                return
            if done.cancelled():
                future.cancel()
            elif (exc := done.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(done.result())

        waited.add_done_callback(settle)


def connect(database: str | Path) -> InlineConnection:
    """An inline connection to ``database`` (awaited by SQLAlchemy's aiosqlite dialect).

    The connection may be closed from another thread (a pool disposed at shutdown), so
    it is not tied to the thread that made it; SQLAlchemy's pool lends it to one
    coroutine at a time.
    """

    def connector() -> sqlite3.Connection:
        uri = str(database).startswith("file:")
        return sqlite3.connect(database, timeout=0, check_same_thread=False, uri=uri)

    return InlineConnection(connector)
