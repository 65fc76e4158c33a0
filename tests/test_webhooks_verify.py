"""tavkit.webhooks: the Stripe-style signature a receiver checks."""

from __future__ import annotations

import hashlib
import hmac

import pytest

import tavkit.webhooks as webhooks
from tavkit.webhooks import WebhookSignatureError, sign, verify

BODY = b'{"id":1,"type":"room.opened"}'
SECRET = "whsec_0123456789abcdef"
T = 1_700_000_000


def test_the_public_api_is_exactly_this():
    """``__all__`` names the helpers, the error and the constants, nothing else."""
    assert sorted(webhooks.__all__) == [
        "DEFAULT_TOLERANCE",
        "SIGNATURE_HEADER",
        "WebhookSignatureError",
        "sign",
        "verify",
    ]


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    """Any HMAC library reproduces the header from the secret, t and the body."""
    digest = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET, T) == f"t={T},v1={digest}"


def test_a_fresh_signature_verifies():
    """The header sign() makes verifies within the tolerance, either side of now."""
    header = sign(BODY, SECRET, T)
    verify(BODY, header, SECRET, now=T)
    verify(BODY, header, SECRET, now=T + 299)
    verify(BODY, header, SECRET, now=T - 299)


@pytest.mark.parametrize(
    ("body", "secret"),
    [(BODY + b" ", SECRET), (BODY.replace(b"1", b"2"), SECRET), (BODY, SECRET + "x")],
)
def test_a_changed_body_or_secret_fails(body: bytes, secret: str):
    """One byte of body or a different secret and the signature no longer matches."""
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify(body, sign(BODY, SECRET, T), secret, now=T)


def test_a_stale_or_future_timestamp_fails():
    """Outside the tolerance the signature is refused even though it matches (replays)."""
    header = sign(BODY, SECRET, T)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify(BODY, header, SECRET, now=T + 301)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify(BODY, header, SECRET, now=T - 301)
    verify(BODY, header, SECRET, now=T + 3600, tolerance=3600)


def test_a_tampered_timestamp_fails():
    """Moving t forward to dodge the tolerance breaks the signature."""
    digest = sign(BODY, SECRET, T).split("v1=")[1]
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify(BODY, f"t={T + 1000},v1={digest}", SECRET, now=T + 1000)


def test_any_of_several_v1_values_may_match():
    """During a secret rotation the header carries a signature per secret."""
    old, new = sign(BODY, "old-secret-0123456789", T), sign(BODY, SECRET, T)
    header = f"t={T},v1={old.split('v1=')[1]},v1={new.split('v1=')[1]}"
    verify(BODY, header, SECRET, now=T)
    verify(BODY, header, "old-secret-0123456789", now=T)
    with pytest.raises(WebhookSignatureError):
        verify(BODY, header, "a-third-secret-0123456", now=T)


@pytest.mark.parametrize(
    ("header", "said"),
    [
        (None, "no Tavkit-Signature"),
        ("", "no Tavkit-Signature"),
        ("garbage", "unreadable"),
        ("t=abc,v1=00", "unreadable timestamp"),
        (f"t={T},t={T},v1=00", "unreadable timestamp"),
        ("v1=00", "no timestamp"),
        (f"t={T}", "no v1"),
        (f"t={T},v0=00", "no v1"),
    ],
)
def test_an_unreadable_header_is_refused_with_a_reason(header: str | None, said: str):
    """Missing or malformed headers raise the signature error (a ValueError) naming why."""
    with pytest.raises(WebhookSignatureError, match=said) as refused:
        verify(BODY, header, SECRET, now=T)
    assert isinstance(refused.value, ValueError)


def test_an_empty_secret_is_a_programming_error():
    """Signing or verifying with no secret is refused rather than accepted by everyone."""
    with pytest.raises(ValueError, match="empty"):
        sign(BODY, "", T)
    with pytest.raises(ValueError, match="empty"):
        verify(BODY, sign(BODY, SECRET, T), "", now=T)
