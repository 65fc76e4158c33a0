"""Which sockets this process holds, by connection id, and which connections have had one.

The registry answers ``welcome.resumed``, lets a token past its first-connection
expiry through only for a connection that had a socket, and closes a half-open older
socket when its connection resumes on a new one. It is per process: with several
replicas a resume landing on another replica after the token expired is refused
(4401) and the client enters again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Generic, Protocol, TypeVar

__all__ = ["REMEMBER_FOR", "Attached", "SocketRegistry"]

REMEMBER_FOR: Final = 3600.0
"""How long a connection whose socket ended still counts as having had one."""


class Attached(Protocol):
    """What the registry needs of a socket: the connection it serves."""

    @property
    def connection_id(self) -> str:
        """The member's connection id (from the socket token)."""
        ...


S = TypeVar("S", bound=Attached)


class SocketRegistry(Generic[S]):
    """This process's sockets by connection id, and which connections have had one.

    It answers ``welcome.resumed``, lets a token past its first-connection expiry only
    for a connection that had a socket, and closes a half-open older socket when its
    connection resumes on a new one. It is per process: with several replicas a
    resume landing on another replica after the token expired is refused (4401) and
    the client enters again.
    """

    def __init__(
        self, *, remember_for: float = REMEMBER_FOR, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._remember_for = remember_for
        self._clock = clock
        self._live: dict[str, S] = {}
        self._ended: dict[str, float] = {}  # connection id -> when its last socket ended

    def had_socket(self, connection_id: str) -> bool:
        """Whether ``connection_id`` has (or recently had) a socket here."""
        self._forget_old()
        return connection_id in self._live or connection_id in self._ended

    def is_live(self, connection_id: str) -> bool:
        """Whether ``connection_id`` has a socket here now (subscribed to its session)."""
        return connection_id in self._live

    def live(self) -> list[S]:
        """Every socket this process holds now (a drain closes them all)."""
        return list(self._live.values())

    def attach(self, socket: S) -> tuple[bool, S | None]:
        """Register ``socket``; return (resumed, the socket it takes over from, if any)."""
        resumed = self.had_socket(socket.connection_id)
        previous = self._live.get(socket.connection_id)
        self._live[socket.connection_id] = socket
        return resumed, previous

    def detach(self, socket: S) -> bool:
        """Forget ``socket`` as live, remembering that its connection had one.

        True if it was its connection's live socket; False if a newer one had taken over.
        """
        live = self._live.get(socket.connection_id) is socket
        if live:
            del self._live[socket.connection_id]
        self._ended.pop(socket.connection_id, None)  # re-insert: keep the dict in time order
        self._ended[socket.connection_id] = self._clock()
        return live

    def _forget_old(self) -> None:
        cutoff = self._clock() - self._remember_for
        while self._ended:
            connection_id, ended = next(iter(self._ended.items()))
            if ended >= cutoff:
                break
            del self._ended[connection_id]
