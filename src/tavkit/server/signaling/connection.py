"""The signaling socket ``GET /v1/ws``: one :class:`SignalingConnection` per WebSocket.

A socket's life (``docs/protocol.md`` section 2)::

    accept -- token + membership --+-- refused: error 10005, close 4401
                                   +-- subscribe session:{uuid} (bus away: error, 1011),
                                       send welcome, publish socket-open, then
                                         reader  frames in: size, rate, touch, parse, act
                                         pump    bus events -> frames (and our own fate)
                                         writer  the only sender, through a bounded queue

Members talk to each other only through the bus: a ``signal`` frame becomes a
``signal`` event on the session's channel and the addressee's socket, wherever it
runs, turns it back into a frame. So replicas sharing a Redis bus relay signals
between each other without knowing about each other.

Closing the socket does not take the member out of the room: only ``leave``, the REST
``exit``, the heartbeat timeout or credentials left unrenewed past their grace
(:mod:`~tavkit.server.signaling.renewal`) do. A client that reconnects with the same token
in time resumes its membership (``welcome.resumed``), on any replica: the member's row
records that its connection had a socket, and a socket that hears a newer socket of its
own connection open (``socket-open``, whichever replica holds it) closes with 4001.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import AsyncIterable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tavkit.auth import Privilege
from tavkit.errors import ServerCode, TAvKitError
from tavkit.protocol import (
    MAX_FRAME_BYTES,
    ChatMessage,
    ClientMessage,
    CloseCode,
    DescriptionData,
    ErrorFrame,
    FrameError,
    Leave,
    LeaveReason,
    MediaLayers,
    MediaMode,
    MediaModeChanged,
    MediaSignalTo,
    MemberJoined,
    MemberLeft,
    MemberState,
    MessageFrom,
    Ping,
    Pong,
    Removed,
    Renew,
    Replaced,
    RoomClosed,
    SendMessage,
    ServerMessage,
    SignalFrom,
    SignalTo,
    State,
    Sync,
    Synced,
    Welcome,
    encode,
    parse_client_frame,
    silence_after,
)
from tavkit.protocol.sdp import refusal, slides_mids
from tavkit.server.bus import session_channel
from tavkit.server.context import ServerContext
from tavkit.server.events import (
    Event,
    MediaModeEvent,
    MemberJoinedEvent,
    MemberLeftEvent,
    MemberLinkEvent,
    MemberStateEvent,
    MessageEvent,
    RoomClosedEvent,
    SignalEvent,
    SocketOpenEvent,
)
from tavkit.server.ice import filter_signal
from tavkit.server.im.service import MESSAGE_RATE
from tavkit.server.im.sync import Overflow, SyncGate
from tavkit.server.mailbox import Flag, Mailbox
from tavkit.server.metrics import Metrics
from tavkit.server.rooms.service import recorder_id
from tavkit.server.sfu import MESH_SIGNAL_REFUSED
from tavkit.server.signaling.coalesce import Coalescer
from tavkit.server.signaling.inbound import InboundScreen, Verdict
from tavkit.server.signaling.presence import OthersLinks, OwnLink
from tavkit.server.signaling.registry import SocketRegistry
from tavkit.server.signaling.renewal import ExpiryWatch, renew
from tavkit.server.signaling.shedding import shed_refusal
from tavkit.server.signaling.tokens import SocketClaims

__all__ = ["SignalingConnection", "count_out", "refuse"]

logger = logging.getLogger(__name__)

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
TOUCH_EVERY: Final = 1.0
"""At most one heartbeat write a second per socket, however chatty it is."""
SYNC_PAGE: Final = 100
SYNC_HEADROOM: Final = 64
"""A ``sync`` reply goes out a page at a time, each once the queue has room for it and
this many live frames besides, so a long history cannot overflow the send queue."""
_ENDED_FOR_GOOD: Final = frozenset(
    {
        CloseCode.NORMAL,
        CloseCode.REPLACED,
        CloseCode.REMOVED,
        CloseCode.ROOM_CLOSED,
        CloseCode.UNAUTHORISED,
    }
)
"""Close codes after which the member will not resume this socket: no ``member-link``."""
HELD_MAX: Final = 4 * SEND_QUEUE
"""Live messages held back while a ``sync`` reply is being sent; past this, resync (1011)."""


@dataclass(frozen=True)
class _Close:
    """The writer's last item: close the socket with ``code``."""

    code: int
    reason: str


