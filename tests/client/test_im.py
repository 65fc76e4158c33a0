"""In-call messages between Python clients through a real server: order, history, errors, drops.

The clients publish no media (a source without tracks): messages travel over the
signaling socket only, so several clients stay cheap on a two-core machine.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest

from tavkit.client import ChatMessage, Listener, MediaSource, TAvKit
from tavkit.errors import ServerCode, ServerError
from tavkit.testing.relay import TcpRelay

from ._util import LOOPBACK, TIMEOUT, enter, until


class NoMedia(MediaSource):
    """A source with no tracks: the client only receives (and chats)."""

    async def open(self) -> None:
        """Nothing to open."""


class Inbox(Listener):
    """Keeps every delivered message and every reported error."""

    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self.errors: list[dict[str, Any]] = []

    def on_message(self, message: ChatMessage) -> None:
        self.messages.append(message)

    def on_error(self, error: dict[str, Any]) -> None:
        self.errors.append(error)

    def seqs(self) -> list[int]:
        """The seqs delivered so far, in delivery order."""
        return [m.seq for m in self.messages]


def chat_kit(url: str, **options: Any) -> TAvKit:
    """A client without media, on loopback."""
    return TAvKit(url, source=NoMedia(), host_addresses=LOOPBACK, reporting=False, **options)


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def test_text_and_custom_messages_reach_everyone_in_one_order(
    sqlite_server_factory: Any,
) -> None:
    """Three clients send text and custom messages; all deliver the same messages in seq order."""
    server = sqlite_server_factory()
    inboxes = {name: Inbox() for name in ("alice", "bob", "carol")}
    async with (
        chat_kit(server.url) as alice,
        chat_kit(server.url) as bob,
        chat_kit(server.url) as carol,
    ):
        kits = {"alice": alice, "bob": bob, "carol": carol}
        for name, kit in kits.items():
            await enter(kit, server, name, 601, inboxes[name])
        await until(lambda: all(len(k.members) == 2 for k in kits.values()), "all present")

        sent = await asyncio.gather(
            alice.send_message("hello from alice"),
            bob.send_custom_message({"cmd": "raise-hand", "level": [1, 2.5, None]}),
            carol.send_message("你好 👋"),
            alice.send_custom_message("just a string"),
            bob.send_message("line one\nline two"),
        )
        assert sorted(m.seq for m in sent) == [1, 2, 3, 4, 5]
        assert [m.sender for m in sent] == ["alice", "bob", "carol", "alice", "bob"]
        assert [m.kind for m in sent] == ["text", "custom", "text", "custom", "text"]
        assert sent[1].data == {"cmd": "raise-hand", "level": [1, 2.5, None]}
        assert sent[2].text == "你好 👋" and sent[3].data == "just a string"
        assert all(len(m.client_msg_id) == 32 and m.sent_at > 0 for m in sent)

        await until(lambda: all(len(i.messages) == 5 for i in inboxes.values()), "delivered")
        by_seq = sorted(sent, key=lambda m: m.seq)
        for inbox in inboxes.values():
            assert inbox.messages == by_seq  # own ones included, same order everywhere
            assert inbox.errors == []


async def test_a_late_joiner_receives_the_history_then_live_messages(
    sqlite_server_factory: Any,
) -> None:
    """Someone entering after messages were sent gets them first, in order, then new ones."""
    server = sqlite_server_factory()
    early, late = Inbox(), Inbox()
    async with chat_kit(server.url) as alice, chat_kit(server.url) as dave:
        await enter(alice, server, "alice", 602, early)
        history = [await alice.send_message(f"before {n}") for n in range(3)]
        history.append(await alice.send_custom_message({"n": 3}))

        await enter(dave, server, "dave", 602, late)
        await until(lambda: len(late.messages) == 4, "dave gets the history")
        assert late.messages == history
        reply = await dave.send_message("hi, I just arrived")
        assert reply.seq == 5
        await until(lambda: len(early.messages) == 5, "alice gets dave's message")
        await until(lambda: len(late.messages) == 5, "dave gets his own message")
        assert late.messages == early.messages


async def test_a_refused_message_raises_and_the_client_keeps_working(
    sqlite_server_factory: Any,
) -> None:
    """Over 4,000 characters or empty: ServerError 10004 from the server; then sending works."""
    server = sqlite_server_factory()
    inbox = Inbox()
    async with chat_kit(server.url) as alice:
        await enter(alice, server, "alice", 603, inbox)
        for bad in ("x" * 4001, ""):
            with pytest.raises(ServerError) as caught:
                await alice.send_message(bad)
            assert caught.value.error_code == ServerCode.INVALID_PARAMETER
        with pytest.raises(ServerError) as too_big:
            await alice.send_custom_message({"blob": "y" * 9000})
        assert too_big.value.error_code == ServerCode.INVALID_PARAMETER

        ok = await alice.send_message("x" * 4000)
        assert ok.seq == 1 and ok.text == "x" * 4000
        await until(lambda: inbox.seqs() == [1], "the good message is delivered")
        assert inbox.errors == [] and alice.errors == [] and not alice.closed


async def test_sending_outside_a_call_fails_clearly(sqlite_server_factory: Any) -> None:
    """Before start() it is a programming error; after hang-up it is server 14004."""
    server = sqlite_server_factory()
    async with chat_kit(server.url) as kit:
        with pytest.raises(RuntimeError):
            await kit.send_message("too early")
        await enter(kit, server, "alice", 604)
        await kit.hangup()
        with pytest.raises(ServerError) as caught:
            await kit.send_message("too late")
        assert caught.value.error_code == ServerCode.USER_EXITED


async def test_messages_survive_socket_drops_exactly_once_in_order(
    sqlite_server_factory: Any,
) -> None:
    """Bob's socket is cut while alice keeps sending: bob sees every message once, in order.

    A message bob sends while his network is down is delivered once after the resume,
    and messages sent while he is away reach him through his resume's sync.
    """
    server = sqlite_server_factory(heartbeat_interval=1.0, heartbeat_timeout=8.0)
    alice_inbox, bob_inbox = Inbox(), Inbox()
    relay = await TcpRelay(*_target(server.url)).start()
    async with relay, chat_kit(server.url) as alice, chat_kit(relay.url) as bob:
        await enter(alice, server, "alice", 605, alice_inbox)
        await enter(bob, server, "bob", 605, bob_inbox)
        await until(lambda: alice.members == ["bob"], "bob is in alice's room")
        total = 30
        bob_sends: list[asyncio.Task[ChatMessage]] = []

        async def alice_talks() -> list[ChatMessage]:
            sent = []
            for n in range(total):
                sent.append(await alice.send_message(f"alice {n}"))
                await asyncio.sleep(0.12)  # under the 10 messages/s rate limit
            return sent

        talking = asyncio.create_task(alice_talks())
        for cut_at in (8, 18):
            await until(lambda n=cut_at: len(alice_inbox.messages) >= n, "alice is talking")
            relay.refuse(3)  # bob's network stays down for a few reconnect attempts
            assert relay.cut() >= 1
            bob_sends.append(asyncio.create_task(bob.send_message(f"bob during cut {cut_at}")))
            cuts = len(bob_sends)
            await until(lambda n=cuts: bob.resumes == n, "bob's socket resumes")
        alice_sent = await asyncio.wait_for(talking, TIMEOUT * 2)
        bob_sent = [await asyncio.wait_for(task, TIMEOUT) for task in bob_sends]

        # The last words come while bob is away and nothing follows: only his sync brings them.
        relay.refuse(5)
        assert relay.cut() >= 1
        alice_sent += [await alice.send_message(f"alice last {n}") for n in range(2)]
        assert bob.resumes == 2, "bob came back before alice's last messages"
        await until(lambda: bob.resumes == 3, "bob's socket resumes again")

        expected = len(alice_sent) + len(bob_sent)
        await until(lambda: len(bob_inbox.messages) >= expected, "bob has every message")
        await until(lambda: len(alice_inbox.messages) >= expected, "alice has every message")
        await asyncio.sleep(0.5)  # a duplicate would arrive now
        assert bob_inbox.seqs() == list(range(1, expected + 1))
        assert alice_inbox.messages == bob_inbox.messages
        texts = [m.text for m in bob_inbox.messages]
        for message in alice_sent + bob_sent:
            assert texts.count(message.text) == 1
        assert bob.resumes == 3 and not bob.closed and bob_inbox.errors == []
