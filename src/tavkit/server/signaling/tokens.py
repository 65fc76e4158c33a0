"""Socket tokens: what ``enter`` hands out so the signaling socket knows who is calling.

A token binds one connection -- ``(sdkAppId, session UUID, userId, connectionId)`` --
and an expiry. It is ``base64url(json claims) "." base64url(HMAC-SHA256)`` under a
server secret. The secret is random per data directory and kept there
(:func:`load_or_create_secret`), so tokens survive a restart and a replica sharing
the data directory accepts them.

Tokens are opaque to clients; only this module reads them. Every refusal is
``ServerError(UNAUTHORISED)`` (10005), the code the socket sends before closing 4401.

A token is only ever made of ``[A-Za-z0-9._-]`` (:data:`TOKEN_ALPHABET`), all of them
characters an HTTP token allows, so it fits inside the WebSocket subprotocol
``tavkit.token.<token>`` (:data:`TOKEN_SUBPROTOCOL_PREFIX`); clients percent-encode
what they send there anyway (a no-op for these tokens), so a future format cannot
break the handshake. That header, unlike the URL, is in no access log.

The data directory is created owner-only (0700) and the secret file 0600: whoever
reads the secret can mint a token for any member.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol.rooms import RoomId, parse_room_id

__all__ = [
    "SECRET_FILE",
    "SUBPROTOCOL",
    "TOKEN_ALPHABET",
    "TOKEN_SUBPROTOCOL_PREFIX",
    "SocketClaims",
    "load_or_create_secret",
    "mint",
    "verify",
]

SECRET_FILE: Final = "socket-token-secret"
SUBPROTOCOL: Final = "tavkit.v1"
"""The subprotocol the server selects; clients offer it beside the token's."""
TOKEN_SUBPROTOCOL_PREFIX: Final = "tavkit.token."
"""A client offers ``tavkit.token.<socketToken>`` to carry its token in the handshake."""
TOKEN_ALPHABET: Final = re.compile(r"[A-Za-z0-9._-]+")
"""Every token matches this (``fullmatch``): base64url and a dot, valid in a subprotocol."""
_SECRET_BYTES: Final = 32
_MAX_TOKEN_CHARS: Final = 2048


@dataclass(frozen=True)
class SocketClaims:
    """What a valid token says: which connection of which member, and until when."""

    sdk_app_id: int
    room_uuid: uuid.UUID
    user_id: str
    connection_id: str
    expires_at: float
    privileges: int = 255
    """The member's privilege map (from its privateMapKey; 255 without one): the socket
    holds every relayed offer and answer to it."""
    room_id: RoomId | None = None
    """The room (a number, or a ``str`` for a string room), which a renewed privateMapKey
    must name (None: an older token). JSON keeps the kind: ``123`` is not ``"123"``."""
    user_sig_expires_at: float | None = None
    """When the member's userSig ends (Unix s; None: an older token, never warned)."""
    private_map_key_expires_at: float | None = None
    """When its privateMapKey ends, if it entered with one."""

    @property
    def credentials_expire_at(self) -> float | None:
        """When the member's credentials end: the earlier of its userSig's and key's ends."""
        ends = [t for t in (self.user_sig_expires_at, self.private_map_key_expires_at) if t]
        return min(ends) if ends else None

    def expired(self, now: float | None = None) -> bool:
        """Whether the token's first-connection window has passed."""
        return (time.time() if now is None else now) > self.expires_at


def mint(
    secret: bytes,
    *,
    sdk_app_id: int,
    room_uuid: uuid.UUID,
    user_id: str,
    connection_id: str,
    ttl: float,
    privileges: int = 255,
    room_id: RoomId | None = None,
    user_sig_expires_at: float | None = None,
    private_map_key_expires_at: float | None = None,
    now: float | None = None,
) -> str:
    """A token for one connection, valid for ``ttl`` seconds from ``now``.

    The room's number and the credentials' ends ride along so that every socket of
    the connection, resumes included, knows when to ask for a ``renew``.
    """
    if len(secret) < 16:
        raise ValueError("the token secret must be at least 16 bytes")
    issued = time.time() if now is None else now
    claims = {
        "a": sdk_app_id,
        "r": str(room_uuid),
        "u": user_id,
        "c": connection_id,
        "e": round(issued + ttl, 3),
        "p": privileges,
    }
    for name, value in (
        ("n", room_id),
        ("xu", user_sig_expires_at),
        ("xk", private_map_key_expires_at),
    ):
        if value is not None:
            claims[name] = value
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    token = f"{body}.{_b64(_sign(secret, body))}"
    assert TOKEN_ALPHABET.fullmatch(token)  # base64url by construction
    return token


def verify(
    secret: bytes, token: str, now: float | None = None, *, ignore_expiry: bool = False
) -> SocketClaims:
    """Check the token's signature and expiry and return its claims.

    ``ignore_expiry`` is for a socket resuming a connection whose member is still in
    the room: the token is then proof of identity only, and the caller must check
    that the connection is still live.
    """

    def refuse(why: str) -> ServerError:
        return ServerError(ServerCode.UNAUTHORISED, f"socket token {why}")

    if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
        raise refuse("is missing or too long")
    body, dot, mac = token.partition(".")
    if not dot:
        raise refuse("is malformed")
    try:
        given = _unb64(mac)
        expected = _sign(secret, body)
    except (ValueError, binascii.Error):
        raise refuse("is malformed") from None
    if not hmac.compare_digest(given, expected):
        raise refuse("has a bad signature")
    try:
        raw: Any = json.loads(_unb64(body))
        claims = SocketClaims(
            sdk_app_id=_typed(raw["a"], int),
            room_uuid=uuid.UUID(_typed(raw["r"], str)),
            user_id=_typed(raw["u"], str),
            connection_id=_typed(raw["c"], str),
            expires_at=float(_typed(raw["e"], (int, float))),
            privileges=_typed(raw.get("p", 255), int),
            room_id=None if raw.get("n") is None else parse_room_id(raw["n"]),
            user_sig_expires_at=_optional(raw.get("xu"), (int, float)),
            private_map_key_expires_at=_optional(raw.get("xk"), (int, float)),
        )
    except (KeyError, TypeError, ValueError, binascii.Error, ServerError):
        raise refuse("is malformed") from None
    if not ignore_expiry and claims.expired(now):
        raise refuse("has expired")
    return claims


def load_or_create_secret(data_dir: Path) -> bytes:
    """The data directory's token secret, created (owner-readable only) on first use."""
    path = data_dir / SECRET_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = secrets.token_hex(_SECRET_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race; use its secret
            text = path.read_text().strip()
        else:
            with os.fdopen(fd, "w") as out:
                out.write(text + "\n")
    secret = bytes.fromhex(text)
    if len(secret) < 16:
        raise ValueError(f"{path} holds a secret shorter than 16 bytes")
    return secret


def _sign(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    text.encode("ascii")  # a non-ASCII character raises UnicodeEncodeError, a ValueError
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _optional(value: Any, kind: type | tuple[type, ...]) -> Any:
    return None if value is None else _typed(value, kind)


def _typed(value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"unexpected {type(value).__name__}")
    return value
