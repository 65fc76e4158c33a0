"""The Python reporter: batches reach a real server; outages and refusals never escape it."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from tavkit.client.api import Credentials
from tavkit.client.reporter import Reporter
from tavkit.errors import TrtcCode, TrtcError


def credentials(server: Any, user_id: str) -> Credentials:
    """Valid credentials of ``user_id`` on ``server``."""
    return Credentials(server.app_id, user_id, server.sig(user_id))


async def enter(server: Any, user_id: str, room: int) -> str:
    """Enter ``room`` over REST; the session UUID."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            f"/v1/rooms/{room}/enter", headers=credentials(server, user_id).headers()
        )
        assert response.status_code == 200, response.text
        return str(response.json()["roomUuid"])


async def test_lines_and_errors_arrive_and_refusals_are_not_retried(sqlite_server_factory):
    """Logged lines (with a seed error) are stored; a refused batch is dropped and counted."""
    server = sqlite_server_factory()
    room_uuid = await enter(server, "alice", 801)
    async with Reporter(server.url, credentials(server, "alice"), room_uuid) as reporter:
        reporter.log("info", "joined", {"members": 0})
        reporter.log("error", "media lost!", error=TrtcError(TrtcCode.PUSH_DISCONNECTED, "ice"))
        assert await reporter.flush() is True
    assert reporter.stats.sent == 2 and reporter.stats.failed == 0

    admin = server.admin_headers()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        lines = (await http.get(f"/v1/sessions/{room_uuid}/logs", headers=admin)).json()["logs"]
    assert [line["event"] for line in lines] == ["joined", "media-lost-"]
    assert lines[1]["error"] == {"module": "trtc", "errorCode": -1307, "errorMsg": "ice"}

    # Bob was never in that session: the server refuses, and asking again would not help.
    outsider = Reporter(server.url, credentials(server, "bob"), room_uuid)
    outsider.log("info", "sneaky")
    assert await outsider.flush() is True
    assert outsider.stats.rejected == 1 and outsider.stats.sent == 0
    await outsider.stop()


async def test_an_unreachable_server_costs_nothing_but_dropped_items():
    """With nothing listening, the queue stays bounded, failures are counted, nothing raises."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    reporter = Reporter(
        f"http://127.0.0.1:{port}",
        Credentials(1400000001, "alice", "sig"),
        "00000000-0000-4000-8000-000000000000",
        lambda: {"bob": None},
        max_queue=10,
        backoff_min=60.0,
        stop_timeout=2.0,
    )
    for i in range(25):
        reporter.log("debug", "tick", {"i": i})
    assert reporter.stats.dropped == 15
    assert await reporter.flush() is False
    assert await reporter.flush() is False  # backing off: no second request
    assert reporter.stats.failed == 1
    await reporter.stop()
    assert reporter.stats.dropped == 25 and reporter.stats.sent == 0


async def test_the_kit_reports_its_call_unless_told_not_to(sqlite_server_factory):
    """TAvKit logs joining and hanging up by itself; ``reporting=False`` sends nothing."""
    from ._util import enter, make_kit

    server = sqlite_server_factory()
    async with make_kit(server.url) as alice, make_kit(server.url, reporting=False) as bob:
        await enter(alice, server, "alice", 802)
        await enter(bob, server, "bob", 802)
        room_uuid = alice.room_uuid
        await bob.hangup()
        await alice.hangup()
    admin = server.admin_headers()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        lines = (await http.get(f"/v1/sessions/{room_uuid}/logs", headers=admin)).json()["logs"]
    # Alice's join timeline of bob may go too (at his first frame, or at hang-up as
    # far as it got, if his offer came before he left), wherever it fell among the rest.
    timelines = [line for line in lines if line["event"] == "join-timeline"]
    assert [(line["userId"], line["data"]["peerId"]) for line in timelines] in (
        [],
        [("alice", "bob")],
    )
    assert [(line["userId"], line["event"]) for line in lines if line not in timelines] == [
        ("alice", "joined"),
        ("alice", "hangup"),
    ]
