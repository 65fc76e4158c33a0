"""A replica drained with SIGTERM under load: its members move to the others, unharmed.

Three replicas on one PostgreSQL schema and one Redis, HAProxy in front, and
``tavkit loadtest`` through HAProxy: simulated participants plus two real Python
clients in a call. Mid-traffic the replica holding one client's socket gets SIGTERM.
While it drains its ``/healthz`` says ``draining`` (503), enters reaching it are
refused with server 10000 (never a 500), and it tells every socket to move with close
1012; every member must come back through HAProxy on another replica with no error
(the 1012 itself is the only thing the tool counts), no message lost, the membership
consistent, and the replica must exit cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from client._util import until

from tavkit.auth import gen_user_sig
from tavkit.loadtest import LoadConfig, LoadTest
from tavkit.protocol import CloseCode

from ._cluster import APP_ID, APP_KEY, Cluster, HAProxy, Replica

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)

WAIT = 90.0
MOVED = f"close:{int(CloseCode.SERVICE_RESTART)}"


def _socket_holder(replicas: list[Replica], user_id: str) -> Replica:
    """The replica whose log shows a socket of ``user_id``."""
    logs = {r: r.log.read_text(errors="replace") for r in replicas}
    holders = [r for r, text in logs.items() if f"socket({user_id}/" in text]
    assert len(holders) == 1, f"{user_id}'s socket is on {[r.name for r in holders]}"
    return holders[0]


def _headers(user_id: str) -> dict[str, str]:
    return {
        "X-TAvKit-SdkAppId": str(APP_ID),
        "X-TAvKit-UserId": user_id,
        "X-TAvKit-UserSig": gen_user_sig(APP_ID, APP_KEY, user_id),
    }


class Watch:
    """What a drain looks like from outside: the replica's own /healthz and enters, and
    enters through HAProxy, asked every 100 ms until the replica has gone."""

    def __init__(self, replica: Replica, proxy: HAProxy) -> None:
        self.replica = replica
        self.proxy = proxy
        self.health: list[tuple[int, dict[str, Any]]] = []
        self.direct: list[tuple[int, dict[str, Any]]] = []
        self.proxied: list[tuple[int, dict[str, Any], str | None]] = []

    async def run(self) -> None:
        """Poll until the replica no longer answers (it has exited)."""
        n = 0
        async with httpx.AsyncClient(timeout=10) as http:
            while True:
                n += 1
                try:
                    health = await http.get(f"{self.replica.url}/healthz")
                    self.health.append((health.status_code, health.json()))
                    direct = await http.post(
                        f"{self.replica.url}/v1/rooms/{7000 + n}/enter", headers=_headers(f"d{n}")
                    )
                    self.direct.append((direct.status_code, direct.json()))
                except httpx.TransportError:
                    return
                proxied = await http.post(
                    f"{self.proxy.url}/v1/rooms/{8000 + n}/enter", headers=_headers(f"p{n}")
                )
                replica = proxied.headers.get("x-tavkit-replica")
                self.proxied.append((proxied.status_code, proxied.json(), replica))
                await asyncio.sleep(0.1)


async def test_a_replica_drained_under_load_moves_everyone_without_an_error(
    cluster: Cluster, tmp_path: Path
) -> None:
    """SIGTERM one of three replicas mid-run: healthz says draining, enters there get
    server 10000 (through HAProxy they land elsewhere), every member moves (1012) and is
    back with no error, nothing lost; the replica exits 0."""
    replicas = cluster.start(3)
    proxy = HAProxy(tmp_path, replicas)
    config = LoadConfig(
        proxy.url,
        APP_ID,
        APP_KEY,
        participants=30,
        rooms=6,
        ramp=50.0,
        duration=10.0,
        signal_interval=0.5,
        messages=3,
        media="python",
        recovery_timeout=30.0,
    )
    test = LoadTest(config)
    try:
        run = asyncio.create_task(test.run())
        await until(
            lambda: test.recorder.phase == "traffic" or run.done(), "traffic starts", within=WAIT
        )
        assert not run.done(), run.result().render()
        kit = sorted(test._kits)[0]
        victim = _socket_holder(replicas, kit)
        held = [p.user_id for p in test.participants if p.socket_replica == victim.name]
        await asyncio.sleep(1.0)
        watch = Watch(victim, proxy)
        watching = asyncio.create_task(watch.run())
        await until(lambda: len(watch.health) > 0, "the watch has started")
        code = await asyncio.to_thread(victim.stop, signal.SIGTERM)
        async with asyncio.timeout(30):
            await watching
        log = victim.log.read_text(errors="replace")
        assert code == 0, log
        async with asyncio.timeout(WAIT * 2):
            report = (await run).to_dict()
    finally:
        with contextlib.suppress(Exception):
            proxy.close()
    print("drain:", report["reconnects"], report["errors"], report["replicas"])
    print("drain latency:", {k: v["p50"] for k, v in report["latencyMs"].items()})

    # From outside while it drained: /healthz 503 "draining", its enters refused with
    # server 10000 (503, never a 500); through HAProxy enters went elsewhere or got that.
    assert "drained: no socket left" in log, log
    assert any(s == 503 and b["status"] == "draining" for s, b in watch.health), watch.health
    assert all(s in (200, 503) for s, _ in watch.health), watch.health
    refusals = [b for s, b in watch.direct if s != 200]
    assert refusals, watch.direct
    assert all(s == 503 for s, _ in watch.direct if s != 200), watch.direct
    assert all((b["module"], b["errorCode"]) == ("server", 10000) for b in refusals), refusals
    for status, body, replica in watch.proxied:
        assert status in (200, 503), (status, body)
        if status == 503:
            assert (body["module"], body["errorCode"]) == ("server", 10000), body
        else:
            assert replica in {r.name for r in replicas}, replica

    # The members: every drop was a move (1012), everyone is back, nothing else went wrong.
    reconnects = report["reconnects"]
    assert len(held) > 0 and reconnects["drops"] >= len(held), (held, reconnects)
    assert reconnects["moved"] == reconnects["drops"], reconnects
    assert reconnects["failed"] == 0, reconnects
    assert set(report["errors"]["byCode"]) == {MOVED}, report["errors"]
    assert report["consistency"]["passed"], report["consistency"]
    messages = report["messages"]
    assert messages["acked"] == messages["sent"] > 0, messages
    assert messages["received"] == messages["expected"], messages
    sockets = report["replicas"]["sockets"]
    assert victim.name not in sockets and sum(sockets.values()) == len(test.participants)
    assert len(report["replicas"]["enters"]) == 3, report["replicas"]  # HAProxy spread them
    media = report["media"]
    assert media is not None and media["started"] == 2, media
    for peers in media["peers"].values():
        assert all(p["videoFrames"] > 0 for p in peers.values()), media
