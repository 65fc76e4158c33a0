"""Signed webhooks: :func:`sign` as the server does, :func:`verify` for the receiving backend.

A webhook's ``Tavkit-Signature`` header is ``t=<unix seconds>,v1=<hex>``, where the hex
is HMAC-SHA256 of ``f"{t}." + body`` keyed with the endpoint's secret (Stripe's scheme,
so receivers can reuse what they know). Signing the timestamp with the body means a
captured delivery cannot be replayed later than ``tolerance`` seconds: the receiver
checks both. During a secret rotation the header may carry several ``v1=`` values;
one matching is enough. A receiver verifies the raw body bytes, before parsing::

    from tavkit.webhooks import WebhookSignatureError, verify

    try:
        verify(request_body, headers["Tavkit-Signature"], secret)
    except WebhookSignatureError:
        return 400
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

__all__ = ["DEFAULT_TOLERANCE", "SIGNATURE_HEADER", "WebhookSignatureError", "sign", "verify"]

SIGNATURE_HEADER: Final = "Tavkit-Signature"
"""The header carrying the signature."""
DEFAULT_TOLERANCE: Final = 300.0
"""Seconds a signature's timestamp may be away from the receiver's clock (either way)."""


class WebhookSignatureError(ValueError):
    """The signature header is missing, unreadable, stale, or matches no ``v1`` value."""


def _digest(body: bytes, secret: str, t: int) -> str:
    signed = str(t).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, t: int) -> str:
    """The ``Tavkit-Signature`` value of ``body`` sent at Unix time ``t``."""
    if not secret:
        raise ValueError("the webhook secret is empty")
    return f"t={t},v1={_digest(body, secret, t)}"


def verify(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check that ``header`` signs ``body`` with ``secret`` within ``tolerance`` of ``now``.

    ``now`` defaults to the current time. Raises :class:`WebhookSignatureError` saying
    what is wrong (never echoing the expected signature). Digests are compared in
    constant time.
    """
    if not secret:
        raise ValueError("the webhook secret is empty")
    if not header:
        raise WebhookSignatureError(f"no {SIGNATURE_HEADER} header")
    stamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookSignatureError(f"unreadable {SIGNATURE_HEADER} header")
        if key == "t":
            if not value.isdigit() or stamp is not None:
                raise WebhookSignatureError(f"unreadable timestamp in {SIGNATURE_HEADER}")
            stamp = int(value)
        elif key == "v1":
            candidates.append(value)
        # Other schemes (v0, a future v2) are ignored, as Stripe's receivers do.
    if stamp is None:
        raise WebhookSignatureError(f"no timestamp in {SIGNATURE_HEADER}")
    if not candidates:
        raise WebhookSignatureError(f"no v1 signature in {SIGNATURE_HEADER}")
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        raise WebhookSignatureError(
            f"the signature's timestamp is {current - stamp:.0f} s away from now "
            f"(tolerance {tolerance:g} s)"
        )
    expected = _digest(body, secret, stamp).encode()
    # Compare with every candidate so the time taken does not say which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise WebhookSignatureError("the signature does not match the body and secret")
