"""Departures: an app's leaves queued while one batch is written go in the next one.

The writer here is a plain function that records what it was given (the room service's
own writer is exercised on a real database in test_room_service.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest

from tavkit.server.rooms.departures import Departure, Departures


def departure(n: int) -> Departure:
    """A leave of connection ``c<n>``."""
    return Departure(uuid.UUID(int=n), f"user{n}", f"c{n}", "exit")


class Writer:
    """Records each batch (app, connection ids); holds each write until released."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[str]]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_next = False

    async def __call__(self, app: int, batch: Sequence[Departure]) -> None:
        self.batches.append((app, [d.connection_id for d in batch]))
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the database failed")


async def test_leaves_that_arrive_during_a_write_go_together_in_the_next_one():
    """The first leave is written at once; the ten queued behind it make one batch."""
    writer = Writer()
    writer.release.clear()
    departures = Departures(writer)
    first = asyncio.create_task(departures.leave(7, departure(0)))
    await asyncio.sleep(0)
    others = [asyncio.create_task(departures.leave(7, departure(n))) for n in range(1, 11)]
    await asyncio.sleep(0)
    writer.release.set()
    await asyncio.gather(first, *others)
    assert writer.batches == [(7, ["c0"]), (7, [f"c{n}" for n in range(1, 11)])]


async def test_each_app_has_its_own_batches_and_a_batch_has_a_ceiling():
    """Two apps' leaves never share a transaction; max_batch splits a long queue."""
    writer = Writer()
    writer.release.clear()
    departures = Departures(writer, max_batch=4)
    tasks = [asyncio.create_task(departures.leave(n % 2, departure(n))) for n in range(10)]
    await asyncio.sleep(0)
    writer.release.set()
    await asyncio.gather(*tasks)
    assert sorted(writer.batches) == [
        (0, ["c0", "c2", "c4", "c6"]),
        (0, ["c8"]),
        (1, ["c1", "c3", "c5", "c7"]),
        (1, ["c9"]),
    ]


async def test_a_failed_write_fails_its_own_batch_and_the_next_batch_is_still_written():
    """The callers of a batch whose transaction failed get its error; later leaves are
    written all the same."""
    writer = Writer()
    writer.release.clear()
    writer.fail_next = True
    departures = Departures(writer)
    doomed = asyncio.create_task(departures.leave(1, departure(0)))
    await asyncio.sleep(0)
    later = asyncio.create_task(departures.leave(1, departure(1)))
    await asyncio.sleep(0)
    writer.release.set()
    with pytest.raises(RuntimeError, match="database failed"):
        await doomed
    await later
    assert writer.batches == [(1, ["c0"]), (1, ["c1"])]


async def test_a_leave_whose_caller_gives_up_is_still_written():
    """A socket cancelled while its leave waits (its client dropped) still leaves; aclose
    waits for it."""
    writer = Writer()
    writer.release.clear()
    departures = Departures(writer)
    busy = asyncio.create_task(departures.leave(3, departure(0)))
    await asyncio.sleep(0)
    gives_up = asyncio.create_task(departures.leave(3, departure(1)))
    await asyncio.sleep(0)
    gives_up.cancel()
    writer.release.set()
    await busy
    await departures.aclose()
    assert writer.batches == [(3, ["c0"]), (3, ["c1"])]
