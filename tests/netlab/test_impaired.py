"""Calls over impaired links: loss and delay between the NATs and coturn, and the relay itself.

The lab kernel has no netem, so the impairment comes from :mod:`impair`: a user-space
UDP relay in the public namespace sits in front of coturn (``10.200.0.1:3479`` to
``:3478``) and delays each datagram 75 ms ± 15 ms each way. A tavkit server whose
only ICE server is ``turn:10.200.0.1:3479`` hands that relay out as its TURN server.
On top of that, nftables drops 5 % of UDP in each direction on sym1's NAT box.
Every relayed path therefore has at least 150 ms ± 30 ms of round trip, with loss
on one end. The assertions are on what arrived and which pair carried it, never on
how long anything took (``firstVideoMs`` is printed, for information).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import APP_ID, APP_KEY, TURN_ENV, TURN_PORT, Call, LabServer, start_tavkit
from .impair import Link, UdpRelay, add_drop, remove_drop, spawn_relay, udp_loss_rule
from .lab import PUBLIC_IP, NatLab
from .test_nat import show

pytestmark = pytest.mark.netlab

CONNECT_WAIT = 30.0
"""The most a call that must connect may take before the client reports failure."""
IMPAIR_PORT = 3479
LEG = Link(delay=0.075, jitter=0.015)
LOSS_PERCENT = 5.0


@pytest.fixture(scope="module")
def impaired_server(
    nat_lab: NatLab, coturn: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    """A tavkit server whose TURN URL is the delaying relay, with UDP loss on sym1's NAT."""
    relay = spawn_relay(
        nat_lab, nat_lab.public_ns, (PUBLIC_IP, IMPAIR_PORT), (PUBLIC_IP, TURN_PORT), link=LEG
    )
    env = {
        **TURN_ENV,
        "TAVKIT_APPS": f"{APP_ID}:{APP_KEY}",
        "TAVKIT_ICE_SERVERS": f"turn:{PUBLIC_IP}:{IMPAIR_PORT}",
    }
    workdir = tmp_path_factory.mktemp("tavkit-impaired")
    server = start_tavkit(nat_lab, workdir, "impaired", env, port=8090)
    box = nat_lab.sites["sym1"].nat_ns
    add_drop(box, udp_loss_rule(LOSS_PERCENT))
    try:
        yield server
    finally:
        remove_drop(box)
        relay.stop()


def test_a_call_over_lossy_delayed_links_connects_through_the_relay(
    impaired_server: LabServer, call: Call
) -> None:
    """Both behind symmetric NATs, 5 % loss, 150 ms RTT or more: frames arrive via the relay.

    Every side whose selected pair starts at a relay candidate reaches its TURN
    server through the impairment relay's port, so the media really crossed it.
    """
    a, b = call(impaired_server, "sym1", "sym2", room=1701, within=CONNECT_WAIT)
    show("impaired sym-sym relay", a, b)
    for report in (a, b):
        assert report["arrived"], report
        assert report["pair"] is not None and "relay" in report["pair"].values(), report
        if report["pair"]["local"] == "relay":
            assert report["turn"]["server"] == f"{PUBLIC_IP}:{IMPAIR_PORT}", report


async def test_the_relay_delays_each_direction_and_blackout_drops_everything() -> None:
    """On loopback: datagrams come back no sooner than both delays allow, none in a blackout.

    The lower bound is safe on a busy machine (load only adds delay). The upper one
    is not asserted.
    """
    loop = asyncio.get_running_loop()
    echoed: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            echoed.put_nowait((data, time.monotonic()))

    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    target = echo.get_extra_info("sockname")
    link = Link(delay=0.05, jitter=0.01)
    async with UdpRelay(("127.0.0.1", 0), target, up=link, down=link) as relay:
        client, _ = await loop.create_datagram_endpoint(Client, remote_addr=relay.address)
        sent = {}
        for n in range(10):
            sent[b"%d" % n] = time.monotonic()
            client.sendto(b"%d" % n)
        for _ in range(10):
            data, at = await asyncio.wait_for(echoed.get(), 5.0)
            assert at - sent[data] >= 2 * (link.delay - link.jitter)
        relay.blackout = True
        client.sendto(b"lost")
        await asyncio.sleep(0.5)  # well past 2 * (delay + jitter)
        assert echoed.empty()
        client.close()
    echo.close()
