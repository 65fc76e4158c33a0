"""A restart on the same database keeps open sessions, members and socket tokens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import APP_ID, random_key
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from tavkit.auth import gen_user_sig
from tavkit.server.signaling.tokens import load_or_create_secret, verify

from ._util import eventually, session_of
from .test_cli import tavkit, wait_for_url

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

        last_beat = [0.0]

        async def bob_only() -> dict[str, Any] | None:
            # Bob beats once a second, as a client told 1.5 s would: polling his heartbeat
            # with every look (five a second) ran past his heartbeat allowance (429).
            if time.monotonic() - last_beat[0] >= 1.0:
                beat = await client.post("/v1/rooms/40/heartbeat", headers=server.headers("bob"))
                assert beat.status_code == 200, beat.text
                last_beat[0] = time.monotonic()
            body = await session_of(client, alice["roomUuid"], server.headers("bob"))
            left = {m["userId"]: m["leaveReason"] for m in body["members"]}
            return body if left == {"alice": "timeout", "bob": None} else None

        await eventually(bob_only, within=30, every=0.2)
        await client.post("/v1/rooms/40/exit", headers=server.headers("bob"))

        async def closed() -> dict[str, Any] | None:
            body = await session_of(client, alice["roomUuid"], server.headers("bob"))
            return body if body["closedAt"] is not None else None

        assert (await eventually(closed))["closeReason"] == "empty"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "kill-9"])
async def test_a_restart_neither_loses_nor_sweeps_a_live_member(tmp_path: Path, stop: int):
    """A member pinging over its socket through a restart of ``tavkit serve`` (graceful, or
    killed with the heartbeats it held in memory unwritten) resumes and stays in the room
    past the timeout; a member without a socket still times out after the restart."""
    key = random_key()
    port = _free_port()
    serve = [
        "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        "--app", f"{APP_ID}:{key}", "--heartbeat-interval", "1", "--heartbeat-timeout", "10",
        "--sweep-interval", "0.2", "--drain-timeout", "0", "--no-rate-limits",
    ]  # fmt: skip
    process = tavkit(*serve)
    try:
        url = wait_for_url(process)
        headers = {
            user: {
                "X-TAvKit-SdkAppId": str(APP_ID),
                "X-TAvKit-UserId": user,
                "X-TAvKit-UserSig": gen_user_sig(APP_ID, key, user, 86400),
            }
            for user in ("alice", "bob")
        }
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            entered = await client.post("/v1/rooms/41/enter", headers=headers["alice"])
            token = entered.json()["socketToken"]
            await client.post("/v1/rooms/41/enter", headers=headers["bob"])  # never a socket
            done = asyncio.Event()
            alice = asyncio.create_task(_ping_through(url, token, done))
            await asyncio.sleep(2.5)  # heard, in memory between flushes
            process.send_signal(stop)
            process.wait(30)
            process = tavkit(*serve)
            assert wait_for_url(process) == url

            async def bob_timed_out() -> bool:
                users = await client.get("/v1/rooms/41/users", headers=headers["alice"])
                assert users.status_code == 200, users.text
                return [m["userId"] for m in users.json()["members"]] == ["alice"]

            await eventually(bob_timed_out, within=30, every=0.2)
            await asyncio.sleep(11)  # past a whole timeout after the restart
            users = await client.get("/v1/rooms/41/users", headers=headers["alice"])
            assert [m["userId"] for m in users.json()["members"]] == ["alice"]
            done.set()
            resumed, removed = await alice
        assert resumed and not removed
    finally:
        process.kill()
        process.wait(30)


async def _ping_through(url: str, token: str, done: asyncio.Event) -> tuple[bool, bool]:
    """Hold a socket with ``ping`` frames every half second until ``done``, reconnecting
    while the server is away; (a welcome said resumed, the server removed the member)."""
    offered = [Subprotocol("tavkit.v1"), Subprotocol(f"tavkit.token.{token}")]
    resumed = removed = False
    while not done.is_set():
        try:
            async with connect(
                url.replace("http", "ws", 1) + "/v1/ws", subprotocols=offered, open_timeout=5
            ) as ws:
                welcome = json.loads(await ws.recv())
                assert welcome["type"] == "welcome", welcome
                resumed = resumed or welcome["resumed"]
                while not done.is_set():
                    await ws.send(json.dumps({"type": "ping", "t": 0}))
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            frame = json.loads(await ws.recv())
                            removed = removed or frame["type"] == "removed"
                    await asyncio.sleep(0.5)
        except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake):
            await asyncio.sleep(0.2)  # the server is restarting
    return resumed, removed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
