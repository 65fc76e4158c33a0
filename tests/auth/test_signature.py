"""userSig and privateMapKey: the published vector, the official generator, every refusal.

The official generator (PyPI ``tls-sig-api-v2``) is the oracle for "their signatures
verify here"; an independent decoder written below (base64, zlib, JSON and HMAC by
hand) is the oracle for "ours verify there", since the vendor ships no Python
verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import zlib
from typing import Any

import pytest
from TLSSigAPIv2 import TLSSigAPIv2

from tavkit.auth import (
    PrivateMapKey,
    Privilege,
    SigDocument,
    SigFailure,
    SignatureError,
    decode_sig,
    gen_private_map_key,
    gen_user_sig,
    verify_private_map_key,
    verify_user_sig,
)
from tavkit.errors import AvkitCode, AvkitError, TAvKitError

# The vector of /work/shared/usersig.md.
APP = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
USER = "xiaojun"
EXPIRE = 15552000
TIME = 1700000000
VECTOR = (
    "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1N"
    "jRDiJZm5YFFzNPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__"
)
VECTOR_HMAC = "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="
VECTOR_USERBUF_HEX = "00 0007 7869616f6a756e 53724e00 000004d2 66413f00 000000ff 00000000"
OTHER_KEY = "0" * 64


# -- an independent implementation of the format, for cross-checks -------------------


def hand_decode(sig: str) -> dict[str, Any]:
    """Decode a signature the plain way the vendor's own decoder does."""
    packed = base64.b64decode(sig.replace("*", "+").replace("-", "/").replace("_", "="))
    doc: dict[str, Any] = json.loads(zlib.decompress(packed))
    return doc


