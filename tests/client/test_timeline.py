"""The Python client's join timeline: every phase, in order, and reported to the server."""

from __future__ import annotations

from typing import Any

import httpx

from tavkit.client import JoinTimeline, TAvKit
from tavkit.protocol import JOIN_PHASES, JOIN_TIMELINE_EVENT

from ._util import enter, make_kit, receiving, until

# Phases that cannot happen before another, whatever runs in parallel.
CAUSES = [
    ("enter", "socket-open"),
    ("socket-open", "welcome"),
    ("welcome", "offer"),
    ("offer", "answer"),
    ("answer", "ice-connected"),
    ("ice-connected", "dtls-connected"),
    ("dtls-connected", "first-rtp"),
    ("first-rtp", "first-frame"),
]


def assert_in_order(timeline: JoinTimeline) -> None:
    """Every phase is there once, listed in time order, and no effect precedes its cause."""
    names = [name for name, _ in timeline.phases]
    assert sorted(names) == sorted(JOIN_PHASES), names
    times = [ms for _, ms in timeline.phases]
    assert times == sorted(times) and times[0] >= 0
    for before, after in CAUSES:
        assert timeline.ms(before) <= timeline.ms(after), (before, after, timeline)  # type: ignore[operator]
    assert timeline.complete


async def test_a_join_has_every_phase_in_order_and_reports_it(sqlite_server_factory: Any) -> None:
    """Both sides of a Python call time every join phase in order; the admin reads them back."""
    server = sqlite_server_factory()
    alice: TAvKit = make_kit(server.url)
    bob: TAvKit = make_kit(server.url)
    async with alice, bob:
        await enter(alice, server, "alice", 131)
        await enter(bob, server, "bob", 131)  # the newcomer: bob offers, alice answers
        await until(receiving(bob, "alice", video=1, audio=1), "bob decodes alice")
        await until(receiving(alice, "bob", video=1, audio=1), "alice decodes bob")
        room_uuid = bob.room_uuid
        for kit, peer in ((bob, "alice"), (alice, "bob")):
            timeline = kit.join_timelines[peer]
            assert timeline.user_id == peer
            assert_in_order(timeline)
        # Alice was alone in the room at first: her mesh began when bob called her.
        assert alice.join_timelines["bob"].ms("welcome") < alice.join_timelines["bob"].ms("offer")  # type: ignore[operator]
        expected = {
            "alice": alice.join_timelines["bob"].to_wire(),
            "bob": bob.join_timelines["alice"].to_wire(),
        }
    # Hung up: the reporters have flushed what they had.
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.get(
            f"/v1/sessions/{room_uuid}/logs", headers=server.admin_headers()
        )
    assert response.status_code == 200, response.text
    reported = {
        line["userId"]: line["data"]
        for line in response.json()["logs"]
        if line["event"] == JOIN_TIMELINE_EVENT
    }
    assert reported == expected
