"""The credential-expiry frames (``expiring``, ``renew``, ``renewed``) and reason ``expired``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tavkit.protocol import (
    LEAVE_REASONS,
    Expiring,
    FrameError,
    MemberLeft,
    Removed,
    Renew,
    Renewed,
    encode,
    parse_client_frame,
    parse_server_frame,
)

TURN = {"urls": ["turn:127.0.0.1:3478"], "username": "1700000060:alice", "credential": "c2VjcmV0"}


def test_renew_round_trips_with_and_without_a_key() -> None:
    """``renew`` carries userSig, and privateMapKey only when there is one."""
    plain = Renew("sig-a", id="r1")
    assert json.loads(encode(plain)) == {"type": "renew", "userSig": "sig-a", "id": "r1"}
    assert parse_client_frame(encode(plain)) == plain
    keyed = Renew("sig-a", "pmk-a")
    assert json.loads(encode(keyed))["privateMapKey"] == "pmk-a"
    assert parse_client_frame(encode(keyed)) == keyed


@pytest.mark.parametrize(
    ("wire", "needle"),
    [
        ({"type": "renew"}, "renew.userSig: missing"),
        ({"type": "renew", "userSig": ""}, "renew.userSig"),
        ({"type": "renew", "userSig": 7}, "renew.userSig"),
        ({"type": "renew", "userSig": "x" * (16 * 1024 + 1)}, "renew.userSig"),
        ({"type": "renew", "userSig": "s", "privateMapKey": 3}, "renew.privateMapKey"),
    ],
)
def test_bad_renew_frames_are_10004(wire: dict[str, Any], needle: str) -> None:
    """A ``renew`` without a usable userSig, or with a non-string key, is refused."""
    with pytest.raises(FrameError) as info:
        parse_client_frame(json.dumps(wire))
    assert info.value.code == 10004 and needle in info.value.message


@pytest.mark.parametrize(
    "msg",
    [
        Expiring(1700000060, 1700000090),
        Renewed(1700003600, 42, (TURN,), "tok.en", "r1"),
        Renewed(1700003600, 255, socket_token="t"),
        MemberLeft("bob", "expired"),
        Removed("expired"),
    ],
    ids=lambda m: m.type,
)
def test_expiry_server_frames_round_trip(msg: Any) -> None:
    """The server's expiry frames encode to the contract's JSON and parse back to themselves."""
    assert parse_server_frame(encode(msg)) == msg


def test_expiring_and_renewed_wire_shapes() -> None:
    """``expiring`` is {expiresAt, deadline}; ``renewed`` names its ``renew`` in ``ref``."""
    assert json.loads(encode(Expiring(10, 40))) == {
        "type": "expiring",
        "expiresAt": 10,
        "deadline": 40,
    }
    assert json.loads(encode(Renewed(99, 42, (TURN,), "tok", "r1"))) == {
        "type": "renewed",
        "expiresAt": 99,
        "privileges": 42,
        "iceServers": [TURN],
        "socketToken": "tok",
        "ref": "r1",
    }


def test_a_renewed_ice_server_may_give_urls_as_a_string() -> None:
    """``iceServers[i].urls`` may be one URL string, read as a one-element list."""
    wire = {"type": "renewed", "expiresAt": 1, "privileges": 255, "socketToken": "t"}
    parsed = parse_server_frame(json.dumps({**wire, "iceServers": [{"urls": "stun:h:3478"}]}))
    assert isinstance(parsed, Renewed) and parsed.ice_servers == ({"urls": ["stun:h:3478"]},)
    with pytest.raises(FrameError, match=r"renewed.iceServers\[0\].urls"):
        parse_server_frame(json.dumps({**wire, "iceServers": [{"urls": []}]}))


def test_the_user_sockets_renewed_frame_parses() -> None:
    """The user socket's ``renewed`` (no ICE servers, an empty or absent socketToken) parses."""
    assert parse_server_frame(encode(Renewed(99, 0, ref="r2"))) == Renewed(99, 0, ref="r2")
    bare = {"type": "renewed", "expiresAt": 99, "privileges": 0}
    assert parse_server_frame(json.dumps(bare)) == Renewed(99, 0)


def test_expired_is_a_leave_reason() -> None:
    """``expired`` is one of the reasons a member leaves (one definition for all)."""
    assert "expired" in LEAVE_REASONS


def test_secrets_stay_out_of_reprs() -> None:
    """A frame's repr (what a log line would show) never holds a signature, token or TURN
    password."""
    shown = repr(Renew("SIG-SECRET", "PMK-SECRET", id="r1")) + repr(
        Renewed(1, 255, (TURN,), "TOKEN-SECRET", "r1")
    )
    for secret in ("SIG-SECRET", "PMK-SECRET", "TOKEN-SECRET", TURN["credential"]):
        assert secret not in shown
