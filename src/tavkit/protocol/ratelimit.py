"""A token bucket: the socket's flood guard, with no clock of its own.

The contract allows 50 frames a second sustained with bursts of 100; a frame beyond
that is answered with ``error`` 10004 and dropped, and the connection stays. The
bucket is sans-I/O: it reads time from an injected clock, so tests drive it with a
fake clock and the server with :func:`time.monotonic` (never the wall clock, which
can jump).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allow ``rate`` events a second on average and ``burst`` at once.

    The bucket starts full. Each :meth:`allow` refills it by the time elapsed since
    the previous call (capped at ``burst``) and spends ``cost`` tokens if it can.
    """

    def __init__(
        self,
        rate: float = 50.0,
        burst: float = 100.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    @property
    def tokens(self) -> float:
        """The tokens available now (refilled, not spent)."""
        self._refill()
        return self._tokens

    def allow(self, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens and return True, or return False and spend nothing."""
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def _refill(self) -> None:
        now = self._clock()
        # max(): a clock that steps backwards must not drain the bucket.
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
