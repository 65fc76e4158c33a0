"""The kit's message acknowledgements without a network: futures, refusals, resends, close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import pytest

from tavkit.client._outbox import Outbox
from tavkit.errors import HttpCode, HttpError, ServerCode, ServerError
from tavkit.protocol import (
    ChatMessage,
    ClientMessage,
    ErrorFrame,
    MessageFrom,
    SendMessage,
    Sync,
    Synced,
    Welcome,
)

ROOM = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


class FakeSocket:
    """Records what the outbox writes; ``connected`` as the real socket keeps it."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connected.set()
        self.sent: list[ClientMessage] = []

    async def send(self, message: ClientMessage) -> None:
        self.sent.append(message)


class Harness:
    """An outbox for ``alice`` on a fake socket, with its spawned tasks and deliveries."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.socket: FakeSocket | None = FakeSocket()
        self.delivered: list[ChatMessage] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.outbox = Outbox(
            "alice",
            socket=lambda: self.socket,
            spawn=self._spawn,
            deliver=self.delivered.append,
            timeout=timeout,
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    @property
    def sent(self) -> list[ClientMessage]:
        assert self.socket is not None
        return self.socket.sent

    async def settle(self) -> None:
        """Let the sends and the spawned transmissions run."""
        for _ in range(3):
            await asyncio.sleep(0)
        await asyncio.gather(*self.tasks)

    async def sending(self, text: str) -> tuple[asyncio.Task[ChatMessage], SendMessage]:
        """Start a text send; return its task and the frame it wrote."""
        task = asyncio.ensure_future(self.outbox.send("text", text))
        await self.settle()
        frames = [f for f in self.sent if isinstance(f, SendMessage)]
        return task, frames[-1]


def welcome(last_seq: int = 0) -> Welcome:
    """The server's ``welcome`` for alice (first connection or a resume alike), with
    ``last_seq`` the session's last stored message."""
    return Welcome(
        room_uuid=ROOM,
        user_id="alice",
        connection_id="c1",
        members=(),
        heartbeat_interval=5.0,
        heartbeat_timeout=15.0,
        last_seq=last_seq,
    )


def stored(frame: SendMessage, seq: int, sender: str = "alice") -> ChatMessage:
    """The server's stored copy of ``frame`` (its echo, the acknowledgement)."""
    return ChatMessage(
        seq=seq,
        sender=sender,
        kind="text",
        client_msg_id=frame.client_msg_id,
        sent_at=1_700_000_000.0 + seq,
        text=frame.text,
    )


def other(seq: int) -> ChatMessage:
    """Bob's message number ``seq``."""
    return ChatMessage(
        seq=seq,
        sender="bob",
        kind="text",
        client_msg_id=f"bob-{seq}",
        sent_at=1_700_000_000.0 + seq,
        text=f"hi {seq}",
    )


async def test_a_send_returns_the_message_as_stored_once_the_echo_arrives() -> None:
    """The echo of our own message resolves the send with the stored message and delivers it."""
    h = Harness()
    h.outbox.receive(welcome())
    task, frame = await h.sending("hello")
    assert not task.done()
    echo = stored(frame, 1)
    assert h.outbox.receive(MessageFrom(echo)) is True
    assert await task == echo
    assert h.delivered == [echo]
    assert h.outbox.waiting == [] and h.outbox.log.unacked == []


async def test_a_refusal_rejects_the_send_with_the_servers_error() -> None:
    """An ``error`` whose ref is our message's id rejects that send with the server's code."""
    h = Harness()
    task, frame = await h.sending("x")
    refusal = ErrorFrame("server", int(ServerCode.INVALID_PARAMETER), "rate limited", ref=frame.id)
    assert h.outbox.receive(refusal) is True
    with pytest.raises(ServerError) as caught:
        await task
    assert caught.value.code is ServerCode.INVALID_PARAMETER
    assert caught.value.message == "rate limited"
    assert h.outbox.log.unacked == []


async def test_a_refusal_with_an_unknown_code_rejects_as_server_10000() -> None:
    """A refusal that is not a seed code still rejects the send, as server 10000."""
    h = Harness()
    task, frame = await h.sending("x")
    h.outbox.receive(ErrorFrame("server", 99999, "odd", ref=frame.id))
    with pytest.raises(ServerError) as caught:
        await task
    assert caught.value.code is ServerCode.INTERNAL and caught.value.message == "odd"


async def test_an_error_about_another_frame_is_left_to_the_room() -> None:
    """An ``error`` that refuses none of our messages is not consumed."""
    h = Harness()
    assert h.outbox.receive(ErrorFrame("server", 10004, "bad signal", ref="s1")) is False
    assert h.outbox.receive(ErrorFrame("server", 10004, "bad frame")) is False


