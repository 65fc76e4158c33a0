"""Storage and forwarding of client reports: rate buckets, rows, queries, documents.

:mod:`tavkit.server.logs.routes` checks who is asking and what they sent; this module
stores an accepted batch in one transaction (after checking the caller was in the
session), reads entries back in time order, and turns a batch into the flat
documents the forwarder ships to Elasticsearch or OpenSearch.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import ServerCode, ServerError
from tavkit.protocol import TokenBucket
from tavkit.server.auth import Caller
from tavkit.server.logs.forwarder import Forwarder
from tavkit.server.logs.wire import LogBatch
from tavkit.server.metrics import Metrics
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.logs_models import ClientLogRow, QualitySampleRow
from tavkit.server.store.models import MemberRow, SessionRow
from tavkit.server.store.unit_of_work import Outbox, transaction

__all__ = ["BURST", "MAX_TRACKED_USERS", "RATE", "LogService"]

RATE: Final = 2.0
"""Batches per second a user may send on average."""
BURST: Final = 20.0
"""Batches a user may send at once (a reconnecting client flushing its backlog)."""
MAX_TRACKED_USERS: Final = 10_000
"""Rate buckets kept; the least recently used one is forgotten (it restarts full)."""

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
    room_id: int


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
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.forwarder = forwarder
        self._rate = rate
        self._burst = burst
        self._buckets: OrderedDict[tuple[int, str], TokenBucket] = OrderedDict()

    def allow(self, caller: Caller) -> bool:
        """Spend one token of the caller's bucket; False when they are over the rate."""
        key = (caller.sdk_app_id, caller.user_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst)
            while len(self._buckets) > MAX_TRACKED_USERS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.allow()

    def refused(self, reason: str) -> None:
        """Count a refused batch (``invalid``, ``auth``, ``rate``, ``session``)."""
        if self.metrics is not None:
            self.metrics.log_refused.labels(reason=reason).inc()

    async def ingest(self, caller: Caller, batch: LogBatch, *, now: float) -> None:
        """Store ``batch`` for ``caller`` if they were in its session; then forward it."""

        async def run(s: AsyncSession, _out: Outbox) -> _Session:
            row = await s.get(SessionRow, batch.room_uuid)
            if row is None or row.sdk_app_id != caller.sdk_app_id:
                raise ServerError(ServerCode.SESSION_NOT_FOUND, f"no session {batch.room_uuid}")
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
            return _Session(row.id, row.sdk_app_id, row.room_id)

        session = await transaction(self.store, "storing client logs", run)
        self._count(batch)
        if self.forwarder is not None:
            self.forwarder.submit(_documents(session, caller.user_id, batch))

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


def _error_wire(module: str | None, code: int | None, message: str | None) -> dict[str, Any] | None:
    if module is None or code is None:
        return None
    return {"module": module, "errorCode": code, "errorMsg": message or ""}


def _log_wire(row: ClientLogRow) -> dict[str, Any]:
    return {
        "userId": row.user_id,
        "at": row.at,
        "receivedAt": row.received_at,
        "level": row.level,
        "event": row.event,
        "error": _error_wire(row.error_module, row.error_code, row.error_msg),
        "data": json.loads(row.data) if row.data else None,
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
