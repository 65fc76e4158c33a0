"""Where a join's time goes: the phases of :meth:`TAvKit.start` for each remote member.

:class:`JoinClock` starts with ``start()`` and notes, on the monotonic clock, the
first time each phase of :data:`~tavkit.protocol.JOIN_PHASES` happened: once for
the phases before the mesh (``enter``, ``socket-open``, ``welcome``, ``media``) and
once per remote member for the rest (``offer`` to ``first-frame``). A phase is
noted only the first time, so a rebuilt peer connection or a rejoin after an outage
does not move it: the timeline is that of the join. :attr:`TAvKit.join_timelines`
gives each remote member's :class:`JoinTimeline`; the kit also reports it to the
server once that member's first frame is decoded (or at hang-up, as far as it got),
where the dashboard's session timeline shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from tavkit.protocol import JOIN_PHASES, JoinPhase

__all__ = ["JoinClock", "JoinTimeline"]

_SHARED: Final = frozenset({"enter", "socket-open", "welcome", "media"})


@dataclass(frozen=True, slots=True)
class JoinTimeline:
    """One remote member's join phases: ``(phase, ms after start())``, in time order.

    A phase that has not happened (yet) is missing: a call that shows no video
    stops at the phase where it got stuck.
    """

    user_id: str
    """The remote member this timeline is about."""
    phases: tuple[tuple[JoinPhase, float], ...]

    def ms(self, phase: JoinPhase) -> float | None:
        """Milliseconds from ``start()`` to ``phase``, or None if it has not happened."""
        return next((ms for name, ms in self.phases if name == phase), None)

    @property
    def complete(self) -> bool:
        """Whether every phase happened (up to the first decoded frame)."""
        return len(self.phases) == len(JOIN_PHASES)

    def to_wire(self) -> dict[str, Any]:
        """The ``data`` of the ``join-timeline`` log line (:mod:`tavkit.protocol.timeline`)."""
        return {
            "peerId": self.user_id,
            "phases": [[name, round(ms, 1)] for name, ms in self.phases],
        }


class JoinClock:
    """Notes when each join phase first happened; builds the timelines (see module doc).

    ``on_complete(timeline)`` is called once per remote member, when its
    ``first-frame`` is noted.
    """

    def __init__(self, on_complete: Callable[[JoinTimeline], None] | None = None) -> None:
        self.on_complete = on_complete
        self._t0: float | None = None
        self._shared: dict[JoinPhase, float] = {}
        self._peers: dict[str, dict[JoinPhase, float]] = {}
        self._handed_out: set[str] = set()

    def start(self) -> None:
        """Start the clock (``start()`` was called)."""
        self._t0 = time.monotonic()

    def mark(self, phase: JoinPhase, user_id: str | None = None) -> None:
        """Note ``phase`` now, for everyone (``user_id`` None) or for one remote member."""
        if self._t0 is None:
            return
        if phase in _SHARED:
            noted = self._shared
        elif user_id is None:
            raise ValueError(f"the phase {phase!r} is one remote member's")
        else:
            noted = self._peers.setdefault(user_id, {})
        if phase in noted:
            return
        noted[phase] = (time.monotonic() - self._t0) * 1000.0
        if phase == "first-frame" and user_id is not None and self.on_complete is not None:
            self.on_complete(self.timeline(user_id))

    def marker(self, user_id: str) -> Callable[[JoinPhase], None]:
        """``mark`` for one remote member, for the peer link to call."""
        return lambda phase: self.mark(phase, user_id)

    def timeline(self, user_id: str) -> JoinTimeline:
        """``user_id``'s timeline as far as it got, in time order."""
        noted = {**self._shared, **self._peers.get(user_id, {})}
        order = {name: index for index, name in enumerate(JOIN_PHASES)}
        phases = sorted(noted.items(), key=lambda item: (item[1], order[item[0]]))
        return JoinTimeline(user_id, tuple(phases))

    def unreported(self, *, partial: bool = False) -> list[JoinTimeline]:
        """The timelines not handed out before, now handed out: each member's goes once.

        Only those that reached ``first-frame``, unless ``partial`` (at hang-up: as
        far as each got, which shows where a join that showed no video got stuck).
        """
        out = []
        for user_id, noted in self._peers.items():
            if user_id not in self._handed_out and (partial or "first-frame" in noted):
                self._handed_out.add(user_id)
                out.append(self.timeline(user_id))
        return out

    def timelines(self) -> dict[str, JoinTimeline]:
        """Every remote member met so far, by userId."""
        return {user_id: self.timeline(user_id) for user_id in self._peers}
