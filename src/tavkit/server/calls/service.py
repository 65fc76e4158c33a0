"""CallService: ring callees, take their answers, end the call; every change one transaction.

A call rings its callees in a room's session (the caller's ``roomId``, or a fresh room
when none is given); the call opens the session when the room has none, and keeps it
from being swept while it rings (``empty_since`` is set to the end of the ringing). The
rules (``docs/protocol.md`` section 7):

* each callee's outcome: ``ringing`` then ``accepted``, ``declined``, ``busy`` (in
  another call when rung, or declined with reason ``busy``), ``timeout`` or
  ``cancelled``;
* the call: ``ringing`` until a callee accepts (``accepted``); when nobody can accept
  any more it ends ``busy`` (every callee was busy), ``declined`` (every callee declined
  or was busy), ``timeout`` (someone did not answer) or ``cancelled`` (the caller
  cancelled, or left the room, before an accept); an accepted call ends (``ended``)
  when the caller hangs up or its room empties (or is closed).

Each change runs in one transaction (:func:`~tavkit.server.store.unit_of_work.transaction`)
which also records its journal event (``call.*``, so the webhook of a change exists
exactly when the change does) and queues its frames for every participant's user
channel, published after the commit. The end of an accepted call when its room empties
runs inside the room's own transaction (:meth:`RoomService.on_session_emptied`).

Ringing ends at ``ring_until``: the replica that created the call holds a timer for it;
every replica also sweeps for calls overdue by more than :data:`_SWEEP_GRACE` (their
replica went away). Both take the call's row lock and re-check the state, so a call
times out once whichever gets there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Final, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from tavkit.errors import AvkitCode, AvkitError, ServerCode, ServerError
from tavkit.protocol.calls import CallFrame, CallInfo, CallRequest
from tavkit.protocol.rooms import RoomId, room_columns
from tavkit.server import journal
from tavkit.server.bus import Bus, user_channel
from tavkit.server.calls import queries, replay
from tavkit.server.calls.models import ACTIVE_STATES, CallRecord, call_info, told
from tavkit.server.calls.replay import Catchup
from tavkit.server.events import CallEvent
from tavkit.server.journal import CallNotice, JournalEntry, RoomOpenedNotice
from tavkit.server.rooms.queries import live_rows, log_event, open_session
from tavkit.server.rooms.service import RoomService, is_hidden
from tavkit.server.settings import U32_MAX, Settings
from tavkit.server.store.call_models import CalleeRow, CallRow
from tavkit.server.store.db import Store
from tavkit.server.store.models import SessionRow
from tavkit.server.store.unit_of_work import Body, Outbox, transaction

__all__ = ["DEFAULT_CALL_TIMEOUT", "CallService"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CALL_TIMEOUT: Final = 30.0
"""How long a call rings when the request gives no ``timeout``."""
_SWEEP_GRACE: Final = 2.0
"""How long past its ``ring_until`` a call is left to its own replica's timer before any
replica's sweep times it out."""
_FRESH_ROOM_MIN: Final = 100_000_000
"""Rooms a call allocates are drawn from [this, 2^32-1]: nine digits or more, rarely
typed by hand, so an allocated room seldom meets a room someone chose."""
_ALLOCATION_TRIES: Final = 16


