"""What happens to a session, as typed values: the events on the bus, and their JSON.

The room service, the message service, the sockets and the recorder publish these on
the session's channel (:func:`~tavkit.server.bus.session_channel`); every subscriber
gets them back as the same types. On the way each event crosses JSON once per
subscriber (:func:`encode` then :func:`decode`), as it will on a message broker, so
the wire shape below is a contract between replicas: the keys must not change.

=================  =====================================================================
``kind``           fields on the wire (and the event class)
=================  =====================================================================
``member-joined``  ``member`` (the protocol's member object), ``connectionId``
                   (:class:`MemberJoinedEvent`)
``member-left``    ``userId``, ``reason`` (exit/timeout/replaced/removed/closed/moved),
                   ``connectionId`` (:class:`MemberLeftEvent`)
``member-state``   ``userId``, ``muted``, ``camera`` (:class:`MemberStateEvent`)
``room-closed``    ``reason`` (:class:`RoomClosedEvent`)
``signal``         ``from``, ``to``, ``data`` (the protocol's ``signal.data``); signaling
                   relays through the bus so replicas can share it (:class:`SignalEvent`)
``message``        ``message`` (the stored message object), published after commit, in
                   ``seq`` order per process (:class:`MessageEvent`)
``socket-open``    ``userId``, ``connectionId``, ``socketId`` (optional): a member's
                   socket is subscribed (the recorder offers then); an older socket of
                   that connection, on any replica, closes (:class:`SocketOpenEvent`)
``member-link``    ``userId``, ``connectionId``, ``up``, ``socketId`` (optional): a member
                   still in the session went silent or lost its socket without ``leave``
                   (``up: false``), or was heard again (``up: true``)
                   (:class:`MemberLinkEvent`)
``media-mode``     ``mediaMode`` (``sfu``): an ``auto`` session grew past its threshold;
                   every socket joins its member to the SFU and tells it
                   (:class:`MediaModeEvent`)
``call``           ``frame`` (the protocol's ``call-*`` frame), on a user's channel
                   (:func:`~tavkit.server.bus.user_channel`): every user socket of
                   that user sends it on (:class:`CallEvent`)
``user-socket``    ``device``, ``socketId``: a user socket opened, on a user's channel;
                   an older socket of the same device, on any replica, closes
                   (:class:`UserSocketEvent`)
=================  =====================================================================

Every event also has ``kind``, and every event on the wire has ``v``, the version of
this table (:data:`WIRE_VERSION`; :func:`encode` adds it beside ``kind``, ``to_wire``
leaves it out). :func:`parse` is strict: another version (or none), an unknown ``kind``,
a missing field or one of the wrong type raises ``ValueError`` naming what is wrong; a
refused version names both. During a rolling upgrade, replicas of different versions on
one bus thus refuse each other's events loudly (their subscribers are cut off and their
clients resume) instead of misreading them. Bump the version when a change would make
an older replica misread an event: a key renamed or removed, a meaning changed.

A bad event is the server's own mistake (or a replica speaking another version), never
a client's, so it is a builtin error rather than a seed code; the bus turns it into
server 10000 for its subscriber. Keys the parser does not know are ignored, as in the
protocol, so a newer replica can add an optional field without a new version and
without cutting off the older ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NoReturn, TypeAlias, TypeVar, cast

from tavkit.protocol import (
    LEAVE_REASONS,
    MEDIA_MODES,
    ChatMessage,
    FrameError,
    LeaveReason,
    MediaMode,
    Member,
    SignalData,
    parse_chat_message,
    parse_member,
    parse_signal_data,
)
from tavkit.protocol.calls import CallFrame, parse_call_frame

__all__ = [
    "WIRE_VERSION",
    "CallEvent",
    "Event",
    "MediaModeEvent",
    "MemberJoinedEvent",
    "MemberLeftEvent",
    "MemberLinkEvent",
    "MemberStateEvent",
    "MessageEvent",
    "RoomClosedEvent",
    "SignalEvent",
    "SocketOpenEvent",
    "UserSocketEvent",
    "decode",
    "encode",
    "parse",
]

T = TypeVar("T")

WIRE_VERSION: Final = 1
"""The version of the events' wire shape, ``v`` in every encoded event (see above)."""


