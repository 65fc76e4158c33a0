"""The session recorder: a hidden, receive-only participant writing one file per member stint.

``docs/protocol.md`` section 6. Each recorded session gets a :class:`SessionRecorder`
whose userId is ``__rec.<uuid hex>`` (:func:`~tavkit.server.rooms.service.recorder_id`). It
offers receive-only audio and video to every member, on the client's own
:class:`~tavkit.client.peer.PeerLink` (the negotiation, candidate queueing and
rebuild-on-failure the Python client uses), and hands each member's tracks to a
:class:`~tavkit.recording.ParticipantRecorder`, which stores the encoded packets as
they arrive in ``<data_dir>/recordings/<uuid>/<userId>-<n>.mkv``.

It runs **in the server process and talks to the room through the bus**, not over a
WebSocket: it subscribes to the session's channel as a socket does, publishes its
``signal`` events there, and members' sockets relay signals addressed to it (the
signaling socket accepts ``signal.to`` the session's recorder). So the recorder needs
no URL of its own server (which ``--port 0``, a mount or a proxy would make guesswork),
no socket token and no heartbeat; and because it never becomes a member row, no
member list, count, dashboard or emptiness check can see it, so it is hidden
everywhere by construction rather than by a filter in each query.

Timing: a member's socket must be subscribed before it can hear an offer, so the
recorder offers to a member when its socket announces itself (the ``socket-open``
bus event), or at once for members whose socket is already live when recording
starts. A ``member-left`` ends that member's stint (its file is finalised), and
``room-closed`` ends them all.

Quotas (``Settings.recording_*``, per app in the apps file): a member's file that
reaches the app's longest file is closed and their recording goes on at once in a new
file, ``<userId>-<n+1>.mkv``, on the same connection (TRTC-style segments: one file
never grows without end, and the recording is not lost); a recorder that has run for
the app's longest session stops, finalising its files, while the call goes on (the
service watches the free-disk floor). Each row keeps why its file ended (``stop_reason``).

Offers: a member's socket may be open on another replica (the bus carries the offer
there), so besides the sockets here that hear their session (``listening``) the
recorder offers at once to the members the service says were heard from lately
(:meth:`~tavkit.server.recording.service.RecordingService.sockets_elsewhere`), and
offers again when a member's socket opens while its offer is still unanswered
:data:`REOFFER_GRACE` later: an offer sent while that socket was away (its replica
died) is lost. It does not offer again on the ``socket-open`` of the very socket it
offered to (that event can reach the recorder after its first offer), nor before the
grace: a second offer on a fresh connection would race the answer to the first, and
the recorder could apply one answer to the other's connection and never connect.

:class:`~tavkit.server.recording.service.RecordingService` starts and stops these, and
holds the session's recording lease while one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from av.frame import Frame

from tavkit.client.peer import PeerLink
from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.ice import configuration
from tavkit.protocol import RoomId, SignalData
from tavkit.recording import ParticipantRecorder
from tavkit.server.bus import Bus, session_channel
from tavkit.server.events import (
    Event,
    MemberJoinedEvent,
    MemberLeftEvent,
    RoomClosedEvent,
    SignalEvent,
    SocketOpenEvent,
)
from tavkit.server.ice import filter_signal, ice_servers_for
from tavkit.server.recording import rows
from tavkit.server.rooms.service import recorder_id
from tavkit.server.store.recording_models import RecordingRow

if TYPE_CHECKING:
    from tavkit.server.recording.service import RecordingService

__all__ = ["START_TIMEOUT", "STOP_TIMEOUT", "SessionRecorder", "quietly", "recording_path"]

logger = logging.getLogger(__name__)

START_TIMEOUT: Final = 10.0
"""How long a session recorder may take to subscribe and look at the room."""
STOP_TIMEOUT: Final = 20.0
"""How long finalising one file may take (the writer promises about 10 s)."""
REOFFER_GRACE: Final = 2.0
"""After a member's socket opens, how long the answer to an offer it may have heard has to
come before the recorder offers again (a round trip through the bus, with room for load)."""


def recording_path(room_uuid: uuid.UUID, user_id: str, stint: int) -> Path:
    """Where a stint's file lives, relative to the data directory."""
    return Path("recordings") / str(room_uuid) / f"{user_id}-{stint}.mkv"


@dataclass(eq=False)
class _File:
    """One file of a stint: its row, its writer, and the timer that closes it at the limit."""

    n: int
    row_id: uuid.UUID
    writer: ParticipantRecorder
    opened: asyncio.Task[bool] | None = None
    """Inserts the row and starts the writer; True when both worked."""
    limit: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Stint:
    """One member's connection, recorded to one file after another (see the file limit)."""

    user_id: str
    connection_id: str
    file: _File
    link: PeerLink | None = None
    heard_by: str | None = None
    """The socket known to hear the link's last offer (None: a guess, or an old replica's)."""


