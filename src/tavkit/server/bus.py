"""Publish/subscribe between the room service and the sockets, behind a small protocol.

:class:`RoomService` publishes what happened to a session on the channel
``session:{uuid}``; each signaling socket subscribes to its session's channel and
turns events into frames. Events are the typed values of :mod:`tavkit.server.events`.
The :class:`Bus` protocol is all either side knows, so
:class:`~tavkit.server.redis_bus.RedisBus` replaces :class:`InProcessBus` when replicas
must share events. For the same reason the
in-process bus sends every event through the JSON a broker would carry
(:func:`~tavkit.server.events.encode`, then :func:`~tavkit.server.events.decode`):
an event that would not survive Redis fails here too. Both buses decode an event
once per process, not once per subscriber (:func:`fan_out`): the typed events are
frozen, so the subscribers of a channel share one decoded value, except a
``message`` event, whose ``data`` is plain JSON anyone could change, so each of its
subscribers gets a copy of its own.

A subscriber that falls ``max_queue`` events behind is cut off: its iterator raises
``ServerError(INTERNAL)``, because silently dropping events would leave a client
with a wrong view of the room. An event that cannot be read back (a bug, or a replica
speaking another version) cuts its subscriber off the same way, and so does a broker
that went away. A cut-off socket closes with 1011; its client resumes and reads a
fresh snapshot (members, ``lastSeq``, then ``sync``) from the database, which is how
it recovers what it missed: the bus never replays. Both buses hand out the same
:class:`QueuedSubscription`, so these rules have one definition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Final, Protocol, Self

from tavkit.errors import ServerCode, ServerError
from tavkit.server.events import Event, MessageEvent, decode, encode
from tavkit.server.mailbox import Mailbox

__all__ = [
    "Bus",
    "InProcessBus",
    "QueuedSubscription",
    "Subscription",
    "fan_out",
    "session_channel",
    "user_channel",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE: Final = 1024


def session_channel(room_uuid: object) -> str:
    """The channel carrying everything about one session."""
    return f"session:{room_uuid}"


def user_channel(sdk_app_id: int, user_id: str) -> str:
    """The channel carrying one user's call frames to their user sockets (every device)."""
    return f"user:{sdk_app_id}:{user_id}"


class Subscription(Protocol):
    """Events of one channel, from the moment the subscription is entered until it exits.

    Entering raises ``ServerError(INTERNAL)`` when the bus cannot listen (its broker is
    unreachable): a subscription that is entered hears every later event.
    """

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


class QueuedSubscription:
    """One subscriber's queue of one channel's events: what every bus here hands out.

    Its bus offers it each event without ever blocking, as JSON text (decoded as it is
    read) or as the value :func:`fan_out` decoded for every subscriber at once. It is
    cut off (its iterator raises ``ServerError(INTERNAL)`` once the events queued before
    are read) when it falls ``max_queue`` behind, when an event does not read back, or
    when its bus calls :meth:`cut_off`.
    """

    def __init__(
        self,
        channel: str,
        max_queue: int,
        *,
        attach: Callable[[QueuedSubscription], Awaitable[None]],
        detach: Callable[[QueuedSubscription], Awaitable[None]],
    ) -> None:
        self.channel = channel
        self._attach = attach
        self._detach = detach
        # None after the events: the bus cut it off (see _lost).
        self._queue: Mailbox[str | bytes | Event | None] = Mailbox(max_queue)
        self._lost: str | None = None
        self._entered = False

    async def __aenter__(self) -> Self:
        await self._attach(self)
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._detach(self)

    def offer(self, item: str | bytes | Event) -> None:
        """Queue one event, as text or decoded (the bus's side); past ``max_queue``, cut off."""
        if self._lost is not None:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("subscriber of %s fell behind; cutting it off", self.channel)
            self._lost = f"events of {self.channel} were lost"

    def cut_off(self, reason: str) -> None:
        """End the iteration with ``ServerError(INTERNAL, reason)`` after what is queued."""
        if self._lost is not None:
            return
        self._lost = reason
        if not self._queue.full():
            self._queue.put_nowait(None)  # wakes a reader waiting on an empty queue

    def _check(self) -> None:
        if not self._entered:
            raise RuntimeError("enter the subscription (async with) before reading it")
        if self._lost is not None and self._queue.empty():
            raise ServerError(ServerCode.INTERNAL, self._lost)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            self._check()
            # No timeout: the socket task that owns this iteration cancels it on close.
            item = await self._queue.get()
            if item is None:
                continue  # cut off: _check raises now that the queue is empty
            if not isinstance(item, str | bytes):
                yield item  # decoded once by fan_out
                continue
            try:
                event = decode(item)
            except ValueError as exc:
                logger.error("unreadable event on %s: %s", self.channel, exc)
                raise ServerError(
                    ServerCode.INTERNAL, f"an event of {self.channel} could not be read"
                ) from exc
            yield event


def fan_out(subscriptions: Iterable[QueuedSubscription], text: str | bytes) -> None:
    """Offer one encoded event to each of ``subscriptions``, decoding it once for all.

    An event that does not read back is offered as its text, so that every subscriber
    fails on it (and is cut off) as it would have alone. A ``message`` event's value
    goes to one subscriber; the others get the text and decode copies of their own.
    """
    try:
        event: Event | None = decode(text)
    except ValueError:
        event = None
    item: str | bytes | Event = text if event is None else event
    for subscription in tuple(subscriptions):
        subscription.offer(item)
        if isinstance(item, MessageEvent):
            item = text


class InProcessBus:
    """A :class:`Bus` inside one process: enough for a single ``tavkit serve``."""

    def __init__(self, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self._max_queue = max_queue
        self._channels: dict[str, set[QueuedSubscription]] = {}

    async def publish(self, channel: str, event: Event) -> None:
        """Deliver ``event`` to every current subscriber of ``channel`` (never blocks).

        Raises ``TypeError`` or ``ValueError`` for an event JSON cannot carry.
        """
        text = encode(event)
        subscriptions = self._channels.get(channel)
        if subscriptions:
            fan_out(subscriptions, text)

    def subscribe(self, channel: str) -> QueuedSubscription:
        """A subscription to ``channel``; it receives events once entered."""
        return QueuedSubscription(
            channel, self._max_queue, attach=self._attach, detach=self._detach
        )

    def subscriber_count(self, channel: str) -> int:
        """How many subscriptions currently listen on ``channel`` (for tests and metrics)."""
        return len(self._channels.get(channel, ()))

    async def _attach(self, subscription: QueuedSubscription) -> None:
        self._channels.setdefault(subscription.channel, set()).add(subscription)

    async def _detach(self, subscription: QueuedSubscription) -> None:
        listeners = self._channels.get(subscription.channel)
        if listeners is not None:
            listeners.discard(subscription)
            if not listeners:
                del self._channels[subscription.channel]