async def test_a_send_made_while_the_socket_is_down_goes_out_after_the_welcome() -> None:
    """Nothing is written while disconnected; the next welcome sends the message (and, with
    nothing stored, no sync)."""
    h = Harness()
    assert h.socket is not None
    h.socket.connected.clear()
    task = asyncio.ensure_future(h.outbox.send("text", "later"))
    await h.settle()
    assert h.sent == []
    h.socket.connected.set()
    assert h.outbox.receive(welcome()) is False  # the room reconciles its members too
    await h.settle()
    assert len(h.sent) == 1
    assert isinstance(h.sent[0], SendMessage) and h.sent[0].text == "later"
    h.outbox.receive(MessageFrom(stored(h.sent[0], 1)))
    assert (await task).text == "later"


async def test_an_unacknowledged_send_is_sent_again_after_a_resume_with_the_same_id() -> None:
    """A message written before a drop is written again, same clientMsgId, after the resume."""
    h = Harness()
    h.outbox.receive(welcome())
    task, frame = await h.sending("hello")
    h.sent.clear()
    h.outbox.receive(welcome(last_seq=1))  # resumed; it may have been stored
    await h.settle()
    assert h.sent == [Sync(after=0), frame]
    h.outbox.receive(MessageFrom(stored(frame, 1)))
    assert (await task).seq == 1


async def test_a_send_without_a_socket_waits_for_one() -> None:
    """Between memberships (no socket) a send is kept, not lost, until a welcome."""
    h = Harness()
    socket, h.socket = h.socket, None
    task = asyncio.ensure_future(h.outbox.send("text", "between"))
    await h.settle()
    h.socket = socket
    h.outbox.receive(welcome())
    await h.settle()
    assert [type(f) for f in h.sent] == [SendMessage]
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_send_not_acknowledged_in_time_fails_as_http_10000_and_is_dropped() -> None:
    """After ``timeout`` the send raises http 10000 and is no longer resent."""
    h = Harness(timeout=0.05)
    with pytest.raises(HttpError) as caught:
        await h.outbox.send("text", "lost")
    assert caught.value.code is HttpCode.NETWORK
    assert h.outbox.waiting == [] and h.outbox.log.unacked == []
    h.sent.clear()
    h.outbox.receive(welcome(last_seq=1))
    await h.settle()
    assert h.sent == [Sync(after=0)]


async def test_close_fails_every_waiting_send_with_14004() -> None:
    """Closing the outbox rejects every send still waiting: the call is over."""
    h = Harness()
    first, _ = await h.sending("one")
    second, _ = await h.sending("two")
    h.outbox.close()
    for task in (first, second):
        with pytest.raises(ServerError) as caught:
            await task
        assert caught.value.code is ServerCode.USER_EXITED
    assert h.outbox.waiting == []


async def test_a_late_echo_after_a_refusal_changes_nothing() -> None:
    """Once a send is settled, a later frame about it neither raises nor resettles it."""
    h = Harness()
    h.outbox.receive(welcome())
    task, frame = await h.sending("x")
    h.outbox.receive(ErrorFrame("server", 10004, "no", ref=frame.id))
    with pytest.raises(ServerError):
        await task
    h.outbox.receive(MessageFrom(stored(frame, 1)))  # delivered, nobody to settle
    assert [m.seq for m in h.delivered] == [1]


async def test_others_messages_are_delivered_in_order_and_a_gap_asks_for_a_sync() -> None:
    """Others' messages go to ``deliver`` in seq order; a gap sends ``sync`` on the socket."""
    h = Harness()
    h.outbox.receive(welcome())
    h.outbox.receive(Synced(last_seq=0))
    await h.settle()
    h.sent.clear()
    assert h.outbox.receive(MessageFrom(other(1))) is True
    assert h.outbox.receive(MessageFrom(other(3))) is True
    await h.settle()
    assert [m.seq for m in h.delivered] == [1]
    assert h.sent == [Sync(after=1)]
    h.outbox.receive(MessageFrom(other(2)))
    assert [m.seq for m in h.delivered] == [1, 2, 3]


async def test_synced_with_a_gap_still_open_asks_again() -> None:
    """A ``synced`` that leaves a gap is consumed and sends another ``sync``."""
    h = Harness()
    h.outbox.receive(welcome())
    h.outbox.receive(MessageFrom(other(2)))
    await h.settle()
    h.sent.clear()
    assert h.outbox.receive(Synced(last_seq=2)) is True
    await h.settle()
    assert h.sent == [Sync(after=0)]
