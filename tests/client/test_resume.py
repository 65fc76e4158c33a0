"""Network failures under a running call: the socket resumes, REST retries, media goes on."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from tavkit.client import Credentials, RoomApi
from tavkit.testing.relay import TcpRelay

from ._util import RecordingListener, enter, frames_from, make_kit, receiving, until


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def test_killed_socket_resumes_and_the_peer_sees_no_leave(
    sqlite_server_factory: Any,
) -> None:
    """Resetting the signaling connection mid-call: it resumes, media flows, nobody left.

    The peer is never told the member left. It is told the member is reconnecting and
    then connected when the server notices the drop before the resume, and nothing when
    the resumed socket is already up by then (the old one's late report is stale news);
    either way it ends with the member connected.
    """
    server = sqlite_server_factory(heartbeat_interval=1.0, heartbeat_timeout=6.0)
    bob_events = RecordingListener()
    relay = await TcpRelay(*_target(server.url)).start()
    async with relay, make_kit(relay.url) as alice, make_kit(server.url) as bob:
        await enter(alice, server, "alice", 301)
        await enter(bob, server, "bob", 301, bob_events)
        await until(receiving(bob, "alice"), "bob decodes alice")
        await until(receiving(alice, "bob"), "alice decodes bob")

        assert relay.cut() >= 1
        await until(lambda: alice.resumes == 1, "alice's socket resumes")
        video_in, _ = frames_from(alice, "bob")
        video_out, _ = frames_from(bob, "alice")
        await until(lambda: frames_from(alice, "bob")[0] > video_in + 15, "alice still decodes")
        await until(lambda: frames_from(bob, "alice")[0] > video_out + 15, "bob still decodes")

        # Signaling still works after the resume: a state change reaches bob.
        await alice.mute(True)
        await until(
            lambda: ("on_user_state", "alice", True, True) in bob_events.events,
            "bob hears about the mute over the resumed socket",
        )
        assert "on_user_leave" not in bob_events.names()
        assert bob.members == ["alice"] and not alice.closed
        # The link events travel the session's channel ahead of the mute: by now bob has
        # heard that alice dropped and came back, in that order, or nothing at all.
        assert bob.reconnecting == []
        links = [e[1:] for e in bob_events.events if e[0] == "on_user_connection"]
        assert links in ([], [("alice", "reconnecting"), ("alice", "connected")])
        assert alice.errors == []

        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            response = await http.get(
                f"/v1/sessions/{alice.room_uuid}", headers=server.headers("bob")
            )
        record = response.json()
        alice_row = next(m for m in record["members"] if m["userId"] == "alice")
        assert alice_row["leftAt"] is None


async def test_rest_calls_retry_through_a_dropped_connection(sqlite_server_factory: Any) -> None:
    """A connection reset before the answer is retried; the caller sees only the answer."""
    server = sqlite_server_factory()
    async with TcpRelay(*_target(server.url)) as relay:
        api = RoomApi(relay.url, Credentials(server.app_id, "ann", server.sig("ann")), backoff=0.05)
        try:
            relay.refuse(2)
            entered = await api.enter(302)
            assert entered.room_id == 302 and entered.members == ()
            assert relay.accepted >= 3
            assert await api.heartbeat(302) > 0
            await api.exit(302)
        finally:
            await api.aclose()


async def test_a_membership_lost_while_away_is_entered_again(sqlite_server_factory: Any) -> None:
    """If the server timed us out while the network was down, the kit enters again by itself."""
    server = sqlite_server_factory(heartbeat_interval=0.5, heartbeat_timeout=3.0)
    bob_events = RecordingListener()
    alice_events = RecordingListener()
    relay = await TcpRelay(*_target(server.url)).start()
    async with relay, make_kit(relay.url, http_retries=0) as alice, make_kit(server.url) as bob:
        await enter(alice, server, "alice", 303, alice_events)
        await enter(bob, server, "bob", 303, bob_events)
        await until(receiving(bob, "alice"), "bob decodes alice")

        relay.refuse(10_000)  # the network is down for alice
        relay.cut()
        await until(
            lambda: ("on_user_leave", "alice", "timeout") in bob_events.events,
            "the server times alice out",
        )
        relay.refuse(0)  # the network is back
        await until(lambda: bob_events.names().count("on_user_enter") == 2, "alice enters again")
        before = frames_from(bob, "alice")[0]
        await until(lambda: frames_from(bob, "alice")[0] > before + 10, "media flows again")
        assert [e["errorCode"] for e in alice_events.errors()][:1] == [-1307]
        assert not alice.closed
