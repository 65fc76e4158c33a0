"""The journal: what happened to an app's sessions, as events written with the change itself.

A service that changes something a backend should hear of calls :func:`record` inside
its transaction (``journal.record(s, MemberLeftNotice(...))``): that only notes the
event on the session. :func:`~tavkit.server.store.unit_of_work.transaction` then calls
:func:`write_recorded` as the last statement before commit, which numbers the events
and inserts them into ``journal``. So an event exists exactly when its change committed
(the transactional outbox), and the webhook dispatcher (:mod:`tavkit.server.webhooks`)
and ``GET /v1/sessions/{uuid}/events`` read the same rows.

Numbering takes the app's counter row (``apps.last_event_seq``) with an ``UPDATE``, whose
lock is held until commit: writers of one app take turns for that last moment only, so
ids commit in order, with no gaps, on every replica. Taking it last means a transaction
that holds it never waits for another lock, so it cannot be part of a deadlock.

=====================  ============================================================
``type``               ``data``
=====================  ============================================================
``room.opened``        ``{}``
``room.closed``        ``reason`` (``empty``, ``admin``)
``member.joined``      ``userId``
``member.left``        ``userId``, ``reason`` (exit, timeout, replaced, removed,
                       closed, moved, expired)
``recording.started``  ``recordingId``, ``userId``
``recording.ready``    ``recordingId``, ``userId``, ``status`` (complete, partial),
                       ``size``, ``duration``, ``sha256``, ``url`` (the download path)
``message.created``    ``message`` (the stored message object); only for apps whose
                       webhooks ask for messages
``call.ringing``       ``callId``, ``caller``, ``media``, ``callees`` (those rung),
                       ``userId`` null, ``reason`` null
``call.accepted``      the same keys; ``userId`` the callee who accepted
``call.declined``      ``userId`` the callee, ``reason`` theirs (or null)
``call.busy``          ``userId`` the callee who was busy (in another call, or declined
                       with ``busy``)
``call.timeout``       ``userId`` a callee who did not answer in time
``call.cancelled``     ``callees`` those still ringing when the caller cancelled (or left
                       the room), ``reason`` (``cancelled``, ``caller-left``, ``hangup``)
``call.ended``         ``reason`` (``hangup``: the caller; ``empty``: the room emptied;
                       ``closed``: an admin closed it)
=====================  ============================================================

Call events belong to the session of the call's room, which the call opens when the
room has none, so a call's ringing and its members' joins are one timeline.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import ServerError
from tavkit.protocol import (
    ChatMessage,
    FrameError,
    RoomId,
    parse_chat_message,
    parse_room_id,
    room_from_columns,
)
from tavkit.server.store.journal_models import JournalRow
from tavkit.server.store.models import AppRow, SessionRow
from tavkit.server.store.recording_models import RecordingRow

__all__ = [
    "CALL_NOTICE_TYPES",
    "NOTICE_TYPES",
    "CallNotice",
    "JournalEntry",
    "MemberJoinedNotice",
    "MemberLeftNotice",
    "MessageCreatedNotice",
    "Notice",
    "RecordingReadyNotice",
    "RecordingStartedNotice",
    "RoomClosedNotice",
    "RoomOpenedNotice",
    "parse_entry",
    "read_entries",
    "record",
    "write_recorded",
]

_PENDING: Final = "tavkit.journal"
"""The key of a session's ``info`` under which :func:`record` keeps its events."""


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"event data.{name}: expected a non-empty string")
    return value


def _number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"event data.{name}: expected a number or null")
    return value


@dataclass(frozen=True, slots=True)
class RoomOpenedNotice:
    """The first enter opened a session of the room."""

    type: ClassVar[str] = "room.opened"
    room_uuid: uuid.UUID

    def data(self) -> dict[str, Any]:
        """``{}``: the envelope says which room."""
        return {}

    @classmethod
    def from_data(cls, room_uuid: uuid.UUID, _data: dict[str, Any]) -> RoomOpenedNotice:
        """The event back from its ``data``."""
        return cls(room_uuid)


@dataclass(frozen=True, slots=True)
class RoomClosedNotice:
    """The session closed: ``empty`` after its grace, or ``admin``."""

    type: ClassVar[str] = "room.closed"
    room_uuid: uuid.UUID
    reason: str

    def data(self) -> dict[str, Any]:
        """``{"reason"}``."""
        return {"reason": self.reason}

    @classmethod
    def from_data(cls, room_uuid: uuid.UUID, data: dict[str, Any]) -> RoomClosedNotice:
        """The event back from its ``data``."""
        return cls(room_uuid, _text(data, "reason"))


