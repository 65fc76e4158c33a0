"""The signaling socket over a real server, spoken to with plain ``websockets`` clients."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket as stdlib_socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tavkit.server.settings import parse_networks
from tavkit.server.signaling.tokens import load_or_create_secret, mint, verify

from ._util import eventually

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

LOOPBACK = parse_networks("127.0.0.0/8")
TIMEOUT = 10.0
Frame = dict[str, Any]


def cand(address: str) -> str:
    """A host candidate line for ``address``."""
    return f"candidate:1 1 udp 2122260223 {address} 50000 typ host generation 0"


@pytest.fixture
def loopback_server(sqlite_server_factory: ServerFactory) -> RunningServer:
    """A server that only relays loopback candidates, as every socket test runs it."""
    return sqlite_server_factory(ice_allowed_networks=LOOPBACK)


@pytest.fixture
async def http(loopback_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the loopback server."""
    async with httpx.AsyncClient(base_url=loopback_server.url, timeout=30) as client:
        yield client


async def enter(http: httpx.AsyncClient, server: RunningServer, user: str, room: int) -> Frame:
    """Enter ``room`` as ``user`` over REST, asserting success."""
    response = await http.post(f"/v1/rooms/{room}/enter", headers=server.headers(user))
    assert response.status_code == 200, response.text
    body: Frame = response.json()
    return body


@asynccontextmanager
async def socket(
    server: RunningServer, token: str | None, **options: Any
) -> AsyncIterator[ClientConnection]:
    """A WebSocket to the server's signaling endpoint, offering ``token`` the way clients do
    (``token=None``: no token offered at all)."""
    offered = ["tavkit.v1"] if token is None else ["tavkit.v1", f"tavkit.token.{token}"]
    async with connect(
        server.ws_url,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=2,
        subprotocols=offered,  # type: ignore[arg-type]
        **options,
    ) as ws:
        yield ws


async def frame(ws: ClientConnection, within: float = TIMEOUT) -> Frame:
    """The next frame, decoded."""
    text = await asyncio.wait_for(ws.recv(), within)
    decoded: Frame = json.loads(text)
    return decoded


async def until(
    ws: ClientConnection, kind: str, within: float = TIMEOUT
) -> tuple[Frame, list[Frame]]:
    """Read up to the first frame of type ``kind``; return it and the frames before it."""
    skipped = []
    async with asyncio.timeout(within):
        while (got := await frame(ws)).get("type") != kind:
            skipped.append(got)
    return got, skipped


def ping_t() -> float:
    """A fresh positive ``t`` for a ping, so its pong can be told from the others."""
    return float(1 + secrets.randbelow(2**31))


async def sync(ws: ClientConnection) -> list[Frame]:
    """Round-trip a ping; return whatever arrived before its pong."""
    t = ping_t()
    await ws.send(json.dumps({"type": "ping", "t": t}))
    skipped = []
    while True:
        pong, before = await until(ws, "pong")
        skipped += before
        if pong["t"] == t:
            return skipped


async def closed(ws: ClientConnection, within: float = TIMEOUT) -> tuple[int, list[Frame]]:
    """Read until the server closes; return the close code and the frames before it."""
    frames = []
    async with asyncio.timeout(within):
        try:
            while True:
                frames.append(json.loads(await ws.recv()))
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "the server did not send a close frame"
            return exc.rcvd.code, frames


@asynccontextmanager
async def member(
    http: httpx.AsyncClient, server: RunningServer, user: str, room: int
) -> AsyncIterator[tuple[ClientConnection, Frame]]:
    """Enter ``room`` and open the socket; yield it with its welcome."""
    entered = await enter(http, server, user, room)
    async with socket(server, entered["socketToken"]) as ws:
        welcome = await frame(ws)
        assert welcome["type"] == "welcome", welcome
        yield ws, welcome


def expired(server: RunningServer, token: str) -> str:
    """``token``'s claims signed by ``server``'s secret, but past their window 10 s ago."""
    secret = load_or_create_secret(server.settings.data_dir)
    claims = verify(secret, token)
    return mint(
        secret,
        sdk_app_id=claims.sdk_app_id,
        room_uuid=claims.room_uuid,
        user_id=claims.user_id,
        connection_id=claims.connection_id,
        ttl=-10,
    )


