"""Redis going away under two replicas, and coming back.

The test runs a ``redis-server`` of its own on a free port (never the machine's Redis
at 6379, which other tests share) so it can stop it and start it again on the same
port. What the replicas promise (``server/redis_bus.py``): while Redis is away, calls
in progress keep their peer-to-peer media, ``/healthz`` says 503 and a new enter is
refused with server 10000 and a message; once Redis is back they recover by
themselves, with no restart: enters work again, the sockets resume and the members'
signaling crosses replicas again.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from client._util import (
    TIMEOUT,
    RecordingListener,
    enter,
    frames_from,
    make_kit,
    receiving,
    until,
)

from tavkit.client import Credentials

from ._cluster import APP_ID, Cluster, ClusterApp

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)

REDIS_SERVER = "/usr/bin/redis-server"
ROOM = 703


class OwnRedis:
    """A ``redis-server`` of the test's own on a fixed free port, stoppable and restartable."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (no persistence, so a restart begins empty) and wait until it answers."""
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self._workdir)]
        log = (self._workdir / "redis.log").open("ab")
        self._process = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert self._process.poll() is None, (self._workdir / "redis.log").read_text()
            time.sleep(0.05)
        pytest.fail("redis-server did not answer within 10 s")

    def stop(self) -> None:
        """Kill it: every connection drops at once, as when Redis crashes."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A running redis-server of this test's own."""
    redis = OwnRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def headers(cluster: Cluster, user_id: str) -> dict[str, str]:
    """The REST headers of ``user_id``."""
    return Credentials(APP_ID, user_id, cluster.sig(user_id)).headers()


async def health(http: httpx.AsyncClient, url: str) -> int:
    """The status of ``url``'s ``/healthz``."""
    return (await http.get(f"{url}/healthz")).status_code


async def eventually_status(http: httpx.AsyncClient, url: str, status: int, what: str) -> None:
    """Poll ``/healthz`` of ``url`` until it answers ``status``."""
    async with asyncio.timeout(TIMEOUT):
        while await health(http, url) != status:  # noqa: ASYNC110 (polling a server)
            await asyncio.sleep(0.1)
    assert await health(http, url) == status, what


async def test_calls_survive_redis_restarting_and_the_cluster_recovers_by_itself(
    cluster: Cluster, own_redis: OwnRedis
) -> None:
    """Redis killed mid-call: media flows on, /healthz 503, enters refused with server 10000;
    Redis back on its port: /healthz 200, enters work, and mute, messages and the member
    list cross replicas again with nobody restarted and nobody left behind."""
    cluster.env["TAVKIT_REDIS_URL"] = own_redis.url
    first, second = cluster.start(2)
    server: Any = ClusterApp(cluster)
    bob_hears = RecordingListener()
    alice_hears = RecordingListener()
    async with (
        httpx.AsyncClient(timeout=30) as http,
        make_kit(first.url) as alice,
        make_kit(second.url) as bob,
    ):
        await enter(alice, server, "alice", ROOM, alice_hears)
        await enter(bob, server, "bob", ROOM, bob_hears)
        await until(receiving(bob, "alice"), "bob decodes alice")
        await until(receiving(alice, "bob"), "alice decodes bob")

        own_redis.stop()
        before = frames_from(bob, "alice")[0]
        for replica in (first, second):
            await eventually_status(http, replica.url, 503, f"{replica.name} reports Redis away")
        refused = await http.post(
            f"{first.url}/v1/rooms/{ROOM}/enter", headers=headers(cluster, "carol"), json={}
        )
        body = refused.json()
        # 503 with Retry-After, not a 500: a load balancer and the clients try again.
        assert (refused.status_code, refused.headers.get("retry-after")) == (503, "1"), body
        assert (body["module"], body["errorCode"]) == ("server", 10000), body
        assert "Redis" in body["errorMsg"], body
        await until(lambda: frames_from(bob, "alice")[0] > before + 15, "media flows on")

        own_redis.start()
        for replica in (first, second):
            await eventually_status(http, replica.url, 200, f"{replica.name} healthy again")
        entered = await http.post(
            f"{second.url}/v1/rooms/{ROOM + 1}/enter", headers=headers(cluster, "dave"), json={}
        )
        assert entered.status_code == 200, entered.text

        # Both sockets were cut off when Redis went; once resumed, signaling crosses again.
        await alice.mute(True)
        await until(
            lambda: ("on_user_state", "alice", True, True) in bob_hears.events,
            "bob hears alice mute after Redis returned",
        )
        sent = await bob.send_message("after the outage")
        await until(
            lambda: any(m.seq == sent.seq for m in alice_hears.messages()),
            "alice gets bob's message",
        )
        # The refused enter left nobody behind: the room is still the two of them.
        members = await http.get(
            f"{first.url}/v1/rooms/{ROOM}/users", headers=headers(cluster, "alice")
        )
        assert sorted(m["userId"] for m in members.json()["members"]) == ["alice", "bob"]
        assert bob.members == ["alice"] and alice.members == ["bob"]
        assert not alice.closed and not bob.closed
        # They resumed their connections (no re-enter, which would be trtc -1307).
        assert alice.errors == [] and bob.errors == [], (alice.errors, bob.errors)
        for replica in (first, second):
            assert "open (resumed=True)" in replica.log.read_text(), replica.name
        leaves = [e for e in bob_hears.events + alice_hears.events if e[0] == "on_user_leave"]
        assert not leaves, leaves
        assert frames_from(bob, "alice")[0] > before + 15
