"""Which way each session's media goes: the app's media mode, and ``auto``'s switch.

An app's rooms are ``mesh``, ``sfu`` or ``auto`` (:meth:`Settings.media_mode_of
<tavkit.server.settings.Settings.media_mode_of>`). An ``auto`` session starts as a
mesh, where a 1v1's media never touches a server; the enter that makes it more than
``sfu_above`` members switches it to the SFU::

    enter (REST)        the room service admits the member; entered() counts the session
                        and, past the threshold, marks it switched and publishes
                        MediaModeEvent("sfu") on the session's channel; the enter answer
                        (and every later welcome) says mediaMode sfu
    each socket         joins its member to the SFU (the bridge), then sends the client
                        media-mode sfu; from then on that socket refuses the member's
                        mesh signals (10004) and takes its media-signals
    each client         publishes to Janus, answers its subscription, and closes its mesh
                        connections once the SFU's media arrives (a short freeze, no blank)

A switched session stays an SFU session until it closes, whoever leaves. Going back to
the mesh (as Jitsi does at two) would cost the members who stay a second switch, and a
room hovering around its threshold would flap between the two with a freeze each time;
the Janus room is already made, and an SFU 1v1 costs Janus one forwarded stream each
way. Staying is also what makes the state small enough to hold here.

The switch is kept on the session's row (``room_sessions.sfu_since``), so every replica
and a restarted one agree: the replica whose enter crosses the threshold marks the row
(once: a second replica crossing it too finds it marked and publishes nothing), and a
replica that does not remember a session reads the row. What each replica learned is
kept in memory until the session closes, so a switched session's row is read once per
replica; a session still a mesh costs one read by primary key per enter and welcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from tavkit.errors import TAvKitError
from tavkit.protocol import MediaMode
from tavkit.server.bus import session_channel
from tavkit.server.events import MediaModeEvent, RoomClosedEvent
from tavkit.server.store.models import SessionRow
from tavkit.server.store.unit_of_work import transaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from tavkit.server.bus import Bus
    from tavkit.server.settings import Settings
    from tavkit.server.store.db import Store
    from tavkit.server.store.unit_of_work import Outbox

__all__ = ["MediaModes"]

logger = logging.getLogger(__name__)


class MediaModes:
    """Each session's media mode (``ServerContext.media_modes``); owns the ``auto`` switches.

    Use as an async context manager (the app's lifespan): leaving it stops the tasks that
    forget a switched session when it closes.
    """

    def __init__(self, settings: Settings, bus: Bus, store: Store) -> None:
        self._settings = settings
        self._bus = bus
        self._store = store
        self._switched: dict[str, asyncio.Task[None]] = {}
        """Switched ``auto`` sessions (UUID) -> the task forgetting each at ``room-closed``."""

    async def __aenter__(self) -> MediaModes:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following the switched sessions."""
        tasks = list(self._switched.values())
        self._switched.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def mode_of(self, sdk_app_id: int, room_uuid: object) -> MediaMode:
        """The way ``room_uuid``'s media goes now: ``sfu`` for an SFU app and a switched
        ``auto`` session (remembered, else read from its row), else ``mesh``."""
        mode = self._settings.media_mode_of(sdk_app_id)
        if mode != "auto":
            return mode
        key = str(room_uuid)
        if key not in self._switched and await self._marked(key):
            self._remember(key)
        return "sfu" if key in self._switched else "mesh"

    async def entered(self, sdk_app_id: int, room_uuid: object, members: int) -> MediaMode:
        """A member entered ``room_uuid``, which now has ``members`` (the newcomer included).

        In an ``auto`` app's session past its threshold, switch the session (once, across
        replicas: the row is marked first): every socket of the session hears it on the
        bus. Returns the mode the newcomer is told.
        """
        key = str(room_uuid)
        above = self._settings.sfu_above_of(sdk_app_id)
        if (
            self._settings.media_mode_of(sdk_app_id) == "auto"
            and key not in self._switched
            and members > above
        ):
            first = await self._mark(key)
            self._remember(key)
            if first:
                logger.info(
                    "session %s has %d members (more than %d): now an SFU room", key, members, above
                )
                await self._bus.publish(session_channel(key), MediaModeEvent("sfu"))
        return await self.mode_of(sdk_app_id, room_uuid)

    def _remember(self, key: str) -> None:
        """Hold ``key`` as switched until its session closes."""
        if key not in self._switched:
            self._switched[key] = asyncio.create_task(
                self._forget_at_close(key), name=f"media-mode-{key}"
            )

    async def _mark(self, key: str) -> bool:
        """Mark the session's row switched; whether this call did (not another replica)."""

        async def body(session: AsyncSession, _: Outbox) -> bool:
            marked = await session.execute(
                update(SessionRow)
                .where(SessionRow.id == uuid.UUID(key), SessionRow.sfu_since.is_(None))
                .values(sfu_since=time.time())
            )
            return bool(getattr(marked, "rowcount", 0))

        return await transaction(self._store, "switching the room to the SFU", body)

    async def _marked(self, key: str) -> bool:
        """Whether the session's row says it switched (another replica, or before a restart)."""

        async def body(session: AsyncSession, _: Outbox) -> bool:
            since = await session.scalar(
                select(SessionRow.sfu_since).where(SessionRow.id == uuid.UUID(key))
            )
            return since is not None

        return await transaction(self._store, "reading the room's media mode", body, readonly=True)

    def switched(self) -> list[str]:
        """The ``auto`` sessions that switched to the SFU and are still open (UUIDs)."""
        return sorted(self._switched)

    async def _forget_at_close(self, key: str) -> None:
        try:
            async with self._bus.subscribe(session_channel(key)) as events:
                async for event in events:
                    if isinstance(event, RoomClosedEvent):
                        break
        except TAvKitError as exc:  # the bus is away: the sockets close and resync anyway
            logger.warning("media mode of session %s: lost its events (%s)", key, exc)
            return
        self._switched.pop(key, None)
