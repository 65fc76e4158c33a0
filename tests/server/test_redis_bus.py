"""The Redis bus against a real Redis: what only it does (replicas, prefixes, wire
versions, Redis going away) and two servers sharing a room through it.

The contract it shares with the in-process bus (order, copies, cut-offs) is tested
against both in ``test_bus.py``. Redis is ``TAVKIT_TEST_REDIS_URL`` (see
``_buses.py``). Outages are made with a TCP relay in front of Redis (never
``CLIENT KILL``, which would hit every other client of that Redis).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as redis

from tavkit.errors import ServerCode, ServerError
from tavkit.server.bus import InProcessBus, session_channel
from tavkit.server.events import RoomClosedEvent, encode
from tavkit.server.redis_bus import RedisBus
from tavkit.testing.relay import TcpRelay

from ._buses import (
    PING_INTERVAL,
    REDIS_URL,
    cut_off,
    new_prefix,
    next_event,
    opened,
    replica,
)
from ._util import eventually
from .test_signaling import LOOPBACK, member, until

if TYPE_CHECKING:
    from conftest import ServerFactory


@pytest.fixture
def prefix() -> str:
    """A channel prefix of this test's own."""
    return new_prefix()


@pytest.fixture
async def bus(prefix: str) -> AsyncIterator[RedisBus]:
    """One replica's bus."""
    async with replica(prefix) as bus:
        yield bus


@pytest.fixture
async def direct() -> AsyncIterator[redis.Redis]:
    """A plain Redis client, to look at or write to Redis behind the bus's back."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


class Relay(TcpRelay):
    """The test relay, able to go silent: bytes are held, nothing is closed."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:  # type: ignore[override]
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    """A relay in front of Redis that a test can break."""
    target = urlsplit(REDIS_URL)
    async with Relay(target.hostname or "127.0.0.1", target.port or 6379) as relay:
        yield relay


def through(relay: Relay) -> str:
    """REDIS_URL, reached through ``relay``."""
    return urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{relay.port}").geturl()


# --- Redis subscriptions ------------------------------------------------------------------