def hand_hmac(key: str, doc: dict[str, Any]) -> str:
    """The base64 HMAC the document should carry."""
    text = "".join(
        f"TLS.{name}:{doc['TLS.' + name]}\n"
        for name in ("identifier", "sdkappid", "time", "expire")
    )
    if "TLS.userbuf" in doc:
        text += f"TLS.userbuf:{doc['TLS.userbuf']}\n"
    digest = hmac.new(key.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def hand_encode(
    doc: dict[str, Any], *, level: int = 6, separators: tuple[str, str] = (",", ":")
) -> str:
    """Wrap a document as a signature, with a chosen zlib level and JSON spacing."""
    packed = zlib.compress(json.dumps(doc, separators=separators).encode(), level)
    return base64.b64encode(packed).decode().replace("+", "*").replace("/", "-").replace("=", "_")


def forge(key: str = KEY, *, userbuf: bytes | None = None, **fields: Any) -> str:
    """Sign an arbitrary document with ``key``, so a test can build any well-signed oddity."""
    doc: dict[str, Any] = {
        "TLS.ver": "2.0",
        "TLS.identifier": USER,
        "TLS.sdkappid": APP,
        "TLS.expire": EXPIRE,
        "TLS.time": TIME,
    }
    doc.update({f"TLS.{name}": value for name, value in fields.items()})
    if userbuf is not None:
        doc["TLS.userbuf"] = base64.b64encode(userbuf).decode()
    doc["TLS.sig"] = hand_hmac(key, doc)
    return hand_encode(doc)


def hand_userbuf(
    account: str = USER,
    app: int = APP,
    room_id: int = 1234,
    expire_at: int = TIME + EXPIRE,
    privilege: int = 255,
    room_str: str | None = None,
) -> bytes:
    """The privateMapKey record, packed by hand from the table in usersig.md."""
    name = account.encode()
    out = struct.pack(">BH", 0 if room_str is None else 1, len(name)) + name
    out += struct.pack(">IIIII", app, room_id, expire_at, privilege, 0)
    if room_str is not None:
        out += struct.pack(">H", len(room_str.encode())) + room_str.encode()
    return out


def refusal(excinfo: pytest.ExceptionInfo[SignatureError]) -> tuple[SigFailure, int]:
    """The precise reason and the seed code of a refusal."""
    return excinfo.value.failure, excinfo.value.error_code


# -- the published vector -------------------------------------------------------------


def test_vector_decodes_to_the_published_document() -> None:
    """The vendor's userSig from usersig.md decodes to its user, app, times and HMAC."""
    doc = decode_sig(VECTOR)
    assert (doc.identifier, doc.sdk_app_id, doc.time, doc.expire) == (USER, APP, TIME, EXPIRE)
    assert doc.sig_b64 == VECTOR_HMAC
    assert doc.userbuf is None
    assert doc.expires_at == TIME + EXPIRE
    assert doc.raw["TLS.ver"] == "2.0"


def test_generation_reproduces_the_vector_document_and_hmac() -> None:
    """gen_user_sig with the vector's time yields the same document and HMAC as the vendor."""
    ours = hand_decode(gen_user_sig(APP, KEY, USER, EXPIRE, now=TIME))
    assert ours == hand_decode(VECTOR)
    assert ours["TLS.sig"] == VECTOR_HMAC


def test_vector_verifies() -> None:
    """The vendor's userSig verifies with the vector's key while it is valid."""
    doc = verify_user_sig(VECTOR, sdk_app_id=APP, key=KEY, user_id=USER, now=TIME + 1)
    assert doc == decode_sig(VECTOR)


def test_private_map_key_userbuf_matches_the_vector_hex() -> None:
    """The privateMapKey for room 1234, privilege 255 carries the vector's userbuf bytes."""
    pmk = gen_private_map_key(APP, KEY, USER, room_id=1234, privilege=255, expire=EXPIRE, now=TIME)
    doc = hand_decode(pmk)
    assert base64.b64decode(doc["TLS.userbuf"]) == bytes.fromhex(VECTOR_USERBUF_HEX)
    assert doc["TLS.sig"] == hand_hmac(KEY, doc)
    assert PrivateMapKey.parse(bytes.fromhex(VECTOR_USERBUF_HEX)) == PrivateMapKey(
        ver=0,
        account=USER,
        sdk_app_id=APP,
        room_id=1234,
        room_str=None,
        expire_at=TIME + EXPIRE,
        privilege=Privilege.ALL,
        account_type=0,
    )


# -- the official generator and the independent decoder ------------------------------


def test_official_user_sig_verifies() -> None:
    """A userSig from the vendor's Python generator verifies in tavkit."""
    sig = TLSSigAPIv2(APP, KEY).gen_sig(USER, 3600)
    doc = verify_user_sig(sig, sdk_app_id=APP, key=KEY, user_id=USER)
    assert (doc.identifier, doc.expire) == (USER, 3600)


@pytest.mark.parametrize("room_str", [None, "room-α"])
def test_official_private_map_key_verifies(room_str: str | None) -> None:
    """A privateMapKey from the vendor's generator (numeric and string room) verifies."""
    api = TLSSigAPIv2(APP, KEY)
    sig = api.gen_sig(USER, 3600)
    issued = decode_sig(sig).time
    userbuf = hand_userbuf(
        room_id=0 if room_str else 77, room_str=room_str, expire_at=issued + 3600, privilege=42
    )
    pmk = api.gen_sig_with_userbuf(USER, 3600, userbuf)
    room = {"room_str": room_str} if room_str else {"room_id": 77}
    grant = verify_private_map_key(pmk, sdk_app_id=APP, key=KEY, user_id=USER, **room)
    assert grant.privilege == Privilege.VIEWER
    assert grant.room == (room_str or 77)


def test_official_and_tavkit_documents_agree() -> None:
    """For the same inputs and second, tavkit's document equals the official generator's."""
    theirs = hand_decode(TLSSigAPIv2(APP, KEY).gen_sig("bob", 600))
    ours = hand_decode(gen_user_sig(APP, KEY, "bob", 600, now=theirs["TLS.time"]))
    assert ours == theirs


def test_tavkit_user_sig_checks_out_with_an_independent_decoder() -> None:
    """tavkit's userSig decodes and its HMAC checks with a decoder written by hand."""
    doc = hand_decode(gen_user_sig(APP, KEY, "alice", 120, now=TIME))
    assert doc["TLS.identifier"] == "alice"
    assert (doc["TLS.sdkappid"], doc["TLS.time"], doc["TLS.expire"]) == (APP, TIME, 120)
    assert doc["TLS.sig"] == hand_hmac(KEY, doc)
    assert doc["TLS.sig"] != hand_hmac(OTHER_KEY, doc)


def test_tavkit_string_room_key_checks_out_with_an_independent_decoder() -> None:
    """tavkit's string-room privateMapKey has the record the format table describes."""
    pmk = gen_private_map_key(
        APP, KEY, "alice", room_str="lobby", privilege=Privilege.VIEWER, expire=60, now=TIME
    )
    doc = hand_decode(pmk)
    assert doc["TLS.sig"] == hand_hmac(KEY, doc)
    userbuf = base64.b64decode(doc["TLS.userbuf"])
    assert userbuf == hand_userbuf(
        "alice", room_id=0, room_str="lobby", expire_at=TIME + 60, privilege=42
    )


# -- decoding is lenient about form ---------------------------------------------------


@pytest.mark.parametrize("level", range(10))
def test_every_zlib_level_decodes(level: int) -> None:
    """A document compressed at any zlib level verifies (implementations differ)."""
    sig = hand_encode(hand_decode(VECTOR), level=level)
    assert verify_user_sig(sig, sdk_app_id=APP, key=KEY, user_id=USER, now=TIME).identifier == USER


def test_spacing_key_order_padding_and_whitespace_do_not_matter() -> None:
    """Reordered keys, other spacing, no padding and line breaks still verify."""
    doc = hand_decode(VECTOR)
    reordered = dict(reversed(list(doc.items())))
    sig = hand_encode(reordered, separators=(" , ", " : ")).rstrip("_")
    wrapped = "\n".join(sig[i : i + 20] for i in range(0, len(sig), 20)) + "\r\n"
    assert verify_user_sig(wrapped, sdk_app_id=APP, key=KEY, user_id=USER, now=TIME).time == TIME


def test_numbers_sent_as_decimal_strings_are_read() -> None:
    """An issuer that writes sdkappid/time/expire as decimal strings still verifies."""
    sig = forge(sdkappid=str(APP), time=str(TIME), expire=str(EXPIRE))
    doc = verify_user_sig(sig, sdk_app_id=APP, key=KEY, user_id=USER, now=TIME)
    assert (doc.sdk_app_id, doc.time, doc.expire) == (APP, TIME, EXPIRE)


# -- every refusal names its reason and the seed's code -------------------------------


def test_expiry_is_exact_to_the_second() -> None:
    """Valid at time+expire, refused one second (or half a second) later."""
    verify_user_sig(VECTOR, sdk_app_id=APP, key=KEY, user_id=USER, now=TIME + EXPIRE)
    for late in (TIME + EXPIRE + 1, TIME + EXPIRE + 0.5):
        with pytest.raises(SignatureError) as excinfo:
            verify_user_sig(VECTOR, sdk_app_id=APP, key=KEY, user_id=USER, now=late)
        assert refusal(excinfo) == (SigFailure.EXPIRED, 70346)


@pytest.mark.parametrize(
    ("kwargs", "failure"),
    [
        ({"sdk_app_id": APP + 1}, SigFailure.APP_MISMATCH),
        ({"user_id": "Xiaojun"}, SigFailure.USER_MISMATCH),
        ({"key": OTHER_KEY}, SigFailure.BAD_HMAC),
        ({"now": TIME + EXPIRE + 1}, SigFailure.EXPIRED),
    ],
)
def test_user_sig_refusals_name_the_reason(kwargs: dict[str, Any], failure: SigFailure) -> None:
    """Wrong app, user, key or time each fail with their own reason, all as avkit 70346."""
    args: dict[str, Any] = {"sdk_app_id": APP, "key": KEY, "user_id": USER, "now": TIME}
    with pytest.raises(SignatureError) as excinfo:
        verify_user_sig(VECTOR, **(args | kwargs))
    assert refusal(excinfo) == (failure, int(AvkitCode.USER_SIG_INVALID))
    assert excinfo.value.message.startswith(f"userSig {failure.text}")


@pytest.mark.parametrize(
    ("sig", "failure"),
    [
        ("", SigFailure.MISSING),
        ("   ", SigFailure.MISSING),
        ("not a signature", SigFailure.PARSE),
        ("eJw_", SigFailure.PARSE),
        (VECTOR[:-20], SigFailure.PARSE),
    ],
)
def test_missing_and_garbage_user_sigs_are_refused(sig: str, failure: SigFailure) -> None:
    """An empty, undecodable or truncated userSig is refused as avkit 70346."""
    with pytest.raises(SignatureError) as excinfo:
        verify_user_sig(sig, sdk_app_id=APP, key=KEY, user_id=USER, now=TIME)
    assert refusal(excinfo) == (failure, 70346)


def test_order_of_checks_is_the_vendors() -> None:
    """A signature wrong in every way reports the app first, as the vendor does."""
    with pytest.raises(SignatureError) as excinfo:
        verify_user_sig(VECTOR, sdk_app_id=1, key=OTHER_KEY, user_id="x", now=TIME + EXPIRE + 9)
    assert excinfo.value.failure is SigFailure.APP_MISMATCH


def test_a_private_map_key_is_not_a_user_sig() -> None:
    """A validly signed privateMapKey offered as a userSig is refused (userbuf present)."""
    pmk = gen_private_map_key(APP, KEY, USER, room_id=1, now=TIME)
    with pytest.raises(SignatureError) as excinfo:
        verify_user_sig(pmk, sdk_app_id=APP, key=KEY, user_id=USER, now=TIME)
    assert refusal(excinfo) == (SigFailure.USERBUF_MISMATCH, 70346)


def _pmk_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"sdk_app_id": APP, "key": KEY, "user_id": USER, "room_id": 1234}
    return args | {"now": TIME} | overrides


