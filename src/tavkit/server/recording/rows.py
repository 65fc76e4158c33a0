"""The queries behind recording: recording rows, each app's policy, and recording leases.

Plain functions over a :class:`~tavkit.server.store.db.Store`, one short transaction
each, every database failure turned into server 10006 by
:func:`~tavkit.server.store.db.storage_errors`. The recorder writes rows through
them and the REST handlers (:mod:`tavkit.server.recording.routes`) read them.

The recording lease is two columns of the session's row: ``recorder_replica`` (who
records it; NULL: nobody should) and ``recorder_lease_until`` (until when, unless
renewed). Every change to it is one conditional ``UPDATE``, which PostgreSQL (a row
lock, the condition checked again after waiting for it) and SQLite (one writer at a
time) both apply atomically, so two replicas never both believe they hold it. The
states a session's lease goes through:

================================  ==============================================
replica, until                    meaning
================================  ==============================================
NULL, NULL                        never recorded, or stopped and released
R, in the future                  R records it (and renews every third of the TTL)
R, in the past (0: handed over)   R died or shut down: another replica takes over
NULL, in the future               stopped by a replica that was not the holder:
                                  nobody records it, nobody may start until then
================================  ==============================================
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.protocol import RoomId, room_from_columns
from tavkit.recording import RecordingInfo
from tavkit.server import journal
from tavkit.server.journal import RecordingReadyNotice, RecordingStartedNotice
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.models import MemberRow, SessionRow
from tavkit.server.store.recording_models import AppSettingRow, RecordingRow
from tavkit.server.store.unit_of_work import Outbox, transaction

__all__ = [
    "Lease",
    "acquire_lease",
    "delete_row",
    "expire_leases",
    "finish",
    "fresh_connections",
    "get_policy",
    "insert",
    "lease",
    "orphans",
    "playable",
    "recording_to_wire",
    "release_lease",
    "renew_leases",
    "revoke_lease",
    "row",
    "session_rows",
    "set_policy",
    "stint_counts",
    "takeover_candidates",
    "unfinished",
]

_TIMEOUT: Final = 30.0


def recording_to_wire(rec: RecordingRow) -> dict[str, Any]:
    """The protocol's recording object (``docs/protocol.md`` section 6)."""
    return {
        "id": str(rec.id),
        "userId": rec.user_id,
        "startedAt": rec.started_at,
        "endedAt": rec.ended_at,
        "duration": rec.duration,
        "size": rec.size,
        "sha256": rec.sha256,
        "status": rec.status,
        "hasVideo": rec.has_video,
        "hasAudio": rec.has_audio,
        "stopReason": rec.stop_reason,
    }


