"""The signaling socket's frames (protocol v1) as typed values, and their encoding.

Every frame on ``/v1/ws`` is one JSON object with a ``type``. This module gives each
frame a frozen dataclass whose ``to_wire()`` is exactly the JSON object of
``docs/protocol.md`` section 2, so the server and the Python client build frames from
values instead of hand-written dicts. Parsing (the strict direction) lives in
:mod:`tavkit.protocol.parsing`.

Two families::

    ClientMessage   SignalTo · State · Ping · Leave · SendMessage · Sync ·
                    Renew · MediaSignalTo · MediaLayers                 client -> server
    ServerMessage   Welcome · MemberJoined · MemberLeft · MemberState ·
                    MemberConnection · SignalFrom · Pong · ErrorFrame · Replaced ·
                    Removed · RoomClosed · MessageFrom · Synced · Expiring · Renewed ·
                    MediaSignalFrom · MediaModeChanged

The ``media-signal`` frames (a member's SDP with the SFU) and ``media-layers`` are in
:mod:`tavkit.protocol.media`.

``signal`` frames carry :data:`SignalData`: a session description or an ICE candidate
(``None`` = end of candidates), with the browser's JSON field names on the wire.
In-call messages (section 5) are :class:`ChatMessage` values: ``SendMessage`` carries
what a client may say, ``MessageFrom`` the stored message with its ``seq``.
Credentials that end during a call (section 2, "Credential expiry") are ``Expiring``,
``Renew`` and ``Renewed``; the secrets those carry never show in a ``repr``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Final, Literal

from tavkit.auth.grants import Privilege
from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol.media import (
    MediaLayers,
    MediaMode,
    MediaModeChanged,
    MediaSignalFrom,
    MediaSignalTo,
)

__all__ = [
    "CLIENT_MSG_ID_RE",
    "CONNECTION_STATUSES",
    "LEAVE_REASONS",
    "MAX_CANDIDATE_BYTES",
    "MAX_DATA_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_ID_CHARS",
    "MAX_SDP_BYTES",
    "MAX_SEQ",
    "MAX_TEXT_CHARS",
    "MESSAGE_KINDS",
    "PROTOCOL_VERSION",
    "CandidateData",
    "ChatMessage",
    "ClientMessage",
    "CloseCode",
    "ConnectionStatus",
    "DescriptionData",
    "ErrorFrame",
    "Expiring",
    "FrameError",
    "IceCandidate",
    "Leave",
    "LeaveReason",
    "Member",
    "MemberConnection",
    "MemberJoined",
    "MemberLeft",
    "MemberState",
    "MessageFrom",
    "MessageKind",
    "Ping",
    "Pong",
    "Removed",
    "Renew",
    "Renewed",
    "Replaced",
    "RoomClosed",
    "SendMessage",
    "ServerMessage",
    "SessionDescription",
    "SignalData",
    "SignalFrom",
    "SignalTo",
    "State",
    "Sync",
    "Synced",
    "Welcome",
    "data_size",
    "encode",
    "silence_after",
]

PROTOCOL_VERSION: Final = 1
"""The ``v`` the server announces in ``welcome``; bumped only for incompatible changes."""

# Limits of the contract. Sizes are UTF-8 bytes, so they bound memory, not characters.
MAX_FRAME_BYTES: Final = 64 * 1024
MAX_SDP_BYTES: Final = 60 * 1024
MAX_CANDIDATE_BYTES: Final = 1024
MAX_ID_CHARS: Final = 64
# In-call messages (section 5).
MAX_TEXT_CHARS: Final = 4000
"""A ``text`` message is 1 to this many characters (code points)."""
MAX_DATA_BYTES: Final = 8 * 1024
"""A ``custom`` message's ``data``, serialised compactly (:func:`data_size`), in UTF-8 bytes."""
MAX_SEQ: Final = 2**31 - 1
"""The largest ``seq`` (and ``after``) there can be: the store keeps 32-bit integers."""
CLIENT_MSG_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""A ``clientMsgId``: 1-64 characters of ``[A-Za-z0-9_.:-]`` (use ``fullmatch``)."""

MessageKind = Literal["text", "custom"]
MESSAGE_KINDS: Final[frozenset[str]] = frozenset({"text", "custom"})

LeaveReason = Literal["exit", "timeout", "replaced", "removed", "closed", "moved", "expired"]
LEAVE_REASONS: Final[frozenset[str]] = frozenset(
    {"exit", "timeout", "replaced", "removed", "closed", "moved", "expired"}
)
"""``expired``: the member's userSig or privateMapKey ended and was not renewed in time."""
DescriptionType = Literal["offer", "answer", "rollback"]