class SignalingConnection:
    """One authenticated socket: relays its member's frames and its session's events."""

    __slots__ = (
        "_announced",
        "_channel",
        "_claims",
        "_clock",
        "_close_code",
        "_closed_by_server",
        "_closing",
        "_ctx",
        "_dequeued",
        "_expiry",
        "_gate",
        "_heard_own_open",
        "_im",
        "_last_touch",
        "_leaving",
        "_links",
        "_media_mode",
        "_metrics",
        "_others",
        "_outbox",
        "_own_link",
        "_registry",
        "_resumed",
        "_room_closing",
        "_screen",
        "_screen_mids",
        "_settings",
        "_states",
        "_tag",
        "_touch_every",
        "_writer",
        "_ws",
        "connection_id",
        "privileges",
        "room_uuid",
        "socket_id",
        "user_id",
    )

    def __init__(
        self,
        websocket: WebSocket,
        ctx: ServerContext,
        registry: SocketRegistry[SignalingConnection],
        claims: SocketClaims,
        *,
        resumed: bool = False,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.room_uuid = claims.room_uuid
        self.user_id = claims.user_id
        self.connection_id = claims.connection_id
        self.privileges = claims.privileges
        self._claims = claims  # replaced by each accepted `renew`
        self._ws = websocket
        self._ctx = ctx
        self._settings = ctx.settings
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._channel = session_channel(claims.room_uuid)
        self._tag = f"socket({claims.user_id}/{claims.connection_id[:8]})"
        self._outbox: Mailbox[str | _Close] = Mailbox(SEND_QUEUE)
        self._writer: asyncio.Task[None] | None = None
        self._closing = Flag()
        self._close_code: int = CloseCode.SERVER_ERROR
        self._screen = InboundScreen(clock)
        self._states: Coalescer[State] = Coalescer(clock)  # one state write per 200 ms
        self._touch_every = min(TOUCH_EVERY, self._settings.heartbeat_timeout / 4)
        self._last_touch = -math.inf
        self._others: dict[str, float] = {}  # the other members: userId -> joinedAt
        # userId -> the mids its descriptions to us marked as screens: our descriptions
        # to it are checked with those sections as screens, marked or not.
        self._screen_mids: dict[str, set[str]] = {}
        self._links = OthersLinks()  # which of them our client was told are reconnecting
        self._own_link = OwnLink(
            silence_after(self._settings.heartbeat_interval, self._settings.heartbeat_timeout),
            clock,
        )
        self._resumed = resumed
        # What this member's client was told (welcome, then media-mode): its mesh signals
        # are refused only once it knows, so one already in flight at a switch is relayed.
        self._media_mode: MediaMode = "mesh"
        self.socket_id = secrets.token_hex(8)
        """This socket's name in its ``socket-open`` event (one connection may have several)."""
        self._heard_own_open = False  # our socket-open came back from the bus
        self._announced = False  # our socket-open went out: the others may count on us
        self._room_closing = False
        self._closed_by_server = False
        self._leaving: asyncio.Task[None] | None = None  # a `leave` being carried out
        self._im = ctx.messages
        # Live messages versus sync replies (held during a reply, not sent twice after).
        self._gate = SyncGate(held_max=HELD_MAX)
        self._dequeued = Flag()  # the writer took a frame: a sync may send more
        self._expiry = ExpiryWatch(
            grace=self._settings.renew_grace,
            send=self.send,
            expire=self._expired,
            name=self._tag,
        )

    # -- lifetime ------------------------------------------------------------------------

    @property
    def announced(self) -> bool:
        """Whether our ``socket-open`` went out (we are subscribed: a signal sent now is heard)."""
        return self._announced

    async def run(self) -> None:
        """Serve the socket until it closes; every task it starts ends with it."""
        self._registry.attach(self)
        self._log(logging.INFO, "open (resumed=%s)", self._resumed)
        try:
            # A plain `async with` (no AsyncExitStack: its deque would be held, empty,
            # for the socket's whole life); a refusal comes once unsubscribed.
            async with self._ctx.bus.subscribe(self._channel) as events:
                # Subscribed before the snapshot, so no change falls between the two.
                await self._welcome()
                # After the welcome, in the channel's order on every replica: the
                # recorder offers to a member once its socket can hear the offer, and
                # an older socket of this connection, wherever it is, steps down.
                opened = SocketOpenEvent(self.user_id, self.connection_id, self.socket_id)
                await self._ctx.bus.publish(self._channel, opened)
                self._announced = True  # the registry's listening() counts on it
                if self._resumed:  # the others may have been told we were reconnecting
                    await self._publish_link(up=True)
                await self._join_sfu()
                await self._serve(events)
        except TAvKitError as exc:
            if self._announced:
                raise
            # Subscribing, the snapshot or socket-open: the database or the bus (Redis)
            # is away.
            self._log(logging.WARNING, "refused: %s", exc)
            await refuse(self._ws, exc, CloseCode.SERVER_ERROR, self._metrics)
        finally:
            if self._leaving is not None:
                with suppress(TimeoutError, TAvKitError):
                    async with asyncio.timeout(LEAVE_TIMEOUT):
                        await asyncio.shield(self._leaving)
            else:
                await self._last_state()
            newest = self._registry.detach(self)
            if newest and self._announced and self._dropped():
                await self._publish_link(up=False)
            self._log(logging.INFO, "closed (%d)", self._close_code)

    async def _welcome(self) -> None:
        """Read the snapshot, mark the connection as having had a socket, queue ``welcome``.

        The mark (a write) and the snapshot's two reads run at once, not in turn: each is
        a round trip to the database's thread (or server), and a join waits for the
        slowest. The mark is still written before ``welcome`` goes out, so a socket
        opened once the client has its ``welcome`` resumes (``resumed`` true).
        """
        marking = None if self._resumed else asyncio.ensure_future(self._mark_opened())
        reading = asyncio.ensure_future(self._im.last_seq(self.room_uuid))
        try:
            members = await self._ctx.rooms.members(self.room_uuid)
            last_seq = await reading
        finally:
            if not reading.done():  # the members' read failed: the error is that one's
                reading.cancel()
            with suppress(asyncio.CancelledError, TAvKitError):
                await reading  # done by now; its own failure, if any, is retrieved
            if marking is not None:
                await marking
        others = [m for m in members if m.user_id != self.user_id]
        self._others = {m.user_id: m.joined_at for m in others}
        self._media_mode = await self._ctx.media_modes.mode_of(
            self._claims.sdk_app_id, self.room_uuid
        )
        self.send(
            Welcome(
                room_uuid=str(self.room_uuid),
                user_id=self.user_id,
                connection_id=self.connection_id,
                members=tuple(others),
                heartbeat_interval=self._settings.heartbeat_interval,
                heartbeat_timeout=self._settings.heartbeat_timeout,
                resumed=self._resumed,
                last_seq=last_seq,
                media_mode=self._media_mode,
            )
        )

    async def _mark_opened(self) -> None:
        """Record the connection's first socket, so it may resume on any replica.

        Written once per connection (a resume finds it set and skips this). A failure
        costs the client no call: it is logged, and only a resume that comes past the
        token's first-connection window would then be refused and enter again.
        """
        try:
            await self._ctx.rooms.socket_opened(self.room_uuid, self.user_id, self.connection_id)
        except TAvKitError as exc:
            self._log(logging.WARNING, "first socket not recorded: %s", exc)

    async def _serve(self, events: AsyncIterable[Event]) -> None:
        self._writer = writer = asyncio.create_task(self._write(), name=f"{self._tag} writer")
        reader = asyncio.create_task(self._read(), name=f"{self._tag} reader")
        pump = asyncio.create_task(self._pump(events), name=f"{self._tag} pump")
        tasks = (reader, pump, writer)
        self._expiry.watch(self._claims.credentials_expire_at)
        # Done callbacks rather than a loop over asyncio.wait(), whose waiter, sets and
        # callbacks would be held for the socket's whole life.
        written = Flag()

        def finished(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and (exc := task.exception()) is not None:
                self._log(logging.ERROR, "%s failed", task.get_name(), exc_info=exc)
            # Reader and pump only stop after asking to close; this is a backstop.
            self.close(CloseCode.SERVER_ERROR, "server error")
            if task is writer:
                written.set()

        for task in tasks:
            task.add_done_callback(finished)
        try:
            await written.wait()
        finally:
            await self._expiry.aclose()
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
        self._closed_by_server = True
        try:
            if frame is not None:
                count_out(self._metrics, frame)
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
        count_out(self._metrics, msg)
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
        # Waking early for a held state or the link's silence threshold does not restart
        # the idle wait: the membership is checked once the whole of it has passed.
        idle = self._settings.heartbeat_timeout
        link = self._own_link
        while not self._closing.is_set():
            await self._write_state(self._states.due())
            idle_in = max(0.0, link.heard_at + idle - self._clock())
            held = self._states.due_in()  # wake up for a held state, if there is one
            wait = min(idle_in, link.due_in(), math.inf if held is None else held)
            try:
                async with asyncio.timeout(wait):
                    message = await self._ws.receive()
            except TimeoutError:
                if link.check():
                    self._log(logging.INFO, "silent: the others see it reconnecting")
                    await self._publish_link(up=False)
                if self._clock() - link.heard_at >= idle:
                    link.heard_at = self._clock()  # the next check one idle period on
                    if not await self._still_member():
                        await self._membership_lost()
                continue
            if message["type"] == "websocket.disconnect":
                self._close_code = int(message.get("code") or 1006)
                self._closing.set()
                if self._writer is not None:
                    self._writer.cancel()
                return
            if link.heard():
                self._log(logging.INFO, "heard again after a silence")
                await self._publish_link(up=True)
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
            if isinstance(event, MediaModeEvent):  # awaited: later frames follow its frame
                await self._switch_media(event.media_mode)
                continue
            self._on_event(event)

    # -- inbound frames ------------------------------------------------------------------

    async def _on_frame(self, text: str | None, data: bytes | None) -> None:
        raw: str | bytes | None = text if text is not None else data
        if raw is None:
            return
        verdict = self._screen.check(raw)
        if verdict is Verdict.TOO_BIG:
            self._log(logging.INFO, "frame over %d bytes: closing", MAX_FRAME_BYTES)
            self.close(CloseCode.TOO_BIG, "frame too big")
            return
        if verdict is not Verdict.PASS:
            self._count_in("rate-limited")
            if verdict is Verdict.DROP_AND_WARN:
                self.send(ErrorFrame.from_error(self._screen.rate_error()))
            return
        if not await self._touch():
            return
        if isinstance(raw, str) and self._ctx.loop_lag.behind():
            refusal = shed_refusal(raw)  # the server is saturated: refuse, do not queue
            if refusal is not None:
                self._count_in("shed")
                self.send(refusal)
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
            if msg.screen and not self.privileges & Privilege.SEND_SUB:
                why = "state.screen: sharing a screen needs privilege SEND_SUB (64)"
                raise FrameError(ServerCode.INVALID_PARAMETER, why, ref=msg.id)
            await self._write_state(self._states.offer(msg))
        elif isinstance(msg, Ping):
            self.send(Pong(msg.t))
        elif isinstance(msg, SendMessage):
            await self._post(msg)
        elif isinstance(msg, Sync):
            await self._sync(msg)
        elif isinstance(msg, Renew):
            self._renew(msg)
        elif isinstance(msg, MediaSignalTo):
            if self._ctx.sfu is None or self._media_mode != "sfu":
                why = "media-signal: this room's media is a mesh (mediaMode mesh); use signal"
                raise FrameError(ServerCode.INVALID_PARAMETER, why, ref=msg.id)
            await self._ctx.sfu.media_signal(self.room_uuid, self, msg)
        elif isinstance(msg, MediaLayers):
            if self._ctx.sfu is None or self._media_mode != "sfu":
                why = "media-layers: this room's media is a mesh (mediaMode mesh)"
                raise FrameError(ServerCode.INVALID_PARAMETER, why, ref=msg.id)
            await self._ctx.sfu.set_layers(self.room_uuid, self, msg)
        elif isinstance(msg, Leave):
            # A client may drop its end right after `leave` (a closing tab does); the
            # writer then fails and the supervisor cancels this reader. The exit must
            # still happen, so it runs as a task of its own that run() waits for.
            self._leaving = asyncio.create_task(
                rooms.leave_connection(
                    self.room_uuid,
                    self.user_id,
                    self.connection_id,
                    "exit",
                    sdk_app_id=self._claims.sdk_app_id,
                ),
                name=f"{self._tag} leave",
            )
            try:
                await asyncio.shield(self._leaving)
            except TAvKitError as exc:
                self.send(ErrorFrame.from_error(exc, msg.id))
            self.close(CloseCode.NORMAL, "left")

    async def _join_sfu(self) -> None:
        """In an SFU room, join the member to the room's media (errors go to the member)."""
        if self._media_mode == "sfu":
            await self._open_sfu()

    async def _open_sfu(self) -> None:
        if self._ctx.sfu is None:
            return
        try:
            await self._ctx.sfu.member_opened(self.room_uuid, self)
        except TAvKitError as exc:
            self._log(logging.WARNING, "not joined to the SFU: %s", exc)
            self.send(ErrorFrame.from_error(exc))

    async def _switch_media(self, mode: MediaMode) -> None:
        """The ``auto`` session switched (:mod:`tavkit.server.sfu.modes`): join the member
        to the SFU first, then tell its client, whose ``media-signal publish`` is then
        taken at once. A welcome that already said so (the switch came before it) is
        not repeated. Until the frame is queued the member's mesh signals are relayed:
        its client cannot know yet, and a refusal would reach it before the news."""
        if mode == self._media_mode or self._ctx.sfu is None:
            return
        await self._open_sfu()
        self._media_mode = mode
        self._log(logging.INFO, "media mode now %s", mode)
        self.send(MediaModeChanged(mode))

    async def _relay(self, msg: SignalTo) -> None:
        if msg.to == self.user_id:
            raise FrameError(ServerCode.INVALID_PARAMETER, "signal.to: that is you", ref=msg.id)
        hidden = msg.to == recorder_id(self.room_uuid)  # never a member, always addressable
        # The mesh recorder keeps recording an auto session that switched (its links stay).
        keeps_recorder = hidden and self._settings.media_mode_of(self._claims.sdk_app_id) == "auto"
        if self._media_mode == "sfu" and not keeps_recorder:
            # A client that only knows the mesh would half work; it is told why instead.
            # An SFU app's recorder records from the SFU.
            raise FrameError(ServerCode.INVALID_PARAMETER, MESH_SIGNAL_REFUSED, ref=msg.id)
        if not hidden and msg.to not in self._others and not await self._is_member(msg.to):
            raise FrameError(
                ServerCode.INVALID_PARAMETER,
                f"signal.to: {msg.to} is not a member of this session",
                ref=msg.id,
            )
        if isinstance(msg.data, DescriptionData) and msg.data.description.type != "rollback":
            # The privateMapKey's bits hold on every offer and answer, not only at enter.
            screens = self._screen_mids.get(msg.to, ())
            why = refusal(msg.data.description.sdp, self.privileges, screens)
            if why is not None:
                raise FrameError(ServerCode.INVALID_PARAMETER, f"signal.data: {why}", ref=msg.id)
        relay_only = self._settings.ice_transport_policy_of(self._claims.sdk_app_id) == "relay"
        data = filter_signal(msg.data, self._settings.ice_allowed_networks, relay_only=relay_only)
        if data is None:
            self._log(logging.DEBUG, "dropped a candidate the ICE policy does not allow")
            return
        # Checked once, as the frame was parsed: the addressee's socket sends it as it comes.
        event = SignalEvent(self.user_id, msg.to, data)
        await self._ctx.bus.publish(self._channel, event)

    # -- credential expiry (renewal.py) ------------------------------------------------------

    def _renew(self, msg: Renew) -> None:
        """Take new credentials (a refusal raises, leaving the old ones in force)."""
        self._claims, answer = renew(self._ctx, self._claims, msg)
        self.privileges = self._claims.privileges
        self._expiry.watch(answer.expires_at)
        self._log(logging.INFO, "credentials renewed (privileges %d)", self.privileges)
        self.send(answer)

    async def _expired(self) -> None:
        """The grace after the credentials' end has passed: leave as ``expired``, close 4002.

        The close is the one our own ``member-left`` would make (the first wins).
        """
        self._log(logging.INFO, "credentials ended and were not renewed: removing")
        try:
            await self._ctx.rooms.leave_connection(
                self.room_uuid,
                self.user_id,
                self.connection_id,
                "expired",
                sdk_app_id=self._claims.sdk_app_id,
            )
        except TAvKitError as exc:  # the heartbeat timeout will take the member out
            self._log(logging.WARNING, "expired member not removed: %s", exc)
        self.close(CloseCode.REMOVED, "expired", Removed("expired"))

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
        gate = self._gate
        gate.start(msg.after)
        try:
            while True:
                if not await self._room_for(SYNC_PAGE):
                    return
                try:
                    page = await self._im.history(
                        self.room_uuid, after=gate.cursor, limit=SYNC_PAGE
                    )
                except TAvKitError as exc:
                    # An error frame would leave the client waiting for a `synced` that never
                    # comes, its gap unfilled; reconnecting makes it ask again (as for 1011).
                    self._log(logging.WARNING, "sync after %d failed: %s", gate.cursor, exc)
                    self.close(CloseCode.SERVER_ERROR, "sync failed; reconnect")
                    return
                for message in gate.page(page.messages):
                    self.send(MessageFrom(message))
                if not page.has_more:
                    break
            self.send(Synced(gate.synced(page.last_seq)))
        finally:
            for message in gate.finish():
                self.send(MessageFrom(message))

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
        try:
            sendable = self._gate.live(message)
        except Overflow:
            self.close(CloseCode.SERVER_ERROR, "messages lost; reconnect")
            return
        for ready in sendable:
            self.send(MessageFrom(ready))

    # -- member state (coalesce.py) ----------------------------------------------------------

    async def _write_state(self, msg: State | None) -> None:
        """Record ``msg`` (a state the coalescer let through) and tell the others."""
        if msg is None:
            return
        try:
            await self._ctx.rooms.set_state(
                self.room_uuid, self.user_id, muted=msg.muted, camera=msg.camera, screen=msg.screen
            )
        except TAvKitError as exc:
            self.send(ErrorFrame.from_error(exc, msg.id))

    async def _last_state(self) -> None:
        """The socket is closing with a state still held: it lands all the same."""
        msg = self._states.take()
        if msg is None:
            return
        with suppress(TimeoutError, TAvKitError):  # gone from the room: nothing to record
            async with asyncio.timeout(LEAVE_TIMEOUT):
                await self._ctx.rooms.set_state(
                    self.room_uuid,
                    self.user_id,
                    muted=msg.muted,
                    camera=msg.camera,
                    screen=msg.screen,
                )

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
        if isinstance(event, SignalEvent):
            if event.to == self.user_id and event.sender != self.user_id:
                if isinstance(event.data, DescriptionData):
                    mids = slides_mids(event.data.description.sdp)
                    self._screen_mids.setdefault(event.sender, set()).update(mids)
                self.send(SignalFrom(event.sender, event.data))
        elif isinstance(event, MemberJoinedEvent):
            user_id, joined_at = event.member.user_id, event.member.joined_at
            if user_id == self.user_id or self._others.get(user_id) == joined_at:
                return  # ourselves, or already in the welcome's snapshot
            self._others[user_id] = joined_at
            self._links.forget(user_id)
            self.send(MemberJoined(event.member))
        elif isinstance(event, MemberLeftEvent):
            if event.connection_id == self.connection_id:
                self._own_leave(event.reason)
            elif event.user_id != self.user_id:
                self._others.pop(event.user_id, None)
                self._screen_mids.pop(event.user_id, None)
                self._links.forget(event.user_id)
                self.send(MemberLeft(event.user_id, event.reason))
        elif isinstance(event, MemberStateEvent):
            if event.user_id != self.user_id:
                self.send(MemberState(event.user_id, event.muted, event.camera, event.screen))
        elif isinstance(event, MemberLinkEvent):
            if event.user_id != self.user_id:
                frame = self._links.on_link(event, known=event.user_id in self._others)
                if frame is not None:
                    self.send(frame)
        elif isinstance(event, MessageEvent):
            self._live_message(event.message)
        elif isinstance(event, RoomClosedEvent):
            self.close(CloseCode.ROOM_CLOSED, "room closed", RoomClosed(event.reason))
        elif isinstance(event, SocketOpenEvent):
            if event.connection_id == self.connection_id:
                self._socket_opened(event.socket_id)
            elif event.user_id != self.user_id:
                self._links.opened(event.user_id, event.socket_id)
        else:
            self._log(logging.DEBUG, "ignored bus event %r", event.kind)

    def _socket_opened(self, socket_id: str | None) -> None:
        """A socket of our connection subscribed: ours, or one that supersedes us.

        The channel orders every ``socket-open`` the same way for every subscriber on
        every replica, so the socket whose event came last is the newest: one heard
        after our own closes us (a client resuming elsewhere left us half-open), one
        heard before it is an older socket's, which that one's own rule closes.
        """
        if socket_id == self.socket_id:
            self._heard_own_open = True
        elif self._heard_own_open:
            self._log(logging.INFO, "superseded by a newer socket of the same connection")
            self.close(CloseCode.REPLACED, "superseded by a newer socket")

    def _own_leave(self, reason: LeaveReason) -> None:
        """Our own connection left the room: tell the client why and close."""
        if reason in ("replaced", "moved"):  # the user entered again, here or elsewhere
            self.close(CloseCode.REPLACED, "replaced", Replaced())
        elif reason in ("removed", "timeout", "expired"):
            self.close(CloseCode.REMOVED, reason, Removed(reason))
        elif reason == "closed":
            self._room_closing = True  # room-closed follows with the session's reason
        else:
            self.close(CloseCode.NORMAL, "left")

    # -- helpers ---------------------------------------------------------------------------

    def _dropped(self) -> bool:
        """Whether the socket ended as a drop: the member is still in and may resume.

        A client's own close code says nothing (a library closes with 1000 when its
        program ends); only ``leave`` or the server's final close ends the membership.
        """
        if self._leaving is not None or self._room_closing:
            return False
        return not (self._closed_by_server and self._close_code in _ENDED_FOR_GOOD)

    async def _publish_link(self, *, up: bool) -> None:
        """Tell the session our member's link is down or up (never fails the socket)."""
        event = MemberLinkEvent(self.user_id, self.connection_id, up, self.socket_id)
        with suppress(TimeoutError, TAvKitError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ctx.bus.publish(self._channel, event)

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


async def refuse(
    websocket: WebSocket, exc: TAvKitError, code: int, metrics: Metrics | None
) -> None:
    """Send one ``error`` and close with ``code``, all within bounded time."""
    refusal = ErrorFrame.from_error(exc)
    count_out(metrics, refusal)
    with suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.send_text(encode(refusal))
            await websocket.close(code, exc.message[:120])


def count_out(metrics: Metrics | None, msg: ServerMessage) -> None:
    """Count a frame sent (and, for an ``error``, the seed error it carries)."""
    if metrics is None:
        return
    metrics.socket_message("out", msg.type)
    if isinstance(msg, ErrorFrame):
        metrics.error(msg.module, msg.error_code)
