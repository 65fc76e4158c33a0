"""The recorder: a hidden, receive-only participant that writes one file per member stint.

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
the app's longest session stops, finalising its files, while the call goes on. Every
second while anything is recorded the service asks the file system how much room is
left under ``<data_dir>/recordings`` (:func:`free_bytes`, which a test may replace);
below ``recording_min_free`` every recorder stops and new recordings are refused
(:class:`DiskFloorError`). Each row keeps why its file ended (``stop_reason``).

:class:`RecordingService` is owned by the app's lifespan: it decides per app whether
to record (``off`` / ``auto`` / ``on-demand``), starts and stops session recorders,
finalises every file on a graceful shutdown, and on start-up closes the books on
files a crashed server left behind (status ``partial``). With several replicas the
replica that opened a session records it (the bus carries the signals between them),
and ``recording`` in the REST list is that replica's view; start-up recovery assumes
each replica has its own data directory, since it closes every unfinished row.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from aiortc import MediaStreamTrack, RTCConfiguration
from av.frame import Frame

from tavkit.client.peer import PeerLink
from tavkit.errors import ServerCode, ServerError, TAvKitError
from tavkit.ice import configuration
from tavkit.protocol import SignalData
from tavkit.recording import ParticipantRecorder, RecordingInfo, probe
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
from tavkit.server.recording.disk import DiskFloorError, DiskState, free_bytes
from tavkit.server.rooms.service import RoomService, recorder_id
from tavkit.server.settings import RECORDING_POLICIES, Settings
from tavkit.server.store.db import Store
from tavkit.server.store.recording_models import RecordingRow

__all__ = [
    "DiskFloorError",
    "DiskState",
    "RecordingService",
    "SessionRecorder",
    "free_bytes",
    "recording_path",
]

logger = logging.getLogger(__name__)

START_TIMEOUT: Final = 10.0
"""How long a session recorder may take to subscribe and look at the room."""
STOP_TIMEOUT: Final = 20.0
"""How long finalising one file may take (the writer promises about 10 s)."""
DISK_CHECK_INTERVAL: Final = 1.0
"""How often free space is checked while anything is recorded (one ``statvfs``)."""


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


class SessionRecorder:
    """The hidden participant recording one session until stopped or the session closes."""

    def __init__(
        self, service: RecordingService, sdk_app_id: int, room_id: int, room_uuid: uuid.UUID
    ) -> None:
        self.sdk_app_id = sdk_app_id
        self.room_id = room_id
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
                for member, connection_id in await self._service.rooms.connections(self.room_uuid):
                    self._members[member.user_id] = connection_id
                    if self._service.is_live(connection_id):
                        self._begin(member.user_id, connection_id)
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
        return await rooms.open_session_of(self.sdk_app_id, self.room_id) == self.room_uuid

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
                self._begin(user_id, connection_id)
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

    # -- stints and their files ---------------------------------------------------------

    def _begin(self, user_id: str, connection_id: str) -> None:
        previous = self._stints.pop(user_id, None)
        if previous is not None:
            self._spawn_finish(previous, "left")  # replaced by the member's new connection
        stint = _Stint(user_id, connection_id, self._new_file(user_id))
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
        pc = stint.link.pc if stint.link is not None else None
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
            await _quietly(rows.finish(self._service.store, file.row_id, "failed", None, "error"))
            await self._abandon(user_id, file)
            return False
        return True

    async def _abandon(self, user_id: str, file: _File) -> None:
        """A file that cannot be recorded: hang up on the member, drop the writer."""
        stint = self._stints.get(user_id)
        if stint is not None and stint.file is file and stint.link is not None:
            await stint.link.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(file.writer.stop(), STOP_TIMEOUT)

    def _on_track(self, stint: _Stint, track: MediaStreamTrack) -> None:
        link = stint.link
        pc = link.pc if link is not None else None
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
        if stint.link is not None:
            await stint.link.aclose()
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
            await _quietly(rows.finish(store, file.row_id, "failed", None, "error"))
            return
        if info.started_at is None:  # nothing ever arrived: no file, no recording
            await _quietly(rows.delete_row(store, file.row_id))
            self._log(logging.INFO, "%s sent nothing; no file", user_id)
            return
        await _quietly(rows.finish(store, file.row_id, "complete", info, reason))
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


class RecordingService:
    """Every session recorder of this process, and the app policies that start them."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        bus: Bus,
        rooms: RoomService,
        is_live: Callable[[str], bool],
        free_space: Callable[[Path], int] | None = None,
        disk_check_interval: float = DISK_CHECK_INTERVAL,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.rooms = rooms
        self.is_live = is_live
        """Whether a connection's socket is open here (so an offer to it is heard)."""
        self.host_addresses: Sequence[str] | None = (
            ["127.0.0.1"] if _is_loopback(settings.host) else None
        )
        """Where the recorder gathers ICE candidates: loopback when the server only
        listens there (aioice skips loopback otherwise); else aioice's own choice."""
        self.free_space = free_space if free_space is not None else free_bytes
        """The free-space probe (``free_bytes``): a seam so a test can fake a full disk."""
        self.disk_check_interval = disk_check_interval
        self.last_disk_stop: float | None = None
        """When recording last stopped at the free-disk floor (Unix time), if it did."""
        self._recorders: dict[uuid.UUID, SessionRecorder] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: set[asyncio.Task[None]] = set()  # awaited at shutdown, never cancelled
        self._lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.recover()
        self.rooms.on_session_opened(self._session_opened)
        self._spawn(self._watch_disk())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every recorder, finalising its files (a graceful shutdown)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        recorders, self._recorders = list(self._recorders.values()), {}
        # Stops already under way (a limit, the floor) finish their files with their reason.
        await asyncio.gather(
            *list(self._stopping),
            *(r.stop("shutdown") for r in recorders),
            return_exceptions=True,
        )

    # -- policy -------------------------------------------------------------------------

    async def policy(self, sdk_app_id: int) -> tuple[str, bool]:
        """The app's policy and whether it is the server default."""
        own = await rows.get_policy(self.store, sdk_app_id)
        if own is None:
            return self.settings.recording, True
        return own, False

    async def set_policy(self, sdk_app_id: int, policy: str | None) -> tuple[str, bool]:
        """Set (or with None, clear) the app's own policy; return the one now in force."""
        if policy is not None and policy not in RECORDING_POLICIES:
            raise ValueError(f"unknown recording policy {policy!r}")
        await rows.set_policy(self.store, sdk_app_id, policy)
        return await self.policy(sdk_app_id)

    # -- control ------------------------------------------------------------------------

    def is_recording(self, room_uuid: uuid.UUID) -> bool:
        """Whether this process is recording the session now."""
        recorder = self._recorders.get(room_uuid)
        return recorder is not None and recorder.running

    @property
    def recordings_dir(self) -> Path:
        """Where the files go (``<data_dir>/recordings``); its file system has the floor."""
        return self.settings.data_dir / "recordings"

    async def disk_state(self) -> DiskState:
        """Free space on the recordings' file system now, and the floor."""
        free = await asyncio.to_thread(self.free_space, self.recordings_dir)
        return DiskState(free=free, floor=self.settings.recording_min_free)

    async def start(self, sdk_app_id: int, room_id: int, room_uuid: uuid.UUID) -> None:
        """Record the session from now on (a no-op if it already is).

        :class:`DiskFloorError` when the recordings disk is below its floor.
        """
        async with self._lock:
            if self._closed or self.is_recording(room_uuid):
                return
            if self.settings.recording_min_free > 0:
                try:
                    disk = await self.disk_state()
                except OSError as exc:  # cannot tell: record; the watch keeps asking
                    logger.warning("cannot check the free space for recordings: %s", exc)
                else:
                    if disk.below_floor:
                        raise DiskFloorError(disk)
            recorder = SessionRecorder(self, sdk_app_id, room_id, room_uuid)
            await recorder.start()
            self._recorders[room_uuid] = recorder
            self._spawn(self._forget_when_done(recorder))

    async def stop(self, room_uuid: uuid.UUID, reason: str = "stopped") -> None:
        """Stop recording the session, finalising its files (a no-op if it is not)."""
        async with self._lock:
            recorder = self._recorders.pop(room_uuid, None)
        if recorder is not None:
            await recorder.stop(reason)

    def stop_soon(self, room_uuid: uuid.UUID, reason: str) -> None:
        """:meth:`stop` in a task of the service's (for a timer's callback)."""
        if not self._closed:
            self._spawn_stop(self.stop(room_uuid, reason))

    async def recover(self) -> int:
        """Close the rows a crashed server left ``recording``: ``partial``, or ``failed``."""
        count = 0
        for rec in await rows.unfinished(self.store):
            path = self.settings.data_dir / rec.path
            info: RecordingInfo | None
            try:
                info = await asyncio.to_thread(probe, path)
            except ServerError as exc:
                logger.warning("recording %s cannot be read (%s): failed", rec.path, exc)
                info = None
            if info is None:
                await rows.finish(self.store, rec.id, "failed", None, "crashed")
            else:
                await rows.finish(self.store, rec.id, "partial", info, "crashed")
            count += 1
        if count:
            logger.info("closed %d recording(s) left unfinished by the last run", count)
        return count

    # -- helpers ------------------------------------------------------------------------

    def _session_opened(self, sdk_app_id: int, room_id: int, room_uuid: uuid.UUID) -> None:
        if not self._closed:
            self._spawn(self._auto_start(sdk_app_id, room_id, room_uuid))

    async def _auto_start(self, sdk_app_id: int, room_id: int, room_uuid: uuid.UUID) -> None:
        try:
            policy, _default = await self.policy(sdk_app_id)
            if policy == "auto":
                await self.start(sdk_app_id, room_id, room_uuid)
        except TAvKitError as exc:
            logger.warning("session %s not recorded: %s", room_uuid, exc)

    async def _watch_disk(self) -> None:
        """While anything is recorded, stop everything when free space falls below the floor."""
        if self.settings.recording_min_free <= 0:
            return
        while True:
            await asyncio.sleep(self.disk_check_interval)
            if not self._recorders:
                continue
            try:
                disk = await self.disk_state()
            except OSError as exc:
                logger.warning("cannot check the free space for recordings: %s", exc)
                continue
            if not disk.below_floor:
                continue
            async with self._lock:
                stopping, self._recorders = list(self._recorders.values()), {}
            logger.warning("recording stopped: %s", disk.describe())
            self.last_disk_stop = time.time()
            for recorder in stopping:
                self._spawn_stop(recorder.stop("disk-floor"))

    async def _forget_when_done(self, recorder: SessionRecorder) -> None:
        await recorder.wait()
        async with self._lock:
            if self._recorders.get(recorder.room_uuid) is recorder:
                del self._recorders[recorder.room_uuid]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_stop(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ignore_frame(_user_id: str, _frame: Frame) -> None:
    """Passthrough recording keeps decoded frames from ever arriving; nothing to do."""


async def _quietly(step: Any) -> None:
    """Run a bookkeeping step whose failure is logged, not raised (the media matters more)."""
    try:
        await step
    except TAvKitError as exc:
        logger.warning("recording bookkeeping failed: %s", exc)
