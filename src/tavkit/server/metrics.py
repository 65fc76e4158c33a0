"""Prometheus metrics: one registry per app, counters at the source, gauges at scrape time.

Every app built by ``create_app`` gets its own :class:`Metrics` (and its own
``CollectorRegistry``), so two servers in one process - every test run - never
share a number. Where each series comes from:

=====================================  ==============================================
series                                 source
=====================================  ==============================================
``tavkit_sessions_open``,              the database, queried when ``/metrics`` is
``tavkit_members_live``                scraped (so they are right after a restart)
``tavkit_room_enters_total``,          :class:`ObservedBus`: the room service's own
``tavkit_room_exits_total{reason}``,   events, as it publishes them
``tavkit_heartbeat_timeouts_total``,
``tavkit_sessions_closed_total``,
``tavkit_signals_relayed_total``
``tavkit_errors_total``                :class:`ErrorCounter` (every seed-shaped error
``{source,module,code}``               response), clients' reported errors, signaling
``tavkit_socket_messages_total``       the signaling socket (:meth:`Metrics.socket_message`)
``tavkit_log_*``                       log ingest and the forwarder
=====================================  ==============================================

The database gauges describe the whole cluster (every replica sees the same
rows); the counters describe this process only, as Prometheus expects.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.server.bus import Bus, Subscription
from tavkit.server.errors import error_response
from tavkit.server.events import (
    Event,
    MemberJoinedEvent,
    MemberLeftEvent,
    MemberLinkEvent,
    MemberStateEvent,
    RoomClosedEvent,
    SignalEvent,
    SocketOpenEvent,
)
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.models import MemberRow, SessionRow

__all__ = [
    "ErrorCounter",
    "Metrics",
    "ObservedBus",
    "counter_family",
    "gauge_family",
    "install_metrics",
]

logger = logging.getLogger(__name__)
events_logger = logging.getLogger("tavkit.events")

_MAX_ERROR_BODY: Final = 8192


class Metrics:
    """The server's Prometheus series, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sessions_open = Gauge("tavkit_sessions_open", "Open room sessions.", registry=r)
        self.members_live = Gauge("tavkit_members_live", "Members in open sessions.", registry=r)
        self.enters = Counter("tavkit_room_enters", "Room entries (new memberships).", registry=r)
        self.exits = Counter(
            "tavkit_room_exits", "Memberships that ended, by reason.", ["reason"], registry=r
        )
        self.heartbeat_timeouts = Counter(
            "tavkit_heartbeat_timeouts", "Members removed for silence.", registry=r
        )
        self.sessions_closed = Counter(
            "tavkit_sessions_closed", "Sessions closed, by reason.", ["reason"], registry=r
        )
        self.signals_relayed = Counter(
            "tavkit_signals_relayed", "Signaling messages relayed between members.", registry=r
        )
        self.errors = Counter(
            "tavkit_errors",
            "Seed errors: sent by the server (source=server) or reported by clients.",
            ["source", "module", "code"],
            registry=r,
        )
        self.socket_messages = Counter(
            "tavkit_socket_messages",
            "Signaling socket frames, by direction (in/out) and type.",
            ["direction", "type"],
            registry=r,
        )
        self.log_items = Counter(
            "tavkit_log_ingest_items", "Client log items stored, by kind.", ["kind"], registry=r
        )
        self.log_refused = Counter(
            "tavkit_log_ingest_refused",
            "Client log batches refused, by reason (invalid, rate, auth, session).",
            ["reason"],
            registry=r,
        )
        self.log_client_dropped = Counter(
            "tavkit_log_client_dropped",
            "Items clients report having dropped before sending (full queue, refused batch).",
            registry=r,
        )
        self._watched: dict[str, Callable[[], Iterator[Metric]]] = {}
        # Every socket frame is counted: looking up its labelled child once per
        # (direction, type) rather than per frame spares the hot path a lock and a dict.
        self._socket_children: dict[tuple[str, str], Any] = {}
        r.register(_WatchedCollector(self._watched))

    # -- sources -------------------------------------------------------------------------

    def error(self, module: str, code: int, *, source: str = "server") -> None:
        """Count one seed error (``source``: ``server`` sent it, ``client`` reported it)."""
        self.errors.labels(source=source, module=module, code=str(code)).inc()

    def socket_message(self, direction: str, kind: str) -> None:
        """Count one signaling frame; ``direction`` is ``in`` or ``out``."""
        child = self._socket_children.get((direction, kind))
        if child is None:
            child = self._socket_children[direction, kind] = self.socket_messages.labels(
                direction=direction, type=kind
            )
        child.inc()

    def room_event(self, event: Event) -> None:
        """Count one room-service bus event (see :class:`ObservedBus`)."""
        if isinstance(event, MemberJoinedEvent):
            self.enters.inc()
        elif isinstance(event, MemberLeftEvent):
            self.exits.labels(reason=event.reason).inc()
            if event.reason == "timeout":
                self.heartbeat_timeouts.inc()
        elif isinstance(event, RoomClosedEvent):
            self.sessions_closed.labels(reason=event.reason).inc()
        elif isinstance(event, SignalEvent):
            self.signals_relayed.inc()

    def watch(self, name: str, collect: Callable[[], Iterator[Metric]]) -> None:
        """Add series computed at scrape time by ``collect``; a second ``name`` replaces the first.

        Replacing (rather than adding) keeps the output valid when a lifespan that
        registers a collector runs twice on the same app.
        """
        self._watched[name] = collect

    async def refresh(self, store: Store) -> None:
        """Set the database gauges from the tables (cluster-wide numbers)."""
        with storage_errors("reading metrics"):
            async with store.sessions() as s:
                open_sessions = await s.scalar(
                    select(func.count())
                    .select_from(SessionRow)
                    .where(SessionRow.closed_at.is_(None))
                )
                live = await s.scalar(
                    select(func.count()).select_from(MemberRow).where(MemberRow.left_at.is_(None))
                )
        self.sessions_open.set(open_sessions or 0)
        self.members_live.set(live or 0)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class _WatchedCollector(Collector):
    """Yields the series of every function given to :meth:`Metrics.watch`."""

    def __init__(self, watched: dict[str, Callable[[], Iterator[Metric]]]) -> None:
        self._watched = watched

    def collect(self) -> Iterator[Metric]:
        for collect in list(self._watched.values()):
            yield from collect()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # computed series; nothing to check for clashes up front


