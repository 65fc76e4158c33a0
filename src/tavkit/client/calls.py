"""Calls for the Python client: the user socket, an outgoing call's handle, an invitation.

:meth:`TAvKit.call <tavkit.client.TAvKit.call>` rings and returns an :class:`OutgoingCall`;
:meth:`TAvKit.listen <tavkit.client.TAvKit.listen>` yields :class:`Invitation`\\ s. Both hear
the server through a :class:`UserSocket` (``/v1/ws/user``, ``docs/protocol.md`` section 7),
whose credentials travel in the handshake and whose frames are parsed by
:mod:`tavkit.protocol.calls`.

The user socket resumes like the room socket: when it drops (or its replica drains,
1012), :meth:`UserSocket.frames` reopens it with ``after`` (the highest ``seq`` it has)
and the server replays what it missed, in order; invitations still ringing come again
in the welcome and are yielded once. When the server says the gap cannot be replayed
(``resumed`` false), ``on_gap`` is awaited so the owner re-reads its calls over REST.
It stops for good on 1000, 4001 (a newer socket of the device), 4002 (the userSig
expired) and 4401, or when reopening keeps failing for :data:`RESUME_FOR` seconds.

Its userSig is renewed as the room socket's is (:mod:`tavkit.client._renewal`): the
server's ``expiring`` asks the listener's ``on_user_sig_expired()``, and the userSig it
gives goes out in ``renew``; once ``renewed``, resumes and ``on_renewed`` (the REST
calls, the room the call enters) use it. Those frames are read while :meth:`frames`
is iterated.
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
from tavkit.client._renewal import Renewal
from tavkit.client.api import Credentials, RoomApi
from tavkit.errors import HttpCode, HttpError, TAvKitError
from tavkit.protocol import ClientMessage, ErrorFrame, FrameError, Renewed, encode
from tavkit.protocol.calls import (
    CallFrame,
    CallInfo,
    UserWelcome,
    parse_call,
    parse_call_frame,
    parse_user_welcome,
    user_subprotocol,
)
from tavkit.protocol.parsing import parse_server_frame

__all__ = ["FINAL_STATES", "RESUME_FOR", "Invitation", "OutgoingCall", "UserSocket"]

logger = logging.getLogger(__name__)
_WIRE_LOG: Final = logging.getLogger(f"{__name__}.wire")
_WIRE_LOG.addFilter(RedactingFilter())  # the handshake carries the userSig
_OPEN_TIMEOUT: Final = 10.0
_RENEW_TIMEOUT: Final = 10.0
RESUME_FOR: Final = 20.0
"""How long a dropped user socket keeps trying to reopen."""
_FINAL_CLOSES: Final = frozenset({1000, 4001, 4002, 4401})
"""Close codes after which the user socket does not reopen (``docs/protocol.md``)."""

_RENEWAL_FRAMES: Final = frozenset({"expiring", "renewed", "error"})
"""The frames besides ``call-*`` a user socket acts on (its renewals)."""

FINAL_STATES: Final = frozenset({"declined", "busy", "timeout", "cancelled", "ended"})
"""The call states after which nothing more happens to it."""


class UserSocket:
    """One user's socket: the invitations ringing when it opened, then every call frame,
    across drops (module docstring)."""

    def __init__(
        self,
        ws: ClientConnection,
        welcome: UserWelcome,
        credentials: Credentials,
        reopen: Callable[[Credentials, int], Awaitable[tuple[ClientConnection, UserWelcome]]],
        listener: object | None = None,
    ) -> None:
        self._ws = ws
        self.ringing = welcome.ringing
        """The calls ringing for this user when the socket opened (``user-welcome``)."""
        self.last_seq = welcome.last_seq
        """The highest ``seq`` heard: where a resume starts."""
        self.credentials = credentials
        """The credentials in use: the last userSig the server accepted."""
        self.on_gap: Callable[[], Awaitable[None]] | None = None
        """Awaited when a resume could not be replayed (re-read the calls you follow)."""
        self.on_renewed: Callable[[Credentials], None] | None = None
        """Called with the new credentials once the server accepted a renewal."""
        self._reopen = reopen
        self._invited = {call.call_id for call in self.ringing}
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewal = Renewal(
            socket=lambda: None if self._closed else self,
            listener=lambda: listener,
            current_key=lambda: None,  # the user socket checks the userSig alone
            on_renewed=self._renewed,
            report=lambda exc: logger.warning("user socket: renewal refused: %s", exc),
            spawn=self._spawn,
            timeout=_RENEW_TIMEOUT,
        )

    @classmethod
    async def open(
        cls,
        server: str,
        credentials: Credentials,
        device: str = "default",
        *,
        listener: object | None = None,
    ) -> UserSocket:
        """Connect and read the welcome; the seed's error when the server refuses.

        ``listener``'s ``on_user_sig_expired()`` is asked for a new userSig when the
        server warns that this one is ending (none: the socket closes at its end).
        """

        async def reopen(
            fresh: Credentials, after: int | None
        ) -> tuple[ClientConnection, UserWelcome]:
            return await _connect(server, fresh, device, after)

        ws, welcome = await reopen(credentials, None)
        return cls(ws, welcome, credentials, reopen, listener)

    async def send(self, message: ClientMessage) -> None:
        """Send one frame (``renew``, ``ping``); dropped if the socket is down (a renewal
        then times out and the userSig may still be renewed before its deadline)."""
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(encode(message))

    async def renew(self, user_sig: str) -> Renewed:
        """Replace the socket's userSig with ``user_sig``; the server's ``renewed``.

        Needs :meth:`frames` iterated (that reads the answer). Raises like
        :meth:`TAvKit.renew <tavkit.client.TAvKit.renew>`.
        """
        return await self._renewal.renew(user_sig)

    async def frames(self) -> AsyncIterator[CallFrame]:
        """Every call frame until the socket ends for good (a malformed one is skipped)."""
        while not self._closed:
            with contextlib.suppress(ConnectionClosed):
                async for text in self._ws:
                    frame = self._parse(text)
                    if frame is not None:
                        yield frame
            if self._closed or self._ws.close_code in _FINAL_CLOSES:
                return
            welcome = await self._resume()
            if welcome is None:
                return
            for call in welcome.ringing:  # ringing still, and not yielded before
                if call.call_id not in self._invited:
                    self._invited.add(call.call_id)
                    yield CallFrame("call-invite", call)
            if not welcome.resumed and self.on_gap is not None:
                await self.on_gap()

    async def aclose(self) -> None:
        """Close the socket (it does not reopen)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._ws.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="tavkit-user-socket-renewal")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _renewed(self, _answer: Renewed, user_sig: str, _key: str | None) -> None:
        old = self.credentials
        self.credentials = Credentials(old.sdk_app_id, old.user_id, user_sig, old.private_map_key)
        if self.on_renewed is not None:
            self.on_renewed(self.credentials)

    def _parse(self, text: str | bytes) -> CallFrame | None:
        try:
            wire: Any = json.loads(text)
            if not (isinstance(wire, dict) and str(wire.get("type", "")).startswith("call-")):
                if isinstance(wire, dict) and wire.get("type") in _RENEWAL_FRAMES:
                    self._renewal.receive(parse_server_frame(text))
                return None
            frame = parse_call_frame(wire)
        except (ValueError, FrameError) as exc:
            logger.warning("user socket: skipping a frame: %s", exc)
            return None
        if frame.seq is not None:  # the server sends each seq once per socket
            self.last_seq = max(self.last_seq, frame.seq)
        if frame.type == "call-invite":
            self._invited.add(frame.call.call_id)
        return frame

    async def _resume(self) -> UserWelcome | None:
        """Reopen with ``after``, with backoff, for up to :data:`RESUME_FOR` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESUME_FOR
        delay = 0.1
        while not self._closed and loop.time() < deadline:
            try:
                self._ws, welcome = await self._reopen(self.credentials, self.last_seq)
            except HttpError:  # not reachable yet: try again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except TAvKitError as exc:  # refused (the userSig is no longer valid)
                logger.warning("user socket: not resumed: %s", exc)
                return None
            logger.info(
                "user socket resumed after %d (replayed: %s)", self.last_seq, welcome.resumed
            )
            self.last_seq = max(self.last_seq, welcome.last_seq)
            return welcome
        return None


async def _connect(
    server: str, credentials: Credentials, device: str, after: int | None
) -> tuple[ClientConnection, UserWelcome]:
    """Open a user socket and read its welcome; the seed's error when the server refuses."""
    url = server.rstrip("/").replace("http", "ws", 1) + "/v1/ws/user"
    offer = user_subprotocol(
        credentials.sdk_app_id, credentials.user_id, credentials.user_sig, device, after
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
    return ws, welcome


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
        socket.on_gap = self._resync
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

    async def _resync(self) -> None:
        """The socket's gap could not be replayed: read the call as it stands."""
        with contextlib.suppress(TAvKitError):
            self._settle(parse_call((await self._api.get_call(self.call_id))["call"]))

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