@dataclass(frozen=True, slots=True)
class MemberJoinedEvent:
    """A member entered the session on the connection ``connection_id``."""

    kind: ClassVar[str] = "member-joined"
    member: Member
    connection_id: str

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "member", "connectionId"}``."""
        return {
            "kind": self.kind,
            "member": self.member.to_wire(),
            "connectionId": self.connection_id,
        }


@dataclass(frozen=True, slots=True)
class MemberLeftEvent:
    """The member's connection ``connection_id`` left the session; ``reason`` says how."""

    kind: ClassVar[str] = "member-left"
    user_id: str
    reason: LeaveReason
    connection_id: str

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "userId", "reason", "connectionId"}``."""
        return {
            "kind": self.kind,
            "userId": self.user_id,
            "reason": self.reason,
            "connectionId": self.connection_id,
        }


@dataclass(frozen=True, slots=True)
class MemberStateEvent:
    """A member's microphone, camera or screen share changed."""

    kind: ClassVar[str] = "member-state"
    user_id: str
    muted: bool
    camera: bool
    screen: bool = False

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "userId", "muted", "camera"}``, and ``"screen": true`` while sharing."""
        wire: dict[str, Any] = {
            "kind": self.kind,
            "userId": self.user_id,
            "muted": self.muted,
            "camera": self.camera,
        }
        if self.screen:
            wire["screen"] = True
        return wire


@dataclass(frozen=True, slots=True)
class RoomClosedEvent:
    """The session closed (``empty``, ``admin``, ...)."""

    kind: ClassVar[str] = "room-closed"
    reason: str

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "reason"}``."""
        return {"kind": self.kind, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class MediaModeEvent:
    """The session's media goes through ``media_mode`` from now on (an ``auto`` switch)."""

    kind: ClassVar[str] = "media-mode"
    media_mode: MediaMode

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "mediaMode"}``."""
        return {"kind": self.kind, "mediaMode": self.media_mode}


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """``data`` from ``sender`` (``from`` on the wire) for ``to``, already checked."""

    kind: ClassVar[str] = "signal"
    sender: str
    to: str
    data: SignalData

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "from", "to", "data"}``."""
        return {"kind": self.kind, "from": self.sender, "to": self.to, "data": self.data.to_wire()}


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A message was stored; every socket of the session sends it on."""

    kind: ClassVar[str] = "message"
    message: ChatMessage

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "message"}``."""
        return {"kind": self.kind, "message": self.message.to_wire()}


@dataclass(frozen=True, slots=True)
class SocketOpenEvent:
    """The socket of ``user_id``'s connection ``connection_id`` is subscribed and listening.

    ``socket_id`` names that one socket (random, per socket): a socket of the same
    connection that hears another socket's ``socket-open`` after its own knows it has
    been superseded, whichever replica either runs on. It is optional on the wire (an
    older replica sends none) but, when present, a non-empty string.
    """

    kind: ClassVar[str] = "socket-open"
    user_id: str
    connection_id: str
    socket_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "userId", "connectionId"}``, and ``"socketId"`` when it has one."""
        wire = {"kind": self.kind, "userId": self.user_id, "connectionId": self.connection_id}
        if self.socket_id is not None:
            wire["socketId"] = self.socket_id
        return wire


@dataclass(frozen=True, slots=True)
class MemberLinkEvent:
    """``user_id``'s connection ``connection_id`` lost its link (``up`` false) or got it back.

    Down: its socket went silent past the server's silence threshold or dropped without
    ``leave`` (not replaced by a newer socket, not closed by the server for good). Up:
    a frame arrived again, or a socket of that connection resumed. The member stays in
    the session either way (until its heartbeat timeout), so the others mark it as
    reconnecting instead of waiting out the timeout in silence.

    ``socket_id`` names the socket that says so: a socket that a newer one of the same
    connection has superseded (a resume on another replica, while the old one had not
    heard of it yet) may still report its own end after the new one said "up", and the
    others ignore it rather than show a member who is back as reconnecting. Optional on
    the wire, like :class:`SocketOpenEvent`'s.
    """

    kind: ClassVar[str] = "member-link"
    user_id: str
    connection_id: str
    up: bool
    socket_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "userId", "connectionId", "up"}``, and ``"socketId"`` when it has one."""
        wire: dict[str, Any] = {
            "kind": self.kind,
            "userId": self.user_id,
            "connectionId": self.connection_id,
            "up": self.up,
        }
        if self.socket_id is not None:
            wire["socketId"] = self.socket_id
        return wire


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A call frame for one user's sockets (published after the call's change commits)."""

    kind: ClassVar[str] = "call"
    frame: CallFrame

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "frame"}``."""
        return {"kind": self.kind, "frame": self.frame.to_wire()}


@dataclass(frozen=True, slots=True)
class UserSocketEvent:
    """A user socket of ``device`` opened (``socket_id`` names it)."""

    kind: ClassVar[str] = "user-socket"
    device: str
    socket_id: str

    def to_wire(self) -> dict[str, Any]:
        """``{"kind", "device", "socketId"}``."""
        return {"kind": self.kind, "device": self.device, "socketId": self.socket_id}


Event: TypeAlias = (
    MemberJoinedEvent
    | MemberLeftEvent
    | MemberStateEvent
    | RoomClosedEvent
    | SignalEvent
    | MessageEvent
    | SocketOpenEvent
    | MemberLinkEvent
    | MediaModeEvent
    | CallEvent
    | UserSocketEvent
)
"""Any event on the bus."""