def counter_family(name: str, doc: str, value: float) -> CounterMetricFamily:
    """A counter computed at scrape time (for :meth:`Metrics.watch`)."""
    return CounterMetricFamily(name, doc, value=value)


def gauge_family(name: str, doc: str, value: float) -> GaugeMetricFamily:
    """A gauge computed at scrape time (for :meth:`Metrics.watch`)."""
    return GaugeMetricFamily(name, doc, value=value)


class ObservedBus:
    """A :class:`Bus` that counts and logs the room service's events on their way out.

    The room service publishes one event per change, after the change committed,
    so these counters move exactly when the rooms do. Each event is also written
    to the ``tavkit.events`` logger with its session and user, which is what the
    JSON log format turns into searchable fields.
    """

    def __init__(self, inner: Bus, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def publish(self, channel: str, event: Event) -> None:
        """Count and log ``event``, then publish it on the wrapped bus."""
        try:
            self._metrics.room_event(event)
            if not isinstance(event, SignalEvent):
                _log_event(channel, event)
        except Exception:  # observing must never break a room change
            logger.exception("counting a bus event failed")
        await self._inner.publish(channel, event)

    def subscribe(self, channel: str) -> Subscription:
        """Subscribe on the wrapped bus."""
        return self._inner.subscribe(channel)


def _log_event(channel: str, event: Event) -> None:
    session = channel.removeprefix("session:")
    user: str | None = None
    if isinstance(event, MemberJoinedEvent):
        user = event.member.user_id
    elif isinstance(event, MemberLeftEvent | MemberStateEvent | SocketOpenEvent | MemberLinkEvent):
        user = event.user_id
    reason = event.reason if isinstance(event, MemberLeftEvent | RoomClosedEvent) else None
    kind = event.kind
    events_logger.info(
        "%s %s%s",
        kind,
        user or "-",
        f" ({reason})" if reason is not None else "",
        extra={"session": session, "user": user, "event": kind, "reason": reason},
    )


class ErrorCounter:
    """ASGI middleware counting every seed-shaped error response by module and code.

    It sits outside the error handlers and the body guard, so it sees every error
    the way the client does, whichever layer produced it. Only responses with a
    4xx/5xx status and a JSON body are looked at, and only their first 8 KiB.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        failing = False
        body = bytearray()

        async def counting_send(message: Message) -> None:
            nonlocal failing
            if message["type"] == "http.response.start":
                failing = message["status"] >= 400 and _is_json(message.get("headers", ()))
            elif message["type"] == "http.response.body" and failing:
                if len(body) < _MAX_ERROR_BODY:
                    body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    self._count(bytes(body))
            await send(message)

        await self.app(scope, receive, counting_send)

    def _count(self, body: bytes) -> None:
        try:
            data = json.loads(body)
            module, code = data["module"], int(data["errorCode"])
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(module, str):
            self.metrics.error(module, code)


def _is_json(headers: Any) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return bytes(value).startswith(b"application/json")
    return False


def install_metrics(app: FastAPI, *, token: str | None = None) -> Metrics:
    """Give ``app`` its :class:`Metrics`, the error counter and ``GET /metrics``.

    Call it while building the app (middleware cannot be added once it started).
    The endpoint shows counts, never identities. With ``token`` (``--metrics-token``)
    a scrape must carry ``Authorization: Bearer <token>`` (Prometheus's
    ``authorization.credentials``), else 401 with server 10005; without it the endpoint
    is open: keep it behind the same network rules as the server itself.
    """
    metrics = Metrics()
    app.add_middleware(ErrorCounter, metrics=metrics)
    expected = token.encode() if token else None

    async def scrape(request: Request) -> Response:
        if expected is not None:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            given = presented.strip().encode("utf-8", "surrogateescape")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
                refused = ServerError(ServerCode.UNAUTHORISED, "/metrics needs its bearer token")
                challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
                return error_response(refused, status=401, **challenge)
        ctx = getattr(request.app.state, "tavkit", None)  # None before the lifespan ran
        if ctx is not None:
            try:
                await metrics.refresh(ctx.store)
            except TAvKitError:  # a down database must not hide the counters
                logger.warning("metrics: the database gauges could not be refreshed")
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    return metrics
