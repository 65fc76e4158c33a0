"""Room ids: numbers and TRTC string rooms, parsed strictly and never confused."""

from __future__ import annotations

import pytest

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import (
    ROOM_ID_MAX,
    parse_room_id,
    parse_str_room_id,
    room_columns,
    room_from_columns,
    room_label,
    room_path,
)

EVERY_ALLOWED = "azAZ09_-+=.:@!#$%&()*;<>?[]^{}|~"


@pytest.mark.parametrize(
    ("wire", "room"),
    [(1, 1), (ROOM_ID_MAX, ROOM_ID_MAX), ("1234", "1234"), (EVERY_ALLOWED, EVERY_ALLOWED)],
)
def test_the_json_type_decides_the_kind(wire: object, room: object) -> None:
    """A JSON number is the numeric room, a JSON string the string room, digits or not."""
    parsed = parse_room_id(wire)
    assert parsed == room and type(parsed) is type(room)


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (0, "in 1..4294967295"),
        (ROOM_ID_MAX + 1, "in 1..4294967295"),
        (-5, "in 1..4294967295"),
        (True, "an integer or a string"),
        (12.0, "an integer or a string"),
        (None, "an integer or a string"),
        ("", "must not be empty"),
        ("a" * 65, "longer than 64 bytes"),
        ("é" * 40, "longer than 64 bytes"),
        ("é", "may hold only"),
        ("with space", "may hold only"),
        ("a/b", "may hold only"),
        ("a,b", "may hold only"),
        ("line\nbreak", "may hold only"),
    ],
)
def test_anything_else_is_10004_with_the_rule(wire: object, why: str) -> None:
    """Out-of-range numbers, bools, floats and strings outside TRTC's rules are server 10004."""
    with pytest.raises(ServerError) as caught:
        parse_room_id(wire)
    assert caught.value.code == ServerCode.INVALID_PARAMETER
    assert why in caught.value.message


def test_sixty_four_bytes_is_the_longest_string_room() -> None:
    """A string room of exactly 64 allowed characters is accepted; the field is named."""
    assert parse_str_room_id("x" * 64) == "x" * 64
    with pytest.raises(ServerError, match="strRoomId must be a string"):
        parse_str_room_id(7)


def test_number_and_digits_are_different_rooms_everywhere() -> None:
    """123 and "123" differ as values, labels, paths and stored columns, and round-trip."""
    assert 123 != "123" and len({123, "123"}) == 2
    assert (room_label(123), room_label("123")) == ("123", '"123"')
    assert (room_path(123), room_path("123")) == ("rooms/123", "str-rooms/123")
    assert room_columns(123) == (123, "") and room_columns("123") == (0, "123")
    for room in (123, "123"):
        back = room_from_columns(*room_columns(room))
        assert back == room and type(back) is type(room)


def test_string_rooms_are_percent_encoded_in_paths() -> None:
    """Every character with a meaning in a URL is escaped, so the path names the room exactly."""
    assert room_path("a#b?c%d&e") == "str-rooms/a%23b%3Fc%25d%26e"
    assert room_path(EVERY_ALLOWED).count("/") == 1
