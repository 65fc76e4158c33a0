"""The signaling frames: encoding, strict parsing of both directions, the token bucket."""

from __future__ import annotations

import json
from typing import Any

import pytest

import tavkit.protocol as protocol
from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import (
    MAX_CANDIDATE_BYTES,
    MAX_SDP_BYTES,
    CandidateData,
    DescriptionData,
    ErrorFrame,
    FrameError,
    IceCandidate,
    Leave,
    Member,
    MemberConnection,
    MemberJoined,
    MemberLeft,
    MemberState,
    Ping,
    Pong,
    Removed,
    Replaced,
    RoomClosed,
    ServerMessage,
    SessionDescription,
    SignalFrom,
    SignalTo,
    State,
    TokenBucket,
    Welcome,
    encode,
    parse_client_frame,
    parse_server_frame,
)

CANDIDATE = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0"
OFFER = {"description": {"type": "offer", "sdp": "v=0\r\n"}}
UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def frame(**fields: Any) -> str:
    """A client frame as JSON text."""
    return json.dumps(fields)


def refused(text: str | bytes, code: ServerCode = ServerCode.INVALID_PARAMETER) -> FrameError:
    """Parse ``text`` as a client frame, expecting it to be refused with ``code``."""
    with pytest.raises(FrameError) as info:
        parse_client_frame(text)
    assert info.value.code is code
    return info.value


# --- the public surface ----------------------------------------------------------------


def test_all_is_exactly_the_public_api() -> None:
    """``tavkit.protocol.__all__`` lists every public name and nothing else."""
    # "@py_builtins" and "@pytest_ar" appear when pytest rewrites the package's asserts,
    # as it does for every module of a distribution that registers a plugin (pytest11).
    public = {n for n in vars(protocol) if not n.startswith(("_", "@"))}
    modules = {"messages", "parsing", "ratelimit", "rooms", "sdp", "jsonlimits", "timeline"}
    modules |= {"calls", "media"}
    assert set(protocol.__all__) == public - modules
    assert protocol.PROTOCOL_VERSION == 1


def test_frame_error_is_a_server_error_with_ref() -> None:
    """A refused frame is a plain ServerError to whoever ignores ``ref``."""
    exc = refused(frame(type="nope", id="42"))
    assert isinstance(exc, ServerError)
    assert exc.ref == "42"
    assert exc.to_dict()["module"] == "server"


# --- client frames: valid --------------------------------------------------------------


def test_signal_with_description_parses_and_round_trips() -> None:
    """An offer to a member parses to SignalTo and encodes back to the same JSON."""
    text = frame(type="signal", to="bob", data=OFFER, id="m1")
    msg = parse_client_frame(text)
    assert msg == SignalTo("bob", DescriptionData(SessionDescription("offer", "v=0\r\n")), "m1")
    assert json.loads(encode(msg)) == json.loads(text)


def test_signal_with_candidate_parses_browser_to_json() -> None:
    """RTCIceCandidate.toJSON(), usernameFragment included, is accepted and kept."""
    cand = {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "ab"}
    msg = parse_client_frame(frame(type="signal", to="bob", data={"candidate": cand}))
    assert msg == SignalTo("bob", CandidateData(IceCandidate(CANDIDATE, "0", 0, "ab")))
    assert isinstance(msg, SignalTo)
    assert msg.to_wire()["data"] == {"candidate": cand}


@pytest.mark.parametrize(
    "data",
    [
        {"candidate": None},
        {"candidate": {"candidate": "", "sdpMid": None, "sdpMLineIndex": None}},
        {"description": {"type": "rollback", "sdp": ""}},
        {"description": {"type": "answer", "sdp": "v=0\r\n"}},
        {"candidate": {"candidate": CANDIDATE, "sdpMid": None, "sdpMLineIndex": 1}},
    ],
)
def test_signal_data_forms_accepted(data: dict[str, Any]) -> None:
    """End of candidates (both forms), rollback, answer and index-only candidates pass."""
    msg = parse_client_frame(frame(type="signal", to="a.b@c-d_e", data=data))
    assert isinstance(msg, SignalTo)


