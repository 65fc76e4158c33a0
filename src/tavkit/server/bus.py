"""Publish/subscribe between the room service and the sockets, behind a small protocol.

:class:`RoomService` publishes what happened to a session on the channel
``session:{uuid}``; each signaling socket subscribes to its session's channel and
turns events into frames. Events are the typed values of :mod:`tavkit.server.events`.
The :class:`Bus` protocol is all either side knows, so a Redis-backed bus can replace
:class:`InProcessBus` when replicas must share events. For the same reason the
in-process bus hands every subscriber its own JSON round-trip of the event
(:func:`~tavkit.server.events.encode`, then :func:`~tavkit.server.events.decode`):
an event that would not survive Redis fails here too, and no subscriber can change
what another one sees.

A subscriber that falls ``max_queue`` events behind is cut off: its iterator raises
``ServerError(INTERNAL)``, because silently dropping events would leave a client
with a wrong view of the room. An event that cannot be read back (a bug, or a replica
speaking another version) cuts its subscriber off the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final, Protocol, Self

from tavkit.errors import ServerCode, ServerError
from tavkit.server.events import Event, decode, encode

__all__ = ["Bus", "InProcessBus", "Subscription", "session_channel"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE: Final = 1024


def session_channel(room_uuid: object) -> str:
    """The channel carrying everything about one session."""
    return f"session:{room_uuid}"


class Subscription(Protocol):
    """Events of one channel, from the moment the subscription is entered until it exits."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def __aiter__(self) -> AsyncIterator[Event]:
        """Events in publication order; wrap reads in ``asyncio.timeout`` to bound a wait."""
        ...


class Bus(Protocol):
    """Where the room service publishes and the sockets listen."""

    async def publish(self, channel: str, event: Event) -> None:
        """Deliver ``event`` to every current subscriber of ``channel``."""
        ...

    def subscribe(self, channel: str) -> Subscription:
        """A subscription to ``channel``; it receives events once entered."""
        ...


class _LocalSubscription:
    """A queue of one channel's events, registered with its bus while entered."""

    def __init__(self, bus: InProcessBus, channel: str, max_queue: int) -> None:
        self._bus = bus
        self.channel = channel
        self._queue: asyncio.Queue[str] = asyncio.Queue(max_queue)
        self._overflowed = False
        self._entered = False

    async def __aenter__(self) -> Self:
        self._bus._attach(self)
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bus._detach(self)

    def _offer(self, text: str) -> None:
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            if not self._overflowed:
                logger.warning("subscriber of %s fell behind; cutting it off", self.channel)
            self._overflowed = True

    def _check(self) -> None:
        if not self._entered:
            raise RuntimeError("enter the subscription (async with) before reading it")
        if self._overflowed and self._queue.empty():
            raise ServerError(ServerCode.INTERNAL, f"events of {self.channel} were lost")

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            self._check()
            # No timeout: the socket task that owns this iteration cancels it on close.
            text = await self._queue.get()
            try:
                event = decode(text)
            except ValueError as exc:
                logger.error("unreadable event on %s: %s", self.channel, exc)
                raise ServerError(
                    ServerCode.INTERNAL, f"an event of {self.channel} could not be read"
                ) from exc
            yield event


class InProcessBus:
    """A :class:`Bus` inside one process: enough for a single ``tavkit serve``."""

    def __init__(self, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self._max_queue = max_queue
        self._channels: dict[str, set[_LocalSubscription]] = {}

    async def publish(self, channel: str, event: Event) -> None:
        """Deliver ``event`` to every current subscriber of ``channel`` (never blocks).

        Raises ``TypeError`` or ``ValueError`` for an event JSON cannot carry.
        """
        text = encode(event)
        for subscription in tuple(self._channels.get(channel, ())):
            subscription._offer(text)

    def subscribe(self, channel: str) -> _LocalSubscription:
        """A subscription to ``channel``; it receives events once entered."""
        return _LocalSubscription(self, channel, self._max_queue)

    def subscriber_count(self, channel: str) -> int:
        """How many subscriptions currently listen on ``channel`` (for tests and metrics)."""
        return len(self._channels.get(channel, ()))

    def _attach(self, subscription: _LocalSubscription) -> None:
        self._channels.setdefault(subscription.channel, set()).add(subscription)

    def _detach(self, subscription: _LocalSubscription) -> None:
        listeners = self._channels.get(subscription.channel)
        if listeners is not None:
            listeners.discard(subscription)
            if not listeners:
                del self._channels[subscription.channel]
