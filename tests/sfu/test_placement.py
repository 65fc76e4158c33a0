"""Several Janus: rooms placed by load, moved when their Janus dies, no ghost rooms.

Real Janus processes (``conftest.py``), a real tavkit server in front of two of them,
real SQLite; members are raw sockets where media does not matter (placement) and the
Python client where it does (the move).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tavkit.auth import gen_user_sig
from tavkit.server import AppConfig, Settings
from tavkit.server.sfu.janus import JanusSession, VideoRoomHandle
from tavkit.server.sfu.placement import Placements, choose, room_secret, shown
from tavkit.server.store.db import Store
from tavkit.server.store.models import AppRow, MemberRow, SessionRow
from tavkit.server.store.sfu_models import SfuRoomRow
from tavkit.server.store.unit_of_work import Outbox, transaction
from tavkit.testing import Participant, TavkitServer
from tavkit.testing.plugin import APP_ID
from tavkit.testing.server import FAST_TIMERS, Database, make_database, random_key

from .conftest import RunningJanus, launch, stop_janus
from .test_rooms import FRAMES, WITHIN, served_url, small_pattern, start_tavkit

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

REDIS_URL = os.environ.get("TAVKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_least_loaded_janus_first_ties_in_the_order_given() -> None:
    """The Janus to try are ordered by their members, fewest first, ties in the order the
    operator gave them; the one that just died is not tried."""
    urls = ("ws://a:1", "ws://b:1", "ws://c:1")
    assert choose(urls, {}) == list(urls)
    assert choose(urls, {"ws://a:1": 3, "ws://b:1": 1}) == ["ws://c:1", "ws://b:1", "ws://a:1"]
    assert choose(urls, {"ws://c:1": 2}, exclude=["ws://a:1"]) == ["ws://b:1", "ws://c:1"]


def test_a_room_secret_is_the_same_everywhere_and_differs_per_room_and_api_secret() -> None:
    """Every replica derives a room's VideoRoom secret alike (none is stored), another room
    or another API secret gives another one, and the API secret does not show in it; a
    Janus URL is logged without its path or credentials."""
    room = str(uuid.uuid4())
    assert room_secret("hush-hush", room) == room_secret("hush-hush", room)
    assert room_secret("hush-hush", room) != room_secret("hush-hush", str(uuid.uuid4()))
    assert room_secret("hush-hush", room) != room_secret("other", room)
    assert "hush" not in room_secret("hush-hush", room)
    assert len(room_secret(None, room)) >= 40
    assert shown("ws://user:pw@10.0.0.1:8188/janus?x=1") == "ws://10.0.0.1:8188"


@contextmanager
def two_janus_server(
    tmp_path: Path,
    urls: tuple[str, ...],
    secret: str,
    database: Database | None = None,
    **overrides: Any,
) -> Iterator[TavkitServer]:
    """A real tavkit server in SFU mode in front of several Janus (sharing ``secret``), on
    a fresh SQLite database or on ``database`` (another replica's)."""
    database = database or make_database(tmp_path)
    defaults: dict[str, Any] = {
        "apps": (AppConfig(APP_ID, random_key()),),
        "admin_key": random_key(),
        **FAST_TIMERS,
    }
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "data",
        database_url=database.url,
        media_mode="sfu",
        janus_urls=urls,
        janus_api_secret=secret,
        **{**defaults, **overrides},
    )
    server = TavkitServer(settings, database)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def second_janus(janus: RunningJanus, tmp_path: Path) -> Iterator[tuple[RunningJanus, Any]]:
    """Another Janus, with the module Janus's API secret (one secret for all, as documented)."""
    running, process = launch(tmp_path / "janus2", janus.api_secret)
    try:
        yield running, process
    finally:
        stop_janus(process)


@asynccontextmanager
async def inspecting(janus: RunningJanus) -> AsyncIterator[VideoRoomHandle]:
    """A VideoRoom handle of the test's own on ``janus``."""
    session = await JanusSession.connect(janus.url, api_secret=janus.api_secret)
    try:
        yield await session.attach_videoroom()
    finally:
        await session.close()


