"""Privilege bits: the vendor's values, their names, and how people write them."""

from __future__ import annotations

import pytest

from tavkit.auth import Privilege, parse_privilege, privilege_names


def test_bits_have_the_vendors_values() -> None:
    """Each named privilege is the bit the vendor's userbuf uses."""
    assert {flag.name: int(flag) for flag in Privilege} == {
        "CREATE": 1,
        "ENTER": 2,
        "SEND_AUDIO": 4,
        "RECV_AUDIO": 8,
        "SEND_VIDEO": 16,
        "RECV_VIDEO": 32,
        "SEND_SUB": 64,
        "RECV_SUB": 128,
    }


def test_all_and_viewer_are_the_documented_combinations() -> None:
    """ALL is 255 (every bit) and VIEWER is 42 (enter, receive audio and video)."""
    assert Privilege.ALL == 255
    assert Privilege.VIEWER == 42
    assert Privilege.VIEWER == Privilege.ENTER | Privilege.RECV_AUDIO | Privilege.RECV_VIDEO
    assert Privilege.SEND_AUDIO not in Privilege.VIEWER


def test_names_list_each_set_bit_and_show_unknown_ones() -> None:
    """privilege_names spells out the bits, lowest first, and shows unnamed bits in hex."""
    assert privilege_names(Privilege.VIEWER) == ["ENTER", "RECV_AUDIO", "RECV_VIDEO"]
    assert privilege_names(0) == []
    assert len(privilege_names(Privilege.ALL)) == 8
    assert privilege_names(0x8000_0001) == ["CREATE", "0x80000000"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("255", 255),
        ("0xff", 255),
        ("0", 0),
        ("ALL", 255),
        ("viewer", 42),
        ("enter,recv_audio", 10),
        ("ENTER | SEND_AUDIO", 6),
        ("create+enter", 3),
        (" recv_sub ", 128),
        ("4294967295", 2**32 - 1),
    ],
)
def test_parse_reads_numbers_and_names(text: str, value: int) -> None:
    """Numbers (decimal or hex) and case-insensitive names joined by , | + all parse."""
    assert parse_privilege(text) == value
    assert isinstance(parse_privilege(text), Privilege)


@pytest.mark.parametrize("text", ["", "  ", "admin", "enter,fly", "-1", "4294967296"])
def test_parse_refuses_unknown_names_and_out_of_range_numbers(text: str) -> None:
    """An unknown name or a number outside u32 is a ValueError naming the problem."""
    with pytest.raises(ValueError):
        parse_privilege(text)
