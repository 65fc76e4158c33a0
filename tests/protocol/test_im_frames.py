"""In-call message frames (section 5): encoding, strict parsing, and every refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tavkit.errors import ServerCode
from tavkit.protocol import (
    MAX_DATA_BYTES,
    MAX_TEXT_CHARS,
    ChatMessage,
    FrameError,
    MessageFrom,
    SendMessage,
    Sync,
    Synced,
    Welcome,
    data_size,
    encode,
    parse_chat_message,
    parse_client_frame,
    parse_server_frame,
)

UUID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
TEXT = ChatMessage(7, "alice", "text", "c-1", 1700000000.5, text="hi")
CUSTOM = ChatMessage(8, "bob", "custom", "c:2", 1700000001.0, data={"cmd": "raise-hand", "n": [1]})


def frame(**fields: Any) -> str:
    """A frame as JSON text."""
    return json.dumps(fields)


def refused(text: str, needle: str) -> FrameError:
    """Parse ``text`` as a client frame, expecting 10004 whose message names ``needle``."""
    with pytest.raises(FrameError) as info:
        parse_client_frame(text)
    assert info.value.code is ServerCode.INVALID_PARAMETER
    assert needle in info.value.message, info.value.message
    return info.value


# --- client frames -----------------------------------------------------------------------


def test_text_message_parses_and_round_trips() -> None:
    """A text message parses to SendMessage with its id and encodes back to the same JSON."""
    text = frame(type="message", clientMsgId="c-1", kind="text", text="hello", id="r1")
    msg = parse_client_frame(text)
    assert msg == SendMessage("c-1", "text", text="hello", id="r1")
    assert json.loads(encode(msg)) == json.loads(text)


@pytest.mark.parametrize("data", [{"cmd": "mute", "all": True}, [1, "two"], "s", 3.5, None, False])
def test_custom_message_carries_any_json_value(data: Any) -> None:
    """kind custom carries any JSON value as data (null included) and round-trips it."""
    text = frame(type="message", clientMsgId="a.b:c_d-1", kind="custom", data=data)
    msg = parse_client_frame(text)
    assert msg == SendMessage("a.b:c_d-1", "custom", data=data)
    assert json.loads(encode(msg)) == json.loads(text)


def test_limits_are_inclusive() -> None:
    """4000 characters of text and exactly 8 KiB of compact data are accepted."""
    wide = "字" * MAX_TEXT_CHARS  # characters, not bytes
    assert parse_client_frame(frame(type="message", clientMsgId="x", kind="text", text=wide))
    data = "a" * (MAX_DATA_BYTES - 2)  # plus two quotes
    assert data_size(data) == MAX_DATA_BYTES
    assert parse_client_frame(frame(type="message", clientMsgId="x", kind="custom", data=data))
    assert parse_client_frame(frame(type="message", clientMsgId="x" * 64, kind="text", text="t"))


def test_data_size_is_compact_utf8() -> None:
    """data is measured as compact JSON with characters as themselves, in UTF-8 bytes."""
    assert data_size({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert data_size("é") == 4


def test_sync_parses_and_round_trips() -> None:
    """sync carries a non-negative integer after."""
    assert parse_client_frame(frame(type="sync", after=0)) == Sync(0)
    assert parse_client_frame(frame(type="sync", after=42, id="s")) == Sync(42, "s")
    assert json.loads(encode(Sync(5))) == {"type": "sync", "after": 5}


_MSG = {"type": "message", "clientMsgId": "c1", "kind": "text", "text": "hi"}


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({**_MSG, "from": "mallory"}, "message.from"),
        ({**_MSG, "seq": 1}, "message.seq"),
        ({**_MSG, "sentAt": 1.0}, "message.sentAt"),
        ({**_MSG, "extra": 1}, "message.extra"),
        ({**_MSG, "clientMsgId": ""}, "message.clientMsgId"),
        ({**_MSG, "clientMsgId": "x" * 65}, "message.clientMsgId"),
        ({**_MSG, "clientMsgId": "has space"}, "message.clientMsgId"),
        ({**_MSG, "clientMsgId": 7}, "message.clientMsgId"),
        ({k: v for k, v in _MSG.items() if k != "clientMsgId"}, "message.clientMsgId"),
        ({**_MSG, "kind": "image"}, "message.kind"),
        ({**_MSG, "text": ""}, "message.text"),
        ({**_MSG, "text": "x" * (MAX_TEXT_CHARS + 1)}, "message.text"),
        ({**_MSG, "text": ["hi"]}, "message.text"),
        ({k: v for k, v in _MSG.items() if k != "text"}, "message.text"),
        ({**_MSG, "data": {}}, "message.data"),
        ({**_MSG, "kind": "custom"}, "message.text"),
        ({**_MSG, "kind": "custom", "text": None, "data": 1}, "message.text"),
        ({"type": "message", "clientMsgId": "c", "kind": "custom"}, "message.data"),
        (
            {"type": "message", "clientMsgId": "c", "kind": "custom", "data": "x" * MAX_DATA_BYTES},
            "message.data",
        ),
        ({"type": "sync"}, "sync.after"),
        ({"type": "sync", "after": -1}, "sync.after"),
        ({"type": "sync", "after": 1.5}, "sync.after"),
        ({"type": "sync", "after": True}, "sync.after"),
        ({"type": "sync", "after": 2**31}, "sync.after"),
    ],
)
def test_bad_message_and_sync_frames_are_refused(fields: dict[str, Any], needle: str) -> None:
    """Spoofed server fields, unknown fields, bad ids, kinds and sizes: 10004 naming the field."""
    assert refused(json.dumps({**fields, "id": "ref-1"}), needle).ref == "ref-1"


def test_infinite_data_is_refused() -> None:
    """A number JSON cannot carry on (1e400 decodes to inf) is refused, not stored."""
    refused('{"type":"message","clientMsgId":"c","kind":"custom","data":[1e400]}', "message.data")


# --- server frames -----------------------------------------------------------------------


def test_message_object_wire_shape() -> None:
    """The message object is the contract's: seq, from, kind, text|data, clientMsgId, sentAt."""
    assert TEXT.to_wire() == {
        "seq": 7,
        "from": "alice",
        "kind": "text",
        "text": "hi",
        "clientMsgId": "c-1",
        "sentAt": 1700000000.5,
    }
    assert set(CUSTOM.to_wire()) == {"seq", "from", "kind", "data", "clientMsgId", "sentAt"}
    assert json.loads(encode(MessageFrom(TEXT))) == {"type": "message", **TEXT.to_wire()}