class SessionRecorder:
    """The hidden participant recording one session until stopped or the session closes."""

    def __init__(
        self, service: RecordingService, sdk_app_id: int, room: RoomId, room_uuid: uuid.UUID
    ) -> None:
        self.sdk_app_id = sdk_app_id
        self.room = room
        self.room_uuid = room_uuid
        self.user_id = recorder_id(room_uuid)
        self._service = service
        self._settings = service.settings
        self._max_file, self._max_session = self._settings.recording_limits_of(sdk_app_id)
        self._relay_only = self._settings.ice_transport_policy_of(sdk_app_id) == "relay"
        self._channel = session_channel(room_uuid)
        self._members: dict[str, str] = {}  # userId -> live connection id
        self._stints: dict[str, _Stint] = {}  # userId -> the stint being recorded
        self._counts: dict[str, int] = {}  # userId -> files so far (files' n)
        self._closing: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session_limit: asyncio.TimerHandle | None = None
        self._tag = f"recorder({room_uuid})"

    @property
    def running(self) -> bool:
        """Whether it is still recording (its session open, not stopped)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Subscribe to the session and call its members; return once it listens."""
        self._counts = await rows.stint_counts(self._service.store, self.room_uuid)
        self._task = asyncio.create_task(self._run(), name=self._tag)
        waiter = asyncio.create_task(self._ready.wait())
        try:
            await asyncio.wait(
                {self._task, waiter}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            await self.stop("error")  # whoever started us is going away: leave no task behind
            raise
        finally:
            waiter.cancel()
        if not self._ready.is_set():
            await self.stop("error")
            raise ServerError(
                ServerCode.INTERNAL, f"the recorder of {self.room_uuid} did not start"
            )
        if self._max_session > 0 and self.running:
            self._session_limit = asyncio.get_running_loop().call_later(
                self._max_session, self._service.stop_soon, self.room_uuid, "session-limit"
            )

    async def stop(self, reason: str = "stopped") -> None:
        """Stop listening and finalise every file (each within ``STOP_TIMEOUT``).

        ``reason`` is stored on each file's row (``STOP_REASONS``).
        """
        if self._session_limit is not None:
            self._session_limit.cancel()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._finish_all(reason)

    async def wait(self) -> None:
        """Wait until the session closes (or the recorder is stopped)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    # -- the session's events ---------------------------------------------------------

    async def _run(self) -> None:
        reason = "session-closed"
        try:
            async with self._service.bus.subscribe(self._channel) as events:
                # Subscribed before the snapshot, so no change falls between the two.
                elsewhere = await self._service.sockets_elsewhere(self.room_uuid)
                for member, connection_id in await self._service.rooms.connections(self.room_uuid):
                    self._members[member.user_id] = connection_id
                    listening = self._service.listening(connection_id)
                    if listening is not None or connection_id in elsewhere:
                        self._begin(member.user_id, connection_id, listening)
                if not self._members and not await self._still_open():
                    return  # it closed before we subscribed
                self._ready.set()
                self._log(logging.INFO, "recording %d member(s)", len(self._stints))
                async for event in events:
                    if not self._on_event(event):
                        break
        except TAvKitError as exc:
            self._log(logging.WARNING, "stopped: %s", exc)
            reason = "error"
        finally:
            self._ready.set()
            if self._session_limit is not None:
                self._session_limit.cancel()
        self._log(logging.INFO, "session closed")
        await self._finish_all(reason)

    async def _still_open(self) -> bool:
        rooms = self._service.rooms
        return await rooms.open_session_of(self.sdk_app_id, self.room) == self.room_uuid

    def _on_event(self, event: Event) -> bool:
        """Act on one bus event; False once the session has closed."""
        if isinstance(event, SignalEvent):
            if event.to == self.user_id:
                # The bus checked the data when it read the event back (events.parse).
                stint = self._stints.get(event.sender)
                if stint is not None and stint.link is not None:
                    stint.link.handle(event.data)
        elif isinstance(event, MemberJoinedEvent):
            self._members[event.member.user_id] = event.connection_id
        elif isinstance(event, SocketOpenEvent):
            user_id, connection_id = event.user_id, event.connection_id
            current = self._stints.get(user_id)
            live = self._members.get(user_id) == connection_id
            if live and (current is None or current.connection_id != connection_id):
                self._begin(user_id, connection_id, event.socket_id)
            elif (
                live
                and current is not None
                and (event.socket_id is None or event.socket_id != current.heard_by)
                and (link := _unconnected(current)) is not None
            ):
                # Our offer may have gone out while the member's socket was away (a
                # replica died, or we offered to a socket we only guessed was open):
                # offer again, on a fresh connection the client answers anew, unless
                # the answer to our offer comes in the meantime.
                current.heard_by = event.socket_id
                loop = asyncio.get_running_loop()
                loop.call_later(REOFFER_GRACE, self._offer_again, current, link)
        elif isinstance(event, MemberLeftEvent):
            user_id, connection_id = event.user_id, event.connection_id
            if self._members.get(user_id) == connection_id:
                del self._members[user_id]
            stint = self._stints.get(user_id)
            if stint is not None and stint.connection_id == connection_id:
                self._spawn_finish(self._stints.pop(user_id), "left")
        elif isinstance(event, RoomClosedEvent):
            return False
        return True

    def _offer_again(self, stint: _Stint, link: PeerLink) -> None:
        """Offer again to a member whose socket opened, if our offer is still unanswered.

        Not at once: the socket may well have heard our offer (it was open, we only did
        not know it). Offering again then would race the answer to the first offer, and
        the link could apply that answer to the new connection's offer, which matches
        no ICE credentials of the member's (a connection that never comes up).
        """
        if self._stints.get(stint.user_id) is not stint or stint.link is not link:
            return
        if link.stats.connected or not link.awaiting_answer:
            return
        link.offer()
        self._log(logging.INFO, "offering to %s again", stint.user_id)

    # -- stints and their files ---------------------------------------------------------

    def _begin(self, user_id: str, connection_id: str, heard_by: str | None) -> None:
        previous = self._stints.pop(user_id, None)
        if previous is not None:
            self._spawn_finish(previous, "left")  # replaced by the member's new connection
        stint = _Stint(user_id, connection_id, self._new_file(user_id), heard_by=heard_by)
        self._stints[user_id] = stint
        self._arm(stint)
        stint.link = PeerLink(
            local_id=self.user_id,
            remote_id=user_id,
            initiator=True,
            configuration=self._configuration,
            host_addresses=self._service.host_addresses,
            publishers=(),  # no tracks: both transceivers are receive-only
            send=self._sender(user_id),
            on_frame=_ignore_frame,
            on_track=lambda _user, track: self._on_track(stint, track),
            on_give_up=lambda link: self._log(
                logging.WARNING, "gave up on the connection with %s", link.remote_id
            ),
        )
        stint.link.offer()
        self._log(logging.INFO, "recording %s (file %d)", user_id, stint.file.n)

    def _new_file(self, user_id: str) -> _File:
        """The member's next file: its writer, and its row being inserted."""
        n = self._counts.get(user_id, 0) + 1
        self._counts[user_id] = n
        relative = recording_path(self.room_uuid, user_id, n)
        writer = ParticipantRecorder(self._settings.data_dir / relative, user_id=user_id)
        file = _File(n, uuid.uuid4(), writer)
        file.opened = asyncio.create_task(self._open(user_id, file, relative))
        return file

    def _arm(self, stint: _Stint) -> None:
        """Roll the stint's file over once it reaches the app's longest file."""
        if self._max_file > 0:
            loop = asyncio.get_running_loop()
            stint.file.limit = loop.call_later(self._max_file, self._roll, stint)

    def _roll(self, stint: _Stint) -> None:
        """Close the stint's file at the limit and go on, on the same connection, in a new one.

        Synchronous, so no packet falls between the two files: the old writer lets go
        of the receivers before the new one takes them (the new file starts at the next
        keyframe, which the new writer asks for).
        """
        if self._stints.get(stint.user_id) is not stint:
            return
        old = stint.file
        receivers = old.writer.detach()
        pc = self._pc_of(stint)
        current = {id(t.receiver) for t in pc.getTransceivers()} if pc is not None else set()
        stint.file = self._new_file(stint.user_id)
        for receiver, track in receivers:
            if id(receiver) in current:  # not those of a connection rebuilt since
                stint.file.writer.add_receiver(receiver, track)
        self._arm(stint)
        self._log(logging.INFO, "%s: file %d is full, on to %d", stint.user_id, old.n, stint.file.n)
        self._spawn(self._close_file(stint.user_id, old, "file-limit"), "roll over")

    async def _open(self, user_id: str, file: _File, relative: Path) -> bool:
        row = RecordingRow(
            id=file.row_id,
            session_id=self.room_uuid,
            user_id=user_id,
            stint=file.n,
            path=relative.as_posix(),
            started_at=time.time(),
            status="recording",
            has_video=False,
            has_audio=False,
        )
        try:
            await rows.insert(self._service.store, row)
        except TAvKitError as exc:
            self._log(logging.ERROR, "no row for %s: %s", user_id, exc)
            await self._abandon(user_id, file)
            return False
        try:
            await file.writer.start()
        except Exception as exc:  # the writer's failure must not end the others' recording
            self._log(logging.ERROR, "cannot record %s: %r", user_id, exc)
            await quietly(rows.finish(self._service.store, file.row_id, "failed", None, "error"))
            await self._abandon(user_id, file)
            return False
        return True

    async def _abandon(self, user_id: str, file: _File) -> None:
        """A file that cannot be recorded: hang up on the member, drop the writer."""
        stint = self._stints.get(user_id)
        if stint is not None and stint.file is file:
            await self._hang_up(stint)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(file.writer.stop(), STOP_TIMEOUT)

    def _on_track(self, stint: _Stint, track: MediaStreamTrack) -> None:
        pc = self._pc_of(stint)
        if pc is None:
            return
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is track:
                stint.file.writer.add_receiver(transceiver.receiver, track)
                return

    async def _finish(self, stint: _Stint, reason: str) -> None:
        """Close the stint's connection, then its file."""
        file = stint.file
        if file.limit is not None:
            file.limit.cancel()
        if file.opened is not None:
            await asyncio.wait({file.opened})  # the row exists before the link goes
        await self._hang_up(stint)
        await self._close_file(stint.user_id, file, reason)

    async def _close_file(self, user_id: str, file: _File, reason: str) -> None:
        """Finalise one file and close its row with what the file holds and ``reason``."""
        store = self._service.store
        opened = False
        if file.opened is not None:
            await asyncio.wait({file.opened})
            if file.opened.cancelled() or file.opened.exception() is not None:
                self._log(logging.ERROR, "starting %s failed", user_id)
            else:
                opened = file.opened.result()
        if not opened:
            return
        try:
            info = await asyncio.wait_for(file.writer.stop(), STOP_TIMEOUT)
        except Exception as exc:
            self._log(logging.ERROR, "finalising %s failed: %r", user_id, exc)
            await quietly(rows.finish(store, file.row_id, "failed", None, "error"))
            return
        if info.started_at is None:  # nothing ever arrived: no file, no recording
            await quietly(rows.delete_row(store, file.row_id))
            self._log(logging.INFO, "%s sent nothing; no file", user_id)
            return
        await quietly(rows.finish(store, file.row_id, "complete", info, reason))
        self._log(
            logging.INFO,
            "%s: %.1f s, %d bytes (%s)",
            user_id,
            info.duration or 0,
            info.size,
            reason,
        )

    def _spawn_finish(self, stint: _Stint, reason: str) -> None:
        self._spawn(self._finish(stint, reason), "finish")

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.create_task(coro, name=f"{self._tag} {what}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _finish_all(self, reason: str) -> None:
        stints, self._stints = list(self._stints.values()), {}
        for stint in stints:
            self._spawn_finish(stint, reason)
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    # -- the stint's connection (the SFU's recorder has its own) -------------------------

    def _pc_of(self, stint: _Stint) -> RTCPeerConnection | None:
        """The connection the stint's media arrives on, if it has one now."""
        return stint.link.pc if stint.link is not None else None

    async def _hang_up(self, stint: _Stint) -> None:
        """Close the stint's connection (its file is closed apart)."""
        if stint.link is not None:
            await stint.link.aclose()

    # -- signaling ----------------------------------------------------------------------

    def _configuration(self) -> RTCConfiguration:
        servers = ice_servers_for(self._settings, self.user_id, time.time())
        return configuration(servers, self._settings.ice_transport_policy_of(self.sdk_app_id))

    def _sender(self, user_id: str) -> Callable[[SignalData], Any]:
        bus: Bus = self._service.bus

        async def send(data: SignalData) -> None:
            allowed = filter_signal(
                data, self._settings.ice_allowed_networks, relay_only=self._relay_only
            )
            if allowed is None:
                return
            await bus.publish(self._channel, SignalEvent(self.user_id, user_id, allowed))

        return send

    def _log(self, level: int, msg: str, *args: object) -> None:
        logger.log(level, f"{self._tag} {msg}", *args)


def _unconnected(stint: _Stint) -> PeerLink | None:
    """The stint's link if its media connection has not come up (nothing recorded over it)."""
    link = stint.link
    return link if link is not None and not link.stats.connected else None


def _ignore_frame(_user_id: str, _frame: Frame) -> None:
    """Passthrough recording keeps decoded frames from ever arriving; nothing to do."""


async def quietly(step: Any) -> None:
    """Run a bookkeeping step whose failure is logged, not raised (the media matters more)."""
    try:
        await step
    except TAvKitError as exc:
        logger.warning("recording bookkeeping failed: %s", exc)
