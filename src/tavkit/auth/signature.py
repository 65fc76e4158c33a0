"""userSig and privateMapKey: TLS-sig v2 signatures, generated and verified.

A signature is ``sigbase64(zlib(json(document)))`` where the document names a user,
an app, an issue time and a lifetime, and carries an HMAC-SHA256 of those values
keyed with the app's secret (the envelope and HMAC are in :mod:`._codec`). A
privateMapKey is the same envelope with a ``TLS.userbuf``: a small big-endian
record (:class:`PrivateMapKey`) naming the room and the privileges granted in it.

The formats are the vendor's, so signatures minted by its tools verify here and
ours verify there. Implementations differ in zlib level, JSON spacing and key
order; we therefore never compare whole signature strings, we decode and recompute.

Verification runs in the vendor's order -- decode, app, user, expiry, userbuf
presence, HMAC (constant time), then for a privateMapKey the record's own checks --
and stops at the first failure with a :class:`SignatureError` whose
:class:`SigFailure` says exactly what went wrong. On the wire only the seed's codes
travel; the precise reason is in ``errorMsg`` and the vendor's detailed code is
kept on the failure for logs:

=================  ==========  ==============================  ===========
failure            vendor      userSig                         privateMapKey
=================  ==========  ==============================  ===========
MISSING            --          avkit 70346 USER_SIG_INVALID    avkit 80
PARSE              70003       avkit 70346                     avkit 82
EXPIRED            70001       avkit 70346                     avkit 86
APP_MISMATCH       70014       avkit 70346                     avkit 87
USER_MISMATCH      70013       avkit 70346                     avkit 87
BAD_HMAC           70009       avkit 70346                     avkit 87
USERBUF_MISMATCH   --          avkit 70346                     avkit 87
ROOM_MISMATCH      --          --                              avkit 87
PRIVILEGE          --          --                              avkit 87
=================  ==========  ==============================  ===========
"""

from __future__ import annotations

import hmac
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tavkit.auth import _codec
from tavkit.auth.grants import PRIVILEGE_MAX, Privilege
from tavkit.errors import AvkitCode, AvkitError

__all__ = [
    "DEFAULT_EXPIRE",
    "PrivateMapKey",
    "SigDocument",
    "SigFailure",
    "SignatureError",
    "decode_sig",
    "gen_private_map_key",
    "gen_user_sig",
    "verify_private_map_key",
    "verify_user_sig",
]

DEFAULT_EXPIRE = 86400 * 180
"""The vendor tools' default lifetime: 180 days."""

_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF
_VERSION = "2.0"
_HMAC_SIZE = 32


class SigFailure(StrEnum):
    """Why a signature was refused; ``vendor_code`` is the cloud's detailed code, if any."""

    vendor_code: int | None
    text: str

    def __new__(cls, value: str, vendor_code: int | None, text: str) -> SigFailure:
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.vendor_code = vendor_code
        obj.text = text
        return obj

    MISSING = ("missing", None, "is missing")
    PARSE = ("parse", 70003, "could not be decoded")
    EXPIRED = ("expired", 70001, "has expired")
    APP_MISMATCH = ("app_mismatch", 70014, "was issued for another sdkAppId")
    USER_MISMATCH = ("user_mismatch", 70013, "was issued for another userId")
    BAD_HMAC = ("bad_hmac", 70009, "failed its HMAC check (wrong key, or altered)")
    USERBUF_MISMATCH = ("userbuf_mismatch", None, "carries the wrong payload")
    ROOM_MISMATCH = ("room_mismatch", None, "was issued for another room")
    PRIVILEGE = ("privilege", None, "does not grant the privilege needed")