@pytest.mark.parametrize(
    ("pmk", "overrides", "failure", "code"),
    [
        (None, {}, SigFailure.MISSING, 80),
        ("", {}, SigFailure.MISSING, 80),
        ("%%%", {}, SigFailure.PARSE, 82),
        (forge(userbuf=hand_userbuf() + b"\0"), {}, SigFailure.PARSE, 82),
        (forge(userbuf=b"\x07" + hand_userbuf()[1:]), {}, SigFailure.PARSE, 82),
        (
            forge(userbuf=hand_userbuf(expire_at=TIME + 10)),
            {"now": TIME + 11},
            SigFailure.EXPIRED,
            86,
        ),
        (forge(userbuf=hand_userbuf()), {"now": TIME + EXPIRE + 1}, SigFailure.EXPIRED, 86),
        (forge(userbuf=hand_userbuf()), {"sdk_app_id": 7}, SigFailure.APP_MISMATCH, 87),
        (forge(userbuf=hand_userbuf()), {"user_id": "bob"}, SigFailure.USER_MISMATCH, 87),
        (forge(userbuf=hand_userbuf()), {"key": OTHER_KEY}, SigFailure.BAD_HMAC, 87),
        (forge(userbuf=hand_userbuf(account="bob")), {}, SigFailure.USERBUF_MISMATCH, 87),
        (forge(userbuf=hand_userbuf(app=7)), {}, SigFailure.USERBUF_MISMATCH, 87),
        (forge(), {}, SigFailure.USERBUF_MISMATCH, 87),
        (forge(userbuf=hand_userbuf()), {"room_id": 1235}, SigFailure.ROOM_MISMATCH, 87),
        (
            forge(userbuf=hand_userbuf()),
            {"room_id": None, "room_str": "1234"},
            SigFailure.ROOM_MISMATCH,
            87,
        ),
        (
            forge(userbuf=hand_userbuf(room_id=0, room_str="a")),
            {"room_id": None, "room_str": "b"},
            SigFailure.ROOM_MISMATCH,
            87,
        ),
    ],
)
def test_private_map_key_refusals_map_to_seed_codes(
    pmk: str | None, overrides: dict[str, Any], failure: SigFailure, code: int
) -> None:
    """Missing → 80, undecodable → 82, expired → 86, any mismatch → 87, reason kept."""
    with pytest.raises(SignatureError) as excinfo:
        verify_private_map_key(pmk, **_pmk_args(**overrides))
    assert refusal(excinfo) == (failure, code)
    assert excinfo.value.message.startswith(f"privateMapKey {failure.text}")


