"""A replica killed with ``kill -9`` under load: its members land on the others through HAProxy.

Three replicas on one PostgreSQL schema and one Redis, HAProxy in front, and
``tavkit loadtest`` through HAProxy: 200 simulated participants in 40 rooms plus two
real Python clients in a call. Mid-traffic the replica holding one of those clients'
sockets gets SIGKILL: no graceful close, no goodbye on the bus. Everyone it held must
be back in their room through HAProxy, the run's consistency check (the server's member
lists equal to the members the tool holds: nobody missing, no ghost) must pass, every
acknowledged message must reach every member exactly once, and the two clients'
peer-to-peer media must not stop.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from client._util import until

from tavkit.loadtest import LoadConfig, LoadTest

from ._cluster import APP_ID, APP_KEY, Cluster, HAProxy, Replica

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)

WAIT = 90.0


def _frames(test: LoadTest, user_id: str) -> int:
    """Video frames ``user_id``'s client has decoded from the other client so far."""
    kit = test._kits[user_id]
    assert kit is not None, f"{user_id}'s client did not start"
    return sum(s.video_frames for uid, s in kit.peers_seen.items() if uid in test._kits)


def _holder(replicas: list[Replica], user_id: str) -> Replica:
    """The replica whose log shows ``user_id``'s socket."""
    for replica in replicas:
        if f"socket({user_id}/" in replica.log.read_text(errors="replace"):
            return replica
    pytest.fail(f"no replica logged a socket of {user_id}")


async def test_a_replica_killed_under_load_loses_nobody(cluster: Cluster, tmp_path: Path) -> None:
    """kill -9 one of three replicas mid-run: every member back, consistent, no message lost
    or doubled, and the Python clients' media flows on through the outage."""
    replicas = cluster.start(3)
    proxy = HAProxy(tmp_path, replicas)
    config = LoadConfig(
        proxy.url,
        APP_ID,
        APP_KEY,
        participants=200,
        rooms=40,
        ramp=100.0,
        duration=8.0,
        signal_interval=0.5,
        messages=2,
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
        kits = sorted(test._kits)
        victim = _holder(replicas, kits[0])
        await until(
            lambda: all(_frames(test, k) > 0 for k in kits),
            "the clients see each other",
            within=WAIT,
        )
        before = {k: _frames(test, k) for k in kits}
        await asyncio.to_thread(victim.stop, signal.SIGKILL)
        # Media is peer to peer: it keeps flowing while the client's socket moves.
        await until(
            lambda: all(_frames(test, k) > before[k] + 30 for k in kits),
            "media flows on after the kill",
            within=30,
        )
        async with asyncio.timeout(WAIT * 2):
            report = (await run).to_dict()
    finally:
        proxy.close()
    print("after kill -9:", report["reconnects"], report["errors"], report["media"])
    reconnects = report["reconnects"]
    assert 0 < reconnects["drops"] < 200, reconnects  # the victim's share, not everyone
    assert reconnects["failed"] == 0, reconnects
    assert report["consistency"]["passed"], report["consistency"]
    assert report["recovered"] is True
    messages = report["messages"]
    assert messages["acked"] == messages["sent"] > 0, messages
    assert messages["received"] == messages["expected"], messages
    # Only drops (close codes and refused reconnects), no seed error from the server.
    unexpected = {
        code: n
        for code, n in report["errors"]["byCode"].items()
        if not code.startswith(("close:", "http:10000"))
    }
    assert not unexpected, report["errors"]