@dataclass(frozen=True, slots=True)
class MemberJoinedNotice:
    """``user_id`` entered the session."""

    type: ClassVar[str] = "member.joined"
    room_uuid: uuid.UUID
    user_id: str

    def data(self) -> dict[str, Any]:
        """``{"userId"}``."""
        return {"userId": self.user_id}

    @classmethod
    def from_data(cls, room_uuid: uuid.UUID, data: dict[str, Any]) -> MemberJoinedNotice:
        """The event back from its ``data``."""
        return cls(room_uuid, _text(data, "userId"))


@dataclass(frozen=True, slots=True)
class MemberLeftNotice:
    """``user_id`` left the session; ``reason`` is the protocol's leave reason."""

    type: ClassVar[str] = "member.left"
    room_uuid: uuid.UUID
    user_id: str
    reason: str

    def data(self) -> dict[str, Any]:
        """``{"userId", "reason"}``."""
        return {"userId": self.user_id, "reason": self.reason}

    @classmethod
    def from_data(cls, room_uuid: uuid.UUID, data: dict[str, Any]) -> MemberLeftNotice:
        """The event back from its ``data``."""
        return cls(room_uuid, _text(data, "userId"), _text(data, "reason"))


@dataclass(frozen=True, slots=True)
class RecordingStartedNotice:
    """The server began recording ``user_id`` to the file ``recording_id``."""

    type: ClassVar[str] = "recording.started"
    room_uuid: uuid.UUID
    recording_id: uuid.UUID
    user_id: str

    def data(self) -> dict[str, Any]:
        """``{"recordingId", "userId"}``."""
        return {"recordingId": str(self.recording_id), "userId": self.user_id}

    @classmethod
    def from_data(cls, room_uuid: uuid.UUID, data: dict[str, Any]) -> RecordingStartedNotice:
        """The event back from its ``data``."""
        return cls(room_uuid, uuid.UUID(_text(data, "recordingId")), _text(data, "userId"))


@dataclass(frozen=True, slots=True)
class RecordingReadyNotice:
    """A recording file is closed and can be downloaded from ``url``."""

    type: ClassVar[str] = "recording.ready"
    room_uuid: uuid.UUID
    recording_id: uuid.UUID
    user_id: str
    status: str
    size: int | None
    duration: float | None
    sha256: str | None

    @classmethod
    def of(cls, rec: RecordingRow) -> RecordingReadyNotice:
        """The event for a recording row just closed."""
        return cls(
            rec.session_id, rec.id, rec.user_id, rec.status, rec.size, rec.duration, rec.sha256
        )

    @property
    def url(self) -> str:
        """The download path, relative to the server's base URL."""
        return f"/v1/sessions/{self.room_uuid}/recordings/{self.recording_id}"

    def data(self) -> dict[str, Any]:
        """``{"recordingId", "userId", "status", "size", "duration", "sha256", "url"}``."""
        return {
            "recordingId": str(self.recording_id),
            "userId": self.user_id,
            "status": self.status,
            "size": self.size,
            "duration": self.duration,
            "sha256": self.sha256,
            "url": self.url,
        }

    @classmethod
    def from_data(cls, room_uuid: uuid.UUID, data: dict[str, Any]) -> RecordingReadyNotice:
        """The event back from its ``data``."""
        size = _number(data, "size")
        sha256 = data.get("sha256")
        if sha256 is not None and not isinstance(sha256, str):
            raise ValueError("event data.sha256: expected a string or null")
        return cls(
            room_uuid,
            uuid.UUID(_text(data, "recordingId")),
            _text(data, "userId"),
            _text(data, "status"),
            None if size is None else int(size),
            _number(data, "duration"),
            sha256,
        )


@dataclass(frozen=True, slots=True)
class MessageCreatedNotice:
    """An in-call message was stored (journaled only for apps that ask for messages)."""

    type: ClassVar[str] = "message.created"
    room_uuid: uuid.UUID
    message: ChatMessage

    def data(self) -> dict[str, Any]:
        """``{"message"}``, the protocol's message object."""
        return {"message": self.message.to_wire()}

    @classmethod
    def from_data(cls, room_uuid: uuid.UUID, data: dict[str, Any]) -> MessageCreatedNotice:
        """The event back from its ``data``."""
        try:
            return cls(room_uuid, parse_chat_message(data.get("message"), "data.message"))
        except FrameError as exc:
            raise ValueError(f"event {exc.message}") from exc


CALL_NOTICE_TYPES: Final = (
    "call.ringing",
    "call.accepted",
    "call.declined",
    "call.busy",
    "call.timeout",
    "call.cancelled",
    "call.ended",
)
"""The call events' ``type``s (:class:`CallNotice`)."""


