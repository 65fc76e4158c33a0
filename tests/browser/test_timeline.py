"""<tavkit-call>'s join timeline: every phase, in order, and reported to the server."""

from __future__ import annotations

from typing import Any

import pytest

from tavkit.protocol import JOIN_PHASES, JOIN_TIMELINE_EVENT

from .pages import Server
from .test_call import OpenCall, pair
from .test_dashboard import admin_get, wait_for

pytestmark = pytest.mark.browser

# Phases that cannot happen before another, whatever runs in parallel. Chromium may
# deliver a connection's "connected" after its first track's "unmute" (events of two
# sources, close together), so DTLS is only held to come before the first frame.
CAUSES = [
    ("enter", "socket-open"),
    ("enter", "media"),  # no camera before the enter response: a refusal never prompts
    ("socket-open", "welcome"),
    ("welcome", "offer"),
    ("offer", "answer"),
    ("answer", "ice-connected"),
    ("ice-connected", "first-rtp"),
    ("dtls-connected", "first-frame"),
    ("first-rtp", "first-frame"),
]
TIMELINES = """(el) => Object.fromEntries(
  [...el.joinTimeline()].filter(([, t]) => t.phases.some(([p]) => p === "first-frame")))"""


def test_a_browser_join_has_every_phase_in_order_and_reports_it(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Both tabs time every join phase in order; the admin reads the same timelines back."""
    alice, bob = pair(open_call, call_server, room)  # bob is the newcomer: he offers
    timelines: dict[str, Any] = {}
    for page, peer in ((alice, "bob"), (bob, "alice")):
        found = wait_for(lambda page=page: page.call(TIMELINES), "a first frame", within=30)
        timeline = found[peer]
        assert timeline["userId"] == peer
        names = [name for name, _ in timeline["phases"]]
        assert sorted(names) == sorted(JOIN_PHASES), names
        times = [ms for _, ms in timeline["phases"]]
        assert times == sorted(times) and times[0] >= 0
        at = dict(timeline["phases"])
        for before, after in CAUSES:
            assert at[before] <= at[after], (before, after, timeline)
        timelines[page.user_id] = {"peerId": peer, "phases": timeline["phases"]}
    room_uuid = bob.events("tavkit:joined")[0]["roomUuid"]
    for page in (alice, bob):
        page.call("(el) => el.hangup()")

    def reported() -> dict[str, Any] | None:
        logs = admin_get(call_server, f"/v1/sessions/{room_uuid}/logs")["logs"]
        lines = {
            line["userId"]: line["data"] for line in logs if line["event"] == JOIN_TIMELINE_EVENT
        }
        return lines if len(lines) == 2 else None

    assert wait_for(reported, "both timelines, sent on hang-up") == timelines
