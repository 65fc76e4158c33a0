"""The signaling socket ``GET /v1/ws``: one :class:`SignalingConnection` per WebSocket.

A socket's life (``docs/protocol.md`` section 2)::

    accept -- token + membership --+-- refused: error 10005, close 4401
                                   +-- subscribe session:{uuid}, send welcome, then
                                         reader  frames in: size, rate, touch, parse, act
                                         pump    bus events -> frames (and our own fate)
                                         writer  the only sender, through a bounded queue

Members talk to each other only through the bus: a ``signal`` frame becomes a
``signal`` event on the session's channel and the addressee's socket, wherever it
runs, turns it back into a frame. So replicas sharing a Redis bus relay signals
between each other without knowing about each other.

Closing the socket does not take the member out of the room: only ``leave``, the REST
``exit`` or the heartbeat timeout do. A client that reconnects with the same token
in time resumes its membership (``welcome.resumed``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.protocol import (
    MAX_FRAME_BYTES,
    ChatMessage,
    ClientMessage,
    CloseCode,
    ErrorFrame,
    FrameError,
    Leave,
    Member,
    MemberJoined,
    MemberLeft,
    MemberState,
    MessageFrom,
    Ping,
    Pong,
    Removed,
    Replaced,
    RoomClosed,
    SendMessage,
    ServerMessage,
    SignalFrom,
    SignalTo,
    State,
    Sync,
    Synced,
    TokenBucket,
    Welcome,
    encode,
    parse_chat_message,
    parse_client_frame,
    parse_signal_data,
)
from tavkit.server.bus import session_channel
from tavkit.server.context import ServerContext
from tavkit.server.ice import filter_signal
from tavkit.server.im import MESSAGE_RATE, message_service
from tavkit.server.metrics import Metrics, metrics_of
from tavkit.server.rooms import recorder_id
from tavkit.server.tokens import SocketClaims, verify

__all__ = ["SignalingConnection", "SocketRegistry", "router"]

logger = logging.getLogger(__name__)

Event = dict[str, Any]

# Timeouts
SEND_TIMEOUT: Final = 10.0
"""A frame the transport has not taken within this marks the client as stuck."""
CLOSE_TIMEOUT: Final = 2.0
"""How long sending the goodbye (an error, a close frame) may take."""
LEAVE_TIMEOUT: Final = 10.0
"""How long a closing socket waits for its member's `leave` to reach the database."""
LOST_GRACE: Final = 1.0
"""When the database says the connection is gone, wait this long for the bus to say why."""
ROOM_CLOSED_WAIT: Final = 1.0
"""After our own ``member-left closed``, wait this long for ``room-closed`` and its reason."""
# Limits
SEND_QUEUE: Final = 256
"""Frames waiting for a slow client; one more drops it (close 1013)."""
RATE: Final = 50.0
BURST: Final = 100.0
"""Inbound frames per second (sustained) and at once, per socket."""
RATE_ERROR_EVERY: Final = 1.0
"""At most one "rate limited" error a second, so a flood is not answered by a flood."""
TOUCH_EVERY: Final = 1.0
"""At most one heartbeat write a second per socket, however chatty it is."""
REMEMBER_FOR: Final = 3600.0
"""How long a connection whose socket ended still counts as having had one."""
SYNC_PAGE: Final = 100
SYNC_HEADROOM: Final = 64
"""A ``sync`` reply goes out a page at a time, each once the queue has room for it and
this many live frames besides, so a long history cannot overflow the send queue."""
HELD_MAX: Final = 4 * SEND_QUEUE
"""Live messages held back while a ``sync`` reply is being sent; past this, resync (1011)."""

router = APIRouter()


@router.websocket("/v1/ws")
async def signaling_socket(websocket: WebSocket) -> None:
    """The signaling socket; ``?token=`` is the ``socketToken`` from ``enter``."""
    ctx: ServerContext = websocket.app.state.tavkit
    registry = _registry_of(websocket.app)
    metrics = metrics_of(websocket.app)
    await websocket.accept()
    claims = await _authenticate(websocket, ctx, registry, metrics)
    if claims is not None:
        await SignalingConnection(websocket, ctx, registry, claims, metrics=metrics).run()