def _seed_code(failure: SigFailure, private_map_key: bool) -> AvkitCode:
    """The seed's code for ``failure`` (see the table in the module docstring)."""
    if not private_map_key:
        return AvkitCode.USER_SIG_INVALID
    if failure is SigFailure.MISSING:
        return AvkitCode.PRIVATE_MAP_KEY_MISSING
    if failure is SigFailure.PARSE:
        return AvkitCode.PARAMETER_CHECK_FAILED
    if failure is SigFailure.EXPIRED:
        return AvkitCode.PRIVATE_MAP_KEY_EXPIRED
    return AvkitCode.PRIVATE_MAP_KEY_WRONG


class SignatureError(AvkitError):
    """A userSig or privateMapKey was refused; ``failure`` says why, ``code`` is the seed's."""

    def __init__(
        self, failure: SigFailure, detail: str = "", *, private_map_key: bool = False
    ) -> None:
        self.failure = failure
        self.detail = detail
        self.private_map_key = private_map_key
        subject = "privateMapKey" if private_map_key else "userSig"
        message = f"{subject} {failure.text}" + (f": {detail}" if detail else "")
        super().__init__(_seed_code(failure, private_map_key), message)

    @property
    def vendor_code(self) -> int | None:
        """The cloud vendor's detailed code for this failure, for logs."""
        return self.failure.vendor_code

    def __repr__(self) -> str:
        return f"SignatureError({self.failure!r}, {self.detail!r}, code={int(self.code)})"


@dataclass(frozen=True)
class SigDocument:
    """The decoded JSON of a signature, typed; ``raw`` is the document as received."""

    identifier: str
    sdk_app_id: int
    expire: int
    time: int
    sig_b64: str
    userbuf: bytes | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def expires_at(self) -> int:
        """The last Unix second at which the signature is still valid."""
        return self.time + self.expire

    def userbuf_b64(self) -> str | None:
        """The userbuf exactly as it travelled (the HMAC covers this text, not the bytes)."""
        text = self.raw.get("TLS.userbuf")
        if isinstance(text, str):
            return text
        return None if self.userbuf is None else _codec.b64encode(self.userbuf)


