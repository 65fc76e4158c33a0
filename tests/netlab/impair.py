"""Impaired links without netem: a user-space UDP relay, and nftables loss in a namespace.

The lab's kernel has no ``sch_netem``, so delay and jitter come from a process that
holds datagrams back: :class:`UdpRelay` listens on one address and forwards every
datagram to a target, with one upstream socket per client source address (so each
client keeps its own 5-tuple, and a TURN server in front of which the relay sits
sees one client per client, as it must: allocations are keyed by 5-tuple). Each
direction has its own :class:`Link`: a one-way delay, a jitter and a loss fraction;
:attr:`UdpRelay.blackout` drops everything both ways while it is set.

Jitter draws each datagram's delay independently and uniformly from ``delay ±
jitter``, so two datagrams sent less than ``2 * jitter`` apart may swap places, as on
netem without a rate; nothing else reorders. Send errors (a full buffer, an
unreachable target) drop the datagram, as a network would. Upstream sockets live
until the relay closes: lab runs are short, so no idle timer.

The relay is a class for an asyncio loop (usable on loopback by any test) and a
script for a lab namespace: ``python impair.py LISTEN TARGET [--delay MS] [--jitter MS]
[--loss PCT]`` (``host:port`` each; the figures apply to each direction) prints
``ready host:port`` once bound, takes ``blackout on`` / ``blackout off`` lines on
stdin, and exits when stdin closes. :func:`spawn_relay` runs it with
:meth:`NatLab.spawn <lab.NatLab.spawn>`.

Loss without a relay is plain nftables: :func:`add_drop` puts a rule in a table of its
own (``ip impair``) on the ``forward`` hook of a namespace, before the lab's own
filter, and :func:`remove_drop` deletes that table again. On a site's NAT box
:func:`udp_loss_rule` loses that share of UDP in *each* direction independently, and
``"drop"`` cuts the site off entirely (an outage; conntrack keeps its mappings, as
long as the outage is shorter than its UDP timeouts, 30 s and more).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lab import NatLab

Address = tuple[str, int]
TABLE = "impair"
_BUFFER = 65535
_READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Link:
    """One direction's impairment: every default means none."""

    delay: float = 0.0
    """One-way delay in seconds."""
    jitter: float = 0.0
    """Each datagram's delay is drawn uniformly from ``delay ± jitter`` (seconds)."""
    loss: float = 0.0
    """The fraction of datagrams dropped at random (0 to 1)."""