class SocketRegistry:
    """This process's sockets by connection id, and which connections have had one.

    It answers ``welcome.resumed``, lets a token past its first-connection expiry only
    for a connection that had a socket, and closes a half-open older socket when its
    connection resumes on a new one. It is per process: with several replicas a
    resume landing on another replica after the token expired is refused (4401) and
    the client enters again.
    """

    def __init__(
        self, *, remember_for: float = REMEMBER_FOR, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._remember_for = remember_for
        self._clock = clock
        self._live: dict[str, SignalingConnection] = {}
        self._ended: dict[str, float] = {}  # connection id -> when its last socket ended

    def had_socket(self, connection_id: str) -> bool:
        """Whether ``connection_id`` has (or recently had) a socket here."""
        self._forget_old()
        return connection_id in self._live or connection_id in self._ended

    def is_live(self, connection_id: str) -> bool:
        """Whether ``connection_id`` has a socket here now (subscribed to its session)."""
        return connection_id in self._live

    def attach(self, socket: SignalingConnection) -> tuple[bool, SignalingConnection | None]:
        """Register ``socket``; return (resumed, the socket it takes over from, if any)."""
        resumed = self.had_socket(socket.connection_id)
        previous = self._live.get(socket.connection_id)
        self._live[socket.connection_id] = socket
        return resumed, previous

    def detach(self, socket: SignalingConnection) -> None:
        """Forget ``socket`` as live, remembering that its connection had one."""
        if self._live.get(socket.connection_id) is socket:
            del self._live[socket.connection_id]
        self._ended.pop(socket.connection_id, None)  # re-insert: keep the dict in time order
        self._ended[socket.connection_id] = self._clock()

    def _forget_old(self) -> None:
        cutoff = self._clock() - self._remember_for
        while self._ended:
            connection_id, ended = next(iter(self._ended.items()))
            if ended >= cutoff:
                break
            del self._ended[connection_id]


@dataclass(frozen=True)
class _Close:
    """The writer's last item: close the socket with ``code``."""

    code: int
    reason: str


class SignalingConnection:
    """One authenticated socket: relays its member's frames and its session's events."""

    def __init__(
        self,
        websocket: WebSocket,
        ctx: ServerContext,
        registry: SocketRegistry,
        claims: SocketClaims,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.room_uuid = claims.room_uuid
        self.user_id = claims.user_id
        self.connection_id = claims.connection_id
        self._ws = websocket
        self._ctx = ctx
        self._settings = ctx.settings
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._channel = session_channel(claims.room_uuid)
        self._tag = f"socket({claims.user_id}/{claims.connection_id[:8]})"
        self._outbox: asyncio.Queue[str | _Close] = asyncio.Queue(SEND_QUEUE)
        self._writer: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._close_code: int = CloseCode.SERVER_ERROR
        self._bucket = TokenBucket(RATE, BURST, clock=clock)
        self._touch_every = min(TOUCH_EVERY, self._settings.heartbeat_timeout / 4)
        self._last_touch = -math.inf
        self._last_rate_error = -math.inf
        self._others: dict[str, float] = {}  # the other members: userId -> joinedAt
        self._room_closing = False
        self._leaving: asyncio.Task[None] | None = None  # a `leave` being carried out
        self._im = message_service(websocket.app)
        # While a sync reply is being sent, live messages wait in _held; afterwards those
        # the reply already carried, seq in (after, through], are not sent again.
        self._syncing = False
        self._dequeued = asyncio.Event()  # the writer took a frame: a sync may send more
        self._held: list[ChatMessage] = []
        self._synced_range = (0, 0)

    # -- lifetime ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the socket until it closes; every task it starts ends with it."""
        resumed, previous = self._registry.attach(self)
        if previous is not None:
            previous._log(logging.INFO, "superseded by a newer socket of the same connection")
            previous.close(CloseCode.REPLACED, "superseded by a newer socket")
        self._log(logging.INFO, "open (resumed=%s)", resumed)
        try:
            async with self._ctx.bus.subscribe(self._channel) as events:
                # Subscribed before the snapshot, so no change falls between the two.
                try:
                    members = await self._ctx.rooms.members(self.room_uuid)
                    last_seq = await self._im.last_seq(self.room_uuid)
                except TAvKitError as exc:
                    await _refuse(self._ws, exc, CloseCode.SERVER_ERROR, self._metrics)
                    return
                others = [m for m in members if m.user_id != self.user_id]
                self._others = {m.user_id: m.joined_at for m in others}
                self.send(
                    Welcome(
                        room_uuid=str(self.room_uuid),
                        user_id=self.user_id,
                        connection_id=self.connection_id,
                        members=tuple(
                            Member(m.user_id, m.joined_at, m.muted, m.camera) for m in others
                        ),
                        heartbeat_interval=self._settings.heartbeat_interval,
                        heartbeat_timeout=self._settings.heartbeat_timeout,
                        resumed=resumed,
                        last_seq=last_seq,
                    )
                )
                # The recorder offers to a member once its socket can hear the offer.
                opened = {
                    "kind": "socket-open",
                    "userId": self.user_id,
                    "connectionId": self.connection_id,
                }
                await self._ctx.bus.publish(self._channel, opened)
                await self._serve(events)
        finally:
            if self._leaving is not None:
                with suppress(TimeoutError, TAvKitError):
                    async with asyncio.timeout(LEAVE_TIMEOUT):
                        await asyncio.shield(self._leaving)
            self._registry.detach(self)
            self._log(logging.INFO, "closed (%d)", self._close_code)

    async def _serve(self, events: AsyncIterable[Event]) -> None:
        self._writer = writer = asyncio.create_task(self._write(), name=f"{self._tag} writer")
        reader = asyncio.create_task(self._read(), name=f"{self._tag} reader")
        pump = asyncio.create_task(self._pump(events), name=f"{self._tag} pump")
        tasks = (reader, pump, writer)
        try:
            pending: set[asyncio.Task[None]] = set(tasks)
            while writer in pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and (exc := task.exception()) is not None:
                        self._log(logging.ERROR, "%s failed", task.get_name(), exc_info=exc)
                    # Reader and pump only stop after asking to close; this is a backstop.
                    self.close(CloseCode.SERVER_ERROR, "server error")
        finally:
            for task in tasks:
                task.cancel()
            with suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await asyncio.gather(*tasks, return_exceptions=True)
            await self._close_socket(self._close_code, "")

    def close(self, code: int, reason: str, frame: ServerMessage | None = None) -> None:
        """Send ``frame`` if given, then close with ``code``. The first call wins."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._close_code = code
        try:
            if frame is not None:
                _count_out(self._metrics, frame)
                self._outbox.put_nowait(encode(frame))
            self._outbox.put_nowait(_Close(code, reason))
        except asyncio.QueueFull:
            # The client is not reading: a goodbye behind its backlog would never arrive.
            if self._writer is not None:
                self._writer.cancel()

    def send(self, msg: ServerMessage) -> None:
        """Queue ``msg`` for the client; a client this far behind is dropped (1013)."""
        if self._closing.is_set():
            return
        _count_out(self._metrics, msg)
        try:
            self._outbox.put_nowait(encode(msg))
        except asyncio.QueueFull:
            self._log(logging.WARNING, "%d frames unsent: dropping a slow client", SEND_QUEUE)
            self.close(CloseCode.TRY_AGAIN_LATER, "too slow")

    # -- the three tasks -----------------------------------------------------------------

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()  # the supervisor cancels this wait
            self._dequeued.set()
            if isinstance(item, _Close):
                await self._close_socket(item.code, item.reason)
                return
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self._ws.send_text(item)
            except TimeoutError:
                self._log(logging.WARNING, "a frame waited %g s to be sent: dropping", SEND_TIMEOUT)
                self._closing.set()
                self._close_code = CloseCode.TRY_AGAIN_LATER
                return
            except (WebSocketDisconnect, RuntimeError, OSError):
                self._closing.set()  # the client is gone
                return

    async def _read(self) -> None:
        # The idle timeout is a safety net: the sweeper normally ends a silent member
        # first and the pump closes the socket when it hears of it.
        idle = self._settings.heartbeat_timeout
        while not self._closing.is_set():
            try:
                async with asyncio.timeout(idle):
                    message = await self._ws.receive()
            except TimeoutError:
                if not await self._still_member():
                    await self._membership_lost()
                continue
            if message["type"] == "websocket.disconnect":
                self._close_code = int(message.get("code") or 1006)
                self._closing.set()
                if self._writer is not None:
                    self._writer.cancel()
                return
            await self._on_frame(message.get("text"), message.get("bytes"))

    async def _pump(self, events: AsyncIterable[Event]) -> None:
        iterator = aiter(events)
        while not self._closing.is_set():
            try:
                if self._room_closing:
                    async with asyncio.timeout(ROOM_CLOSED_WAIT):
                        event = await anext(iterator)
                else:
                    event = await anext(iterator)  # the supervisor cancels this wait
            except TimeoutError:
                self.close(CloseCode.ROOM_CLOSED, "room closed", RoomClosed("closed"))
                return
            except (TAvKitError, StopAsyncIteration) as exc:
                self._log(logging.WARNING, "session events lost (%r): closing to resync", exc)
                self.close(CloseCode.SERVER_ERROR, "events lost; reconnect")
                return
            self._on_event(event)

    # -- inbound frames ------------------------------------------------------------------

    async def _on_frame(self, text: str | None, data: bytes | None) -> None:
        raw: str | bytes | None = text if text is not None else data
        if raw is None:
            return
        if _over_limit(raw, MAX_FRAME_BYTES):
            self._log(logging.INFO, "frame over %d bytes: closing", MAX_FRAME_BYTES)
            self.close(CloseCode.TOO_BIG, "frame too big")
            return
        if not self._bucket.allow():
            self._count_in("rate-limited")
            now = self._clock()
            if now - self._last_rate_error >= RATE_ERROR_EVERY:
                self._last_rate_error = now
                limited = ServerError(
                    ServerCode.INVALID_PARAMETER,
                    f"rate limited: over {RATE:g} frames/s; frames are being dropped",
                )
                self.send(ErrorFrame.from_error(limited))
            return
        if not await self._touch():
            return
        try:
            msg = parse_client_frame(raw)
        except FrameError as exc:
            self._count_in("invalid")
            self.send(ErrorFrame.from_error(exc))
            return
        self._count_in(msg.type)
        try:
            await self._on_message(msg)
        except TAvKitError as exc:
            self.send(ErrorFrame.from_error(exc, msg.id))

    async def _on_message(self, msg: ClientMessage) -> None:
        rooms = self._ctx.rooms
        if isinstance(msg, SignalTo):
            await self._relay(msg)
        elif isinstance(msg, State):
            await rooms.set_state(self.room_uuid, self.user_id, muted=msg.muted, camera=msg.camera)
        elif isinstance(msg, Ping):
            self.send(Pong(msg.t))
        elif isinstance(msg, SendMessage):
            await self._post(msg)
        elif isinstance(msg, Sync):
            await self._sync(msg)
        elif isinstance(msg, Leave):
            # A client may drop its end right after `leave` (a closing tab does); the
            # writer then fails and the supervisor cancels this reader. The exit must
            # still happen, so it runs as a task of its own that run() waits for.
            self._leaving = asyncio.create_task(
                rooms.leave_connection(self.room_uuid, self.user_id, self.connection_id, "exit"),
                name=f"{self._tag} leave",
            )
            try:
                await asyncio.shield(self._leaving)
            except TAvKitError as exc:
                self.send(ErrorFrame.from_error(exc, msg.id))
            self.close(CloseCode.NORMAL, "left")

    async def _relay(self, msg: SignalTo) -> None:
        if msg.to == self.user_id:
            raise FrameError(ServerCode.INVALID_PARAMETER, "signal.to: that is you", ref=msg.id)
        hidden = msg.to == recorder_id(self.room_uuid)  # never a member, always addressable
        if not hidden and msg.to not in self._others and not await self._is_member(msg.to):
            raise FrameError(
                ServerCode.INVALID_PARAMETER,
                f"signal.to: {msg.to} is not a member of this session",
                ref=msg.id,
            )
        data = filter_signal(msg.data, self._settings.ice_allowed_networks)
        if data is None:
            self._log(logging.DEBUG, "dropped a candidate outside the allowed networks")
            return
        event = {"kind": "signal", "from": self.user_id, "to": msg.to, "data": data.to_wire()}
        await self._ctx.bus.publish(self._channel, event)

    # -- in-call messages (section 5) --------------------------------------------------------

    async def _post(self, msg: SendMessage) -> None:
        """Store and fan out; a resend (or a message the bus refused) goes back to us alone."""
        if not self._im.allow(self.room_uuid, self.user_id):
            self._count_in("message-rate-limited")
            raise FrameError(
                ServerCode.INVALID_PARAMETER,
                f"message rate limited: over {MESSAGE_RATE:g} messages/s; not stored",
                ref=msg.id,
            )
        posted = await self._im.post(self.room_uuid, self.user_id, msg)
        if posted.duplicate or not posted.published:
            self.send(MessageFrom(posted.message))

    async def _sync(self, msg: Sync) -> None:
        """Send every stored message after ``msg.after`` in pages, then ``synced``."""
        self._syncing = True
        try:
            cursor = msg.after
            while True:
                if not await self._room_for(SYNC_PAGE):
                    return
                try:
                    page = await self._im.history(self.room_uuid, after=cursor, limit=SYNC_PAGE)
                except TAvKitError as exc:
                    # An error frame would leave the client waiting for a `synced` that never
                    # comes, its gap unfilled; reconnecting makes it ask again (as for 1011).
                    self._log(logging.WARNING, "sync after %d failed: %s", cursor, exc)
                    self.close(CloseCode.SERVER_ERROR, "sync failed; reconnect")
                    return
                for message in page.messages:
                    self.send(MessageFrom(message))
                if page.messages:
                    cursor = page.messages[-1].seq
                    self._synced_range = (msg.after, cursor)
                if not page.has_more:
                    break
            self.send(Synced(cursor if cursor > msg.after else min(msg.after, page.last_seq)))
        finally:
            self._syncing = False
            held, self._held = self._held, []
            for message in held:
                self._live_message(message)

    async def _room_for(self, frames: int) -> bool:
        """Wait until the send queue can take ``frames`` more; False once the socket closes."""
        limit = SEND_QUEUE - frames - SYNC_HEADROOM
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                while self._outbox.qsize() > limit and not self._closing.is_set():
                    self._dequeued.clear()
                    await self._dequeued.wait()
        except TimeoutError:
            self._log(logging.WARNING, "a sync reply waited %g s for room: dropping", SEND_TIMEOUT)
            self.close(CloseCode.TRY_AGAIN_LATER, "too slow")
        return not self._closing.is_set()

    def _live_message(self, message: ChatMessage) -> None:
        if self._syncing:
            if len(self._held) >= HELD_MAX:
                self.close(CloseCode.SERVER_ERROR, "messages lost; reconnect")
            self._held.append(message)
            return
        after, through = self._synced_range
        if not after < message.seq <= through:
            self.send(MessageFrom(message))

    async def _is_member(self, user_id: str) -> bool:
        """Ask the database: the bus may not have told us of a member that just joined."""
        members = await self._ctx.rooms.members(self.room_uuid)
        return any(m.user_id == user_id for m in members)

    async def _still_member(self) -> bool:
        """Whether the room still counts this connection (True if the database cannot say)."""
        try:
            return await self._ctx.rooms.is_member(self.room_uuid, self.user_id, self.connection_id)
        except TAvKitError as exc:
            self._log(logging.WARNING, "membership not checked: %s", exc)
            return True

    async def _touch(self) -> bool:
        """Count the frame as a heartbeat (throttled); False once the membership is gone."""
        now = self._clock()
        if now - self._last_touch < self._touch_every:
            return True
        self._last_touch = now
        try:
            live = await self._ctx.rooms.touch(self.room_uuid, self.user_id, self.connection_id)
        except TAvKitError as exc:
            self._log(logging.WARNING, "heartbeat not recorded: %s", exc)
            return True
        if not live:
            await self._membership_lost()
        return live

    async def _membership_lost(self) -> None:
        """The room no longer counts this connection; give the bus a moment to say why."""
        with suppress(TimeoutError):
            async with asyncio.timeout(LOST_GRACE):
                await self._closing.wait()
        self.close(CloseCode.REMOVED, "removed", Removed("timeout"))

    # -- bus events ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        kind = event.get("kind")
        if kind == "signal":
            sender = event["from"]
            if event["to"] == self.user_id and sender != self.user_id:
                self.send(SignalFrom(sender, parse_signal_data(event["data"])))
        elif kind == "member-joined":
            member = event["member"]
            user_id, joined_at = member["userId"], member["joinedAt"]
            if user_id == self.user_id or self._others.get(user_id) == joined_at:
                return  # ourselves, or already in the welcome's snapshot
            self._others[user_id] = joined_at
            self.send(MemberJoined(Member(user_id, joined_at, member["muted"], member["camera"])))
        elif kind == "member-left":
            if event.get("connectionId") == self.connection_id:
                self._own_leave(event["reason"])
            elif event["userId"] != self.user_id:
                self._others.pop(event["userId"], None)
                self.send(MemberLeft(event["userId"], event["reason"]))
        elif kind == "member-state":
            if event["userId"] != self.user_id:
                self.send(MemberState(event["userId"], event["muted"], event["camera"]))
        elif kind == "message":
            self._live_message(parse_chat_message(event["message"]))
        elif kind == "room-closed":
            reason = str(event.get("reason") or "closed")
            self.close(CloseCode.ROOM_CLOSED, "room closed", RoomClosed(reason))
        else:
            self._log(logging.DEBUG, "ignored bus event %r", kind)

    def _own_leave(self, reason: str) -> None:
        """Our own connection left the room: tell the client why and close."""
        if reason in ("replaced", "moved"):  # the user entered again, here or elsewhere
            self.close(CloseCode.REPLACED, "replaced", Replaced())
        elif reason in ("removed", "timeout"):
            self.close(CloseCode.REMOVED, reason, Removed(reason))
        elif reason == "closed":
            self._room_closing = True  # room-closed follows with the session's reason
        else:
            self.close(CloseCode.NORMAL, "left")

    # -- helpers ---------------------------------------------------------------------------

    def _count_in(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.socket_message("in", kind)

    async def _close_socket(self, code: int, reason: str) -> None:
        if WebSocketState.DISCONNECTED in (self._ws.application_state, self._ws.client_state):
            return
        with suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code, reason)

    def _log(
        self, level: int, msg: str, *args: object, exc_info: BaseException | None = None
    ) -> None:
        logger.log(level, f"{self._tag} {msg}", *args, exc_info=exc_info)


async def _authenticate(
    websocket: WebSocket, ctx: ServerContext, registry: SocketRegistry, metrics: Metrics | None
) -> SocketClaims | None:
    """The token's claims if it opens a socket now; otherwise refuse and return None."""
    token = websocket.query_params.get("token", "")
    try:
        try:
            claims = verify(ctx.socket_secret, token)
        except ServerError as exc:
            # Past its first-connection window a token still resumes a connection that
            # had a socket here, as long as the member is in the room (checked below).
            try:
                claims = verify(ctx.socket_secret, token, ignore_expiry=True)
            except ServerError:
                raise exc from None
            if not registry.had_socket(claims.connection_id):
                raise
        live = await ctx.rooms.is_member(claims.room_uuid, claims.user_id, claims.connection_id)
    except TAvKitError as exc:
        unauthorised = exc.code is ServerCode.UNAUTHORISED
        code = CloseCode.UNAUTHORISED if unauthorised else CloseCode.SERVER_ERROR
        await _refuse(websocket, exc, code, metrics)
        return None
    if not live:
        gone = ServerError(
            ServerCode.UNAUTHORISED, "socket token is for a connection no longer in the room"
        )
        await _refuse(websocket, gone, CloseCode.UNAUTHORISED, metrics)
        return None
    return claims


async def _refuse(
    websocket: WebSocket, exc: TAvKitError, code: int, metrics: Metrics | None
) -> None:
    """Send one ``error`` and close with ``code``, all within bounded time."""
    refusal = ErrorFrame.from_error(exc)
    _count_out(metrics, refusal)
    with suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.send_text(encode(refusal))
            await websocket.close(code, exc.message[:120])


def _count_out(metrics: Metrics | None, msg: ServerMessage) -> None:
    """Count a frame sent (and, for an ``error``, the seed error it carries)."""
    if metrics is None:
        return
    metrics.socket_message("out", msg.type)
    if isinstance(msg, ErrorFrame):
        metrics.error(msg.module, msg.error_code)


def _over_limit(raw: str | bytes, limit: int) -> bool:
    """Whether a frame is over ``limit`` UTF-8 bytes, encoding only when it must."""
    if isinstance(raw, bytes) or len(raw) > limit:
        return len(raw) > limit
    if len(raw) * 4 <= limit:  # no character takes more than four bytes
        return False
    return len(raw.encode("utf-8", "surrogatepass")) > limit


def _registry_of(app: Any) -> SocketRegistry:
    """The app's registry, made on first use (the app state, not a module global)."""
    registry = getattr(app.state, "tavkit_sockets", None)
    if registry is None:
        registry = app.state.tavkit_sockets = SocketRegistry()
    assert isinstance(registry, SocketRegistry)
    return registry
