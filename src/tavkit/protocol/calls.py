"""Calls on the wire, without I/O: the call object, its request, the user socket's frames.

A call rings one or more callees; each callee has an outcome of their own, and the
call has a state (``docs/protocol.md`` section 7). The server sends the user socket's
frames (``/v1/ws/user``) and both clients read them with :func:`parse_call_frame`;
``POST /v1/calls`` bodies are read with :func:`parse_call_request`. Everything here is
a frozen value with ``to_wire``, checked strictly on the way in like every frame.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, cast

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol._fields import Fields
from tavkit.protocol.messages import FrameError, data_size
from tavkit.protocol.rooms import RoomId, parse_room_id

__all__ = [
    "CALLEE_OUTCOMES",
    "CALL_FRAME_TYPES",
    "CALL_MEDIA",
    "CALL_STATES",
    "MAX_CALLEES",
    "MAX_CALL_DATA_BYTES",
    "MAX_CALL_TIMEOUT",
    "MAX_DECLINE_REASON_CHARS",
    "USER_SUBPROTOCOL_PREFIX",
    "CallFrame",
    "CallFrameType",
    "CallInfo",
    "CallMedia",
    "CallRequest",
    "CallState",
    "Callee",
    "CalleeOutcome",
    "UserWelcome",
    "parse_call",
    "parse_call_frame",
    "parse_call_request",
    "parse_user_welcome",
    "user_subprotocol",
]

CallMedia = Literal["video", "audio"]
CALL_MEDIA: Final[frozenset[str]] = frozenset({"video", "audio"})
CallState = Literal["ringing", "accepted", "declined", "busy", "timeout", "cancelled", "ended"]
CALL_STATES: Final[frozenset[str]] = frozenset(
    {"ringing", "accepted", "declined", "busy", "timeout", "cancelled", "ended"}
)
"""``ringing`` until a callee accepts (``accepted``) or nobody can any more; ``ended``
when its room empties or the caller hangs up after an accept."""
CalleeOutcome = Literal["ringing", "accepted", "declined", "busy", "timeout", "cancelled"]
CALLEE_OUTCOMES: Final[frozenset[str]] = frozenset(
    {"ringing", "accepted", "declined", "busy", "timeout", "cancelled"}
)
CallFrameType = Literal[
    "call-invite",
    "call-accepted",
    "call-declined",
    "call-timeout",
    "call-cancelled",
    "call-ended",
]
CALL_FRAME_TYPES: Final[frozenset[str]] = frozenset(
    {
        "call-invite",
        "call-accepted",
        "call-declined",
        "call-timeout",
        "call-cancelled",
        "call-ended",
    }
)

MAX_CALLEES: Final = 8
"""Callees per call: a mesh room holds few people, and each one is rung."""
MAX_CALL_DATA_BYTES: Final = 4 * 1024
"""A call's ``data`` (the caller's own JSON, handed to every callee), compact UTF-8 bytes."""
MAX_CALL_TIMEOUT: Final = 600.0
"""The longest a call may ring, in seconds."""
MAX_DECLINE_REASON_CHARS: Final = 64
_MAX_CALL_ID_CHARS: Final = 36
USER_SUBPROTOCOL_PREFIX: Final = "tavkit.user."
"""The user socket's credentials travel as the subprotocol ``tavkit.user.<...>``."""


def user_subprotocol(
    sdk_app_id: int, user_id: str, user_sig: str, device: str, after: int | None = None
) -> str:
    """The subprotocol that opens a user socket: base64url (unpadded) of the JSON
    ``{"sdkAppId", "userId", "userSig", "device", "after"?}`` after
    :data:`USER_SUBPROTOCOL_PREFIX`.

    ``after`` resumes: the highest ``seq`` the client has (a frame's, or the last
    welcome's ``lastSeq``); the server replays what came after it. A subprotocol is a
    handshake header, in no access log, unlike a URL.
    """
    creds: dict[str, Any] = {
        "sdkAppId": sdk_app_id,
        "userId": user_id,
        "userSig": user_sig,
        "device": device,
    }
    if after is not None:
        creds["after"] = after
    raw = json.dumps(creds, separators=(",", ":")).encode()
    return USER_SUBPROTOCOL_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Callee:
    """One callee of a call and what became of their ring."""

    user_id: str
    outcome: CalleeOutcome
    reason: str | None = None
    """Why they declined (``busy`` for a busy callee), if they gave a reason."""
    answered_at: float | None = None
    """When they accepted."""

    def to_wire(self) -> dict[str, Any]:
        """``{"userId", "outcome", "reason", "answeredAt"}``."""
        return {
            "userId": self.user_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "answeredAt": self.answered_at,
        }