PUBLISH_ALL: Final = int(Privilege.SEND_AUDIO | Privilege.SEND_VIDEO | Privilege.SEND_SUB)
"""Every send bit: a member whose privateMapKey does not restrict it (84)."""


class CloseCode(IntEnum):
    """How and why the server closes the socket; a client decides from it whether to resume."""

    NORMAL = 1000
    """After ``leave``: the member has left; do not reconnect."""
    TOO_BIG = 1009
    """A frame was over :data:`MAX_FRAME_BYTES`."""
    SERVER_ERROR = 1011
    """The server lost track of this socket (e.g. events were lost); reconnect to resume."""
    SERVICE_RESTART = 1012
    """The replica is draining (shutting down): reconnect at once to resume, through the
    load balancer, on another replica. A new socket on a draining replica gets it too."""
    TRY_AGAIN_LATER = 1013
    """The client read too slowly and its send queue overflowed; reconnect to resume."""
    REPLACED = 4001
    """The same user entered elsewhere, or a newer socket took over this connection."""
    REMOVED = 4002
    """An admin removed the member, it timed out, or its credentials expired."""
    ROOM_CLOSED = 4003
    """The session was closed."""
    UNAUTHORISED = 4401
    """The token was bad, expired, or its connection has left the room."""


class FrameError(ServerError):
    """A frame was refused; ``ref`` is the frame's ``id`` so the reply can name it.

    It is a :class:`~tavkit.errors.ServerError` (10003 for non-JSON, 10004 for a bad
    shape), so whoever does not care about ``ref`` handles it like any server error.
    """

    def __init__(self, code: ServerCode, message: str, *, ref: str | None = None) -> None:
        super().__init__(code, message)
        self.ref = ref


@dataclass(frozen=True, slots=True)
class Member:
    """A room member as the socket shows it to the others."""

    user_id: str
    joined_at: float
    muted: bool = False
    camera: bool = True
    publish: int = PUBLISH_ALL
    """The send bits of the member's privileges (4 audio, 16 video, 64 sub-stream): what
    the others may expect from it. A member with none (an audience member) gets no tile."""

    def to_wire(self) -> dict[str, Any]:
        """The ``member`` object of the contract."""
        return {
            "userId": self.user_id,
            "joinedAt": self.joined_at,
            "muted": self.muted,
            "camera": self.camera,
            "publish": self.publish,
        }