@dataclass(frozen=True)
class PrivateMapKey:
    """The userbuf of a privateMapKey: who may enter which room, until when, doing what.

    ``ver`` 0 names a numeric room (``room_id``); ``ver`` 1 a string room
    (``room_str``, with ``room_id`` 0). ``expire_at`` is absolute Unix time.
    """

    ver: int
    account: str
    sdk_app_id: int
    room_id: int
    room_str: str | None
    expire_at: int
    privilege: Privilege
    account_type: int = 0

    def __post_init__(self) -> None:
        if self.ver not in (0, 1):
            raise ValueError(f"unknown privateMapKey version {self.ver}")
        if (self.ver == 1) != (self.room_str is not None):
            raise ValueError("room_str is given exactly when ver is 1")
        for name in ("sdk_app_id", "room_id", "expire_at", "privilege", "account_type"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U32:
                raise ValueError(f"{name} must be an integer in 0..{_U32}, not {value!r}")
        for name in ("account", "room_str"):
            text = getattr(self, name)
            if text is not None and len(text.encode("utf-8")) > _U16:
                raise ValueError(f"{name} is longer than {_U16} bytes")
        object.__setattr__(self, "privilege", Privilege(self.privilege))

    @property
    def room(self) -> int | str:
        """The room this key opens: the string room for ver 1, else the numeric one."""
        return self.room_str if self.room_str is not None else self.room_id

    @classmethod
    def parse(cls, data: bytes) -> PrivateMapKey:
        """Read the vendor's big-endian record; ``SignatureError(PARSE)`` if it is not one."""
        reader = _Reader(data)
        try:
            ver = reader.unpack(">B")
            account = reader.text()
            sdk_app_id, room_id, expire_at, privilege, account_type = [
                reader.unpack(">I") for _ in range(5)
            ]
            room_str = reader.text() if ver == 1 else None
            if reader.remaining:
                raise ValueError(f"{reader.remaining} unexpected trailing bytes")
            return cls(
                ver=ver,
                account=account,
                sdk_app_id=sdk_app_id,
                room_id=room_id,
                room_str=room_str,
                expire_at=expire_at,
                privilege=Privilege(privilege),
                account_type=account_type,
            )
        except (ValueError, struct.error) as exc:
            raise SignatureError(SigFailure.PARSE, f"userbuf: {exc}", private_map_key=True) from exc

    def to_bytes(self) -> bytes:
        """The record as it goes into ``TLS.userbuf``."""
        account = self.account.encode("utf-8")
        out = struct.pack(">BH", self.ver, len(account)) + account
        out += struct.pack(
            ">IIIII",
            self.sdk_app_id,
            self.room_id,
            self.expire_at,
            int(self.privilege),
            self.account_type,
        )
        if self.room_str is not None:
            room = self.room_str.encode("utf-8")
            out += struct.pack(">H", len(room)) + room
        return out

    def require(self, needed: Privilege) -> None:
        """Raise ``SignatureError(PRIVILEGE)`` (avkit 87) unless all of ``needed`` is granted."""
        missing = Privilege(int(needed) & ~int(self.privilege))
        if missing:
            raise SignatureError(
                SigFailure.PRIVILEGE,
                f"missing {missing!r} (granted {int(self.privilege)})",
                private_map_key=True,
            )


class _Reader:
    """Reads the userbuf front to back, failing loudly on short input."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += struct.calcsize(fmt)
        return int(value)

    def text(self) -> str:
        size = self.unpack(">H")
        if size > self.remaining:
            raise ValueError(f"a {size}-byte string runs past the end")
        raw = self._data[self._pos : self._pos + size]
        self._pos += size
        return raw.decode("utf-8")


def decode_sig(sig: str) -> SigDocument:
    """Decode a userSig or privateMapKey without a key; ``SignatureError(PARSE)`` if malformed.

    Accepts any zlib level, missing padding and embedded whitespace. Nothing is
    verified: use this to inspect, never to authenticate.
    """
    return _decode(sig, private_map_key=False)


def gen_user_sig(
    sdk_app_id: int, key: str, user_id: str, expire: int = DEFAULT_EXPIRE, *, now: int | None = None
) -> str:
    """Mint a userSig for ``user_id``, valid ``expire`` seconds from ``now`` (default: clock)."""
    return _generate(sdk_app_id, key, user_id, expire, now, userbuf=None)


def verify_user_sig(
    sig: str, *, sdk_app_id: int, key: str, user_id: str, now: float | None = None
) -> SigDocument:
    """Check that ``sig`` is a valid userSig of ``user_id`` in ``sdk_app_id``; return its document.

    Raises :class:`SignatureError` (avkit 70346) with the precise reason.
    """
    _check_key(key)
    if not sig or not sig.strip():
        raise SignatureError(SigFailure.MISSING)
    doc = _decode(sig, private_map_key=False)
    _check_claims(doc, sdk_app_id, user_id, _now(now), private_map_key=False)
    if doc.userbuf is not None:
        raise SignatureError(SigFailure.USERBUF_MISMATCH, "it has a userbuf (a privateMapKey?)")
    _check_hmac(doc, key, private_map_key=False)
    return doc


def gen_private_map_key(
    sdk_app_id: int,
    key: str,
    user_id: str,
    *,
    room_id: int | None = None,
    room_str: str | None = None,
    privilege: int = Privilege.ALL,
    expire: int = DEFAULT_EXPIRE,
    now: int | None = None,
) -> str:
    """Mint a privateMapKey letting ``user_id`` into one room with ``privilege``.

    Give exactly one of ``room_id`` (a u32 above 0, record version 0) or ``room_str``
    (a non-empty string, record version 1).
    """
    _check_room(room_id, room_str)
    issued = _issue_time(now)
    _check_int("expire", expire, 0)
    _check_int("privilege", privilege, 0, PRIVILEGE_MAX)
    grant = PrivateMapKey(
        ver=0 if room_str is None else 1,
        account=user_id,
        sdk_app_id=sdk_app_id,
        room_id=room_id or 0,
        room_str=room_str,
        expire_at=issued + expire,
        privilege=Privilege(privilege),
    )
    return _generate(sdk_app_id, key, user_id, expire, issued, userbuf=grant.to_bytes())


def verify_private_map_key(
    pmk: str | None,
    *,
    sdk_app_id: int,
    key: str,
    user_id: str,
    room_id: int | None = None,
    room_str: str | None = None,
    now: float | None = None,
) -> PrivateMapKey:
    """Check that ``pmk`` lets ``user_id`` of ``sdk_app_id`` into the given room; return the grant.

    Give exactly one of ``room_id`` and ``room_str``, the room being entered.
    Raises :class:`SignatureError` (avkit 80/82/86/87) with the precise reason.
    """
    _check_key(key)
    _check_room(room_id, room_str)
    if pmk is None or not pmk.strip():
        raise SignatureError(SigFailure.MISSING, private_map_key=True)
    at = _now(now)
    doc = _decode(pmk, private_map_key=True)
    _check_claims(doc, sdk_app_id, user_id, at, private_map_key=True)
    if doc.userbuf is None:
        raise SignatureError(
            SigFailure.USERBUF_MISMATCH, "it has no userbuf (a userSig?)", private_map_key=True
        )
    _check_hmac(doc, key, private_map_key=True)
    grant = PrivateMapKey.parse(doc.userbuf)

    def refuse(failure: SigFailure, detail: str) -> SignatureError:
        return SignatureError(failure, detail, private_map_key=True)

    if grant.account != doc.identifier:
        raise refuse(SigFailure.USERBUF_MISMATCH, f"userbuf account {_show(grant.account)}")
    if grant.sdk_app_id != doc.sdk_app_id:
        raise refuse(SigFailure.USERBUF_MISMATCH, f"userbuf sdkAppId {grant.sdk_app_id}")
    if at > grant.expire_at:
        raise refuse(SigFailure.EXPIRED, f"room grant ended {_iso(grant.expire_at)}")
    if room_str is not None and (grant.ver, grant.room_str) != (1, room_str):
        raise refuse(SigFailure.ROOM_MISMATCH, f"key for room {_show(grant.room)}")
    if room_id is not None and (grant.ver, grant.room_id) != (0, room_id):
        raise refuse(SigFailure.ROOM_MISMATCH, f"key for room {_show(grant.room)}")
    return grant


# -- helpers ---------------------------------------------------------------------------


def _generate(
    sdk_app_id: int, key: str, user_id: str, expire: int, now: int | None, userbuf: bytes | None
) -> str:
    """Build, sign and wrap a document in the vendor tools' key order and spacing."""
    _check_key(key)
    _check_int("sdk_app_id", sdk_app_id, 1, _U32)
    _check_int("expire", expire, 0)
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty string")
    issued = _issue_time(now)
    doc: dict[str, Any] = {
        "TLS.ver": _VERSION,
        "TLS.identifier": user_id,
        "TLS.sdkappid": sdk_app_id,
        "TLS.expire": expire,
        "TLS.time": issued,
    }
    userbuf_b64 = None
    if userbuf is not None:
        userbuf_b64 = doc["TLS.userbuf"] = _codec.b64encode(userbuf)
    mac = _codec.digest(key, user_id, sdk_app_id, issued, expire, userbuf_b64)
    doc["TLS.sig"] = _codec.b64encode(mac)
    return _codec.wrap(doc)


def _decode(sig: str, *, private_map_key: bool) -> SigDocument:
    """Unwrap and type a document, mapping every lower-layer failure to ``PARSE``."""
    if not isinstance(sig, str):
        raise TypeError(f"a signature is a str, not {type(sig).__name__}")
    try:
        return _document(_codec.unwrap(sig))
    except ValueError as exc:
        raise SignatureError(SigFailure.PARSE, str(exc), private_map_key=private_map_key) from exc


def _document(raw: dict[str, Any]) -> SigDocument:
    """Type the fields of a decoded document; ``ValueError`` names the first bad one."""
    if raw.get("TLS.ver") != _VERSION:
        raise ValueError(f"TLS.ver is {_show(raw.get('TLS.ver'))}, not {_VERSION!r}")
    identifier = raw.get("TLS.identifier")
    if not isinstance(identifier, str):
        raise ValueError("TLS.identifier is not a string")
    sig_b64 = raw.get("TLS.sig")
    if not isinstance(sig_b64, str) or len(_codec.b64decode(sig_b64, "TLS.sig")) != _HMAC_SIZE:
        raise ValueError(f"TLS.sig is not the base64 of {_HMAC_SIZE} bytes")
    userbuf_b64 = raw.get("TLS.userbuf")
    if userbuf_b64 is not None and not isinstance(userbuf_b64, str):
        raise ValueError("TLS.userbuf is not a string")
    return SigDocument(
        identifier=identifier,
        sdk_app_id=_number(raw, "TLS.sdkappid"),
        expire=_number(raw, "TLS.expire"),
        time=_number(raw, "TLS.time"),
        sig_b64=sig_b64,
        userbuf=None if userbuf_b64 is None else _codec.b64decode(userbuf_b64, "TLS.userbuf"),
        raw=raw,
    )


def _number(raw: dict[str, Any], name: str) -> int:
    """An integer field; a canonical decimal string is accepted as some issuers send one."""
    value = raw.get(name)
    if isinstance(value, str) and value.isascii() and value.isdigit() and str(int(value)) == value:
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} is not an integer")
    return value


