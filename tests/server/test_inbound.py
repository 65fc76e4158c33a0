"""The socket's inbound screen (server/signaling/inbound.py), on a fake clock."""

from __future__ import annotations

from tavkit.protocol import MAX_FRAME_BYTES
from tavkit.server.signaling.inbound import InboundScreen, Verdict, over_limit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_frame_over_the_limit_closes_and_costs_no_token():
    """An oversize frame is TOO_BIG however many tokens are left, and spends none."""
    screen = InboundScreen(Clock(), rate=1, burst=1)
    assert screen.check("x" * (MAX_FRAME_BYTES + 1)) is Verdict.TOO_BIG
    assert screen.check("{}") is Verdict.PASS


def test_size_is_counted_in_utf8_bytes():
    """Four-byte characters count four times; a lone surrogate does not crash the count."""
    limit = 100
    assert not over_limit("😀" * 25, limit)
    assert over_limit("😀" * 26, limit)
    assert over_limit(b"x" * 101, limit)
    assert not over_limit("\ud800" * 33, limit)


def test_past_the_burst_frames_drop_with_one_warning_a_second():
    """Past the bucket a frame is dropped; the client is warned at most once a second."""
    clock = Clock()
    screen = InboundScreen(clock, rate=1, burst=2)
    assert [screen.check("{}") for _ in range(2)] == [Verdict.PASS, Verdict.PASS]
    assert screen.check("{}") is Verdict.DROP_AND_WARN
    assert screen.check("{}") is Verdict.DROP
    clock.now = 1.0
    assert screen.check("{}") is Verdict.PASS  # one token refilled
    assert screen.check("{}") is Verdict.DROP_AND_WARN
    assert screen.rate_error().code == 10004