def assert_error(got: Frame, code: int, *, ref: str | None = None) -> str:
    """Assert ``got`` is an ``error`` frame of server ``code``; return its message."""
    assert got["type"] == "error", got
    assert (got["module"], got["errorCode"]) == ("server", code), got
    assert got.get("ref") == ref, got
    return str(got["errorMsg"])


# --- authentication ----------------------------------------------------------------------


async def test_no_token_is_refused_with_4401(loopback_server):
    """Without a token the socket gets error 10005 and is closed with 4401."""
    async with socket(loopback_server, None) as ws:
        code, frames = await closed(ws)
    assert code == 4401
    assert "token" in assert_error(frames[0], 10005)
    assert len(frames) == 1


async def test_bad_and_forged_tokens_are_refused(loopback_server, http):
    """A garbled token, one signed with another secret, or a tampered one: 10005 and 4401."""
    entered = await enter(http, loopback_server, "alice", 1)
    token = entered["socketToken"]
    forged = mint(
        b"x" * 32,
        sdk_app_id=loopback_server.app_id,
        room_uuid=uuid.UUID(entered["roomUuid"]),
        user_id="alice",
        connection_id="c",
        ttl=60,
    )
    for bad in ("garbage", token[:-4] + "AAAA", forged, "a" * 5000):
        async with socket(loopback_server, bad) as ws:
            code, frames = await closed(ws)
        assert code == 4401
        assert_error(frames[0], 10005)


async def test_token_for_another_rooms_session_is_refused(loopback_server, http):
    """A validly signed token binding alice to bob's session is refused: she is not in it."""
    alice = await enter(http, loopback_server, "alice", 1)
    bob = await enter(http, loopback_server, "bob", 2)
    secret = load_or_create_secret(loopback_server.settings.data_dir)
    claims = {"sdk_app_id": loopback_server.app_id, "user_id": "alice", "ttl": 60}
    crossed = mint(secret, room_uuid=uuid.UUID(bob["roomUuid"]), connection_id="x", **claims)
    async with socket(loopback_server, crossed) as ws:
        code, frames = await closed(ws)
    assert code == 4401
    assert "no longer in the room" in assert_error(frames[0], 10005)
    # alice's own token still works: the refusal changed nothing.
    async with socket(loopback_server, alice["socketToken"]) as ws:
        assert (await frame(ws))["type"] == "welcome"


async def test_expired_token_opens_no_first_socket_but_resumes_one(loopback_server, http):
    """Past its TTL a token is refused for a first socket, yet resumes a connection that had one."""
    late = await enter(http, loopback_server, "late", 3)
    async with socket(loopback_server, expired(loopback_server, late["socketToken"])) as ws:
        code, frames = await closed(ws)
    assert code == 4401
    assert "expired" in assert_error(frames[0], 10005)

    early = await enter(http, loopback_server, "early", 3)
    async with socket(loopback_server, early["socketToken"]) as ws:
        assert (await frame(ws))["resumed"] is False
    async with socket(loopback_server, expired(loopback_server, early["socketToken"])) as ws:
        welcome = await frame(ws)
    assert welcome["type"] == "welcome" and welcome["resumed"] is True


# --- welcome and relaying ------------------------------------------------------------------


async def test_welcome_names_the_connection_and_the_others(loopback_server, http):
    """welcome carries v1, the session, this connection and the other members."""
    async with member(http, loopback_server, "alice", 5) as (alice, first):
        assert first["v"] == 1 and first["members"] == [] and first["resumed"] is False
        assert first["heartbeatTimeout"] == loopback_server.settings.heartbeat_timeout
        async with member(http, loopback_server, "bob", 5) as (_bob, second):
            assert second["roomUuid"] == first["roomUuid"]
            assert second["userId"] == "bob" and second["connectionId"] != first["connectionId"]
            assert [m["userId"] for m in second["members"]] == ["alice"]
            joined, _ = await until(alice, "member-joined")
            assert joined["member"] == {
                "userId": "bob",
                "joinedAt": joined["member"]["joinedAt"],
                "muted": False,
                "camera": True,
                "publish": 84,
            }