def test_state_ping_leave_parse() -> None:
    """state, ping and leave parse to their values and keep the id."""
    assert parse_client_frame(frame(type="state", muted=True, camera=False)) == State(True, False)
    assert parse_client_frame(frame(type="ping", t=12.5, id="p")) == Ping(12.5, "p")
    assert parse_client_frame(frame(type="ping", t=3)) == Ping(3.0)
    assert parse_client_frame(frame(type="leave")) == Leave()
    assert parse_client_frame(frame(type="leave", id="x" * 64)) == Leave("x" * 64)


def test_unknown_extra_fields_are_ignored() -> None:
    """Optional fields a newer peer adds do not break parsing (and are not relayed)."""
    msg = parse_client_frame(frame(type="state", muted=False, camera=True, extra=[1]))
    assert msg == State(False, True)


def test_sdp_at_the_limit_is_accepted() -> None:
    """An SDP of exactly 60 KiB is within the contract."""
    data = {"description": {"type": "offer", "sdp": "x" * MAX_SDP_BYTES}}
    assert isinstance(parse_client_frame(frame(type="signal", to="b", data=data)), SignalTo)


# --- client frames: refused ------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "{", "hello", '{"type": "ping", "t": NaN}', "[" * 100_000])
def test_non_json_is_10003(text: str) -> None:
    """Text that is not JSON (NaN and deep nesting included) is refused with 10003."""
    refused(text, ServerCode.JSON_DECODE)


def test_binary_frame_is_10004() -> None:
    """A binary frame is refused with 10004, saying to send text."""
    assert "binary" in refused(b'{"type":"ping","t":1}').message


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({}, "frame.type"),
        ({"type": 5}, "frame.type"),
        ({"type": "dance"}, "frame.type"),
        ({"type": "welcome"}, "frame.type"),
        ({"type": "ping", "t": 1, "id": 7}, "frame.id"),
        ({"type": "ping", "t": 1, "id": ""}, "frame.id"),
        ({"type": "ping", "t": 1, "id": "x" * 65}, "frame.id"),
        ({"type": "ping"}, "ping.t"),
        ({"type": "ping", "t": "now"}, "ping.t"),
        ({"type": "ping", "t": True}, "ping.t"),
        ({"type": "state", "muted": 1, "camera": True}, "state.muted"),
        ({"type": "state", "muted": False}, "state.camera"),
        ({"type": "signal", "data": OFFER}, "signal.to"),
        ({"type": "signal", "to": "", "data": OFFER}, "signal.to"),
        ({"type": "signal", "to": "a" * 65, "data": OFFER}, "signal.to"),
        ({"type": "signal", "to": "bad name", "data": OFFER}, "signal.to"),
        ({"type": "signal", "to": ["bob"], "data": OFFER}, "signal.to"),
        ({"type": "signal", "to": "bob"}, "signal.data"),
        ({"type": "signal", "to": "bob", "data": "sdp"}, "signal.data"),
        ({"type": "signal", "to": "bob", "data": {}}, "signal.data"),
        ({"type": "signal", "to": "bob", "data": {**OFFER, "candidate": None}}, "signal.data"),
    ],
)
def test_bad_shapes_are_10004_naming_the_field(fields: dict[str, Any], needle: str) -> None:
    """Missing, wrong-typed or out-of-range fields are 10004 and the message names the field."""
    assert needle in refused(json.dumps(fields)).message


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"description": {"type": "pranswer", "sdp": "v=0"}}, "description.type"),
        ({"description": {"type": "offer"}}, "description.sdp"),
        ({"description": {"type": "offer", "sdp": ""}}, "description.sdp"),
        ({"description": {"type": "offer", "sdp": 1}}, "description.sdp"),
        ({"description": {"type": "offer", "sdp": "x" * (MAX_SDP_BYTES + 1)}}, "description.sdp"),
        ({"description": "v=0"}, "data.description"),
        ({"candidate": "candidate:1"}, "data.candidate"),
        ({"candidate": {"sdpMid": "0"}}, "candidate.candidate"),
        ({"candidate": {"candidate": "x" * (MAX_CANDIDATE_BYTES + 1)}}, "candidate.candidate"),
        ({"candidate": {"candidate": "1 1 udp 1 127.0.0.1 9 typ host"}}, "candidate.candidate"),
        ({"candidate": {"candidate": CANDIDATE, "sdpMid": 0}}, "candidate.sdpMid"),
        ({"candidate": {"candidate": CANDIDATE, "sdpMLineIndex": -1}}, "sdpMLineIndex"),
        ({"candidate": {"candidate": CANDIDATE, "sdpMLineIndex": "0"}}, "sdpMLineIndex"),
        ({"candidate": {"candidate": CANDIDATE, "sdpMid": None}}, "candidate.sdpMid"),
    ],
)
def test_bad_signal_data_is_10004(data: dict[str, Any], needle: str) -> None:
    """Descriptions and candidates are checked for type, size and form."""
    exc = refused(frame(type="signal", to="bob", data=data, id="r"))
    assert needle in exc.message
    assert exc.ref == "r"


