"""RoomService on a real database: the events it publishes and what the sweeper decides.

These drive the service directly (with a clock the test controls) so that timing
rules are checked exactly, without waiting on wall-clock time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from tavkit.errors import ServerCode, ServerError
from tavkit.server.bus import InProcessBus, session_channel
from tavkit.server.events import (
    Event,
    MemberJoinedEvent,
    MemberLeftEvent,
    MemberStateEvent,
    RoomClosedEvent,
)
from tavkit.server.rooms.service import RoomService
from tavkit.server.store.db import Store
from tavkit.server.store.ledger import session_record

from ._util import APP, Clock, room_service


@pytest.fixture
async def rooms(store: Store, clock: Clock) -> RoomService:
    """A room service with a 10 s heartbeat timeout, a 2 s close grace and rooms of 3."""
    return await room_service(store, clock, max_members=3)


def bus_of(rooms: RoomService) -> InProcessBus:
    """The service's in-process bus."""
    bus = rooms._bus
    assert isinstance(bus, InProcessBus)
    return bus


async def drain(subscription: Any) -> list[Event]:
    """Every event already delivered to ``subscription``."""
    events = []
    iterator = aiter(subscription)
    while True:
        try:
            async with asyncio.timeout(0.05):
                events.append(await anext(iterator))
        except TimeoutError:
            return events


async def test_replacing_publishes_the_old_connection_leaving_then_the_new_joining(rooms):
    """Re-entering publishes member-left(replaced, old connection) then member-joined."""
    first = await rooms.enter(APP, 5, "alice", privileges=255)
    async with bus_of(rooms).subscribe(session_channel(first.room_uuid)) as events:
        second = await rooms.enter(APP, 5, "alice", privileges=255)
        got = await drain(events)
    assert second.room_uuid == first.room_uuid
    left, joined = got
    assert isinstance(left, MemberLeftEvent) and isinstance(joined, MemberJoinedEvent)
    assert (left.reason, left.connection_id) == ("replaced", first.connection_id)
    assert joined.connection_id == second.connection_id
    assert joined.member.user_id == "alice"
    assert await rooms.touch(first.room_uuid, "alice", first.connection_id) is False
    assert await rooms.touch(second.room_uuid, "alice", second.connection_id) is True
    assert await rooms.is_member(first.room_uuid, "alice", first.connection_id) is False
    # The socket of the replaced connection hanging up afterwards changes nothing.
    await rooms.leave_connection(first.room_uuid, "alice", first.connection_id, "exit")
    assert [m.user_id for m in await rooms.members(first.room_uuid)] == ["alice"]


async def test_moving_tells_the_old_room(rooms):
    """Entering another room publishes member-left(moved) in the old session."""
    old = await rooms.enter(APP, 1, "alice", privileges=255)
    await rooms.enter(APP, 1, "bob", privileges=255)
    async with bus_of(rooms).subscribe(session_channel(old.room_uuid)) as events:
        new = await rooms.enter(APP, 2, "alice", privileges=255)
        got = await drain(events)
    assert new.room_uuid != old.room_uuid
    assert got == [MemberLeftEvent("alice", "moved", old.connection_id)]


async def test_the_sweeper_times_out_exactly_after_the_timeout(rooms, clock):
    """A member is kept until heartbeat_timeout has passed since its last sign of life."""
    alice = await rooms.enter(APP, 7, "alice", privileges=255)
    await rooms.enter(APP, 7, "bob", privileges=255)
    clock.now += 6
    await rooms.heartbeat(APP, 7, "bob")
    clock.now += 4  # alice: exactly 10 s of silence, not more
    assert (await rooms.sweep()).timed_out == 0
    async with bus_of(rooms).subscribe(session_channel(alice.room_uuid)) as events:
        clock.now += 0.5
        report = await rooms.sweep()
        got = await drain(events)
    assert (report.timed_out, report.closed) == (1, 0)
    assert got == [MemberLeftEvent("alice", "timeout", alice.connection_id)]
    assert [m.user_id for m in await rooms.members(alice.room_uuid)] == ["bob"]


async def test_socket_traffic_counts_as_a_heartbeat(rooms, clock):
    """touch() keeps a member alive like a heartbeat does."""
    alice = await rooms.enter(APP, 7, "alice", privileges=255)
    clock.now += 8
    assert await rooms.touch(alice.room_uuid, "alice", alice.connection_id)
    clock.now += 8
    assert (await rooms.sweep()).timed_out == 0
    clock.now += 3
    assert (await rooms.sweep()).timed_out == 1


async def test_an_empty_session_closes_only_after_the_grace(rooms, clock):
    """The last member leaving starts the grace; the sweep after it closes the session."""
    alice = await rooms.enter(APP, 9, "alice", privileges=255)
    await rooms.exit(APP, 9, "alice")
    clock.now += 1.9
    assert (await rooms.sweep()).closed == 0
    async with bus_of(rooms).subscribe(session_channel(alice.room_uuid)) as events:
        clock.now += 0.2
        assert (await rooms.sweep()).closed == 1
        got = await drain(events)
    assert got == [RoomClosedEvent("empty")]
    again = await rooms.enter(APP, 9, "alice", privileges=255)
    assert again.room_uuid != alice.room_uuid