@dataclass(frozen=True, slots=True)
class CallNotice:
    """A call changed: ``type`` is one of :data:`CALL_NOTICE_TYPES` (what happened)."""

    type: str
    room_uuid: uuid.UUID
    call_id: uuid.UUID
    caller: str
    media: str
    callees: tuple[str, ...] = ()
    user_id: str | None = None
    reason: str | None = None

    def data(self) -> dict[str, Any]:
        """``{"callId", "caller", "media", "callees", "userId", "reason"}``."""
        return {
            "callId": str(self.call_id),
            "caller": self.caller,
            "media": self.media,
            "callees": list(self.callees),
            "userId": self.user_id,
            "reason": self.reason,
        }

    @classmethod
    def reader(cls, kind: str) -> Callable[[uuid.UUID, dict[str, Any]], CallNotice]:
        """The ``from_data`` of events of type ``kind``."""

        def read(room_uuid: uuid.UUID, data: dict[str, Any]) -> CallNotice:
            callees = data.get("callees")
            if not isinstance(callees, list) or not all(isinstance(c, str) and c for c in callees):
                raise ValueError("event data.callees: expected an array of userIds")
            optional = {}
            for name in ("userId", "reason"):
                value = data.get(name)
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"event data.{name}: expected a string or null")
                optional[name] = value
            return cls(
                kind,
                room_uuid,
                uuid.UUID(_text(data, "callId")),
                _text(data, "caller"),
                _text(data, "media"),
                tuple(callees),
                optional["userId"],
                optional["reason"],
            )

        return read


Notice: TypeAlias = (
    RoomOpenedNotice
    | RoomClosedNotice
    | MemberJoinedNotice
    | MemberLeftNotice
    | RecordingStartedNotice
    | RecordingReadyNotice
    | MessageCreatedNotice
    | CallNotice
)
"""Any journal event."""

_READERS: Final[dict[str, Callable[[uuid.UUID, dict[str, Any]], Notice]]] = {
    cls.type: cls.from_data
    for cls in (
        RoomOpenedNotice,
        RoomClosedNotice,
        MemberJoinedNotice,
        MemberLeftNotice,
        RecordingStartedNotice,
        RecordingReadyNotice,
        MessageCreatedNotice,
    )
} | {kind: CallNotice.reader(kind) for kind in CALL_NOTICE_TYPES}
NOTICE_TYPES: Final = tuple(_READERS)
"""Every event ``type``, in the order of the table above."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A committed event with its envelope: the body of a webhook and of the pull route."""

    id: int
    """Per app, increasing, no gaps: the idempotency id."""
    sdk_app_id: int
    room_id: RoomId
    """The session's room: an ``int``, or a ``str`` for a string room."""
    session_seq: int
    """The event's place in its session's timeline (1, 2, 3...)."""
    created_at: float
    notice: Notice

    @classmethod
    def of(cls, row: JournalRow) -> JournalEntry:
        """The entry stored in ``row``."""
        notice = _READERS[row.type](row.session_id, json.loads(row.data))
        room = room_from_columns(row.room_id, row.room_str)
        return cls(row.app_seq, row.sdk_app_id, room, row.session_seq, row.at, notice)

    def to_wire(self) -> dict[str, Any]:
        """The envelope and the event's ``data`` (see ``docs/protocol.md``)."""
        return {
            "id": self.id,
            "type": self.notice.type,
            "createdAt": self.created_at,
            "sdkAppId": self.sdk_app_id,
            "roomId": self.room_id,
            "roomUuid": str(self.notice.room_uuid),
            "sessionSeq": self.session_seq,
            "data": self.notice.data(),
        }


def parse_entry(wire: object) -> JournalEntry:
    """Check one entry object (a webhook's body, decoded) and return it typed.

    Raises ``ValueError`` naming what is wrong.
    """
    if not isinstance(wire, dict):
        raise ValueError("event: expected an object")
    kind = wire.get("type")
    if not isinstance(kind, str) or kind not in _READERS:
        raise ValueError(f"event: unknown type {kind!r}")
    for name in ("id", "sdkAppId", "sessionSeq"):
        if type(wire.get(name)) is not int:
            raise ValueError(f"event.{name}: expected an integer")
    try:
        room = parse_room_id(wire.get("roomId"), "event.roomId")
    except ServerError as exc:
        raise ValueError(exc.message) from None
    created = _number(wire, "createdAt")
    data = wire.get("data")
    if created is None or not isinstance(data, dict):
        raise ValueError("event: expected createdAt and a data object")
    room_uuid = uuid.UUID(_text(wire, "roomUuid"))
    return JournalEntry(
        wire["id"],
        wire["sdkAppId"],
        room,
        wire["sessionSeq"],
        created,
        _READERS[kind](room_uuid, data),
    )


