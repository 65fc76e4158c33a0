"""Group-committed socket heartbeats: ``RoomService.touch`` on a real database.

Touches that arrive while one batch is being written go into the next, one
transaction for all of them; each caller still learns whether its own connection
is live. Transactions are counted with the engine's own ``begin`` event.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import event, select

from tavkit.server.rooms.service import RoomService
from tavkit.server.store.db import Store
from tavkit.server.store.models import MemberRow

from ._util import APP, Clock, eventually, room_service


@pytest.fixture
async def rooms(store: Store, clock: Clock) -> RoomService:
    """A room service with a 10 s heartbeat timeout and room for 60 members a room."""
    return await room_service(store, clock, max_members=60)


@pytest.fixture
def writes(store: Store) -> list[int]:
    """One entry per write transaction the store begins (readers excluded)."""
    seen: list[int] = []

    def on_begin(conn: Any) -> None:
        if not conn.get_execution_options().get("tavkit_readonly", False):
            seen.append(1)

    event.listen(store.engine.sync_engine, "begin", on_begin)
    return seen


async def test_concurrent_touches_share_transactions_and_each_learns_its_fate(rooms, writes):
    """40 concurrent touches take at most two transactions; the left member's alone is False."""
    entered = [await rooms.enter(APP, 1, f"u{i}", privileges=255) for i in range(40)]
    await rooms.exit(APP, 1, "u7")
    writes.clear()
    results = await asyncio.gather(
        *(rooms.touch(e.room_uuid, f"u{i}", e.connection_id) for i, e in enumerate(entered))
    )
    assert results == [i != 7 for i in range(40)]
    assert 1 <= len(writes) <= 2  # the first touch alone, the 39 that queued behind it together


async def test_a_replaced_or_mismatched_connection_is_not_live(rooms):
    """A replaced connection, or a live connection id under another user or session, is False."""
    old = await rooms.enter(APP, 2, "alice", privileges=255)
    new = await rooms.enter(APP, 2, "alice", privileges=255)  # replaces the old connection
    bob = await rooms.enter(APP, 2, "bob", privileges=255)
    results = await asyncio.gather(
        rooms.touch(old.room_uuid, "alice", old.connection_id),
        rooms.touch(new.room_uuid, "alice", new.connection_id),
        rooms.touch(bob.room_uuid, "mallory", bob.connection_id),
        rooms.touch(uuid.uuid4(), "bob", bob.connection_id),
    )
    assert results == [False, True, False, False]


async def test_batched_touches_keep_members_alive_and_the_sweeper_times_out_the_silent(
    rooms, clock
):
    """Members touched in one batch survive the sweep; the one that stayed silent times out."""
    entered = [await rooms.enter(APP, 3, f"u{i}", privileges=255) for i in range(10)]
    clock.now += 8
    results = await asyncio.gather(
        *(rooms.touch(e.room_uuid, f"u{i}", e.connection_id) for i, e in enumerate(entered[1:], 1))
    )
    assert all(results)
    clock.now += 3  # u0 silent for 11 s, the others for 3 s
    assert (await rooms.sweep()).timed_out == 1
    assert sorted(m.user_id for m in await rooms.members(entered[0].room_uuid)) == [
        f"u{i}" for i in range(1, 10)
    ]


async def test_a_cancelled_touch_does_not_fail_the_others(rooms):
    """A caller that stops waiting (its socket closed) leaves the batch's other touches intact."""
    entered = [await rooms.enter(APP, 4, f"u{i}", privileges=255) for i in range(6)]
    tasks = [
        asyncio.create_task(rooms.touch(e.room_uuid, f"u{i}", e.connection_id))
        for i, e in enumerate(entered)
    ]
    await asyncio.sleep(0)  # every touch is queued or being written
    tasks[3].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert [r for i, r in enumerate(done) if i != 3] == [True] * 5
    # The service still writes touches afterwards.
    again = await rooms.enter(APP, 4, "late", privileges=255)
    assert await rooms.touch(again.room_uuid, "late", again.connection_id)


async def test_heard_heartbeats_wait_in_memory_and_the_sweep_writes_them_first(
    rooms, writes, clock
):
    """Touches of confirmed connections write nothing at once; the sweep flushes them in one
    transaction before it looks, so they stay and only the silent member times out."""
    entered = [await rooms.enter(APP, 5, f"u{i}", privileges=255) for i in range(10)]
    assert all(
        await asyncio.gather(
            *(rooms.touch(e.room_uuid, f"u{i}", e.connection_id) for i, e in enumerate(entered))
        )
    )
    clock.now += 4  # within half a timeout of the writes above: answered from memory
    writes.clear()
    for i, e in enumerate(entered[1:], 1):
        assert await rooms.touch(e.room_uuid, f"u{i}", e.connection_id)
    assert writes == []
    clock.now += 7  # u0 silent for 11 s, the others for 7 s
    report = await rooms.sweep()
    assert report.timed_out == 1
    assert len(writes) == 2  # one flush for the nine, one removal
    assert [m.user_id for m in await rooms.members(entered[0].room_uuid)] == [
        f"u{i}" for i in range(1, 10)
    ]


async def test_heard_heartbeats_reach_the_store_without_a_sweep(rooms, store, clock):
    """The flush timer writes what was heard, with the time it was heard."""
    member = await rooms.enter(APP, 6, "alice", privileges=255)
    assert await rooms.touch(member.room_uuid, "alice", member.connection_id)
    clock.now += 2
    heard_at = clock.now
    assert await rooms.touch(member.room_uuid, "alice", member.connection_id)

    async def written() -> bool:
        async with store.reads() as s:
            at = await s.scalar(
                select(MemberRow.last_heartbeat).where(
                    MemberRow.connection_id == member.connection_id
                )
            )
        return at == heard_at

    await eventually(written, within=10)


async def test_a_connection_another_replica_removed_is_told_after_the_next_flush(
    rooms, store, clock
):
    """A member removed elsewhere is live from memory until a flush finds it gone; then its
    next touch is False, and later touches ask the store again."""
    member = await rooms.enter(APP, 7, "bob", privileges=255)
    assert await rooms.touch(member.room_uuid, "bob", member.connection_id)
    other = await room_service(store, clock, max_members=60)  # another replica
    await other.exit(APP, 7, "bob")
    clock.now += 1
    assert await rooms.touch(member.room_uuid, "bob", member.connection_id)  # from memory
    await rooms.aclose()  # writes what was heard, as the timer or a sweep would
    assert not await rooms.touch(member.room_uuid, "bob", member.connection_id)
    assert not await rooms.touch(member.room_uuid, "bob", member.connection_id)


async def test_a_first_socket_recorded_lets_its_first_touch_skip_the_write(rooms, writes):
    """Once a connection's first socket is recorded (a live membership), its first frame's
    touch is answered without a transaction of its own; an unrecorded one still writes."""
    alice = await rooms.enter(APP, 4, "alice", privileges=255)
    bob = await rooms.enter(APP, 4, "bob", privileges=255)
    assert await rooms.socket_opened(alice.room_uuid, "alice", alice.connection_id)
    writes.clear()
    assert await rooms.touch(alice.room_uuid, "alice", alice.connection_id)
    assert writes == []
    assert await rooms.touch(bob.room_uuid, "bob", bob.connection_id)
    assert writes == [1]
