"""Typed bus events: their wire shape, the JSON round trip, and the strict parse."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tavkit.protocol import (
    CandidateData,
    ChatMessage,
    DescriptionData,
    IceCandidate,
    Member,
    SessionDescription,
)
from tavkit.protocol.calls import Callee, CallFrame, CallInfo
from tavkit.server import events
from tavkit.server.events import (
    WIRE_VERSION,
    CallEvent,
    Event,
    MediaModeEvent,
    MemberJoinedEvent,
    MemberLeftEvent,
    MemberLinkEvent,
    MemberStateEvent,
    MessageEvent,
    RoomClosedEvent,
    SignalEvent,
    SocketOpenEvent,
    UserSocketEvent,
    decode,
    encode,
    parse,
)

ALICE = Member("alice", joined_at=1_700_000_000.5, muted=True, camera=False, publish=0)
"""A member with no field at its default, so a field the bus dropped would show."""
OFFER = DescriptionData(SessionDescription("offer", "v=0\r\n"))
CANDIDATE = CandidateData(IceCandidate("candidate:1 1 udp 1 192.0.2.1 5000 typ host", "0", 0))
TEXT = ChatMessage(3, "alice", "text", "m3", 1_700_000_001.25, text="hi")
CUSTOM = ChatMessage(4, "bob", "custom", "m4", 1_700_000_002.0, data={"a": [1, None, "x"]})

EXAMPLES: list[tuple[Event, dict[str, Any]]] = [
    (
        MemberJoinedEvent(ALICE, "c1"),
        {"kind": "member-joined", "member": ALICE.to_wire(), "connectionId": "c1"},
    ),
    (
        MemberLeftEvent("alice", "timeout", "c1"),
        {"kind": "member-left", "userId": "alice", "reason": "timeout", "connectionId": "c1"},
    ),
    (
        MemberStateEvent("alice", muted=True, camera=False),
        {"kind": "member-state", "userId": "alice", "muted": True, "camera": False},
    ),
    (RoomClosedEvent("admin"), {"kind": "room-closed", "reason": "admin"}),
    (
        SignalEvent("alice", "bob", OFFER),
        {"kind": "signal", "from": "alice", "to": "bob", "data": OFFER.to_wire()},
    ),
    (
        SignalEvent("bob", "alice", CANDIDATE),
        {"kind": "signal", "from": "bob", "to": "alice", "data": CANDIDATE.to_wire()},
    ),
    (
        SignalEvent("bob", "alice", CandidateData(None)),
        {"kind": "signal", "from": "bob", "to": "alice", "data": {"candidate": None}},
    ),
    (MessageEvent(TEXT), {"kind": "message", "message": TEXT.to_wire()}),
    (MessageEvent(CUSTOM), {"kind": "message", "message": CUSTOM.to_wire()}),
    (
        SocketOpenEvent("alice", "c1", "s1"),
        {"kind": "socket-open", "userId": "alice", "connectionId": "c1", "socketId": "s1"},
    ),
    (
        SocketOpenEvent("alice", "c1"),
        {"kind": "socket-open", "userId": "alice", "connectionId": "c1"},
    ),
    (
        MemberLinkEvent("alice", "c1", up=False),
        {"kind": "member-link", "userId": "alice", "connectionId": "c1", "up": False},
    ),
    (
        MemberLinkEvent("alice", "c1", up=True),
        {"kind": "member-link", "userId": "alice", "connectionId": "c1", "up": True},
    ),
    (MediaModeEvent("sfu"), {"kind": "media-mode", "mediaMode": "sfu"}),
    (
        MemberLinkEvent("alice", "c1", up=False, socket_id="s1"),
        {
            "kind": "member-link",
            "userId": "alice",
            "connectionId": "c1",
            "up": False,
            "socketId": "s1",
        },
    ),
]
CALL = CallInfo(
    "0b0e8d4e-6f0e-4a53-9d39-6b1f0c1e2d3f",
    "alice",
    (Callee("bob", "accepted", answered_at=1_700_000_003.0), Callee("carol", "busy", "busy")),
    "video",
    4242,
    "accepted",
    1_700_000_000.0,
    1_700_000_030.0,
    data={"topic": ["x", 1]},
    answered_at=1_700_000_003.0,
)
EXAMPLES += [
    (
        CallEvent(CallFrame("call-accepted", CALL, "bob")),
        {
            "kind": "call",
            "frame": {"type": "call-accepted", "call": CALL.to_wire(), "userId": "bob"},
        },
    ),
    (
        CallEvent(CallFrame("call-ended", CALL, reason="hangup")),
        {
            "kind": "call",
            "frame": {"type": "call-ended", "call": CALL.to_wire(), "reason": "hangup"},
        },
    ),
    (
        UserSocketEvent("phone", "s1"),
        {"kind": "user-socket", "device": "phone", "socketId": "s1"},
    ),
]
IDS = [f"{event.kind}-{n}" for n, (event, _) in enumerate(EXAMPLES)]
OPTIONAL = {"socket-open": {"socketId"}, "member-link": {"socketId"}}
"""Fields a newer replica added without a new version: an older one's event lacks them."""


