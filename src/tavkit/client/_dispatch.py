"""The kit's side of the application: listener callbacks, reported errors, owned tasks.

One rule for every callback the application gives the kit (listener methods,
``on_frame``): it is called synchronously; an exception is logged and never reaches
the call; a coroutine it returns runs as a task the dispatcher owns. The dispatcher
also owns the kit's own background tasks (heartbeat, rejoin), so one
:meth:`Dispatcher.cancel_all` ends everything that is still running.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tavkit.errors import AvkitCode, AvkitError, ServerCode, ServerError, TAvKitError
from tavkit.protocol import RoomId, parse_room_id, parse_str_room_id

__all__ = ["Dispatcher", "check_options"]

logger = logging.getLogger("tavkit.client.kit")


class Dispatcher:
    """Calls the listener safely, keeps the reported errors, owns background tasks."""

    def __init__(self) -> None:
        self.listener: object | None = None
        #: Every error reported to ``on_error``, in the seed's wire shape.
        self.errors: list[dict[str, Any]] = []
        #: Also told of every reported error (the log reporter); must not raise.
        self.on_report: Callable[[TAvKitError], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def has(self, name: str) -> bool:
        """Whether the listener implements callback ``name``."""
        return getattr(self.listener, name, None) is not None

    def emit(self, name: str, *args: Any) -> None:
        """Call the listener's ``name`` callback, if it has one."""
        callback = getattr(self.listener, name, None)
        if callback is not None:
            self.call(callback, *args)

    def report(self, error: TAvKitError) -> None:
        """Record ``error`` and hand its wire shape to ``on_error``."""
        logger.info("reporting %r", error)
        self.errors.append(error.to_dict())
        if self.on_report is not None:
            self.on_report(error)
        self.emit("on_error", error.to_dict())

    def call(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run an application callback under the rule above."""
        try:
            result = callback(*args)
        except Exception:
            logger.exception("callback %r raised", callback)
            return
        if inspect.isawaitable(result):
            self.spawn(_guard(result, callback))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task this dispatcher owns."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_all(self, grace: float) -> None:
        """Cancel every owned task but the caller's; wait up to ``grace`` seconds for them."""
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)


async def _guard(awaitable: Awaitable[Any], callback: Callable[..., Any]) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("callback %r raised", callback)


def check_options(
    sdk_app_id: object,
    user_id: object,
    user_sig: object,
    room_id: object,
    str_room_id: object = None,
) -> RoomId:
    """The seed's "missing parameter" checks (avkit 10002-10005), before any network.

    Returns the room: ``room_id`` (a number; text of digits is that number, as in
    ``<tavkit-call>``; other text is a string room) or TRTC's ``str_room_id``, always
    a string room, even of digits (``"123"`` is not room 123). Giving both, or a
    room the server would refuse (out of range, a string room outside TRTC's
    rules), is server 10004, as the server would answer.
    """
    if not isinstance(user_id, str) or not user_id:
        raise AvkitError(AvkitCode.MISSING_USER_ID)
    if isinstance(sdk_app_id, bool) or not isinstance(sdk_app_id, int) or sdk_app_id <= 0:
        raise AvkitError(AvkitCode.MISSING_SDK_APP_ID)
    if not isinstance(user_sig, str) or not user_sig.strip():
        raise AvkitError(AvkitCode.MISSING_USER_SIG)
    if str_room_id is not None:
        if room_id is not None:
            raise ServerError(ServerCode.INVALID_PARAMETER, "give roomId or strRoomId, not both")
        if str_room_id == "":
            raise AvkitError(AvkitCode.MISSING_ROOM_ID)
        return parse_str_room_id(str_room_id)
    if isinstance(room_id, str) and room_id:
        if room_id.isascii() and room_id.isdigit():  # as <tavkit-call>: "1234" is room 1234
            return parse_room_id(int(room_id))
        return parse_str_room_id(room_id, "roomId")
    if isinstance(room_id, bool) or not isinstance(room_id, int) or room_id <= 0:
        raise AvkitError(AvkitCode.MISSING_ROOM_ID)
    return parse_room_id(room_id)