def test_overflowing_numbers_are_10004() -> None:
    """A number too large for a float (JSON allows it, JavaScript does not) is refused."""
    assert "ping.t" in refused('{"type": "ping", "t": 1e400}').message
    assert "ping.t" in refused('{"type": "ping", "t": ' + "9" * 400 + "}").message


def test_sizes_are_counted_in_bytes() -> None:
    """The SDP limit is in UTF-8 bytes, so multi-byte text cannot slip past it."""
    sdp = "é" * (MAX_SDP_BYTES // 2 + 1)
    data = {"description": {"type": "offer", "sdp": sdp}}
    refused(frame(type="signal", to="bob", data=data))


def test_non_object_frames_are_10004() -> None:
    """JSON that is not an object is a bad shape, not bad JSON."""
    for text in ["[]", "1", '"ping"', "null"]:
        assert "frame" in refused(text).message


# --- server frames ---------------------------------------------------------------------

SERVER_MESSAGES: list[ServerMessage] = [
    Welcome(UUID, "alice", "c1", (Member("bob", 1.5, True, False),), 5.0, 15.0, True),
    Welcome(UUID, "alice", "c1", (), 5.0, 15.0),
    MemberJoined(Member("bob", 1700000000.123)),
    MemberLeft("bob", "timeout"),
    MemberState("bob", True, False),
    MemberConnection("bob", "reconnecting"),
    MemberConnection("bob", "connected"),
    SignalFrom("bob", DescriptionData(SessionDescription("answer", "v=0\r\n"))),
    SignalFrom("bob", CandidateData(None)),
    Pong(99.0),
    ErrorFrame("server", 10004, "rate limited", "m7"),
    ErrorFrame("server", 10003, "frame is not JSON"),
    Replaced(),
    Removed("removed"),
    RoomClosed("closed"),
]


@pytest.mark.parametrize("msg", SERVER_MESSAGES, ids=lambda m: m.type)
def test_server_frames_round_trip(msg: ServerMessage) -> None:
    """Every server frame encodes to the contract's JSON and parses back to itself."""
    wire = json.loads(encode(msg))
    assert wire["type"] == msg.type
    assert parse_server_frame(encode(msg)) == msg


def test_welcome_wire_shape() -> None:
    """welcome carries v:1 and the contract's camelCase names."""
    wire = json.loads(encode(SERVER_MESSAGES[0]))
    assert wire == {
        "type": "welcome",
        "v": 1,
        "roomUuid": UUID,
        "userId": "alice",
        "connectionId": "c1",
        "members": [
            {"userId": "bob", "joinedAt": 1.5, "muted": True, "camera": False, "publish": 84}
        ],
        "heartbeatInterval": 5.0,
        "heartbeatTimeout": 15.0,
        "resumed": True,
        "lastSeq": 0,
        "mediaMode": "mesh",
    }


def test_error_frame_from_error_and_back() -> None:
    """An error frame is the seed's error shape plus ref, and converts back to the error."""
    exc = FrameError(ServerCode.INVALID_PARAMETER, "signal.to: missing", ref="a")
    msg = ErrorFrame.from_error(exc)
    assert json.loads(encode(msg)) == {
        "type": "error",
        "module": "server",
        "errorCode": 10004,
        "errorMsg": "signal.to: missing",
        "ref": "a",
    }
    assert msg.to_error() == ServerError(ServerCode.INVALID_PARAMETER, "signal.to: missing")


@pytest.mark.parametrize(
    ("wire", "needle"),
    [
        ({"type": "welcome", "v": 2}, "welcome.v"),
        ({**json.loads(encode(SERVER_MESSAGES[1])), "roomUuid": UUID.upper()}, "roomUuid"),
        ({**json.loads(encode(SERVER_MESSAGES[1])), "members": [{}]}, "members[0].userId"),
        ({"type": "member-left", "userId": "bob", "reason": "bored"}, "member-left.reason"),
        ({"type": "member-state", "userId": "bob", "muted": "yes"}, "member-state.muted"),
        ({"type": "signal", "from": "bob", "data": {}}, "signal.data"),
        ({"type": "pong"}, "pong.t"),
        ({"type": "error", "module": "cloud", "errorCode": 1, "errorMsg": ""}, "error.module"),
        ({"type": "removed"}, "removed.reason"),
        ({"type": "room-closed", "reason": ""}, "room-closed.reason"),
        ({"type": "ping", "t": 1}, "frame.type"),
    ],
)
def test_bad_server_frames_are_refused(wire: dict[str, Any], needle: str) -> None:
    """The client side is as strict: wrong versions, shapes and types are refused."""
    with pytest.raises(FrameError) as info:
        parse_server_frame(json.dumps(wire))
    assert needle in info.value.message


# --- token bucket ----------------------------------------------------------------------


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refuses() -> None:
    """A full bucket allows exactly ``burst`` events at once, then refuses."""
    bucket = TokenBucket(50, 100, clock=FakeClock())
    assert all(bucket.allow() for _ in range(100))
    assert not bucket.allow()


def test_bucket_refills_at_its_rate_up_to_burst() -> None:
    """Tokens come back at ``rate`` per second and never beyond ``burst``."""
    clock = FakeClock()
    bucket = TokenBucket(50, 100, clock=clock)
    for _ in range(100):
        bucket.allow()
    clock.now += 0.1
    assert [bucket.allow() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 3600
    assert bucket.tokens == 100


def test_bucket_sustains_its_rate() -> None:
    """Events arriving exactly at the rate are never refused, even with a burst of one."""
    clock = FakeClock()
    bucket = TokenBucket(64, 1, clock=clock)  # 1/64 is exact in binary floating point
    for _ in range(640):
        assert bucket.allow()
        clock.now += 1 / 64


def test_bucket_survives_a_clock_stepping_back() -> None:
    """A clock going backwards neither adds nor removes tokens."""
    clock = FakeClock()
    bucket = TokenBucket(50, 100, clock=clock)
    bucket.allow()
    clock.now -= 10
    assert bucket.tokens == 99


def test_bucket_rejects_nonsense_parameters() -> None:
    """A zero rate or an empty burst is a programming mistake."""
    with pytest.raises(ValueError):
        TokenBucket(0, 10)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)
