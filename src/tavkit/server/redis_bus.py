"""A :class:`~tavkit.server.bus.Bus` over Redis pub/sub, so replicas share their sessions' events.

``tavkit serve --redis-url redis://...`` (``TAVKIT_REDIS_URL``) runs on it instead of
the in-process bus; it behaves as :class:`~tavkit.server.bus.InProcessBus` does (the
same :class:`~tavkit.server.bus.QueuedSubscription`: order, one decode per event
shared by the local subscribers (:func:`~tavkit.server.bus.fan_out`), the cut-off of a
subscriber that falls ``max_queue`` behind or reads a bad event).

Channels. The bus channel ``session:{uuid}`` is the Redis channel
``{prefix}session:{uuid}`` (prefix ``tavkit:`` unless told otherwise): one Redis channel
per session, so a replica only hears the sessions it has sockets for, and two
deployments sharing a Redis (pub/sub ignores the database number) keep apart by prefix.

Connections. Two per process, whatever the number of sockets:

- publishing: one connection and one writer task. :meth:`RedisBus.publish` queues the
  event and waits for Redis to take it; the writer sends what has queued as one
  pipeline, so events leave in the order they were published (per channel and
  overall) and a burst costs one round trip.
- listening: one pub/sub connection and one reader task, which SUBSCRIBEs to a
  channel when its first local subscription is entered and UNSUBSCRIBEs when its last
  one exits, and offers each message to the channel's local subscriptions. Entering
  returns once Redis has confirmed the SUBSCRIBE, so an entered subscription hears
  every later event (the sockets read their snapshot after entering).

Redis going away. The reader notices a closed connection at once and a silent one
within two ``ping_interval`` (it PINGs when the connection is quiet). Events published
meanwhile are gone for good, so every local subscription is cut off (server 10000):
its socket closes with 1011, and its client resumes and reads a fresh snapshot and
``sync`` from the database, the one place nothing is lost. While Redis is away,
:meth:`~RedisBus.publish` raises ``ServerUnavailable`` (server 10000; entering a room is refused
with server 10000) and so does entering a subscription; calls in progress keep their
media, which is peer to peer. The reader reconnects by itself, backing off from 50 ms
to ``backoff_max`` with jitter; the publishing connection is opened again by the next
publish. Nothing is replayed: the database is the record, the bus only says "now".

Versions. Every event carries :data:`~tavkit.server.events.WIRE_VERSION`; a replica
refuses another version's events (its subscribers are cut off), so replicas of two
versions sharing sessions make their clients resume until one version is left.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from redis.asyncio.connection import AbstractConnection, Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from tavkit.errors import ServerUnavailable
from tavkit.server.bus import DEFAULT_MAX_QUEUE, QueuedSubscription, fan_out
from tavkit.server.events import Event, encode

__all__ = ["DEFAULT_PREFIX", "RedisBus"]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX: Final = "tavkit:"
"""What every Redis channel of a deployment starts with."""
DEFAULT_TIMEOUT: Final = 5.0
DEFAULT_PING_INTERVAL: Final = 5.0
DEFAULT_BACKOFF_MAX: Final = 2.0
_BACKOFF_MIN: Final = 0.05
_FAILURES: Final = (RedisError, OSError, TimeoutError)
"""What a Redis connection raises when Redis is unreachable, slow or refusing."""


def _unreachable(what: str) -> ServerUnavailable:
    return ServerUnavailable(f"the event bus (Redis) is unreachable: {what}")


@dataclass
class _Outgoing:
    """One published event waiting for the writer."""

    key: str
    text: str
    sent: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class RedisBus:
    """A :class:`~tavkit.server.bus.Bus` over Redis pub/sub (see the module docstring).

    Use it as an async context manager: entering connects (``ServerUnavailable``
    if Redis cannot be reached within ``timeout``) and starts its two tasks; exiting
    stops them and cuts off the subscriptions still open.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_queue: int = DEFAULT_MAX_QUEUE,
        # Timeouts
        timeout: float = DEFAULT_TIMEOUT,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        # Reconnecting
        backoff_max: float = DEFAULT_BACKOFF_MAX,
    ) -> None:
        """``url`` is ``redis://``, ``rediss://`` or ``unix://``; ``prefix`` starts every channel.

        ``timeout`` bounds connecting, a publish and a SUBSCRIBE; a pub/sub connection
        quiet for ``ping_interval`` is PINGed and given as long again to answer.
        """
        if not prefix:
            raise ValueError("the Redis channel prefix must not be empty")
        self._connect = _connection_factory(url, timeout)
        self._prefix = prefix
        self._max_queue = max_queue
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._backoff_max = backoff_max
        self._channels: dict[str, set[QueuedSubscription]] = {}
        # SUBSCRIBEs sent, oldest first, per channel: each confirmation sets the first.
        self._confirming: dict[str, deque[asyncio.Event]] = {}
        self._publisher = self._connect("tavkit-bus-publish")
        self._listener: AbstractConnection | None = None  # None while Redis is away
        self._commands = asyncio.Lock()  # (UN)SUBSCRIBEs reach Redis in the order sent
        self._outbox: list[_Outgoing] = []
        self._queued = asyncio.Event()
        self._reconnect_now = asyncio.Event()
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._publish_failing = False

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-bus reader"),
            asyncio.create_task(self._write(), name="redis-bus writer"),
        ]
        try:
            async with asyncio.timeout(self._timeout):
                await self._listening.wait()
        except TimeoutError:
            await self.aclose()
            raise _unreachable(f"no connection within {self._timeout:g} s") from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop both tasks, fail what is unsent, cut off every subscription, disconnect."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for outgoing in self._outbox:
            if not outgoing.sent.done():
                outgoing.sent.set_exception(_unreachable("the bus closed"))
        self._outbox.clear()
        self._lose_everything("the event bus closed")
        await self._publisher.disconnect(nowait=True)

    # -- the Bus protocol ---------------------------------------------------------------------

    async def publish(self, channel: str, event: Event) -> None:
        """Deliver ``event`` to every subscriber of ``channel`` on every replica.

        Returns once Redis has taken it. ``ServerUnavailable`` when Redis is
        unreachable or slower than ``timeout``; ``TypeError``/``ValueError`` for an
        event JSON cannot carry.
        """
        outgoing = _Outgoing(self._prefix + channel, encode(event))
        if not self._tasks:
            raise RuntimeError("enter the RedisBus (async with) before publishing")
        self._outbox.append(outgoing)
        self._queued.set()
        try:
            async with asyncio.timeout(self._timeout):
                await outgoing.sent  # a timeout cancels it, and the writer skips it
        except TimeoutError:
            raise _unreachable(f"publishing took over {self._timeout:g} s") from None

    def subscribe(self, channel: str) -> QueuedSubscription:
        """A subscription to ``channel``; entering it waits for Redis to confirm."""
        return QueuedSubscription(
            channel, self._max_queue, attach=self._attach, detach=self._detach
        )

    # -- for tests, metrics and health --------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether the pub/sub connection is up (False while Redis is away)."""
        return self._listener is not None

    def subscriber_count(self, channel: str) -> int:
        """How many subscriptions of this process currently listen on ``channel``."""
        return len(self._channels.get(channel, ()))

    # -- subscriptions --------------------------------------------------------------------------

    async def _attach(self, subscription: QueuedSubscription) -> None:
        listener = self._listener
        if listener is None:
            self._reconnect_now.set()
            raise _unreachable("not connected; try again")
        channel = subscription.channel
        listeners = self._channels.setdefault(channel, set())
        first = not listeners
        listeners.add(subscription)
        try:
            if first:
                confirmed = asyncio.Event()
                self._confirming.setdefault(channel, deque()).append(confirmed)
                await self._command(listener, "SUBSCRIBE", self._prefix + channel)
            elif pending := self._confirming.get(channel):
                confirmed = pending[-1]  # an earlier subscriber's SUBSCRIBE is on its way
            else:
                return
            async with asyncio.timeout(self._timeout):
                await confirmed.wait()
            if self._listener is not listener:
                raise _unreachable("the connection dropped while subscribing")
        except BaseException as exc:
            await self._detach(subscription)
            if isinstance(exc, _FAILURES):
                raise _unreachable(f"subscribing failed ({exc!r})") from exc
            raise

    async def _detach(self, subscription: QueuedSubscription) -> None:
        channel = subscription.channel
        listeners = self._channels.get(channel)
        if listeners is None or subscription not in listeners:
            return
        listeners.discard(subscription)
        if listeners:
            return
        del self._channels[channel]
        listener = self._listener
        if listener is not None:
            try:
                await self._command(listener, "UNSUBSCRIBE", self._prefix + channel)
            except _FAILURES as exc:  # the connection broke: the reader starts over
                logger.debug("UNSUBSCRIBE %s failed: %r", channel, exc)

    async def _command(self, listener: AbstractConnection, *args: str) -> None:
        """Send one command on the pub/sub connection; the reader reads its answer."""
        async with asyncio.timeout(self._timeout), self._commands:
            await listener.send_command(*args, check_health=False)

    def _lose_everything(self, reason: str) -> None:
        """Cut off every subscription and wake every pending SUBSCRIBE (to fail)."""
        self._listener = None
        self._listening.clear()
        subscriptions = [s for listeners in self._channels.values() for s in listeners]
        self._channels.clear()
        for subscription in subscriptions:
            subscription.cut_off(reason)
        for pending in self._confirming.values():
            for confirmed in pending:
                confirmed.set()
        self._confirming.clear()
        if subscriptions:
            logger.warning("cut off %d subscription(s): %s", len(subscriptions), reason)

    # -- the reader task --------------------------------------------------------------------------

    async def _listen(self) -> None:
        delay = _BACKOFF_MIN
        down_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            listener = self._connect("tavkit-bus-listen")
            try:
                async with asyncio.timeout(self._timeout):
                    await listener.send_command("PING", check_health=False)  # connects
                    await listener.read_response()
            except BaseException as exc:
                await listener.disconnect(nowait=True)
                if not isinstance(exc, _FAILURES):
                    raise
                if down_since is None:
                    down_since = loop.time()
                    logger.error("cannot reach Redis (%s); retrying", exc)
                await self._back_off(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            if down_since is not None:
                logger.warning("Redis reachable again after %.1f s", loop.time() - down_since)
            down_since, delay = None, _BACKOFF_MIN
            self._listener = listener
            self._listening.set()
            reason = "the event bus lost its connection to Redis; events may be missing"
            try:
                await self._read(listener)
            except _FAILURES as exc:
                down_since = loop.time()
                logger.error("lost the Redis pub/sub connection (%s); reconnecting", exc)
            except asyncio.CancelledError:
                reason = "the event bus closed"
                raise
            finally:
                self._lose_everything(reason)
                await listener.disconnect(nowait=True)
            await self._back_off(delay)

    async def _back_off(self, delay: float) -> None:
        """Sleep ``delay`` give or take a half (replicas spread out), or until woken."""
        self._reconnect_now.clear()
        try:
            async with asyncio.timeout(delay * random.uniform(0.5, 1.5)):
                await self._reconnect_now.wait()
        except TimeoutError:
            pass

    async def _read(self, listener: AbstractConnection) -> None:
        """Fan messages out until the connection fails (raises one of ``_FAILURES``)."""
        pinged = False
        while True:
            reply = await listener.read_response(timeout=self._ping_interval)
            if reply is None:  # quiet for ping_interval
                if pinged:
                    raise TimeoutError(f"no answer to PING within {self._ping_interval:g} s")
                await self._command(listener, "PING")
                pinged = True
                continue
            pinged = False  # anything read shows the connection is alive
            if isinstance(reply, list) and len(reply) == 3:
                self._on_push(reply[0], reply[1], reply[2])

    def _on_push(self, kind: object, key: object, data: object) -> None:
        if not isinstance(key, bytes):
            return
        channel = key.decode().removeprefix(self._prefix)
        if kind == b"message" and isinstance(data, bytes):
            subscriptions = self._channels.get(channel)
            if subscriptions:
                fan_out(subscriptions, data)
        elif kind == b"subscribe":
            pending = self._confirming.get(channel)
            if pending:
                pending.popleft().set()
                if not pending:
                    del self._confirming[channel]

    # -- the writer task --------------------------------------------------------------------------

    async def _write(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            batch = [outgoing for outgoing in self._outbox if not outgoing.sent.done()]
            self._outbox.clear()
            if not batch:
                continue
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                for outgoing in batch:
                    if not outgoing.sent.done():
                        outgoing.sent.set_exception(_unreachable("the bus closed"))
                raise
            except _FAILURES as exc:
                if not self._publish_failing:
                    logger.error("cannot publish to Redis: %s", exc)
                self._publish_failing = True
                for outgoing in batch:
                    if not outgoing.sent.done():
                        outgoing.sent.set_exception(_unreachable(str(exc) or repr(exc)))
                continue
            if self._publish_failing:
                logger.warning("publishing to Redis again")
                self._publish_failing = False
                self._reconnect_now.set()  # Redis is back: the reader need not wait
            for outgoing in batch:
                if not outgoing.sent.done():
                    outgoing.sent.set_result(None)

    async def _send(self, batch: list[_Outgoing]) -> None:
        """PUBLISH ``batch`` as one pipeline; a connection Redis closed meanwhile is renewed."""
        commands = [("PUBLISH", outgoing.key, outgoing.text) for outgoing in batch]
        publisher = self._publisher
        reused = publisher.is_connected
        try:
            await self._pipeline(commands)
        except RedisConnectionError:
            await publisher.disconnect(nowait=True)
            if not reused:
                raise
            # Redis restarted or dropped an idle connection: those bytes reached nobody.
            await self._pipeline(commands)

    async def _pipeline(self, commands: list[tuple[str, str, str]]) -> None:
        publisher = self._publisher
        try:
            async with asyncio.timeout(self._timeout):
                await publisher.send_packed_command(
                    publisher.pack_commands(commands), check_health=False
                )
                for _ in commands:
                    await publisher.read_response()
        except BaseException:
            await publisher.disconnect(nowait=True)  # replies may be left unread
            raise


def _connection_factory(url: str, timeout: float) -> Callable[[str], AbstractConnection]:
    """Connections to ``url``, named for ``CLIENT LIST``, that never retry on their own.

    The bus decides when to reconnect (a silent reconnect would hide lost events), and
    it parses RESP2 pub/sub replies, whatever protocol the URL asks for. Raises
    ``ValueError`` for a URL redis-py cannot read.
    """
    options: dict[str, Any] = dict(parse_url(url))
    connection_class: type[AbstractConnection] = options.pop("connection_class", Connection)
    options.update(
        protocol=2,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )

    def connect(name: str) -> AbstractConnection:
        connection: AbstractConnection = connection_class(**options, client_name=name)
        return connection

    return connect