@asynccontextmanager
async def member_socket(url: str, key: str, user: str, room: int) -> AsyncIterator[str]:
    """Enter ``room`` as ``user`` and hold its signaling socket open; yields the room's UUID."""
    headers = {
        "X-TAvKit-SdkAppId": str(APP_ID),
        "X-TAvKit-UserId": user,
        "X-TAvKit-UserSig": gen_user_sig(APP_ID, key, user, 600),
    }
    async with httpx.AsyncClient(base_url=url, timeout=WITHIN) as http:
        answer = await http.post(f"/v1/rooms/{room}/enter", headers=headers)
    body = answer.json()
    assert answer.status_code == 200, body
    offered: Any = ["tavkit.v1", f"tavkit.token.{body['socketToken']}"]
    ws: ClientConnection
    async with connect(body["socketUrl"], subprotocols=offered, open_timeout=WITHIN) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        yield str(body["roomUuid"])


async def until(check: Any, what: str, within: float = WITHIN) -> None:
    """Poll the async ``check`` until it is true (20 s at most)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 (polling Janus or the store)
            await asyncio.sleep(0.1)
    assert await check(), what


async def test_rooms_go_to_the_janus_with_fewest_members_and_the_store_says_where(
    janus: RunningJanus, second_janus: tuple[RunningJanus, Any], tmp_path: Path
) -> None:
    """With two Janus, a two-member room goes to the first (a tie), the next room to the
    second (0 members against 2), and a third to the second again (1 against 2); each
    room exists only on its Janus, and the placement table names it."""
    other, _ = second_janus
    urls = (janus.url, other.url)
    with two_janus_server(tmp_path / "tavkit", urls, janus.api_secret) as server:
        key = server.key
        async with (
            inspecting(janus) as first,
            inspecting(other) as second,
            member_socket(server.url, key, "alice", 1) as room1,
        ):
            await until(lambda: first.room_exists(room1), "room 1 on the first Janus")
            async with member_socket(server.url, key, "bob", 1):
                await until(lambda: _has_participants(first, room1, 2), "both members in room 1")
                async with member_socket(server.url, key, "carol", 2) as room2:
                    await until(lambda: second.room_exists(room2), "room 2 on the second Janus")
                    async with member_socket(server.url, key, "dave", 3) as room3:
                        await until(lambda: second.room_exists(room3), "room 3 on the second")
                        assert not await first.room_exists(room2)
                        assert not await first.room_exists(room3)
                        assert not await second.room_exists(room1)
                        rows = dict(
                            server.database.execute("SELECT session_id, janus_url FROM sfu_rooms")
                        )
                        assert {uuid.UUID(k): v for k, v in rows.items()} == {
                            uuid.UUID(room1): janus.url,
                            uuid.UUID(room2): other.url,
                            uuid.UUID(room3): other.url,
                        }


async def test_two_replicas_put_a_session_on_the_janus_its_row_names(
    janus: RunningJanus, second_janus: tuple[RunningJanus, Any], tmp_path: Path
) -> None:
    """Two replicas on one database and Redis, each given both Janus: alice enters through
    the first, bob the same room through the second, which reads where the room is and
    joins it there (not on the emptier Janus); each receives the other's video."""
    other, _ = second_janus
    urls = (janus.url, other.url)
    prefix = f"tavkit-test-{uuid.uuid4().hex[:8]}:"
    shared = {"redis_url": REDIS_URL, "redis_prefix": prefix}
    with two_janus_server(
        tmp_path / "one", urls, janus.api_secret, replica_name="one", **shared
    ) as first:
        same = {"apps": first.settings.apps, "admin_key": first.settings.admin_key}
        with two_janus_server(
            tmp_path / "two",
            urls,
            janus.api_secret,
            first.database,
            replica_name="two",
            **shared,
            **same,
        ) as second:
            alice = await Participant.enter(
                first, "alice", host_addresses=[janus.address], source=small_pattern(0)
            )
            try:
                bob = await Participant.enter(
                    second, "bob", host_addresses=[janus.address], source=small_pattern(1)
                )
                try:
                    await bob.wait_for_video_from("alice", FRAMES, within=WITHIN)
                    await alice.wait_for_video_from("bob", FRAMES, within=WITHIN)
                    room = str(alice.room_uuid)
                    async with inspecting(janus) as there, inspecting(other) as elsewhere:
                        assert sorted(await there.participants(room)) == ["alice", "bob"]
                        assert not await elsewhere.room_exists(room)
                finally:
                    await bob.aclose()
            finally:
                await alice.aclose()


