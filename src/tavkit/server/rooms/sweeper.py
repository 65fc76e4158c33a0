"""The heartbeat sweeper: the background task that removes silent members.

Every ``sweep_interval`` seconds it asks the room service to remove members whose
last heartbeat is older than ``heartbeat_timeout`` and to close sessions that have
been empty for ``close_grace``; the room service announces both on the bus. So a
silent member is gone at most ``heartbeat_timeout + sweep_interval`` after its last
sign of life (plus the time a sweep takes).

The app's lifespan owns the task: ``async with Sweeper(...)`` starts it and
cancels it on exit. A failing sweep (the database is down) is logged and the next
one tries again; the task never dies of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Final, Self

from tavkit.errors import TAvKitError
from tavkit.server.rooms.service import RoomService, SweepReport

__all__ = ["Sweeper"]

logger = logging.getLogger(__name__)

_STOP_TIMEOUT: Final = 10.0


class Sweeper:
    """Runs :meth:`RoomService.sweep` every ``interval`` seconds while entered."""

    def __init__(self, rooms: RoomService, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the sweep interval must be positive")
        self._rooms = rooms
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self.sweeps = 0
        """How many sweeps have completed (for tests and metrics)."""

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name="tavkit-sweeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Cancel the task and wait (bounded) for it to finish."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, _STOP_TIMEOUT)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            report = await self._sweep_once()
            if report.timed_out or report.closed:
                logger.info(
                    "sweep: %d member(s) timed out, %d session(s) closed",
                    report.timed_out,
                    report.closed,
                )

    async def _sweep_once(self) -> SweepReport:
        try:
            return await self._rooms.sweep()
        except TAvKitError as exc:
            logger.warning("sweep failed: %s", exc)
        except Exception:
            # A bug must not stop heartbeats from ever expiring again: log it, go on.
            logger.exception("sweep crashed")
        finally:
            self.sweeps += 1
        return SweepReport()
