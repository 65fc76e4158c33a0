"""Properties of the signature scheme over generated inputs (Hypothesis).

Round trips for any user, app, lifetime and room; tamper-evidence of the document,
the HMAC and the userbuf; expiry exact to the second; form-insensitive decoding.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from TLSSigAPIv2 import TLSSigAPIv2

from tavkit.auth import (
    Privilege,
    SigFailure,
    SignatureError,
    decode_sig,
    gen_private_map_key,
    gen_user_sig,
    verify_private_map_key,
    verify_user_sig,
)

U32 = 2**32 - 1
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

identifiers = st.text(min_size=1, max_size=40)
apps = st.integers(min_value=1, max_value=U32)
keys = st.text(min_size=1, max_size=80)
times = st.integers(min_value=0, max_value=2**31)
expires = st.integers(min_value=0, max_value=10 * 365 * 86400)
privileges = st.integers(min_value=0, max_value=U32)
rooms = st.one_of(
    st.builds(lambda n: {"room_id": n}, st.integers(min_value=1, max_value=U32)),
    st.builds(lambda s: {"room_str": s}, st.text(min_size=1, max_size=40)),
)


def unwrap(sig: str) -> bytes:
    """The JSON bytes under a signature."""
    return zlib.decompress(
        base64.b64decode(sig.replace("*", "+").replace("-", "/").replace("_", "="))
    )


def wrap(document: bytes, level: int = 6) -> str:
    """A signature around arbitrary JSON bytes."""
    packed = base64.b64encode(zlib.compress(document, level)).decode()
    return packed.replace("+", "*").replace("/", "-").replace("=", "_")


@FAST
@given(user=identifiers, app=apps, key=keys, issued=times, expire=expires)
def test_any_user_sig_round_trips(user: str, app: int, key: str, issued: int, expire: int) -> None:
    """Whatever the user, app, key and lifetime, a generated userSig verifies to its inputs."""
    sig = gen_user_sig(app, key, user, expire, now=issued)
    doc = verify_user_sig(sig, sdk_app_id=app, key=key, user_id=user, now=issued)
    assert (doc.identifier, doc.sdk_app_id, doc.time, doc.expire) == (user, app, issued, expire)
    assert decode_sig(sig) == doc


@FAST
@given(user=identifiers, app=apps, room=rooms, privilege=privileges, expire=expires)
def test_any_private_map_key_round_trips(
    user: str, app: int, room: dict[str, Any], privilege: int, expire: int
) -> None:
    """Any room (numeric or string) and privilege map come back out of the key intact."""
    issued = 1_700_000_000
    pmk = gen_private_map_key(
        app, KEY, user, privilege=privilege, expire=expire, now=issued, **room
    )
    grant = verify_private_map_key(pmk, sdk_app_id=app, key=KEY, user_id=user, now=issued, **room)
    assert grant.room == (room.get("room_str") or room.get("room_id"))
    assert (grant.account, grant.sdk_app_id, int(grant.privilege)) == (user, app, privilege)
    assert grant.expire_at == issued + expire
    assert grant.to_bytes() == decode_sig(pmk).userbuf


@FAST
@given(user=identifiers, expire=st.integers(min_value=1, max_value=86400 * 365))
def test_official_user_sigs_verify(user: str, expire: int) -> None:
    """Any userSig the vendor's generator makes verifies in tavkit."""
    sig = TLSSigAPIv2(1400000000, KEY).gen_sig(user, expire)
    assert verify_user_sig(sig, sdk_app_id=1400000000, key=KEY, user_id=user).expire == expire


@FAST
@given(user=identifiers, issued=times, expire=expires)
def test_expiry_is_exact_to_the_second(user: str, issued: int, expire: int) -> None:
    """Valid at exactly time+expire; refused as EXPIRED one second later (both kinds)."""
    sig = gen_user_sig(7, KEY, user, expire, now=issued)
    verify_user_sig(sig, sdk_app_id=7, key=KEY, user_id=user, now=issued + expire)
    with pytest.raises(SignatureError) as excinfo:
        verify_user_sig(sig, sdk_app_id=7, key=KEY, user_id=user, now=issued + expire + 1)
    assert excinfo.value.failure is SigFailure.EXPIRED

    pmk = gen_private_map_key(7, KEY, user, room_id=3, expire=expire, now=issued)
    args: dict[str, Any] = {"sdk_app_id": 7, "key": KEY, "user_id": user, "room_id": 3}
    verify_private_map_key(pmk, now=issued + expire, **args)
    with pytest.raises(SignatureError) as excinfo:
        verify_private_map_key(pmk, now=issued + expire + 1, **args)
    assert (excinfo.value.failure, excinfo.value.error_code) == (SigFailure.EXPIRED, 86)