class UdpRelay:
    """Forward UDP from ``listen`` to ``target`` and back, impairing each direction.

    ``up`` is client to target, ``down`` target to client. ``rng`` makes loss and
    jitter reproducible in a test.
    """

    def __init__(
        self,
        listen: Address,
        target: Address,
        *,
        up: Link = Link(),
        down: Link = Link(),
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self.up, self.down = up, down
        self.blackout = False
        """While true, every datagram is dropped, both ways."""
        self._listen = listen
        self._rng = rng or random.Random()
        self._sock: socket.socket | None = None
        self._upstreams: dict[Address, socket.socket] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    @property
    def address(self) -> Address:
        """The bound listening address (the port is known once :meth:`start` returned)."""
        assert self._sock is not None, "start() first"
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> Address:
        """Bind and start forwarding; returns the listening address."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(self._listen)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock, self._from_client)
        return self.address

    async def aclose(self) -> None:
        """Stop forwarding, drop what is still held back, close every socket."""
        loop = asyncio.get_running_loop()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for sock in [*self._upstreams.values(), self._sock]:
            if sock is not None:
                loop.remove_reader(sock)
                sock.close()
        self._upstreams.clear()
        self._sock = None

    async def __aenter__(self) -> UdpRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _from_client(self) -> None:
        assert self._sock is not None
        for data, client in _drain(self._sock):
            upstream = self._upstreams.get(client)
            if upstream is None:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                upstream.setblocking(False)
                upstream.connect(self.target)
                self._upstreams[client] = upstream
                asyncio.get_running_loop().add_reader(upstream, self._from_target, client)
            self._forward(self.up, data, upstream.send)

    def _from_target(self, client: Address) -> None:
        upstream, sock = self._upstreams.get(client), self._sock
        if upstream is None or sock is None:
            return
        for data, _ in _drain(upstream):
            self._forward(self.down, data, lambda d: sock.sendto(d, client))

    def _forward(self, link: Link, data: bytes, send: Any) -> None:
        if self.blackout or (link.loss and self._rng.random() < link.loss):
            return
        delay = link.delay + (self._rng.uniform(-link.jitter, link.jitter) if link.jitter else 0)
        if delay <= 0:
            _send(send, data)
            return

        def later() -> None:
            self._timers.discard(timer)
            _send(send, data)

        timer = asyncio.get_running_loop().call_later(delay, later)
        self._timers.add(timer)


def _drain(sock: socket.socket) -> list[tuple[bytes, Address]]:
    """Every datagram waiting on ``sock`` (a refused send's ICMP error ends the batch)."""
    batch = []
    while True:
        try:
            data, peer = sock.recvfrom(_BUFFER)
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            return batch
        batch.append((data, (str(peer[0]), int(peer[1]))))


def _send(send: Any, data: bytes) -> None:
    with contextlib.suppress(OSError):  # dropped, as a network would
        send(data)


# -- in a lab namespace ------------------------------------------------------------------


class RelayProcess:
    """A :class:`UdpRelay` running as a script in a lab namespace."""

    def __init__(self, lab: NatLab, process: subprocess.Popen[str], address: Address) -> None:
        self.address = address
        self._lab, self._process = lab, process

    def set_blackout(self, on: bool) -> None:
        """Drop everything both ways from now on (``True``), or forward again."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"blackout {'on' if on else 'off'}\n")
        self._process.stdin.flush()

    def stop(self) -> None:
        """Stop the relay (the lab would on close anyway)."""
        self._lab.stop(self._process)


def spawn_relay(
    lab: NatLab, ns: str, listen: Address, target: Address, *, link: Link = Link()
) -> RelayProcess:
    """Run the relay script in namespace ``ns`` with ``link`` in each direction."""
    argv = [sys.executable, __file__, f"{listen[0]}:{listen[1]}", f"{target[0]}:{target[1]}"]
    argv += ["--delay", str(link.delay * 1000), "--jitter", str(link.jitter * 1000)]
    argv += ["--loss", str(link.loss * 100)]
    process = lab.spawn(ns, argv, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    line = process.stdout.readline().split()  # the script binds at once, or exits
    if len(line) != 2 or line[0] != "ready":
        lab.stop(process)
        raise RuntimeError(f"the impairment relay did not start: {line!r}")
    host, port = line[1].rsplit(":", 1)
    return RelayProcess(lab, process, (host, int(port)))


def udp_loss_rule(percent: float) -> str:
    """An nftables rule dropping ``percent`` % of UDP at random (to 0.01 %)."""
    return f"meta l4proto udp numgen random mod 10000 < {round(percent * 100)} drop"


def add_drop(ns: str, rule: str = "drop") -> None:
    """Add ``rule`` to the forward hook of ``ns``, in table ``ip impair`` (replacing it)."""
    remove_drop(ns)
    table = f"""
        table ip {TABLE} {{
            chain forward {{
                type filter hook forward priority filter - 10; policy accept;
                {rule}
            }}
        }}
    """
    _nft(ns, "-f", "-", input=table)


def remove_drop(ns: str) -> None:
    """Remove what :func:`add_drop` added to ``ns`` (nothing if it added nothing)."""
    listed = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "tables"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    if f"table ip {TABLE}" in listed.stdout.splitlines():
        _nft(ns, "delete", "table", "ip", TABLE)


def _nft(ns: str, *args: str, input: str | None = None) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        raise RuntimeError(f"nft {' '.join(args)} in {ns}: {done.stderr.strip()}")


# -- the script ----------------------------------------------------------------------------


def _address(text: str) -> Address:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def _serve(args: argparse.Namespace) -> None:
    link = Link(args.delay / 1000, args.jitter / 1000, args.loss / 100)
    async with UdpRelay(args.listen, args.target, up=link, down=link) as relay:
        print(f"ready {relay.address[0]}:{relay.address[1]}", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() in (b"blackout on", b"blackout off"):
                relay.blackout = line.strip().endswith(b"on")


def main() -> None:
    """Run one relay until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("listen", type=_address, help="host:port to listen on (port 0: any)")
    parser.add_argument("target", type=_address, help="host:port to forward to")
    parser.add_argument("--delay", type=float, default=0.0, help="one-way delay, ms")
    parser.add_argument("--jitter", type=float, default=0.0, help="± jitter, ms")
    parser.add_argument("--loss", type=float, default=0.0, help="random loss, percent")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