async def test_a_mesh_room_says_so_and_refuses_media_signal(loopback_server, http):
    """A mesh server's enter and welcome say mediaMode mesh, and a media-signal (SFU
    rooms only) is refused with 10004 and its ref, the socket staying open."""
    assert (await enter(http, loopback_server, "bob", 6))["mediaMode"] == "mesh"
    async with member(http, loopback_server, "alice", 6) as (alice, welcome):
        assert welcome["mediaMode"] == "mesh"
        offer = {"description": {"type": "offer", "sdp": "v=0\r\n"}}
        await alice.send(
            json.dumps({"type": "media-signal", "pc": "publish", "data": offer, "id": "m1"})
        )
        error, _ = await until(alice, "error")
        assert (error["errorCode"], error["ref"]) == (10004, "m1")
        assert "media is a mesh" in error["errorMsg"]
        await alice.send(json.dumps({"type": "ping", "t": 1}))
        await until(alice, "pong")


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_two_members_relay_offer_answer_and_candidates(server_factory):
    """Offer, answer and trickled candidates reach the addressee; foreign candidates do not."""
    server = server_factory(ice_allowed_networks=LOOPBACK)
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        f"a={cand('127.0.0.1')}\r\na={cand('192.168.1.7')}\r\n"
        f"a={cand('0c2a4d4e-1111-4222-8333-444455556666.local')}\r\na=end-of-candidates\r\n"
    )
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "alice", 9) as (alice, _),
        member(http, server, "bob", 9) as (bob, _),
    ):
        offer = {"description": {"type": "offer", "sdp": sdp}}
        await bob.send(json.dumps({"type": "signal", "to": "alice", "data": offer}))
        got, _ = await until(alice, "signal")
        assert got["from"] == "bob"
        assert got["data"]["description"]["type"] == "offer"
        relayed = got["data"]["description"]["sdp"]
        assert cand("127.0.0.1") in relayed and "a=end-of-candidates\r\n" in relayed
        assert "192.168.1.7" not in relayed and ".local" not in relayed

        answer = {"description": {"type": "answer", "sdp": "v=0\r\n"}}
        await alice.send(json.dumps({"type": "signal", "to": "bob", "data": answer}))
        got, _ = await until(bob, "signal")
        assert got == {"type": "signal", "from": "alice", "data": answer}

        good = {"candidate": cand("127.0.0.2"), "sdpMid": "0", "sdpMLineIndex": 0}
        bad = {**good, "candidate": cand("10.1.2.3")}
        for data in ({"candidate": bad}, {"candidate": good}, {"candidate": None}):
            await alice.send(json.dumps({"type": "signal", "to": "bob", "data": data}))
        first, _ = await until(bob, "signal")
        second, _ = await until(bob, "signal")
        assert first["data"] == {"candidate": good}
        assert second["data"] == {"candidate": None}


async def test_signal_outside_the_session_is_refused(loopback_server, http):
    """A signal to a member of another session (or to oneself) is error 10004 with ref."""
    async with (
        member(http, loopback_server, "alice", 11) as (alice, _),
        member(http, loopback_server, "carol", 12) as (carol, _),
    ):
        data = {"description": {"type": "offer", "sdp": "v=0\r\n"}}
        for to, ref in (("carol", "s1"), ("alice", "s2"), ("nobody", "s3")):
            await alice.send(json.dumps({"type": "signal", "to": to, "data": data, "id": ref}))
            assert "signal.to" in assert_error(await frame(alice), 10004, ref=ref)
        assert await sync(carol) == []
        assert await sync(alice) == []


# --- bad input -----------------------------------------------------------------------------


