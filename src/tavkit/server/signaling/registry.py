"""Which sockets this process holds, by connection id.

The registry is the process's own view: what a drain closes (:meth:`SocketRegistry.live`),
which socket of a member the recorder's offer reaches now (:meth:`SocketRegistry.listening`), and
whether a socket that ends was still its connection's newest here. The facts a
replica cannot know alone live elsewhere, so a resume works on any replica:

* whether a connection has had a socket (``welcome.resumed``, and a token past its
  first-connection window) is ``members.socket_opened_at`` in the database
  (:meth:`~tavkit.server.rooms.service.RoomService.socket_history`);
* which socket of a connection is the newest is the order of their ``socket-open``
  events on the session's channel (:class:`~tavkit.server.events.SocketOpenEvent`),
  which every replica hears in the same order: a socket that hears another
  ``socket-open`` of its connection after its own closes (4001), on this replica or
  another.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

__all__ = ["Attached", "SocketRegistry"]


class Attached(Protocol):
    """What the registry needs of a socket: the connection it serves, and whether it hears."""

    @property
    def connection_id(self) -> str:
        """The member's connection id (from the socket token)."""
        ...

    @property
    def socket_id(self) -> str:
        """This one socket's id (as in its ``socket-open`` event)."""
        ...

    @property
    def announced(self) -> bool:
        """Whether the socket is subscribed to its session and has sent its ``socket-open``."""
        ...


S = TypeVar("S", bound=Attached)


class SocketRegistry(Generic[S]):
    """This process's sockets by connection id, in the order they opened here.

    Per process on purpose: whether a connection had a socket and which of its
    sockets wins are decided by the database and the bus (see the module), so they
    hold across replicas. A connection may have several sockets here for a moment (a
    resume while its half-open predecessor has not heard of it yet); all of them count
    as live until they end, so a drain closes every one.
    """

    def __init__(self) -> None:
        self._live: dict[str, list[S]] = {}

    def listening(self, connection_id: str) -> str | None:
        """The id of ``connection_id``'s newest socket here that hears its session, if any.

        A socket is registered before it subscribes to its session's channel, and a
        signal published in between never reaches it; only a socket that has
        announced itself (its ``socket-open`` went out, after it subscribed) is sure
        to hear an offer sent now. The id lets the recorder tell that socket's own
        ``socket-open`` (no news) from a newer socket's (offer again).
        """
        for socket in reversed(self._live.get(connection_id, ())):
            if socket.announced:
                return socket.socket_id
        return None

    def live(self) -> list[S]:
        """Every socket this process holds now (a drain closes them all)."""
        return [socket for sockets in self._live.values() for socket in sockets]

    def attach(self, socket: S) -> None:
        """Register ``socket`` as its connection's newest here."""
        self._live.setdefault(socket.connection_id, []).append(socket)

    def detach(self, socket: S) -> bool:
        """Forget ``socket``; True if it was its connection's newest socket here.

        False when a newer socket of the connection opened here since: that one now
        speaks for the member, so the end of this one is no news to the others.
        """
        sockets = self._live.get(socket.connection_id)
        if not sockets or socket not in sockets:
            return False
        newest = sockets[-1] is socket
        sockets.remove(socket)
        if not sockets:
            del self._live[socket.connection_id]
        return newest