async def _has_participants(handle: VideoRoomHandle, room: str, count: int) -> bool:
    return len(await handle.participants(room)) >= count


async def test_members_move_to_another_janus_when_theirs_dies(
    janus: RunningJanus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Janus killed mid-call with another one up: the three members' room is made again
    on the other, each republishes and resubscribes, and frames from everyone advance
    again, with no error; neither the API secret nor the room's secret is logged. The
    test prints the gap it measured."""
    caplog.set_level(logging.INFO, logger="tavkit")
    doomed, process = launch(tmp_path / "doomed", janus.api_secret)
    names = ("alice", "bob", "carol")
    try:
        urls = (doomed.url, janus.url)  # a tie: the call goes to the first, the doomed one
        with two_janus_server(tmp_path / "tavkit", urls, janus.api_secret) as server:
            members = [
                await Participant.enter(
                    server, name, host_addresses=[janus.address], source=small_pattern(i)
                )
                for i, name in enumerate(names)
            ]
            try:
                for member in members:
                    for other in names:
                        if other != member.user_id:
                            await member.wait_for_video_from(other, FRAMES, within=WITHIN)
                room = members[0].room_uuid
                async with inspecting(janus) as survivor:
                    assert not await survivor.room_exists(str(room))
                    before = {m.user_id: _subscription(m) for m in members}
                    process.kill()
                    killed = time.monotonic()
                    gaps = await _resumed(members, before, killed)
                    for member in members:  # and they keep coming, audio too
                        for other in names:
                            if other != member.user_id:
                                await member.wait_for_video_from(other, FRAMES, more=True)
                                await member.wait_for_audio_from(other, FRAMES, more=True)
                    assert await survivor.room_exists(str(room))
                    assert sorted(await survivor.publishers(str(room))) == list(names)
                assert [m.errors for m in members] == [[], [], []]
                (row,) = server.database.execute("SELECT janus_url FROM sfu_rooms")
                assert row == (janus.url,)
                assert "moved to" in caplog.text
                for secret in (janus.api_secret, room_secret(janus.api_secret, str(room))):
                    assert secret not in caplog.text
                print(
                    "\nJanus killed -> first frame again from every other member: "
                    + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(gaps.items()))
                    + f"; load {os.getloadavg()[0]:.1f}"
                )
            finally:
                await asyncio.gather(*(m.aclose() for m in members), return_exceptions=True)
    finally:
        stop_janus(process)


def _subscription(member: Participant) -> int:
    room = member.kit._room
    assert room is not None and room.sfu is not None
    return room.sfu._subscription


async def _resumed(
    members: list[Participant], before: dict[str, int], killed: float
) -> dict[str, float]:
    """Seconds from the kill until each member decodes a frame from every other through a
    subscription made after it."""
    gaps: dict[str, float] = {}
    counts: dict[str, dict[str, int]] = {}
    async with asyncio.timeout(WITHIN * 2):
        while len(gaps) < len(members):
            for member in members:
                if member.user_id in gaps:
                    continue
                others = [m.user_id for m in members if m is not member]
                if member.user_id not in counts:
                    if _subscription(member) > before[member.user_id]:
                        counts[member.user_id] = {o: member.video_frames_from(o) for o in others}
                    continue
                seen = counts[member.user_id]
                if all(member.video_frames_from(o) > seen[o] for o in others):
                    gaps[member.user_id] = time.monotonic() - killed
            await asyncio.sleep(0.02)
    return gaps


async def test_a_server_killed_mid_call_leaves_no_room_once_restarted(
    janus: RunningJanus, tmp_path: Path
) -> None:
    """``tavkit serve`` killed (SIGKILL) with a member in an SFU room leaves that room in
    Janus; restarted on the same database, it closes the session once the member's
    heartbeat times out and destroys the room, deleting its placement row."""
    key = random_key()
    database = tmp_path / "tavkit.db"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    env = {
        **clean,
        "TAVKIT_DATA_DIR": str(tmp_path / "data"),
        "TAVKIT_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "TAVKIT_JANUS_API_SECRET": janus.api_secret,
        "TAVKIT_HEARTBEAT_INTERVAL": "1",
        "TAVKIT_HEARTBEAT_TIMEOUT": "3",
        "TAVKIT_CLOSE_GRACE": "0.2",
        "TAVKIT_SWEEP_INTERVAL": "0.1",
    }
    args = ["serve", "--port", "0", "--app", f"{APP_ID}:{key}", "--log-level", "warning"]
    args += ["--media-mode", "sfu", "--janus-url", janus.url]
    async with inspecting(janus) as inspector:
        process = start_tavkit(args, env)
        try:
            url = await asyncio.wait_for(asyncio.to_thread(served_url, process), 60)
            async with member_socket(url, key, "alice", 9) as room:
                await until(lambda: inspector.room_exists(room), "the room in Janus")
                process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(process.wait, 30)
        finally:
            if process.poll() is None:
                process.kill()
        assert await inspector.room_exists(room)  # the ghost a killed server leaves

        process = start_tavkit(args, env)
        try:
            await asyncio.wait_for(asyncio.to_thread(served_url, process), 60)
            await until(lambda: _gone(inspector, room), "the ghost room destroyed", within=30)
            await until(lambda: _no_rows(database), "its placement row deleted")
        finally:
            process.send_signal(signal.SIGINT)
            await asyncio.to_thread(process.wait, 30)


async def _gone(inspector: VideoRoomHandle, room: str) -> bool:
    return not await inspector.room_exists(room)


async def _no_rows(database: Path) -> bool:
    with sqlite3.connect(database, timeout=15) as conn:
        return conn.execute("SELECT COUNT(*) FROM sfu_rooms").fetchone()[0] == 0


async def test_the_placement_table_counts_loads_and_keeps_live_rows_on_both_databases(
    database: Database,
) -> None:
    """On SQLite and PostgreSQL: each Janus's load is its open sessions' open members; a
    row names where a room is; moving a row off a dead Janus works, one on a live Janus
    is kept (another replica placed it); the sweep deletes the row of a closed session
    whose Janus is no longer configured, and leaves open sessions' rows alone."""
    a, b = "ws://10.0.0.1:8188", "ws://10.0.0.2:8188"
    s1, s2, s3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store = Store.open(database.url, schema=database.schema)
    try:
        await store.migrate()
        now = time.time()

        async def populate(s: AsyncSession, _: Outbox) -> None:
            await s.merge(AppRow(sdk_app_id=APP_ID, created_at=now))
            for sid, room in ((s1, 1), (s2, 2)):
                s.add(SessionRow(id=sid, sdk_app_id=APP_ID, room_id=room, opened_at=now))
            s.add(
                SessionRow(
                    id=s3,
                    sdk_app_id=APP_ID,
                    room_id=3,
                    opened_at=now,
                    closed_at=now,
                    close_reason="empty",
                )
            )
            await s.flush()
            members = [(s1, 1, "alice", None), (s1, 1, "bob", None), (s1, 1, "carl", now)]
            members += [(s2, 2, "dave", None)]
            for sid, room, user, left in members:
                s.add(
                    MemberRow(
                        session_id=sid,
                        sdk_app_id=APP_ID,
                        room_id=room,
                        user_id=user,
                        connection_id=f"c-{user}",
                        joined_at=now,
                        last_heartbeat=now,
                        left_at=left,
                        leave_reason="exit" if left else None,
                    )
                )
            s.add(SfuRoomRow(session_id=s1, janus_url=a, placed_at=now))
            s.add(SfuRoomRow(session_id=s2, janus_url=b, placed_at=now))
            s.add(SfuRoomRow(session_id=s3, janus_url="ws://gone:1", placed_at=now))

        await transaction(store, "populating", populate)
        placements = Placements((a, b), api_secret="hush", store=store)
        assert await placements.loads() == {a: 2, b: 1}
        assert await placements.where(str(s1)) == a
        assert await placements.where(str(uuid.uuid4())) is None
        assert await placements._record(str(s2), a, dead=set()) == b  # b is alive: kept
        assert await placements._record(str(s1), b, dead={a}) == b  # a died: moved
        assert await placements.loads() == {b: 3}
        assert await placements.sweep() == 1
        assert await placements.where(str(s3)) is None
        assert await placements.where(str(s2)) == b
        await placements.forget(str(s2))
        assert await placements.where(str(s2)) is None
    finally:
        await store.close()
