"""``/metrics`` on a real server: it moves with sessions, members, errors and log ingest."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tavkit.protocol import Member
from tavkit.server.bus import InProcessBus, session_channel
from tavkit.server.events import MemberJoinedEvent, MemberLeftEvent
from tavkit.server.logformat import JsonFormatter, log_context
from tavkit.server.metrics import Metrics, ObservedBus

from ._util import eventually

if TYPE_CHECKING:
    from conftest import RunningServer


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple], float]:
    """Every sample of ``/metrics`` as ``{(name, sorted labels): value}``."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


async def test_metrics_follow_sessions_opening_and_closing(client, server: RunningServer):
    """Open sessions, live members, enters, exits and closes move as a room fills and empties."""
    before = await scrape(client)
    assert total(before, "tavkit_sessions_open") == 0
    assert total(before, "tavkit_members_live") == 0

    for user in ("alice", "bob"):
        response = await client.post("/v1/rooms/601/enter", headers=server.headers(user))
        assert response.status_code == 200
    during = await scrape(client)
    assert total(during, "tavkit_sessions_open") == 1
    assert total(during, "tavkit_members_live") == 2
    assert total(during, "tavkit_room_enters_total") == 2

    for user in ("alice", "bob"):
        response = await client.post("/v1/rooms/601/exit", headers=server.headers(user))
        assert response.status_code == 200

    async def closed() -> dict | None:
        now = await scrape(client)
        return now if total(now, "tavkit_sessions_open") == 0 else None

    after = await eventually(closed)
    assert total(after, "tavkit_members_live") == 0
    assert total(after, "tavkit_room_exits_total", reason="exit") == 2
    assert total(after, "tavkit_sessions_closed_total", reason="empty") == 1


async def test_a_silent_member_counts_as_a_heartbeat_timeout(sqlite_server_factory):
    """A member whose heartbeats stop is removed and counted as a timeout."""
    server = sqlite_server_factory(heartbeat_interval=0.2, heartbeat_timeout=0.6)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post("/v1/rooms/602/enter", headers=server.headers("alice"))
        assert response.status_code == 200

        async def timed_out() -> dict | None:
            now = await scrape(client)
            return now if total(now, "tavkit_heartbeat_timeouts_total") == 1 else None

        samples = await eventually(timed_out)
        assert total(samples, "tavkit_room_exits_total", reason="timeout") == 1


async def test_errors_are_counted_by_module_and_code(sqlite_server):
    """Refusals the server sends and errors clients report are counted by (module, code)."""
    server = sqlite_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        bad = server.headers("alice", sig="not-a-signature")
        for _ in range(2):
            await client.get("/v1/rooms/603/users", headers=bad)
        await client.get("/v1/no/such/route")
        response = await client.post("/v1/rooms/603/enter", headers=server.headers("alice"))
        room_uuid = response.json()["roomUuid"]
        now = time.time()
        report = {
            "roomUuid": room_uuid,
            "dropped": 4,
            "logs": [
                {
                    "at": now,
                    "level": "error",
                    "event": "error",
                    "error": {"module": "trtc", "errorCode": -1307, "errorMsg": "lost"},
                }
            ],
            "quality": [{"at": now, "peerId": "bob", "rttMs": 10}],
        }
        response = await client.post("/v1/logs", json=report, headers=server.headers("alice"))
        assert response.status_code == 200
        invalid = {"roomUuid": room_uuid, "logs": [{"at": now, "level": "loud", "event": "x"}]}
        await client.post("/v1/logs", json=invalid, headers=server.headers("alice"))

        samples = await scrape(client)
    server_errors = {"source": "server", "module": "server"}
    assert total(samples, "tavkit_errors_total", **server_errors, code="10005") == 2
    assert total(samples, "tavkit_errors_total", **server_errors, code="10001") == 1
    assert total(samples, "tavkit_errors_total", **server_errors, code="10004") == 1
    assert total(samples, "tavkit_errors_total", source="client", module="trtc", code="-1307") == 1
    assert total(samples, "tavkit_log_ingest_items_total", kind="log") == 1
    assert total(samples, "tavkit_log_ingest_items_total", kind="quality") == 1
    assert total(samples, "tavkit_log_client_dropped_total") == 4
    assert total(samples, "tavkit_log_ingest_refused_total", reason="invalid") == 1


async def test_each_app_counts_on_its_own_registry():
    """Two Metrics never share a series, and the observed bus still delivers every event."""
    first, second = Metrics(), Metrics()
    bus = ObservedBus(InProcessBus(), first)
    channel = session_channel("00000000-0000-4000-8000-000000000001")
    async with bus.subscribe(channel) as events:
        await bus.publish(channel, MemberLeftEvent("a", "timeout", "c1"))
        async with asyncio.timeout(5):
            received = await anext(aiter(events))
    assert received == MemberLeftEvent("a", "timeout", "c1")
    assert b"tavkit_heartbeat_timeouts_total 1.0" in first.render()
    assert b"tavkit_heartbeat_timeouts_total 0.0" in second.render()


async def test_room_events_become_json_log_lines_with_session_and_user(caplog):
    """Each room event is one JSON log line carrying its session and user as fields."""
    bus = ObservedBus(InProcessBus(), Metrics())
    session = "00000000-0000-4000-8000-000000000002"
    member = Member("alice", joined_at=1.0)
    with caplog.at_level(logging.INFO, logger="tavkit.events"):
        await bus.publish(session_channel(session), MemberJoinedEvent(member, "c1"))
        await bus.publish(session_channel(session), MemberLeftEvent("alice", "exit", "c1"))
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    assert [(line["event"], line["session"], line["user"]) for line in lines] == [
        ("member-joined", session, "alice"),
        ("member-left", session, "alice"),
    ]
    assert lines[1]["reason"] == "exit" and lines[1]["level"] == "info"
    assert lines[0]["logger"] == "tavkit.events" and lines[0]["time"].endswith("+00:00")

    with log_context(session=session, user="bob"):
        record = logging.getLogger("tavkit.test").makeRecord(
            "tavkit.test", logging.WARNING, __file__, 1, "stored %d items", (3,), None
        )
        line = json.loads(formatter.format(record))
    assert (line["msg"], line["session"], line["user"]) == ("stored 3 items", session, "bob")


async def test_socket_frames_are_counted_by_direction_and_type(sqlite_server):
    """Frames in and out of the signaling socket, and its error frames, are counted."""
    server = sqlite_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post("/v1/rooms/604/enter", headers=server.headers("alice"))
        entered = response.json()
        offered = ["tavkit.v1", f"tavkit.token.{entered['socketToken']}"]
        async with connect(
            entered["socketUrl"],
            proxy=None,
            open_timeout=20,
            close_timeout=2,
            subprotocols=offered,  # type: ignore[arg-type]
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "welcome"
            await ws.send(json.dumps({"type": "ping", "t": 1}))
            assert json.loads(await ws.recv())["type"] == "pong"
            await ws.send(json.dumps({"type": "no-such-frame"}))
            assert json.loads(await ws.recv())["type"] == "error"
        samples = await scrape(client)
    assert total(samples, "tavkit_socket_messages_total", direction="in", type="ping") == 1
    assert total(samples, "tavkit_socket_messages_total", direction="out", type="welcome") == 1
    assert total(samples, "tavkit_socket_messages_total", direction="out", type="pong") == 1
    assert total(samples, "tavkit_errors_total", source="server", code="10004") == 1
