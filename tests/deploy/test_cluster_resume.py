"""Socket resume across replicas: a member's socket comes back on any replica, as itself.

Which connection had a socket is in PostgreSQL (``members.socket_opened_at``), and which
socket of a connection is the newest is the order of their ``socket-open`` events on
Redis, so neither depends on the replica a socket lands on. The socket tokens here
have a short first-connection window (``TAVKIT_SOCKET_TOKEN_TTL``), and every resume
comes after it has passed: only the database can let them through.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from client._util import RecordingListener, enter, make_kit, receiving, until
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ._cluster import APP_ID, Cluster, ClusterApp, HAProxy

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)

TOKEN_TTL = 3.0
"""The socket token's first-connection window here (60 s by default)."""
PATIENCE = 20.0


async def past_the_window(entered_at: float) -> None:
    """Wait until a token handed out at ``entered_at`` (time.time()) is past its window."""
    await asyncio.sleep(max(0.0, entered_at + TOKEN_TTL + 0.5 - time.time()))


async def test_a_member_resumes_on_another_replica_past_its_token_window(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Alice's replica is killed after her token's window: her Python client resumes through
    HAProxy on the other replica (``resumed`` true), never entering again (no -1307), and
    the call with Bob goes on."""
    cluster.env["TAVKIT_SOCKET_TOKEN_TTL"] = str(TOKEN_TTL)
    first, second = cluster.start(2)
    proxy = HAProxy(tmp_path, [first, second], backups=1)  # alice lands on the first
    server: Any = ClusterApp(cluster)
    bob_hears = RecordingListener()
    try:
        async with make_kit(second.url) as bob, make_kit(proxy.url) as alice:
            await enter(bob, server, "bob", 801, bob_hears)
            entered_at = time.time()
            await enter(alice, server, "alice", 801)
            room_uuid = alice.room_uuid
            await until(receiving(bob, "alice"), "bob decodes alice")
            assert "socket(alice/" in first.log.read_text()
            await past_the_window(entered_at)

            first.stop(signal.SIGKILL)
            await until(lambda: alice.resumes >= 1, "alice's socket resumes", within=PATIENCE)
            opened = [
                line for line in second.log.read_text().splitlines() if "socket(alice/" in line
            ]
            assert any("open (resumed=True)" in line for line in opened), opened
            await alice.mute(True)  # her signaling now runs through the second replica
            await until(
                lambda: ("on_user_state", "alice", True, True) in bob_hears.events,
                "bob hears alice mute after the resume",
            )
            assert alice.room_uuid == room_uuid
            assert alice.errors == []  # no -1307 "entering again": she never left
            assert not [e for e in bob_hears.events if e[0] == "on_user_leave"]
            assert bob.members == ["alice"]
    finally:
        proxy.close()


async def test_an_old_socket_on_one_replica_closes_when_its_connection_opens_on_another(
    cluster: Cluster,
) -> None:
    """One connection, a socket on each replica: the newer one (past the token's window)
    is welcomed as a resume and the first replica closes the older one with 4001."""
    cluster.env["TAVKIT_SOCKET_TOKEN_TTL"] = str(TOKEN_TTL)
    first, second = cluster.start(2)
    headers = {
        "X-TAvKit-SdkAppId": str(APP_ID),
        "X-TAvKit-UserId": "alice",
        "X-TAvKit-UserSig": cluster.sig("alice"),
    }
    entered_at = time.time()
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
        response = await http.post("/v1/rooms/802/enter", headers=headers)
    assert response.status_code == 200, response.text
    token = response.json()["socketToken"]

    async with socket(first.url, token) as older:
        assert (await frame(older))["resumed"] is False
        await past_the_window(entered_at)
        async with socket(second.url, token) as newer:
            welcome = await frame(newer)
            assert welcome["type"] == "welcome" and welcome["resumed"] is True
            with pytest.raises(ConnectionClosed) as ended:
                async with asyncio.timeout(PATIENCE):
                    while True:
                        await older.recv()
            assert ended.value.rcvd is not None
            assert ended.value.rcvd.code == 4001
            assert ended.value.rcvd.reason == "superseded by a newer socket"
            await newer.send(json.dumps({"type": "ping", "t": 7.0}))
            while (answer := await frame(newer))["type"] != "pong":
                pass
            assert answer["t"] == 7.0


def socket(url: str, token: str) -> Any:
    """A raw signaling socket to the replica at ``url``, the token as a subprotocol."""
    protocols: Any = ["tavkit.v1", f"tavkit.token.{token}"]
    ws_url = url.replace("http://", "ws://", 1) + "/v1/ws"
    return connect(ws_url, subprotocols=protocols, proxy=None, open_timeout=PATIENCE)


async def frame(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, decoded."""
    async with asyncio.timeout(PATIENCE):
        decoded: dict[str, Any] = json.loads(await ws.recv())
    return decoded
