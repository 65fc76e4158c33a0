"""In-call messages (webim-component, ``docs/protocol.md`` section 5): store, number, publish.

A message's life::

    socket frame --parse--> SendMessage --post()--> one transaction:
        already stored (session, sender, clientMsgId)?  -> the stored one, duplicate
        UPDATE room_sessions SET last_msg_seq = last_msg_seq + 1 ... RETURNING
        INSERT messages (seq = that number)
    commit --> publish MessageEvent (kind "message") on session:{uuid}
           --> every socket of the session sends it as a ``message`` frame

The counter lives on the session row and is bumped in the insert's transaction, so
numbers have no gaps and a failed insert gives its number back (10006, nothing
half-written); the row lock it takes (PostgreSQL) or SQLite's single writer orders
replicas, and the unique constraints catch what a race could still get wrong.

Within one process a lock per session is held from the number's allocation until
the event is published, so the bus carries a session's messages in ``seq`` order
and every socket sends them in that order. Locks exist only while someone holds or
waits for one. The per-member rate (10/s, bursts of 20) is kept here rather than on
the socket, so reconnecting does not refill it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol import ChatMessage, MessageKind, SendMessage, TokenBucket
from tavkit.server import journal
from tavkit.server.bus import Bus, session_channel
from tavkit.server.events import MessageEvent
from tavkit.server.journal import MessageCreatedNotice
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.models import MessageRow, SessionRow
from tavkit.server.store.readback import UNREADABLE, read_json
from tavkit.server.store.unit_of_work import Outbox, transaction

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "MAX_HISTORY_LIMIT",
    "MESSAGE_BURST",
    "MESSAGE_RATE",
    "History",
    "MessageService",
    "Posted",
]

logger = logging.getLogger(__name__)

# Limits
MESSAGE_RATE: Final = 10.0
MESSAGE_BURST: Final = 20.0
"""Messages per second (sustained) and at once, per member of a session."""
DEFAULT_HISTORY_LIMIT: Final = 100
MAX_HISTORY_LIMIT: Final = 1000
"""``limit`` of a history page: its default and its largest value."""
_PRUNE_BUCKETS_OVER: Final = 4096


@dataclass(frozen=True)
class Posted:
    """What :meth:`MessageService.post` did with a message."""

    message: ChatMessage
    duplicate: bool = False
    """The ``clientMsgId`` was already stored: ``message`` is that one, nothing was published."""
    published: bool = True
    """False when the bus refused the event: only the sender can be told (stored all the same)."""


@dataclass(frozen=True)
class History:
    """One page of a session's messages, ``seq`` order."""

    messages: list[ChatMessage]
    last_seq: int
    """The session's last ``seq`` (read after the page, so never below its last message)."""
    has_more: bool
    """More messages follow the page (ask again with ``after`` = its last ``seq``)."""