def versioned(wire: dict[str, Any]) -> dict[str, Any]:
    """``wire`` as it travels: with the version, first."""
    return {"v": WIRE_VERSION, **wire}


def refusal(wire: object) -> str:
    """The message of the ValueError ``parse(wire)`` raises."""
    with pytest.raises(ValueError) as caught:
        parse(wire)
    return str(caught.value)


def test_the_public_api_is_the_event_types_and_their_codec():
    """``__all__`` lists exactly the event classes, the union, the version and the codec."""
    assert set(events.__all__) == {
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
        "CallEvent",
        "WIRE_VERSION",
        "decode",
        "encode",
        "parse",
    }


@pytest.mark.parametrize(("event", "wire"), EXAMPLES, ids=IDS)
def test_each_event_has_its_documented_wire_shape(event, wire):
    """to_wire() gives exactly the keys and values other replicas expect, in order."""
    assert event.to_wire() == wire
    assert list(event.to_wire()) == list(wire)


@pytest.mark.parametrize(("event", "wire"), EXAMPLES, ids=IDS)
def test_each_event_survives_a_json_round_trip(event, wire):
    """to_wire -> JSON -> parse, and encode -> decode, give back an equal event."""
    assert parse(json.loads(json.dumps(versioned(event.to_wire())))) == event
    assert decode(encode(event)) == event
    assert decode(encode(event).encode()) == event


@pytest.mark.parametrize(("event", "wire"), EXAMPLES, ids=IDS)
def test_encoded_events_carry_the_wire_version_first(event, wire):
    """The text a broker carries is the documented shape behind ``"v": 1``."""
    assert WIRE_VERSION == 1
    assert list(json.loads(encode(event)).items()) == list(versioned(wire).items())


@pytest.mark.parametrize(
    "version", [2, 0, "1", 1.0, True, None], ids=["newer", "older", "str", "float", "bool", "null"]
)
def test_an_event_of_another_version_is_refused_naming_both(version):
    """A replica refuses an event of another version, saying which it got and which it reads."""
    wire = {"v": version, "kind": "room-closed", "reason": "empty"}
    message = refusal(wire)
    assert f"version {version!r}" in message
    assert f"reads version {WIRE_VERSION}" in message


def test_an_event_without_a_version_is_refused():
    """An event with no ``v`` (written before versions existed) is refused as such."""
    message = refusal({"kind": "room-closed", "reason": "empty"})
    assert "no version" in message
    assert f"reads version {WIRE_VERSION}" in message
    with pytest.raises(ValueError, match="no version"):
        decode('{"kind":"room-closed","reason":"empty"}')


def test_the_version_is_checked_before_the_kind():
    """An event of another version with a kind this replica does not know names the version."""
    assert "version 2" in refusal({"v": 2, "kind": "member-teleported"})


def test_every_kind_is_covered_by_the_examples():
    """Each kind the parser accepts has a round-trip example above."""
    assert {event.kind for event, _ in EXAMPLES} == set(events._PARSERS)


def test_a_socket_open_without_a_socket_id_still_parses():
    """An older replica's ``socket-open`` (no ``socketId``) reads back with none, not refused."""
    wire = versioned({"kind": "socket-open", "userId": "alice", "connectionId": "c1"})
    assert parse(wire) == SocketOpenEvent("alice", "c1", None)
    assert "socketId" not in SocketOpenEvent("alice", "c1").to_wire()


def test_unknown_extra_keys_are_ignored():
    """A field a newer replica adds does not break the parse."""
    wire = versioned({"kind": "room-closed", "reason": "empty", "replica": "b"})
    assert parse(wire) == RoomClosedEvent("empty")


