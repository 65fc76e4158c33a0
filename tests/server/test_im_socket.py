"""In-call messages over the signaling socket, spoken to with plain ``websockets`` clients.

:class:`Peer` reads everything a socket receives in the background; :func:`deliver`
is the contract's client rule (drop ``seq <= delivered``, hold gaps until filled), so
the tests check what a conforming client ends up showing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .test_signaling import (
    LOOPBACK,
    TIMEOUT,
    assert_error,
    enter,
    frame,
    member,
    ping_t,
    socket,
)

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

Frame = dict[str, Any]


class Peer:
    """One raw socket whose frames a background task collects, in arrival order."""

    def __init__(self, ws: ClientConnection, user: str, welcome: Frame) -> None:
        self.ws = ws
        self.user = user
        self.welcome = welcome
        self.frames: list[Frame] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @property
    def messages(self) -> list[Frame]:
        """The ``message`` frames received so far."""
        return [f for f in self.frames if f["type"] == "message"]

    def errors(self, ref: str) -> list[Frame]:
        """The ``error`` frames that answered the frame with id ``ref``."""
        return [f for f in self.frames if f["type"] == "error" and f.get("ref") == ref]

    def own(self, client_msg_id: str) -> list[Frame]:
        """This user's messages with ``client_msg_id`` (acknowledgements) received so far."""
        return [
            f for f in self.messages if f["from"] == self.user and f["clientMsgId"] == client_msg_id
        ]

    async def wait(self, predicate: Callable[[], object], within: float = TIMEOUT * 3) -> None:
        """Wait until ``predicate()`` holds over the frames received."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def send(self, **fields: Any) -> None:
        """Send one frame."""
        await self.ws.send(json.dumps(fields))

    async def ping(self) -> None:
        """Round-trip a ping: every frame the server sent before its pong has arrived."""
        t = ping_t()
        await self.send(type="ping", t=t)
        await self.wait(lambda: {"type": "pong", "t": t} in self.frames)

    async def say(self, client_msg_id: str, text: str) -> Frame:
        """Send a text message until it is stored (retrying when rate limited); its ack."""
        for attempt in range(200):
            ref = f"{client_msg_id}/{attempt}"
            await self.send(
                type="message", clientMsgId=client_msg_id, kind="text", text=text, id=ref
            )
            await self.wait(lambda: self.own(client_msg_id) or self.errors(ref))  # noqa: B023
            if acks := self.own(client_msg_id):
                return acks[0]
            assert "message rate limited" in assert_error(self.errors(ref)[0], 10004, ref=ref)
            await asyncio.sleep(0.05)
        raise AssertionError(f"{client_msg_id} was never stored")

    async def leave(self) -> None:
        """Hang up with ``leave`` and wait for the server to close the socket (1000)."""
        await self.send(type="leave")
        async with asyncio.timeout(TIMEOUT):
            await asyncio.shield(self._reader)
        assert self.ws.close_code == 1000

    async def close(self) -> None:
        """Stop reading and close the socket."""
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader
        await self.ws.close()

    async def _read(self) -> None:
        with suppress(ConnectionClosed):
            async for text in self.ws:
                async with self._changed:
                    self.frames.append(json.loads(text))
                    self._changed.notify_all()


@asynccontextmanager
async def peers(
    http: httpx.AsyncClient, server: RunningServer, room: int, users: Iterable[str]
) -> AsyncIterator[list[Peer]]:
    """Enter ``room`` as each of ``users`` and open their sockets."""
    async with AsyncExitStack() as stack:
        opened = []
        for user in users:
            ws, welcome = await stack.enter_async_context(member(http, server, user, room))
            peer = Peer(ws, user, welcome)
            stack.push_async_callback(peer.close)
            opened.append(peer)
        yield opened


def deliver(frames: Iterable[Frame], delivered: list[Frame] | None = None) -> list[Frame]:
    """A client's delivery: by seq, exactly once, in order; gaps are held until filled."""
    out = list(delivered or [])
    held: dict[int, Frame] = {}
    for got in frames:
        if got["type"] == "message" and got["seq"] > len(out):
            held[got["seq"]] = got
        while len(out) + 1 in held:
            out.append(held.pop(len(out) + 1))
    return out


