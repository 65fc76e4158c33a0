"""Load shedding for the signal relay: refuse what the server cannot relay promptly.

One server process is one event loop. Offered more ``signal`` frames than it can
relay, it would otherwise read them as fast as it can and queue the rest: in its
sockets' buffers, the kernel's and the bus's, so that at saturation every frame
arrives seconds late and a client cannot tell a slow relay from a lost one. Instead,
while the loop is behind, a ``signal`` frame is refused at once, before it is parsed,
checked or published, with an ``error`` naming it (server 10000, ``ref`` = its
``id``): refusing costs a fraction of relaying, so the backlog drains, the loop
catches up, and frames flow again. Nothing is dropped silently: a ``signal`` is
either relayed or its sender hears that it was not, and may send it again.

"Behind" is measured, not guessed: :class:`LoopLag` puts a probe at the back of the
loop's ready queue and times how long the loop takes to reach it, i.e. how long
anything that becomes ready now waits for its turn. The loop is behind when probes
keep waiting past :data:`SHED_AFTER`: the last one did and the one out now has too,
or the last two did and the latest came back less than :data:`SHED_AFTER` ago. One
slow turn alone (a garbage collection, a burst the loop absorbs) sheds nothing, and an
idle or lightly loaded server never gets there: its probes come back within a
millisecond or so.

Only ``signal`` frames are shed: ``ping``, ``state``, ``leave``, ``renew`` and
messages are few and each matters (a heartbeat lost to shedding would end a
membership). A client that reads too slowly is a different matter, handled by its own
send queue (close 1013, ``connection.py``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Final

from tavkit.errors import ServerUnavailable
from tavkit.protocol import MAX_ID_CHARS, ErrorFrame

__all__ = ["SHED_AFTER", "LoopLag", "shed_refusal"]

SHED_AFTER: Final = 0.05
"""How long (s) work may wait for the event loop before ``signal`` frames are shed."""

_SHED_MESSAGE: Final = "server busy: this signal was not relayed; send it again"


class LoopLag:
    """How far behind this process's event loop is, probed only while someone asks.

    No task of its own: :meth:`behind` puts one probe (``call_soon``) on the running
    loop when none is out, so an idle server does no work for it.
    """

    def __init__(
        self, *, limit: float = SHED_AFTER, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._probe_sent = math.nan  # when the probe out now was queued; NaN: none out
        self._slow = 0  # how many probes in a row waited past the limit
        self._last_back = -math.inf  # when the last probe came back

    def behind(self) -> bool:
        """Whether the loop keeps making ready work wait more than ``limit`` for its turn."""
        now = self._clock()
        if math.isnan(self._probe_sent):
            self._probe_sent = now
            asyncio.get_running_loop().call_soon(self._probe_back)
        elif now - self._probe_sent > self.limit and self._slow >= 1:
            return True
        return self._slow >= 2 and now - self._last_back < self.limit

    def _probe_back(self) -> None:
        now = self._clock()
        self._slow = self._slow + 1 if now - self._probe_sent > self.limit else 0
        self._last_back = now
        self._probe_sent = math.nan


def shed_refusal(raw: str) -> ErrorFrame | None:
    """The ``error`` refusing ``raw`` if it is a ``signal`` frame; None for any other frame.

    Only the frame's ``type`` and ``id`` are read, so refusing costs one JSON decode;
    anything that is not a readable ``signal`` goes on to the usual checks (and its
    usual answer).
    """
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(frame, dict) or frame.get("type") != "signal":
        return None
    ref = frame.get("id")
    if not isinstance(ref, str) or not 1 <= len(ref) <= MAX_ID_CHARS:
        ref = None
    return ErrorFrame.from_error(ServerUnavailable(_SHED_MESSAGE), ref)