async def test_malformed_frames_get_errors_and_the_socket_stays(loopback_server, http):
    """Non-JSON is 10003; unknown types, wrong types and binary frames 10004; still connected."""
    async with member(http, loopback_server, "alice", 20) as (ws, _):
        await ws.send("not json")
        assert "JSON" in assert_error(await frame(ws), 10003)
        await ws.send(json.dumps({"type": "dance", "id": "d1"}))
        assert "frame.type" in assert_error(await frame(ws), 10004, ref="d1")
        await ws.send(json.dumps({"type": "state", "muted": "yes", "camera": True, "id": "s"}))
        assert "state.muted" in assert_error(await frame(ws), 10004, ref="s")
        await ws.send(json.dumps({"type": "signal", "to": 42, "data": {}}))
        assert "signal.to" in assert_error(await frame(ws), 10004)
        await ws.send(b'{"type": "ping", "t": 1}')
        assert "binary" in assert_error(await frame(ws), 10004)
        assert await sync(ws) == []


async def test_frames_over_64_kib_close_with_1009(loopback_server, http):
    """A frame of exactly 64 KiB is served; one byte more closes the socket with 1009."""
    async with member(http, loopback_server, "alice", 21) as (ws, _):
        head = '{"type":"ping","t":7,"pad":"'
        exact = head + "x" * (64 * 1024 - len(head) - 2) + '"}'
        assert len(exact.encode()) == 64 * 1024
        await ws.send(exact)
        assert await frame(ws) == {"type": "pong", "t": 7}
        await ws.send(exact[:-2] + 'x"}')
        code, frames = await closed(ws)
    assert code == 1009
    assert frames == []


async def test_a_flood_is_rate_limited_without_hurting_others(loopback_server, http):
    """300 frames at once: the burst is served, the rest dropped with an error; bob unaffected."""
    async with (
        member(http, loopback_server, "alice", 22) as (alice, _),
        member(http, loopback_server, "bob", 22) as (bob, _),
    ):
        await until(alice, "member-joined")
        for i in range(300):
            await alice.send(json.dumps({"type": "ping", "t": i}))
        assert await sync(bob) == []
        frames = await drain(alice)
        pongs = [f for f in frames if f["type"] == "pong"]
        errors = [f for f in frames if f["type"] == "error"]
        assert 100 <= len(pongs) < 300
        assert errors and all("rate limited" in assert_error(e, 10004) for e in errors)
        assert len(errors) < 10


async def drain(ws: ClientConnection) -> list[Frame]:
    """Every frame before the pong of a marker ping, pinging until the bucket admits one."""
    frames: list[Frame] = []
    markers: set[float] = set()
    async with asyncio.timeout(3 * TIMEOUT):
        while True:
            marker = -ping_t()  # flood pings count up from 0; markers are negative
            markers.add(marker)
            await ws.send(json.dumps({"type": "ping", "t": marker}))
            with suppress(TimeoutError):
                while True:
                    got = await frame(ws, within=0.3)
                    if got["type"] == "pong" and got["t"] in markers:
                        return frames
                    frames.append(got)


# --- room events ---------------------------------------------------------------------------


async def test_state_is_broadcast_to_the_others(loopback_server, http):
    """state becomes member-state for the others and is what the room reports."""
    async with (
        member(http, loopback_server, "alice", 30) as (alice, _),
        member(http, loopback_server, "bob", 30) as (bob, _),
    ):
        await alice.send(json.dumps({"type": "state", "muted": True, "camera": False}))
        got, _ = await until(bob, "member-state")
        assert got == {"type": "member-state", "userId": "alice", "muted": True, "camera": False}
        assert [f for f in await sync(alice) if f["type"] == "member-state"] == []
        users = await http.get("/v1/rooms/30/users", headers=loopback_server.headers("bob"))
        by_user = {m["userId"]: m for m in users.json()["members"]}
        assert (by_user["alice"]["muted"], by_user["alice"]["camera"]) == (True, False)


