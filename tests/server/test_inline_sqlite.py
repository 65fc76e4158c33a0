"""SQLite statements run on the event loop's thread, and a locked database is waited for
in a worker thread, never on the loop (``tavkit.server.store.inline_sqlite``).

Everything here runs on a real SQLite file through the real :class:`Store`; the rival
writer is a plain ``sqlite3`` connection, as another process (``tavkit gc`` beside a
running server) would be.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from tavkit.errors import ServerError
from tavkit.server.store import Store, storage_errors
from tavkit.server.store.inline_sqlite import InlineConnection


@pytest.fixture
async def store(tmp_path: Path):
    """A migrated store on a fresh SQLite file, with one scratch table."""
    opened = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'tavkit.db'}")
    await opened.migrate()
    async with opened.sessions() as session, session.begin():
        await session.execute(text("CREATE TABLE scratch (n INTEGER)"))
    yield opened
    await opened.close()


def database_file(store: Store) -> str:
    """The SQLite file the store uses."""
    database = store.engine.url.database
    assert database is not None
    return database


async def test_statements_run_on_the_loops_thread_without_a_thread_per_connection(store):
    """A statement is executed by the thread that awaits it, and opening connections starts
    no worker threads (aiosqlite starts one per connection)."""
    threads_before = threading.active_count()
    seen: list[int] = []

    async with store.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, InlineConnection)
        await raw.driver_connection.create_function(
            "whose_thread", 0, lambda: seen.append(threading.get_ident()) or 1
        )
        assert (await conn.execute(text("SELECT whose_thread()"))).scalar_one() == 1

    assert seen == [threading.get_ident()]
    assert threading.active_count() == threads_before


async def test_a_transaction_does_not_yield_to_the_loop_between_statements(store):
    """Twenty statements of one transaction finish without the event loop running anything
    else in between: no round trips through the loop."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker is running
    async with store.sessions() as session, session.begin():
        before = ticks
        for n in range(20):
            await session.execute(text("INSERT INTO scratch (n) VALUES (:n)"), {"n": n})
            await session.execute(text("SELECT count(*) FROM scratch"))
        during = ticks - before
    stop.set()
    await task

    assert during == 0
    async with store.reads() as session:
        assert (await session.execute(text("SELECT count(*) FROM scratch"))).scalar_one() == 20


async def test_a_database_locked_by_another_writer_is_waited_for_off_the_loop(store):
    """While another connection holds the write lock, a write waits for it without stalling
    the event loop, and goes through once the lock is released."""
    rival = sqlite3.connect(database_file(store), isolation_level=None)
    rival.execute("BEGIN IMMEDIATE")
    rival.execute("INSERT INTO scratch (n) VALUES (-1)")

    async def write() -> None:
        async with store.sessions() as session, session.begin():
            await session.execute(text("INSERT INTO scratch (n) VALUES (1)"))

    writing = asyncio.create_task(write())
    beats = 0
    for _ in range(20):  # the loop keeps turning while the write waits
        await asyncio.sleep(0.01)
        beats += 1
    assert beats == 20
    assert not writing.done()

    rival.execute("COMMIT")
    rival.close()
    await asyncio.wait_for(writing, 10)

    async with store.reads() as session:
        rows = (await session.execute(text("SELECT n FROM scratch ORDER BY n"))).scalars()
        assert list(rows) == [-1, 1]


async def test_a_connection_that_waited_for_the_lock_answers_inline_again(store):
    """After a wait in a worker thread the connection's busy timeout is zero again: the
    next call on the loop's thread does not block on SQLite's busy handler."""
    rival = sqlite3.connect(database_file(store), isolation_level=None)
    rival.execute("BEGIN IMMEDIATE")

    async def write(n: int) -> None:
        async with store.sessions() as session, session.begin():
            await session.execute(text("INSERT INTO scratch (n) VALUES (:n)"), {"n": n})

    first = asyncio.create_task(write(1))
    await asyncio.sleep(0.05)
    rival.execute("COMMIT")
    await asyncio.wait_for(first, 10)

    async with store.engine.connect() as conn:
        timeout = (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one()
    assert timeout == 0

    rival.execute("BEGIN IMMEDIATE")  # locked again: the second write waits too
    second = asyncio.create_task(write(2))
    await asyncio.sleep(0.05)
    assert not second.done()
    rival.execute("COMMIT")
    rival.close()
    await asyncio.wait_for(second, 10)


async def test_other_database_errors_reach_the_caller_as_10006(store):
    """A failing statement is not retried: it fails at once, as the seed's 10006."""
    with pytest.raises(ServerError) as raised, storage_errors("reading a missing table"):
        async with store.reads() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
    assert raised.value.code == 10006
