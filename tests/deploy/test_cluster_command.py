"""``tavkit cluster`` (what ``make cluster`` runs): three replicas behind HAProxy, one command.

The command is run as a user would, on the machine's PostgreSQL (a schema of the
test's own) and Redis (a prefix of its own): it must print the URL, serve the demo
through HAProxy from all three replicas, let a member enter and open the signaling
socket through it, and stop every process it started on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tavkit.auth import gen_user_sig
from tavkit.server.app import DEMO_APP_FILE

from ._cluster import REDIS, START_TIMEOUT

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for(log: Path, process: subprocess.Popen[bytes], pattern: str) -> re.Match[str]:
    """The first match of ``pattern`` in the command's output, once it is there."""
    deadline = time.monotonic() + START_TIMEOUT * 2
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(pattern, text)
        if found:
            return found
        assert process.poll() is None, text
        time.sleep(0.2)
    pytest.fail(f"no {pattern!r} in:\n{log.read_text(errors='replace')}")


def test_tavkit_cluster_serves_three_replicas_behind_haproxy_and_stops_on_ctrl_c(
    database: Any, tmp_path: Path
) -> None:
    """The printed URL answers from replica-0..2, a member enters and gets its socket
    through it, and Ctrl-C stops HAProxy and every replica, exiting 0."""
    data_dir = tmp_path / "cluster"
    log = tmp_path / "cluster.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    argv = [sys.executable, "-m", "tavkit", "cluster", "--database-url", database.url]
    argv += ["--database-schema", database.schema, "--redis-url", REDIS]
    argv += ["--redis-prefix", f"tavkit-test-{secrets.token_hex(4)}:"]
    argv += ["--port", str(_free_port()), "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = _wait_for(log, process, r"behind HAProxy on (http://\S+)/")[1]
        replica_urls = re.findall(r"replica-\d on (http://\S+)", log.read_text())
        with httpx.Client(base_url=url, timeout=10) as http:
            seen = {http.get("/healthz").headers["x-tavkit-replica"] for _ in range(9)}
            assert seen == {"replica-0", "replica-1", "replica-2"}
            assert "<tavkit-call" in http.get("/").text  # the demo page

            app = json.loads((data_dir / DEMO_APP_FILE).read_text())
            headers = {
                "X-TAvKit-SdkAppId": str(app["sdkAppId"]),
                "X-TAvKit-UserId": "alice",
                "X-TAvKit-UserSig": gen_user_sig(app["sdkAppId"], app["key"], "alice"),
            }
            entered = http.post("/v1/rooms/31/enter", headers=headers)
            assert entered.status_code == 200, entered.text
            body = entered.json()
        assert body["socketUrl"].startswith(url.replace("http", "ws", 1))  # through HAProxy
        offered: Any = ["tavkit.v1", f"tavkit.token.{body['socketToken']}"]
        with connect(body["socketUrl"], subprotocols=offered, open_timeout=10) as ws:
            assert json.loads(ws.recv(10))["type"] == "welcome"

        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "tavkit cluster: stopping" in log.read_text()
    assert len(replica_urls) == 3
    for replica in [*replica_urls, url]:  # nothing it started is left answering
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{replica}/healthz", timeout=2)
