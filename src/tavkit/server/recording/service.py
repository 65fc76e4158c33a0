"""Recording's control: which sessions are recorded, by which replica, and the books.

``docs/protocol.md`` section 6. The recording itself is a
:class:`~tavkit.server.recording.recorder.SessionRecorder` per session.

:class:`RecordingService` is owned by the app's lifespan: it decides per app whether
to record (``off`` / ``auto`` / ``on-demand``), starts and stops session recorders,
finalises every file on a graceful shutdown, and closes the books on files a dead
recorder left behind (status ``partial``).

Replicas (several ``tavkit serve`` on one database, one data directory and a shared
bus): **exactly one replica records a session, the holder of its recording lease**
(two columns of the session's row, :mod:`~tavkit.server.recording.rows`). A replica
takes the lease with one conditional ``UPDATE`` before it records (so two replicas
starting at once never both record), renews it every third of ``LEASE_TTL`` for as long
as it records and until its last file is closed, and lets go of it when the recording
stops (nobody records the session any more) or, on a graceful shutdown, hands it over
(another replica continues at once). Every replica looks for open sessions whose lease
has lapsed in its holder's name (the holder died) and takes them over: it closes the
dead holder's unfinished rows (``partial``, ``replica-lost``, size and duration read
from the files it left in the shared data directory), then records every member again
in a new file, ``<userId>-<n+1>.mkv``, so the two replicas' files never collide. The
members' sockets may be on any replica, so the recorder offers at once to those whose
socket is open here and to those heard from within two heartbeat intervals (most
likely open elsewhere; an offer goes through the bus, which reaches every replica),
and offers again when a member's socket opens while its media has not connected yet
(an offer sent while the socket was away is lost). An admin's stop reaching a replica
that does not hold the lease revokes it; the holder stops at its next renewal.
``recording`` in the REST list is true while any replica holds the lease.

Start-up recovery closes only rows whose session's lease has lapsed (or that have
none), never those of a session a live replica is recording. A lone server (the
in-process bus: no other replica can share its sessions) first lets every lease lapse,
since they can only be a dead predecessor's, and takes nothing over: it behaves as it
did before leases existed.

Quotas (``Settings.recording_*``, per app in the apps file): every second while anything
is recorded the service asks the file system how much room is left under
``<data_dir>/recordings`` (:func:`free_bytes`, which a test may replace); below
``recording_min_free`` every recorder stops and new recordings are refused
(:class:`DiskFloorError`). (The per-file and per-session limits are the recorder's.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from tavkit.errors import ServerError, TAvKitError
from tavkit.protocol import RoomId
from tavkit.recording import RecordingInfo, probe
from tavkit.server.bus import Bus
from tavkit.server.recording import rows
from tavkit.server.recording.disk import DiskFloorError, DiskState, free_bytes
from tavkit.server.recording.recorder import SessionRecorder, quietly, recording_path
from tavkit.server.rooms.service import RoomService
from tavkit.server.settings import RECORDING_POLICIES, Settings
from tavkit.server.store.db import Store
from tavkit.server.store.recording_models import RecordingRow

if TYPE_CHECKING:
    from tavkit.server.sfu.bridge import SfuBridge

__all__ = [
    "DiskFloorError",
    "DiskState",
    "RecordingService",
    "SessionRecorder",
    "free_bytes",
    "recording_path",
]

logger = logging.getLogger(__name__)

DISK_CHECK_INTERVAL: Final = 1.0
"""How often free space is checked while anything is recorded (one ``statvfs``)."""
LEASE_TTL: Final = 6.0
"""How long a recording lease lasts unless renewed (renewed every third of it): a dead
replica's recordings are taken over within about this long plus a third."""
FRESH_HEARTBEATS: Final = 2.0
"""A member heard from within this many heartbeat intervals has its socket open somewhere."""


