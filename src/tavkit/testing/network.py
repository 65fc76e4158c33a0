"""Network impairment for one participant, without root: its own UDP sockets, its own TCP.

A participant's media runs over the UDP sockets aioice opened for its peer
connections; :class:`Network` wraps exactly those (no other participant, no other
peer connection in the process, nothing global) and applies the current
:class:`Conditions` to every datagram:

* outgoing: the socket's ``sendto`` is replaced, on that socket's aioice protocol only,
  by one that drops, delays or shapes the datagram before sending it;
* incoming: that protocol's ``datagram_received`` is replaced in the same way, so the
  datagram reaches aioice late or never.

STUN (connectivity checks, consent) goes through the same path as media, so a
blackout is seen by ICE as it would be on a real network. Peer connections made
later (a repair after a failure, a new member) are picked up within 50 ms by a
watcher task, and at once by :meth:`Network.impair`.

The participant's REST calls and signaling socket go through a :class:`TcpRelay` of
its own; :meth:`Network.blackout` blocks it too, so the whole network is gone: the
socket drops and resumes, media stops and comes back.

Bandwidth is capped in each direction on its own (``bandwidth`` what the participant
sends, ``receive_bandwidth`` what reaches it), each by a shaper of its own: a queue
that drains at the rate, holds at most half a second and drops beyond (tail drop).

:meth:`Network.change_address` moves the participant to a new address, as a NAT
rebinding or a switch from Wi-Fi to mobile data would: each media socket is replaced
by a new one on a new port (the ICE agent is not told, as it is not told of a NAT's new
mapping), so the others see its packets come from a new source and what they send to
the old port is lost; its TCP connections are reset. aiortc cannot restart ICE, so what
repairs the call is tavkit's restart on a new connection (``tavkit.client.peer``).

Not modelled: TURN relays (their sockets are neither moved nor wrapped on the
receiving side).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from tavkit.testing.relay import TcpRelay

__all__ = ["Conditions", "Network"]

_WATCH_PERIOD: Final = 0.05
_MAX_QUEUE_DELAY: Final = 0.5  # a shaped packet that would wait longer is dropped (tail drop)
_MARK: Final = "_tavkit_impaired"


@dataclass(frozen=True)
class Conditions:
    """What the network does to each datagram, in each direction separately.

    ``loss`` is the probability (0-1) that a datagram is dropped; ``delay`` (s) is
    added one way, plus a uniform random ``jitter`` (s) of up to that much either side
    (datagrams may then arrive out of order, as on a real network); ``bandwidth``
    (bit/s) caps what this participant sends and ``receive_bandwidth`` what it
    receives, each queueing up to half a second and dropping beyond; ``down`` drops
    everything.
    """

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    bandwidth: int | None = None
    receive_bandwidth: int | None = None
    down: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss is a probability between 0 and 1")
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delay and jitter are durations >= 0")
        for cap in (self.bandwidth, self.receive_bandwidth):
            if cap is not None and cap <= 0:
                raise ValueError("a bandwidth is a positive number of bit/s")

    @property
    def clear(self) -> bool:
        """Whether datagrams pass untouched."""
        return self == Conditions()


class _Shaper:
    """A link of fixed rate in one direction, kept as the time it is free again.

    A datagram waits for the datagrams before it to drain at the rate (a queue), and is
    dropped when that wait would pass :data:`_MAX_QUEUE_DELAY` (the queue is full).
    """

    def __init__(self) -> None:
        self.free_at = 0.0  # loop time

    def admit(self, size: int, rate: int, now: float) -> float | None:
        """How long a datagram of ``size`` bytes waits, or ``None`` to drop it."""
        start = max(now, self.free_at)
        if start - now > _MAX_QUEUE_DELAY:
            return None
        self.free_at = start + size * 8 / rate
        return start - now


class _ImpairedTransport:
    """A datagram transport whose ``sendto`` goes through the participant's network first."""

    def __init__(self, inner: Any, network: Network) -> None:
        self._inner = inner
        self._network = network

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self._network._outgoing(self._inner, data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Network:
    """The impairable network of one participant: its UDP sockets and a TCP relay.

    ``peer_connections`` returns the participant's current aiortc peer connections.
    ``seed`` makes the random losses repeatable.
    """

    def __init__(
        self,
        peer_connections: Callable[[], Mapping[str, Any]],
        relay: TcpRelay | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self._peer_connections = peer_connections
        self.relay = relay
        self.conditions = Conditions()
        self._random = random.Random(seed)
        self._uplink = _Shaper()
        self._downlink = _Shaper()
        self._watcher: asyncio.Task[None] | None = None
        self._protocols: list[Any] = []
        self._last_pc: dict[str, weakref.ref[Any]] = {}
        self.dropped = 0
        """Datagrams dropped so far (loss, blackout, or over a bandwidth cap)."""
        self.passed = 0
        """Datagrams let through so far (on time or late)."""
        self.address_changes = 0
        """How many times :meth:`change_address` moved the participant."""
        self.connections: Counter[str] = Counter()
        """Per remote userId, the peer connections seen with it (a restart adds one).

        Seen by the watcher, which looks every 50 ms: a connection replaced sooner (glare)
        may not count."""

    def start(self) -> None:
        """Start watching for new peer connections (idempotent)."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def aclose(self) -> None:
        """Stop watching and let datagrams pass untouched again."""
        self.conditions = Conditions()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def impair(
        self,
        *,
        loss: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        bandwidth: int | None = None,
        receive_bandwidth: int | None = None,
    ) -> Conditions:
        """Apply these conditions from now on (replacing the previous ones); return them."""
        self.conditions = Conditions(
            loss=loss,
            delay=delay,
            jitter=jitter,
            bandwidth=bandwidth,
            receive_bandwidth=receive_bandwidth,
        )
        self._wrap_all()
        return self.conditions

    def clear(self) -> None:
        """A perfect network again."""
        self.conditions = Conditions()

    async def blackout(self, seconds: float) -> None:
        """Take the whole network away for ``seconds`` (UDP and TCP), then give it back.

        Open TCP connections are reset and new ones refused meanwhile; the conditions
        in force before come back afterwards.
        """
        before = self.conditions
        self.conditions = replace(before, down=True)
        self._wrap_all()
        if self.relay is not None:
            self.relay.block()
        try:
            await asyncio.sleep(seconds)
        finally:
            if self.relay is not None:
                self.relay.unblock()
            self.conditions = before

    async def change_address(self) -> int:
        """Move to a new address, as a NAT rebinding or a network switch does; return how
        many media sockets moved.

        Every UDP socket of the current peer connections is replaced by a new one on a
        new port of the same host: from now on the others receive this participant's
        datagrams from a new source, and what they send to the old port is lost (the
        port is closed). Nobody is told: neither this participant's ICE agent nor the
        others'. Open TCP connections are reset (they belonged to the old address), so
        the signaling socket reconnects and resumes. The conditions in force stay.
        """
        self._wrap_all()
        moved = 0
        for protocol in list(self._current_protocols()):
            moved += await self._rebind(protocol)
        if self.relay is not None:
            self.relay.cut()
        self.address_changes += 1
        return moved

    # -- internals ------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            self._wrap_all()
            await asyncio.sleep(_WATCH_PERIOD)

    def _current_protocols(self) -> Iterator[Any]:
        """aioice's protocols (one per local candidate) of the current peer connections."""
        for user_id, pc in list(self._peer_connections().items()):
            if pc is None:
                continue
            last = self._last_pc.get(user_id)
            if last is None or last() is not pc:
                self._last_pc[user_id] = weakref.ref(pc)
                self.connections[user_id] += 1
            for transceiver in pc.getTransceivers():
                try:
                    connection = transceiver.sender.transport.transport.iceGatherer._connection
                except AttributeError:
                    continue
                yield from list(getattr(connection, "_protocols", ()))

    async def _rebind(self, protocol: Any) -> bool:
        """Give ``protocol`` a new socket on a new port of the same host (False: left as is)."""
        wrapper = protocol.transport
        if not isinstance(wrapper, _ImpairedTransport) or wrapper.is_closing():
            return False
        old = wrapper._inner
        host = old.get_extra_info("sockname")
        if old.get_extra_info("socket") is None or host is None:
            return False  # a TURN allocation, not a socket of ours
        # The new socket delivers to the same protocol (its connection_made replaces the
        # protocol's transport, wrapped again below); the old one is detached first, so
        # its closing does not tell aioice that the connection was lost.
        new, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: protocol, local_addr=(host[0], 0)
        )
        protocol.transport = _ImpairedTransport(new, self)
        old.set_protocol(asyncio.DatagramProtocol())
        old.close()
        return True

    def _wrap_all(self) -> None:
        for protocol in self._current_protocols():
            self._wrap(protocol)

    def _wrap(self, protocol: Any) -> None:
        if getattr(protocol, _MARK, False) or getattr(protocol, "transport", None) is None:
            return
        setattr(protocol, _MARK, True)
        protocol.transport = _ImpairedTransport(protocol.transport, self)
        received = protocol.datagram_received  # the bound method of this protocol

        def datagram_received(data: bytes, addr: Any) -> None:
            self._incoming(received, data, addr)

        # An instance attribute shadows the method for this one protocol only.
        protocol.datagram_received = datagram_received
        self._protocols.append(protocol)

    def _fate(self, size: int, outgoing: bool) -> float | None:
        """The delay (s) to give a datagram, or ``None`` to drop it."""
        conditions = self.conditions
        if conditions.clear:
            return 0.0
        if conditions.down or (conditions.loss and self._random.random() < conditions.loss):
            self.dropped += 1
            return None
        wait = conditions.delay
        if conditions.jitter:
            wait = max(0.0, wait + self._random.uniform(-conditions.jitter, conditions.jitter))
        rate = conditions.bandwidth if outgoing else conditions.receive_bandwidth
        if rate is not None:
            shaper = self._uplink if outgoing else self._downlink
            queued = shaper.admit(size, rate, asyncio.get_running_loop().time())
            if queued is None:
                self.dropped += 1
                return None
            wait += queued
        self.passed += 1
        return wait

    def _outgoing(self, transport: Any, data: bytes, addr: Any) -> None:
        wait = self._fate(len(data), outgoing=True)
        if wait is None:
            return
        if wait <= 0:
            transport.sendto(data, addr)
            return

        def send() -> None:
            if not transport.is_closing():
                transport.sendto(data, addr)

        asyncio.get_running_loop().call_later(wait, send)

    def _incoming(self, deliver: Callable[[bytes, Any], None], data: bytes, addr: Any) -> None:
        wait = self._fate(len(data), outgoing=False)
        if wait is None:
            return
        if wait <= 0:
            deliver(data, addr)
            return

        def late() -> None:
            with contextlib.suppress(OSError, RuntimeError, AttributeError):  # closed by then
                deliver(data, addr)

        asyncio.get_running_loop().call_later(wait, late)
