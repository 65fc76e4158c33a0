"""The user socket ``GET /v1/ws/user``: a user's call frames, independent of any room.

Authentication travels in the handshake, as on the room socket, never in the URL: the
client offers ``tavkit.v1`` and ``tavkit.user.<credentials>``, where the credentials are
base64url (unpadded) of the JSON ``{"sdkAppId", "userId", "userSig", "device"}``, checked
like the REST headers (:func:`~tavkit.server.auth.authenticate`); a refusal is one
``error`` frame and close 4401. ``device`` (1-64 characters of a userId's alphabet,
``default`` when absent) names the client: one socket per user and device, a newer one
closing the older (4001) on whichever replica it lives, through the bus like the room
socket's ``socket-open``.

The socket subscribes to the user's channel (:func:`~tavkit.server.bus.user_channel`)
before anything else, then sends ``user-welcome`` with the calls still ringing for the
user: a client that reconnects (its replica went away, its network dropped) is thus
rung again for whatever it missed and can still answer. Frames that are no longer
actionable (a call answered meanwhile) are in the call records. After that it relays
every ``call-*`` frame of the channel and answers ``ping`` with ``pong``; anything else
a client sends is an ``error`` (10004).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import uuid
from contextlib import suppress
from typing import Any, Final

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol import USER_ID_RE, CloseCode, ErrorFrame, FrameError, Pong
from tavkit.protocol.calls import USER_SUBPROTOCOL_PREFIX, UserWelcome
from tavkit.server.auth import Caller, HeaderCredentials, authenticate, credentials
from tavkit.server.bus import user_channel
from tavkit.server.context import ServerContext, context_of
from tavkit.server.events import CallEvent, UserSocketEvent
from tavkit.server.signaling.connection import refuse
from tavkit.server.signaling.tokens import SUBPROTOCOL

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter()

_MAX_CREDENTIAL_CHARS: Final = 6 * 1024
"""Within what uvicorn reads of a handshake at all (a header line over 8 KiB is answered 431)."""
_MAX_FRAME_CHARS: Final = 4096
_SEND_TIMEOUT: Final = 10.0


@router.websocket("/v1/ws/user")
async def user_socket(websocket: WebSocket) -> None:
    """A user's call frames; the credentials come as a subprotocol (module docstring)."""
    ctx = context_of(websocket)
    offered = [p for p in websocket.scope.get("subprotocols") or [] if isinstance(p, str)]
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    try:
        caller, device = _authenticate(ctx, offered)
    except TAvKitError as exc:
        await refuse(websocket, exc, CloseCode.UNAUTHORISED, ctx.metrics)
        return
    await UserConnection(websocket, ctx, caller, device).run()


def _authenticate(ctx: ServerContext, offered: list[str]) -> tuple[Caller, str]:
    """The verified caller and device of the offered credentials; 10005 when they fail."""
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
    creds: HeaderCredentials = credentials(
        str(app) if type(app) is int else None,
        user if isinstance(user, str) else None,
        sig if isinstance(sig, str) else None,
        None,
    )
    return authenticate(ctx, creds), device


class UserConnection:
    """One user socket: a pump from the user's channel and a reader of pings."""

    def __init__(self, websocket: WebSocket, ctx: ServerContext, caller: Caller, device: str):
        self._ws = websocket
        self._ctx = ctx
        self._caller = caller
        self._device = device
        self._socket_id = uuid.uuid4().hex
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        """Subscribe, welcome, then relay until either side ends."""
        ctx, caller = self._ctx, self._caller
        channel = user_channel(caller.sdk_app_id, caller.user_id)
        try:
            async with ctx.bus.subscribe(channel) as events:
                await ctx.bus.publish(channel, UserSocketEvent(self._device, self._socket_id))
                ringing = await ctx.calls.ringing(caller.sdk_app_id, caller.user_id)
                await self._send(
                    UserWelcome(caller.user_id, self._device, tuple(ringing)).to_wire()
                )
                reader = asyncio.create_task(self._read(), name="tavkit-user-socket-reader")
                pump = asyncio.create_task(self._pump(events), name="tavkit-user-socket-pump")
                try:
                    done, _ = await asyncio.wait(
                        {reader, pump}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for task in (reader, pump):
                        task.cancel()
                    await asyncio.gather(reader, pump, return_exceptions=True)
                for task in done:
                    failure = None if task.cancelled() else task.exception()
                    if failure is not None:
                        raise failure
        except TAvKitError as exc:
            await refuse(self._ws, exc, CloseCode.SERVER_ERROR, ctx.metrics)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass

    async def _pump(self, events: Any) -> None:
        async for event in events:
            if isinstance(event, CallEvent):
                await self._send(event.frame.to_wire())
            elif (
                isinstance(event, UserSocketEvent)
                and event.device == self._device
                and event.socket_id != self._socket_id
            ):
                with suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
                    async with asyncio.timeout(_SEND_TIMEOUT):
                        await self._ws.close(CloseCode.REPLACED, "superseded by a newer socket")
                return

    async def _read(self) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            try:
                if text is None or len(text) > _MAX_FRAME_CHARS:
                    raise FrameError(
                        ServerCode.INVALID_PARAMETER, "frames are JSON text, at most 4 KiB"
                    )
                frame = json.loads(text)
                if not isinstance(frame, dict) or frame.get("type") != "ping":
                    raise FrameError(
                        ServerCode.INVALID_PARAMETER, "the user socket only takes ping frames"
                    )
                t = frame.get("t", 0)
                if isinstance(t, bool) or not isinstance(t, int | float):
                    raise FrameError(ServerCode.INVALID_PARAMETER, "frame.t: expected a number")
                await self._send(Pong(float(t)).to_wire())
            except json.JSONDecodeError:
                err = ErrorFrame.from_error(ServerError(ServerCode.JSON_DECODE, "not JSON"))
                await self._send(err.to_wire())
            except FrameError as exc:
                await self._send(ErrorFrame.from_error(exc).to_wire())

    async def _send(self, wire: dict[str, Any]) -> None:
        async with self._send_lock, asyncio.timeout(_SEND_TIMEOUT):
            await self._ws.send_text(json.dumps(wire, separators=(",", ":"), allow_nan=False))
