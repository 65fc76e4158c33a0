"""Strict parsing of signaling frames: text in, a typed message or a FrameError out.

The server runs every inbound frame through :func:`parse_client_frame`; the Python
client runs every frame it receives through :func:`parse_server_frame`. Both refuse
rather than guess: non-JSON is server 10003, anything else the contract does not
allow (wrong type, wrong size, unknown ``type``, a binary frame) is 10004, and the
message names the field. Unknown *extra* members of an object are ignored, so v1 can
grow optional fields without breaking older peers; the relayed ``signal.data`` is
rebuilt from the parsed values, so nothing unchecked is ever forwarded. The one
exception is the client's ``message`` frame, which is stored for good: any member
the contract does not list (``from``, ``seq``, ``sentAt`` above all) is refused.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any, Final, cast

from tavkit.errors import ErrorModule, ServerCode, ServerError
from tavkit.protocol._fields import Fields
from tavkit.protocol._jsonlimits import decode_json, json_problem
from tavkit.protocol.media import (
    MEDIA_LAYERS,
    MEDIA_MODES,
    MEDIA_PCS,
    MediaLayer,
    MediaLayers,
    MediaMode,
    MediaModeChanged,
    MediaPc,
    MediaSignalFrom,
    MediaSignalTo,
    MediaStream,
    StreamLayer,
)
from tavkit.protocol.messages import (
    CLIENT_MSG_ID_RE,
    CONNECTION_STATUSES,
    LEAVE_REASONS,
    MAX_CANDIDATE_BYTES,
    MAX_DATA_BYTES,
    MAX_ID_CHARS,
    MAX_SDP_BYTES,
    MAX_SEQ,
    MAX_TEXT_CHARS,
    MESSAGE_KINDS,
    PROTOCOL_VERSION,
    PUBLISH_ALL,
    CandidateData,
    ChatMessage,
    ClientMessage,
    ConnectionStatus,
    DescriptionData,
    ErrorFrame,
    Expiring,
    FrameError,
    IceCandidate,
    Leave,
    LeaveReason,
    Member,
    MemberConnection,
    MemberJoined,
    MemberLeft,
    MemberState,
    MessageFrom,
    MessageKind,
    Ping,
    Pong,
    Removed,
    Renew,
    Renewed,
    Replaced,
    RoomClosed,
    SendMessage,
    ServerMessage,
    SessionDescription,
    SignalData,
    SignalFrom,
    SignalTo,
    State,
    Sync,
    Synced,
    Welcome,
    data_size,
)

__all__ = [
    "parse_chat_message",
    "parse_client_frame",
    "parse_member",
    "parse_server_frame",
    "parse_signal_data",
]

_DESCRIPTION_TYPES: Final = frozenset({"offer", "answer", "rollback"})
_MAX_MID_BYTES: Final = 64
_MAX_UFRAG_BYTES: Final = 256
_MAX_REASON_BYTES: Final = 64
_MAX_ERROR_MSG_BYTES: Final = 4096
_MAX_MEMBERS: Final = 10_000
_MAX_SIG_BYTES: Final = 16 * 1024
"""A userSig or privateMapKey in ``renew``: what the credential headers allow."""
_MAX_ICE_SERVERS: Final = 32
_MAX_ICE_FIELD_BYTES: Final = 2048
_MAX_TOKEN_BYTES: Final = 2048
_PRIVILEGE_MAX: Final = 0xFFFF_FFFF
_MESSAGE_FIELDS: Final = frozenset({"type", "id", "clientMsgId", "kind", "text", "data"})
_SERVER_SET: Final = ("from", "seq", "sentAt")
_TYPE_RE: Final = re.compile(r"[a-z][a-z-]{0,31}")
_KINDS: Final = frozenset({"audio", "video"})
_LAYERS: Final = frozenset(MEDIA_LAYERS)
_MAX_LAYERS: Final = 100
"""Streams named in one ``media-layers``: twice an SFU room's 50 publishers."""


def parse_client_frame(text: str | bytes) -> ClientMessage:
    """Parse one frame a client sent; raise :class:`FrameError` (10003/10004) if refused.

    ``bytes`` stands for a binary WebSocket frame, which the contract refuses (10004).
    """
    frame = _load(text)
    parser = _CLIENT_PARSERS.get(frame.type_name)
    if parser is None:
        raise frame.top.fail("type", "one of " + ", ".join(sorted(_CLIENT_PARSERS)))
    return parser(frame.fields, frame.fields.ref)


