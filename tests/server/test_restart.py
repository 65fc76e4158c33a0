"""A restart on the same database keeps open sessions, members and socket tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from tavkit.server.signaling.tokens import load_or_create_secret, verify

from ._util import eventually, session_of

if TYPE_CHECKING:
    from conftest import ServerFactory


async def test_sessions_survive_a_restart_and_still_expire(server_factory: ServerFactory):
    """After a restart members are still in their session, and silent ones still time out."""
    # The timeout must outlast the restart itself, or everyone expires while it is down.
    server = server_factory(heartbeat_interval=1.5, heartbeat_timeout=6.0, sweep_interval=0.1)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        alice = (await client.post("/v1/rooms/40/enter", headers=server.headers("alice"))).json()
        await client.post("/v1/rooms/40/enter", headers=server.headers("bob"))
    server.restart()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        users = await client.get("/v1/rooms/40/users", headers=server.headers("bob"))
        assert users.json()["roomUuid"] == alice["roomUuid"]
        assert [m["userId"] for m in users.json()["members"]] == ["alice", "bob"]
        # The token secret lives in the data directory, so old tokens still verify.
        claims = verify(load_or_create_secret(server.settings.data_dir), alice["socketToken"])
        assert claims.user_id == "alice"

        async def bob_only() -> dict[str, Any] | None:
            beat = await client.post("/v1/rooms/40/heartbeat", headers=server.headers("bob"))
            assert beat.status_code == 200, beat.text
            body = await session_of(client, alice["roomUuid"], server.headers("bob"))
            left = {m["userId"]: m["leaveReason"] for m in body["members"]}
            return body if left == {"alice": "timeout", "bob": None} else None

        await eventually(bob_only, within=30, every=0.2)
        await client.post("/v1/rooms/40/exit", headers=server.headers("bob"))

        async def closed() -> dict[str, Any] | None:
            body = await session_of(client, alice["roomUuid"], server.headers("bob"))
            return body if body["closedAt"] is not None else None

        assert (await eventually(closed))["closeReason"] == "empty"
