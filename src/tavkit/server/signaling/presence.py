"""Whether a member's link is up, as the other members see it (``member-connection``).

A member whose network drops stays in the session until its heartbeat timeout, so it
can resume; until this module, the others heard nothing for those seconds and then,
maybe, ``member-left``. Now a socket tells its session (a ``member-link`` bus event)
when its own member goes quiet or drops without ``leave``, and when it is heard again;
every other socket of the session turns that into a ``member-connection`` frame
(``reconnecting`` / ``connected``) for its client, which keeps the tile and marks it.

Two halves, one per direction:

* :class:`OwnLink` (the member's own socket): quiet past
  :func:`~tavkit.protocol.silence_after` means
  down; any frame after that means up. Clients ping every heartbeat interval, so two
  missed pings and a second of slack is a lost link, not a slow one, and it is noticed
  well inside the heartbeat timeout.
* :class:`OthersLinks` (every other socket): which members it has told its client are
  reconnecting, so each drop and return is sent once, and nothing is sent about a
  member the client does not know or that has already left.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tavkit.protocol import MemberConnection
from tavkit.server.events import MemberLinkEvent

__all__ = ["OthersLinks", "OwnLink"]


class OwnLink:
    """The state of this socket's own member's link: when it was last heard, and if down."""

    __slots__ = ("_clock", "_silence", "down", "heard_at")

    def __init__(self, silence: float, clock: Callable[[], float]) -> None:
        self._silence = silence
        self._clock = clock
        self.heard_at = clock()
        self.down = False

    def heard(self) -> bool:
        """A frame arrived; True if the link was down (the others should hear it is up)."""
        self.heard_at = self._clock()
        was_down, self.down = self.down, False
        return was_down

    def due_in(self) -> float:
        """Seconds until silence would mark the link down (``inf`` if it already is)."""
        if self.down:
            return math.inf
        return max(0.0, self.heard_at + self._silence - self._clock())

    def check(self) -> bool:
        """True once, when the silence threshold has just passed (publish ``up: false``)."""
        if self.down or self._clock() - self.heard_at < self._silence:
            return False
        self.down = True
        return True


class OthersLinks:
    """What one socket has told its client about the other members' links."""

    __slots__ = ("_away", "_newest")

    def __init__(self) -> None:
        self._away: set[str] = set()
        self._newest: dict[str, str] = {}  # userId -> its newest socket we heard open

    def opened(self, user_id: str, socket_id: str | None) -> None:
        """A socket of ``user_id`` announced itself: from now on, it speaks for the member.

        The channel orders ``socket-open`` events alike for every subscriber, so the
        last one heard is the member's newest socket here and on every replica.
        """
        if socket_id is not None:
            self._newest[user_id] = socket_id

    def on_link(self, event: MemberLinkEvent, known: bool) -> MemberConnection | None:
        """The frame to send for ``event`` (None: nothing new, or a member we never showed).

        A link event from a socket older than the member's newest (a superseded socket
        reporting its own end after the new one is up) is no news and changes nothing.
        """
        user_id = event.user_id
        newest = self._newest.get(user_id)
        if event.socket_id is not None and newest is not None and event.socket_id != newest:
            return None
        if event.up:
            if user_id not in self._away:
                return None
            self._away.discard(user_id)
            return MemberConnection(user_id, "connected")
        if not known or user_id in self._away:
            return None
        self._away.add(user_id)
        return MemberConnection(user_id, "reconnecting")

    def forget(self, user_id: str) -> None:
        """The member left or entered afresh: whatever we said about it is over."""
        self._away.discard(user_id)
        self._newest.pop(user_id, None)
