"""Socket tokens: bound to one connection, signed, expiring, and their secret kept."""

from __future__ import annotations

import uuid

import pytest

from tavkit.errors import ServerCode, ServerError
from tavkit.server.signaling.tokens import SECRET_FILE, load_or_create_secret, mint, verify

SECRET = b"s" * 32
ROOM = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def token(**changes) -> str:
    """A token for alice's connection c1, issued at t=1000 for 60 s."""
    args = {
        "sdk_app_id": 1400000001,
        "room_uuid": ROOM,
        "user_id": "alice",
        "connection_id": "c1",
        "ttl": 60.0,
        "now": 1000.0,
    }
    return mint(SECRET, **{**args, **changes})


def refused(text: str, now: float = 1010.0, secret: bytes = SECRET) -> str:
    """The 10005 message verifying ``text`` produces."""
    with pytest.raises(ServerError) as caught:
        verify(secret, text, now=now)
    assert caught.value.code is ServerCode.UNAUTHORISED
    return caught.value.message


def test_a_token_carries_its_connection():
    """verify returns exactly what mint bound."""
    claims = verify(SECRET, token(), now=1010.0)
    assert (claims.sdk_app_id, claims.room_uuid, claims.user_id, claims.connection_id) == (
        1400000001,
        ROOM,
        "alice",
        "c1",
    )
    assert claims.expires_at == 1060.0


def test_an_expired_token_is_refused_unless_resuming():
    """After its ttl a token is refused, except as identity proof for a resume."""
    assert "expired" in refused(token(), now=1060.5)
    assert verify(SECRET, token(), now=5000.0, ignore_expiry=True).user_id == "alice"


def test_tampered_and_foreign_tokens_are_refused():
    """A changed claim, another secret, or garbage are all 10005."""
    good = token()
    mac = good.split(".")[1]
    forged = token(user_id="mallory").split(".")[0] + "." + mac
    assert "signature" in refused(forged)
    assert "signature" in refused(good, secret=b"t" * 32)
    for garbage in ("", "abc", "a.b", "é.é", good + "x", "." * 3000):
        refused(garbage)


def test_the_secret_is_created_once_per_data_dir(tmp_path):
    """The secret is random, kept in the data dir (owner-only) and reused."""
    first = load_or_create_secret(tmp_path / "data")
    assert len(first) == 32
    assert load_or_create_secret(tmp_path / "data") == first
    assert (tmp_path / "data" / SECRET_FILE).stat().st_mode & 0o077 == 0
    assert load_or_create_secret(tmp_path / "other") != first