class RecordingService:
    """Every session recorder of this process, and the app policies that start them."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        bus: Bus,
        rooms: RoomService,
        listening: Callable[[str], str | None],
        free_space: Callable[[Path], int] | None = None,
        disk_check_interval: float = DISK_CHECK_INTERVAL,
        lease_ttl: float = LEASE_TTL,
        clustered: bool | None = None,
        sfu: SfuBridge | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.rooms = rooms
        self.listening = listening
        """The id of a connection's socket here that hears an offer sent now, if any."""
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
        self.replica = settings.replica_name
        """This replica's name in the recording leases it holds."""
        self.lease_ttl = lease_ttl
        self.clustered = settings.redis_url is not None if clustered is None else clustered
        """Whether other replicas may share the sessions (a shared bus): then leases are
        respected at start-up, and lapsed ones taken over."""
        self.sfu = sfu
        """The server's Janus in ``--media-mode sfu``: sessions are then recorded from it
        (:mod:`tavkit.server.sfu.recorder`), not by a hidden mesh participant."""
        self._recorders: dict[uuid.UUID, SessionRecorder] = {}
        self._leases: set[uuid.UUID] = set()  # held: renewed until released
        self._to_release: set[uuid.UUID] = set()  # done with, to release (retried)
        self._taking: set[uuid.UUID] = set()  # lapsed leases being taken over
        self._sweeping = False  # orphaned rows being closed
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping: set[asyncio.Task[None]] = set()  # awaited at shutdown, never cancelled
        self._keeper: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.recover()
        self.rooms.on_session_opened(self._session_opened)
        self._spawn(self._watch_disk())
        self._keeper = asyncio.create_task(self._keep_leases(), name="recording leases")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every recorder, finalising its files, and hand its leases over (a graceful
        shutdown: another replica, if there is one, goes on recording at once)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        recorders, self._recorders = list(self._recorders.values()), {}
        # Stops already under way (a limit, the floor) finish their files with their reason.
        # The leases are still renewed meanwhile: nobody takes over a file being closed.
        await asyncio.gather(
            *list(self._stopping),
            *(r.stop("shutdown") for r in recorders),
            return_exceptions=True,
        )
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        await self._release_pending()
        handing, self._leases = list(self._leases), set()
        for room_uuid in handing:
            await quietly(rows.release_lease(self.store, room_uuid, self.replica, hand_over=True))

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

    async def recording_now(self, room_uuid: uuid.UUID) -> bool:
        """Whether any replica is recording the session now (this one, or a live lease's holder)."""
        if self.is_recording(room_uuid):
            return True
        lease = await rows.lease(self.store, room_uuid)
        return lease.held(time.time()) and lease.replica != self.replica

    async def sockets_elsewhere(self, room_uuid: uuid.UUID) -> set[str]:
        """The session's connections whose socket is most likely open on another replica
        (heard from lately); none for a lone server, which knows its own sockets."""
        if not self.clustered:
            return set()
        since = time.time() - FRESH_HEARTBEATS * self.settings.heartbeat_interval
        return await rows.fresh_connections(self.store, room_uuid, since)

    @property
    def recordings_dir(self) -> Path:
        """Where the files go (``<data_dir>/recordings``); its file system has the floor."""
        return self.settings.data_dir / "recordings"

    async def disk_state(self) -> DiskState:
        """Free space on the recordings' file system now, and the floor."""
        free = await asyncio.to_thread(self.free_space, self.recordings_dir)
        return DiskState(free=free, floor=self.settings.recording_min_free)

    async def start(self, sdk_app_id: int, room: RoomId, room_uuid: uuid.UUID) -> None:
        """Record the session from now on (a no-op if it already is, here or on another
        replica holding its lease).

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
            ours = room_uuid in self._leases
            now = time.time()
            if not await rows.acquire_lease(
                self.store, room_uuid, self.replica, now, self.lease_ttl
            ):
                logger.info("session %s is recorded by another replica", room_uuid)
                return
            self._leases.add(room_uuid)
            self._to_release.discard(room_uuid)
            logger.info("recording lease taken: %s records %s", self.replica, room_uuid)
            try:
                # A previous holder's unfinished files (it will never close them), listed
                # before ours exist; closed once we record, since reading them takes a while.
                left_over = [] if ours else await rows.unfinished(self.store, room_uuid)
                recorder = self._recorder(sdk_app_id, room, room_uuid)
                await recorder.start()
            except BaseException:
                self._to_release.add(room_uuid)
                self._spawn_stop(self._release_pending())
                raise
            self._recorders[room_uuid] = recorder
            self._spawn(self._forget_when_done(recorder))
            if left_over:
                self._spawn(self._close_left_over(left_over))

    async def stop(self, room_uuid: uuid.UUID, reason: str = "stopped") -> None:
        """Stop recording the session, finalising its files (a no-op if nobody records it).

        On a replica other than the lease's holder this revokes the lease; the holder
        stops at its next renewal (within a third of ``LEASE_TTL``).
        """
        async with self._lock:
            recorder = self._recorders.pop(room_uuid, None)
        if recorder is not None:
            await self._stop_recorder(recorder, reason)
        elif not self._closed and await rows.revoke_lease(self.store, room_uuid):
            logger.info("recording of %s revoked; its holder stops", room_uuid)

    def stop_soon(self, room_uuid: uuid.UUID, reason: str) -> None:
        """:meth:`stop` in a task of the service's (for a timer's callback)."""
        if not self._closed:
            self._spawn_stop(self.stop(room_uuid, reason))

    async def recover(self) -> int:
        """Close the rows a dead recorder left ``recording`` (``partial``, or ``failed``),
        of sessions whose lease has lapsed: never a live replica's."""
        if not self.clustered:
            await rows.expire_leases(self.store)  # a lone server's leases are all stale
        count = await self._close_left_over(await rows.orphans(self.store, time.time()), "crashed")
        if count:
            logger.info("closed %d recording(s) left unfinished by the last run", count)
        return count

    # -- leases -------------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        """Renew our leases, stop what we no longer hold, take over what lapsed.

        Anything slow (starting a recorder, reading a dead holder's files) runs in a
        task of its own, so a renewal is never late because of it.
        """
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                await self._renew()
                await self._release_pending()
                if self.clustered and not self._closed:
                    await self._take_over()
            except TAvKitError as exc:
                logger.warning("recording leases: %s", exc)
            except Exception:  # the renewals must outlive any one failure, or we record twice
                logger.exception("recording leases: unexpected failure")

    async def _renew(self) -> None:
        until = time.time() + self.lease_ttl
        lost = await rows.renew_leases(self.store, set(self._leases), self.replica, until)
        for room_uuid, holder in lost.items():
            # No lock (a start may hold it for seconds, and the next renewal is due):
            # nothing below awaits, so nobody sees these half done.
            self._leases.discard(room_uuid)
            self._to_release.discard(room_uuid)
            recorder = self._recorders.pop(room_uuid, None)
            if recorder is None:
                continue
            if holder is None:  # revoked by an admin's stop on another replica
                logger.info("recording of %s stopped through another replica", room_uuid)
                self._spawn_stop(recorder.stop("stopped"))
            else:
                logger.warning("recording lease of %s lost to %s: stopping", room_uuid, holder)
                self._spawn_stop(recorder.stop("lease-lost"))

    async def _take_over(self) -> None:
        """Record the open sessions whose holder stopped renewing; close what else is orphaned."""
        now = time.time()
        for room_uuid, sdk_app_id, room in await rows.takeover_candidates(self.store, now):
            if room_uuid in self._leases or room_uuid in self._taking or self._closed:
                continue
            # In a task of its own: starting a recorder takes a while, and the renewals
            # of the leases we hold must not wait for it.
            self._taking.add(room_uuid)
            self._spawn(self._take_over_one(sdk_app_id, room, room_uuid))
        if not self._sweeping:
            self._sweeping = True
            self._spawn(self._sweep_orphans())

    async def _sweep_orphans(self) -> None:
        """Close rows of sessions nobody holds (closed since their holder died, or stopped)."""
        try:
            await self._close_left_over(await rows.orphans(self.store, time.time()))
        except TAvKitError as exc:
            logger.warning("unfinished recordings not closed yet: %s", exc)
        finally:
            self._sweeping = False

    async def _take_over_one(self, sdk_app_id: int, room: RoomId, room_uuid: uuid.UUID) -> None:
        logger.info("session %s: its recorder's lease lapsed; taking over", room_uuid)
        try:
            await self.start(sdk_app_id, room, room_uuid)
        except DiskFloorError as exc:
            logger.warning("recording of %s not taken over: %s", room_uuid, exc)
            await quietly(rows.revoke_lease(self.store, room_uuid))
        except TAvKitError as exc:
            logger.warning("recording of %s not taken over: %s", room_uuid, exc)
        finally:
            self._taking.discard(room_uuid)

    async def _close_left_over(
        self, found: Sequence[RecordingRow], reason: str = "replica-lost"
    ) -> int:
        """Close rows a recorder that is gone left ``recording``, from what its file holds.

        Reading a file takes a while (all of it, for its digest): never in the way of the
        lease renewals.
        """
        for rec in found:
            path = self.settings.data_dir / rec.path
            info: RecordingInfo | None
            try:
                info = await asyncio.to_thread(probe, path)
            except (ServerError, OSError) as exc:
                logger.warning("recording %s cannot be read (%s): failed", rec.path, exc)
                info = None
            status = "failed" if info is None else "partial"
            await quietly(
                rows.finish(self.store, rec.id, status, info, reason, only_unfinished=True)
            )
        return len(found)

    async def _stop_recorder(self, recorder: SessionRecorder, reason: str) -> None:
        """Finalise a recorder's files, then let go of its session's lease."""
        await recorder.stop(reason)
        await self._let_go(recorder.room_uuid)

    async def _let_go(self, room_uuid: uuid.UUID) -> None:
        """Release the session's lease: nobody records it now (unless we started again)."""
        async with self._lock:
            if room_uuid in self._recorders or room_uuid not in self._leases:
                return
            self._to_release.add(room_uuid)
        await self._release_pending()

    async def _release_pending(self) -> None:
        """Release the leases we are done with; one that fails is still renewed, and retried."""
        for room_uuid in list(self._to_release):
            try:
                await rows.release_lease(self.store, room_uuid, self.replica, hand_over=False)
            except TAvKitError as exc:
                logger.warning("recording lease of %s not released yet: %s", room_uuid, exc)
                continue
            self._to_release.discard(room_uuid)
            self._leases.discard(room_uuid)

    # -- helpers ------------------------------------------------------------------------

    def _recorder(self, sdk_app_id: int, room: RoomId, room_uuid: uuid.UUID) -> SessionRecorder:
        """The session's recorder: from the SFU in an SFU app, else a mesh participant.

        An ``auto`` session is recorded by the mesh participant for its whole life: its
        members keep their connection with it after they switch to the SFU.
        """
        if self.sfu is not None and self.settings.media_mode_of(sdk_app_id) == "sfu":
            from tavkit.server.sfu.recorder import SfuSessionRecorder

            return SfuSessionRecorder(self, sdk_app_id, room, room_uuid, self.sfu)
        return SessionRecorder(self, sdk_app_id, room, room_uuid)

    def _session_opened(self, sdk_app_id: int, room: RoomId, room_uuid: uuid.UUID) -> None:
        if not self._closed:
            self._spawn(self._auto_start(sdk_app_id, room, room_uuid))

    async def _auto_start(self, sdk_app_id: int, room: RoomId, room_uuid: uuid.UUID) -> None:
        try:
            policy, _default = await self.policy(sdk_app_id)
            if policy == "auto":
                await self.start(sdk_app_id, room, room_uuid)
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
                self._spawn_stop(self._stop_recorder(recorder, "disk-floor"))

    async def _forget_when_done(self, recorder: SessionRecorder) -> None:
        await recorder.wait()
        async with self._lock:
            if self._recorders.get(recorder.room_uuid) is not recorder:
                return  # stopped by a caller that lets go once the files are closed
            del self._recorders[recorder.room_uuid]
        await self._let_go(recorder.room_uuid)

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
