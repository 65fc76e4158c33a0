"""In-call message storage and history: the service on a real database, and the REST reader."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import SendMessage
from tavkit.server.bus import InProcessBus, session_channel
from tavkit.server.events import MessageEvent
from tavkit.server.im.service import MESSAGE_BURST, MessageService
from tavkit.server.rooms.service import RoomService
from tavkit.server.settings import AppConfig, Settings
from tavkit.server.store.db import Store

from ._util import eventually, expect_error, session_of
from .test_im_socket import Peer, peers
from .test_room_service import drain

if TYPE_CHECKING:
    from conftest import Database, RunningServer

APP = 1400000001


@pytest.fixture
async def services(database: Database) -> AsyncIterator[tuple[RoomService, MessageService]]:
    """A room service and a message service sharing a migrated store and a bus."""
    store = Store.open(database.url, schema=database.schema)
    await store.migrate()
    bus = InProcessBus()
    settings = Settings(apps=(AppConfig(APP, "a" * 64),), close_grace=0.0)
    rooms = RoomService(store, bus, settings)
    await rooms.register_apps(settings.apps)
    try:
        yield rooms, MessageService(store, bus)
    finally:
        await store.close()


def text(client_msg_id: str, body: str = "hi") -> SendMessage:
    """A text message to post."""
    return SendMessage(client_msg_id, "text", text=body)


# --- the service -----------------------------------------------------------------------------


async def test_concurrent_posts_are_numbered_and_published_in_seq_order(services):
    """Posts racing from many tasks get seqs 1..n without gaps, published in that order."""
    rooms, im = services
    room = (await rooms.enter(APP, 1, "alice", privileges=255)).room_uuid
    await rooms.enter(APP, 1, "bob", privileges=255)
    bus = im._bus
    assert isinstance(bus, InProcessBus)
    async with bus.subscribe(session_channel(room)) as events:
        posted = await asyncio.gather(
            *(
                im.post(room, user, text(f"{user}-{i}"))
                for i in range(15)
                for user in ("alice", "bob")
            )
        )
        got = [e.message for e in await drain(events) if isinstance(e, MessageEvent)]
    assert sorted(p.message.seq for p in posted) == list(range(1, 31))
    assert [m.seq for m in got] == list(range(1, 31))
    assert not any(p.duplicate for p in posted)
    assert im._slots == {}  # no lock outlives its posts
    page = await im.history(room, after=0, limit=1000)
    assert page.messages == got
    assert (page.last_seq, page.has_more) == (30, False)


async def test_a_duplicate_returns_the_stored_message_and_publishes_nothing(services):
    """The same (sender, clientMsgId) is stored once; another sender may reuse the id."""
    rooms, im = services
    room = (await rooms.enter(APP, 2, "alice", privileges=255)).room_uuid
    first = await im.post(room, "alice", text("c", "one"))
    bus = im._bus
    assert isinstance(bus, InProcessBus)
    async with bus.subscribe(session_channel(room)) as events:
        again = await im.post(room, "alice", text("c", "two"))
        assert await drain(events) == []
    assert again.duplicate and again.message == first.message
    other = await im.post(room, "bob", text("c", "three"))
    assert (other.duplicate, other.message.seq) == (False, 2)
    assert await im.last_seq(room) == 2


async def test_a_closed_session_takes_no_messages_but_keeps_its_history(services):
    """Posting after the session closed is 14003 and stores nothing; history still reads."""
    rooms, im = services
    room = (await rooms.enter(APP, 3, "alice", privileges=255)).room_uuid
    await im.post(room, "alice", text("a"))
    await rooms.exit(APP, 3, "alice")  # close_grace 0: the session closes at once
    with pytest.raises(ServerError) as info:
        await im.post(room, "alice", text("b"))
    assert info.value.code is ServerCode.ROOM_CLOSED
    page = await im.history(room)
    assert [m.client_msg_id for m in page.messages] == ["a"] and page.last_seq == 1
    with pytest.raises(ServerError) as missing:
        await im.history(uuid.uuid4())
    assert missing.value.code is ServerCode.SESSION_NOT_FOUND


async def test_the_message_rate_is_per_member_and_refills_with_time(services):
    """Each member has its own bucket of 20; an empty bucket refuses until it refills."""
    _rooms, im = services
    now = [0.0]
    im = MessageService(im._store, im._bus, rate_clock=lambda: now[0])
    room = uuid.uuid4()
    assert all(im.allow(room, "alice") for _ in range(int(MESSAGE_BURST)))
    assert not im.allow(room, "alice")
    assert im.allow(room, "bob")  # another member is not affected
    now[0] += 0.1  # one token back at 10/s
    assert im.allow(room, "alice") and not im.allow(room, "alice")


# --- REST history ------------------------------------------------------------------------------


async def _conversation(http: httpx.AsyncClient, server: RunningServer) -> str:
    """alice and bob exchange five messages, then both hang up; the closed session's uuid."""
    async with peers(http, server, 200, ["alice", "bob"]) as (alice, bob):
        room_uuid = str(alice.welcome["roomUuid"])
        for i in range(5):
            speaker: Peer = alice if i % 2 == 0 else bob
            await speaker.say(f"m{i}", f"message {i}")
        for peer in (alice, bob):
            await peer.leave()

    async def closed() -> bool:
        record = await session_of(http, room_uuid, server.admin_headers())
        return record["closedAt"] is not None

    await eventually(closed)
    return room_uuid