# --- signal payloads -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """An SDP offer, answer or rollback, as ``RTCSessionDescription.toJSON()`` has it."""

    type: DescriptionType
    sdp: str

    def to_wire(self) -> dict[str, Any]:
        """``{"type", "sdp"}``."""
        return {"type": self.type, "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class IceCandidate:
    """One trickled candidate, as ``RTCIceCandidate.toJSON()`` has it.

    An empty ``candidate`` string is the browser's own end-of-candidates marker and
    is relayed as is.
    """

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """``{"candidate", "sdpMid", "sdpMLineIndex"[, "usernameFragment"]}``."""
        wire: dict[str, Any] = {
            "candidate": self.candidate,
            "sdpMid": self.sdp_mid,
            "sdpMLineIndex": self.sdp_mline_index,
        }
        if self.username_fragment is not None:
            wire["usernameFragment"] = self.username_fragment
        return wire


@dataclass(frozen=True, slots=True)
class DescriptionData:
    """``signal.data`` carrying a session description."""

    description: SessionDescription

    def to_wire(self) -> dict[str, Any]:
        """``{"description": {...}}``."""
        return {"description": self.description.to_wire()}


@dataclass(frozen=True, slots=True)
class CandidateData:
    """``signal.data`` carrying a candidate; ``None`` says there are no more."""

    candidate: IceCandidate | None

    def to_wire(self) -> dict[str, Any]:
        """``{"candidate": {...} | null}``."""
        return {"candidate": None if self.candidate is None else self.candidate.to_wire()}


SignalData = DescriptionData | CandidateData


# --- client -> server ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignalTo:
    """Relay ``data`` to the member ``to`` of the same session."""

    type: ClassVar[str] = "signal"
    to: str
    data: SignalData
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``signal`` frame a client sends."""
        return _with_id({"type": self.type, "to": self.to, "data": self.data.to_wire()}, self.id)


@dataclass(frozen=True, slots=True)
class State:
    """This member's microphone and camera state, broadcast as ``member-state``.

    ``screen``: the video it sends is a shared screen (the others show it whole);
    only with the sub-stream privilege (64). On the wire only when true.
    """

    type: ClassVar[str] = "state"
    muted: bool
    camera: bool
    id: str | None = None
    screen: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The ``state`` frame."""
        wire: dict[str, Any] = {"type": self.type, "muted": self.muted, "camera": self.camera}
        if self.screen:
            wire["screen"] = True
        return _with_id(wire, self.id)


@dataclass(frozen=True, slots=True)
class Ping:
    """A liveness probe; the server answers ``pong`` with the same ``t``."""

    type: ClassVar[str] = "ping"
    t: float
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``ping`` frame."""
        return _with_id({"type": self.type, "t": self.t}, self.id)


@dataclass(frozen=True, slots=True)
class Leave:
    """Hang up: leave the room; the server closes the socket with 1000."""

    type: ClassVar[str] = "leave"
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``leave`` frame."""
        return _with_id({"type": self.type}, self.id)


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Send an in-call message: ``text`` for kind ``text``, ``data`` (any JSON) for ``custom``.

    ``client_msg_id`` makes a resend idempotent: the server stores it once per sender
    and session, and answers a repeat with the stored message.
    """

    type: ClassVar[str] = "message"
    client_msg_id: str
    kind: MessageKind
    text: str | None = None
    data: Any = None
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``message`` frame a client sends (``text`` or ``data`` by ``kind``)."""
        wire: dict[str, Any] = {
            "type": self.type,
            "clientMsgId": self.client_msg_id,
            "kind": self.kind,
        }
        if self.kind == "text":
            wire["text"] = self.text
        else:
            wire["data"] = self.data
        return _with_id(wire, self.id)


@dataclass(frozen=True, slots=True)
class Sync:
    """Ask for every stored message with ``seq > after``; answered by ``synced``."""

    type: ClassVar[str] = "sync"
    after: int = 0
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``sync`` frame."""
        return _with_id({"type": self.type, "after": self.after}, self.id)


@dataclass(frozen=True, slots=True)
class Renew:
    """Replace this member's credentials mid-call (after ``expiring``, or any time).

    ``user_sig`` must verify for the same app and user; ``private_map_key``, when
    given, must open the same room, and its privileges apply from then on (fewer bits
    included). Without one the member keeps the privileges and the key it had.
    Answered by ``renewed`` (with the frame's ``id`` as ``ref``), or by an ``error``
    (avkit 70346 userSig, 80/82/86/87 privateMapKey) that leaves the old ones in force.
    """

    type: ClassVar[str] = "renew"
    user_sig: str = field(repr=False)
    private_map_key: str | None = field(default=None, repr=False)
    id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``renew`` frame; ``privateMapKey`` only when there is one."""
        wire: dict[str, Any] = {"type": self.type, "userSig": self.user_sig}
        if self.private_map_key is not None:
            wire["privateMapKey"] = self.private_map_key
        return _with_id(wire, self.id)


ClientMessage = (
    SignalTo | State | Ping | Leave | SendMessage | Sync | Renew | MediaSignalTo | MediaLayers
)


# --- server -> client ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome:
    """The first frame after accept: who this socket is and who else is in the room."""

    type: ClassVar[str] = "welcome"
    room_uuid: str
    user_id: str
    connection_id: str
    members: tuple[Member, ...]
    heartbeat_interval: float
    heartbeat_timeout: float
    resumed: bool = False
    v: int = PROTOCOL_VERSION
    last_seq: int = 0
    """The session's last message ``seq`` when the socket opened (0 from an older server)."""
    media_mode: MediaMode = "mesh"
    """``sfu``: media goes through the SFU (``media-signal``), never the mesh."""

    def to_wire(self) -> dict[str, Any]:
        """The ``welcome`` frame."""
        return {
            "type": self.type,
            "v": self.v,
            "roomUuid": self.room_uuid,
            "userId": self.user_id,
            "connectionId": self.connection_id,
            "members": [m.to_wire() for m in self.members],
            "heartbeatInterval": self.heartbeat_interval,
            "heartbeatTimeout": self.heartbeat_timeout,
            "resumed": self.resumed,
            "lastSeq": self.last_seq,
            "mediaMode": self.media_mode,
        }


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """Another member joined the session."""

    type: ClassVar[str] = "member-joined"
    member: Member

    def to_wire(self) -> dict[str, Any]:
        """The ``member-joined`` frame."""
        return {"type": self.type, "member": self.member.to_wire()}


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """Another member left; ``reason`` says how."""

    type: ClassVar[str] = "member-left"
    user_id: str
    reason: LeaveReason

    def to_wire(self) -> dict[str, Any]:
        """The ``member-left`` frame."""
        return {"type": self.type, "userId": self.user_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class MemberState:
    """Another member's microphone, camera or screen share changed."""

    type: ClassVar[str] = "member-state"
    user_id: str
    muted: bool
    camera: bool
    screen: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The ``member-state`` frame (``screen`` only when true)."""
        wire: dict[str, Any] = {
            "type": self.type,
            "userId": self.user_id,
            "muted": self.muted,
            "camera": self.camera,
        }
        if self.screen:
            wire["screen"] = True
        return wire


ConnectionStatus = Literal["reconnecting", "connected"]
CONNECTION_STATUSES: Final = frozenset({"reconnecting", "connected"})
"""A member's link to the server as the others see it (``member-connection``)."""


def silence_after(heartbeat_interval: float, heartbeat_timeout: float) -> float:
    """Seconds without a frame after which the server shows a member as reconnecting.

    Two missed pings plus a second of slack, but at most half the heartbeat timeout, so
    the others learn of a drop long before the member would time out. Part of the
    contract: a client waits longer than this before it decides a silent peer's media
    path is dead, so that an outage on the peer's side reaches it first.
    """
    return min(2 * heartbeat_interval + 1.0, heartbeat_timeout / 2)


@dataclass(frozen=True, slots=True)
class MemberConnection:
    """Another member's socket dropped without leaving (``reconnecting``), or came back.

    The server sends ``reconnecting`` when a member's socket ends without ``leave`` while
    it is still a member, and ``connected`` when that member's socket resumes. A member
    that never comes back leaves with reason ``timeout`` after its heartbeat timeout, so
    clients keep its tile (on hold, marked) instead of removing it.
    """

    type: ClassVar[str] = "member-connection"
    user_id: str
    status: ConnectionStatus

    def to_wire(self) -> dict[str, Any]:
        """The ``member-connection`` frame."""
        return {"type": self.type, "userId": self.user_id, "status": self.status}


@dataclass(frozen=True, slots=True)
class SignalFrom:
    """``data`` relayed from the member ``sender`` (``from`` on the wire)."""

    type: ClassVar[str] = "signal"
    sender: str
    data: SignalData

    def to_wire(self) -> dict[str, Any]:
        """The ``signal`` frame a client receives."""
        return {"type": self.type, "from": self.sender, "data": self.data.to_wire()}


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to ``ping``, echoing its ``t``."""

    type: ClassVar[str] = "pong"
    t: float

    def to_wire(self) -> dict[str, Any]:
        """The ``pong`` frame."""
        return {"type": self.type, "t": self.t}


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """A refused frame, in the seed's error shape plus the refused frame's ``ref``."""

    type: ClassVar[str] = "error"
    module: str
    error_code: int
    error_msg: str
    ref: str | None = None

    @classmethod
    def from_error(cls, exc: TAvKitError, ref: str | None = None) -> ErrorFrame:
        """The frame reporting ``exc``; a :class:`FrameError` brings its own ``ref``."""
        if ref is None and isinstance(exc, FrameError):
            ref = exc.ref
        return cls(exc.module.value, exc.error_code, exc.message, ref)

    def to_error(self) -> TAvKitError:
        """The exception this frame reports (``ValueError`` if not a seed code)."""
        return TAvKitError.from_dict(
            {"module": self.module, "errorCode": self.error_code, "errorMsg": self.error_msg}
        )

    def to_wire(self) -> dict[str, Any]:
        """The ``error`` frame; ``ref`` only when the refused frame had an ``id``."""
        wire: dict[str, Any] = {
            "type": self.type,
            "module": self.module,
            "errorCode": self.error_code,
            "errorMsg": self.error_msg,
        }
        return _with_id(wire, self.ref, key="ref")


@dataclass(frozen=True, slots=True)
class Replaced:
    """The same user entered elsewhere; the server closes this socket with 4001."""

    type: ClassVar[str] = "replaced"

    def to_wire(self) -> dict[str, Any]:
        """The ``replaced`` frame."""
        return {"type": self.type}


@dataclass(frozen=True, slots=True)
class Removed:
    """An admin removed this member, it timed out or its credentials expired; close 4002."""

    type: ClassVar[str] = "removed"
    reason: str

    def to_wire(self) -> dict[str, Any]:
        """The ``removed`` frame."""
        return {"type": self.type, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class RoomClosed:
    """The session closed; the server closes with 4003."""

    type: ClassVar[str] = "room-closed"
    reason: str

    def to_wire(self) -> dict[str, Any]:
        """The ``room-closed`` frame."""
        return {"type": self.type, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A stored in-call message: the same object on the socket and in REST history.

    ``sender`` (``from`` on the wire) is the authenticated userId that sent it;
    ``text`` is set for kind ``text``, ``data`` (any JSON value) for ``custom``.
    """

    seq: int
    sender: str
    kind: MessageKind
    client_msg_id: str
    sent_at: float
    text: str | None = None
    data: Any = None

    def to_wire(self) -> dict[str, Any]:
        """``{"seq", "from", "kind", "text"|"data", "clientMsgId", "sentAt"}``."""
        wire: dict[str, Any] = {"seq": self.seq, "from": self.sender, "kind": self.kind}
        if self.kind == "text":
            wire["text"] = self.text
        else:
            wire["data"] = self.data
        wire["clientMsgId"] = self.client_msg_id
        wire["sentAt"] = self.sent_at
        return wire


@dataclass(frozen=True, slots=True)
class MessageFrom:
    """A stored message, to every member of the session (the sender's acknowledgement too)."""

    type: ClassVar[str] = "message"
    message: ChatMessage

    def to_wire(self) -> dict[str, Any]:
        """The ``message`` frame a client receives: the message object plus ``type``."""
        return {"type": self.type, **self.message.to_wire()}


@dataclass(frozen=True, slots=True)
class Synced:
    """Every message up to ``last_seq`` has been sent in reply to a ``sync``."""

    type: ClassVar[str] = "synced"
    last_seq: int

    def to_wire(self) -> dict[str, Any]:
        """The ``synced`` frame."""
        return {"type": self.type, "lastSeq": self.last_seq}


@dataclass(frozen=True, slots=True)
class Expiring:
    """This member's credentials end at ``expires_at``; renew before ``deadline`` or be removed.

    Both are Unix seconds by the server's clock. ``deadline`` is ``expires_at`` plus the
    server's renewal grace; past it the member is removed with reason ``expired``.
    Sent once per credential, ahead of its end (a minute at most), or at once when a
    socket opens on a credential that is already that close to its end.
    """

    type: ClassVar[str] = "expiring"
    expires_at: float
    deadline: float

    def to_wire(self) -> dict[str, Any]:
        """The ``expiring`` frame."""
        return {"type": self.type, "expiresAt": self.expires_at, "deadline": self.deadline}


@dataclass(frozen=True, slots=True)
class Renewed:
    """A ``renew`` was accepted: the new end, privileges, ICE servers and socket token.

    ``ice_servers`` carry freshly minted TURN credentials (``RTCIceServer`` shape) for
    connections made from now on; ``socket_token`` replaces the one from ``enter`` for
    resuming this socket (it carries the new end and privileges). ``ref`` is the
    ``renew`` frame's ``id``.
    """

    type: ClassVar[str] = "renewed"
    expires_at: float
    privileges: int
    ice_servers: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    socket_token: str = field(default="", repr=False)
    ref: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The ``renewed`` frame."""
        wire: dict[str, Any] = {
            "type": self.type,
            "expiresAt": self.expires_at,
            "privileges": self.privileges,
            "iceServers": [dict(server) for server in self.ice_servers],
            "socketToken": self.socket_token,
        }
        return _with_id(wire, self.ref, key="ref")


ServerMessage = (
    Welcome
    | MemberJoined
    | MemberLeft
    | MemberState
    | MemberConnection
    | SignalFrom
    | Pong
    | ErrorFrame
    | Replaced
    | Removed
    | RoomClosed
    | MessageFrom
    | Synced
    | Expiring
    | Renewed
    | MediaSignalFrom
    | MediaModeChanged
)


def encode(msg: ClientMessage | ServerMessage) -> str:
    """The JSON text of one frame, compact and without NaN/Infinity (not JSON)."""
    return json.dumps(msg.to_wire(), separators=(",", ":"), allow_nan=False)


def data_size(data: Any) -> int:
    """The size a ``custom`` message's ``data`` counts for: compact JSON, in UTF-8 bytes.

    Compact means no spaces after separators and non-ASCII characters as themselves
    (like ``JSON.stringify``); raises ``ValueError`` for NaN/Infinity (not JSON).
    """
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return len(text.encode("utf-8", "surrogatepass"))


def _with_id(wire: dict[str, Any], value: str | None, *, key: str = "id") -> dict[str, Any]:
    if value is not None:
        wire[key] = value
    return wire