@pytest.mark.parametrize(
    "msg", [MessageFrom(TEXT), MessageFrom(CUSTOM), Synced(0), Synced(12)], ids=repr
)
def test_server_im_frames_round_trip(msg: MessageFrom | Synced) -> None:
    """message and synced encode to the contract's JSON and parse back to themselves."""
    assert parse_server_frame(encode(msg)) == msg


def test_parse_chat_message_reads_rest_history() -> None:
    """A history entry parses to the same value the socket carries."""
    assert parse_chat_message(CUSTOM.to_wire()) == CUSTOM


def test_welcome_last_seq_round_trips_and_defaults_for_an_old_server() -> None:
    """welcome carries lastSeq; one from a server without it parses as lastSeq 0."""
    welcome = Welcome(UUID, "alice", "c1", (), 5.0, 15.0, last_seq=9)
    wire = json.loads(encode(welcome))
    assert wire["lastSeq"] == 9
    assert parse_server_frame(encode(welcome)) == welcome
    del wire["lastSeq"]
    assert parse_server_frame(json.dumps(wire)) == Welcome(UUID, "alice", "c1", (), 5.0, 15.0)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"seq": 0}, "message.seq"),
        ({"from": "bad id!"}, "message.from"),
        ({"kind": "other"}, "message.kind"),
        ({"text": ""}, "message.text"),
        ({"clientMsgId": None}, "message.clientMsgId"),
        ({"sentAt": -1}, "message.sentAt"),
    ],
)
def test_bad_server_message_frames_are_refused(fields: dict[str, Any], needle: str) -> None:
    """The client side checks a message as strictly as the server wrote it."""
    wire = {"type": "message", **TEXT.to_wire(), **fields}
    with pytest.raises(FrameError) as info:
        parse_server_frame(json.dumps(wire))
    assert needle in info.value.message


def test_bad_synced_and_welcome_last_seq_are_refused() -> None:
    """synced needs lastSeq; welcome's lastSeq, when present, is a non-negative integer."""
    with pytest.raises(FrameError, match=r"synced\.lastSeq"):
        parse_server_frame(frame(type="synced"))
    wire = json.loads(encode(Welcome(UUID, "alice", "c1", (), 5.0, 15.0)))
    with pytest.raises(FrameError, match=r"welcome\.lastSeq"):
        parse_server_frame(json.dumps({**wire, "lastSeq": -3}))
