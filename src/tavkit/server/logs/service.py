"""Storage and forwarding of client reports: rate buckets, rows, queries, documents.

:mod:`tavkit.server.logs.routes` checks who is asking and what they sent; this module
stores an accepted batch in one transaction (after checking the caller was in the
session), reads entries back in time order, and turns a batch into the flat
documents the forwarder ships to Elasticsearch or OpenSearch.

Two limits keep the tables from growing without bound:

* **Late batches.** A member's last flush arrives after it hung up, so a closed
  session takes batches for :data:`LATE_GRACE` (5 minutes) more; after that they are
  server 14003 "the room is closed" (HTTP 410, the same refusal a message to a closed
  session gets), which the reporters drop rather than retry.
* **A daily cap per app.** At most ``daily_cap`` items (log lines plus quality
  samples) a UTC day; a batch that would pass it is refused whole with
  :class:`~tavkit.server.ratelimit.RateLimited` (429, server 10004, ``Retry-After``
  until midnight UTC), so the reporters keep it and try later. Each process counts
  what it stored, starting from what the database held when it first saw the app
  that day; replicas do not share counts, so with several the cap is per replica
  at worst.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import MAX_JSON_DEPTH, RoomId
from tavkit.server.auth import Caller
from tavkit.server.logs.forwarder import Forwarder
from tavkit.server.logs.wire import LogBatch
from tavkit.server.metrics import Metrics
from tavkit.server.ratelimit import BucketTable, Limit, RateLimited
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.logs_models import ClientLogRow, QualitySampleRow
from tavkit.server.store.models import MemberRow, SessionRow
from tavkit.server.store.readback import read_json
from tavkit.server.store.unit_of_work import Outbox, transaction

__all__ = ["BURST", "DAILY_CAP", "LATE_GRACE", "MAX_TRACKED_USERS", "RATE", "LogService"]

RATE: Final = 2.0
"""Batches per second a user may send on average."""
BURST: Final = 20.0
"""Batches a user may send at once (a reconnecting client flushing its backlog)."""
MAX_TRACKED_USERS: Final = 10_000
"""Rate buckets kept; the least recently used one is forgotten (it restarts full)."""
LATE_GRACE: Final = 300.0
"""Seconds after its session closed that a batch is still taken (a member's last flush)."""
DAILY_CAP: Final = 500_000
"""Items (log lines plus quality samples) an app may store per UTC day, by default."""
_DAY: Final = 86400.0

_QUALITY_WIRE: Final = (
    ("rttMs", "rtt_ms"),
    ("jitterMs", "jitter_ms"),
    ("packetLoss", "packet_loss"),
    ("bitrateInKbps", "bitrate_in_kbps"),
    ("bitrateOutKbps", "bitrate_out_kbps"),
    ("fps", "fps"),
    ("width", "width"),
    ("height", "height"),
    ("candidateType", "candidate_type"),
)


@dataclass(frozen=True)
class _Session:
    """What ingest needs to know about the session a batch names."""

    room_uuid: uuid.UUID
    sdk_app_id: int
    room_id: RoomId


class LogService:
    """Storage, rate limits and forwarding of client reports, for one app instance."""

    def __init__(
        self,
        store: Store,
        *,
        metrics: Metrics | None = None,
        forwarder: Forwarder | None = None,
        rate: float = RATE,
        burst: float = BURST,
        daily_cap: int | Callable[[int], int] = DAILY_CAP,
        late_grace: float = LATE_GRACE,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.forwarder = forwarder
        self._buckets: BucketTable[tuple[int, str]] = BucketTable(
            Limit(rate, burst), max_keys=MAX_TRACKED_USERS
        )
        self._cap_of: Callable[[int], int] = (
            daily_cap if callable(daily_cap) else _same_for_all(daily_cap)
        )
        """Each app's daily cap (0: none): a number for all, or the settings' per-app lookup."""
        self._late_grace = late_grace
        self._today: dict[int, tuple[int, int]] = {}
        """Per app: (UTC day number, items stored that day as far as this process knows)."""
        self._seeding = asyncio.Lock()

    def limit(self, caller: Caller) -> None:
        """Spend one token of the caller's bucket; :class:`RateLimited` when none is left."""
        wait = self._buckets.take((caller.sdk_app_id, caller.user_id))
        if wait:
            raise RateLimited("too many log batches", wait)

    def refused(self, reason: str) -> None:
        """Count a refused batch (``invalid``, ``auth``, ``rate``, ``session``)."""
        if self.metrics is not None:
            self.metrics.log_refused.labels(reason=reason).inc()

    async def ingest(self, caller: Caller, batch: LogBatch, *, now: float) -> None:
        """Store ``batch`` for ``caller`` if they were in its session; then forward it.

        ``now`` is the server's clock (the rows' ``received_at``): the late-batch and
        daily-cap checks read it, so tests move it instead of sleeping.
        """
        items = len(batch.logs) + len(batch.quality)
        await self._reserve(caller.sdk_app_id, items, now)

        async def run(s: AsyncSession, _out: Outbox) -> _Session:
            row = await s.get(SessionRow, batch.room_uuid)
            if row is None or row.sdk_app_id != caller.sdk_app_id:
                raise ServerError(ServerCode.SESSION_NOT_FOUND, f"no session {batch.room_uuid}")
            if row.closed_at is not None and now - row.closed_at > self._late_grace:
                raise ServerError(
                    ServerCode.ROOM_CLOSED,
                    f"session {batch.room_uuid} closed {now - row.closed_at:.0f} s ago; "
                    f"logs are taken up to {self._late_grace:.0f} s after a session closes",
                )
            was_member = await s.scalar(
                select(
                    exists().where(
                        MemberRow.session_id == batch.room_uuid,
                        MemberRow.user_id == caller.user_id,
                    )
                )
            )
            if not was_member:
                raise ServerError(
                    ServerCode.UNAUTHORISED,
                    f"{caller.user_id} was never in session {batch.room_uuid}",
                )
            s.add_all(_log_rows(batch, caller.user_id, now))
            s.add_all(_quality_rows(batch, caller.user_id, now))
            return _Session(row.id, row.sdk_app_id, row.room)

        try:
            session = await transaction(self.store, "storing client logs", run)
        except BaseException:
            self._release(caller.sdk_app_id, items, now)
            raise
        self._count(batch)
        if self.forwarder is not None:
            self.forwarder.submit(_documents(session, caller.user_id, batch))

    async def _reserve(self, sdk_app_id: int, items: int, now: float) -> None:
        """Count ``items`` against the app's cap for today; :class:`RateLimited` past it."""
        cap = self._cap_of(sdk_app_id)
        if not cap or not items:
            return
        day = int(now // _DAY)
        known = self._today.get(sdk_app_id)
        if known is None or known[0] != day:
            async with self._seeding:
                known = self._today.get(sdk_app_id)
                if known is None or known[0] != day:
                    stored = await self._stored_since(sdk_app_id, day * _DAY)
                    known = self._today[sdk_app_id] = (day, stored)
        count = known[1]
        if count + items > cap:
            raise RateLimited(
                f"app {sdk_app_id} has stored its {cap} log items for today (UTC)",
                (day + 1) * _DAY - now,
                reason="quota",
            )
        self._today[sdk_app_id] = (day, count + items)

    def _release(self, sdk_app_id: int, items: int, now: float) -> None:
        """Give back what :meth:`_reserve` counted for a batch that was not stored."""
        known = self._today.get(sdk_app_id)
        if items and known is not None and known[0] == int(now // _DAY):
            self._today[sdk_app_id] = (known[0], max(0, known[1] - items))

    async def _stored_since(self, sdk_app_id: int, since: float) -> int:
        """Items the app's sessions stored since ``since``, as the database has them.

        Only sessions open then, or closed less than the late grace before, can have
        any, which keeps the count on the session indexes.
        """
        sessions = select(SessionRow.id).where(
            SessionRow.sdk_app_id == sdk_app_id,
            or_(SessionRow.closed_at.is_(None), SessionRow.closed_at >= since - self._late_grace),
        )

        async def run(s: AsyncSession, _out: Outbox) -> int:
            total = 0
            for table in (ClientLogRow, QualitySampleRow):
                total += int(
                    await s.scalar(
                        select(func.count())
                        .select_from(table)
                        .where(table.session_id.in_(sessions), table.received_at >= since)
                    )
                    or 0
                )
            return total

        return await transaction(self.store, "counting today's client logs", run, readonly=True)

    def _count(self, batch: LogBatch) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.log_items.labels(kind="log").inc(len(batch.logs))
        metrics.log_items.labels(kind="quality").inc(len(batch.quality))
        if batch.dropped:
            metrics.log_client_dropped.inc(batch.dropped)
        for item in batch.logs:
            if item.error_module is not None and item.error_code is not None:
                metrics.error(item.error_module, item.error_code, source="client")

    async def logs(
        self, room_uuid: uuid.UUID, *, user_id: str | None, since: float | None, limit: int
    ) -> list[dict[str, Any]]:
        """The session's log lines in time order, optionally one user's, after ``since``."""
        query = select(ClientLogRow).where(ClientLogRow.session_id == room_uuid)
        if user_id is not None:
            query = query.where(ClientLogRow.user_id == user_id)
        if since is not None:
            query = query.where(ClientLogRow.at > since)
        query = query.order_by(ClientLogRow.at, ClientLogRow.id).limit(limit)
        with storage_errors("reading client logs"):
            async with self.store.sessions() as s:
                return [_log_wire(row) for row in await s.scalars(query)]

    async def quality(
        self, room_uuid: uuid.UUID, *, user_id: str | None, since: float | None, limit: int
    ) -> list[dict[str, Any]]:
        """The session's quality samples in time order, optionally one user's."""
        query = select(QualitySampleRow).where(QualitySampleRow.session_id == room_uuid)
        if user_id is not None:
            query = query.where(QualitySampleRow.user_id == user_id)
        if since is not None:
            query = query.where(QualitySampleRow.at > since)
        query = query.order_by(QualitySampleRow.at, QualitySampleRow.id).limit(limit)
        with storage_errors("reading quality samples"):
            async with self.store.sessions() as s:
                return [_quality_wire(row) for row in await s.scalars(query)]


# -- rows and documents ---------------------------------------------------------------------


def _log_rows(batch: LogBatch, user_id: str, now: float) -> list[ClientLogRow]:
    return [
        ClientLogRow(
            session_id=batch.room_uuid,
            user_id=user_id,
            at=item.at,
            received_at=now,
            level=item.level,
            event=item.event,
            error_module=item.error_module,
            error_code=item.error_code,
            error_msg=item.error_msg,
            data=item.data,
        )
        for item in batch.logs
    ]


def _quality_rows(batch: LogBatch, user_id: str, now: float) -> list[QualitySampleRow]:
    return [
        QualitySampleRow(
            session_id=batch.room_uuid,
            user_id=user_id,
            peer_id=item.peer_id,
            at=item.at,
            received_at=now,
            rtt_ms=item.rtt_ms,
            jitter_ms=item.jitter_ms,
            packet_loss=item.packet_loss,
            bitrate_in_kbps=item.bitrate_in_kbps,
            bitrate_out_kbps=item.bitrate_out_kbps,
            fps=item.fps,
            width=item.width,
            height=item.height,
            candidate_type=item.candidate_type,
        )
        for item in batch.quality
    ]


def _same_for_all(cap: int) -> Callable[[int], int]:
    """A per-app cap lookup that answers ``cap`` for every app."""
    return lambda _sdk_app_id: cap


def _error_wire(module: str | None, code: int | None, message: str | None) -> dict[str, Any] | None:
    if module is None or code is None:
        return None
    return {"module": module, "errorCode": code, "errorMsg": message or ""}


LOG_DATA_DEPTH: Final = MAX_JSON_DEPTH - 3
"""How deep a log line's ``data`` can nest: the request body, ``logs`` and the line hold it."""


def _log_wire(row: ClientLogRow) -> dict[str, Any]:
    """The one place a stored log line becomes the wire's; its ``data`` is read tolerantly.

    A row stored before the input checks (lone surrogates, nesting past the bound) is
    mended by :func:`~tavkit.server.store.readback.read_json`, not served as a 500.
    """
    data = read_json(row.data, max_depth=LOG_DATA_DEPTH) if row.data else None
    if data is not None and type(data) is not dict:
        data = {"value": data}
    return {
        "userId": row.user_id,
        "at": row.at,
        "receivedAt": row.received_at,
        "level": row.level,
        "event": row.event,
        "error": _error_wire(row.error_module, row.error_code, row.error_msg),
        "data": data,
    }


def _quality_wire(row: QualitySampleRow) -> dict[str, Any]:
    out: dict[str, Any] = {"userId": row.user_id, "peerId": row.peer_id, "at": row.at}
    for wire, column in _QUALITY_WIRE:
        out[wire] = getattr(row, column)
    return out


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def _documents(session: _Session, user_id: str, batch: LogBatch) -> Iterator[dict[str, Any]]:
    """The forwarded form: one flat document per item, ECS-style ``@timestamp`` first."""
    common = {
        "session": str(session.room_uuid),
        "sdkAppId": session.sdk_app_id,
        "roomId": session.room_id,
        "userId": user_id,
    }
    for log in batch.logs:
        doc: dict[str, Any] = {
            "@timestamp": _iso(log.at),
            "kind": "log",
            **common,
            "level": log.level,
            "event": log.event,
        }
        error = _error_wire(log.error_module, log.error_code, log.error_msg)
        if error is not None:
            doc["error"] = error
        if log.data is not None:
            doc["data"] = json.loads(log.data)
        yield doc
    for sample in batch.quality:
        doc = {"@timestamp": _iso(sample.at), "kind": "quality", **common, "peerId": sample.peer_id}
        for wire, column in _QUALITY_WIRE:
            value = getattr(sample, column)
            if value is not None:
                doc[wire] = value
        yield doc