def test_string_and_numeric_rooms_verify() -> None:
    """A numeric-room key opens its room id; a string-room key opens its room string."""
    numeric = gen_private_map_key(APP, KEY, USER, room_id=4294967295, now=TIME)
    assert verify_private_map_key(numeric, **_pmk_args(room_id=4294967295)).ver == 0
    text = gen_private_map_key(APP, KEY, USER, room_str="房间-1", privilege=2, now=TIME)
    grant = verify_private_map_key(text, **_pmk_args(room_id=None, room_str="房间-1"))
    assert (grant.ver, grant.room_id, grant.room_str, grant.privilege) == (1, 0, "房间-1", 2)


@pytest.mark.parametrize(
    "doc_change",
    [
        {"TLS.ver": "1.0"},
        {"TLS.sdkappid": True},
        {"TLS.time": 1.5},
        {"TLS.expire": "015"},
        {"TLS.identifier": 42},
        {"TLS.sig": base64.b64encode(b"short").decode()},
        {"TLS.sig": "not base64!"},
        {"TLS.userbuf": "***"},
    ],
)
def test_malformed_fields_are_parse_errors(doc_change: dict[str, Any]) -> None:
    """A field of the wrong type or form is a parse failure, not a crash."""
    doc = hand_decode(VECTOR) | doc_change
    with pytest.raises(SignatureError) as excinfo:
        decode_sig(hand_encode(doc))
    assert excinfo.value.failure is SigFailure.PARSE


