"""The user socket ``GET /v1/ws/user``: a user's call frames, independent of any room.

It comes in through the socket lane (:mod:`tavkit.server.signaling.lane`), like the
room socket, so a draining replica refuses it with 1012 and :meth:`Drain.move
<tavkit.server.drain.Drain.move>` moves the held ones with 1012 too. The rest follows
the room socket, reusing its parts (``docs/protocol.md`` section 7):

* **Handshake.** The client offers ``tavkit.v1`` and ``tavkit.user.<credentials>``:
  base64url (unpadded) of the JSON ``{"sdkAppId", "userId", "userSig", "device",
  "after"?}``, checked like the REST headers (:func:`~tavkit.server.auth.authenticate`);
  a refusal is one ``error`` frame and close 4401. ``device`` (``default`` when absent)
  names the client: one socket per user and device, a newer one closing the older
  (4001) on whichever replica it lives, through the bus.
* **Welcome and resume.** Subscribed to the user's channel first, the socket sends
  ``user-welcome`` with the calls ringing now and the app's last journal id
  (``lastSeq``); with ``after`` it then replays the frames missed since
  (:mod:`~tavkit.server.calls.replay`), ``resumed`` saying whether it could. Live frames
  at or below what the welcome covered are not sent twice.
* **Inbound.** The room socket's :class:`~tavkit.server.signaling.inbound.InboundScreen`
  (size 1009, 50 frames/s with error 10004); ``ping`` and ``renew`` only, else 10004.
* **Expiry.** The room socket's :class:`~tavkit.server.signaling.renewal.ExpiryWatch`
  times the userSig: ``expiring``, then, without an accepted ``renew``, ``removed
  {reason: "expired"}`` and close 4002 once the grace has passed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import AsyncIterable
from contextlib import AsyncExitStack, suppress
from typing import Any, Final, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol import (
    USER_ID_RE,
    CloseCode,
    ErrorFrame,
    FrameError,
    Ping,
    Pong,
    Removed,
    Renew,
    Renewed,
    parse_client_frame,
)
from tavkit.protocol.calls import USER_SUBPROTOCOL_PREFIX, UserWelcome
from tavkit.server.auth import Caller, HeaderCredentials, authenticate, credentials
from tavkit.server.bus import user_channel
from tavkit.server.context import ServerContext, context_of
from tavkit.server.events import CallEvent, Event, UserSocketEvent
from tavkit.server.signaling.connection import CLOSE_TIMEOUT, SEND_QUEUE, SEND_TIMEOUT, refuse
from tavkit.server.signaling.inbound import InboundScreen, Verdict
from tavkit.server.signaling.renewal import ExpiryWatch
from tavkit.server.signaling.tokens import SUBPROTOCOL

__all__ = ["USER_SOCKET_PATH", "UserConnection", "user_socket"]

logger = logging.getLogger(__name__)

USER_SOCKET_PATH: Final = "/v1/ws/user"
"""Where the user socket is served (by the socket lane)."""
_MAX_CREDENTIAL_CHARS: Final = 6 * 1024
"""Within what uvicorn reads of a handshake at all (a header line over 8 KiB is answered 431)."""


class _Wire(Protocol):
    def to_wire(self) -> dict[str, Any]: ...


async def user_socket(websocket: WebSocket, *, replica_header: tuple[bytes, bytes]) -> None:
    """A user's call frames; the credentials come as a subprotocol (module docstring)."""
    ctx = context_of(websocket)
    offered = [p for p in websocket.scope.get("subprotocols") or [] if isinstance(p, str)]
    await websocket.accept(
        subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None, headers=[replica_header]
    )
    try:
        caller, device, after = _authenticate(ctx, offered)
    except TAvKitError as exc:
        await refuse(websocket, exc, CloseCode.UNAUTHORISED, ctx.metrics)
        return
    await UserConnection(websocket, ctx, caller, device, after).run()


