"""The ``media-signal`` frames (a member's SDP with the SFU) and ``mediaMode``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tavkit.errors import ServerCode
from tavkit.protocol import (
    CandidateData,
    DescriptionData,
    FrameError,
    MediaLayers,
    MediaModeChanged,
    MediaSignalFrom,
    MediaSignalTo,
    MediaStream,
    SessionDescription,
    StreamLayer,
    Welcome,
    encode,
    parse_client_frame,
    parse_server_frame,
)

OFFER = DescriptionData(SessionDescription("offer", "v=0\r\n"))
ANSWER = DescriptionData(SessionDescription("answer", "v=0\r\n"))
UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def text(**fields: Any) -> str:
    """A frame as JSON text."""
    return json.dumps({"type": "media-signal", **fields})


def test_media_signal_frames_read_back_as_they_were_written() -> None:
    """Both directions of ``media-signal`` survive encode and parse, ``streams`` and all,
    and the server's bare ``publish`` (publish again) too."""
    sent = [
        MediaSignalTo("publish", OFFER, id="p1"),
        MediaSignalTo("subscribe", ANSWER, subscription=3),
        MediaSignalTo("publish", CandidateData(None)),
    ]
    for msg in sent:
        assert parse_client_frame(encode(msg)) == msg
    streams = (MediaStream("0", "alice", "audio"), MediaStream("1", "alice", "video"))
    received = [
        MediaSignalFrom("publish", ANSWER),
        MediaSignalFrom("subscribe", OFFER, 2, streams),
        MediaSignalFrom("subscribe", None, 4),  # nobody else publishes
        MediaSignalFrom("publish", None),  # publish again: the room moved to another Janus
    ]
    for answer in received:
        assert parse_server_frame(encode(answer)) == answer
    assert json.loads(encode(received[1]))["streams"][1] == {
        "mid": "1",
        "userId": "alice",
        "kind": "video",
    }


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"pc": "mesh", "data": OFFER.to_wire()}, "media-signal.pc"),
        ({"pc": "subscribe", "data": ANSWER.to_wire()}, "media-signal.subscription"),
        ({"pc": "publish"}, "media-signal.data"),
        ({"pc": "subscribe", "subscription": 0, "data": ANSWER.to_wire()}, "subscription"),
    ],
)
def test_a_bad_media_signal_is_refused_naming_the_field(fields: dict[str, Any], where: str) -> None:
    """An unknown pc, an answer without its subscription's number or a missing ``data``
    is refused (server 10004) with the field named."""
    with pytest.raises(FrameError) as info:
        parse_client_frame(text(**fields))
    assert info.value.code is ServerCode.INVALID_PARAMETER
    assert where in info.value.message


def test_a_subscription_with_streams_must_carry_its_offer() -> None:
    """A server frame listing streams but no offer is refused: the client could not answer."""
    streams = [{"mid": "0", "userId": "alice", "kind": "audio"}]
    with pytest.raises(FrameError):
        parse_server_frame(text(pc="subscribe", subscription=1, streams=streams))


def test_a_screen_stream_says_so_and_an_older_server_means_a_camera() -> None:
    """A subscription's screen stream carries ``screen: true`` and reads back as a screen; a
    stream without the field (an older server) is a camera; ``screen`` on audio is refused."""
    streams = (
        MediaStream("1", "alice", "video"),
        MediaStream("2", "alice", "video", screen=True),
    )
    wire = json.loads(encode(MediaSignalFrom("subscribe", OFFER, 5, streams)))
    assert wire["streams"] == [
        {"mid": "1", "userId": "alice", "kind": "video"},
        {"mid": "2", "userId": "alice", "kind": "video", "screen": True},
    ]
    parsed = parse_server_frame(json.dumps(wire))
    assert isinstance(parsed, MediaSignalFrom)
    assert [s.screen for s in parsed.streams] == [False, True]
    wire["streams"][1]["kind"] = "audio"
    with pytest.raises(FrameError) as info:
        parse_server_frame(json.dumps(wire))
    assert "streams[1].screen" in info.value.message


def test_welcome_says_the_media_mode_and_an_older_server_means_mesh() -> None:
    """``welcome.mediaMode`` round-trips; a welcome without it is a mesh room."""
    welcome = Welcome(UUID, "bob", "c1", (), 5.0, 15.0, media_mode="sfu")
    assert parse_server_frame(encode(welcome)) == welcome
    older = json.loads(encode(welcome))
    del older["mediaMode"]
    assert parse_server_frame(json.dumps(older)).media_mode == "mesh"  # type: ignore[union-attr]


def test_media_mode_tells_a_member_the_room_switched_and_refuses_a_mode_that_is_not() -> None:
    """``media-mode`` (an auto room switching) reads back as written; a mode that does not
    exist (or ``auto``, which is an app's setting, never a room's state) is refused naming
    ``mediaMode``."""
    frame = MediaModeChanged("sfu")
    assert json.loads(encode(frame)) == {"type": "media-mode", "mediaMode": "sfu"}
    assert parse_server_frame(encode(frame)) == frame
    for mode in ("auto", "p2p", None):
        with pytest.raises(FrameError, match="mediaMode"):
            parse_server_frame(json.dumps({"type": "media-mode", "mediaMode": mode}))


def test_media_layers_read_back_as_they_were_written() -> None:
    """A ``media-layers`` frame survives encode and parse, every layer and a pause included."""
    msg = MediaLayers(
        2,
        (StreamLayer("1", "high"), StreamLayer("3", "low"), StreamLayer("5", "paused")),
        id="l1",
    )
    assert parse_client_frame(encode(msg)) == msg
    assert json.loads(encode(msg))["layers"][2] == {"mid": "5", "layer": "paused"}


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"layers": []}, "subscription"),
        ({"subscription": 0, "layers": []}, "subscription"),
        ({"subscription": 1}, "layers"),
        ({"subscription": 1, "layers": [{"mid": "1", "layer": "huge"}]}, "layers[0].layer"),
        ({"subscription": 1, "layers": [{"mid": "", "layer": "low"}]}, "layers[0].mid"),
        (
            {"subscription": 1, "layers": [{"mid": "1", "layer": "low"}] * 2},
            "layers[1].mid",
        ),
        (
            {"subscription": 1, "layers": [{"mid": str(i), "layer": "low"} for i in range(101)]},
            "layers",
        ),
    ],
)
def test_a_bad_media_layers_frame_is_refused_naming_the_field(
    fields: dict[str, Any], where: str
) -> None:
    """Missing or wrong fields, an unknown layer, a mid named twice or too many: 10004."""
    with pytest.raises(FrameError) as caught:
        parse_client_frame(json.dumps({"type": "media-layers", **fields}))
    assert caught.value.code == ServerCode.INVALID_PARAMETER
    assert where in caught.value.message