@dataclass(frozen=True, slots=True)
class CallInfo:
    """A call as its participants see it."""

    call_id: str
    """The call's UUID (lowercase text)."""
    caller: str
    callees: tuple[Callee, ...]
    media: CallMedia
    room_id: RoomId
    """The call's room: a number, or a string room (TRTC's ``strRoomId``)."""
    state: CallState
    created_at: float
    ring_until: float
    """When the callees still ringing stop ringing (``timeout``)."""
    data: Any = None
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The call object (``docs/protocol.md`` section 7)."""
        return {
            "callId": self.call_id,
            "caller": self.caller,
            "callees": [c.to_wire() for c in self.callees],
            "media": self.media,
            "roomId": self.room_id,
            "state": self.state,
            "createdAt": self.created_at,
            "ringUntil": self.ring_until,
            "data": self.data,
            "answeredAt": self.answered_at,
            "endedAt": self.ended_at,
            "endReason": self.end_reason,
        }

    def callee(self, user_id: str) -> Callee | None:
        """``user_id``'s entry, if they are a callee."""
        return next((c for c in self.callees if c.user_id == user_id), None)

    @property
    def participants(self) -> tuple[str, ...]:
        """The caller and every callee."""
        return (self.caller, *(c.user_id for c in self.callees))


@dataclass(frozen=True, slots=True)
class CallFrame:
    """A user socket frame about one call: ``type`` says what happened, ``call`` is it now.

    ``user_id`` is who acted (the callee who accepted, declined or timed out);
    ``reason`` is their decline reason or the call's end reason. ``seq`` is the id of
    the change's journal event: per app, increasing, what a resuming socket's ``after``
    counts in (None only on a frame made outside a transaction, in tests).
    """

    type: CallFrameType
    call: CallInfo
    user_id: str | None = None
    reason: str | None = None
    seq: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """The frame: ``{"type", "call", "userId"?, "reason"?, "seq"?}``."""
        wire: dict[str, Any] = {"type": self.type, "call": self.call.to_wire()}
        if self.user_id is not None:
            wire["userId"] = self.user_id
        if self.reason is not None:
            wire["reason"] = self.reason
        if self.seq is not None:
            wire["seq"] = self.seq
        return wire


@dataclass(frozen=True, slots=True)
class UserWelcome:
    """The user socket's first frame: who it is and the invitations still ringing for them.

    ``last_seq`` is where the socket's frames start (every later frame has a higher
    ``seq``). ``resumed`` is true when the socket asked to resume (``after``) and every
    frame it missed follows the welcome (replayed, invitations excepted: those still
    ringing are in ``ringing``); false after an ``after`` means they cannot be replayed
    and the client must re-read its calls (``GET /v1/calls``).
    """

    type: ClassVar[str] = "user-welcome"
    user_id: str
    device: str
    ringing: tuple[CallInfo, ...]
    last_seq: int = 0
    resumed: bool = False

    def to_wire(self) -> dict[str, Any]:
        """``{"type", "userId", "device", "ringing", "lastSeq", "resumed"}``."""
        return {
            "type": self.type,
            "userId": self.user_id,
            "device": self.device,
            "ringing": [c.to_wire() for c in self.ringing],
            "lastSeq": self.last_seq,
            "resumed": self.resumed,
        }


@dataclass(frozen=True, slots=True)
class CallRequest:
    """A checked ``POST /v1/calls`` body."""

    callees: tuple[str, ...]
    media: CallMedia
    room_id: RoomId | None = None
    timeout: float | None = None
    data: Any = None


def _call_id(f: Fields, name: str) -> str:
    value = f.string(name, max_bytes=_MAX_CALL_ID_CHARS, min_len=_MAX_CALL_ID_CHARS)
    try:
        if str(uuid.UUID(value)) != value:
            raise ValueError(value)
    except ValueError:
        raise f.fail(name, "a lowercase UUID") from None
    return value


def _opt_number(f: Fields, name: str) -> float | None:
    return None if f.obj.get(name) is None else f.number(name, minimum=0)


def parse_callee(obj: object, path: str) -> Callee:
    """One callee object; :class:`FrameError` 10004 naming the field if it is not one."""
    f = Fields(obj, path)
    return Callee(
        f.user_id("userId"),
        cast(CalleeOutcome, f.choice("outcome", CALLEE_OUTCOMES)),
        f.opt_string("reason", max_bytes=MAX_DECLINE_REASON_CHARS * 4),
        _opt_number(f, "answeredAt"),
    )


