"""What the bus tests share: both buses made the same way, and small events to send.

Redis is ``TAVKIT_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); if it is
down the Redis tests fail. Each test speaks under a channel prefix of its own, so runs
sharing a Redis never hear each other.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import pytest

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import ChatMessage
from tavkit.server.bus import InProcessBus
from tavkit.server.events import Event, MessageEvent, SocketOpenEvent
from tavkit.server.redis_bus import RedisBus

REDIS_URL = os.environ.get("TAVKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PING_INTERVAL = 0.2
"""Short, so a silent connection is noticed within a test's patience."""
BUS_KINDS = ("in-process", "redis")


class OpenBus(Protocol):
    """Opens a bus of the kind under test with the given options (``max_queue``, ...)."""

    def __call__(self, **options: Any) -> AbstractAsyncContextManager[InProcessBus | RedisBus]:
        """A context manager that yields a bus ready to use."""
        ...


def new_prefix() -> str:
    """A Redis channel prefix no other test uses."""
    return f"tavkit-test-{secrets.token_hex(4)}:"


@asynccontextmanager
async def replica(prefix: str, url: str = REDIS_URL, **options: Any) -> AsyncIterator[RedisBus]:
    """A connected RedisBus, as one replica of a deployment would have, with quick timings."""
    options = {"timeout": 2.0, "ping_interval": PING_INTERVAL, "backoff_max": 0.2, **options}
    async with RedisBus(url, prefix=prefix, **options) as bus:
        yield bus


@asynccontextmanager
async def in_process(**options: Any) -> AsyncIterator[InProcessBus]:
    """An InProcessBus (it needs no opening; this gives both kinds one shape)."""
    yield InProcessBus(**options)


def opener(kind: str, prefix: str) -> OpenBus:
    """How to open a bus of ``kind`` (one of :data:`BUS_KINDS`)."""
    if kind == "in-process":
        return in_process

    def open_redis(**options: Any) -> AbstractAsyncContextManager[RedisBus]:
        return replica(prefix, **options)

    return open_redis


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
