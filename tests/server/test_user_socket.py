"""The user socket held to the room socket's standard: resume with replay, rate limit,
userSig expiry, drain; and the call routes' privateMapKey checks and cross-replica busy."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tavkit.auth import gen_private_map_key, gen_user_sig
from tavkit.errors import ServerCode
from tavkit.protocol import CloseCode
from tavkit.protocol.calls import user_subprotocol
from tavkit.server import AppConfig, Settings
from tavkit.server.app import create_app, drain_app
from tavkit.server.drain import DRAIN_REASON

from .test_calls import TIMEOUT, Frame, UserSocket, act, ok, ring, user_socket

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory


async def closed_code(sock: UserSocket) -> int | None:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(ConnectionClosed):
        await sock.next("never")
    return sock.ws.close_code


async def test_a_socket_that_comes_back_gets_what_it_missed_in_order(server: RunningServer):
    """Frames carry seq; a socket resuming with after gets the missed frames, in order, once."""
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        async with user_socket(server, "bob") as bob:
            assert bob.welcome["resumed"] is False
            call = await ring(http, server, "alice", ["bob", "carol"])
            invite = await bob.next("call-invite")
            assert invite["seq"] > bob.welcome["lastSeq"]
        await ok(await act(http, server, "carol", call, "decline", reason="meeting"))
        await ok(await act(http, server, "alice", call, "cancel"))
        async with user_socket(server, "bob", after=invite["seq"]) as bob:
            assert bob.welcome["resumed"] is True
            assert bob.welcome["ringing"] == []  # cancelled meanwhile
            declined = await bob.next("call-declined")
            cancelled = await bob.next("call-cancelled")
            assert (declined["userId"], declined["reason"]) == ("carol", "meeting")
            assert invite["seq"] < declined["seq"] < cancelled["seq"] <= bob.welcome["lastSeq"]
            assert cancelled["call"]["state"] == "cancelled"
            second = await ring(http, server, "alice", ["bob"])
            live = await bob.next("call-invite")  # nothing replayed comes again before it
            assert live["call"]["callId"] == second["callId"]
            assert live["seq"] > bob.welcome["lastSeq"]


async def test_a_gap_that_cannot_be_replayed_is_said_so(sqlite_server_factory: ServerFactory):
    """After beyond the journal, or a gap older than the resume window: resumed is false."""
    server = sqlite_server_factory(heartbeat_interval=0.2, heartbeat_timeout=0.5)
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        async with user_socket(server, "bob") as bob:
            last = bob.welcome["lastSeq"]
        async with user_socket(server, "bob", after=last + 1000) as bob:
            assert bob.welcome["resumed"] is False
        call = await ring(http, server, "alice", ["bob"], timeout=30)
        await asyncio.sleep(0.8)  # past the window of 0.5 s
        async with user_socket(server, "bob", after=last) as bob:
            assert bob.welcome["resumed"] is False
            assert [c["callId"] for c in bob.welcome["ringing"]] == [call["callId"]]


async def test_a_flooding_user_socket_is_rate_limited_and_kept(sqlite_server: RunningServer):
    """Past the room socket's 50 frames/s (burst 100) frames are dropped with one 10004 error;
    the socket stays and answers again once the rate falls; a frame over 64 KiB closes 1009."""
    async with user_socket(sqlite_server, "bob") as bob:
        for n in range(150):
            await bob.ws.send(json.dumps({"type": "ping", "t": n}))
        error = await bob.next("error")
        assert error["errorCode"] == int(ServerCode.INVALID_PARAMETER)
        assert "rate limited" in error["errorMsg"]
        await asyncio.sleep(0.5)
        await bob.ws.send(json.dumps({"type": "ping", "t": -1}))
        while (await bob.next("pong"))["t"] != -1:
            pass
        await bob.ws.send(json.dumps({"type": "leave"}))
        assert (await bob.next("error"))["errorCode"] == int(ServerCode.INVALID_PARAMETER)
        await bob.ws.send("x" * (65 * 1024))
        assert await closed_code(bob) == CloseCode.TOO_BIG


async def test_an_expiring_user_sig_is_renewed_or_the_socket_closes_4002(
    sqlite_server_factory: ServerFactory,
):
    """The room socket's path: expiring, then renew -> renewed; unrenewed -> removed, 4002."""
    server = sqlite_server_factory(renew_grace=0.3)
    app = server.settings.apps[0]
    short = gen_user_sig(app.sdk_app_id, app.key, "bob", 2)
    async with (
        user_socket(server, "bob", sig=short, device="kept") as kept,
        user_socket(server, "bob", sig=short, device="lapsed") as lapsed,
    ):
        expiring = await kept.next("expiring")
        assert expiring["deadline"] == pytest.approx(expiring["expiresAt"] + 0.3)
        await kept.ws.send(json.dumps({"type": "renew", "userSig": "forged", "id": "r1"}))
        refused = await kept.next("error")
        assert (refused["errorCode"], refused["ref"]) == (int(ServerCode.UNAUTHORISED), "r1")
        await kept.ws.send(json.dumps({"type": "renew", "userSig": server.sig("bob"), "id": "r2"}))
        renewed = await kept.next("renewed")
        assert renewed["ref"] == "r2" and renewed["expiresAt"] > expiring["expiresAt"] + 3600
        assert (await lapsed.next("removed"))["reason"] == "expired"
        assert await closed_code(lapsed) == CloseCode.REMOVED
        await kept.ws.send(json.dumps({"type": "ping", "t": 7}))
        assert (await kept.next("pong"))["t"] == 7  # still open past the old deadline