@pytest.mark.parametrize(
    "wire",
    [{"kind": "member-moved", "userId": "alice"}, {"reason": "admin"}, {"kind": 7}],
    ids=["unknown", "absent", "not-a-string"],
)
def test_an_unknown_or_missing_kind_is_refused(wire):
    """A kind the parser does not know, or none at all, is a ValueError naming the kind."""
    assert "unknown kind" in refusal(versioned(wire))


def test_an_event_that_is_not_an_object_is_refused():
    """A JSON array or string is not an event."""
    assert "expected an object" in refusal([{"kind": "room-closed", "reason": "x"}])
    assert "expected an object" in refusal("room-closed")


@pytest.mark.parametrize(("event", "wire"), EXAMPLES, ids=IDS)
def test_every_missing_field_is_refused_by_name(event, wire):
    """Dropping any one field of any event is a ValueError that names that field."""
    for name in set(wire) - {"kind"} - OPTIONAL.get(event.kind, set()):
        partial = versioned({key: value for key, value in wire.items() if key != name})
        assert f"{event.kind}.{name}: missing" in refusal(partial)


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        ({"kind": "member-state", "userId": "a", "muted": 1, "camera": True}, "member-state.muted"),
        (
            {"kind": "member-state", "userId": 5, "muted": True, "camera": True},
            "member-state.userId",
        ),
        ({"kind": "member-left", "userId": "a", "reason": "gone", "connectionId": "c"}, "reason"),
        ({"kind": "socket-open", "userId": "a", "connectionId": ""}, "socket-open.connectionId"),
        (
            {"kind": "socket-open", "userId": "a", "connectionId": "c", "socketId": None},
            "socket-open.socketId",
        ),
        (
            {"kind": "socket-open", "userId": "a", "connectionId": "c", "socketId": 7},
            "socket-open.socketId",
        ),
        ({"kind": "room-closed", "reason": None}, "room-closed.reason"),
        ({"kind": "member-joined", "member": "alice", "connectionId": "c"}, "member-joined.member"),
        (
            {
                "kind": "member-joined",
                "member": {**ALICE.to_wire(), "joinedAt": True},
                "connectionId": "c",
            },
            "member-joined.member.joinedAt",
        ),
        (
            {
                "kind": "member-joined",
                "member": {**ALICE.to_wire(), "joinedAt": -1},
                "connectionId": "c",
            },
            "member-joined.member.joinedAt",
        ),
        (
            {
                "kind": "member-joined",
                "member": {**ALICE.to_wire(), "publish": "all"},
                "connectionId": "c",
            },
            "member-joined.member.publish",
        ),
        ({"kind": "signal", "from": "a", "to": "b", "data": {"sdp": "x"}}, "signal.data"),
        (
            {"kind": "signal", "from": "a", "to": "b", "data": {"candidate": {"candidate": 1}}},
            "signal.data.candidate.candidate",
        ),
        ({"kind": "message", "message": {**TEXT.to_wire(), "seq": "3"}}, "message.message.seq"),
        ({"kind": "message", "message": {**TEXT.to_wire(), "text": ""}}, "message.message.text"),
    ],
)
def test_a_mistyped_field_is_refused_by_name(wire, field):
    """A field of the wrong type or out of its range is a ValueError naming the field."""
    assert field in refusal(versioned(wire))


def test_decode_refuses_what_is_not_json():
    """Text that is not JSON, or uses NaN, is a ValueError like any bad event."""
    with pytest.raises(ValueError):
        decode('{"kind": "room-closed"')
    with pytest.raises(ValueError):
        decode('{"kind": "member-joined", "member": {"userId": "a", "joinedAt": NaN}}')
    with pytest.raises(ValueError):
        decode("[" * 100_000 + "]" * 100_000)


def test_encode_refuses_what_json_cannot_carry():
    """A message whose data is not JSON fails at encode, before any subscriber."""
    with pytest.raises(TypeError):
        encode(MessageEvent(ChatMessage(1, "a", "custom", "m", 0.0, data={1, 2})))
    with pytest.raises(ValueError):
        encode(MemberJoinedEvent(Member("a", float("nan")), "c"))


def test_events_are_frozen():
    """An event cannot be changed once built, so every consumer sees what was published."""
    event = RoomClosedEvent("admin")
    with pytest.raises(AttributeError):
        event.reason = "empty"  # type: ignore[misc]