@settings(FAST, max_examples=200)
@given(user=identifiers, data=st.data())
def test_any_change_to_the_document_is_refused(user: str, data: st.DataObject) -> None:
    """Flipping any byte of the JSON is refused unless the document still means the same."""
    pmk = gen_private_map_key(9, KEY, user, room_id=5, privilege=Privilege.VIEWER, now=1000)
    document = unwrap(pmk)
    index = data.draw(st.integers(min_value=0, max_value=len(document) - 1), label="index")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    changed = bytearray(document)
    changed[index] ^= mask
    args: dict[str, Any] = {"sdk_app_id": 9, "key": KEY, "user_id": user, "room_id": 5}
    try:
        verify_private_map_key(wrap(bytes(changed)), now=1000, **args)
    except SignatureError:
        return
    # Accepted: only spacing or an escape's letter case changed; the meaning did not.
    assert json.loads(bytes(changed)) == json.loads(document)


@FAST
@given(user=identifiers, data=st.data())
def test_any_change_to_the_hmac_is_refused(user: str, data: st.DataObject) -> None:
    """Flipping any bit pattern of any HMAC byte is refused as BAD_HMAC."""
    doc = json.loads(unwrap(gen_user_sig(9, KEY, user, now=1000)))
    digest = bytearray(base64.b64decode(doc["TLS.sig"]))
    digest[data.draw(st.integers(0, 31), label="index")] ^= data.draw(st.integers(1, 255))
    doc["TLS.sig"] = base64.b64encode(bytes(digest)).decode()
    with pytest.raises(SignatureError) as excinfo:
        verify_user_sig(
            wrap(json.dumps(doc).encode()), sdk_app_id=9, key=KEY, user_id=user, now=1000
        )
    assert excinfo.value.failure is SigFailure.BAD_HMAC


@FAST
@given(user=identifiers, room=rooms, data=st.data())
def test_any_change_to_the_userbuf_is_refused(
    user: str, room: dict[str, Any], data: st.DataObject
) -> None:
    """Flipping any byte of the privateMapKey record is refused (the HMAC covers it)."""
    doc = json.loads(unwrap(gen_private_map_key(9, KEY, user, now=1000, **room)))
    userbuf = bytearray(base64.b64decode(doc["TLS.userbuf"]))
    userbuf[data.draw(st.integers(0, len(userbuf) - 1))] ^= data.draw(st.integers(1, 255))
    doc["TLS.userbuf"] = base64.b64encode(bytes(userbuf)).decode()
    with pytest.raises(SignatureError) as excinfo:
        verify_private_map_key(
            wrap(json.dumps(doc).encode()), sdk_app_id=9, key=KEY, user_id=user, now=1000, **room
        )
    assert excinfo.value.failure is SigFailure.BAD_HMAC
    assert excinfo.value.error_code == 87


@FAST
@given(
    user=identifiers,
    level=st.integers(min_value=0, max_value=9),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    space=st.sampled_from([" ", "\n", "\r\n", "\t"]),
    strip_padding=st.booleans(),
)
def test_form_does_not_change_the_document(
    user: str, level: int, cuts: list[int], space: str, strip_padding: bool
) -> None:
    """zlib level, inserted whitespace and dropped padding never change what decodes."""
    sig = gen_user_sig(9, KEY, user, now=1000)
    reformed = wrap(unwrap(sig), level)
    if strip_padding:
        reformed = reformed.rstrip("_")
    for cut in sorted(set(cuts), reverse=True):
        reformed = reformed[:cut] + space + reformed[cut:]
    assert decode_sig(reformed) == decode_sig(sig)
    verify_user_sig(reformed, sdk_app_id=9, key=KEY, user_id=user, now=1000)