def test_duplicate_keys_are_refused() -> None:
    """A document naming a field twice is refused, so no two parsers disagree on it."""
    text = json.dumps(hand_decode(VECTOR))[:-1] + ', "TLS.identifier": "mallory"}'
    packed = base64.b64encode(zlib.compress(text.encode())).decode()
    with pytest.raises(SignatureError) as excinfo:
        decode_sig(packed.replace("+", "*").replace("/", "-"))
    assert "duplicate" in excinfo.value.detail


def test_bytes_after_the_zlib_stream_are_refused() -> None:
    """Data appended after the compressed document is refused."""
    packed = zlib.compress(json.dumps(hand_decode(VECTOR)).encode()) + b"extra"
    with pytest.raises(SignatureError) as excinfo:
        decode_sig(base64.b64encode(packed).decode().replace("/", "-").replace("+", "*"))
    assert excinfo.value.failure is SigFailure.PARSE


def test_a_zlib_bomb_is_refused_without_inflating_it() -> None:
    """A small signature inflating to megabytes is refused as a parse failure."""
    packed = zlib.compress(b" " * 20_000_000, 9)
    sig = base64.b64encode(packed).decode().replace("/", "-").replace("+", "*")
    with pytest.raises(SignatureError) as excinfo:
        decode_sig(sig)
    assert excinfo.value.failure is SigFailure.PARSE


# -- the error object -----------------------------------------------------------------


def test_signature_error_is_in_the_error_tree() -> None:
    """SignatureError is an AvkitError with the seed's wire shape and the vendor code."""
    with pytest.raises(SignatureError) as excinfo:
        verify_user_sig(VECTOR, sdk_app_id=APP, key=OTHER_KEY, user_id=USER, now=TIME)
    exc = excinfo.value
    assert isinstance(exc, AvkitError)
    assert isinstance(exc, TAvKitError)
    assert exc.vendor_code == 70009
    wire = exc.to_dict()
    assert wire == {"module": "avkit", "errorCode": 70346, "errorMsg": exc.message}
    assert "HMAC" in wire["errorMsg"]
    assert TAvKitError.from_dict(wire) == exc


def test_vendor_codes_are_kept_for_logs() -> None:
    """Each failure carries the vendor's detailed code where the vendor has one."""
    assert {f: f.vendor_code for f in SigFailure if f.vendor_code is not None} == {
        SigFailure.EXPIRED: 70001,
        SigFailure.PARSE: 70003,
        SigFailure.BAD_HMAC: 70009,
        SigFailure.USER_MISMATCH: 70013,
        SigFailure.APP_MISMATCH: 70014,
    }