def record(
    s: AsyncSession, notice: Notice, *, numbered: Callable[[int], None] | None = None
) -> None:
    """Note ``notice`` in ``s``'s transaction; it is written just before the commit.

    ``numbered`` is called with the event's id (its ``app_seq``) once it has one, still
    before the commit: the call service numbers its user socket frames with it, so a
    socket's ``after`` is a journal position (``docs/protocol.md`` section 7). An event
    that is not written (a message the app's webhooks do not ask for) is never numbered.
    """
    s.info.setdefault(_PENDING, []).append((notice, numbered))


async def write_recorded(
    s: AsyncSession, *, clock: Callable[[], float] = time.time
) -> list[JournalRow]:
    """Insert the events :func:`record` noted in ``s``, numbered; the transaction's last step.

    Apps are numbered in ``sdk_app_id`` order, so two transactions touching the same
    apps take their counters in the same order.
    """
    noted: list[tuple[Notice, Callable[[int], None] | None]] = s.info.pop(_PENDING, [])
    if not noted:
        return []
    pending = [notice for notice, _ in noted]
    callbacks = {id(notice): then for notice, then in noted if then is not None}
    sessions: dict[uuid.UUID, SessionRow] = {}
    for notice in pending:
        if notice.room_uuid not in sessions:
            session = await s.get(SessionRow, notice.room_uuid)
            if session is None:
                raise RuntimeError(f"journal: no session {notice.room_uuid}")
            sessions[notice.room_uuid] = session
    by_app: dict[int, list[Notice]] = {}
    for notice in pending:
        app = sessions[notice.room_uuid].sdk_app_id
        by_app.setdefault(app, []).append(notice)
    now = clock()
    written: list[JournalRow] = []
    for app, notices in sorted(by_app.items()):
        messages = any(n.type == MessageCreatedNotice.type for n in notices)
        if messages and not await s.scalar(
            select(AppRow.journal_messages).where(AppRow.sdk_app_id == app)
        ):
            notices = [n for n in notices if n.type != MessageCreatedNotice.type]
        if not notices:
            continue
        last = await s.scalar(
            update(AppRow)
            .where(AppRow.sdk_app_id == app)
            .values(last_event_seq=AppRow.last_event_seq + len(notices))
            .returning(AppRow.last_event_seq)
            .execution_options(synchronize_session=False)
        )
        if last is None:
            raise RuntimeError(f"journal: no app {app}")
        next_in_session: dict[uuid.UUID, int] = {}
        for offset, notice in enumerate(notices):
            room_uuid = notice.room_uuid
            if room_uuid not in next_in_session:
                top = await s.scalar(
                    select(func.max(JournalRow.session_seq)).where(
                        JournalRow.session_id == room_uuid
                    )
                )
                next_in_session[room_uuid] = (top or 0) + 1
            row = JournalRow(
                sdk_app_id=app,
                app_seq=last - len(notices) + 1 + offset,
                session_id=room_uuid,
                session_seq=next_in_session[room_uuid],
                room_id=sessions[room_uuid].room_id,
                room_str=sessions[room_uuid].room_str,
                type=notice.type,
                at=now,
                data=json.dumps(notice.data(), separators=(",", ":"), allow_nan=False),
            )
            next_in_session[room_uuid] += 1
            s.add(row)
            written.append(row)
            if (then := callbacks.get(id(notice))) is not None:
                then(row.app_seq)
    await s.flush()
    return written


async def read_entries(
    s: AsyncSession,
    sdk_app_id: int,
    *,
    room_uuid: uuid.UUID | None = None,
    after: int = 0,
    since: float | None = None,
    limit: int = 500,
) -> list[JournalEntry]:
    """The app's entries with an id above ``after`` (and at or after ``since``), in id order.

    ``room_uuid`` keeps one session's: its timeline, which is also its ``sessionSeq`` order.
    """
    query = select(JournalRow).where(
        JournalRow.sdk_app_id == sdk_app_id, JournalRow.app_seq > after
    )
    if room_uuid is not None:
        query = query.where(JournalRow.session_id == room_uuid)
    if since is not None:
        query = query.where(JournalRow.at >= since)
    rows = await s.scalars(query.order_by(JournalRow.app_seq).limit(limit))
    return [JournalEntry.of(row) for row in rows]
