"""The Redis bus against a real Redis: the in-process bus's behaviour, replicas, and outages.

Redis is ``TAVKIT_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); if it is
down these tests fail. Each test speaks under a prefix of its own, so runs sharing a
Redis never hear each other. Outages are made with a TCP relay in front of Redis
(never ``CLIENT KILL``, which would hit every other client of that Redis).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as redis
from client._proxy import TcpRelay

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import ChatMessage
from tavkit.server.bus import InProcessBus, session_channel
from tavkit.server.events import (
    Event,
    MemberStateEvent,
    MessageEvent,
    RoomClosedEvent,
    SocketOpenEvent,
    encode,
)
from tavkit.server.redis_bus import RedisBus

from ._util import eventually
from .test_signaling import LOOPBACK, member, until

if TYPE_CHECKING:
    from conftest import ServerFactory

REDIS_URL = os.environ.get("TAVKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PING_INTERVAL = 0.2
"""Short, so a silent connection is noticed within a test's patience."""


@pytest.fixture
def prefix() -> str:
    """A channel prefix of this test's own."""
    return f"tavkit-test-{secrets.token_hex(4)}:"


@asynccontextmanager
async def replica(prefix: str, url: str = REDIS_URL, **options: Any) -> AsyncIterator[RedisBus]:
    """A connected RedisBus, as one replica of a deployment would have, with quick timings."""
    options = {"timeout": 2.0, "ping_interval": PING_INTERVAL, "backoff_max": 0.2, **options}
    async with RedisBus(url, prefix=prefix, **options) as bus:
        yield bus


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


async def next_event(subscription: Any, within: float = 2.0) -> Event:
    """The subscription's next event, failing after ``within`` seconds."""
    async with asyncio.timeout(within):
        event: Event = await anext(aiter(subscription))
        return event


async def cut_off(subscription: Any, within: float = 2.0) -> ServerError:
    """The ServerError(INTERNAL) that ends ``subscription``, read past any queued events."""
    with pytest.raises(ServerError) as caught:
        async with asyncio.timeout(within):
            async for _ in subscription:
                pass
    assert caught.value.code is ServerCode.INTERNAL
    return caught.value


def opened(n: int) -> SocketOpenEvent:
    """A small event told apart by ``n``."""
    return SocketOpenEvent(f"user{n}", f"c{n}")


def custom(data: object) -> MessageEvent:
    """A message event carrying ``data``, the one event with a mutable part."""
    return MessageEvent(ChatMessage(1, "alice", "custom", "m1", 1.0, data=data))


# --- what the in-process bus does, over Redis ----------------------------------------------


async def test_every_subscriber_of_a_channel_gets_each_event_in_order(bus):
    """Two subscribers of one channel both see its events in order; others see nothing."""
    async with (
        bus.subscribe("a") as first,
        bus.subscribe("a") as second,
        bus.subscribe("b") as other,
    ):
        await bus.publish("a", opened(1))
        await bus.publish("a", MemberStateEvent("user2", muted=True, camera=False))
        for subscription in (first, second):
            assert [await next_event(subscription), await next_event(subscription)] == [
                opened(1),
                MemberStateEvent("user2", muted=True, camera=False),
            ]
        with pytest.raises(TimeoutError):
            await next_event(other, within=0.1)


async def test_concurrent_publishes_arrive_in_the_order_they_were_made(bus, prefix):
    """A burst of publishes from many tasks reaches another replica in call order."""
    async with replica(prefix) as other, other.subscribe("a") as subscription:
        await asyncio.gather(*(bus.publish("a", opened(n)) for n in range(300)))
        assert [await next_event(subscription) for _ in range(300)] == [
            opened(n) for n in range(300)
        ]


async def test_subscribers_get_their_own_copy(bus):
    """A subscriber changing its event does not change what another one sees."""
    async with bus.subscribe("a") as first, bus.subscribe("a") as second:
        await bus.publish("a", custom({"to": "alice"}))
        mine = await next_event(first)
        assert isinstance(mine, MessageEvent)
        mine.message.data["to"] = "mallory"
        assert await next_event(second) == custom({"to": "alice"})


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


async def test_events_must_be_json(bus):
    """An event that could not cross Redis is refused at publish, before it is sent."""
    with pytest.raises(TypeError):
        await bus.publish("a", custom({"when": object()}))
    with pytest.raises(ValueError):
        await bus.publish("a", custom(float("nan")))


async def test_an_event_that_does_not_read_back_cuts_the_subscriber_off(bus):
    """An event that serialises but fails the strict parse ends the iteration with 10000."""
    async with bus.subscribe("a") as subscription:
        await bus.publish("a", SocketOpenEvent("alice", ""))  # an empty connectionId
        error = await cut_off(subscription)
        assert isinstance(error.__cause__, ValueError)


async def test_a_subscriber_that_falls_behind_is_cut_off_loudly(prefix):
    """Past max_queue unread events the subscriber's iteration fails with server 10000."""
    async with replica(prefix, max_queue=3) as bus, bus.subscribe("a") as slow:
        for n in range(5):
            await bus.publish("a", opened(n))
        assert [await next_event(slow) for _ in range(3)] == [opened(0), opened(1), opened(2)]
        await cut_off(slow)


async def test_reading_before_entering_is_a_programming_error(bus):
    """Iterating a subscription that was never entered raises RuntimeError."""
    with pytest.raises(RuntimeError):
        await next_event(bus.subscribe("a"))


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