# -- the privateMapKey record ---------------------------------------------------------


def test_record_round_trips_with_unknown_bits_and_account_type() -> None:
    """Parsing then re-encoding a record is byte-identical, odd bits included."""
    raw = hand_userbuf(privilege=0x8000_0142, room_str="r", room_id=0)
    raw = raw[:-7] + struct.pack(">I", 5) + raw[-3:]  # account_type 5, before the room string
    grant = PrivateMapKey.parse(raw)
    assert (grant.account_type, int(grant.privilege), grant.room_str) == (5, 0x8000_0142, "r")
    assert grant.to_bytes() == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00",
        hand_userbuf()[:-1],
        hand_userbuf(room_str="abc", room_id=0)[:-1],
        b"\x00\x00\x02\xff\xfe",
    ],
)
def test_short_or_broken_records_are_parse_errors(raw: bytes) -> None:
    """A truncated record or invalid UTF-8 account is PARSE (avkit 82)."""
    with pytest.raises(SignatureError) as excinfo:
        PrivateMapKey.parse(raw)
    assert refusal(excinfo) == (SigFailure.PARSE, 82)


def test_require_refuses_a_missing_privilege() -> None:
    """A viewer's key grants entering but not sending audio (avkit 87, PRIVILEGE)."""
    grant = PrivateMapKey.parse(hand_userbuf(privilege=Privilege.VIEWER))
    grant.require(Privilege.ENTER | Privilege.RECV_VIDEO)
    with pytest.raises(SignatureError) as excinfo:
        grant.require(Privilege.ENTER | Privilege.SEND_AUDIO)
    assert refusal(excinfo) == (SigFailure.PRIVILEGE, 87)
    assert "SEND_AUDIO" in excinfo.value.message


# -- programming mistakes stay ValueError / TypeError ---------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"room_id": 1, "room_str": "a"},
        {"room_id": 0},
        {"room_id": 2**32},
        {"room_str": ""},
        {"room_id": 1, "privilege": 2**32},
        {"room_id": 1, "privilege": -1},
        {"room_id": 1, "expire": 2**32},
    ],
)
def test_bad_private_map_key_arguments_are_value_errors(kwargs: dict[str, Any]) -> None:
    """Neither or both rooms, out-of-range numbers: ValueError, not a signature."""
    with pytest.raises(ValueError):
        gen_private_map_key(APP, KEY, USER, now=TIME, **kwargs)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((0, KEY, USER), ValueError),
        ((APP, "", USER), ValueError),
        ((APP, KEY, ""), ValueError),
        ((str(APP), KEY, USER), TypeError),
    ],
)
def test_bad_user_sig_arguments_are_programming_errors(
    args: tuple[Any, ...], error: type[Exception]
) -> None:
    """An app id of 0, an empty key or user, a string app id: builtin errors."""
    with pytest.raises(error):
        gen_user_sig(*args, now=TIME)


def test_verify_needs_exactly_one_room() -> None:
    """verify_private_map_key with neither or both rooms is a ValueError."""
    pmk = gen_private_map_key(APP, KEY, USER, room_id=1, now=TIME)
    with pytest.raises(ValueError):
        verify_private_map_key(pmk, sdk_app_id=APP, key=KEY, user_id=USER)
    with pytest.raises(ValueError):
        verify_private_map_key(pmk, **_pmk_args(room_str="1"))


def test_default_clock_issues_signatures_valid_now() -> None:
    """Without ``now``, a fresh signature and key verify against the real clock."""
    sig = gen_user_sig(APP, KEY, USER, 60)
    assert isinstance(verify_user_sig(sig, sdk_app_id=APP, key=KEY, user_id=USER), SigDocument)
    pmk = gen_private_map_key(APP, KEY, USER, room_id=9, expire=60)
    assert verify_private_map_key(pmk, sdk_app_id=APP, key=KEY, user_id=USER, room_id=9).room == 9
