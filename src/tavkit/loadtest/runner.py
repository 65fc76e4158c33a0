"""The load test's conductor: ramp participants up, run the traffic, check, and leave.

Phases (``Recorder.phase``)::

    media    (--media python) real TAvKit clients enter first
    ramp     participant i starts at i / ramp seconds; each enters and opens its socket
    traffic  everyone in: signals and messages flow for ``duration`` seconds
    drain    wait (bounded) for the last messages to be acknowledged and fanned out, and
             for every participant still getting back to reconnect and sync
    check    the server's member lists against the members this process holds
    leave    every participant sends ``leave`` and waits for close 1000

The consistency check reads ``GET /v1/admin/rooms`` with the admin's userSig (one
call for every room; signed with ``admin_key``); without the admin key, or if that is
refused, it asks ``GET /v1/rooms/{roomId}/users`` as a member of each room instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from tavkit.auth import gen_user_sig
from tavkit.errors import TAvKitError
from tavkit.loadtest.config import LoadConfig
from tavkit.loadtest.participant import Participant, Shared
from tavkit.loadtest.report import Consistency, LatencySummary, LoadReport, Recorder

__all__ = ["LoadTest", "run_loadtest"]

logger = logging.getLogger(__name__)

_PROGRESS_EVERY: Final = 0.5
_CHECK_ATTEMPTS: Final = 5
_CHECK_PAUSE: Final = 0.5
_KITS_PER_ROOM: Final = 2


async def run_loadtest(config: LoadConfig) -> LoadReport:
    """Run one load test against ``config.server`` and return its report."""
    return await LoadTest(config).run()


class LoadTest:
    """One run; ``recorder`` shows its live counters while :meth:`run` is under way."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.recorder = Recorder()
        self.participants: list[Participant] = []
        self._kits: dict[str, Any] = {}
        self._kit_rooms: dict[str, int] = {}

    async def run(self) -> LoadReport:
        """Ramp up, hold with traffic, drain, check consistency, leave; then report."""
        config, rec = self.config, self.recorder
        loop = asyncio.get_running_loop()
        started = loop.time()
        limits = httpx.Limits(
            max_connections=config.http_connections,
            max_keepalive_connections=config.http_connections,
        )
        async with httpx.AsyncClient(
            base_url=config.server.rstrip("/"), timeout=config.timeout, limits=limits
        ) as http:
            shared = Shared(
                config, rec, http, rest_slots=asyncio.Semaphore(config.http_connections)
            )
            kit_slots = self._kit_slots()
            for index in range(config.participants):
                if index not in kit_slots:
                    self.participants.append(Participant(shared, index))
            for p in self.participants:
                shared.room_sims.setdefault(p.room_id, []).append(p.user_id)
            progress = asyncio.create_task(self._progress())
            lives: list[asyncio.Task[None]] = []
            try:
                if kit_slots:
                    rec.phase = "media"
                    await self._start_kits(kit_slots)
                rec.phase = "ramp"
                lives = await self._ramp()
                await self._all_ready()
                rec.phase = "traffic"
                shared.traffic_until = loop.time() + config.duration
                shared.traffic.set()
                await asyncio.sleep(config.duration)
                rec.phase = "drain"
                await self._drain()
                rec.phase = "check"
                consistency = await self._check(http)
                replicas = self._replicas()
                rec.phase = "leave"
                await asyncio.gather(*(p.leave() for p in self.participants))
                media = await self._stop_kits()
            finally:
                for task in lives:
                    task.cancel()
                await asyncio.gather(*lives, return_exceptions=True)
                await self._stop_kits()
                progress.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await progress
            rec.phase = "done"
            self._notify()
        return LoadReport(
            run=config.run,
            server=config.server,
            participants=config.participants,
            rooms=config.rooms,
            duration=config.duration,
            elapsed=loop.time() - started,
            joined=rec.max_joined,
            latency={
                "join": LatencySummary.of(rec.join),
                "heartbeat": LatencySummary.of(rec.heartbeat),
                "signal": LatencySummary.of(rec.signal),
                "signalSameReplica": LatencySummary.of(rec.signal_same),
                "signalCrossReplica": LatencySummary.of(rec.signal_cross),
                "message": LatencySummary.of(rec.message),
                "messageSameReplica": LatencySummary.of(rec.message_same),
                "messageCrossReplica": LatencySummary.of(rec.message_cross),
            },
            signals_sent=rec.signals_sent,
            signals_received=rec.signals_received,
            signals_shed=rec.signals_shed,
            messages_supported=bool(rec.messages_supported) and config.messages > 0,
            messages_note=shared.messages_note
            or (None if config.messages else "disabled (--messages 0)"),
            messages_sent=rec.messages_sent,
            messages_acked=rec.messages_acked,
            messages_received=rec.messages_received,
            messages_expected=rec.messages_expected,
            errors=dict(rec.errors),
            error_samples=dict(rec.samples),
            drops=rec.drops,
            resumed=rec.resumed,
            reentered=rec.reentered,
            failed=rec.failed,
            consistency=consistency,
            media=media,
            moved=rec.moved,
            replicas=replicas,
        )

    # -- phases ----------------------------------------------------------------------------

    async def _ramp(self) -> list[asyncio.Task[None]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        lives = []
        for n, p in enumerate(self.participants):
            await asyncio.sleep(max(start + n / self.config.ramp - loop.time(), 0.0))
            lives.append(asyncio.create_task(p.live(), name=f"{p.user_id} life"))
        return lives

    async def _all_ready(self) -> None:
        config = self.config
        bound = config.recovery_timeout + 2 * config.timeout + 10
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound):
                for p in self.participants:
                    await p.ready.wait()

    async def _drain(self) -> None:
        rec = self.recorder
        loop = asyncio.get_running_loop()
        wait = self.config.drain_timeout
        deadline = loop.time() + wait
        while loop.time() < deadline:
            unsettled = [p for p in self.participants if not p.settled()]
            if not unsettled and rec.messages_received >= rec.messages_expected:
                break
            if any(p.getting_back for p in unsettled):
                # Deliveries are final only once everyone is back and synced: one still
                # reconnecting (after a restart, say) would otherwise be counted as a loss.
                # Its own recovery_timeout bounds this: then it gives up and is settled.
                deadline = max(deadline, loop.time() + wait)
            await asyncio.sleep(0.1)
        # Signals and fan-out to slower sockets may trail the acknowledgements a little.
        await asyncio.sleep(min(0.5, self.config.drain_timeout))

    def _replicas(self) -> dict[str, dict[str, int]]:
        """Enters per replica that answered them, and sockets per replica holding them now."""
        sockets = Counter(
            p.socket_replica for p in self.participants if p.in_room and p.socket_replica
        )
        enters = self.recorder.enter_replicas
        if not enters and not sockets:
            return {}
        return {"enters": dict(sorted(enters.items())), "sockets": dict(sorted(sockets.items()))}

    async def _check(self, http: httpx.AsyncClient) -> Consistency:
        """Compare, per room, the server's members with the ones this process holds."""
        result = Consistency(False, "admin", self.config.rooms, error="not checked")
        for attempt in range(_CHECK_ATTEMPTS):
            if attempt:
                await asyncio.sleep(_CHECK_PAUSE)
            held = self._held()
            try:
                server, source = await self._server_members(http)
            except _CheckError as exc:
                result = Consistency(False, "admin", self.config.rooms, error=str(exc))
                continue
            mismatched = tuple(
                {"roomId": room, "server": sorted(server.get(room, ())), "tool": sorted(members)}
                for room, members in sorted(held.items())
                if server.get(room, set()) != members
            )
            result = Consistency(not mismatched, source, self.config.rooms, mismatched)
            if result.passed:
                break
        return result

    def _held(self) -> dict[int, set[str]]:
        config = self.config
        held: dict[int, set[str]] = {config.room_of(i): set() for i in range(config.rooms)}
        for p in self.participants:
            if p.in_room:
                held[p.room_id].add(p.user_id)
        for user_id, kit in self._kits.items():
            if kit is not None and not kit.closed:
                held[self._kit_rooms[user_id]].add(user_id)
        return held

    async def _server_members(self, http: httpx.AsyncClient) -> tuple[dict[int, set[str]], str]:
        config = self.config
        ours = {config.room_of(i) for i in range(config.rooms)}
        if config.admin_key is None:  # no admin without the admin key
            return await self._members_by_room(http, ours), "users"
        admin = config.admin_user
        headers = {
            "X-TAvKit-SdkAppId": str(config.sdk_app_id),
            "X-TAvKit-UserId": admin,
            "X-TAvKit-UserSig": gen_user_sig(config.sdk_app_id, config.admin_key, admin),
        }
        try:
            response = await http.get("/v1/admin/rooms", headers=headers)
        except httpx.HTTPError as exc:
            raise _CheckError(f"admin rooms: {type(exc).__name__}") from exc
        if response.status_code == 200:
            members: dict[int, set[str]] = {}
            for room in response.json().get("rooms", []):
                if room.get("roomId") in ours:
                    members[int(room["roomId"])] = {str(m["userId"]) for m in room["members"]}
            return members, "admin"
        logger.info("admin rooms refused (HTTP %d): asking each room", response.status_code)
        return await self._members_by_room(http, ours), "users"

    async def _members_by_room(
        self, http: httpx.AsyncClient, rooms: Iterable[int]
    ) -> dict[int, set[str]]:
        """Ask ``GET /v1/rooms/{roomId}/users`` as one member the tool holds in each room."""
        members: dict[int, set[str]] = {}
        for room in rooms:
            asker = next((p for p in self.participants if p.room_id == room and p.in_room), None)
            if asker is None:
                continue  # nobody to ask as: only the admin view could tell
            try:
                response = await http.get(f"/v1/rooms/{room}/users", headers=asker._headers)
            except httpx.HTTPError as exc:
                raise _CheckError(f"room {room} users: {type(exc).__name__}") from exc
            if response.status_code != 200:
                raise _CheckError(f"room {room} users: HTTP {response.status_code}")
            members[room] = {str(m["userId"]) for m in response.json().get("members", [])}
        return members

    # -- media -----------------------------------------------------------------------------

    def _kit_slots(self) -> set[int]:
        """Indexes of the participants played by real TAvKit clients (``--media python``)."""
        config = self.config
        if config.media != "python":
            return set()
        slots = set()
        for room in range(min(config.media_rooms, config.rooms)):
            for k in range(_KITS_PER_ROOM):
                index = room + k * config.rooms
                if index < config.participants:
                    slots.add(index)
        return slots

    async def _start_kits(self, slots: set[int]) -> None:
        from tavkit.client import TAvKit, TestPattern

        config = self.config
        host = urlsplit(config.server).hostname or ""
        loopback = ["127.0.0.1"] if host in ("127.0.0.1", "localhost") else None
        for index in sorted(slots):
            user_id = config.user_id(index)
            kit = TAvKit(
                config.server,
                source=TestPattern(width=320, height=240, fps=15, variant=index % 4),
                host_addresses=loopback,
                video_bitrate=300_000,
                reporting=False,
            )
            self._kits[user_id] = kit
            self._kit_rooms[user_id] = config.room_of(index)
            try:
                await kit.start(
                    sdk_app_id=config.sdk_app_id,
                    user_id=user_id,
                    user_sig=gen_user_sig(config.sdk_app_id, config.key, user_id),
                    room_id=config.room_of(index),
                )
            except TAvKitError as exc:  # reported; the run goes on without this client
                self.recorder.seed_error(exc.to_dict(), f"media {user_id}")
                await kit.aclose()
                self._kits[user_id] = None

    async def _stop_kits(self) -> dict[str, Any] | None:
        if not self._kits:
            return None
        summary: dict[str, Any] = {"kits": len(self._kits), "started": 0, "peers": {}}
        for user_id, kit in self._kits.items():
            if kit is None:
                continue
            summary["started"] += 1
            summary["peers"][user_id] = {
                uid: {"videoFrames": s.video_frames, "audioFrames": s.audio_frames}
                for uid, s in kit.peers_seen.items()
                if uid in self._kits  # the simulated members send no media
            }
            for error in kit.errors:
                self.recorder.seed_error(error, f"media {user_id}")
            with contextlib.suppress(TAvKitError):
                await kit.hangup()
            await kit.aclose()
        self._kits = {}
        return summary

    # -- progress --------------------------------------------------------------------------

    async def _progress(self) -> None:
        while True:
            self._notify()
            await asyncio.sleep(_PROGRESS_EVERY)

    def _notify(self) -> None:
        if self.config.on_progress is not None:
            self.config.on_progress(self.recorder)


class _CheckError(Exception):
    """The server's member lists could not be read."""