async def get_policy(store: Store, sdk_app_id: int) -> str | None:
    """The app's own recording policy, or None when it follows the server default."""
    with storage_errors("reading the recording policy"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            policy: str | None = await s.scalar(
                select(AppSettingRow.recording).where(AppSettingRow.sdk_app_id == sdk_app_id)
            )
            return policy


async def set_policy(store: Store, sdk_app_id: int, policy: str | None) -> None:
    """Give the app its own policy (None: back to the server default)."""

    async def run(s: AsyncSession, _out: Outbox) -> None:
        setting = await s.get(AppSettingRow, sdk_app_id, with_for_update=True)
        if setting is None:
            s.add(AppSettingRow(sdk_app_id=sdk_app_id, recording=policy))
        else:
            setting.recording = policy

    await transaction(store, "saving the recording policy", run)


async def stint_counts(store: Store, session_id: uuid.UUID) -> dict[str, int]:
    """How many files each user already has in the session (their highest ``stint``)."""
    with storage_errors("counting recordings"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            result = await s.execute(
                select(RecordingRow.user_id, func.max(RecordingRow.stint))
                .where(RecordingRow.session_id == session_id)
                .group_by(RecordingRow.user_id)
            )
            return {user_id: int(top) for user_id, top in result.all()}


async def insert(store: Store, rec: RecordingRow) -> None:
    """Add a new row (status ``recording``)."""

    async def run(s: AsyncSession, _out: Outbox) -> None:
        s.add(rec)
        journal.record(s, RecordingStartedNotice(rec.session_id, rec.id, rec.user_id))

    await transaction(store, "saving a recording", run)


async def finish(
    store: Store,
    recording_id: uuid.UUID,
    status: str,
    info: RecordingInfo | None,
    reason: str,
    *,
    only_unfinished: bool = False,
) -> None:
    """Close a row: its final ``status``, why it ended and, when the file exists, what it holds.

    ``only_unfinished``: leave the row alone unless it is still ``recording`` (a row
    closed on behalf of a dead recorder must not overwrite what a live one wrote).
    """

    async def run(s: AsyncSession, _out: Outbox) -> None:
        rec = await s.get(RecordingRow, recording_id, with_for_update=True)
        if rec is None:  # deleted by an admin meanwhile
            return
        if only_unfinished and rec.status != "recording":
            return
        rec.status = status
        rec.stop_reason = reason
        if info is None:
            return
        if info.started_at is not None:
            rec.started_at = info.started_at.timestamp()
        rec.duration = info.duration
        if info.duration is not None:
            rec.ended_at = rec.started_at + info.duration
        rec.size = info.size
        rec.sha256 = info.sha256
        rec.has_video = info.has_video
        rec.has_audio = info.has_audio
        journal.record(s, RecordingReadyNotice.of(rec))

    await transaction(store, "closing a recording", run)


async def unfinished(store: Store, session_id: uuid.UUID) -> list[RecordingRow]:
    """The session's rows still ``recording`` (for the replica that just took its lease
    over: the previous holder's, which it will never close)."""
    with storage_errors("finding unfinished recordings"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            rows = await s.scalars(
                select(RecordingRow).where(
                    RecordingRow.session_id == session_id, RecordingRow.status == "recording"
                )
            )
            return list(rows)


async def orphans(
    store: Store, now: float, *, session_id: uuid.UUID | None = None
) -> list[RecordingRow]:
    """Rows still ``recording`` whose session nobody holds a live lease on (of one session,
    if given): files a dead or stopped recorder left unfinished, since a recorder holds
    its session's lease until every one of its files is closed."""
    query = (
        select(RecordingRow)
        .join(SessionRow, SessionRow.id == RecordingRow.session_id)
        .where(RecordingRow.status == "recording", _lease_lapsed(now))
    )
    if session_id is not None:
        query = query.where(RecordingRow.session_id == session_id)
    with storage_errors("finding unfinished recordings"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            return list(await s.scalars(query))


async def session_rows(
    store: Store, session_id: uuid.UUID, *, user_id: str | None = None
) -> list[RecordingRow]:
    """The session's recordings (only ``user_id``'s if given), in ``startedAt`` order."""
    query = select(RecordingRow).where(RecordingRow.session_id == session_id)
    if user_id is not None:
        query = query.where(RecordingRow.user_id == user_id)
    query = query.order_by(RecordingRow.started_at, RecordingRow.user_id, RecordingRow.stint)
    with storage_errors("listing recordings"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            return list(await s.scalars(query))


async def playable(store: Store, session_id: uuid.UUID) -> list[RecordingRow]:
    """The session's ``complete`` and ``partial`` rows, ``startedAt`` order: what composes."""
    with storage_errors("listing recordings"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            rows = await s.scalars(
                select(RecordingRow)
                .where(
                    RecordingRow.session_id == session_id,
                    RecordingRow.status.in_(("complete", "partial")),
                )
                .order_by(RecordingRow.started_at)
            )
            return list(rows)


async def row(store: Store, session_id: uuid.UUID, recording_id: uuid.UUID) -> RecordingRow | None:
    """One recording of the session, or None."""
    with storage_errors("reading a recording"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            rec = await s.get(RecordingRow, recording_id)
            return rec if rec is not None and rec.session_id == session_id else None


async def delete_row(store: Store, recording_id: uuid.UUID) -> None:
    """Forget a recording (its file is the caller's to remove)."""

    async def run(s: AsyncSession, _out: Outbox) -> None:
        await s.execute(delete(RecordingRow).where(RecordingRow.id == recording_id))

    await transaction(store, "deleting a recording", run)


# -- the recording lease ---------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """A session's recording lease as stored (see the module docstring for its states)."""

    replica: str | None
    until: float | None

    def held(self, now: float) -> bool:
        """Whether a replica records the session now (it has renewed in time)."""
        return self.replica is not None and self.until is not None and self.until >= now


def _lease_lapsed(now: float) -> Any:
    """The session row's lease has run out, or there is none."""
    until = SessionRow.recorder_lease_until
    return or_(until.is_(None), until < now)


async def acquire_lease(
    store: Store, session_id: uuid.UUID, replica: str, now: float, ttl: float
) -> bool:
    """Take the session's lease for ``replica`` until ``now + ttl``; False if another holds it.

    One conditional ``UPDATE`` (free, lapsed or already ours), so of two replicas
    asking at once exactly one gets it. A closed session is never leased.
    """

    async def run(s: AsyncSession, _out: Outbox) -> bool:
        result = await s.execute(
            update(SessionRow)
            .where(
                SessionRow.id == session_id,
                SessionRow.closed_at.is_(None),
                or_(_lease_lapsed(now), SessionRow.recorder_replica == replica),
            )
            .values(recorder_replica=replica, recorder_lease_until=now + ttl)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    return await transaction(store, "taking the recording lease", run)


async def renew_leases(
    store: Store, session_ids: Collection[uuid.UUID], replica: str, until: float
) -> dict[uuid.UUID, str | None]:
    """Extend ``replica``'s leases on ``session_ids`` to ``until``, in one transaction.

    Returns the sessions whose lease ``replica`` no longer holds, each with who holds it
    now (None: it was stopped, or the session is gone): those it must stop recording.
    """
    wanted = list(session_ids)
    if not wanted:
        return {}

    async def run(s: AsyncSession, _out: Outbox) -> dict[uuid.UUID, str | None]:
        await s.execute(
            update(SessionRow)
            .where(SessionRow.id.in_(wanted), SessionRow.recorder_replica == replica)
            .values(recorder_lease_until=until)
            .execution_options(synchronize_session=False)
        )
        found = await s.execute(
            select(SessionRow.id, SessionRow.recorder_replica).where(SessionRow.id.in_(wanted))
        )
        holders = {session_id: holder for session_id, holder in found.all()}
        return {
            session_id: holders.get(session_id)
            for session_id in wanted
            if holders.get(session_id) != replica
        }

    return await transaction(store, "renewing the recording leases", run)


async def release_lease(
    store: Store, session_id: uuid.UUID, replica: str, *, hand_over: bool
) -> None:
    """Let go of ``replica``'s lease (a no-op if it no longer holds it).

    ``hand_over`` (a replica shutting down mid-recording): the lease is left lapsed in
    its name, so another replica takes the recording over at once; otherwise (the
    recording was stopped or the session closed) nobody is to record it.
    """
    values: dict[str, Any] = (
        {"recorder_lease_until": 0.0}
        if hand_over
        else {"recorder_replica": None, "recorder_lease_until": None}
    )

    async def run(s: AsyncSession, _out: Outbox) -> None:
        await s.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id, SessionRow.recorder_replica == replica)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    await transaction(store, "releasing the recording lease", run)


async def revoke_lease(store: Store, session_id: uuid.UUID) -> bool:
    """Stop the session's recording from a replica that does not hold it; True if it had a holder.

    The holder learns at its next renewal and stops. The lease's time is kept, so nobody
    can start recording the session again before the holder has noticed (no two recorders).
    """

    async def run(s: AsyncSession, _out: Outbox) -> bool:
        result = await s.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id, SessionRow.recorder_replica.is_not(None))
            .values(recorder_replica=None)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    return await transaction(store, "stopping the recording", run)


async def expire_leases(store: Store) -> int:
    """Let every live lease lapse now (a lone server at start-up: they are all a dead
    predecessor's, since no other replica can share its sessions); how many there were."""

    async def run(s: AsyncSession, _out: Outbox) -> int:
        result = await s.execute(
            update(SessionRow)
            .where(SessionRow.recorder_lease_until > 0.0)
            .values(recorder_lease_until=0.0)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    return await transaction(store, "expiring recording leases", run)


async def lease(store: Store, session_id: uuid.UUID) -> Lease:
    """The session's lease as stored (no holder for an unknown session)."""
    with storage_errors("reading the recording lease"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            found = (
                await s.execute(
                    select(SessionRow.recorder_replica, SessionRow.recorder_lease_until).where(
                        SessionRow.id == session_id
                    )
                )
            ).first()
    return Lease(None, None) if found is None else Lease(found[0], found[1])


async def takeover_candidates(store: Store, now: float) -> list[tuple[uuid.UUID, int, RoomId]]:
    """Open sessions being recorded whose holder stopped renewing: ``(uuid, app, room)``."""
    with storage_errors("finding recordings to take over"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            found = await s.execute(
                select(
                    SessionRow.id, SessionRow.sdk_app_id, SessionRow.room_id, SessionRow.room_str
                )
                .where(
                    SessionRow.closed_at.is_(None),
                    SessionRow.recorder_replica.is_not(None),
                    SessionRow.recorder_lease_until < now,
                )
                .order_by(SessionRow.opened_at)
            )
            return [
                (session_id, app, room_from_columns(room_id, room_str))
                for session_id, app, room_id, room_str in found.all()
            ]


async def fresh_connections(store: Store, session_id: uuid.UUID, since: float) -> set[str]:
    """The session's live connections heard from since ``since``: those whose socket is
    most likely open on some replica (an offer sent through the bus reaches them)."""
    with storage_errors("listing members"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            found = await s.scalars(
                select(MemberRow.connection_id).where(
                    and_(
                        MemberRow.session_id == session_id,
                        MemberRow.left_at.is_(None),
                        MemberRow.last_heartbeat >= since,
                    )
                )
            )
            return set(found)
