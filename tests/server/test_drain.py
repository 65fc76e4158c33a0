"""Draining (``tavkit.server.drain``): what a replica answers while it drains, and SIGTERM.

The refusals are checked on an in-process server put into the draining state; the
drain itself on a real ``tavkit serve`` process sent SIGTERM, as a supervisor would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tavkit.auth import gen_user_sig
from tavkit.errors import ServerCode
from tavkit.protocol import CloseCode
from tavkit.server import Settings
from tavkit.server.app import create_app
from tavkit.server.drain import DRAIN_REASON

from ._util import expect_error

if TYPE_CHECKING:
    from conftest import ServerFactory

APP_ID = 1400000001
KEY = "drainkey0123456789abcdef"
TIMEOUT = 30.0


async def open_socket(body: dict[str, Any]) -> ClientConnection:
    """The signaling socket of an ``enter`` answer, token in the subprotocol as clients do."""
    offered: Any = ["tavkit.v1", f"tavkit.token.{body['socketToken']}"]
    return await connect(body["socketUrl"], subprotocols=offered, open_timeout=TIMEOUT)


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes; its close code and reason."""
    try:
        async with asyncio.timeout(TIMEOUT):
            async for _ in ws:
                pass
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason


async def test_a_draining_server_refuses_new_work_and_says_so(
    sqlite_server_factory: ServerFactory,
) -> None:
    """Draining: /healthz 503 "draining", enter 503 server 10000 with Retry-After, a new
    socket closed 1012; a member already in keeps its heartbeats. Every answer names
    the replica."""
    apps: list[Any] = []

    def build(settings: Settings) -> Any:
        apps.append(create_app(settings))
        return apps[0]

    server = sqlite_server_factory(app_factory=build, replica_name="replica-x")
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        healthy = await http.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.headers["x-tavkit-replica"] == "replica-x"
        entered = await http.post("/v1/rooms/9/enter", headers=server.headers("alice"))
        assert entered.status_code == 200, entered.text
        ws = await open_socket(entered.json())
        assert ws.response is not None
        assert ws.response.headers["x-tavkit-replica"] == "replica-x"
        assert json.loads(await ws.recv())["type"] == "welcome"

        apps[0].state.tavkit.drain.begin()

        health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "draining"
        assert health.headers["x-tavkit-replica"] == "replica-x"
        refused = await http.post("/v1/rooms/9/enter", headers=server.headers("bob"))
        expect_error(refused, ServerCode.INTERNAL, status=503)
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["x-tavkit-replica"] == "replica-x"
        late = await open_socket(entered.json())
        assert late.response is not None
        assert late.response.headers["x-tavkit-replica"] == "replica-x"
        assert await closed_with(late) == (CloseCode.SERVICE_RESTART, DRAIN_REASON)
        beat = await http.post("/v1/rooms/9/heartbeat", headers=server.headers("alice"))
        assert beat.status_code == 200, beat.text
        await ws.send(json.dumps({"type": "ping", "t": 1.0}))
        assert json.loads(await ws.recv())["type"] == "pong"  # the socket held lives on
        await ws.close()


def _serve(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """A ``tavkit serve`` process on SQLite; it and its URL once it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    env["TAVKIT_APPS"] = f"{APP_ID}:{KEY}"
    argv = [sys.executable, "-m", "tavkit", "serve", "--port", "0", "--data-dir", str(data_dir)]
    process = subprocess.Popen(
        [*argv, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "tavkit serving on " in line:
            return process, line.split("tavkit serving on ", 1)[1].strip()
    raise AssertionError(f"tavkit serve exited with {process.wait()}")


def _rest(process: subprocess.Popen[str]) -> str:
    """Everything the process printed after its URL (once it has exited)."""
    assert process.stdout is not None
    return process.stdout.read()


async def test_sigterm_tells_every_socket_to_move_and_then_exits(tmp_path: Path) -> None:
    """SIGTERM: each socket closes 1012 "replica draining"; with none left the process
    exits at once, cleanly, well before its drain timeout."""
    process, url = await asyncio.to_thread(_serve, tmp_path / "data", "--drain-timeout", "60")
    try:
        sockets = []
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            for user in ("alice", "bob", "carol"):
                headers = {
                    "X-TAvKit-SdkAppId": str(APP_ID),
                    "X-TAvKit-UserId": user,
                    "X-TAvKit-UserSig": gen_user_sig(APP_ID, KEY, user),
                }
                entered = await http.post("/v1/rooms/5/enter", headers=headers)
                assert entered.status_code == 200, entered.text
                ws = await open_socket(entered.json())
                assert json.loads(await ws.recv())["type"] == "welcome"
                sockets.append(ws)
        process.send_signal(signal.SIGTERM)
        closes = await asyncio.gather(*(closed_with(ws) for ws in sockets))
        assert closes == [(CloseCode.SERVICE_RESTART, DRAIN_REASON)] * 3
        # Told to wait up to 60 s, it leaves as soon as its sockets are gone.
        code = await asyncio.to_thread(process.wait, TIMEOUT)
        output = _rest(process)
        assert code == 0, output
        assert "drained: no socket left" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