def _authenticate(ctx: ServerContext, offered: list[str]) -> tuple[Caller, str, int | None]:
    """The verified caller, device and ``after`` of the offered credentials; 10005 otherwise."""
    encoded = next(
        (
            p.removeprefix(USER_SUBPROTOCOL_PREFIX)
            for p in offered
            if p.startswith(USER_SUBPROTOCOL_PREFIX)
        ),
        None,
    )
    if not encoded or len(encoded) > _MAX_CREDENTIAL_CHARS:
        raise ServerError(ServerCode.UNAUTHORISED, "no user credentials in the handshake")
    try:
        raw: Any = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):
        raise ServerError(ServerCode.UNAUTHORISED, "user credentials are malformed") from None
    if not isinstance(raw, dict):
        raise ServerError(ServerCode.UNAUTHORISED, "user credentials are malformed")
    app, user, sig = raw.get("sdkAppId"), raw.get("userId"), raw.get("userSig")
    device = raw.get("device", "default")
    if not isinstance(device, str) or not USER_ID_RE.fullmatch(device):
        raise ServerError(ServerCode.UNAUTHORISED, "device: 1-64 characters of A-Z a-z 0-9 _ . @ -")
    after = raw.get("after")
    if after is not None and (type(after) is not int or not 0 <= after < 2**63):
        raise ServerError(ServerCode.UNAUTHORISED, "after: expected an integer from 0")
    creds: HeaderCredentials = credentials(
        str(app) if type(app) is int else None,
        user if isinstance(user, str) else None,
        sig if isinstance(sig, str) else None,
        None,
    )
    return authenticate(ctx, creds), device, after