def parse_server_frame(text: str | bytes) -> ServerMessage:
    """Parse one frame the server sent; raise :class:`FrameError` (10003/10004) if refused.

    A client should treat a refused server frame as a protocol bug to log, not a reason
    to hang up: a newer server may send frame types this client does not know yet.
    """
    frame = _load(text)
    parser = _SERVER_PARSERS.get(frame.type_name)
    if parser is None:
        raise frame.top.fail("type", "one of " + ", ".join(sorted(_SERVER_PARSERS)))
    return parser(frame.fields)


class _Frame:
    """A decoded frame: its fields (path named after its type) and that type."""

    def __init__(self, obj: object) -> None:
        top = Fields(obj, "frame")
        ref: str | None = None
        if top.obj.get("id") is not None:
            ref = top.string("id", max_bytes=4 * MAX_ID_CHARS, min_len=1)
            if len(ref) > MAX_ID_CHARS:
                raise top.fail("id", f"a string of at most {MAX_ID_CHARS} characters")
        top.ref = ref
        self.top = top
        self.type_name = top.string("type", max_bytes=64, min_len=1)
        self.fields = Fields(top.obj, self.type_name, ref=ref)


def _load(text: str | bytes) -> _Frame:
    """Decode a frame and hold it to :mod:`~tavkit.protocol._jsonlimits` before any field.

    Every frame, not only ``message``: whatever a member sends may be stored or relayed,
    and must read back. The refusal names the place after the frame's ``type``
    (``message.text: ...``) and carries its ``id`` when the frame has a usable one.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        raise FrameError(
            ServerCode.INVALID_PARAMETER, "binary frames are not accepted; send JSON text"
        )
    try:
        obj = decode_json(text, "frame")
    except ServerError as exc:
        raise FrameError(cast(ServerCode, exc.code), exc.message) from None
    problem = json_problem(obj, _type_of(obj) or "frame")
    if problem is not None:
        raise FrameError(cast(ServerCode, problem.code), problem.message, ref=_ref_of(obj))
    return _Frame(obj)


def _type_of(obj: object) -> str | None:
    """The frame's ``type`` if it is a plain name, to name places after it."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) and _TYPE_RE.fullmatch(kind) else None


def _ref_of(obj: object) -> str | None:
    """The frame's ``id`` if it could be echoed as ``ref`` (so the client can match it)."""
    ref = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(ref, str) and 1 <= len(ref) <= MAX_ID_CHARS:
        try:
            ref.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return ref
    return None


# --- client frames ---------------------------------------------------------------------


def _signal_to(f: Fields, ref: str | None) -> SignalTo:
    return SignalTo(to=f.user_id("to"), data=_signal_data(f.sub("data")), id=ref)


def _state(f: Fields, ref: str | None) -> State:
    screen = f.boolean("screen") if f.has("screen") else False
    return State(muted=f.boolean("muted"), camera=f.boolean("camera"), id=ref, screen=screen)


def _ping(f: Fields, ref: str | None) -> Ping:
    return Ping(t=f.number("t"), id=ref)


def _leave(f: Fields, ref: str | None) -> Leave:
    return Leave(id=ref)


def _send_message(f: Fields, ref: str | None) -> SendMessage:
    """The one frame parsed strictly: what it carries is stored and fanned out as is."""
    for name in _SERVER_SET:
        if f.has(name):
            raise f.fail(name, "nothing (the server sets it)")
    unknown = sorted(set(f.obj) - _MESSAGE_FIELDS)
    if unknown:
        raise f.fail(unknown[0], "no such field (clientMsgId, kind, text or data)")
    client_msg_id = _client_msg_id(f)
    kind, text, data = _body(f, strict=True)
    return SendMessage(client_msg_id, kind, text=text, data=data, id=ref)


def _sync(f: Fields, ref: str | None) -> Sync:
    return Sync(after=f.integer("after", minimum=0, maximum=MAX_SEQ), id=ref)


def _renew(f: Fields, ref: str | None) -> Renew:
    """``renew``: a userSig and an optional privateMapKey (their checks are the server's)."""
    user_sig = f.string("userSig", max_bytes=_MAX_SIG_BYTES, min_len=1)
    pmk = f.opt_string("privateMapKey", max_bytes=_MAX_SIG_BYTES)
    return Renew(user_sig, pmk or None, id=ref)


