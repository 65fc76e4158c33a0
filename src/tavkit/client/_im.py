"""In-call messages without I/O: exactly-once, in-order delivery and unacknowledged sends.

The server numbers a session's messages 1, 2, 3, ... and sends each socket its
messages in order, but one message may arrive twice (live, and again in the reply to
a ``sync``), and a resumed socket has missed whatever was sent while it was away
(``docs/protocol.md`` section 5). :class:`MessageLog` turns that into what a
listener wants: every message once, in ``seq`` order. It drops ``seq <= delivered``,
holds anything past a gap until a ``sync`` fills it, and on every (re)connect asks
for ``sync {after: delivered}`` - 0 on the first connection, so a late joiner gets
the session's history.

It also remembers what this client sent and the server has not acknowledged yet.
The server echoes every stored message to its sender, which is the acknowledgement;
after a reconnect every unacknowledged ``message`` frame is sent again with the same
``clientMsgId``, which the server stores once, so a resend never duplicates a message.

Everything here is plain state: the outbox (``_outbox.py``) feeds it frames, sends the
frames it returns and keeps the futures that wait for the acknowledgements.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import (
    MAX_FRAME_BYTES,
    ChatMessage,
    ClientMessage,
    SendMessage,
    Sync,
    encode,
)

__all__ = ["ChatMessage", "Inbound", "MessageLog", "new_client_msg_id"]


def new_client_msg_id() -> str:
    """A fresh ``clientMsgId``: 32 hex digits, unique for all practical purposes."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class Inbound:
    """What one received frame means: messages to deliver, sends acknowledged, frames to send."""

    deliver: list[ChatMessage] = field(default_factory=list)
    """Newly deliverable messages, in ``seq`` order, each exactly once."""
    acked: list[ChatMessage] = field(default_factory=list)
    """Our own messages the server has stored (acknowledged), as stored."""
    send: list[ClientMessage] = field(default_factory=list)
    """Frames to send now (a ``sync`` to fill a gap)."""


class MessageLog:
    """One client's view of a session's messages and of its own unacknowledged sends."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        #: The highest ``seq`` delivered; every message up to it was delivered once.
        self.delivered = 0
        #: The session the ``seq`` numbers belong to (a new session starts again at 1).
        self.room_uuid: str | None = None
        self._held: dict[int, ChatMessage] = {}
        self._unacked: dict[str, SendMessage] = {}
        self._syncing = False

    @property
    def unacked(self) -> list[str]:
        """The ``clientMsgId`` of every message sent and not yet acknowledged, oldest first."""
        return list(self._unacked)

    @property
    def held(self) -> list[int]:
        """The ``seq`` of messages received past a gap, waiting for it to be filled."""
        return sorted(self._held)

    def compose(self, kind: str, value: Any) -> SendMessage:
        """The ``message`` frame for a new text (``str``) or custom (any JSON) message.

        It is kept as unacknowledged until :meth:`receive` sees the server's echo,
        :meth:`refused` its refusal or :meth:`forget` gives up on it. The contract's
        limits (text length, data size, rate) are the server's to enforce; only a
        frame too big for the socket (which the server would close) is refused here,
        with the same server 10004. Raises ``TypeError`` for a text that is not a
        string and ``ValueError``/``TypeError`` for data that is not JSON.
        """
        client_msg_id = new_client_msg_id()
        if kind == "text":
            if not isinstance(value, str):
                raise TypeError(f"a text message must be a str, not {type(value).__name__}")
            frame = SendMessage(client_msg_id, "text", text=value, id=client_msg_id)
        elif kind == "custom":
            # Round-trip through JSON: the frame then holds exactly what the wire carries.
            wire = json.dumps(value, separators=(",", ":"), allow_nan=False)
            frame = SendMessage(client_msg_id, "custom", data=json.loads(wire), id=client_msg_id)
        else:
            raise ValueError(f"kind must be 'text' or 'custom', not {kind!r}")
        size = len(encode(frame).encode("utf-8", "surrogatepass"))
        if size > MAX_FRAME_BYTES:
            field_name = "text" if kind == "text" else "data"
            raise ServerError(
                ServerCode.INVALID_PARAMETER,
                f"message.{field_name}: the frame would be {size} bytes, over {MAX_FRAME_BYTES}",
            )
        self._unacked[client_msg_id] = frame
        return frame

    def connected(self, room_uuid: str, last_seq: int | None = None) -> list[ClientMessage]:
        """The socket is open (first time, resumed, or a new membership): frames to send.

        A ``sync`` for everything after what was delivered, then every unacknowledged
        message again. Joining a different session starts its numbering afresh.
        ``last_seq`` is the ``welcome``'s: when nothing past what was delivered is
        stored (a new session's first socket, a resume that missed nothing) there is
        no ``sync``, since later messages come live. That keeps the server's history
        read out of a join: a socket's frames are served in order, so a ``sync``
        sent first would hold up the offer behind it.
        """
        if self.room_uuid is not None and room_uuid != self.room_uuid:
            self.delivered = 0
            self._held.clear()
        self.room_uuid = room_uuid
        self._syncing = last_seq is None or last_seq > self.delivered
        sync: list[ClientMessage] = [Sync(after=self.delivered)] if self._syncing else []
        return [*sync, *self._unacked.values()]

    def receive(self, message: ChatMessage) -> Inbound:
        """A ``message`` frame: what to deliver and which sends it acknowledges."""
        out = Inbound()
        if message.seq <= self.delivered:
            self._ack(message, out)  # the answer to a resend, or a duplicate
            return out
        self._held[message.seq] = message
        while (following := self._held.pop(self.delivered + 1, None)) is not None:
            self.delivered = following.seq
            out.deliver.append(following)
            self._ack(following, out)
        if self._held and not self._syncing:
            self._syncing = True
            out.send.append(Sync(after=self.delivered))
        return out

    def synced(self) -> list[ClientMessage]:
        """A ``synced`` frame: the reply to our ``sync`` is complete; a gap left asks again."""
        self._syncing = False
        if self._held:
            self._syncing = True
            return [Sync(after=self.delivered)]
        return []

    def refused(self, ref: str | None) -> bool:
        """An ``error`` frame: whether it refused one of our messages (which is then dropped)."""
        return ref is not None and self._unacked.pop(ref, None) is not None

    def forget(self, client_msg_id: str) -> None:
        """Stop resending a message (its sender gave up waiting)."""
        self._unacked.pop(client_msg_id, None)

    def _ack(self, message: ChatMessage, out: Inbound) -> None:
        if message.sender != self.user_id:
            return
        if self._unacked.pop(message.client_msg_id, None) is not None:
            out.acked.append(message)