class UserConnection:
    """One user socket: a writer, a reader of pings and renewals, a pump from the channel."""

    def __init__(
        self,
        websocket: WebSocket,
        ctx: ServerContext,
        caller: Caller,
        device: str,
        after: int | None,
    ) -> None:
        self._ws = websocket
        self._ctx = ctx
        self._caller = caller
        self._device = device
        self._after = after
        self.connection_id = f"{caller.sdk_app_id}/{caller.user_id}/{device}"
        """The registry's key: one socket per user and device."""
        self.socket_id = uuid.uuid4().hex
        self.announced = False
        self._tag = f"user-socket({caller.user_id}/{device})"
        self._outbox: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue(SEND_QUEUE)
        self._closing = False
        self._close_queued = False  # a close is in the outbox: the writer ends with it
        self._horizon = 0  # live frames at or below this were covered by the welcome
        self._screen = InboundScreen(time.monotonic)
        self._expiry = ExpiryWatch(
            grace=ctx.settings.renew_grace, send=self.send, expire=self._expired, name=self._tag
        )

    async def run(self) -> None:
        """Subscribe, welcome (and replay), then serve until either side ends."""
        ctx, caller = self._ctx, self._caller
        channel = user_channel(caller.sdk_app_id, caller.user_id)
        ctx.user_sockets.attach(self)
        try:
            async with AsyncExitStack() as subscribed:
                try:
                    events = await subscribed.enter_async_context(ctx.bus.subscribe(channel))
                    await ctx.bus.publish(channel, UserSocketEvent(self._device, self.socket_id))
                    await self._welcome()
                except TAvKitError as exc:  # the database or the bus is away
                    await refuse(self._ws, exc, CloseCode.SERVER_ERROR, ctx.metrics)
                    return
                self.announced = True
                await self._serve(events)
        finally:
            ctx.user_sockets.detach(self)

    async def _welcome(self) -> None:
        caller = self._caller
        window = self._ctx.settings.heartbeat_timeout  # the room socket's resume window
        catch = await self._ctx.calls.catch_up(
            caller.sdk_app_id, caller.user_id, self._after, window
        )
        resumed = catch.missed is not None
        self.send(UserWelcome(caller.user_id, self._device, catch.ringing, catch.last_seq, resumed))
        for frame in catch.missed or ():
            self.send(frame)
        self._horizon = catch.last_seq
        if self._after is not None:
            logger.info("%s resumed after %d: %s", self._tag, self._after, resumed)

    async def _serve(self, events: AsyncIterable[Event]) -> None:
        writer = asyncio.create_task(self._write(), name=f"{self._tag} writer")
        reader = asyncio.create_task(self._read(), name=f"{self._tag} reader")
        pump = asyncio.create_task(self._pump(events), name=f"{self._tag} pump")
        self._expiry.watch(self._caller.user_sig_expires_at)
        try:
            done, _ = await asyncio.wait({writer, reader, pump}, return_when="FIRST_COMPLETED")
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    logger.error("%s %s failed", self._tag, task.get_name(), exc_info=exc)
            if writer not in done and self._close_queued:  # let the goodbye go out
                with suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await asyncio.shield(writer)
        finally:
            await self._expiry.aclose()
            for task in (writer, reader, pump):
                task.cancel()
            await asyncio.gather(writer, reader, pump, return_exceptions=True)
            await self._close_socket(int(CloseCode.SERVER_ERROR), "")

    def send(self, msg: _Wire) -> None:
        """Queue ``msg``; a client this far behind is dropped (1013), as on the room socket."""
        if self._closing:
            return
        try:
            self._outbox.put_nowait(json.dumps(msg.to_wire(), separators=(",", ":")))
        except asyncio.QueueFull:
            logger.warning("%s %d frames unsent: dropping a slow client", self._tag, SEND_QUEUE)
            self.close(CloseCode.TRY_AGAIN_LATER, "too slow")

    def close(self, code: int, reason: str, frame: _Wire | None = None) -> None:
        """Send ``frame`` if given, then close with ``code``. The first call wins."""
        if self._closing:
            return
        if frame is not None:
            self.send(frame)
        self._closing = True
        with suppress(asyncio.QueueFull):  # a client not reading: the supervisor closes
            self._outbox.put_nowait((code, reason))
            self._close_queued = True

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, tuple):
                await self._close_socket(*item)
                return
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self._ws.send_text(item)
            except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
                return

    async def _read(self) -> None:
        while not self._closing:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                self._closing = True
                return
            raw: str | bytes | None = message.get("text")
            if raw is None:
                raw = message.get("bytes")
            if raw is None:
                continue
            verdict = self._screen.check(raw)
            if verdict is Verdict.TOO_BIG:
                self.close(CloseCode.TOO_BIG, "frame too big")
                return
            if verdict is Verdict.DROP_AND_WARN:
                self.send(ErrorFrame.from_error(self._screen.rate_error()))
            if verdict is not Verdict.PASS:
                continue
            try:
                msg = parse_client_frame(raw)
            except FrameError as exc:
                self.send(ErrorFrame.from_error(exc))
                continue
            try:
                if isinstance(msg, Ping):
                    self.send(Pong(msg.t))
                elif isinstance(msg, Renew):
                    self._renew(msg)
                else:
                    raise FrameError(
                        ServerCode.INVALID_PARAMETER,
                        "the user socket takes ping and renew frames only",
                    )
            except TAvKitError as exc:
                self.send(ErrorFrame.from_error(exc, msg.id))

    async def _pump(self, events: AsyncIterable[Event]) -> None:
        async for event in events:
            if isinstance(event, CallEvent):
                seq = event.frame.seq
                if seq is None or seq > self._horizon:
                    self.send(event.frame)
            elif (
                isinstance(event, UserSocketEvent)
                and event.device == self._device
                and event.socket_id != self.socket_id
            ):
                self.close(CloseCode.REPLACED, "superseded by a newer socket")
                return
        # The bus ended the subscription (Redis went away): the client resumes (1011).
        self.close(CloseCode.SERVER_ERROR, "events lost; reconnect")

    def _renew(self, msg: Renew) -> None:
        """A new userSig for the same app and user: its end replaces the old one's."""
        caller = self._caller
        creds = HeaderCredentials(caller.sdk_app_id, caller.user_id, msg.user_sig, None)
        renewed = authenticate(self._ctx, creds)  # 10005 when it does not verify
        self._caller = renewed
        self._expiry.watch(renewed.user_sig_expires_at)
        expires_at = renewed.user_sig_expires_at
        assert expires_at is not None  # a verified userSig always has an end
        self.send(Renewed(expires_at=expires_at, privileges=0, ref=msg.id))
        logger.info("%s credentials renewed", self._tag)

    async def _expired(self) -> None:
        """The grace after the userSig's end has passed: ``removed expired``, close 4002."""
        logger.info("%s userSig ended and was not renewed: closing", self._tag)
        self.close(CloseCode.REMOVED, "expired", Removed("expired"))

    async def _close_socket(self, code: int, reason: str) -> None:
        self._closing = True
        if WebSocketState.DISCONNECTED in (self._ws.application_state, self._ws.client_state):
            return
        with suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code, reason)