def parse_call(obj: object, path: str = "call") -> CallInfo:
    """One call object; :class:`FrameError` 10004 naming the field if it is not one."""
    f = Fields(obj, path)
    callees = f.array("callees", max_items=MAX_CALLEES)
    return CallInfo(
        call_id=_call_id(f, "callId"),
        caller=f.user_id("caller"),
        callees=tuple(parse_callee(c, f"{path}.callees[{i}]") for i, c in enumerate(callees)),
        media=cast(CallMedia, f.choice("media", CALL_MEDIA)),
        room_id=_room(f, "roomId"),
        state=cast(CallState, f.choice("state", CALL_STATES)),
        created_at=f.number("createdAt", minimum=0),
        ring_until=f.number("ringUntil", minimum=0),
        data=f.obj.get("data"),
        answered_at=_opt_number(f, "answeredAt"),
        ended_at=_opt_number(f, "endedAt"),
        end_reason=f.opt_string("endReason", max_bytes=64),
    )


def parse_call_frame(obj: object) -> CallFrame:
    """A ``call-*`` frame from the user socket; :class:`FrameError` if it is not one."""
    f = Fields(obj, "frame")
    kind = cast(CallFrameType, f.choice("type", CALL_FRAME_TYPES))
    return CallFrame(
        kind,
        parse_call(f.raw("call"), "frame.call"),
        None if f.obj.get("userId") is None else f.user_id("userId"),
        f.opt_string("reason", max_bytes=MAX_DECLINE_REASON_CHARS * 4),
        _opt_seq(f, "seq"),
    )


def parse_call_request(obj: object, *, max_callees: int = MAX_CALLEES) -> CallRequest:
    """A ``POST /v1/calls`` body, checked: 10004 naming the field when one is wrong.

    ``callees``: 1 to ``max_callees`` distinct userIds; ``media``: video or audio;
    ``roomId``: a room (1..2^32-1, or a string room) if given; ``timeout``: 1 to
    :data:`MAX_CALL_TIMEOUT` seconds if given; ``data``: any JSON of at most
    :data:`MAX_CALL_DATA_BYTES`.
    """
    f = Fields(obj, "body")
    raw = f.array("callees", max_items=max_callees)
    if not raw:
        raise f.fail("callees", f"1 to {max_callees} userIds")
    callees = tuple(
        Fields({"userId": c}, f"body.callees[{i}]").user_id("userId") for i, c in enumerate(raw)
    )
    if len(set(callees)) != len(callees):
        raise f.fail("callees", "distinct userIds")
    media = cast(CallMedia, f.choice("media", CALL_MEDIA))
    room_id = None if f.obj.get("roomId") is None else _room(f, "roomId")
    timeout = None
    if f.obj.get("timeout") is not None:
        timeout = f.number("timeout", minimum=0.05)
        if timeout > MAX_CALL_TIMEOUT:
            raise f.fail("timeout", f"a number of seconds up to {MAX_CALL_TIMEOUT:g}")
    data = f.obj.get("data")
    try:
        size = data_size(data)
    except (ValueError, TypeError):
        raise f.fail("data", "JSON") from None
    if size > MAX_CALL_DATA_BYTES:
        raise FrameError(
            ServerCode.INVALID_PARAMETER,
            f"body.data: at most {MAX_CALL_DATA_BYTES} bytes of JSON, got {size}",
        )
    return CallRequest(callees, media, room_id, timeout, data)


def parse_user_welcome(obj: object) -> UserWelcome:
    """The user socket's ``user-welcome``; :class:`FrameError` if it is not one."""
    f = Fields(obj, "frame")
    if f.raw("type") != UserWelcome.type:
        raise f.fail("type", UserWelcome.type)
    ringing = f.array("ringing", max_items=1000)
    resumed = f.obj.get("resumed", False)
    if not isinstance(resumed, bool):
        raise f.fail("resumed", "a boolean")
    return UserWelcome(
        f.user_id("userId"),
        f.user_id("device"),
        tuple(parse_call(c, f"frame.ringing[{i}]") for i, c in enumerate(ringing)),
        _opt_seq(f, "lastSeq") or 0,
        resumed,
    )


def _opt_seq(f: Fields, name: str) -> int | None:
    """An optional sequence number: an integer from 0 up."""
    value = f.obj.get(name)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise f.fail(name, "an integer from 0")
    return value


def _room(f: Fields, name: str) -> RoomId:
    """``f``'s room field, a number or a string room; 10004 naming it when it is neither."""
    try:
        return parse_room_id(f.raw(name), f"{f.path}.{name}")
    except ServerError as exc:
        raise FrameError(ServerCode.INVALID_PARAMETER, exc.message, ref=f.ref) from None
