"""Two replicas' heartbeat sweepers on one PostgreSQL database, sweeping at the same time.

Every replica runs its own sweeper (there is no leader to elect, so none to lose). That
is safe because a sweep only proposes: each silent member is removed in a transaction
of its own that reads the row again under ``SELECT ... FOR UPDATE`` and gives up when
the member spoke since the scan or another sweeper removed it first. These tests race
two room services, each with its own connection pool, as two processes would, with a
clock the test moves, so the outcome depends on the locking and not on timing luck;
the last one runs on the real clock, since what it proves is that heartbeats one
replica holds in memory reach the store in time for the other's sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tavkit.server.bus import InProcessBus
from tavkit.server.rooms.service import RoomService
from tavkit.server.settings import AppConfig, Settings
from tavkit.server.store.db import Store

from ._util import APP, Clock, eventually, room_service

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)


@pytest.fixture
async def replicas(store: Store, database, clock: Clock) -> AsyncIterator[list[RoomService]]:
    """Two room services on the same database, each with a store (pool) of its own."""
    other = Store.open(database.url, schema=database.schema)
    try:
        yield [
            await room_service(store, clock, max_members=6),
            await room_service(other, clock, max_members=6),
        ]
    finally:
        await other.close()


async def test_racing_sweepers_never_remove_a_live_member_and_remove_a_silent_one_once(
    replicas: list[RoomService], clock: Clock
) -> None:
    """A member heartbeating through either replica stays; a silent one is removed once."""
    a, b = replicas
    live = await a.enter(APP, 7, "live", privileges=255)
    silent = await b.enter(APP, 7, "silent", privileges=255)
    removed = 0
    for second in range(30):  # three heartbeat timeouts
        clock.now += 1.0
        heard_by = replicas[second % 2]  # the load balancer sends its beats either way
        assert await heard_by.touch(live.room_uuid, "live", live.connection_id)
        reports = await asyncio.gather(a.sweep(), b.sweep(), a.sweep(), b.sweep())
        removed += sum(report.timed_out for report in reports)
        assert await b.is_member(live.room_uuid, "live", live.connection_id), second
    assert removed == 1
    assert not await a.is_member(silent.room_uuid, "silent", silent.connection_id)
    assert [m.user_id for m in await b.members(live.room_uuid)] == ["live"]


async def test_a_member_heard_just_before_the_sweep_commits_is_kept(
    replicas: list[RoomService], clock: Clock
) -> None:
    """A heartbeat landing between one replica's scan and its removal wins over the scan."""
    a, b = replicas
    member = await a.enter(APP, 8, "late", privileges=255)
    clock.now += 10.5  # silent past the 10 s timeout: both scans will propose removing it
    beat = b.touch(member.room_uuid, "late", member.connection_id)
    results = await asyncio.gather(beat, a.sweep(), b.sweep())
    removed = sum(report.timed_out for report in results[1:])
    kept = await a.is_member(member.room_uuid, "late", member.connection_id)
    # Either the beat was written first (kept, nothing removed) or a sweep removed the
    # member first (the beat then says so): never both, never twice.
    assert (kept, removed) in ((True, 0), (False, 1))
    assert results[0] is kept


async def test_a_member_heard_on_one_replica_is_never_swept_by_the_other(store: Store, database):
    """Heartbeats held in memory on replica A reach the store in time for replica B's
    sweeper, on the real clock: B never removes A's live member, and removes it once it
    falls silent."""
    settings = Settings(
        apps=(AppConfig(APP, "a" * 64),),
        heartbeat_interval=0.3,
        heartbeat_timeout=1.2,
        close_grace=5.0,
    )
    other = Store.open(database.url, schema=database.schema)
    a = RoomService(store, InProcessBus(), settings)
    b = RoomService(other, InProcessBus(), settings)
    try:
        await a.register_apps(settings.apps)
        live = await a.enter(APP, 9, "live", privileges=255)
        silent = await a.enter(APP, 9, "silent", privileges=255)
        removed: list[int] = []

        async def sweep_on_b() -> None:
            while True:
                removed.append((await b.sweep()).timed_out)
                await asyncio.sleep(0.1)

        sweeper = asyncio.create_task(sweep_on_b())
        try:
            loop = asyncio.get_running_loop()
            until = loop.time() + 4 * settings.heartbeat_timeout
            while loop.time() < until:  # A hears the member at its interval, B sweeps
                assert await a.touch(live.room_uuid, "live", live.connection_id)
                assert await b.is_member(live.room_uuid, "live", live.connection_id)
                await asyncio.sleep(settings.heartbeat_interval)
            assert not await b.is_member(silent.room_uuid, "silent", silent.connection_id)
            assert sum(removed) == 1  # the silent one, once

            async def gone() -> bool:
                return not await b.is_member(live.room_uuid, "live", live.connection_id)

            await eventually(gone, within=10)  # silent now: B's sweeper takes it out
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
    finally:
        await a.aclose()
        await other.close()