async def test_leave_exits_and_closes_with_1000(loopback_server, http):
    """leave takes the member out (others get member-left exit) and closes with 1000."""
    async with (
        member(http, loopback_server, "alice", 31) as (alice, _),
        member(http, loopback_server, "bob", 31) as (bob, _),
    ):
        await alice.send(json.dumps({"type": "leave"}))
        code, _ = await closed(alice)
        assert code == 1000
        left, _ = await until(bob, "member-left")
        assert left == {"type": "member-left", "userId": "alice", "reason": "exit"}
    response = await http.post("/v1/rooms/31/heartbeat", headers=loopback_server.headers("alice"))
    assert response.json()["errorCode"] == 14004


async def test_leave_then_an_abrupt_close_still_exits(loopback_server, http):
    """Members that drop their socket right after leave (a closing tab) still exit."""
    for room in (32, 33, 34):
        async with member(http, loopback_server, "bob", room) as (bob, welcome):
            async with member(http, loopback_server, "alice", room) as (alice, _):
                await until(bob, "member-joined")
                await alice.send(json.dumps({"type": "leave"}))
                alice.transport.abort()
            left, _ = await until(bob, "member-left")
            assert left == {"type": "member-left", "userId": "alice", "reason": "exit"}
            await bob.send(json.dumps({"type": "leave"}))
            bob.transport.abort()

        async def everyone_left(room_uuid: str = welcome["roomUuid"]) -> dict[str, str] | None:
            # The leave frame and this request travel on different connections: poll.
            headers = loopback_server.admin_headers()
            session = await http.get(f"/v1/sessions/{room_uuid}", headers=headers)
            reasons = {m["userId"]: m["leaveReason"] for m in session.json()["members"]}
            return reasons if all(reasons.values()) else None

        assert await eventually(everyone_left, within=10) == {"alice": "exit", "bob": "exit"}


async def test_entering_again_replaces_the_old_socket(loopback_server, http):
    """The same user entering again: old socket gets replaced + 4001; others see left, joined."""
    async with (
        member(http, loopback_server, "alice", 32) as (old, _),
        member(http, loopback_server, "bob", 32) as (bob, _),
    ):
        await enter(http, loopback_server, "alice", 32)
        code, frames = await closed(old)
        assert code == 4001
        assert frames[-1] == {"type": "replaced"}
        left, _ = await until(bob, "member-left")
        assert left["reason"] == "replaced"
        joined, _ = await until(bob, "member-joined")
        assert joined["member"]["userId"] == "alice"


async def test_admin_remove_closes_with_4002(loopback_server, http):
    """An admin removing a member: its socket gets removed + 4002; the others member-left."""
    async with (
        member(http, loopback_server, "alice", 33) as (alice, _),
        member(http, loopback_server, "bob", 33) as (bob, _),
    ):
        response = await http.post(
            "/v1/admin/rooms/33/users/alice/remove", headers=loopback_server.admin_headers()
        )
        assert response.status_code == 200, response.text
        code, frames = await closed(alice)
        assert (code, frames[-1]) == (4002, {"type": "removed", "reason": "removed"})
        left, _ = await until(bob, "member-left")
        assert left == {"type": "member-left", "userId": "alice", "reason": "removed"}


async def test_admin_close_closes_every_socket_with_4003(loopback_server, http):
    """An admin closing the room: every socket gets room-closed + 4003."""
    async with (
        member(http, loopback_server, "alice", 34) as (alice, _),
        member(http, loopback_server, "bob", 34) as (bob, _),
    ):
        response = await http.post(
            "/v1/admin/rooms/34/close", headers=loopback_server.admin_headers()
        )
        assert response.status_code == 200, response.text
        for ws in (alice, bob):
            code, frames = await closed(ws)
            assert code == 4003
            assert frames[-1]["type"] == "room-closed" and frames[-1]["reason"]


# --- resume and timeout --------------------------------------------------------------------