def _check_claims(
    doc: SigDocument, sdk_app_id: int, user_id: str, now: float, *, private_map_key: bool
) -> None:
    """Steps 2-4 of the vendor's order: app, user, expiry."""
    if doc.sdk_app_id != sdk_app_id:
        failure, detail = SigFailure.APP_MISMATCH, f"issued for {doc.sdk_app_id}"
    elif doc.identifier != user_id:
        failure, detail = SigFailure.USER_MISMATCH, f"issued for {_show(doc.identifier)}"
    elif now > doc.expires_at:
        failure = SigFailure.EXPIRED
        detail = f"valid until {_iso(doc.expires_at)} (time {doc.time} + expire {doc.expire})"
    else:
        return
    raise SignatureError(failure, detail, private_map_key=private_map_key)


def _check_hmac(doc: SigDocument, key: str, *, private_map_key: bool) -> None:
    """Recompute the HMAC over the values as received and compare in constant time."""
    expected = _codec.digest(
        key, doc.identifier, doc.sdk_app_id, doc.time, doc.expire, doc.userbuf_b64()
    )
    if not hmac.compare_digest(expected, _codec.b64decode(doc.sig_b64, "TLS.sig")):
        raise SignatureError(SigFailure.BAD_HMAC, private_map_key=private_map_key)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError("the app's secret key must be a non-empty string")


def _check_int(name: str, value: object, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name}={value} is outside {low}..{'' if high is None else high}")


def _check_room(room_id: int | None, room_str: str | None) -> None:
    if (room_id is None) == (room_str is None):
        raise ValueError("give exactly one of room_id and room_str")
    if room_id is not None:
        _check_int("room_id", room_id, 1, _U32)
    elif not isinstance(room_str, str) or not room_str:
        raise ValueError("room_str must be a non-empty string")


def _issue_time(now: int | None) -> int:
    if now is None:
        return int(time.time())
    _check_int("now", now, 0, _U32)
    return now


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _iso(seconds: int) -> str:
    """A Unix time for people, falling back to the number when it is out of range."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def _show(value: object) -> str:
    """A short repr of untrusted input, so logs stay readable and bounded."""
    text = repr(value)
    return text if len(text) <= 66 else text[:63] + "..."