def encode(event: Event) -> str:
    """The event as compact JSON text with its version, the form a message broker carries.

    Raises ``TypeError`` or ``ValueError`` for what JSON cannot carry (NaN, a message
    ``data`` that is not JSON), so such an event fails at publish.
    """
    wire = {"v": WIRE_VERSION, **event.to_wire()}
    return json.dumps(wire, separators=(",", ":"), allow_nan=False)


def decode(text: str | bytes) -> Event:
    """The event :func:`encode` made ``text`` of; ``ValueError`` if it is not one."""
    try:
        wire = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("bus event: nested too deeply") from None
    return parse(wire)


def parse(wire: object) -> Event:
    """Check one decoded event object (``v`` included) and return it typed.

    Raises ``ValueError`` if refused. The version is checked before anything else: an
    event of another version may not be understood at all, and saying so is clearer
    than naming the first field that does not fit.
    """
    if not isinstance(wire, dict):
        raise ValueError(f"bus event: expected an object, got {type(wire).__name__}")
    version = wire.get("v")
    if type(version) is not int or version != WIRE_VERSION:
        got = f"version {version!r}" if "v" in wire else "no version"
        raise ValueError(
            f"bus event: {got}, but this replica reads version {WIRE_VERSION}"
            " (replicas of different versions cannot share a bus)"
        )
    kind = wire.get("kind")
    if not isinstance(kind, str) or kind not in _PARSERS:
        raise ValueError(f"bus event: unknown kind {kind!r} (one of {', '.join(_PARSERS)})")
    return _PARSERS[kind](_Fields(wire, kind))


class _Fields:
    """Typed access to the members of one event object, failing with the field's path."""

    def __init__(self, obj: object, path: str) -> None:
        self.path = path
        if not isinstance(obj, dict):
            self.fail("", "an object")
        self.obj: dict[str, Any] = obj

    def fail(self, name: str, expected: str) -> NoReturn:
        where = f"{self.path}.{name}" if name else self.path
        raise ValueError(f"bus event {where}: expected {expected}")

    def raw(self, name: str) -> Any:
        if name not in self.obj:
            raise ValueError(f"bus event {self.path}.{name}: missing")
        return self.obj[name]

    def text(self, name: str) -> str:
        """A non-empty string (ids and reasons are never empty)."""
        value = self.raw(name)
        if not isinstance(value, str) or not value:
            self.fail(name, "a non-empty string")
        return value

    def optional_text(self, name: str) -> str | None:
        """A non-empty string if the key is there; None if it is absent (not null)."""
        return self.text(name) if name in self.obj else None

    def boolean(self, name: str) -> bool:
        value = self.raw(name)
        if not isinstance(value, bool):
            self.fail(name, "true or false")
        return value

    def member(self, name: str) -> Member:
        """A member object, read by the protocol's own parser so none of its fields is lost."""
        return self.protocol(name, parse_member)

    def protocol(self, name: str, read: Callable[[object, str], T]) -> T:
        """A value the protocol's own strict parser checks (``signal.data``, a message)."""
        try:
            return read(self.raw(name), f"{self.path}.{name}")
        except FrameError as exc:
            raise ValueError(f"bus event {exc.message}") from exc


def _member_left(f: _Fields) -> MemberLeftEvent:
    reason = f.text("reason")
    if reason not in LEAVE_REASONS:
        f.fail("reason", "one of " + ", ".join(sorted(LEAVE_REASONS)))
    return MemberLeftEvent(f.text("userId"), cast(LeaveReason, reason), f.text("connectionId"))


def _media_mode(f: _Fields) -> MediaModeEvent:
    mode = f.text("mediaMode")
    if mode not in MEDIA_MODES:
        f.fail("mediaMode", "one of " + ", ".join(MEDIA_MODES))
    return MediaModeEvent(cast(MediaMode, mode))


_PARSERS: Final[dict[str, Callable[[_Fields], Event]]] = {
    "member-joined": lambda f: MemberJoinedEvent(f.member("member"), f.text("connectionId")),
    "member-left": _member_left,
    "member-state": lambda f: MemberStateEvent(
        f.text("userId"),
        f.boolean("muted"),
        f.boolean("camera"),
        f.boolean("screen") if "screen" in f.obj else False,
    ),
    "room-closed": lambda f: RoomClosedEvent(f.text("reason")),
    "media-mode": _media_mode,
    "signal": lambda f: SignalEvent(
        f.text("from"), f.text("to"), f.protocol("data", parse_signal_data)
    ),
    "message": lambda f: MessageEvent(f.protocol("message", parse_chat_message)),
    "socket-open": lambda f: SocketOpenEvent(
        f.text("userId"), f.text("connectionId"), f.optional_text("socketId")
    ),
    "member-link": lambda f: MemberLinkEvent(
        f.text("userId"), f.text("connectionId"), f.boolean("up"), f.optional_text("socketId")
    ),
    "call": lambda f: CallEvent(f.protocol("frame", lambda obj, _path: parse_call_frame(obj))),
    "user-socket": lambda f: UserSocketEvent(f.text("device"), f.text("socketId")),
}


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"bus event: {name} is not JSON")