def key(message: Frame) -> tuple[int, str, str, str]:
    """What identifies a stored message across socket and REST."""
    return (message["seq"], message["from"], message["clientMsgId"], message["text"])


async def history(http: httpx.AsyncClient, server: RunningServer, room_uuid: str) -> list[Frame]:
    """Every stored message of the session, read by the admin over REST."""
    response = await http.get(
        f"/v1/sessions/{room_uuid}/messages",
        params={"limit": 1000},
        headers=server.admin_headers(),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["hasMore"] is False
    messages: list[Frame] = body["messages"]
    return messages


@pytest.fixture
def im_server(sqlite_server_factory: ServerFactory) -> RunningServer:
    """A loopback server on SQLite."""
    return sqlite_server_factory(ice_allowed_networks=LOOPBACK)


# --- ordering and fan-out ------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_interleaved_senders_are_seen_in_one_order_by_everyone(server_factory):
    """300 messages from three concurrent senders reach every member in one gapless seq order."""
    server = server_factory(ice_allowed_networks=LOOPBACK)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 100, ["alice", "bob", "carol", "dave"]) as everyone,
    ):
        senders = everyone[:3]

        async def talk(peer: Peer) -> None:
            for i in range(100):
                await peer.say(f"{peer.user}-{i}", f"{peer.user} says {i}")

        await asyncio.gather(*(talk(peer) for peer in senders))
        for peer in everyone:
            await peer.wait(lambda p=peer: len(p.messages) >= 300)  # type: ignore[misc]
        stored = await history(http, server, everyone[0].welcome["roomUuid"])

    assert [m["seq"] for m in stored] == list(range(1, 301))
    for peer in everyone:
        assert [key(m) for m in peer.messages] == [key(m) for m in stored], peer.user
    by_sender = {p.user: [m["clientMsgId"] for m in stored if m["from"] == p.user] for p in senders}
    for peer in senders:  # each sender's own messages keep the order it sent them in
        assert by_sender[peer.user] == [f"{peer.user}-{i}" for i in range(100)]


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_a_receiver_cut_mid_stream_resumes_and_syncs_every_message_once(server_factory):
    """A socket cut abruptly while others send resumes with its token; sync fills the gap."""
    server = server_factory(ice_allowed_networks=LOOPBACK)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await enter(http, server, "carol", 101)
        async with (
            socket(server, entered["socketToken"]) as first,
            peers(http, server, 101, ["alice", "bob"]) as senders,
        ):
            carol = Peer(first, "carol", await frame(first))
            total = 2 * 20
            progress = {"sent": 0}

            async def talk(peer: Peer) -> None:
                for i in range(20):
                    await peer.say(f"{peer.user}-{i}", f"{i}")
                    progress["sent"] += 1
                    await asyncio.sleep(0.01)

            talking = asyncio.gather(*(talk(peer) for peer in senders))
            await carol.wait(lambda: len(carol.messages) >= 8)
            assert carol.ws.transport is not None
            carol.ws.transport.abort()  # no close frame: the TCP connection just ends
            await carol.close()
            before = deliver(carol.frames)
            await senders[0].wait(lambda: progress["sent"] >= len(before) + 6)

            async with socket(server, entered["socketToken"]) as again:
                welcome = await frame(again)
                assert welcome["type"] == "welcome" and welcome["resumed"] is True
                assert welcome["lastSeq"] > len(before)
                resumed = Peer(again, "carol", welcome)
                await resumed.send(type="sync", after=len(before), id="s1")
                await talking  # the others kept sending while carol synced
                await resumed.wait(lambda: len(deliver(resumed.frames, before)) == total)
                await resumed.wait(lambda: any(f["type"] == "synced" for f in resumed.frames))
                synced = next(f for f in resumed.frames if f["type"] == "synced")
                assert synced["lastSeq"] >= welcome["lastSeq"]
                assert not [f for f in resumed.frames if f["type"] == "error"]
                await resumed.close()
        stored = await history(http, server, entered["roomUuid"])

    shown = deliver(resumed.frames, before)
    assert [key(m) for m in shown] == [key(m) for m in stored]
    assert [m["seq"] for m in shown] == list(range(1, total + 1))