async def test_history_after_everyone_left_is_paged(server):
    """The history of a closed session reads back in seq order, page by page, with hasMore."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        room_uuid = await _conversation(http, server)
        url = f"/v1/sessions/{room_uuid}/messages"

        async def page(user: str, **params: Any) -> dict[str, Any]:
            response = await http.get(url, params=params, headers=server.headers(user))
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert body["roomUuid"] == room_uuid and body["lastSeq"] == 5
            return body

        first = await page("alice", limit=2)
        assert [m["seq"] for m in first["messages"]] == [1, 2] and first["hasMore"] is True
        assert first["messages"][0] == {
            "seq": 1,
            "from": "alice",
            "kind": "text",
            "text": "message 0",
            "clientMsgId": "m0",
            "sentAt": first["messages"][0]["sentAt"],
        }
        second = await page("bob", after=2, limit=2)
        assert [m["seq"] for m in second["messages"]] == [3, 4] and second["hasMore"] is True
        last = await page("bob", after=4, limit=2)
        assert [m["seq"] for m in last["messages"]] == [5] and last["hasMore"] is False
        assert (await page("alice", after=5))["messages"] == []
        response = await http.get(url, headers=server.admin_headers())  # the admin reads it too
        assert response.status_code == 200, response.text
        everything = response.json()
        assert [m["from"] for m in everything["messages"]] == ["alice", "bob"] * 2 + ["alice"]


async def test_history_refuses_outsiders_unknown_sessions_and_bad_parameters(server):
    """A non-member gets 10005, an unknown session 14007, bad after/limit or uuid 10004."""
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 201, ["alice"]) as (alice,),
    ):
        room_uuid = alice.welcome["roomUuid"]
        await alice.say("x", "private")
        url = f"/v1/sessions/{room_uuid}/messages"
        outsider = await http.get(url, headers=server.headers("eve"))
        expect_error(outsider, ServerCode.UNAUTHORISED)
        unknown = await http.get(
            f"/v1/sessions/{uuid.uuid4()}/messages", headers=server.headers("alice")
        )
        expect_error(unknown, ServerCode.SESSION_NOT_FOUND)
        for params in (
            {"after": -1},
            {"after": "x"},
            {"after": 2**31},
            {"limit": 0},
            {"limit": 1001},
            {"limit": "many"},
        ):
            bad = await http.get(url, params=params, headers=server.headers("alice"))
            expect_error(bad, ServerCode.INVALID_PARAMETER)
        malformed = await http.get(
            f"/v1/sessions/{room_uuid.upper()}/messages", headers=server.headers("alice")
        )
        expect_error(malformed, ServerCode.INVALID_PARAMETER)
        anonymous = await http.get(url)
        expect_error(anonymous, ServerCode.UNAUTHORISED)
        ok = await http.get(url, params={"limit": 1000}, headers=server.headers("alice"))
        assert [m["text"] for m in ok.json()["messages"]] == ["private"]
