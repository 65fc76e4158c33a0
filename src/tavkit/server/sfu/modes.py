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

The switched sessions are this process's memory, not the store's: SFU rooms are held by
one replica today (the bridge's rooms are too), and a replica that restarts forgets
which live sessions switched (their members keep their SFU media; newcomers would be
told mesh). Left: a column on the session's row would share it; the ``sfu_rooms``
table (:mod:`tavkit.server.sfu.placement`) would not, since a replica stopping
gracefully deletes its rows, open sessions' included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from tavkit.errors import TAvKitError
from tavkit.protocol import MediaMode
from tavkit.server.bus import session_channel
from tavkit.server.events import MediaModeEvent, RoomClosedEvent

if TYPE_CHECKING:
    from tavkit.server.bus import Bus
    from tavkit.server.settings import Settings

__all__ = ["MediaModes"]

logger = logging.getLogger(__name__)


class MediaModes:
    """Each session's media mode (``ServerContext.media_modes``); owns the ``auto`` switches.

    Use as an async context manager (the app's lifespan): leaving it stops the tasks that
    forget a switched session when it closes.
    """

    def __init__(self, settings: Settings, bus: Bus) -> None:
        self._settings = settings
        self._bus = bus
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

    def mode_of(self, sdk_app_id: int, room_uuid: object) -> MediaMode:
        """The way ``room_uuid``'s media goes now: ``sfu`` for an SFU app and a switched
        ``auto`` session, else ``mesh``."""
        mode = self._settings.media_mode_of(sdk_app_id)
        if mode == "auto":
            return "sfu" if str(room_uuid) in self._switched else "mesh"
        return mode

    async def entered(self, sdk_app_id: int, room_uuid: object, members: int) -> MediaMode:
        """A member entered ``room_uuid``, which now has ``members`` (the newcomer included).

        In an ``auto`` app's session past its threshold, switch the session (once): every
        socket of the session hears it on the bus. Returns the mode the newcomer is told.
        """
        key = str(room_uuid)
        above = self._settings.sfu_above_of(sdk_app_id)
        if (
            self._settings.media_mode_of(sdk_app_id) == "auto"
            and key not in self._switched
            and members > above
        ):
            self._switched[key] = asyncio.create_task(
                self._forget_at_close(key), name=f"media-mode-{key}"
            )
            logger.info(
                "session %s has %d members (more than %d): now an SFU room", key, members, above
            )
            await self._bus.publish(session_channel(key), MediaModeEvent("sfu"))
        return self.mode_of(sdk_app_id, room_uuid)

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