def _media_signal_to(f: Fields, ref: str | None) -> MediaSignalTo:
    pc = cast(MediaPc, f.choice("pc", MEDIA_PCS))
    subscription = f.opt_integer("subscription", minimum=1, maximum=MAX_SEQ)
    if pc == "subscribe" and subscription is None:
        raise f.fail("subscription", "the number of the subscription answered")
    return MediaSignalTo(pc, _signal_data(f.sub("data")), subscription, id=ref)


def _media_layers(f: Fields, ref: str | None) -> MediaLayers:
    subscription = f.integer("subscription", minimum=1, maximum=MAX_SEQ)
    layers: list[StreamLayer] = []
    for i, item in enumerate(f.array("layers", max_items=_MAX_LAYERS)):
        s = Fields(item, f"{f.path}.layers[{i}]", ref=ref)
        mid = s.string("mid", max_bytes=_MAX_MID_BYTES, min_len=1)
        if any(layer.mid == mid for layer in layers):
            raise s.fail("mid", "a mid not named before in this frame")
        layers.append(
            StreamLayer(mid, cast(MediaLayer, s.choice("layer", frozenset(MEDIA_LAYERS))))
        )
    return MediaLayers(subscription, tuple(layers), id=ref)


def _client_msg_id(f: Fields) -> str:
    value = f.raw("clientMsgId")
    if not isinstance(value, str) or not CLIENT_MSG_ID_RE.fullmatch(value):
        raise f.fail("clientMsgId", "1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


def _body(f: Fields, *, strict: bool) -> tuple[MessageKind, str | None, Any]:
    """``kind`` and its payload: ``text`` (1-4000 characters) or ``data`` (JSON, <= 8 KiB).

    ``strict`` (a client's frame) also refuses the payload of the other kind.
    """
    kind = cast(MessageKind, f.choice("kind", MESSAGE_KINDS))
    own, other = ("text", "data") if kind == "text" else ("data", "text")
    if strict and f.has(other):
        raise f.fail(other, f'nothing for kind "{kind}" (it carries {own})')
    if kind == "text":
        text = f.raw("text")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT_CHARS:
            raise f.fail("text", f"a string of 1 to {MAX_TEXT_CHARS} characters")
        _storable(f, "text", text)
        return kind, text, None
    data = f.raw("data")
    _storable(f, "data", data)
    try:
        size = data_size(data)
    except ValueError:  # 1e400 decodes to inf, which JSON cannot carry on
        raise f.fail("data", "a JSON value with finite numbers") from None
    if strict and size > MAX_DATA_BYTES:
        raise f.fail("data", f"a JSON value of at most {MAX_DATA_BYTES} bytes serialised")
    return kind, None, data


def _storable(f: Fields, name: str, value: object) -> None:
    """A stored message's payload must read back (:mod:`~tavkit.protocol._jsonlimits`).

    A frame was checked whole on arrival; this holds a message object that arrives
    another way (REST history, a bus event) to the same rule.
    """
    problem = json_problem(value, f"{f.path}.{name}")
    if problem is not None:
        raise FrameError(cast(ServerCode, problem.code), problem.message, ref=f.ref)


_CLIENT_PARSERS: Final[dict[str, Callable[[Fields, str | None], ClientMessage]]] = {
    "signal": _signal_to,
    "state": _state,
    "ping": _ping,
    "leave": _leave,
    "message": _send_message,
    "sync": _sync,
    "renew": _renew,
    "media-signal": _media_signal_to,
    "media-layers": _media_layers,
}


def parse_signal_data(data: object, path: str = "signal.data") -> SignalData:
    """Check one ``signal.data`` value (already decoded JSON) and return it typed.

    For data that arrives outside a frame, such as the server's bus events.
    """
    return _signal_data(Fields(data, path))


def _signal_data(d: Fields) -> SignalData:
    """``signal.data``: exactly one of a description or a candidate (``null`` = the end)."""
    if d.has("description") == d.has("candidate"):
        raise d.fail("", 'an object with exactly one of "description" or "candidate"')
    if d.has("description"):
        desc = d.sub("description")
        kind = desc.choice("type", _DESCRIPTION_TYPES)
        # A rollback carries no SDP (browsers send ""); offers and answers must.
        sdp = desc.string("sdp", max_bytes=MAX_SDP_BYTES, min_len=0 if kind == "rollback" else 1)
        return DescriptionData(SessionDescription(cast(Any, kind), sdp))
    if d.raw("candidate") is None:
        return CandidateData(None)
    c = d.sub("candidate")
    line = c.string("candidate", max_bytes=MAX_CANDIDATE_BYTES)
    if line and not line.startswith("candidate:"):
        raise c.fail("candidate", 'an empty string or a string starting with "candidate:"')
    mid = c.opt_string("sdpMid", max_bytes=_MAX_MID_BYTES)
    index = c.opt_integer("sdpMLineIndex", minimum=0, maximum=65535)
    if line and mid is None and index is None:
        # addIceCandidate() throws a TypeError for this; refuse it here instead.
        raise c.fail("sdpMid", "a string when sdpMLineIndex is null")
    ufrag = c.opt_string("usernameFragment", max_bytes=_MAX_UFRAG_BYTES)
    return CandidateData(IceCandidate(line, mid, index, ufrag))


# --- server frames ---------------------------------------------------------------------


def _member(f: Fields) -> Member:
    return Member(
        user_id=f.user_id("userId"),
        joined_at=f.number("joinedAt", minimum=0),
        muted=f.boolean("muted"),
        camera=f.boolean("camera"),
        publish=_publish_bits(f),
    )


def _publish_bits(f: Fields) -> int:
    """``publish``: the member's send bits; absent means all (a server before it existed)."""
    publish = f.opt_integer("publish", minimum=0, maximum=PUBLISH_ALL)
    if publish is None:
        return PUBLISH_ALL
    if publish & ~PUBLISH_ALL:
        raise f.fail("publish", f"a combination of the send bits {PUBLISH_ALL}")
    return publish


def _welcome(f: Fields) -> Welcome:
    v = f.raw("v")
    if isinstance(v, bool) or v != PROTOCOL_VERSION:
        raise f.fail("v", f"{PROTOCOL_VERSION} (this side speaks protocol v{PROTOCOL_VERSION})")
    room_uuid = f.string("roomUuid", max_bytes=36, min_len=36)
    try:
        canonical = str(uuid.UUID(room_uuid)) == room_uuid
    except ValueError:
        canonical = False
    if not canonical:
        raise f.fail("roomUuid", "a canonical lowercase UUID")
    members = f.array("members", max_items=_MAX_MEMBERS)
    return Welcome(
        room_uuid=room_uuid,
        user_id=f.user_id("userId"),
        connection_id=f.string("connectionId", max_bytes=MAX_ID_CHARS, min_len=1),
        members=tuple(
            _member(Fields(m, f"{f.path}.members[{i}]", ref=f.ref)) for i, m in enumerate(members)
        ),
        heartbeat_interval=f.number("heartbeatInterval", minimum=0),
        heartbeat_timeout=f.number("heartbeatTimeout", minimum=0),
        resumed=f.boolean("resumed"),
        last_seq=f.opt_integer("lastSeq", minimum=0, maximum=MAX_SEQ) or 0,
        # Absent from a server before the SFU: a mesh.
        media_mode=cast(MediaMode, f.choice("mediaMode", frozenset(MEDIA_MODES)))
        if f.has("mediaMode")
        else "mesh",
    )


def _media_signal_from(f: Fields) -> MediaSignalFrom:
    pc = cast(MediaPc, f.choice("pc", MEDIA_PCS))
    subscription = f.opt_integer("subscription", minimum=1, maximum=MAX_SEQ)
    streams: list[MediaStream] = []
    if subscription is not None:
        for i, item in enumerate(f.array("streams", max_items=_MAX_MEMBERS)):
            s = Fields(item, f"{f.path}.streams[{i}]", ref=f.ref)
            mid = s.string("mid", max_bytes=_MAX_MID_BYTES, min_len=1)
            kind = s.choice("kind", _KINDS)
            screen = s.boolean("screen") if s.has("screen") else False
            if screen and kind != "video":
                raise s.fail("screen", "true only on a video stream")
            streams.append(MediaStream(mid, s.user_id("userId"), kind, screen))
    if not f.has("data") and streams:
        raise f.fail("data", "the subscription's offer")
    data = _signal_data(f.sub("data")) if f.has("data") else None
    if data is None and subscription is None and pc != "publish":
        raise f.fail("data", "a description or a candidate")
    return MediaSignalFrom(pc, data, subscription, tuple(streams))


def _member_left(f: Fields) -> MemberLeft:
    reason = cast(LeaveReason, f.choice("reason", LEAVE_REASONS))
    return MemberLeft(user_id=f.user_id("userId"), reason=reason)


def _member_state(f: Fields) -> MemberState:
    return MemberState(
        user_id=f.user_id("userId"),
        muted=f.boolean("muted"),
        camera=f.boolean("camera"),
        screen=f.boolean("screen") if f.has("screen") else False,
    )


def _member_connection(f: Fields) -> MemberConnection:
    status = cast(ConnectionStatus, f.choice("status", CONNECTION_STATUSES))
    return MemberConnection(user_id=f.user_id("userId"), status=status)


def parse_member(obj: object, path: str = "member") -> Member:
    """Check one member object (a bus event's, a REST roster's) and return it typed."""
    return _member(Fields(obj, path))


def parse_chat_message(obj: object, path: str = "message") -> ChatMessage:
    """Check one stored message object (REST history, a bus event) and return it typed."""
    return _chat_message(Fields(obj, path))


def _chat_message(f: Fields) -> ChatMessage:
    kind, text, data = _body(f, strict=False)
    return ChatMessage(
        seq=f.integer("seq", minimum=1, maximum=MAX_SEQ),
        sender=f.user_id("from"),
        kind=kind,
        client_msg_id=_client_msg_id(f),
        sent_at=f.number("sentAt", minimum=0),
        text=text,
        data=data,
    )


def _error(f: Fields) -> ErrorFrame:
    modules = frozenset(m.value for m in ErrorModule)
    return ErrorFrame(
        module=f.choice("module", modules),
        error_code=f.integer("errorCode", minimum=-(2**31), maximum=2**31 - 1),
        error_msg=f.string("errorMsg", max_bytes=_MAX_ERROR_MSG_BYTES),
        ref=f.opt_string("ref", max_bytes=MAX_ID_CHARS),
    )


def _renewed(f: Fields) -> Renewed:
    # The user socket's answer has no ICE servers and an empty socketToken (it has none).
    servers = f.array("iceServers", max_items=_MAX_ICE_SERVERS) if f.has("iceServers") else []
    return Renewed(
        expires_at=f.number("expiresAt", minimum=0),
        privileges=f.integer("privileges", minimum=0, maximum=_PRIVILEGE_MAX),
        ice_servers=tuple(
            _ice_server(Fields(s, f"{f.path}.iceServers[{i}]", ref=f.ref))
            for i, s in enumerate(servers)
        ),
        socket_token=f.opt_string("socketToken", max_bytes=_MAX_TOKEN_BYTES) or "",
        ref=f.opt_string("ref", max_bytes=MAX_ID_CHARS),
    )


def _ice_server(f: Fields) -> dict[str, Any]:
    """One ``RTCIceServer``: ``urls`` (a string or strings), optional username/credential."""
    urls = f.raw("urls")
    if isinstance(urls, str):
        urls = [urls]
    if (
        not isinstance(urls, list)
        or not 1 <= len(urls) <= _MAX_ICE_SERVERS
        or not all(isinstance(u, str) and 0 < len(u) <= _MAX_ICE_FIELD_BYTES for u in urls)
    ):
        raise f.fail("urls", "a URL string or a non-empty array of them")
    server: dict[str, Any] = {"urls": list(urls)}
    for name in ("username", "credential"):
        value = f.opt_string(name, max_bytes=_MAX_ICE_FIELD_BYTES)
        if value is not None:
            server[name] = value
    return server


_SERVER_PARSERS: Final[dict[str, Callable[[Fields], ServerMessage]]] = {
    "welcome": _welcome,
    "member-joined": lambda f: MemberJoined(_member(f.sub("member"))),
    "member-left": _member_left,
    "member-state": _member_state,
    "member-connection": _member_connection,
    "signal": lambda f: SignalFrom(f.user_id("from"), _signal_data(f.sub("data"))),
    "pong": lambda f: Pong(f.number("t")),
    "error": _error,
    "replaced": lambda f: Replaced(),
    "removed": lambda f: Removed(f.string("reason", max_bytes=_MAX_REASON_BYTES, min_len=1)),
    "room-closed": lambda f: RoomClosed(f.string("reason", max_bytes=_MAX_REASON_BYTES, min_len=1)),
    "message": lambda f: MessageFrom(_chat_message(f)),
    "synced": lambda f: Synced(f.integer("lastSeq", minimum=0, maximum=MAX_SEQ)),
    "expiring": lambda f: Expiring(
        f.number("expiresAt", minimum=0), f.number("deadline", minimum=0)
    ),
    "renewed": _renewed,
    "media-signal": _media_signal_from,
    "media-mode": lambda f: MediaModeChanged(
        cast(MediaMode, f.choice("mediaMode", frozenset(MEDIA_MODES)))
    ),
}
