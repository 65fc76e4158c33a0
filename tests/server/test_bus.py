"""The bus contract, run against both buses: the in-process one and Redis.

Whatever bus a server runs on, subscribers see a channel's events in publication
order, each its own copy; an event JSON cannot carry is refused at publish; and a
subscriber that falls behind or reads an unreadable event is cut off loudly (server
10000) rather than left with a wrong view of the room. What only Redis does
(replicas, prefixes, versions, outages) is in ``test_redis_bus.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tavkit.protocol import Member
from tavkit.server.bus import InProcessBus, session_channel
from tavkit.server.events import (
    MemberJoinedEvent,
    MemberStateEvent,
    MessageEvent,
    RoomClosedEvent,
    SocketOpenEvent,
)
from tavkit.server.redis_bus import RedisBus

from ._buses import BUS_KINDS, OpenBus, custom, cut_off, new_prefix, next_event, opened, opener


@pytest.fixture(params=BUS_KINDS)
def open_bus(request: pytest.FixtureRequest) -> OpenBus:
    """Opens a bus of each kind in turn (Redis under a prefix of this test's own)."""
    return opener(request.param, new_prefix())


@pytest.fixture
async def bus(open_bus: OpenBus) -> AsyncIterator[InProcessBus | RedisBus]:
    """A bus of the kind under test, with default options."""
    async with open_bus() as bus:
        yield bus


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


async def test_concurrent_publishes_arrive_in_the_order_they_were_made(bus):
    """A burst of publishes from many tasks reaches a subscriber in call order."""
    async with bus.subscribe("a") as subscription:
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


async def test_leaving_a_subscription_stops_its_delivery_only(bus):
    """A subscription that exited is forgotten; the channel's other subscribers still hear."""
    channel = session_channel("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    async with bus.subscribe(channel) as staying:
        async with bus.subscribe(channel):
            assert bus.subscriber_count(channel) == 2
        assert bus.subscriber_count(channel) == 1
        await bus.publish(channel, RoomClosedEvent("admin"))
        assert await next_event(staying) == RoomClosedEvent("admin")
    assert bus.subscriber_count(channel) == 0
    await bus.publish(channel, RoomClosedEvent("admin"))  # to nobody: not an error


async def test_events_must_be_json(bus):
    """An event that could not cross a real message broker is refused at publish."""
    with pytest.raises(TypeError):
        await bus.publish("a", custom({"when": object()}))
    with pytest.raises(ValueError):
        await bus.publish("a", custom(float("nan")))
    with pytest.raises(ValueError):
        await bus.publish("a", MemberJoinedEvent(Member("alice", float("inf")), "c1"))


async def test_an_event_that_does_not_read_back_cuts_the_subscriber_off(bus):
    """An event that serialises but fails the strict parse ends the iteration with 10000."""
    async with bus.subscribe("a") as subscription:
        await bus.publish("a", SocketOpenEvent("alice", ""))  # an empty connectionId
        error = await cut_off(subscription)
        assert isinstance(error.__cause__, ValueError)


async def test_a_subscriber_that_falls_behind_is_cut_off_loudly(open_bus):
    """Past max_queue unread events the subscriber's iteration fails with server 10000."""
    async with open_bus(max_queue=3) as bus, bus.subscribe("a") as slow:
        for n in range(5):
            await bus.publish("a", opened(n))
        await asyncio.sleep(0.2)  # a broker delivers after publish returns: let all five in
        assert [await next_event(slow) for _ in range(3)] == [opened(0), opened(1), opened(2)]
        await cut_off(slow)


async def test_reading_before_entering_is_a_programming_error(bus):
    """Iterating a subscription that was never entered raises RuntimeError."""
    with pytest.raises(RuntimeError):
        await next_event(bus.subscribe("a"))
