"""The queries behind recording: recording rows and each app's recording policy.

Plain functions over a :class:`~tavkit.server.store.db.Store`, one short transaction
each, every database failure turned into server 10006 by
:func:`~tavkit.server.store.db.storage_errors`. The recorder writes rows through
them and the REST handlers (:mod:`tavkit.server.recording.routes`) read them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.recording import RecordingInfo
from tavkit.server.store.db import Store, storage_errors
from tavkit.server.store.recording_models import AppSettingRow, RecordingRow
from tavkit.server.store.unit_of_work import Outbox, transaction

__all__ = [
    "delete_row",
    "finish",
    "get_policy",
    "insert",
    "playable",
    "recording_to_wire",
    "row",
    "session_rows",
    "set_policy",
    "stint_counts",
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

    await transaction(store, "saving a recording", run)


async def finish(
    store: Store,
    recording_id: uuid.UUID,
    status: str,
    info: RecordingInfo | None,
    reason: str,
) -> None:
    """Close a row: its final ``status``, why it ended and, when the file exists, what it holds."""

    async def run(s: AsyncSession, _out: Outbox) -> None:
        rec = await s.get(RecordingRow, recording_id, with_for_update=True)
        if rec is None:  # deleted by an admin meanwhile
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

    await transaction(store, "closing a recording", run)


async def unfinished(store: Store) -> list[RecordingRow]:
    """Rows still ``recording``: at start-up, the files a dead server was writing."""
    with storage_errors("finding unfinished recordings"):
        async with asyncio.timeout(_TIMEOUT), store.reads() as s:
            rows = await s.scalars(select(RecordingRow).where(RecordingRow.status == "recording"))
            return list(rows)


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
