"""The SQL behind the call service: plain functions over an open session, never committing."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.server.calls.models import ACTIVE_STATES
from tavkit.server.journal import CALL_NOTICE_TYPES
from tavkit.server.store.call_models import CalleeRow, CallRow
from tavkit.server.store.journal_models import JournalRow

__all__ = [
    "busy_users",
    "call_journal",
    "callees_of",
    "calls_in_session",
    "due_calls",
    "history",
    "lock_users",
    "locked_call",
    "ringing_for",
]


async def locked_call(s: AsyncSession, call_id: uuid.UUID) -> CallRow | None:
    """The call, row-locked (``FOR UPDATE``) until the transaction ends."""
    return await s.scalar(select(CallRow).where(CallRow.id == call_id).with_for_update())


async def callees_of(s: AsyncSession, call_id: uuid.UUID, *, lock: bool = False) -> list[CalleeRow]:
    """The call's callees, in ringing order."""
    query = select(CalleeRow).where(CalleeRow.call_id == call_id).order_by(CalleeRow.id)
    return list(await s.scalars(query.with_for_update() if lock else query))


async def lock_users(s: AsyncSession, sdk_app_id: int, users: Sequence[str]) -> None:
    """Hold ``users``' busy checks until this transaction ends, on every replica.

    Without it two calls ringing the same callee at once, on two replicas (each with its
    own per-app lock), would both read them as free. On PostgreSQL each user is a
    transaction-scoped advisory lock, taken in one order so two callers never wait for
    each other in a cycle; the second caller's busy check then runs after the first
    committed (READ COMMITTED reads afresh per statement) and sees its callee row.
    SQLite has one writer at a time (``BEGIN IMMEDIATE``), which serialises the two already.
    """
    if s.get_bind().dialect.name != "postgresql":
        return
    for key in sorted({_user_key(sdk_app_id, user) for user in users}):
        await s.execute(select(func.pg_advisory_xact_lock(key)))


def _user_key(sdk_app_id: int, user_id: str) -> int:
    """A signed 64-bit advisory lock key for ``(sdk_app_id, user_id)``."""
    digest = hashlib.blake2b(f"tavkit-call-user:{sdk_app_id}:{user_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


async def busy_users(s: AsyncSession, sdk_app_id: int, users: Sequence[str]) -> set[str]:
    """Which of ``users`` take part in a call still going on (caller, ringing or accepted)."""
    if not users:
        return set()
    as_callee = await s.scalars(
        select(CalleeRow.user_id)
        .join(CallRow, CallRow.id == CalleeRow.call_id)
        .where(
            CalleeRow.sdk_app_id == sdk_app_id,
            CalleeRow.user_id.in_(list(users)),
            CalleeRow.outcome.in_(ACTIVE_STATES),
            CallRow.state.in_(ACTIVE_STATES),
        )
    )
    as_caller = await s.scalars(
        select(CallRow.caller).where(
            CallRow.sdk_app_id == sdk_app_id,
            CallRow.caller.in_(list(users)),
            CallRow.state.in_(ACTIVE_STATES),
        )
    )
    return set(as_callee) | set(as_caller)


async def calls_in_session(s: AsyncSession, room_uuid: uuid.UUID) -> list[CallRow]:
    """The session's calls still going on, row-locked."""
    return list(
        await s.scalars(
            select(CallRow)
            .where(CallRow.session_id == room_uuid, CallRow.state.in_(ACTIVE_STATES))
            .order_by(CallRow.created_at)
            .with_for_update()
        )
    )


async def due_calls(s: AsyncSession, before: float) -> list[tuple[int, uuid.UUID]]:
    """``(app, call)`` of every call with callees still ringing past ``ring_until < before``."""
    rows = await s.execute(
        select(CallRow.sdk_app_id, CallRow.id)
        .join(CalleeRow, CalleeRow.call_id == CallRow.id)
        .where(
            CallRow.state.in_(ACTIVE_STATES),
            CallRow.ring_until < before,
            CalleeRow.outcome == "ringing",
        )
        .distinct()
    )
    return [(app, call_id) for app, call_id in rows.all()]


async def ringing_for(s: AsyncSession, sdk_app_id: int, user_id: str) -> list[CallRow]:
    """The calls ringing ``user_id`` right now, oldest first."""
    return list(
        await s.scalars(
            select(CallRow)
            .join(CalleeRow, CalleeRow.call_id == CallRow.id)
            .where(
                CalleeRow.sdk_app_id == sdk_app_id,
                CalleeRow.user_id == user_id,
                CalleeRow.outcome == "ringing",
                CallRow.state.in_(ACTIVE_STATES),
            )
            .order_by(CallRow.created_at)
        )
    )


async def history(
    s: AsyncSession, sdk_app_id: int, user_id: str | None, since: float, limit: int
) -> list[CallRow]:
    """The app's calls created at or after ``since``, newest first; with ``user_id``,
    only those they made or were rung in."""
    query = select(CallRow).where(CallRow.sdk_app_id == sdk_app_id, CallRow.created_at >= since)
    if user_id is not None:
        rung = select(CalleeRow.call_id).where(
            CalleeRow.sdk_app_id == sdk_app_id, CalleeRow.user_id == user_id
        )
        query = query.where(or_(CallRow.caller == user_id, CallRow.id.in_(rung)))
    rows = await s.scalars(query.order_by(CallRow.created_at.desc()).limit(limit))
    return list(rows)


async def call_journal(s: AsyncSession, call: CallRow) -> list[JournalRow]:
    """The call's journal rows (its ``call.*`` events), in order.

    The events sit in the session's timeline; the call's own are those whose data names it
    (the data is compact JSON written by the journal, so the match is exact).
    """
    needle = f'%"callId":"{call.id}"%'
    rows = await s.scalars(
        select(JournalRow)
        .where(
            JournalRow.session_id == call.session_id,
            JournalRow.type.in_(CALL_NOTICE_TYPES),
            JournalRow.data.like(needle),
        )
        .order_by(JournalRow.app_seq)
    )
    return list(rows)