async def test_a_draining_replica_moves_user_sockets_with_1012(
    sqlite_server_factory: ServerFactory,
):
    """Held user sockets are closed with 1012 and the drain reason; a new one is refused so."""
    apps: list[Any] = []

    def build(settings: Settings) -> Any:
        tavkit = create_app(settings)
        apps.append(tavkit)

        async def host(scope: Scope, receive: Receive, send: Send) -> None:
            # The host application's own shutdown hook, as `tavkit serve` runs on SIGTERM.
            if scope["type"] == "http" and scope["path"] == "/host/drain":
                await drain_app(tavkit, 5.0)
                await send({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            await tavkit(scope, receive, send)

        return host

    server = sqlite_server_factory(app_factory=build)
    async with (
        user_socket(server, "bob") as bob,
        httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http,
    ):
        drained = asyncio.create_task(http.post("/host/drain"))
        assert await closed_code(bob) == CloseCode.SERVICE_RESTART
        assert bob.ws.close_reason == DRAIN_REASON
        assert (await drained).status_code == 204
    creds = user_subprotocol(server.app_id, "bob", server.sig("bob"), "default")
    url = server.url.replace("http://", "ws://", 1) + "/v1/ws/user"
    async with connect(url, proxy=None, subprotocols=["tavkit.v1", creds]) as late:  # type: ignore[list-item]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(late.recv(), TIMEOUT)
        assert (late.close_code, late.close_reason) == (CloseCode.SERVICE_RESTART, DRAIN_REASON)


async def test_calls_check_the_private_map_key_as_enter_does(
    sqlite_server_factory: ServerFactory,
):
    """An app requiring keys: a call needs a roomId and the caller's key for it, and accept
    the callee's; a missing or wrong key gets enter's own code."""
    app = AppConfig(1400000001, "0123456789abcdef" * 4, require_private_map_key=True)
    server = sqlite_server_factory(apps=(app,))

    def key(user: str, room: int) -> str:
        return gen_private_map_key(app.sdk_app_id, app.key, user, room_id=room)

    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:

        def seed(response: httpx.Response) -> tuple[int, str, int]:
            return response.status_code, response.json()["module"], response.json()["errorCode"]

        async def call(headers: dict[str, str], **body: Any) -> httpx.Response:
            body = {"callees": ["bob"], "media": "audio", **body}
            return await http.post("/v1/calls", headers=headers, json=body)

        no_room = await call(server.headers("alice", pmk=key("alice", 77)))
        assert no_room.json()["errorCode"] == int(ServerCode.INVALID_PARAMETER)
        for pmk in (None, key("alice", 78), key("eve", 77)):
            headers = server.headers("alice", pmk=pmk)
            enter = await http.post("/v1/rooms/77/enter", headers=headers)
            assert enter.status_code >= 400
            assert seed(await call(headers, roomId=77)) == seed(enter)
        placed: Frame = await ok(
            await call(server.headers("alice", pmk=key("alice", 77)), roomId=77)
        )
        url = f"/v1/calls/{placed['callId']}/accept"
        for pmk in (None, key("bob", 78)):
            headers = server.headers("bob", pmk=pmk)
            enter = await http.post("/v1/rooms/77/enter", headers=headers)
            assert seed(await http.post(url, headers=headers)) == seed(enter)
        accepted = await ok(await http.post(url, headers=server.headers("bob", pmk=key("bob", 77))))
        assert accepted["state"] == "accepted"


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_two_replicas_ringing_one_callee_at_once_make_one_busy(
    server_factory: ServerFactory,
):
    """Two calls to the same callee at the same moment on two replicas (one PostgreSQL):
    exactly one rings them, the other finds them busy - for every callee tried."""
    first = server_factory(replica_name="one")
    second = server_factory(
        replica_name="two", apps=first.settings.apps, admin_key=first.settings.admin_key
    )
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=TIMEOUT) as one,
        httpx.AsyncClient(base_url=second.url, timeout=TIMEOUT) as two,
    ):
        for n in range(6):
            callee = f"callee{n}"
            calls = await asyncio.gather(
                ring(one, first, f"a{n}", [callee]), ring(two, second, f"b{n}", [callee])
            )
            outcomes = sorted(c["callees"][0]["outcome"] for c in calls)
            assert outcomes == ["busy", "ringing"], (callee, calls)
