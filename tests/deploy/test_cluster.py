"""Replicas: two ``tavkit serve`` processes on one PostgreSQL database and one Redis.

Clients enter through different replicas, so everything one member does must cross
from one process to the other through Redis to reach the other member
(:mod:`deploy._cluster` runs the replicas and HAProxy).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from client._util import RecordingListener, enter, frames_from, make_kit, receiving, until

from ._cluster import Cluster, ClusterApp, HAProxy

pytestmark = pytest.mark.parametrize("database", ["postgres"], indirect=True)


async def test_members_on_different_replicas_call_each_other(cluster: Cluster) -> None:
    """Alice on one replica, Bob on another: media, messages, mute and leave all cross."""
    first, second = cluster.start(2)
    server: Any = ClusterApp(cluster)
    bob_hears = RecordingListener()
    async with make_kit(first.url) as alice, make_kit(second.url) as bob:
        await enter(alice, server, "alice", 701)
        await enter(bob, server, "bob", 701, bob_hears)
        await until(receiving(bob, "alice"), "bob decodes alice (signals crossed replicas)")
        await until(receiving(alice, "bob"), "alice decodes bob")
        assert alice.room_uuid == bob.room_uuid

        sent = await alice.send_message("across the cluster")
        await until(
            lambda: any(m.seq == sent.seq for m in bob_hears.messages()), "bob gets the message"
        )
        await alice.mute(True)
        await until(
            lambda: ("on_user_state", "alice", True, True) in bob_hears.events,
            "bob hears alice muted",
        )
        await alice.hangup()
        await until(
            lambda: ("on_user_leave", "alice", "exit") in bob_hears.events, "bob sees alice leave"
        )
        assert frames_from(bob, "alice")[0] > 0


async def test_a_replica_stopped_with_sigterm_hands_its_members_to_another(
    cluster: Cluster, tmp_path: Path
) -> None:
    """SIGTERM: the replica closes its sockets (1012) and exits; through HAProxy its member
    comes back on the other replica, and the call with the member there goes on."""
    first, second = cluster.start(2)
    proxy = HAProxy(tmp_path, [first, second], backups=1)  # alice lands on the first
    server: Any = ClusterApp(cluster)
    bob_hears = RecordingListener()
    try:
        async with make_kit(second.url) as bob, make_kit(proxy.url) as alice:
            await enter(bob, server, "bob", 702, bob_hears)
            await enter(alice, server, "alice", 702)
            await until(receiving(bob, "alice"), "bob decodes alice")
            assert "socket(alice/" in first.log.read_text()
            assert first.stop(signal.SIGTERM) in (0, -signal.SIGTERM), first.log.read_text()
            assert "closed (1012)" in first.log.read_text()

            before = frames_from(bob, "alice")[0]
            await until(
                lambda: "socket(alice/" in second.log.read_text(),
                "alice's socket moves to the second replica",
                within=30,
            )
            await alice.mute(True)  # signaling works again, now through the second
            await until(
                lambda: ("on_user_state", "alice", True, True) in bob_hears.events,
                "bob hears alice mute after the move",
            )
            # The media is peer to peer: it never depended on the replica that stopped.
            await until(lambda: frames_from(bob, "alice")[0] > before + 10, "media flowed")
            assert not alice.closed
            # At most the notice that she entered again (trtc -1307), nothing else.
            assert all(e["errorCode"] == -1307 for e in alice.errors), alice.errors
            assert bob.members == ["alice"]
    finally:
        proxy.close()