async def test_leaving_the_last_subscription_unsubscribes_from_redis(bus, prefix, direct):
    """While entered, the process holds one Redis subscription per channel; after, none."""
    channel = session_channel("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    key = prefix + channel
    async with bus.subscribe(channel), bus.subscribe(channel):
        assert bus.subscriber_count(channel) == 2
        assert await direct.pubsub_numsub(key) == [(key.encode(), 1)]
    assert bus.subscriber_count(channel) == 0
    await eventually(lambda: _no_subscriber(direct, key), within=2)
    await bus.publish(channel, RoomClosedEvent("admin"))


async def _no_subscriber(direct: redis.Redis, key: str) -> bool:
    return await direct.pubsub_numsub(key) == [(key.encode(), 0)]


# --- replicas ------------------------------------------------------------------------------


async def test_two_replicas_hear_each_other(bus, prefix):
    """What one replica publishes on a channel, the other's subscribers get, both ways."""
    async with (
        replica(prefix) as other,
        bus.subscribe("a") as here,
        other.subscribe("a") as there,
    ):
        await bus.publish("a", opened(1))
        await other.publish("a", opened(2))
        assert [await next_event(here), await next_event(here)] == [opened(1), opened(2)]
        assert [await next_event(there), await next_event(there)] == [opened(1), opened(2)]


async def test_concurrent_publishes_reach_another_replica_in_call_order(bus, prefix):
    """A burst of publishes from many tasks reaches another replica in call order."""
    async with replica(prefix) as other, other.subscribe("a") as subscription:
        await asyncio.gather(*(bus.publish("a", opened(n)) for n in range(300)))
        assert [await next_event(subscription) for _ in range(300)] == [
            opened(n) for n in range(300)
        ]


async def test_deployments_with_other_prefixes_do_not_mix(bus, prefix):
    """Another prefix on the same Redis is another deployment: its events never arrive."""
    async with replica(prefix + "other:") as stranger, bus.subscribe("a") as subscription:
        await stranger.publish("a", opened(1))
        await bus.publish("a", opened(2))
        assert await next_event(subscription) == opened(2)


async def test_an_event_of_another_version_cuts_the_subscriber_off_naming_it(bus, prefix, direct):
    """A replica of another wire version is refused: 10000, whose cause names both versions."""
    newer = json.dumps({**json.loads(encode(opened(1))), "v": 2})
    async with bus.subscribe("a") as subscription:
        await direct.publish(prefix + "a", newer)
        error = await cut_off(subscription)
    assert "version 2" in str(error.__cause__)
    assert "reads version 1" in str(error.__cause__)


# --- Redis going away ----------------------------------------------------------------------


async def test_redis_going_away_cuts_off_refuses_and_recovers_by_itself(relay, prefix):
    """Subscribers are cut off, publishes and new subscriptions get 10000; back by itself."""
    async with replica(prefix, through(relay)) as bus, bus.subscribe("a") as subscription:
        await bus.publish("a", opened(1))
        assert await next_event(subscription) == opened(1)

        relay.refuse(1_000_000)  # Redis is gone: every connection is reset at once
        relay.cut()
        await cut_off(subscription)
        assert not bus.listening
        with pytest.raises(ServerError) as refused:
            await bus.publish("a", opened(2))
        assert int(refused.value.code) == 10000
        with pytest.raises(ServerError) as refused:
            async with bus.subscribe("a"):
                pass
        assert int(refused.value.code) == 10000

        relay.refuse(0)  # Redis is back
        await eventually(_listening(bus), within=3)
        async with bus.subscribe("a") as again:
            await bus.publish("a", opened(3))
            assert await next_event(again) == opened(3)


def _listening(bus: RedisBus) -> Any:
    async def probe() -> bool:
        return bus.listening

    return probe


async def test_a_dropped_connection_is_replaced_without_failing_a_publish(relay, prefix):
    """Connections Redis closed while idle: subscribers are cut off, the next publish works."""
    async with replica(prefix, through(relay)) as bus:
        async with bus.subscribe("a") as subscription:
            await bus.publish("a", opened(1))
            relay.cut()
            assert await next_event(subscription) == opened(1)  # queued before: still read
            await cut_off(subscription)
        await eventually(_listening(bus), within=3)
        async with bus.subscribe("a") as subscription:
            await bus.publish("a", opened(2))  # on a fresh publishing connection
            assert await next_event(subscription) == opened(2)


async def test_a_silent_redis_is_noticed_by_the_ping(relay, prefix):
    """A connection that stops answering (no reset) cuts subscribers off within two pings."""
    async with replica(prefix, through(relay)) as bus, bus.subscribe("a") as subscription:
        relay.flowing.clear()
        started = time.monotonic()
        await cut_off(subscription, within=4 * PING_INTERVAL + 1)
        assert time.monotonic() - started >= PING_INTERVAL
        relay.flowing.set()
        await eventually(_listening(bus), within=3)


async def test_a_server_does_not_start_without_its_redis(relay, prefix):
    """Entering the bus with Redis unreachable is server 10000, not a bus that never hears."""
    relay.refuse(1_000_000)
    with pytest.raises(ServerError) as caught:
        async with replica(prefix, through(relay), timeout=0.5):
            pass
    assert caught.value.code is ServerCode.INTERNAL


# --- two servers, one Redis, one PostgreSQL -------------------------------------------------


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_members_on_two_servers_share_a_room(server_factory: ServerFactory, prefix):
    """Entering through different servers, members hear each other join and signal across."""
    options = {"redis_url": REDIS_URL, "redis_prefix": prefix, "ice_allowed_networks": LOOPBACK}
    one = server_factory(**options)
    two = server_factory(apps=one.settings.apps, admin_key=one.settings.admin_key, **options)
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=30) as http_one,
        httpx.AsyncClient(base_url=two.url, timeout=30) as http_two,
        member(http_one, one, "alice", 7) as (alice, _),
        member(http_two, two, "bob", 7) as (bob, welcome),
    ):
        assert [m["userId"] for m in welcome["members"]] == ["alice"]
        joined, _ = await until(alice, "member-joined")  # from server two to one
        assert joined["member"]["userId"] == "bob"
        async with member(http_one, one, "carol", 7):
            joined, _ = await until(bob, "member-joined")  # from server one to two
            assert joined["member"]["userId"] == "carol"

        offer = {"description": {"type": "offer", "sdp": "v=0\r\n"}}
        await alice.send(json.dumps({"type": "signal", "to": "bob", "data": offer}))
        got, _ = await until(bob, "signal")
        assert got == {"type": "signal", "from": "alice", "data": offer}
        answer = {"description": {"type": "answer", "sdp": "v=0\r\n"}}
        await bob.send(json.dumps({"type": "signal", "to": "alice", "data": answer}))
        got, _ = await until(alice, "signal")
        assert got == {"type": "signal", "from": "bob", "data": answer}


async def test_publish_to_receive_latency(bus, capsys):
    """Prints the median publish-to-receive time of both buses (for the record; no bound)."""
    medians = {}
    for name, candidate in (("in-process", InProcessBus()), ("redis", bus)):
        async with candidate.subscribe("latency") as subscription:
            times = []
            for n in range(200):
                started = time.perf_counter()
                await candidate.publish("latency", opened(n))
                await next_event(subscription)
                times.append(time.perf_counter() - started)
        medians[name] = sorted(times)[100] * 1e6
    with capsys.disabled():
        print(f"\npublish->receive median: {medians}  (microseconds)")