async def test_a_sweep_inside_the_grace_writes_nothing(rooms, clock, store):
    """A session emptied less than the grace ago is not even tried: the sweep begins no
    write transaction for it (it used to take the app's lock and the writer at every
    sweep to find it not due), and it still closes at the first sweep past the grace."""
    await rooms.enter(APP, 11, "alice", privileges=255)
    await rooms.exit(APP, 11, "alice")
    writes: list[str] = []

    def began(conn: Any) -> None:
        if not conn.get_execution_options().get("tavkit_readonly", False):
            writes.append("write")

    engine = store.engine.sync_engine
    event.listen(engine, "begin", began)
    try:
        for _ in range(3):
            clock.now += 0.5
            assert (await rooms.sweep()).closed == 0
        assert writes == []
        clock.now += 0.6
        assert (await rooms.sweep()).closed == 1
        assert writes == ["write"]
    finally:
        event.remove(engine, "begin", began)


async def test_state_changes_are_stored_and_published(rooms):
    """set_state updates the member and publishes member-state; a non-member gets 14004."""
    alice = await rooms.enter(APP, 3, "alice", privileges=255)
    async with bus_of(rooms).subscribe(session_channel(alice.room_uuid)) as events:
        await rooms.set_state(alice.room_uuid, "alice", muted=True, camera=False)
        got = await drain(events)
    assert got == [MemberStateEvent("alice", muted=True, camera=False)]
    (member,) = await rooms.members(alice.room_uuid)
    assert (member.muted, member.camera) == (True, False)
    with pytest.raises(ServerError) as caught:
        await rooms.set_state(alice.room_uuid, "bob", muted=False, camera=True)
    assert caught.value.code is ServerCode.USER_EXITED


async def test_state_changes_are_lines_of_the_session_log(rooms, store, clock):
    """Each change of mute or camera is one event line, at the service's clock; a repeat is none."""
    alice = await rooms.enter(APP, 3, "alice", privileges=255)
    clock.now += 1
    await rooms.set_state(alice.room_uuid, "alice", muted=True, camera=True)
    await rooms.set_state(alice.room_uuid, "alice", muted=True, camera=True)
    clock.now += 1
    await rooms.set_state(alice.room_uuid, "alice", muted=False, camera=False)
    record = await session_record(store, alice.room_uuid)
    assert record is not None
    lines = [(e.kind, e.user_id, e.at - record.opened_at) for e in record.events]
    assert lines[2:] == [
        ("muted", "alice", 1),
        ("unmuted", "alice", 2),
        ("camera-off", "alice", 2),
    ]
    assert [kind for kind, _, _ in lines[:2]] == ["opened", "joined"]


async def test_admin_close_tells_every_member_and_the_room(rooms):
    """close() publishes member-left(closed) for each member, then room-closed(admin)."""
    alice = await rooms.enter(APP, 4, "alice", privileges=255)
    bob = await rooms.enter(APP, 4, "bob", privileges=255)
    async with bus_of(rooms).subscribe(session_channel(alice.room_uuid)) as events:
        await rooms.close(APP, 4)
        got = await drain(events)
    assert got == [
        MemberLeftEvent("alice", "closed", alice.connection_id),
        MemberLeftEvent("bob", "closed", bob.connection_id),
        RoomClosedEvent("admin"),
    ]


async def test_the_socket_leaving_exits_the_member(rooms):
    """leave_connection() of the live connection exits the member with the given reason."""
    alice = await rooms.enter(APP, 4, "alice", privileges=255)
    async with bus_of(rooms).subscribe(session_channel(alice.room_uuid)) as events:
        await rooms.leave_connection(alice.room_uuid, "alice", alice.connection_id, "exit")
        got = await drain(events)
    assert got[0] == MemberLeftEvent("alice", "exit", alice.connection_id)
    assert await rooms.members(alice.room_uuid) == []


async def test_many_members_hanging_up_at_once_all_leave_and_each_room_empties(rooms, clock):
    """Thirty members of ten rooms hanging up at once (written in batches) all leave:
    each room's others hear every leave, and every room starts its close grace."""
    entered = [
        (await rooms.enter(APP, 40 + n // 3, f"user{n}", privileges=255), f"user{n}")
        for n in range(30)
    ]
    sessions = sorted({admission.room_uuid for admission, _ in entered}, key=str)
    assert len(sessions) == 10
    bus = bus_of(rooms)
    async with bus.subscribe(session_channel(sessions[0])) as events:
        await asyncio.gather(
            *(
                rooms.leave_connection(
                    admission.room_uuid, user, admission.connection_id, "exit", sdk_app_id=APP
                )
                for admission, user in entered
            )
        )
        got = await drain(events)
    for room_uuid in sessions:
        assert await rooms.members(room_uuid) == []
    firsts = [(user, a.connection_id) for a, user in entered if a.room_uuid == sessions[0]]
    assert [(e.user_id, e.connection_id) for e in got if isinstance(e, MemberLeftEvent)] == firsts
    clock.now += 2.1  # the close grace
    assert (await rooms.sweep()).closed == 10


async def test_concurrent_enters_never_overfill_a_room(rooms):
    """Many users entering one room at once: exactly max_members get in, the rest 14000."""
    results = await asyncio.gather(
        *(rooms.enter(APP, 11, f"user{n}", privileges=255) for n in range(12)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ServerError)]
    assert len(refused) == 9
    assert all(r.code is ServerCode.ENTER_FAILED for r in refused)
    entered = [r for r in results if not isinstance(r, BaseException)]
    assert len({r.room_uuid for r in entered}) == 1
    assert len(await rooms.members(entered[0].room_uuid)) == 3