async def test_sync_pages_a_long_history_without_dropping_the_socket(im_server):
    """sync after 0 sends 450 stored messages in seq order, then synced; the socket stays."""
    server = im_server
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 102, ["alice"]) as (alice,),
    ):
        room_uuid = alice.welcome["roomUuid"]
        count = 450
        _insert_messages(server, room_uuid, "alice", count)
        await alice.send(type="sync", after=0)
        await alice.wait(lambda: any(f["type"] == "synced" for f in alice.frames))
        assert [m["seq"] for m in alice.messages] == list(range(1, count + 1))
        assert alice.frames[-1] == {"type": "synced", "lastSeq": count}
        await alice.send(type="sync", after=count - 3, id="tail")
        await alice.wait(lambda: len([f for f in alice.frames if f["type"] == "synced"]) == 2)
        assert [m["seq"] for m in alice.messages[count:]] == [count - 2, count - 1, count]
        await alice.send(type="sync", after=count + 50)
        await alice.wait(lambda: len([f for f in alice.frames if f["type"] == "synced"]) == 3)
        assert alice.frames[-1] == {"type": "synced", "lastSeq": count}
        await alice.ping()  # still open: the ping is answered


def _insert_messages(server: RunningServer, room_uuid: str, sender: str, count: int) -> None:
    """Store ``count`` messages straight into the database (faster than the rate allows)."""
    session = uuid.UUID(room_uuid).hex if server.database.kind == "sqlite" else room_uuid
    rows = ", ".join(
        f"('{session}', {seq}, '{sender}', 'text', '{json.dumps({'text': f'm{seq}'})}',"
        f" 'bulk-{seq}', {1700000000 + seq})"
        for seq in range(1, count + 1)
    )
    server.database.execute(
        "INSERT INTO messages (session_id, seq, sender, kind, body, client_msg_id, sent_at)"
        f" VALUES {rows}"
    )
    server.database.execute(
        f"UPDATE room_sessions SET last_msg_seq = {count} WHERE id = '{session}'"
    )


# --- idempotency and refusals --------------------------------------------------------------


async def test_a_resent_client_msg_id_is_stored_once(im_server):
    """Resending a clientMsgId returns the stored message to the sender only, same seq."""
    server = im_server
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 103, ["alice", "bob"]) as (alice, bob),
    ):
        first = await alice.say("c-1", "hello")
        await bob.wait(lambda: len(bob.messages) == 1)
        await alice.send(type="message", clientMsgId="c-1", kind="text", text="changed", id="r")
        await alice.wait(lambda: len(alice.own("c-1")) == 2)
        again = alice.own("c-1")[1]
        assert again == first and again["text"] == "hello" and again["seq"] == 1
        second = await alice.say("c-2", "next")
        await bob.wait(lambda: len(bob.messages) == 2)
        assert [key(m) for m in bob.messages] == [key(first), key(second)]
        assert [m["seq"] for m in await history(http, server, alice.welcome["roomUuid"])] == [1, 2]
        assert not alice.errors("r")


async def test_spoofed_sender_or_seq_is_refused_and_nothing_stored(im_server):
    """A message frame naming from, seq or sentAt is 10004 with ref; nothing is stored or sent."""
    server = im_server
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 104, ["alice", "bob"]) as (alice, bob),
    ):
        base = {"type": "message", "clientMsgId": "c", "kind": "text", "text": "hi"}
        for field, value in (("from", "bob"), ("seq", 99), ("sentAt", 1.0)):
            await alice.send(**base, **{field: value}, id=field)
            await alice.wait(lambda f=field: alice.errors(f))  # type: ignore[misc]
            assert f"message.{field}" in assert_error(alice.errors(field)[0], 10004, ref=field)
        await bob.ping()
        assert bob.messages == [] and alice.messages == []
        assert await history(http, server, alice.welcome["roomUuid"]) == []


