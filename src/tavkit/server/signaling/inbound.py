"""Sans-I/O: the checks every inbound socket frame passes before it is parsed.

In order, and why:

1. **size** - a frame over :data:`~tavkit.protocol.MAX_FRAME_BYTES` UTF-8 bytes closes
   the socket (1009): the client is broken or hostile, and parsing it would cost more
   than refusing it;
2. **rate** - a token bucket per socket (50 frames/s, bursts of 100); a frame past it
   is dropped, and the client hears ``rate limited`` at most once a second, so a
   flood is not answered by a flood.

What passes goes on to the heartbeat touch and to
:func:`~tavkit.protocol.parse_client_frame`. The socket (``connection.py``) owns the
I/O; :class:`InboundScreen` only decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import Final

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import MAX_FRAME_BYTES, TokenBucket

__all__ = ["BURST", "RATE", "RATE_ERROR_EVERY", "InboundScreen", "Verdict", "over_limit"]

RATE: Final = 50.0
BURST: Final = 100.0
"""Inbound frames per second (sustained) and at once, per socket."""
RATE_ERROR_EVERY: Final = 1.0
"""At most one "rate limited" error a second."""


class Verdict(Enum):
    """What to do with a frame."""

    PASS = "pass"
    """Go on: touch the heartbeat, parse, act."""
    TOO_BIG = "too-big"
    """Close the socket with 1009."""
    DROP = "drop"
    """Drop it silently (over the rate, the client was told recently)."""
    DROP_AND_WARN = "drop-and-warn"
    """Drop it and send :meth:`InboundScreen.rate_error` to the client."""


def over_limit(raw: str | bytes, limit: int) -> bool:
    """Whether a frame is over ``limit`` UTF-8 bytes, encoding only when it must."""
    if isinstance(raw, bytes) or len(raw) > limit:
        return len(raw) > limit
    if len(raw) * 4 <= limit:  # no character takes more than four bytes
        return False
    return len(raw.encode("utf-8", "surrogatepass")) > limit


class InboundScreen:
    """One socket's size and rate checks, on the socket's clock."""

    __slots__ = ("_bucket", "_clock", "_last_warning", "_max_bytes", "_rate")

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        rate: float = RATE,
        burst: float = BURST,
        max_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self._clock = clock
        self._rate = rate
        self._bucket = TokenBucket(rate, burst, clock=clock)
        self._max_bytes = max_bytes
        self._last_warning = -math.inf

    def check(self, raw: str | bytes) -> Verdict:
        """The verdict on one frame, spending a token when it is not too big."""
        if over_limit(raw, self._max_bytes):
            return Verdict.TOO_BIG
        if self._bucket.allow():
            return Verdict.PASS
        now = self._clock()
        if now - self._last_warning >= RATE_ERROR_EVERY:
            self._last_warning = now
            return Verdict.DROP_AND_WARN
        return Verdict.DROP

    def rate_error(self) -> ServerError:
        """What the client is told when its frames are being dropped (server 10004)."""
        return ServerError(
            ServerCode.INVALID_PARAMETER,
            f"rate limited: over {self._rate:g} frames/s; frames are being dropped",
        )