class CallService:
    """Calls over a :class:`Store`, announcing each change on its participants' user channels."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        rooms: RoomService,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        op_timeout: float = 30.0,
        default_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        self._store = store
        self._bus = bus
        self._rooms = rooms
        self._settings = settings
        self._clock = clock
        self._op_timeout = op_timeout
        self._default_timeout = default_timeout
        self._locks: dict[int, asyncio.Lock] = {}
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        rooms.on_session_emptied(self._room_emptied)

    # -- lifetime ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="tavkit-call-sweeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = [*self._tasks, *([self._sweeper] if self._sweeper else [])]
        self._sweeper = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    # -- the caller --------------------------------------------------------------------

    async def create(self, sdk_app_id: int, caller: str, request: CallRequest) -> CallInfo:
        """Ring ``request.callees`` from ``caller``; the call as it now stands.

        Server 10004 when the caller rings themselves or a reserved userId.
        """
        if caller in request.callees:
            raise ServerError(
                ServerCode.INVALID_PARAMETER, "callees: a caller cannot ring themselves"
            )
        if any(is_hidden(c) for c in request.callees):
            raise ServerError(ServerCode.INVALID_PARAMETER, "callees: reserved userId")
        ring_for = request.timeout if request.timeout is not None else self._default_timeout
        opened: list[SessionRow] = []

        async def run(s: AsyncSession, out: Outbox) -> CallInfo:
            opened.clear()
            now = self._clock()
            ring_until = now + ring_for
            session = await self._session_for(s, sdk_app_id, request.room_id, now, opened)
            if session.empty_since is not None:
                # Keep the room from being swept while it rings, and until the call
                # sweep would have timed it out (should its replica go away).
                session.empty_since = max(session.empty_since, ring_until + _SWEEP_GRACE)
            await queries.lock_users(s, sdk_app_id, request.callees)
            busy = await queries.busy_users(s, sdk_app_id, request.callees)
            call = CallRow(
                id=uuid.uuid4(),
                sdk_app_id=sdk_app_id,
                room_id=session.room_id,
                room_str=session.room_str,
                session_id=session.id,
                caller=caller,
                media=request.media,
                data=None if request.data is None else json.dumps(request.data),
                state="ringing",
                created_at=now,
                ring_until=ring_until,
            )
            s.add(call)
            await s.flush()
            callees = [
                CalleeRow(
                    call_id=call.id,
                    sdk_app_id=sdk_app_id,
                    user_id=user,
                    outcome="busy" if user in busy else "ringing",
                    reason="busy" if user in busy else None,
                    responded_at=now if user in busy else None,
                )
                for user in request.callees
            ]
            s.add_all(callees)
            await s.flush()
            log_event(s, session.id, now, "call", caller, f"ringing {call.id}")
            if not any(row.outcome == "ringing" for row in callees):
                await self._finish_unanswered(s, call, callees, now)
            info = call_info(call, callees)
            ringing = [row.user_id for row in callees if row.outcome == "ringing"]
            ring = _notice("call.ringing", call, callees=request.callees)
            _announce(s, out, call, ring, ringing, CallFrame("call-invite", info))
            for row in callees:
                if row.outcome == "busy":
                    _announce(
                        s,
                        out,
                        call,
                        _notice("call.busy", call, user=row.user_id, reason="busy"),
                        told(call, callees),
                        CallFrame("call-declined", info, row.user_id, "busy"),
                    )
            return info

        info = await self._write(sdk_app_id, "ringing the callees", run)
        for session in opened:
            self._rooms.session_opened(sdk_app_id, session.room, session.id)
        if info.state == "ringing":
            self._arm(uuid.UUID(info.call_id), info.ring_until)
        return info

    async def cancel(self, sdk_app_id: int, call_id: uuid.UUID, user_id: str) -> CallInfo:
        """The caller stops the ringing before anyone accepted (``cancelled``).

        Avkit 10001 for anyone but the caller; server 14003 once the call is not ringing.
        """

        async def run(s: AsyncSession, out: Outbox) -> CallInfo:
            call, callees = await self._locked(s, sdk_app_id, call_id)
            if user_id != call.caller:
                raise _no_permission(user_id, call, "cancel")
            if call.state != "ringing":
                raise _over(call, "cancel it (hang up an accepted call)")
            now = self._clock()
            await self._cancel(s, out, call, callees, now, "cancelled")
            return call_info(call, callees)

        return await self._write(sdk_app_id, "cancelling the call", run)

    async def hangup(self, sdk_app_id: int, call_id: uuid.UUID, user_id: str) -> CallInfo:
        """The caller ends the call for everyone (``ended``, reason ``hangup``); a call still
        ringing is cancelled. Avkit 10001 for anyone else; 14003 once it is over."""

        async def run(s: AsyncSession, out: Outbox) -> CallInfo:
            call, callees = await self._locked(s, sdk_app_id, call_id)
            if user_id != call.caller:
                raise _no_permission(user_id, call, "hang up")
            now = self._clock()
            if call.state == "ringing":
                await self._cancel(s, out, call, callees, now, "cancelled")
            elif call.state == "accepted":
                self._end(s, out, call, callees, now, "hangup")
            else:
                raise _over(call, "hang up")
            return call_info(call, callees)

        return await self._write(sdk_app_id, "hanging up", run)

    # -- the callees -------------------------------------------------------------------

    async def accept(
        self,
        sdk_app_id: int,
        call_id: uuid.UUID,
        user_id: str,
        *,
        may_enter: Callable[[RoomId], None] | None = None,
    ) -> CallInfo:
        """A callee answers; they then enter the call's room. Avkit 10001 for anyone but a
        callee; 14003 when their ring is over (answered elsewhere, timed out, cancelled).

        ``may_enter(room)`` raises when the callee could not enter the call's room (their
        privateMapKey): checked once the call is found, and nothing changes then.
        """

        async def run(s: AsyncSession, out: Outbox) -> CallInfo:
            call, callees = await self._locked(s, sdk_app_id, call_id)
            me = _callee(call, callees, user_id, "accept")
            if call.state not in ACTIVE_STATES or me.outcome != "ringing":
                raise _over(call, "accept it", me)
            if may_enter is not None:
                may_enter(call.room)
            now = self._clock()
            me.outcome = "accepted"
            me.answered_at = me.responded_at = now
            if call.state == "ringing":
                call.state = "accepted"
                call.answered_at = now
            info = call_info(call, callees)
            frame = CallFrame("call-accepted", info, user_id)
            _announce(
                s,
                out,
                call,
                _notice("call.accepted", call, user=user_id),
                told(call, callees),
                frame,
            )
            return info

        return await self._write(sdk_app_id, "accepting the call", run)

    async def decline(
        self, sdk_app_id: int, call_id: uuid.UUID, user_id: str, reason: str | None
    ) -> CallInfo:
        """A callee refuses (``declined``; ``busy`` when the reason is ``busy``). The same
        refusals as :meth:`accept`."""

        async def run(s: AsyncSession, out: Outbox) -> CallInfo:
            call, callees = await self._locked(s, sdk_app_id, call_id)
            me = _callee(call, callees, user_id, "decline")
            if call.state not in ACTIVE_STATES or me.outcome != "ringing":
                raise _over(call, "decline it", me)
            now = self._clock()
            me.outcome = "busy" if reason == "busy" else "declined"
            me.reason = reason
            me.responded_at = now
            kind = "call.busy" if me.outcome == "busy" else "call.declined"
            if call.state == "ringing" and not any(c.outcome == "ringing" for c in callees):
                await self._finish_unanswered(s, call, callees, now)
            info = call_info(call, callees)
            _announce(
                s,
                out,
                call,
                _notice(kind, call, user=user_id, reason=reason),
                told(call, callees),
                CallFrame("call-declined", info, user_id, reason),
            )
            return info

        return await self._write(sdk_app_id, "declining the call", run)

    # -- reading -----------------------------------------------------------------------

    async def record(self, sdk_app_id: int, call_id: uuid.UUID, reader: str | None) -> CallRecord:
        """The call's record for ``reader`` (a participant; None: the admin)."""

        async def run(s: AsyncSession, _out: Outbox) -> CallRecord:
            call = await s.get(CallRow, call_id)
            if call is None or call.sdk_app_id != sdk_app_id:
                raise ServerError(ServerCode.SESSION_NOT_FOUND, f"no call {call_id}")
            callees = await queries.callees_of(s, call_id)
            record = CallRecord.of(call, callees)
            if reader is not None and reader not in record.info.participants:
                raise _no_permission(reader, call, "read")
            return record

        return await self._read("reading the call", run)

    async def history(
        self, sdk_app_id: int, user_id: str | None, since: float, limit: int
    ) -> list[CallRecord]:
        """The app's calls since ``since``, newest first (``user_id``: only theirs)."""

        async def run(s: AsyncSession, _out: Outbox) -> list[CallRecord]:
            calls = await queries.history(s, sdk_app_id, user_id, since, limit)
            return [CallRecord.of(c, await queries.callees_of(s, c.id)) for c in calls]

        return await self._read("reading the call history", run)

    async def events(
        self, sdk_app_id: int, call_id: uuid.UUID, reader: str | None
    ) -> list[JournalEntry]:
        """The call's journal entries, in order, for a participant (None: the admin)."""
        await self.record(sdk_app_id, call_id, reader)

        async def run(s: AsyncSession, _out: Outbox) -> list[JournalEntry]:
            call = await s.get(CallRow, call_id)
            assert call is not None  # record() found it; calls are never deleted
            return [JournalEntry.of(row) for row in await queries.call_journal(s, call)]

        return await self._read("reading the call's events", run)

    async def catch_up(
        self, sdk_app_id: int, user_id: str, after: int | None, window: float
    ) -> Catchup:
        """What a user socket's welcome says: the calls ringing ``user_id``, the app's last
        seq, and the frames missed after ``after`` within ``window`` seconds
        (:mod:`~tavkit.server.calls.replay`)."""
        since = self._clock() - window

        async def run(s: AsyncSession, _out: Outbox) -> Catchup:
            return await replay.catch_up(s, sdk_app_id, user_id, after, since=since)

        return await self._read("reading what a user socket missed", run)

    # -- ringing ends ------------------------------------------------------------------

    async def expire(self, sdk_app_id: int, call_id: uuid.UUID) -> bool:
        """Time out the callees still ringing once ``ring_until`` has passed; whether it did."""

        async def run(s: AsyncSession, out: Outbox) -> bool:
            call, callees = await self._locked(s, sdk_app_id, call_id)
            now = self._clock()
            ringing = [c for c in callees if c.outcome == "ringing"]
            if call.state not in ACTIVE_STATES or not ringing or now < call.ring_until:
                return False
            await self._time_out(s, out, call, callees, now)
            return True

        return await self._write(sdk_app_id, "timing out the call", run)

    async def _time_out(
        self,
        s: AsyncSession,
        out: Outbox,
        call: CallRow,
        callees: Sequence[CalleeRow],
        now: float,
    ) -> None:
        """The callees still ringing stop (``timeout``); a call nobody accepted is over."""
        ringing = [c for c in callees if c.outcome == "ringing"]
        for row in ringing:
            row.outcome = "timeout"
            row.responded_at = now
        if call.state == "ringing":
            await self._finish_unanswered(s, call, callees, now)
        info = call_info(call, callees)
        for row in ringing:
            notice = _notice("call.timeout", call, user=row.user_id)
            frame = CallFrame("call-timeout", info, row.user_id)
            _announce(s, out, call, notice, told(call, callees), frame)
        self._disarm(call.id)

    async def sweep(self) -> int:
        """Time out every call overdue by more than the grace (its replica's timer is gone)."""

        async def run(s: AsyncSession, _out: Outbox) -> list[tuple[int, uuid.UUID]]:
            return await queries.due_calls(s, self._clock() - _SWEEP_GRACE)

        done = 0
        for sdk_app_id, call_id in await self._read("finding overdue calls", run):
            done += await self.expire(sdk_app_id, call_id)
        return done

    def _arm(self, call_id: uuid.UUID, ring_until: float) -> None:
        """Start this replica's timer for the call's ``ring_until``."""
        loop = asyncio.get_running_loop()
        delay = max(0.0, ring_until - self._clock())
        self._timers[call_id] = loop.call_later(delay, self._fire, call_id)

    def _fire(self, call_id: uuid.UUID) -> None:
        self._timers.pop(call_id, None)
        task = asyncio.create_task(self._expire_logged(call_id), name=f"tavkit-call-{call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire_logged(self, call_id: uuid.UUID) -> None:
        try:
            app = await self._app_of(call_id)
            if app is not None:
                await self.expire(app, call_id)
        except Exception:  # the sweep tries again
            logger.exception("timing out call %s failed", call_id)

    async def _sweep_forever(self) -> None:
        interval = max(0.05, self._settings.sweep_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:  # the next sweep tries again; the task never dies of it
                logger.exception("the call sweep failed")

    # -- the room's side ---------------------------------------------------------------

    async def _room_emptied(
        self, s: AsyncSession, out: Outbox, room_uuid: uuid.UUID, why: str, now: float
    ) -> None:
        """In the room's transaction: its last member left (``empty``) or it closed.

        A call still ringing there is cancelled (the caller left before an accept); an
        accepted one ends (``empty``, or ``closed`` for any other close).
        """
        for call in await queries.calls_in_session(s, room_uuid):
            callees = await queries.callees_of(s, call.id, lock=True)
            if call.state == "ringing" and now >= call.ring_until:
                # Its ringing was over (the timer's replica went away): a timeout.
                await self._time_out(s, out, call, callees, now)
            elif call.state == "ringing":
                await self._cancel(s, out, call, callees, now, "caller-left")
            else:
                self._end(s, out, call, callees, now, "empty" if why == "empty" else "closed")
            self._disarm(call.id)

    # -- helpers -----------------------------------------------------------------------

    async def _session_for(
        self,
        s: AsyncSession,
        sdk_app_id: int,
        room: RoomId | None,
        now: float,
        opened: list[SessionRow],
    ) -> SessionRow:
        """The open session of ``room``, or of a fresh room; opened by the call if need be."""
        if room is not None:
            session = await open_session(s, sdk_app_id, room, lock=True)
            if session is not None:
                return session
        else:
            for _ in range(_ALLOCATION_TRIES):
                candidate = _FRESH_ROOM_MIN + secrets.randbelow(U32_MAX - _FRESH_ROOM_MIN + 1)
                if await open_session(s, sdk_app_id, candidate) is None:
                    room = candidate
                    break
            else:
                raise ServerError(ServerCode.ENTER_FAILED, "could not find a free room")
        room_id, room_str = room_columns(room)
        session = SessionRow(
            id=uuid.uuid4(),
            sdk_app_id=sdk_app_id,
            room_id=room_id,
            room_str=room_str,
            opened_at=now,
            empty_since=now,
        )
        s.add(session)
        await s.flush()
        log_event(s, session.id, now, "opened")
        journal.record(s, RoomOpenedNotice(session.id))
        opened.append(session)
        return session

    async def _locked(
        self, s: AsyncSession, sdk_app_id: int, call_id: uuid.UUID
    ) -> tuple[CallRow, list[CalleeRow]]:
        call = await queries.locked_call(s, call_id)
        if call is None or call.sdk_app_id != sdk_app_id:
            raise ServerError(ServerCode.SESSION_NOT_FOUND, f"no call {call_id}")
        return call, await queries.callees_of(s, call_id, lock=True)

    async def _cancel(
        self,
        s: AsyncSession,
        out: Outbox,
        call: CallRow,
        callees: Sequence[CalleeRow],
        now: float,
        reason: str,
    ) -> None:
        ringing = [c for c in callees if c.outcome == "ringing"]
        for row in ringing:
            row.outcome = "cancelled"
            row.responded_at = now
        call.state = "cancelled"
        call.ended_at = now
        call.end_reason = reason
        await self._release_room(s, call, now)
        info = call_info(call, callees)
        notice = _notice(
            "call.cancelled", call, callees=[c.user_id for c in ringing], reason=reason
        )
        frame = CallFrame("call-cancelled", info, reason=reason)
        _announce(s, out, call, notice, told(call, callees), frame)
        self._disarm(call.id)

    def _end(
        self,
        s: AsyncSession,
        out: Outbox,
        call: CallRow,
        callees: Sequence[CalleeRow],
        now: float,
        reason: str,
    ) -> None:
        for row in callees:
            if row.outcome == "ringing":
                row.outcome = "cancelled"
                row.responded_at = now
            elif row.outcome == "accepted":
                row.ended_at = now
        call.state = "ended"
        call.ended_at = now
        call.end_reason = reason
        info = call_info(call, callees)
        frame = CallFrame("call-ended", info, reason=reason)
        _announce(
            s, out, call, _notice("call.ended", call, reason=reason), told(call, callees), frame
        )
        self._disarm(call.id)

    async def _finish_unanswered(
        self, s: AsyncSession, call: CallRow, callees: Sequence[CalleeRow], now: float
    ) -> None:
        """Nobody can accept any more: the call's final state from its callees' outcomes."""
        outcomes = {c.outcome for c in callees}
        if outcomes == {"busy"}:
            state = "busy"
        elif outcomes <= {"busy", "declined"}:
            state = "declined"
        else:
            state = "timeout"
        call.state = state
        call.ended_at = now
        call.end_reason = state
        await self._release_room(s, call, now)
        self._disarm(call.id)

    async def _release_room(self, s: AsyncSession, call: CallRow, now: float) -> None:
        """A call over before any accept no longer holds its room: an empty one may close."""
        session = await s.get(SessionRow, call.session_id, with_for_update=True)
        if session is not None and session.closed_at is None and not await live_rows(s, session.id):
            session.empty_since = now

    def _disarm(self, call_id: uuid.UUID) -> None:
        handle = self._timers.pop(call_id, None)
        if handle is not None:
            handle.cancel()

    async def _app_of(self, call_id: uuid.UUID) -> int | None:
        async def run(s: AsyncSession, _out: Outbox) -> int | None:
            call = await s.get(CallRow, call_id)
            return None if call is None else call.sdk_app_id

        return await self._read("finding the call", run)

    async def _write(self, sdk_app_id: int, action: str, body: Body[T]) -> T:
        lock = self._locks.setdefault(sdk_app_id, asyncio.Lock())
        return await transaction(
            self._store, action, body, bus=self._bus, lock=lock, op_timeout=self._op_timeout
        )

    async def _read(self, action: str, body: Body[T]) -> T:
        return await transaction(
            self._store, action, body, readonly=True, op_timeout=self._op_timeout
        )


def _notice(
    kind: str,
    call: CallRow,
    *,
    user: str | None = None,
    reason: str | None = None,
    callees: Sequence[str] = (),
) -> CallNotice:
    return CallNotice(
        kind, call.session_id, call.id, call.caller, call.media, tuple(callees), user, reason
    )


def _announce(
    s: AsyncSession,
    out: Outbox,
    call: CallRow,
    notice: CallNotice,
    users: Sequence[str],
    frame: CallFrame,
) -> None:
    """Journal ``notice``; once it is numbered, queue ``frame`` with that number as its
    ``seq`` for each of ``users``' user channels (published after the commit)."""
    sdk_app_id = call.sdk_app_id

    def numbered(seq: int) -> None:
        event = CallEvent(replace(frame, seq=seq))
        for user in users:
            out.append((user_channel(sdk_app_id, user), event))

    journal.record(s, notice, numbered=numbered)


def _callee(call: CallRow, callees: Sequence[CalleeRow], user_id: str, what: str) -> CalleeRow:
    me = next((c for c in callees if c.user_id == user_id), None)
    if me is None:
        raise _no_permission(user_id, call, what)
    return me


def _no_permission(user_id: str, call: CallRow, what: str) -> AvkitError:
    return AvkitError(AvkitCode.NO_PERMISSION, f"{user_id} may not {what} call {call.id}")


def _over(call: CallRow, what: str, me: CalleeRow | None = None) -> ServerError:
    mine = "" if me is None else f" (your ring: {me.outcome})"
    return ServerError(
        ServerCode.ROOM_CLOSED, f"call {call.id} is {call.state}{mine}: too late to {what}"
    )