@pytest.mark.parametrize("database", ["sqlite", "postgres"], indirect=True)
async def test_reconnecting_resumes_without_the_others_noticing(server_factory):
    """A socket closed without leave reconnects with its token: resumed, membership intact."""
    server = server_factory(ice_allowed_networks=LOOPBACK)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await enter(http, server, "alice", 40)
        async with member(http, server, "bob", 40) as (bob, _):
            async with socket(server, entered["socketToken"]) as first:
                welcome = await frame(first)
                assert welcome["resumed"] is False
            async with socket(server, entered["socketToken"]) as again:
                welcome = await frame(again)
                assert welcome["type"] == "welcome" and welcome["resumed"] is True
                assert [m["userId"] for m in welcome["members"]] == ["bob"]
                data = {"description": {"type": "offer", "sdp": "v=0\r\n"}}
                await bob.send(json.dumps({"type": "signal", "to": "alice", "data": data}))
                got, _ = await until(again, "signal")
                assert got["from"] == "bob"
            assert [f for f in await sync(bob) if f["type"] == "member-left"] == []


async def test_a_newer_socket_takes_over_a_half_open_one(loopback_server, http):
    """Two sockets with one token: the newer wins, the older is closed with 4001."""
    entered = await enter(http, loopback_server, "alice", 41)
    async with socket(loopback_server, entered["socketToken"]) as older:
        assert (await frame(older))["type"] == "welcome"
        async with socket(loopback_server, entered["socketToken"]) as newer:
            assert (await frame(newer))["resumed"] is True
            code, _ = await closed(older)
            assert code == 4001
            assert await sync(newer) == []


async def test_a_silent_member_times_out(sqlite_server_factory):
    """A silent member is removed: it gets removed(timeout) + 4002, the others member-left."""
    server = sqlite_server_factory(
        ice_allowed_networks=LOOPBACK, heartbeat_interval=0.5, heartbeat_timeout=2.0
    )
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "alice", 42) as (alice, _),
        member(http, server, "bob", 42) as (bob, _),
    ):
        deadline = time.monotonic() + TIMEOUT
        left = None
        while left is None and time.monotonic() < deadline:
            for got in await sync(bob):  # bob keeps talking, so only alice goes silent
                if got["type"] == "member-left":
                    left = got
            await asyncio.sleep(0.1)
        assert left == {"type": "member-left", "userId": "alice", "reason": "timeout"}
        code, frames = await closed(alice)
        assert (code, frames[-1]) == (4002, {"type": "removed", "reason": "timeout"})


async def test_a_dropped_socket_shows_its_member_reconnecting_until_it_resumes(
    loopback_server, http
):
    """The others see member-connection reconnecting on a drop and connected on the resume."""
    entered = await enter(http, loopback_server, "alice", 43)
    async with member(http, loopback_server, "bob", 43) as (bob, _):
        async with socket(loopback_server, entered["socketToken"]) as first:
            assert (await frame(first))["type"] == "welcome"
        away, before = await until(bob, "member-connection")
        assert away == {"type": "member-connection", "userId": "alice", "status": "reconnecting"}
        assert [f for f in before if f["type"] == "member-left"] == []
        async with socket(loopback_server, entered["socketToken"]) as again:
            assert (await frame(again))["resumed"] is True
            back, _ = await until(bob, "member-connection")
            assert back == {"type": "member-connection", "userId": "alice", "status": "connected"}
            await again.send(json.dumps({"type": "leave"}))
            assert (await closed(again))[0] == 1000
        left, before = await until(bob, "member-left")
        assert left["reason"] == "exit"
        assert [f for f in before if f["type"] == "member-connection"] == []


async def test_a_silent_socket_shows_reconnecting_and_a_frame_brings_it_back(
    sqlite_server_factory,
):
    """A member quiet past two heartbeats is shown reconnecting; its next frame, connected."""
    server = sqlite_server_factory(
        ice_allowed_networks=LOOPBACK, heartbeat_interval=0.5, heartbeat_timeout=10.0
    )
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        member(http, server, "alice", 44) as (alice, _),
        member(http, server, "bob", 44) as (bob, _),
    ):
        away = None
        async with asyncio.timeout(TIMEOUT):
            while away is None:  # bob keeps talking, so only alice goes silent
                away = next((f for f in await sync(bob) if f["type"] == "member-connection"), None)
                await asyncio.sleep(0.1)
        assert away == {"type": "member-connection", "userId": "alice", "status": "reconnecting"}
        await sync(alice)  # alice speaks again: the socket never closed
        back, before = await until(bob, "member-connection")
        assert back["status"] == "connected"
        assert [f for f in before if f["type"] == "member-left"] == []


