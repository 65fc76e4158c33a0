"""What a user socket missed while it was away, rebuilt from the journal.

Every user socket frame is the announcement of one journal event (``call.*``, written
in the transaction of the change) and carries that event's id as its ``seq``: per app,
increasing, committed in order with no gaps (:mod:`tavkit.server.journal`). So a socket
that comes back with ``after`` (the highest ``seq`` it had) is owed exactly the events
of its user's calls with an id above ``after``: :func:`catch_up` reads them and turns
each back into its frame, as the room socket's ``sync`` replays messages by their seq.

A replayed frame carries the call as it stands now (the journal keeps what happened,
not every intermediate call object), its own ``seq``, and the event's ``userId`` and
``reason``. Invitations are not replayed: the ones still ringing are in the welcome's
``ringing``, like on any socket's first open, and the rest are over.

A gap cannot be replayed - the client is told so (``resumed`` false) and re-reads its
calls with ``GET /v1/calls`` - when ``after`` is beyond the app's last event, when the
first event after it is older than the resume window or gone (retention), or when more
than :data:`REPLAY_LIMIT` events would have to be read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.protocol.calls import CallFrame, CallFrameType, CallInfo
from tavkit.server.calls import queries
from tavkit.server.calls.models import ACTIVE_STATES, call_info, told
from tavkit.server.journal import CallNotice, JournalEntry
from tavkit.server.store.call_models import CalleeRow, CallRow
from tavkit.server.store.journal_models import JournalRow
from tavkit.server.store.models import AppRow

__all__ = ["FRAME_OF", "REPLAY_LIMIT", "Catchup", "catch_up"]

REPLAY_LIMIT: Final = 200
"""The most journal events one resume reads; a longer gap is re-read over REST."""
CLOCK_SKEW: Final = 5.0
"""Seconds replicas' clocks may disagree by, when picking the calls a gap may concern."""
FRAME_OF: Final[dict[str, CallFrameType]] = {
    "call.accepted": "call-accepted",
    "call.declined": "call-declined",
    "call.busy": "call-declined",
    "call.timeout": "call-timeout",
    "call.cancelled": "call-cancelled",
    "call.ended": "call-ended",
}
"""The frame each replayed journal event was announced as (``call.ringing`` is not replayed)."""


@dataclass(frozen=True, slots=True)
class Catchup:
    """What a user socket's welcome says, read in one transaction."""

    ringing: tuple[CallInfo, ...]
    """The calls ringing the user now."""
    last_seq: int
    """The app's last journal event: the socket's frames come after it."""
    missed: tuple[CallFrame, ...] | None
    """The frames missed after ``after``, in order; None when they cannot be replayed
    (or no ``after`` was given)."""


async def catch_up(
    s: AsyncSession, sdk_app_id: int, user_id: str, after: int | None, *, since: float
) -> Catchup:
    """The welcome of ``user_id``'s socket: ringing calls, last seq, and the frames missed
    after ``after`` if the gap began at or after ``since`` (the resume window)."""
    last = await s.scalar(select(AppRow.last_event_seq).where(AppRow.sdk_app_id == sdk_app_id))
    last = last or 0
    ringing = [
        call_info(c, await queries.callees_of(s, c.id))
        for c in await queries.ringing_for(s, sdk_app_id, user_id)
    ]
    missed = None if after is None else await _missed(s, sdk_app_id, user_id, after, last, since)
    return Catchup(tuple(ringing), last, missed)


async def _missed(
    s: AsyncSession, sdk_app_id: int, user_id: str, after: int, last: int, since: float
) -> tuple[CallFrame, ...] | None:
    if after > last:
        return None  # not a position of this app's journal
    if after == last:
        return ()
    first_at = await s.scalar(
        select(JournalRow.at).where(
            JournalRow.sdk_app_id == sdk_app_id, JournalRow.app_seq == after + 1
        )
    )
    if first_at is None or first_at < since:
        return None  # gone with retention, or older than the resume window
    calls = await _calls_of(s, sdk_app_id, user_id, first_at - CLOCK_SKEW)
    if not calls:
        return ()
    rows = list(
        await s.scalars(
            select(JournalRow)
            .where(
                JournalRow.sdk_app_id == sdk_app_id,
                JournalRow.app_seq > after,
                JournalRow.app_seq <= last,
                JournalRow.session_id.in_({c.session_id for c in calls.values()}),
                JournalRow.type.in_(list(FRAME_OF)),
            )
            .order_by(JournalRow.app_seq)
            .limit(REPLAY_LIMIT + 1)
        )
    )
    if len(rows) > REPLAY_LIMIT:
        return None
    infos: dict[uuid.UUID, CallInfo] = {}
    untold: set[uuid.UUID] = set()  # calls that found the user busy: never rung
    frames: list[CallFrame] = []
    for row in rows:
        notice = JournalEntry.of(row).notice
        if not isinstance(notice, CallNotice) or notice.call_id not in calls:
            continue  # another call of the same session
        if notice.call_id not in infos:
            call = calls[notice.call_id]
            callees = await queries.callees_of(s, call.id)
            infos[call.id] = call_info(call, callees)
            if user_id not in told(call, callees):
                untold.add(call.id)
        if notice.call_id in untold:
            continue
        reason = "busy" if notice.type == "call.busy" else notice.reason
        frame_type = FRAME_OF[notice.type]
        frames.append(
            CallFrame(frame_type, infos[notice.call_id], notice.user_id, reason, row.app_seq)
        )
    return tuple(frames)


async def _calls_of(
    s: AsyncSession, sdk_app_id: int, user_id: str, since: float
) -> dict[uuid.UUID, CallRow]:
    """``user_id``'s calls (as caller or callee) going on, or over at or after ``since``."""
    rung = select(CalleeRow.call_id).where(
        CalleeRow.sdk_app_id == sdk_app_id, CalleeRow.user_id == user_id
    )
    rows = await s.scalars(
        select(CallRow).where(
            CallRow.sdk_app_id == sdk_app_id,
            or_(CallRow.caller == user_id, CallRow.id.in_(rung)),
            or_(CallRow.state.in_(ACTIVE_STATES), CallRow.ended_at >= since),
        )
    )
    return {call.id: call for call in rows}
