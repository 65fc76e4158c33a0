"""One membership (one ``enter``): its socket, its heartbeat, the members, a link each.

:class:`RoomState` turns the socket's frames into mesh actions and listener events:
the members in ``welcome`` are the ones *we* call (we are the newcomer), a member
who joins later calls us (its offer creates our side of the link), ``member-left``
closes the link. It also decides what the socket's final end means: our own
``leave``; an end of the call (replaced, removed by an admin, room closed); or a
membership the server dropped while we were away (resume refused or too late),
after which :class:`~tavkit.client.TAvKit` enters the room again.

In an SFU room (``welcome.mediaMode``) there are no mesh links: :class:`SfuMedia` sends
and receives. An ``auto`` room switches while we are in it (``media-mode``, or a
resumed ``welcome`` saying ``sfu``): we start the SFU media beside the mesh links and
close each member's link once that member's media arrives through the SFU, so the
switch costs a short freeze, not a blank. A mesh signal of ours refused because the
room switched while it was in flight is no error of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from aiortc import MediaStreamTrack, RTCConfiguration
from av.frame import Frame

from tavkit.client._publish import Publisher
from tavkit.client._sfu import SfuMedia
from tavkit.client.api import EnterResult, RateLimitedError, RoomApi
from tavkit.client.connections import MediaConnection
from tavkit.client.listener import UserInfo
from tavkit.client.peer import STALL_AFTER, PeerLink
from tavkit.client.session import SignalingSocket
from tavkit.client.sinks import PeerStats
from tavkit.client.timeline import JoinClock
from tavkit.errors import HttpError, ServerCode, ServerError, TAvKitError, TrtcCode, TrtcError
from tavkit.protocol import (
    CloseCode,
    DescriptionData,
    ErrorFrame,
    Leave,
    MediaLayers,
    MediaModeChanged,
    MediaSignalFrom,
    MediaSignalTo,
    Member,
    MemberConnection,
    MemberJoined,
    MemberLeft,
    MemberState,
    Ping,
    Removed,
    Renewed,
    Replaced,
    RoomClosed,
    RoomId,
    ServerMessage,
    SignalData,
    SignalFrom,
    SignalTo,
    State,
    Welcome,
    silence_after,
)

__all__ = ["RoomState"]

logger = logging.getLogger(__name__)

STALL_MARGIN: Final = 2.0
"""Seconds beyond the server's silence threshold before a silent peer's path counts as
dead: time for its ``member-connection reconnecting`` to reach us first."""

Emit = Callable[..., None]


class RoomState:
    """Members, peer links and the socket of one membership (one ``enter``)."""

    def __init__(
        self,
        entered: EnterResult,
        *,
        user_id: str,
        configuration: Callable[[], RTCConfiguration],
        host_addresses: Sequence[str] | None,
        publishers: Sequence[Publisher],
        emit: Emit,
        report: Callable[[TAvKitError], None],
        on_frame: Callable[[str, Frame], None],
        on_track: Callable[[str, MediaStreamTrack], None],
        on_screen_frame: Callable[[str, Frame], None] = lambda user_id, frame: None,
        on_gone: Callable[[TAvKitError | None, bool], None],
        on_left: Callable[[str], None],
        store_info: Callable[[list[UserInfo]], None],
        seen: dict[str, PeerStats] | None = None,
        on_chat: Callable[[ServerMessage], bool] | None = None,
        clock: JoinClock | None = None,
    ) -> None:
        self.room_uuid = entered.room_uuid
        self._entered = entered
        self.user_id = user_id
        self.members: dict[str, Member] = {}
        #: Members the server says lost their link and may resume (``member-connection``).
        self.reconnecting: set[str] = set()
        self.links: dict[str, PeerLink] = {}
        #: Links with the server's hidden participants (the recorder): answered, never shown.
        self.hidden: dict[str, PeerLink] = {}
        #: Everyone we had a link with in this membership, their counters kept after leaving.
        self.seen: dict[str, PeerStats] = dict(seen or {})
        self.socket: SignalingSocket | None = None
        self.leaving = False
        self._configuration = configuration
        self._host_addresses = host_addresses
        self._publishers = publishers
        self._emit = emit
        self._report = report
        self._on_frame = on_frame
        self._on_track = on_track
        self._on_screen_frame = on_screen_frame
        #: Members sharing a screen (their member-state says ``screen``).
        self.sharing: set[str] = set()
        #: Our last ``state`` frame; said again to each newcomer while it shares a screen
        #: (the server does not store ``screen``, so a welcome cannot say it).
        self.state = State(muted=False, camera=True)
        self._on_gone = on_gone
        self._on_left = on_left
        self._store_info = store_info
        #: Sees every frame first (in-call messages, ``welcome``); ``True`` = consumed.
        self._on_chat = on_chat
        #: Notes the join's phases (:mod:`tavkit.client.timeline`).
        self._clock = clock if clock is not None else JoinClock()
        self._ending: TAvKitError | None = None
        self._removed_reason: str | None = None
        self._left = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        #: Frames that came after ``welcome`` but before :meth:`attach`, replayed there.
        self._held: list[ServerMessage] = []
        #: In an SFU room (``welcome.mediaMode``), our media with the SFU; no mesh links.
        self.sfu: SfuMedia | None = None

    async def connect(
        self,
        api: RoomApi,
        room_id: RoomId,
        prepare: Callable[[], Awaitable[Sequence[Publisher]]] | None = None,
    ) -> None:
        """Open the socket, call everyone in ``welcome`` and start the heartbeat.

        ``prepare()`` (opening the media, for a first join) runs while the socket
        opens, and the publishers it returns are what the links send: a join waits
        for the slower of the two, not for both in turn. Frames that arrive before
        both are done wait (:attr:`_held`). If either fails, the socket is closed and
        the membership given back (REST ``exit``), so the others do not see a member
        who never arrives; the error is raised.
        """
        socket = SignalingSocket(
            self._entered.socket_url,
            self._entered.socket_token,
            self.on_message,
            self.on_socket_end,
            heartbeat_interval=self._entered.heartbeat_interval,
            resume_within=self._entered.heartbeat_timeout,
            on_phase=self._clock.mark,
        )
        opening = asyncio.ensure_future(socket.open())
        tasks: list[asyncio.Future[Any]] = [opening]
        if prepare is not None:
            tasks.append(asyncio.ensure_future(prepare()))
        try:
            welcome, *prepared = await asyncio.gather(*tasks)  # the first failure, at once
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await socket.aclose()
            with contextlib.suppress(TAvKitError):
                await api.exit(room_id)
            raise
        if prepared:
            self._publishers = prepared[0]
        self.attach(socket, welcome)
        self.start_heartbeat(api, room_id, self._entered.heartbeat_interval)

    def attach(self, socket: SignalingSocket, welcome: Welcome) -> None:
        """Start using ``socket``, whose first ``welcome`` is given: call everyone in it."""
        self.socket = socket
        self.room_uuid = welcome.room_uuid
        fresh = [m for m in welcome.members if m.user_id != self.user_id]
        if welcome.media_mode == "sfu":
            self._start_sfu(socket)
        for member in fresh:
            self._add_member(member)
            if self.sfu is None:
                self._link(member.user_id, initiator=True).offer()
        self._announce([m.user_id for m in fresh])
        if self._on_chat is not None:
            self._on_chat(welcome)
        held, self._held = self._held, []
        for message in held:
            self.on_message(message)

    @property
    def entered(self) -> EnterResult:
        """The ``enter`` response, as the last ``renewed`` updated it."""
        return self._entered

    def renewed(self, answer: Renewed) -> None:
        """Apply accepted credentials: resume with the new token; new links use the new
        ICE servers and privileges (links already up keep theirs until rebuilt)."""
        self._entered = dataclasses.replace(
            self._entered,
            privileges=answer.privileges,
            ice_servers=answer.ice_servers,
            socket_token=answer.socket_token or self._entered.socket_token,
        )
        if self.socket is not None and answer.socket_token:
            self.socket.set_token(answer.socket_token)

    def start_heartbeat(self, api: RoomApi, room_id: RoomId, interval: float) -> None:
        """Keep the membership alive: REST heartbeat and socket ``ping`` every ``interval``."""
        self.stop_heartbeat()
        self._heartbeat = asyncio.create_task(
            self._beat(api, room_id, interval), name="tavkit-heartbeat"
        )

    def stop_heartbeat(self) -> None:
        """Stop the heartbeat task (before leaving, so no beat races the ``leave``)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._tasks.add(self._heartbeat)  # awaited by aclose()
            self._heartbeat = None

    async def leave(self, message: Leave, grace: float) -> bool:
        """Send ``leave``; wait ``grace`` seconds for the server to close; ``False`` if not."""
        socket = self.socket
        if socket is None or not socket.connected.is_set():
            return False
        await socket.send(message)
        try:
            await asyncio.wait_for(self._left.wait(), grace)
        except TimeoutError:
            return False
        return True

    def reconnect(self, user_id: str | None = None) -> list[str]:
        """Offer again, on a fresh pc, every session we offered (to ``user_id`` or all)."""
        targets = [user_id] if user_id is not None else sorted(self.links)
        done = []
        for target in targets:
            link = self.links.get(target)
            if link is not None and link.initiator:
                link.stats.rebuilds += 1
                link.offer()
                done.append(target)
        return done

    def stats(self) -> dict[str, PeerStats]:
        """Counters of every linked member (in an SFU room: every member received)."""
        if self.sfu is not None:
            return {uid: self.seen[uid] for uid in self.members if self.sfu.receives_from(uid)}
        return {uid: link.stats for uid, link in self.links.items()}

    def connections(self) -> list[MediaConnection]:
        """Every open peer connection: the mesh links, or our two SFU connections."""
        found = [
            MediaConnection("mesh", link.pc, (uid,))
            for uid, link in sorted(self.links.items())
            if link.pc is not None
        ]
        return found + (self.sfu.connections() if self.sfu is not None else [])

    def receives_from(self, user_id: str) -> bool:
        """Whether ``user_id``'s media reaches us now (a link, or the SFU's subscription)."""
        return user_id in self.links or (self.sfu is not None and self.sfu.receives_from(user_id))

    async def quality(self) -> dict[str, dict[str, float]]:
        """RTT and byte counters of every link."""
        return {uid: await link.quality() for uid, link in list(self.links.items())}

    async def aclose(self) -> None:
        """Close the socket and every link, and wait for the tasks this state owns."""
        self.stop_heartbeat()
        if self.socket is not None:
            await self.socket.aclose()
        links, self.links = self.links, {}
        hidden, self.hidden = self.hidden, {}
        # Together, not one after another: aiortc takes ~1.5 s to close a connection
        # under load, and a member of a nine-person mesh holds eight of them.
        closed = await asyncio.gather(
            *(link.aclose() for link in [*links.values(), *hidden.values()]),
            return_exceptions=True,
        )
        for outcome in closed:
            if isinstance(outcome, BaseException):
                raise outcome
        if self.sfu is not None:
            await self.sfu.aclose()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- socket callbacks -------------------------------------------------------------

    async def _beat(self, api: RoomApi, room_id: RoomId, interval: float) -> None:
        loop = asyncio.get_running_loop()
        quiet_until = 0.0  # no REST beat before this: the server's Retry-After
        while True:
            await asyncio.sleep(interval)
            try:
                if loop.time() >= quiet_until:
                    interval = await api.heartbeat(room_id) or interval
            except RateLimitedError as exc:  # skip beats; the socket's ping keeps our place
                logger.info("heartbeat rate limited: none for %g s", exc.retry_after)
                quiet_until = loop.time() + exc.retry_after
            except HttpError as exc:  # the network: the socket's resume covers it
                logger.info("heartbeat failed, will retry: %s", exc)
            except ServerError as exc:  # the membership is gone: the socket will say so
                logger.info("heartbeat refused: %s", exc)
            if self.socket is not None and self.socket.connected.is_set():
                await self.socket.send(Ping(t=time.time()))

    def on_message(self, message: ServerMessage) -> None:
        """Handle one server frame (called by the socket's reader; never blocks)."""
        if self.socket is None:  # before attach(): the media may still be opening
            self._held.append(message)
            return
        if self._on_chat is not None and self._on_chat(message):
            return
        if isinstance(message, SignalFrom):
            self._signal(message.sender, message.data)
        elif isinstance(message, MediaSignalFrom):
            if self.sfu is not None:
                self.sfu.handle(message)
        elif isinstance(message, MediaModeChanged):
            if message.media_mode == "sfu":
                self._start_sfu(self.socket)
        elif isinstance(message, MemberJoined):
            self._joined(message.member)
        elif isinstance(message, MemberLeft):
            self._gone(message.user_id, message.reason)
        elif isinstance(message, MemberState):
            self._emit("on_user_state", message.user_id, message.muted, message.camera)
            self._sharing(message.user_id, message.screen)
        elif isinstance(message, MemberConnection):
            self._connection(message.user_id, message.status)
        elif isinstance(message, Welcome):
            self._resumed(message)
        elif isinstance(message, ErrorFrame):
            if self.sfu is not None and _mesh_signal_refused(message):
                logger.info("%s: a mesh signal in flight at the switch was refused", self.user_id)
                return
            self._report(_error_of(message))
        elif isinstance(message, Replaced):
            self._ending = ServerError(ServerCode.USER_EXITED, "entered the room again elsewhere")
        elif isinstance(message, Removed):
            self._removed_reason = message.reason
            self._ending = ServerError(
                ServerCode.USER_EXITED, f"removed from the room ({message.reason})"
            )
        elif isinstance(message, RoomClosed):
            self._ending = ServerError(ServerCode.ROOM_CLOSED, f"room closed ({message.reason})")

    def on_socket_end(self, code: int | None, error: TAvKitError | None) -> None:
        """The socket is over for good; decide between done, ended and rejoin."""
        if self.leaving:
            self._left.set()
            return
        if code is None or code == CloseCode.UNAUTHORISED or self._removed_reason == "timeout":
            lost = TrtcError(
                TrtcCode.PUSH_DISCONNECTED,
                f"the server dropped our membership ({error or 'timeout'}); entering again",
            )
            self._on_gone(lost, True)
            return
        self._on_gone(self._ending or error, False)

    # -- membership -------------------------------------------------------------------

    def _joined(self, member: Member) -> None:
        stale = self.links.pop(member.user_id, None)
        if stale is not None:
            self._spawn(stale.aclose())
        if self.state.screen and self.socket is not None:
            self._spawn(self.socket.send(self.state))
        self._add_member(member)
        self._announce([member.user_id])

    def _connection(self, user_id: str, status: str) -> None:
        if user_id not in self.members:
            return
        if status == "reconnecting":
            self.reconnecting.add(user_id)
        else:
            self.reconnecting.discard(user_id)
            link = self.links.get(user_id)
            if link is not None:
                link.kick()  # an offer sent while it was away was lost
        self._emit("on_user_connection", user_id, status)

    def _gone(self, user_id: str, reason: str) -> None:
        self.members.pop(user_id, None)
        self.reconnecting.discard(user_id)
        link = self.links.pop(user_id, None)
        if link is not None:
            self._spawn(link.aclose())
        self._on_left(user_id)
        self._sharing(user_id, False)  # a member who leaves stops sharing
        self._emit("on_user_leave", user_id, reason)

    def _sharing(self, user_id: str, sharing: bool) -> None:
        """Note whether ``user_id`` shares a screen; ``on_screen_share`` on a change."""
        if sharing == (user_id in self.sharing):
            return
        if sharing:
            self.sharing.add(user_id)
        else:
            self.sharing.discard(user_id)
        self._emit("on_screen_share", user_id, sharing)

    def _resumed(self, welcome: Welcome) -> None:
        """After a resume: reconcile with the members the server lists now."""
        if welcome.media_mode == "sfu" and self.socket is not None:
            self._start_sfu(self.socket)  # the room switched while our socket was away
        present = {m.user_id: m for m in welcome.members if m.user_id != self.user_id}
        for link in self.links.values():
            link.kick()  # our path may have changed while the socket was down
        # Whoever we heard was reconnecting may have come back while we were away too;
        # the welcome does not say, so stop claiming it (the media shows the truth).
        for user_id in sorted(self.reconnecting):
            self._connection(user_id, "connected")
        for user_id in list(self.members):
            if user_id not in present:
                self._gone(user_id, "exit")
        arrived = [uid for uid in present if uid not in self.members]
        for user_id in arrived:
            self._add_member(present[user_id])  # they call us: we are in their welcome
        self._announce(arrived)

    def _add_member(self, member: Member) -> None:
        self.members[member.user_id] = member
        if member.user_id not in self.seen:
            self.seen[member.user_id] = PeerStats(member.user_id, joined_at=time.monotonic())
        self._emit("on_user_enter", member.user_id)

    def _announce(self, user_ids: list[str]) -> None:
        if user_ids:
            self._emit("on_user_info", user_ids, self._store_info)

    # -- the SFU (_sfu.py) -------------------------------------------------------------

    def _start_sfu(self, socket: SignalingSocket) -> None:
        if self.sfu is not None:  # a resumed socket: the server subscribes us again
            return

        async def send(msg: MediaSignalTo | MediaLayers) -> None:
            await socket.send(msg)

        def stats_of(user_id: str) -> PeerStats:
            return self.seen.setdefault(user_id, PeerStats(user_id))

        self.sfu = SfuMedia(
            user_id=self.user_id,
            configuration=self._configuration,
            host_addresses=self._host_addresses,
            publishers=self._publishers,
            privileges=self._entered.privileges,
            send=send,
            on_frame=self._on_frame,
            on_track=self._on_track,
            stats_of=stats_of,
            report=self._report,
            on_receiving=self._receiving_through_sfu,
            on_screen_frame=self._on_screen_frame,
        )
        self.sfu.start()

    def _receiving_through_sfu(self, user_id: str) -> None:
        """``user_id``'s media arrives through the SFU: its mesh link (if any) can go."""
        link = self.links.pop(user_id, None)
        if link is not None:
            logger.info("%s: %s now comes through the SFU; mesh link closed", self.user_id, user_id)
            self._spawn(link.aclose())

    # -- the mesh ---------------------------------------------------------------------

    def _signal(self, sender: str, data: SignalData) -> None:
        is_offer = isinstance(data, DescriptionData) and data.description.type == "offer"
        link = (self.hidden if _is_hidden(sender) else self.links).get(sender)
        if link is not None and is_offer and _is_hidden(sender):
            # The recorder offers only on a fresh connection of its own (a restart, or
            # a new recording): answer it on a fresh one too, whatever the old one is doing.
            self._spawn(self.hidden.pop(sender).aclose())
            link = None
        if link is None:
            if not is_offer:
                logger.info("ignoring a first signal from %s that is not an offer", sender)
                return
            if self.sfu is not None and not _is_hidden(sender):
                # Sent before the room switched: the SFU carries that member's media now.
                logger.info("ignoring a mesh offer from %s: the room goes through the SFU", sender)
                return
            link = self._link(sender, initiator=False)
        link.handle(data)

    def _link(self, user_id: str, *, initiator: bool) -> PeerLink:
        socket = self.socket

        async def send(data: SignalData) -> None:
            if socket is not None:
                await socket.send(SignalTo(to=user_id, data=data))

        link = PeerLink(
            local_id=self.user_id,
            remote_id=user_id,
            initiator=initiator,
            configuration=self._configuration,
            host_addresses=self._host_addresses,
            publishers=self._publishers,
            send=send,
            on_frame=self._on_frame,
            on_track=self._on_track,
            on_screen_frame=self._on_screen_frame,
            on_give_up=self._give_up,
            stats=self.seen.get(user_id),
            privileges=self._entered.privileges,
            may_restart=lambda: self._may_restart(user_id),
            # Longer than the server takes to show a silent peer as reconnecting.
            stall_after=max(
                STALL_AFTER,
                silence_after(self._entered.heartbeat_interval, self._entered.heartbeat_timeout)
                + STALL_MARGIN,
            ),
            # The recorder is no member: its link is no part of anyone's join.
            mark=(lambda phase: None) if _is_hidden(user_id) else self._clock.marker(user_id),
        )
        if _is_hidden(user_id):  # the recorder: it only receives, and is no member
            self.hidden[user_id] = link
            return link
        self.links[user_id] = link
        self.seen[user_id] = link.stats
        return link

    def _may_restart(self, user_id: str) -> bool:
        """Whether an offer to ``user_id`` would arrive now: our socket is up, theirs too."""
        socket = self.socket
        return (
            socket is not None
            and socket.connected.is_set()
            and user_id not in self.reconnecting
            and user_id in self.members
        )

    def _give_up(self, link: PeerLink) -> None:
        if self.hidden.get(link.remote_id) is link:  # the recorder stopped: nothing to report
            self._spawn(self.hidden.pop(link.remote_id).aclose())
            return
        self._report(
            TrtcError(
                TrtcCode.PUSH_DISCONNECTED,
                f"the media connection with {link.remote_id} failed and could not be rebuilt",
            )
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _is_hidden(user_id: str) -> bool:
    """Whether ``user_id`` is the server's own participant (``__`` prefix, the recorder)."""
    return user_id.startswith("__")


def _mesh_signal_refused(frame: ErrorFrame) -> bool:
    """Whether ``frame`` refuses a mesh ``signal`` because the room's media goes through
    the SFU (server 10004, about ``signal``)."""
    return (
        frame.module == "server"
        and frame.error_code == ServerCode.INVALID_PARAMETER
        and frame.error_msg.startswith("signal: ")
        and "SFU" in frame.error_msg
    )


def _error_of(frame: ErrorFrame) -> TAvKitError:
    try:
        return frame.to_error()
    except ValueError:
        return ServerError(ServerCode.INTERNAL, frame.error_msg)
