"""The call objects and frames: what goes out reads back the same; what is wrong is named."""

from __future__ import annotations

import pytest

from tavkit.protocol import FrameError
from tavkit.protocol.calls import (
    MAX_CALL_DATA_BYTES,
    Callee,
    CallFrame,
    CallInfo,
    parse_call_frame,
    parse_call_request,
)

CALL = CallInfo(
    "0b0e8d4e-6f0e-4a53-9d39-6b1f0c1e2d3f",
    "alice",
    (Callee("bob", "declined", "in a meeting"), Callee("carol", "ringing")),
    "audio",
    7,
    "ringing",
    1.0,
    31.0,
    data={"k": [1, "two", None]},
)


@pytest.mark.parametrize(
    "frame",
    [
        CallFrame("call-invite", CALL),
        CallFrame("call-declined", CALL, "bob", "in a meeting"),
        CallFrame("call-ended", CALL, reason="hangup"),
    ],
)
def test_a_call_frame_reads_back_as_itself(frame: CallFrame):
    """Every call frame survives to_wire and parse_call_frame unchanged."""
    assert parse_call_frame(frame.to_wire()) == frame


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "call-ringing"}, "frame.type"),
        ({"call": {**CALL.to_wire(), "callId": "0B0E8D4E-6F0E-4A53-9D39-6B1F0C1E2D3F"}}, "callId"),
        ({"call": {**CALL.to_wire(), "state": "lost"}}, "frame.call.state"),
        ({"call": {**CALL.to_wire(), "roomId": 0}}, "frame.call.roomId"),
        ({"userId": "b c"}, "frame.userId"),
    ],
)
def test_a_wrong_call_frame_names_its_field(change: dict, field: str):
    """A frame with one wrong field is refused naming that field."""
    wire = {**CallFrame("call-accepted", CALL, "bob").to_wire(), **change}
    with pytest.raises(FrameError) as refused:
        parse_call_frame(wire)
    assert field in refused.value.message


def test_a_call_request_is_checked_field_by_field():
    """A good request reads back; callees, media, timeout and data limits are each enforced."""
    request = parse_call_request({"callees": ["bob"], "media": "video", "timeout": 5, "data": 1})
    assert (request.callees, request.media, request.timeout, request.data) == (
        ("bob",),
        "video",
        5.0,
        1,
    )
    for body, field in (
        ({"callees": "bob", "media": "video"}, "body.callees"),
        ({"callees": ["bob"], "media": "fax"}, "body.media"),
        ({"callees": ["bob"], "media": "audio", "timeout": True}, "body.timeout"),
        ({"callees": ["bob"], "media": "audio", "data": "x" * MAX_CALL_DATA_BYTES}, "body.data"),
    ):
        with pytest.raises(FrameError) as refused:
            parse_call_request(body)
        assert field in refused.value.message
