"""The in-process bus: delivery, isolation between subscribers, and a slow subscriber."""

from __future__ import annotations

import asyncio

import pytest

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import ChatMessage, Member
from tavkit.server.bus import InProcessBus, session_channel
from tavkit.server.events import (
    Event,
    MemberJoinedEvent,
    MemberStateEvent,
    MessageEvent,
    RoomClosedEvent,
    SocketOpenEvent,
)


async def next_event(subscription, within: float = 1.0) -> Event:
    """The subscription's next event, failing after ``within`` seconds."""
    async with asyncio.timeout(within):
        return await anext(aiter(subscription))


def opened(n: int) -> SocketOpenEvent:
    """A small event told apart by ``n``."""
    return SocketOpenEvent(f"user{n}", f"c{n}")


def custom(data: object) -> MessageEvent:
    """A message event carrying ``data``, the one event with a mutable part."""
    return MessageEvent(ChatMessage(1, "alice", "custom", "m1", 1.0, data=data))


async def test_every_subscriber_of_a_channel_gets_each_event_in_order():
    """Two subscribers of one channel both see its events in order; others see nothing."""
    bus = InProcessBus()
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
            await next_event(other, within=0.05)


async def test_subscribers_get_their_own_copy():
    """A subscriber changing its event does not change what another one sees."""
    bus = InProcessBus()
    async with bus.subscribe("a") as first, bus.subscribe("a") as second:
        await bus.publish("a", custom({"to": "alice"}))
        mine = await next_event(first)
        assert isinstance(mine, MessageEvent)
        mine.message.data["to"] = "mallory"
        assert await next_event(second) == custom({"to": "alice"})


async def test_leaving_the_subscription_stops_delivery():
    """After the subscription exits, the bus forgets it."""
    bus = InProcessBus()
    channel = session_channel("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    async with bus.subscribe(channel):
        assert bus.subscriber_count(channel) == 1
    assert bus.subscriber_count(channel) == 0
    await bus.publish(channel, RoomClosedEvent("admin"))


async def test_events_must_be_json():
    """An event that could not cross a real message broker is refused at publish."""
    bus = InProcessBus()
    with pytest.raises(TypeError):
        await bus.publish("a", custom({"when": object()}))
    with pytest.raises(ValueError):
        await bus.publish("a", custom(float("nan")))
    with pytest.raises(ValueError):
        await bus.publish("a", MemberJoinedEvent(Member("alice", float("inf")), "c1"))


async def test_an_event_that_does_not_read_back_cuts_the_subscriber_off():
    """An event that serialises but fails the strict parse ends the iteration with 10000."""
    bus = InProcessBus()
    async with bus.subscribe("a") as subscription:
        await bus.publish("a", SocketOpenEvent("alice", ""))  # an empty connectionId
        with pytest.raises(ServerError) as caught:
            await next_event(subscription)
        assert caught.value.code is ServerCode.INTERNAL
        assert isinstance(caught.value.__cause__, ValueError)


async def test_a_subscriber_that_falls_behind_is_cut_off_loudly():
    """Past max_queue unread events the subscriber's iteration fails with server 10000."""
    bus = InProcessBus(max_queue=3)
    async with bus.subscribe("a") as slow:
        for n in range(5):
            await bus.publish("a", opened(n))
        assert [await next_event(slow) for _ in range(3)] == [opened(0), opened(1), opened(2)]
        with pytest.raises(ServerError) as caught:
            await next_event(slow)
        assert caught.value.code is ServerCode.INTERNAL


async def test_reading_before_entering_is_a_programming_error():
    """Iterating a subscription that was never entered raises RuntimeError."""
    with pytest.raises(RuntimeError):
        await next_event(InProcessBus().subscribe("a"))
