"""The TLS-sig v2 envelope and HMAC, as bytes and dicts only: no policy, no error codes.

:mod:`tavkit.auth.signature` decides what a decoded document means and maps the
``ValueError`` raised here to its own refusals at the boundary.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from typing import Any

# Vendor signatures are a few hundred characters; these bounds only stop a hostile
# client from making the server inflate megabytes (a zlib bomb) per request.
MAX_SIG_CHARS = 16 * 1024
MAX_DOCUMENT_BYTES = 64 * 1024

# The vendor's base64 swaps three characters; this is not Python's urlsafe alphabet.
_TO_SIG = str.maketrans("+/=", "*-_")
_FROM_SIG = str.maketrans("*-_", "+/=")


def wrap(document: dict[str, Any]) -> str:
    """JSON (the vendor tools' spacing), zlib, then the vendor's base64."""
    packed = zlib.compress(json.dumps(document).encode("utf-8"))
    return base64.b64encode(packed).decode("ascii").translate(_TO_SIG)


def unwrap(sig: str) -> dict[str, Any]:
    """Undo :func:`wrap` from any issuer; ``ValueError`` says which layer failed.

    Whitespace anywhere and missing padding are tolerated; any zlib level inflates.
    A stream that is truncated, followed by extra bytes or inflates past
    :data:`MAX_DOCUMENT_BYTES` is refused, as is JSON naming a key twice.
    """
    text = "".join(sig.split()).translate(_FROM_SIG).rstrip("=")
    if not text or len(text) > MAX_SIG_CHARS:
        raise ValueError(f"length {len(text)} outside 1..{MAX_SIG_CHARS}")
    try:
        packed = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"base64: {exc}") from exc
    inflater = zlib.decompressobj()
    try:
        plain = inflater.decompress(packed, MAX_DOCUMENT_BYTES)
    except zlib.error as exc:
        raise ValueError(f"zlib: {exc}") from exc
    if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise ValueError("zlib: truncated, oversized or followed by extra bytes")
    try:
        document = json.loads(plain.decode("utf-8"), object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise ValueError(f"JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError("the document is not a JSON object")
    return document


def digest(
    key: str, identifier: str, sdk_app_id: int, issued: int, expire: int, userbuf_b64: str | None
) -> bytes:
    """HMAC-SHA256 over the vendor's fixed lines; the key is the secret's UTF-8 text."""
    content = (
        f"TLS.identifier:{identifier}\n"
        f"TLS.sdkappid:{sdk_app_id}\n"
        f"TLS.time:{issued}\n"
        f"TLS.expire:{expire}\n"
    )
    if userbuf_b64 is not None:
        content += f"TLS.userbuf:{userbuf_b64}\n"
    return hmac.new(key.encode("utf-8"), content.encode("utf-8"), hashlib.sha256).digest()


def b64encode(data: bytes) -> str:
    """Standard padded base64, as ``TLS.sig`` and ``TLS.userbuf`` use."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, name: str) -> bytes:
    """Strict standard base64; ``ValueError`` names the field."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{name} is not base64: {exc}") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate keys: two parsers must never read two different documents."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"duplicate key {name!r}")
        out[name] = value
    return out
