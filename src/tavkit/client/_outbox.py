"""The kit's in-call messages on the socket: one future per send, settled by the server.

:class:`~tavkit.client._im.MessageLog` decides, without I/O, what each frame means:
which messages to deliver, which of our sends the server acknowledged, what to send
again after a resume. :class:`Outbox` wires it to the call: it sends the frames the
log returns on the membership's current socket, hands delivered messages on, and
keeps an ``asyncio.Future`` per send so :meth:`Outbox.send` can return the stored
message once the server's echo arrives (or raise its refusal).

A send outlives socket drops: while the socket is down nothing is written (the log
keeps the frame), and the next ``welcome`` sends every unacknowledged frame again
with its ``clientMsgId``, which the server stores once. A send that waited
``timeout`` seconds gives up (http 10000) and is not resent. :meth:`Outbox.close`
fails every send still waiting (server 14004): the call is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from tavkit.client._im import MessageLog
from tavkit.errors import HttpCode, HttpError, ServerCode, ServerError, TAvKitError
from tavkit.protocol import (
    ChatMessage,
    ClientMessage,
    ErrorFrame,
    MessageFrom,
    ServerMessage,
    Synced,
    Welcome,
)

__all__ = ["Outbox", "Socket"]


class Socket(Protocol):
    """What the outbox needs of the signaling socket (``client.session.SignalingSocket``)."""

    @property
    def connected(self) -> asyncio.Event:
        """Set while the socket is open (between a ``welcome`` and the next drop)."""

    async def send(self, message: ClientMessage) -> None:
        """Send one frame."""


class Outbox:
    """One membership's in-call messages: sends awaiting acknowledgement, frames to (re)send.

    ``socket()`` returns the current signaling socket (``None`` between memberships);
    ``spawn`` runs a coroutine as a task someone owns (the kit's dispatcher);
    ``deliver`` gets every message of the session once, in ``seq`` order; ``timeout``
    (s) bounds how long :meth:`send` waits for the acknowledgement.
    """

    def __init__(
        self,
        user_id: str,
        *,
        socket: Callable[[], Socket | None],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        deliver: Callable[[ChatMessage], None],
        timeout: float,
    ) -> None:
        self.log = MessageLog(user_id)
        self._socket = socket
        self._spawn = spawn
        self._deliver = deliver
        self._timeout = timeout
        self._acks: dict[str, asyncio.Future[ChatMessage]] = {}

    @property
    def waiting(self) -> list[str]:
        """The ``clientMsgId`` of every send still waiting for its acknowledgement."""
        return list(self._acks)

    async def send(self, kind: str, value: Any) -> ChatMessage:
        """Send a text (``str``) or custom (any JSON) message; return it as the server stored it.

        Raises the server's refusal (a :class:`~tavkit.errors.ServerError`), an
        :class:`~tavkit.errors.HttpError` (10000) when no acknowledgement came within
        ``timeout``, server 14004 when :meth:`close` ended the wait, and whatever
        :meth:`MessageLog.compose <tavkit.client._im.MessageLog.compose>` raises for a
        value it cannot send.
        """
        frame = self.log.compose(kind, value)
        ack: asyncio.Future[ChatMessage] = asyncio.get_running_loop().create_future()
        self._acks[frame.client_msg_id] = ack
        try:
            await self._transmit([frame])
            async with asyncio.timeout(self._timeout):
                return await ack
        except TimeoutError:
            raise HttpError(
                HttpCode.NETWORK,
                f"the server did not acknowledge the message in {self._timeout} s",
            ) from None
        finally:
            self._acks.pop(frame.client_msg_id, None)
            self.log.forget(frame.client_msg_id)

    def receive(self, message: ServerMessage) -> bool:
        """Take a server frame; whether it was the outbox's alone.

        ``message``, ``synced`` and an ``error`` refusing one of our sends are consumed;
        ``welcome`` (re)sends a ``sync`` and the unacknowledged messages but is not
        consumed, since the room reconciles its members from it too.
        """
        log = self.log
        if isinstance(message, MessageFrom):
            inbound = log.receive(message.message)
            for delivered in inbound.deliver:
                self._deliver(delivered)
            for acked in inbound.acked:
                self._settle(acked.client_msg_id, acked)
            self._send_soon(inbound.send)
            return True
        if isinstance(message, Synced):
            self._send_soon(log.synced())
            return True
        if isinstance(message, Welcome):
            self._send_soon(log.connected(message.room_uuid, message.last_seq))
            return False
        if isinstance(message, ErrorFrame) and log.refused(message.ref):
            assert message.ref is not None
            try:
                error = message.to_error()
            except ValueError:
                error = ServerError(ServerCode.INTERNAL, message.error_msg)
            self._settle(message.ref, error)
            return True
        return False

    def close(self) -> None:
        """The call is over: fail every send still waiting with server 14004."""
        for client_msg_id in list(self._acks):
            self._settle(client_msg_id, ServerError(ServerCode.USER_EXITED, "the call is over"))

    def _settle(self, client_msg_id: str, outcome: ChatMessage | TAvKitError) -> None:
        ack = self._acks.get(client_msg_id)
        if ack is None or ack.done():
            return
        if isinstance(outcome, TAvKitError):
            ack.set_exception(outcome)
        else:
            ack.set_result(outcome)

    def _send_soon(self, frames: Sequence[ClientMessage]) -> None:
        if frames:
            self._spawn(self._transmit(frames))

    async def _transmit(self, frames: Sequence[ClientMessage]) -> None:
        """Send now if the socket is up; otherwise the next ``welcome`` sends them again."""
        socket = self._socket()
        for frame in frames:
            if socket is None or not socket.connected.is_set():
                return
            await socket.send(frame)