async def test_leaving_or_being_replaced_never_shows_reconnecting(loopback_server, http):
    """Only a drop is a drop: leave, and entering again elsewhere, send no member-connection."""
    async with member(http, loopback_server, "bob", 45) as (bob, _):
        entered = await enter(http, loopback_server, "alice", 45)
        async with socket(loopback_server, entered["socketToken"]) as alice:
            assert (await frame(alice))["type"] == "welcome"
            await enter(http, loopback_server, "alice", 45)  # the same user, elsewhere
            assert (await closed(alice))[0] == 4001
        frames = await sync(bob)
        assert [f["type"] for f in frames if f["type"] == "member-connection"] == []


# --- a slow reader -------------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_dropped_alone(sqlite_server_factory):
    """Frames piling up for a client that does not read end its socket, and nobody else's."""
    server = sqlite_server_factory(
        ice_allowed_networks=LOOPBACK, max_members=8, heartbeat_timeout=300
    )
    # alice reads nothing: a tiny receive buffer and a one-message client queue.
    raw = stdlib_socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    raw.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    raw.setblocking(False)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        AsyncExitStack() as stack,
    ):
        entered = await enter(http, server, "alice", 60)
        alice = await stack.enter_async_context(
            socket(server, entered["socketToken"], sock=raw, compression=None, max_queue=1)
        )
        assert (await frame(alice))["type"] == "welcome"
        senders = [
            (await stack.enter_async_context(member(http, server, f"s{i}", 60)))[0]
            for i in range(6)
        ]
        # Big offers first, to fill every buffer between the server and alice (random hex,
        # which deflate cannot shrink), then small candidates to fill her send queue.
        offer = {"description": {"type": "offer", "sdp": secrets.token_hex(30 * 1024)}}
        candidate = {"candidate": {"candidate": cand("127.0.0.1"), "sdpMid": "0"}}
        for data, count in ((offer, 14), (candidate, 60)):
            text = json.dumps({"type": "signal", "to": "alice", "data": data})
            for sender in senders:
                for _ in range(count):
                    await sender.send(text)
        # The others are still served...
        for sender in senders:
            assert [f for f in await sync(sender) if f["type"] == "member-left"] == []
        # ...while alice's socket ends once she reads again, her membership untouched.
        async with asyncio.timeout(30):
            with pytest.raises(ConnectionClosed) as ended:
                while True:
                    await alice.recv()
        assert ended.value.rcvd is None or ended.value.rcvd.code == 1013
        users = await http.get("/v1/rooms/60/users", headers=server.headers("s0"))
        assert "alice" in [m["userId"] for m in users.json()["members"]]


# --- metrics -------------------------------------------------------------------------------


@pytest.fixture
def metrics_server(sqlite_server_factory: ServerFactory) -> RunningServer:
    """A loopback server; every app has Prometheus metrics (``create_app`` installs them)."""
    return sqlite_server_factory(ice_allowed_networks=LOOPBACK)


async def test_socket_frames_and_errors_are_counted(metrics_server):
    """Frames in and out are counted by type, and error frames by their seed code."""
    server = metrics_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        async with member(http, server, "alice", 70) as (ws, _):
            await ws.send("not json")
            assert_error(await frame(ws), 10003)
            await sync(ws)
        async with socket(server, "garbage") as ws:
            await closed(ws)
        response = await http.get("/metrics")
    counts: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "tavkit_socket_messages_total":
                counts[(labels["direction"], labels["type"])] = sample.value
            elif sample.name == "tavkit_errors_total" and labels["source"] == "server":
                counts[(labels["module"], labels["code"])] = sample.value
    assert counts[("in", "ping")] == 1 and counts[("in", "invalid")] == 1
    assert counts[("out", "welcome")] == 1 and counts[("out", "pong")] == 1
    assert counts[("out", "error")] == 2
    assert counts[("server", "10003")] == 1 and counts[("server", "10005")] == 1
