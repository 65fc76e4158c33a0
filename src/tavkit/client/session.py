"""The signaling socket of one room membership, which survives network drops.

:class:`SignalingSocket` connects to ``socketUrl`` from ``enter``, offering the
subprotocols ``tavkit.v1`` and ``tavkit.token.<socketToken>`` (the token rides in the
handshake header, never in the URL that access logs keep), waits for ``welcome`` and
then hands every parsed server frame to a callback. If the connection drops for any
reason other than the server ending the membership (:data:`FINAL_CLOSE_CODES`) it
reconnects **with the same token**; the server
accepts it as a resume for as long as the member has not timed out
(``docs/protocol.md`` section 2), so the other members never see us leave. Frames
sent while disconnected are queued and flushed after the resume.

A busy server refuses a ``signal`` frame instead of queueing it for seconds (server
10000 with the frame's ``id`` as ``ref``, ``docs/protocol.md`` section 2): every
``signal`` goes out with an ``id``, and one refused that way is sent again after a
short random pause (a lost offer or candidate would stall that media link), up to
:data:`SIGNAL_TRIES` times in all; only the last refusal reaches ``on_message``.

Liveness: the websockets keepalive pings every ``heartbeat_interval`` and drops a
connection whose pong is late, which turns a silent network failure into a
reconnect. The contract's own ``ping`` frame (and the REST heartbeat) are sent by
:class:`~tavkit.client.TAvKit`'s heartbeat task.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Final, Literal
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from tavkit._redact import RedactingFilter
from tavkit.errors import HttpCode, HttpError, ServerCode, ServerError, TAvKitError
from tavkit.protocol import (
    MAX_FRAME_BYTES,
    ClientMessage,
    CloseCode,
    ErrorFrame,
    FrameError,
    ServerMessage,
    SignalTo,
    Welcome,
    encode,
    parse_server_frame,
)

__all__ = ["FINAL_CLOSE_CODES", "SIGNAL_PAUSE", "SIGNAL_TRIES", "SignalingSocket"]

logger = logging.getLogger(__name__)

#: Close codes after which resuming is pointless: the server ended the membership.
FINAL_CLOSE_CODES: Final = frozenset(
    {
        CloseCode.NORMAL,
        CloseCode.REPLACED,
        CloseCode.REMOVED,
        CloseCode.ROOM_CLOSED,
        CloseCode.UNAUTHORISED,
    }
)
_CLOSE_REASONS: Final[dict[int, str]] = {
    CloseCode.REPLACED: "entered again elsewhere",
    CloseCode.REMOVED: "removed from the room",
}
_MAX_QUEUED: Final = 512
SIGNAL_TRIES: Final = 6
"""How many times one ``signal`` is sent while a busy server refuses it."""
SIGNAL_PAUSE: Final = (0.1, 0.4)
"""The random pause (s) before sending a refused ``signal`` again: spread, so the
refused senders do not all come back in the same instant."""
_SIGNALS_KEPT: Final = 256
"""How many recent ``signal`` frames are kept to be sent again (a refusal comes within
a round trip, so only the newest can still be refused)."""
_SUBPROTOCOL: Final = Subprotocol("tavkit.v1")
_TOKEN_PREFIX: Final = "tavkit.token."
_WIRE_LOG: Final = logging.getLogger(f"{__name__}.wire")
"""The socket's websockets logger: at DEBUG it prints the handshake, token included,
so it redacts."""
_WIRE_LOG.addFilter(RedactingFilter())
_MAX_BACKOFF: Final = 2.0
_STABLE_AFTER: Final = 1.0
"""Seconds a resumed socket must stay up to count as working (not dropped at once)."""


class SignalingSocket:
    """One membership's socket: connect, resume after drops, report its final end.

    ``on_message`` gets every frame after ``welcome`` (and the ``welcome`` of each
    resume); it must not block. ``on_end(code, error)`` is called once when the
    socket is over for good: ``code`` is the close code (``None`` if resuming gave
    up) and ``error`` the reason when it was not a normal ``leave``. ``on_phase``
    hears each handshake's ``socket-open`` and ``welcome`` (the join timeline keeps the
    first of each).
    """

    def __init__(
        self,
        url: str,
        token: str,
        on_message: Callable[[ServerMessage], None],
        on_end: Callable[[int | None, TAvKitError | None], None],
        *,
        heartbeat_interval: float = 5.0,
        resume_within: float = 15.0,
        open_timeout: float = 10.0,
        on_phase: Callable[[Literal["socket-open", "welcome"]], None] = lambda phase: None,
    ) -> None:
        self._url = url
        # Percent-encoded: any token becomes a valid subprotocol (the server's need not).
        self._subprotocols = [_SUBPROTOCOL, Subprotocol(_TOKEN_PREFIX + quote(token, safe=""))]
        self._on_message = on_message
        self._on_end = on_end
        self._interval = heartbeat_interval
        self._resume_within = resume_within
        self._open_timeout = open_timeout
        self._on_phase = on_phase
        self._ws: ClientConnection | None = None
        self._outbox: collections.deque[str] = collections.deque(maxlen=_MAX_QUEUED)
        self._signals: collections.OrderedDict[str, tuple[str, int]] = collections.OrderedDict()
        self._signal_n = 0
        self._retries: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self.resumes = 0
        self.connected = asyncio.Event()

    async def open(self) -> Welcome:
        """Connect and return ``welcome``; raise the server's error or ``HttpError``."""
        ws, welcome = await self._connect()
        self._ws = ws
        self.connected.set()
        self._task = asyncio.create_task(self._run(), name="tavkit-signaling")
        return welcome

    def set_token(self, token: str) -> None:
        """Resume with ``token`` from now on (the one a ``renewed`` frame carries)."""
        self._subprotocols[1] = Subprotocol(_TOKEN_PREFIX + quote(token, safe=""))

    async def send(self, message: ClientMessage) -> None:
        """Send a frame now, or queue it until the socket is back."""
        if isinstance(message, SignalTo):
            if message.id is None:
                self._signal_n += 1
                message = replace(message, id=f"sig-{self._signal_n}")
            text = encode(message)
            self._signals[str(message.id)] = (text, 1)
            while len(self._signals) > _SIGNALS_KEPT:
                self._signals.popitem(last=False)
        else:
            text = encode(message)
        await self._send_text(text)

    async def _send_text(self, text: str) -> None:
        ws = self._ws
        if ws is not None and self.connected.is_set():
            try:
                await ws.send(text)
                return
            except ConnectionClosed:
                pass
        if not self._ended:
            self._outbox.append(text)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake, as a network failure would."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def aclose(self) -> None:
        """Stop resuming and close the socket (without ``leave``)."""
        self._ended = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for retry in list(self._retries):
            retry.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
            self._ws = None
        self.connected.clear()

    async def _connect(self) -> tuple[ClientConnection, Welcome]:
        try:
            ws = await connect(
                self._url,
                subprotocols=self._subprotocols,
                logger=_WIRE_LOG,
                open_timeout=self._open_timeout,
                ping_interval=self._interval,
                ping_timeout=self._interval * 2,
                close_timeout=2.0,
                max_size=MAX_FRAME_BYTES * 4,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise HttpError(HttpCode.NETWORK, f"signaling socket: {exc!r}") from exc
        self._on_phase("socket-open")
        try:
            async with asyncio.timeout(self._open_timeout):
                first = parse_server_frame(await ws.recv())
        except (TimeoutError, ConnectionClosed, FrameError) as exc:
            await ws.close()
            raise HttpError(HttpCode.NETWORK, f"no welcome on the socket: {exc!r}") from exc
        if isinstance(first, ErrorFrame):
            await ws.close()
            raise _frame_error(first)
        if not isinstance(first, Welcome):
            await ws.close()
            raise ServerError(ServerCode.INVALID_PARAMETER, f"expected welcome, got {first.type}")
        self._on_phase("welcome")
        return ws, first

    async def _run(self) -> None:
        # A connection that stayed up for a moment (:data:`_STABLE_AFTER`) earns a fresh
        # allowance to resume, so a network that keeps dropping (outages seconds apart)
        # is ridden out each time; one the server drops at once (welcome, then a close)
        # does not, and the next resume waits longer: a server that keeps doing so ends
        # the socket, not a loop.
        loop = asyncio.get_running_loop()
        deadline = -math.inf
        delay = 0.0
        while True:
            ws = self._ws
            assert ws is not None
            up_since = loop.time()
            await self._read(ws)
            self.connected.clear()
            code = ws.close_code
            if code in FINAL_CLOSE_CODES:
                self._end(code, None if code == CloseCode.NORMAL else _close_error(code))
                return
            logger.info("signaling socket dropped (close code %s); resuming", code)
            now = loop.time()
            if now - up_since >= _STABLE_AFTER or deadline == -math.inf:
                deadline, delay = now + self._resume_within, 0.0
            else:  # dropped again soon after a resume
                delay = min(max(delay * 2, 0.1), _MAX_BACKOFF)
                await asyncio.sleep(min(delay, max(deadline - now, 0.0)))
            if not await self._resume(deadline):
                return

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                try:
                    message = parse_server_frame(text)
                except FrameError as exc:
                    logger.warning("ignoring a server frame we cannot parse: %s", exc)
                    continue
                if isinstance(message, ErrorFrame) and self._send_again(message):
                    continue
                self._on_message(message)

    def _send_again(self, error: ErrorFrame) -> bool:
        """Send a ``signal`` the busy server refused again; False if ``error`` is not that."""
        kept = self._signals.get(error.ref) if error.ref is not None else None
        busy = error.module == "server" and error.error_code == ServerCode.INTERNAL
        if kept is None or not busy or self._ended:
            return False
        text, tries = kept
        if tries >= SIGNAL_TRIES:
            del self._signals[str(error.ref)]
            return False
        self._signals[str(error.ref)] = (text, tries + 1)

        async def later() -> None:
            await asyncio.sleep(random.uniform(*SIGNAL_PAUSE))
            await self._send_text(text)

        task = asyncio.create_task(later(), name="tavkit-signal-again")
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)
        logger.debug("signal %s refused by a busy server: sending it again", error.ref)
        return True

    async def _resume(self, deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        delay = 0.1
        last: TAvKitError | None = None
        while loop.time() < deadline:
            try:
                ws, welcome = await self._connect()
            except HttpError as exc:
                last = exc
            except TAvKitError as exc:
                if _transient(exc):  # e.g. its event bus (Redis) is away: try again
                    last = exc
                else:  # the server refused the token: membership is gone
                    self._end(None, exc)
                    return False
            else:
                self._ws = ws
                self.resumes += 1
                self.connected.set()
                self._on_message(welcome)
                await self._flush(ws)
                return True
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.0)))
            delay = min(delay * 2, _MAX_BACKOFF)
        self._end(None, last or HttpError(HttpCode.NETWORK, "signaling socket lost"))
        return False

    async def _flush(self, ws: ClientConnection) -> None:
        while self._outbox:
            text = self._outbox.popleft()
            try:
                await ws.send(text)
            except ConnectionClosed:
                self._outbox.appendleft(text)
                return

    def _end(self, code: int | None, error: TAvKitError | None) -> None:
        if not self._ended:
            self._ended = True
            self._on_end(code, error)


def _transient(error: TAvKitError) -> bool:
    """Whether a server's refusal of a resume may pass: its server error (10000, as
    when its event bus is unreachable), not a verdict on the token or the membership."""
    return isinstance(error, ServerError) and error.code is ServerCode.INTERNAL


def _frame_error(frame: ErrorFrame) -> TAvKitError:
    try:
        return frame.to_error()
    except ValueError:
        return ServerError(ServerCode.INTERNAL, frame.error_msg)


def _close_error(code: int) -> TAvKitError:
    if code == CloseCode.ROOM_CLOSED:
        return ServerError(ServerCode.ROOM_CLOSED, "the room was closed")
    if code == CloseCode.UNAUTHORISED:
        return ServerError(ServerCode.UNAUTHORISED, "the socket token was refused")
    reason = _CLOSE_REASONS.get(code, "")
    return ServerError(ServerCode.USER_EXITED, f"left the room: {reason or f'close {code}'}")
