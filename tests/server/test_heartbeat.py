"""Heartbeats: a silent member is removed by the sweeper, a talkative one stays."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import httpx

from tavkit.errors import ServerCode

from ._util import eventually, expect_error, session_of

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

# Short enough to keep the test quick, long enough that a loaded machine still answers
# bob's heartbeats in time.
FAST = {"heartbeat_interval": 0.5, "heartbeat_timeout": 1.5, "sweep_interval": 0.1}


async def keep_beating(client: httpx.AsyncClient, server: RunningServer, user: str, room: int):
    """Heartbeat every interval until cancelled."""
    while True:
        response = await client.post(f"/v1/rooms/{room}/heartbeat", headers=server.headers(user))
        assert response.status_code == 200, response.text
        await asyncio.sleep(server.settings.heartbeat_interval / 2)


async def test_a_silent_member_times_out_and_the_log_says_so(server_factory: ServerFactory):
    """A member who stops heartbeating is removed with reason timeout; others stay."""
    server = server_factory(**FAST)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        entered = await client.post("/v1/rooms/6/enter", headers=server.headers("alice"))
        room = entered.json()["roomUuid"]
        await client.post("/v1/rooms/6/enter", headers=server.headers("bob"))
        beating = asyncio.create_task(keep_beating(client, server, "bob", 6))
        try:

            async def alice_gone() -> dict[str, Any] | None:
                body = await session_of(client, room, server.headers("bob"))
                alice = next(m for m in body["members"] if m["userId"] == "alice")
                return body if alice["leftAt"] is not None else None

            # Bounded: timeout + a sweep, with generous slack for a loaded machine.
            session = await eventually(alice_gone, within=20)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        alice = next(m for m in session["members"] if m["userId"] == "alice")
        assert alice["leaveReason"] == "timeout"
        assert alice["leftAt"] - alice["joinedAt"] >= server.settings.heartbeat_timeout
        assert ("timed-out", "alice") in [(e["kind"], e["userId"]) for e in session["events"]]
        bob = next(m for m in session["members"] if m["userId"] == "bob")
        assert bob["leftAt"] is None
        response = await client.post("/v1/rooms/6/heartbeat", headers=server.headers("alice"))
        assert "timeout" in expect_error(response, ServerCode.USER_EXITED)
        users = await client.get("/v1/rooms/6/users", headers=server.headers("bob"))
        assert [m["userId"] for m in users.json()["members"]] == ["bob"]


async def test_when_everyone_goes_silent_the_session_closes(server_factory: ServerFactory):
    """Members who all stop heartbeating are removed, then their session closes."""
    server = server_factory(**FAST)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        entered = await client.post("/v1/rooms/6/enter", headers=server.headers("alice"))
        room = entered.json()["roomUuid"]

        async def closed() -> dict[str, Any] | None:
            body = await session_of(client, room, server.admin_headers())
            return body if body["closedAt"] is not None else None

        session = await eventually(closed, within=20)
        assert session["closeReason"] == "empty"
        assert [e["kind"] for e in session["events"]] == ["opened", "joined", "timed-out", "closed"]
