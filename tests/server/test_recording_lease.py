"""Recording leases: two replicas' recording services on one database (SQLite and PostgreSQL).

Each service stands for a replica: its own name, its own store (connection pool) and
its own in-process bus, all on one database. The room service's clock is held in the
past, so no member counts as heard from lately and the recorder offers to nobody: these
tests are about who records a session, not about the media (the cluster tests are).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from recording._synth import RED, participant_file

from tavkit.server.bus import InProcessBus
from tavkit.server.recording import rows
from tavkit.server.recording.service import RecordingService, recording_path
from tavkit.server.rooms.service import RoomService
from tavkit.server.settings import AppConfig, Settings
from tavkit.server.store.db import Store
from tavkit.server.store.recording_models import RecordingRow

from ._util import APP, Clock, eventually, room_service

TTL = 2.0
"""The lease's TTL in these tests (renewed every third of it): long enough that a holder
on a loaded machine (the suite runs two processes at once) still renews in time."""

Replica = Callable[..., RecordingService]


@pytest.fixture
async def replica(
    store: Store, database: Any, clock: Clock, tmp_path: Path
) -> AsyncIterator[Replica]:
    """Makes the recording service of a named replica, on a pool of its own."""
    stores: list[Store] = []
    services: list[RecordingService] = []

    def make(name: str, ttl: float = TTL) -> RecordingService:
        own = Store.open(database.url, schema=database.schema)
        stores.append(own)
        rooms = RoomService(own, InProcessBus(), _settings("nobody"), clock=clock)
        service = RecordingService(
            settings=_settings(name, tmp_path),
            store=own,
            bus=InProcessBus(),
            rooms=rooms,
            listening=lambda _connection_id: None,
            lease_ttl=ttl,
            clustered=True,
        )
        services.append(service)
        return service

    try:
        yield make
    finally:
        for service in services:
            await service.aclose()
        for own in stores:
            await own.close()


def _settings(name: str, data_dir: Path | None = None) -> Settings:
    return Settings(
        apps=(AppConfig(APP, "a" * 64),),
        data_dir=data_dir or Path("/nonexistent"),
        replica_name=name,
        recording_min_free=0,
        heartbeat_interval=3.0,
        heartbeat_timeout=10.0,
    )


async def _open_session(store: Store, clock: Clock, room_id: int) -> uuid.UUID:
    rooms = await room_service(store, clock, max_members=6)
    admission = await rooms.enter(APP, room_id, "alice", privileges=255)
    return admission.room_uuid


async def test_a_held_lease_is_refused_to_another_replica_while_renewed(
    store: Store, clock: Clock, replica: Replica
) -> None:
    """While the holder renews, another replica's start is a no-op and it never takes over."""
    room = await _open_session(store, clock, 41)
    async with replica("a") as a, replica("b") as b:
        await a.start(APP, 41, room)
        assert a.is_recording(room)
        await b.start(APP, 41, room)
        assert not b.is_recording(room)
        assert await b.recording_now(room), "b sees that a replica records it"
        assert not await rows.acquire_lease(store, room, "c", time.time(), TTL)
        await asyncio.sleep(3 * TTL)  # b looks for lapsed leases every third of it
        assert a.is_recording(room) and not b.is_recording(room)
        assert (await rows.lease(store, room)).replica == "a"
    # a stopped gracefully (and b with it): the lease is handed over, not held.
    assert not (await rows.lease(store, room)).held(time.time())


async def test_two_replicas_asking_at_once_get_one_lease(
    store: Store, database: Any, clock: Clock
) -> None:
    """Two replicas taking the same free lease at the same moment: exactly one gets it."""
    other = Store.open(database.url, schema=database.schema)
    try:
        for room_id in range(51, 56):
            room = await _open_session(store, clock, room_id)
            now = time.time()
            won = await asyncio.gather(
                rows.acquire_lease(store, room, "a", now, TTL),
                rows.acquire_lease(other, room, "b", now, TTL),
            )
            assert sorted(won) == [False, True], room_id
            holder = (await rows.lease(store, room)).replica
            assert holder == ("a" if won[0] else "b")
    finally:
        await other.close()