async def test_oversize_and_flooded_messages_are_refused_and_the_rest_flows(im_server):
    """Too-long text, too-big data and a flood over 10/s get 10004 + ref; nobody is cut off."""
    server = im_server
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 105, ["alice", "bob"]) as (alice, bob),
    ):
        await alice.send(type="message", clientMsgId="big", kind="text", text="x" * 4001, id="t")
        await alice.send(
            type="message", clientMsgId="big", kind="custom", data=["y" * 9000], id="d"
        )
        await alice.wait(lambda: alice.errors("t") and alice.errors("d"))
        assert "message.text" in assert_error(alice.errors("t")[0], 10004, ref="t")
        assert "message.data" in assert_error(alice.errors("d")[0], 10004, ref="d")

        flood = [f"f{i}" for i in range(40)]
        for ref in flood:
            await alice.send(type="message", clientMsgId=ref, kind="text", text=ref, id=ref)
        await alice.wait(lambda: all(alice.own(r) or alice.errors(r) for r in flood))
        accepted = [r for r in flood if alice.own(r)]
        limited = [r for r in flood if alice.errors(r)]
        assert len(accepted) >= 20 and limited and len(accepted) + len(limited) == len(flood)
        for ref in limited:
            assert "message rate limited" in assert_error(alice.errors(ref)[0], 10004, ref=ref)

        late = await bob.say("after-flood", "still here")  # another member is not limited
        await alice.wait(lambda: any(m["from"] == "bob" for m in alice.messages))
        stored = await history(http, server, alice.welcome["roomUuid"])
        assert [m["clientMsgId"] for m in stored] == [*accepted, "after-flood"]
        assert [key(m) for m in bob.messages] == [key(m) for m in stored]
        assert key(alice.messages[-1]) == key(late)
        await alice.ping()  # alice's socket is still up


async def test_a_storage_failure_is_10006_and_leaves_no_gap(im_server):
    """When the insert fails the sender gets 10006 with ref; the next message takes seq 1."""
    server = im_server
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 106, ["alice", "bob"]) as (alice, bob),
    ):
        server.database.execute("ALTER TABLE messages RENAME TO messages_away")
        try:
            await alice.send(type="message", clientMsgId="lost", kind="text", text="x", id="x")
            await alice.wait(lambda: alice.errors("x"))
            assert_error(alice.errors("x")[0], 10006, ref="x")
        finally:
            server.database.execute("ALTER TABLE messages_away RENAME TO messages")
        assert server.database.execute("SELECT last_msg_seq FROM room_sessions") == [(0,)]
        stored = await alice.say("kept", "y")
        assert stored["seq"] == 1
        await bob.wait(lambda: bob.messages)
        assert [key(m) for m in bob.messages] == [key(stored)]


async def test_welcome_tells_a_newcomer_the_last_seq(im_server):
    """A member joining after two messages sees welcome.lastSeq 2 and can sync them."""
    server = im_server
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 107, ["alice"]) as (alice,),
    ):
        assert alice.welcome["lastSeq"] == 0
        await alice.say("a", "one")
        await alice.say("b", "two")
        async with peers(http, server, 107, ["bob"]) as (bob,):
            assert bob.welcome["lastSeq"] == 2
            await bob.send(type="sync", after=0)
            await bob.wait(lambda: any(f["type"] == "synced" for f in bob.frames))
            assert [m["text"] for m in bob.messages] == ["one", "two"]
            assert bob.frames[-1] == {"type": "synced", "lastSeq": 2}


async def test_a_sync_the_database_cannot_answer_closes_the_socket_to_resync(im_server):
    """A failed sync read closes 1011 (not an error frame that leaves the gap open forever)."""
    server = im_server
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        peers(http, server, 108, ["alice", "bob"]) as (alice, bob),
    ):
        await alice.say("a", "one")
        await bob.wait(lambda: bob.messages)
        server.database.execute("ALTER TABLE messages RENAME TO messages_away")
        try:
            await bob.send(type="sync", after=0, id="s")
            async with asyncio.timeout(TIMEOUT):
                await bob.ws.wait_closed()
        finally:
            server.database.execute("ALTER TABLE messages_away RENAME TO messages")
        assert bob.ws.close_code == 1011
        assert not any(f["type"] in ("error", "synced") for f in bob.frames)
        await alice.ping()  # the others' sockets are untouched
