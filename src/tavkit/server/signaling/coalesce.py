"""Sans-I/O: a member's ``state`` frames, coalesced so that a spammer cannot take the writer.

A ``state`` frame (mute, camera) costs a database write and a broadcast, and on
SQLite every write waits for the one writer that heartbeats, enters and messages
need too. Nobody can tell more than a few changes a second apart, so each socket
writes at most one state per :data:`STATE_WINDOW`, and the last state of a window
wins:

* the first state after a quiet window is written at once (a click costs no delay);
* a state within the window after a write is held, replacing any state held before;
* once the window is over, the held state is written, which opens the next window.

A member sending a thousand states costs at most five writes a second, and the last
state they sent always lands. The socket (``connection.py``) owns the I/O: it writes
what :meth:`Coalescer.offer` and :meth:`Coalescer.due` return, wakes up after
:meth:`Coalescer.due_in`, and writes what :meth:`Coalescer.take` leaves when it closes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, Generic, TypeVar

__all__ = ["STATE_WINDOW", "Coalescer"]

T = TypeVar("T")

STATE_WINDOW: Final = 0.2
"""Seconds between two state writes of one socket, at least."""


class Coalescer(Generic[T]):
    """At most one item per ``window`` seconds goes through; the last one held wins."""

    __slots__ = ("_clock", "_held", "_last", "_window", "superseded")

    def __init__(self, clock: Callable[[], float], *, window: float = STATE_WINDOW) -> None:
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"a coalescing window must be a positive number, not {window}")
        self._clock = clock
        self._window = window
        self._last = -math.inf  # when an item last went through
        self._held: T | None = None
        self.superseded = 0
        """Items replaced by a later one before they went through (never written)."""

    @property
    def holding(self) -> bool:
        """Whether an item waits for its window."""
        return self._held is not None

    def offer(self, item: T) -> T | None:
        """``item`` if it may go through now (write it), else None: it is held."""
        now = self._clock()
        if now - self._last >= self._window:
            if self._held is not None:  # overdue, and ``item`` is newer anyway
                self._held = None
                self.superseded += 1
            self._last = now
            return item
        if self._held is not None:
            self.superseded += 1
        self._held = item
        return None

    def due(self) -> T | None:
        """The held item once its window is over (write it), else None."""
        if self._held is None or self._clock() - self._last < self._window:
            return None
        return self.take()

    def due_in(self) -> float | None:
        """Seconds until the held item is due (0 if it is), or None if nothing is held."""
        if self._held is None:
            return None
        return max(0.0, self._last + self._window - self._clock())

    def take(self) -> T | None:
        """The held item whatever the window (the socket is closing), or None."""
        item, self._held = self._held, None
        if item is not None:
            self._last = self._clock()
        return item
