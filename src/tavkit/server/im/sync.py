"""Sans-I/O: which in-call messages a socket sends, around a ``sync`` reply.

A socket hears of new messages live (bus events) and, on the client's ``sync``, sends
stored ones from the history in pages. The two must not interleave out of order nor
send a message twice, so :class:`SyncGate` decides, one socket at a time:

* while a reply is being sent, live messages are **held** (at most ``held_max``;
  one more means the socket must resync, as a lost event would);
* every page the reply sends widens the range ``(after, through]`` it carried;
* when the reply ends, the held messages are released **minus** those the reply
  already carried, and so is any later live message inside that range;
* the ``synced`` frame names the last ``seq`` the reply covered: its last message,
  or, for an empty reply, the client's own ``after`` (never past the session's end).

No asyncio here: the socket (``signaling/connection.py``) awaits the history and the
send queue, and asks this class what to send. Unit tests drive it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tavkit.protocol import ChatMessage

__all__ = ["Overflow", "SyncGate"]


class Overflow(Exception):
    """More live messages arrived during a sync reply than the gate may hold."""


@dataclass
class SyncGate:
    """One socket's message flow: live messages versus the sync reply being sent."""

    held_max: int
    _syncing: bool = False
    _after: int = 0
    _cursor: int = 0
    _held: list[ChatMessage] = field(default_factory=list)
    _carried: tuple[int, int] = (0, 0)
    """``(after, through]``: the seqs the last reply sent; live copies are not sent again."""

    @property
    def syncing(self) -> bool:
        """Whether a reply is being sent (live messages are held meanwhile)."""
        return self._syncing

    @property
    def cursor(self) -> int:
        """The last ``seq`` the reply has sent so far (its ``after`` before the first page)."""
        return self._cursor

    def start(self, after: int) -> None:
        """A ``sync {after}`` arrived: hold live messages until :meth:`finish`."""
        self._syncing = True
        self._after = self._cursor = after

    def page(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """A page of history read after :attr:`cursor`: the messages to send, in order."""
        if messages:
            self._cursor = messages[-1].seq
            self._carried = (self._after, self._cursor)
        return list(messages)

    def synced(self, last_seq: int) -> int:
        """The ``synced.lastSeq`` to send once the history has no more pages.

        The reply's last message; for an empty reply, the client's ``after`` unless the
        session ends before it (``last_seq``), so a client never skips what is not there.
        """
        if self._cursor > self._after:
            return self._cursor
        return min(self._after, last_seq)

    def finish(self) -> list[ChatMessage]:
        """The reply ended (sent, failed or abandoned): the held messages still to send."""
        self._syncing = False
        held, self._held = self._held, []
        return [message for message in held if self._fresh(message)]

    def live(self, message: ChatMessage) -> list[ChatMessage]:
        """A message arrived live: what to send now (nothing while a reply is being sent).

        Raises :class:`Overflow` when holding it would pass ``held_max``; the message is
        held all the same, so a socket that carries on loses nothing.
        """
        if self._syncing:
            overflow = len(self._held) >= self.held_max
            self._held.append(message)
            if overflow:
                raise Overflow(f"more than {self.held_max} messages held during a sync")
            return []
        return [message] if self._fresh(message) else []

    def _fresh(self, message: ChatMessage) -> bool:
        after, through = self._carried
        return not after < message.seq <= through
