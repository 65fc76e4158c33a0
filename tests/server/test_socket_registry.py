"""The socket registry: which socket of a member hears an offer sent now."""

from __future__ import annotations

from dataclasses import dataclass

from tavkit.server.signaling.registry import SocketRegistry


@dataclass
class _Socket:
    connection_id: str
    socket_id: str
    announced: bool = False


def test_a_socket_is_listening_only_once_it_has_announced_itself() -> None:
    """Registered but not yet subscribed, a socket would miss a signal: listening() says None."""
    registry: SocketRegistry[_Socket] = SocketRegistry()
    socket = _Socket("c1", "s1")
    registry.attach(socket)
    assert registry.listening("c1") is None
    socket.announced = True
    assert registry.listening("c1") == "s1"
    assert registry.listening("other") is None


def test_the_newest_announced_socket_of_a_connection_is_the_one_listening() -> None:
    """A resume's new socket speaks for the member once announced; until then the old one does."""
    registry: SocketRegistry[_Socket] = SocketRegistry()
    old, new = _Socket("c1", "old", announced=True), _Socket("c1", "new")
    registry.attach(old)
    registry.attach(new)
    assert registry.listening("c1") == "old"
    new.announced = True
    assert registry.listening("c1") == "new"
    assert registry.detach(new) is True
    assert registry.listening("c1") == "old"
    assert registry.detach(old) is True
    assert registry.listening("c1") is None