@dataclass
class _Slot:
    """A session's lock and how many posts hold or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class MessageService:
    """Stores and publishes in-call messages; reads history back."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        clock: Callable[[], float] = time.time,
        rate_clock: Callable[[], float] = time.monotonic,
        op_timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._rate_clock = rate_clock
        self._op_timeout = op_timeout
        self._slots: dict[uuid.UUID, _Slot] = {}
        self._buckets: dict[tuple[uuid.UUID, str], TokenBucket] = {}

    def allow(self, room_uuid: uuid.UUID, user_id: str) -> bool:
        """Spend one of ``user_id``'s message tokens in that session; False when none is left."""
        key = (room_uuid, user_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_BUCKETS_OVER:
                self._prune_buckets()
            bucket = self._buckets[key] = TokenBucket(
                MESSAGE_RATE, MESSAGE_BURST, clock=self._rate_clock
            )
        return bucket.allow()

    async def post(self, room_uuid: uuid.UUID, sender: str, msg: SendMessage) -> Posted:
        """Store ``msg`` from ``sender`` once and publish it; a resend returns the stored one.

        Raises ``ServerError`` 10006 when the database fails (nothing is stored) and
        14003 when the session has closed.
        """
        try:
            async with asyncio.timeout(self._op_timeout), self._serialised(room_uuid):
                stored, duplicate = await self._store_once(room_uuid, sender, msg)
                if duplicate:
                    return Posted(stored, duplicate=True)
                try:
                    await self._bus.publish(session_channel(room_uuid), MessageEvent(stored))
                except TAvKitError as exc:
                    logger.warning("message %d of %s not published: %s", stored.seq, room_uuid, exc)
                    return Posted(stored, published=False)
                return Posted(stored)
        except TimeoutError:
            raise ServerError(ServerCode.DATABASE, "timed out while storing a message") from None

    async def history(
        self, room_uuid: uuid.UUID, *, after: int = 0, limit: int = DEFAULT_HISTORY_LIMIT
    ) -> History:
        """Up to ``limit`` messages with ``seq > after``; 14007 if there is no such session."""
        with storage_errors("reading messages"):
            async with self._store.reads() as s:
                rows = (
                    await s.scalars(
                        select(MessageRow)
                        .where(MessageRow.session_id == room_uuid, MessageRow.seq > after)
                        .order_by(MessageRow.seq)
                        .limit(limit + 1)
                    )
                ).all()
                # After the rows: under READ COMMITTED a newer message may have landed
                # between the two reads, and lastSeq must not fall behind the page.
                last_seq = await s.scalar(
                    select(SessionRow.last_msg_seq).where(SessionRow.id == room_uuid)
                )
        if last_seq is None:
            raise ServerError(ServerCode.SESSION_NOT_FOUND, f"no session {room_uuid}")
        page = [_message(row) for row in rows[:limit]]
        return History(page, last_seq, has_more=len(rows) > limit)

    async def last_seq(self, room_uuid: uuid.UUID) -> int:
        """The session's last message ``seq`` (0 when it has none or does not exist)."""
        with storage_errors("reading the message count"):
            async with self._store.reads() as s:
                value = await s.scalar(
                    select(SessionRow.last_msg_seq).where(SessionRow.id == room_uuid)
                )
        return value or 0

    async def _store_once(
        self, room_uuid: uuid.UUID, sender: str, msg: SendMessage
    ) -> tuple[ChatMessage, bool]:
        """One transaction, retried if another replica raced us: (message, was it there).

        The sequence number is bumped and the row inserted together, so a failed insert
        gives its number back and the numbers have no gaps.
        """
        body = {"text": msg.text} if msg.kind == "text" else {"data": msg.data}

        async def run(s: AsyncSession, _out: Outbox) -> tuple[ChatMessage, bool]:
            existing = await s.scalar(
                select(MessageRow).where(
                    MessageRow.session_id == room_uuid,
                    MessageRow.sender == sender,
                    MessageRow.client_msg_id == msg.client_msg_id,
                )
            )
            if existing is not None:
                return _message(existing), True
            seq = await s.scalar(
                update(SessionRow)
                .where(SessionRow.id == room_uuid, SessionRow.closed_at.is_(None))
                .values(last_msg_seq=SessionRow.last_msg_seq + 1)
                .returning(SessionRow.last_msg_seq)
                .execution_options(synchronize_session=False)
            )
            if seq is None:
                raise ServerError(ServerCode.ROOM_CLOSED, f"session {room_uuid} is closed")
            row = MessageRow(
                session_id=room_uuid,
                seq=seq,
                sender=sender,
                kind=msg.kind,
                body=json.dumps(body, separators=(",", ":"), allow_nan=False),
                client_msg_id=msg.client_msg_id,
                sent_at=self._clock(),
            )
            s.add(row)
            await s.flush()
            journal.record(s, MessageCreatedNotice(room_uuid, _message(row)))
            return _message(row), False

        # The timeout is the caller's (post), which also covers the session lock.
        return await transaction(self._store, "storing a message", run, op_timeout=None)

    @asynccontextmanager
    async def _serialised(self, room_uuid: uuid.UUID) -> AsyncIterator[None]:
        slot = self._slots.get(room_uuid)
        if slot is None:
            slot = self._slots[room_uuid] = _Slot()
        slot.users += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[room_uuid]

    def _prune_buckets(self) -> None:
        """Forget full buckets: a member idle long enough to refill costs nothing to recreate."""
        for key in [k for k, b in self._buckets.items() if b.tokens >= b.burst]:
            del self._buckets[key]


def _message(row: MessageRow) -> ChatMessage:
    """The one place a stored message becomes the wire's, for history, sync and acks alike.

    The body is decoded tolerantly (:func:`~tavkit.server.store.readback.read_json`):
    a row stored before the input checks must not make the whole history a 500.
    """
    body = read_json(row.body)
    if type(body) is not dict:
        body = {"text": body} if row.kind == "text" else {"data": body}
    kind: MessageKind = "text" if row.kind == "text" else "custom"
    text = body.get("text")
    if kind == "text" and type(text) is not str:
        text = UNREADABLE
    return ChatMessage(
        seq=row.seq,
        sender=row.sender,
        kind=kind,
        client_msg_id=row.client_msg_id,
        sent_at=row.sent_at,
        text=text,
        data=body.get("data"),
    )
