"""The journal on a real database: an event per committed change, numbered, none for a rollback."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import ChatMessage
from tavkit.server import journal
from tavkit.server.journal import (
    JournalEntry,
    MemberJoinedNotice,
    MessageCreatedNotice,
    parse_entry,
    read_entries,
)
from tavkit.server.rooms.service import RoomService
from tavkit.server.store.db import Store
from tavkit.server.store.models import AppRow
from tavkit.server.store.unit_of_work import Outbox, transaction

from ._util import APP, Clock, room_service


async def entries(store: Store, room_uuid: uuid.UUID | None = None) -> list[JournalEntry]:
    """Every entry of the test app (or of one session), in id order."""

    async def run(s: AsyncSession, _out: Outbox) -> list[JournalEntry]:
        return await read_entries(s, APP, room_uuid=room_uuid, limit=10_000)

    return await transaction(store, "reading", run, readonly=True)


def summary(found: list[JournalEntry]) -> list[tuple[str, dict]]:
    """Each entry's type and data."""
    return [(entry.notice.type, entry.notice.data()) for entry in found]


async def test_a_session_s_life_is_journaled_in_order(store: Store, clock: Clock):
    """Open, join, leave (with reason) and close are entries 1..n, in session order."""
    rooms = await room_service(store, clock, max_members=3)
    alice = await rooms.enter(APP, 7, "alice", privileges=255)
    await rooms.enter(APP, 7, "bob", privileges=255)
    await rooms.exit(APP, 7, "bob")
    await rooms.close(APP, 7)
    found = await entries(store)
    assert summary(found) == [
        ("room.opened", {}),
        ("member.joined", {"userId": "alice"}),
        ("member.joined", {"userId": "bob"}),
        ("member.left", {"userId": "bob", "reason": "exit"}),
        ("member.left", {"userId": "alice", "reason": "closed"}),
        ("room.closed", {"reason": "admin"}),
    ]
    assert [entry.id for entry in found] == [1, 2, 3, 4, 5, 6]
    assert [entry.session_seq for entry in found] == [1, 2, 3, 4, 5, 6]
    assert {(e.sdk_app_id, e.room_id, e.notice.room_uuid) for e in found} == {
        (APP, 7, alice.room_uuid)
    }
    # The wire shape reads back to the same entry.
    assert [parse_entry(entry.to_wire()) for entry in found] == found


async def test_string_room_events_carry_the_string_room(store: Store, clock: Clock):
    """Events of string room "7" say roomId "7" (a string), apart from room 7's, and read back."""
    rooms = await room_service(store, clock, max_members=3)
    text = await rooms.enter(APP, "7", "alice", privileges=255)
    number = await rooms.enter(APP, 7, "bob", privileges=255)
    assert text.room_uuid != number.room_uuid
    found = await entries(store)
    rooms_of = {(e.notice.room_uuid, e.room_id) for e in found}
    assert rooms_of == {(text.room_uuid, "7"), (number.room_uuid, 7)}
    wire = [entry.to_wire() for entry in found]
    assert {repr(w["roomId"]) for w in wire} == {"'7'", "7"}
    assert [parse_entry(w) for w in wire] == found
    with pytest.raises(ValueError, match="roomId"):
        parse_entry({**wire[0], "roomId": "no spaces"})


async def test_a_refused_change_leaves_no_entry(store: Store, clock: Clock):
    """An enter refused inside its transaction (room full) writes nothing to the journal."""
    rooms = await room_service(store, clock, max_members=1)
    await rooms.enter(APP, 3, "alice", privileges=255)
    before = await entries(store)
    with pytest.raises(ServerError) as refused:
        await rooms.enter(APP, 3, "bob", privileges=255)
    assert refused.value.code is ServerCode.ENTER_FAILED
    assert await entries(store) == before
    await rooms.exit(APP, 3, "alice")
    after = await entries(store)
    assert [entry.id for entry in after] == [1, 2, 3]  # no number was used up


async def test_a_rolled_back_transaction_produces_no_event(store: Store, clock: Clock):
    """Events recorded by a body that then fails are never written."""
    rooms = await room_service(store, clock, max_members=3)
    admission = await rooms.enter(APP, 4, "alice", privileges=255)

    async def failing(s: AsyncSession, _out: Outbox) -> None:
        journal.record(s, MemberJoinedNotice(admission.room_uuid, "ghost"))
        raise ServerError(ServerCode.INTERNAL, "changed my mind")

    with pytest.raises(ServerError):
        await transaction(store, "failing", failing)
    assert [e.notice.data().get("userId") for e in await entries(store)] == [None, "alice"]


async def test_messages_are_journaled_only_for_apps_that_ask(store: Store, clock: Clock):
    """message.created is kept only once the app asked for messages."""
    rooms = await room_service(store, clock, max_members=3)
    admission = await rooms.enter(APP, 5, "alice", privileges=255)
    message = ChatMessage(1, "alice", "text", "c1", clock(), text="hi")

    async def post(s: AsyncSession, _out: Outbox) -> None:
        journal.record(s, MessageCreatedNotice(admission.room_uuid, message))

    await transaction(store, "posting", post)
    assert [e.notice.type for e in await entries(store)] == ["room.opened", "member.joined"]

    async def opt_in(s: AsyncSession, _out: Outbox) -> None:
        await s.execute(update(AppRow).values(journal_messages=True))

    await transaction(store, "opting in", opt_in)
    await transaction(store, "posting", post)
    last = (await entries(store))[-1]
    assert (last.id, last.notice) == (3, MessageCreatedNotice(admission.room_uuid, message))


async def test_concurrent_writers_on_two_replicas_number_without_gaps(
    store: Store, clock: Clock, database
):
    """Two services on two engines entering and leaving at once: ids 1..n, sessions in order."""
    other = Store.open(database.url, schema=database.schema)
    try:
        services: list[RoomService] = [
            await room_service(store, clock, max_members=50),
            await room_service(other, clock, max_members=50),
        ]

        async def churn(index: int) -> None:
            rooms = services[index % 2]
            user, room = f"u{index}", 1 + index % 3
            await rooms.enter(APP, room, user, privileges=255)
            await rooms.exit(APP, room, user)

        await asyncio.gather(*(churn(i) for i in range(24)))
    finally:
        await other.close()
    found = await entries(store)
    assert [entry.id for entry in found] == list(range(1, len(found) + 1))
    by_session: dict[uuid.UUID, list[int]] = {}
    for entry in found:
        by_session.setdefault(entry.notice.room_uuid, []).append(entry.session_seq)
    for seqs in by_session.values():
        assert seqs == list(range(1, len(seqs) + 1))
    joined = [e.notice.data()["userId"] for e in found if e.notice.type == "member.joined"]
    assert sorted(joined) == sorted(f"u{i}" for i in range(24))
