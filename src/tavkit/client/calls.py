"""Calls for the Python client: the user socket, an outgoing call's handle, an invitation.

:meth:`TAvKit.call <tavkit.client.TAvKit.call>` rings and returns an :class:`OutgoingCall`;
:meth:`TAvKit.listen <tavkit.client.TAvKit.listen>` yields :class:`Invitation`\\ s. Both hear
the server through a :class:`UserSocket` (``/v1/ws/user``, ``docs/protocol.md`` section 7),
whose credentials travel in the handshake and whose frames are parsed by
:mod:`tavkit.protocol.calls`.

The user socket does not reconnect by itself: when it drops, :meth:`UserSocket.frames`
ends, and a new socket's ``user-welcome`` lists the invitations still ringing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from tavkit._redact import RedactingFilter
from tavkit.client.api import Credentials, RoomApi
from tavkit.errors import HttpCode, HttpError, TAvKitError
from tavkit.protocol import ErrorFrame, FrameError
from tavkit.protocol.calls import (
    CallFrame,
    CallInfo,
    parse_call,
    parse_call_frame,
    parse_user_welcome,
    user_subprotocol,
)

__all__ = ["FINAL_STATES", "Invitation", "OutgoingCall", "UserSocket"]

logger = logging.getLogger(__name__)
_WIRE_LOG: Final = logging.getLogger(f"{__name__}.wire")
_WIRE_LOG.addFilter(RedactingFilter())  # the handshake carries the userSig
_OPEN_TIMEOUT: Final = 10.0

FINAL_STATES: Final = frozenset({"declined", "busy", "timeout", "cancelled", "ended"})
"""The call states after which nothing more happens to it."""


class UserSocket:
    """One user socket: the invitations ringing when it opened, then every call frame."""

    def __init__(self, ws: ClientConnection, ringing: tuple[CallInfo, ...]) -> None:
        self._ws = ws
        self.ringing = ringing
        """The calls ringing for this user when the socket opened (``user-welcome``)."""

    @classmethod
    async def open(
        cls, server: str, credentials: Credentials, device: str = "default"
    ) -> UserSocket:
        """Connect and read the welcome; the seed's error when the server refuses."""
        url = server.rstrip("/").replace("http", "ws", 1) + "/v1/ws/user"
        offer = user_subprotocol(
            credentials.sdk_app_id, credentials.user_id, credentials.user_sig, device
        )
        try:
            ws = await connect(
                url,
                subprotocols=[Subprotocol("tavkit.v1"), Subprotocol(offer)],
                logger=_WIRE_LOG,
                open_timeout=_OPEN_TIMEOUT,
                close_timeout=2.0,
                proxy=None,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise HttpError(HttpCode.NETWORK, f"user socket: {exc!r}") from exc
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT):
                first = json.loads(await ws.recv())
            if isinstance(first, dict) and first.get("type") == ErrorFrame.type:
                raise TAvKitError.from_dict(first)
            welcome = parse_user_welcome(first)
        except (TimeoutError, ConnectionClosed, ValueError, FrameError) as exc:
            await ws.close()
            if isinstance(exc, TAvKitError):
                raise
            raise HttpError(HttpCode.NETWORK, f"no welcome on the user socket: {exc!r}") from exc
        except TAvKitError:
            await ws.close()
            raise
        return cls(ws, welcome.ringing)

    async def frames(self) -> AsyncIterator[CallFrame]:
        """Every call frame until the socket closes (a malformed one is logged and skipped)."""
        with contextlib.suppress(ConnectionClosed):
            async for text in self._ws:
                try:
                    wire: Any = json.loads(text)
                    if isinstance(wire, dict) and str(wire.get("type", "")).startswith("call-"):
                        yield parse_call_frame(wire)
                except (ValueError, FrameError) as exc:
                    logger.warning("user socket: skipping a frame: %s", exc)

    async def aclose(self) -> None:
        """Close the socket."""
        await self._ws.close()


class OutgoingCall:
    """A call this client made: :meth:`result` waits for its answer.

    The caller waits in the call's room while it rings (TUICallKit's way), so an
    accepted call is already joined; a call that ends unanswered leaves the room.
    """

    def __init__(
        self,
        call: CallInfo,
        api: RoomApi,
        socket: UserSocket,
        leave: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.call = call
        """The call as last heard of (its state, each callee's outcome)."""
        self.events: list[CallFrame] = []
        """Every frame heard about this call, in order."""
        self._api = api
        self._socket = socket
        self._leave = leave
        self._answered: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._over = asyncio.Event()
        self._leaving: asyncio.Task[None] | None = None
        self._task = asyncio.create_task(self._watch(), name=f"tavkit-call-{call.call_id}")
        self._settle(call)

    @property
    def call_id(self) -> str:
        """The call's UUID."""
        return self.call.call_id

    async def result(self) -> str:
        """``accepted`` once a callee accepts, else the state it ended in (``declined``,
        ``busy``, ``timeout``, ``cancelled``)."""
        return await asyncio.shield(self._answered)

    async def ended(self) -> str:
        """Wait until the call is over; its final state."""
        await self._over.wait()
        return self.call.state

    async def cancel(self) -> None:
        """Stop the ringing (before anyone accepted) and leave the room."""
        self._settle(parse_call((await self._api.call_action(self.call_id, "cancel"))["call"]))

    async def hangup(self) -> None:
        """End the call for everyone (a call still ringing is cancelled) and leave the room."""
        self._settle(parse_call((await self._api.call_action(self.call_id, "hangup"))["call"]))

    async def aclose(self) -> None:
        """Stop listening (the call itself goes on unless cancelled or hung up)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._socket.aclose()
        await self._api.aclose()

    def _settle(self, call: CallInfo) -> None:
        self.call = call
        if call.state == "accepted" and not self._answered.done():
            self._answered.set_result("accepted")
        if call.state in FINAL_STATES:
            if not self._answered.done():
                self._answered.set_result(call.state)
            if not self._over.is_set():
                self._over.set()
                self._leaving = asyncio.get_running_loop().create_task(self._leave())

    async def _watch(self) -> None:
        async for frame in self._socket.frames():
            if frame.call.call_id == self.call_id:
                self.events.append(frame)
                self._settle(frame.call)


class Invitation:
    """A call ringing this client: :meth:`accept` joins its room, :meth:`decline` refuses."""

    def __init__(
        self, call: CallInfo, api: RoomApi, join: Callable[[CallInfo], Awaitable[None]]
    ) -> None:
        self.call = call
        self._api = api
        self._join = join

    @property
    def caller(self) -> str:
        """Who is calling."""
        return self.call.caller

    async def accept(self) -> CallInfo:
        """Answer and enter the call's room; the call as it now stands."""
        self.call = parse_call((await self._api.call_action(self.call.call_id, "accept"))["call"])
        await self._join(self.call)
        return self.call

    async def decline(self, reason: str | None = None) -> CallInfo:
        """Refuse the call (``reason="busy"`` makes the outcome busy)."""
        body = {"reason": reason} if reason is not None else {}
        answer = await self._api.call_action(self.call.call_id, "decline", body)
        self.call = parse_call(answer["call"])
        return self.call