async def test_a_stop_asked_of_another_replica_stops_the_holder(
    store: Store, clock: Clock, replica: Replica
) -> None:
    """An admin's stop reaching a replica that does not record the session: the holder
    stops at its next renewal, and nobody records it any more."""
    room = await _open_session(store, clock, 45)
    async with replica("a") as a, replica("b") as b:
        await a.start(APP, 45, room)
        await b.stop(room)
        await eventually(lambda: _true(not a.is_recording(room)), within=10 * TTL)
        assert not await a.recording_now(room) and not await b.recording_now(room)
        await asyncio.sleep(2 * TTL)  # b looks for lapsed leases: this one was stopped
        assert not b.is_recording(room) and not a.is_recording(room)


async def test_a_graceful_shutdown_hands_the_recording_over(
    store: Store, clock: Clock, replica: Replica
) -> None:
    """The holder shuts down mid-recording: another replica goes on without waiting for
    the lease to run out."""
    room = await _open_session(store, clock, 46)
    async with replica("b") as b:
        a = replica("a", ttl=60.0)  # its lease would hold b off for a minute
        async with a:
            await a.start(APP, 46, room)
        assert not b.is_recording(room)
        await eventually(lambda: _true(b.is_recording(room)), within=3 * TTL)
        assert (await rows.lease(store, room)).replica == "b"


async def test_a_holder_that_stops_renewing_is_taken_over(
    store: Store, clock: Clock, replica: Replica, tmp_path: Path
) -> None:
    """A holder that dies: once its lease lapses another replica records the session and
    closes the dead holder's unfinished file as partial (replica-lost), sized from disk."""
    room = await _open_session(store, clock, 42)
    assert await rows.acquire_lease(store, room, "dead", time.time(), TTL)
    relative = recording_path(room, "alice", 1)
    (tmp_path / relative).parent.mkdir(parents=True)
    participant_file(
        tmp_path / relative,
        user_id="alice",
        started_at=datetime.now(UTC),
        seconds=1.0,
        size=(64, 48),
        colour=RED,
        tone=440,
    )
    left = RecordingRow(
        id=uuid.uuid4(),
        session_id=room,
        user_id="alice",
        stint=1,
        path=relative.as_posix(),
        started_at=time.time(),
        status="recording",
    )
    await rows.insert(store, left)
    async with replica("b") as b:
        assert not b.is_recording(room)  # the dead holder's lease is still live
        await eventually(lambda: _true(b.is_recording(room)), within=10 * TTL)
        assert (await rows.lease(store, room)).replica == "b"
        closed = await eventually(lambda: _closed_row(store, room), within=10 * TTL)
    assert closed.status == "partial" and closed.stop_reason == "replica-lost"
    assert closed.size == (tmp_path / relative).stat().st_size
    assert closed.duration is not None and closed.duration > 0.5
    assert closed.has_video and closed.has_audio


async def test_recover_leaves_a_live_replicas_rows_alone(
    store: Store, clock: Clock, replica: Replica
) -> None:
    """Start-up recovery closes the rows of a session whose lease lapsed, never those of
    a session a live replica holds."""
    live, lapsed = await _open_session(store, clock, 43), await _open_session(store, clock, 44)
    now = time.time()
    assert await rows.acquire_lease(store, live, "a", now, 60.0)
    assert await rows.acquire_lease(store, lapsed, "dead", now - 60.0, 1.0)
    for session in (live, lapsed):
        await rows.insert(
            store,
            RecordingRow(
                id=uuid.uuid4(),
                session_id=session,
                user_id="alice",
                stint=1,
                path=recording_path(session, "alice", 1).as_posix(),
                started_at=now,
                status="recording",
            ),
        )
    assert await replica("b").recover() == 1
    [kept] = await rows.session_rows(store, live)
    [closed] = await rows.session_rows(store, lapsed)
    assert kept.status == "recording" and kept.stop_reason is None
    assert closed.status == "failed" and closed.stop_reason == "crashed"  # no file was left


async def _true(value: bool) -> bool:
    return value


async def _closed_row(store: Store, room: uuid.UUID) -> RecordingRow | None:
    """The session's one row once it is no longer ``recording``."""
    [rec] = await rows.session_rows(store, room)
    return rec if rec.status != "recording" else None
