"""A call's rows as typed values: what the socket frames, the REST answers and the journal carry.

:func:`call_info` turns a call's rows into the protocol's :class:`~tavkit.protocol.calls.CallInfo`
(what participants see); :class:`CallRecord` adds what the history shows (the session, each
callee's response time and talk duration).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from tavkit.protocol.calls import Callee, CalleeOutcome, CallInfo, CallMedia, CallState
from tavkit.server.store.call_models import CalleeRow, CallRow

__all__ = ["ACTIVE_STATES", "CallRecord", "busy_when_rung", "call_info", "duration", "told"]

ACTIVE_STATES: tuple[str, ...] = ("ringing", "accepted")
"""The states of a call still going on: its participants are busy."""


def busy_when_rung(call: CallRow, callee: CalleeRow) -> bool:
    """Whether ``callee`` was in another call when ``call`` rang: never rung, so told nothing.

    The ring writes such a callee ``busy`` with ``responded_at`` the call's own
    ``created_at`` (the same clock reading); a callee who declines with "busy" answers later.
    """
    return callee.outcome == "busy" and callee.responded_at == call.created_at


def told(call: CallRow, callees: Sequence[CalleeRow]) -> list[str]:
    """Who hears the call's frames: the caller and every callee it rang (not the busy ones)."""
    return [call.caller, *(c.user_id for c in callees if not busy_when_rung(call, c))]


def duration(start: float | None, end: float | None) -> float | None:
    """Seconds from ``start`` to ``end``; None unless both are known."""
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 3)


def call_info(call: CallRow, callees: Sequence[CalleeRow]) -> CallInfo:
    """The protocol's call object for ``call`` and its callee rows (in ringing order)."""
    return CallInfo(
        call_id=str(call.id),
        caller=call.caller,
        callees=tuple(
            Callee(c.user_id, cast(CalleeOutcome, c.outcome), c.reason, c.answered_at)
            for c in sorted(callees, key=lambda c: c.id)
        ),
        media=cast(CallMedia, call.media),
        room_id=call.room,
        state=cast(CallState, call.state),
        created_at=call.created_at,
        ring_until=call.ring_until,
        data=None if call.data is None else json.loads(call.data),
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        end_reason=call.end_reason,
    )


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call in the history: the call object plus its session and each callee's times."""

    info: CallInfo
    room_uuid: str
    callees: tuple[CalleeRow, ...]

    @classmethod
    def of(cls, call: CallRow, callees: Sequence[CalleeRow]) -> CallRecord:
        """The record of ``call``."""
        ordered = tuple(sorted(callees, key=lambda c: c.id))
        return cls(call_info(call, ordered), str(call.session_id), ordered)

    def to_wire(self) -> dict[str, Any]:
        """The call object, ``roomUuid``, ``duration`` and per callee ``respondedAt``,
        ``endedAt`` and ``duration`` (talk time of a callee who accepted)."""
        wire = self.info.to_wire()
        wire["roomUuid"] = self.room_uuid
        wire["duration"] = duration(self.info.answered_at, self.info.ended_at)
        for entry, row in zip(wire["callees"], self.callees, strict=True):
            entry["respondedAt"] = row.responded_at
            entry["endedAt"] = row.ended_at
            entry["duration"] = duration(row.answered_at, row.ended_at)
        return wire
