"""Client log ingest and queries over a real server: stored, readable, and refused when bad."""

from __future__ import annotations

import json
import math
import re
import signal
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import APP_ID, random_key

from tavkit.errors import ServerCode, ServerError
from tavkit.server.auth import Caller
from tavkit.server.logs.service import LATE_GRACE, LogService
from tavkit.server.logs.wire import MAX_ITEMS, parse_batch
from tavkit.server.ratelimit import RateLimited
from tavkit.server.settings import AppConfig
from tavkit.server.store.db import Store

from ._util import APP, Clock, eventually, expect_error, room_service
from .test_cli import tavkit

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory


async def enter(client: httpx.AsyncClient, server: RunningServer, user: str, room: int) -> str:
    """Enter ``room`` as ``user``; the session UUID."""
    response = await client.post(f"/v1/rooms/{room}/enter", headers=server.headers(user))
    assert response.status_code == 200, response.text
    return str(response.json()["roomUuid"])


def batch(room_uuid: str, *, now: float | None = None, peer: str = "bob", **extra: Any) -> dict:
    """A valid batch: two log lines (one with a seed error) and two quality samples."""
    now = time.time() if now is None else now
    return {
        "roomUuid": room_uuid,
        "sentAt": now,
        "logs": [
            {"at": now - 2, "level": "info", "event": "joined", "data": {"members": 1}},
            {
                "at": now - 1,
                "level": "error",
                "event": "error",
                "error": {"module": "trtc", "errorCode": -1307, "errorMsg": "media lost"},
            },
        ],
        "quality": [
            {
                "at": now - 2,
                "peerId": peer,
                "rttMs": 12.5,
                "jitterMs": 3.0,
                "packetLoss": 0.01,
                "bitrateInKbps": 800.0,
                "bitrateOutKbps": 750.0,
                "fps": 30,
                "width": 640,
                "height": 480,
                "candidateType": "host",
            },
            {"at": now - 1, "peerId": peer, "rttMs": 20.0, "candidateType": "relay"},
        ],
        **extra,
    }


async def stored(client: httpx.AsyncClient, server: RunningServer, room_uuid: str) -> tuple:
    """Everything stored for the session, as the admin reads it."""
    admin = server.admin_headers()
    logs = await client.get(f"/v1/sessions/{room_uuid}/logs", headers=admin)
    quality = await client.get(f"/v1/sessions/{room_uuid}/quality", headers=admin)
    assert logs.status_code == 200 and quality.status_code == 200, (logs.text, quality.text)
    return logs.json()["logs"], quality.json()["quality"]


async def test_a_batch_is_stored_and_read_back_per_user(client, server):
    """A member's batch is stored under its session and user; the admin reads everyone's."""
    room_uuid = await enter(client, server, "alice", 501)
    await enter(client, server, "bob", 501)
    response = await client.post("/v1/logs", json=batch(room_uuid), headers=server.headers("alice"))
    assert response.status_code == 200, response.text
    assert response.json() == {"roomUuid": room_uuid, "accepted": {"logs": 2, "quality": 2}}
    response = await client.post(
        "/v1/logs", json=batch(room_uuid, peer="alice"), headers=server.headers("bob")
    )
    assert response.status_code == 200, response.text

    logs, quality = await stored(client, server, room_uuid)
    assert sorted({line["userId"] for line in logs}) == ["alice", "bob"]
    alice_lines = [line for line in logs if line["userId"] == "alice"]
    assert [line["event"] for line in alice_lines] == ["joined", "error"]
    assert alice_lines[0]["data"] == {"members": 1} and alice_lines[0]["error"] is None
    assert alice_lines[1]["error"] == {
        "module": "trtc",
        "errorCode": -1307,
        "errorMsg": "media lost",
    }
    first = next(s for s in quality if s["userId"] == "alice")
    assert first == {
        "userId": "alice",
        "peerId": "bob",
        "at": pytest.approx(first["at"]),
        "rttMs": 12.5,
        "jitterMs": 3.0,
        "packetLoss": 0.01,
        "bitrateInKbps": 800.0,
        "bitrateOutKbps": 750.0,
        "fps": 30.0,
        "width": 640,
        "height": 480,
        "candidateType": "host",
    }
    assert [s["at"] for s in quality] == sorted(s["at"] for s in quality)

    # A member reads their own entries only; the admin can filter by user.
    own = await client.get(f"/v1/sessions/{room_uuid}/quality", headers=server.headers("bob"))
    assert {s["userId"] for s in own.json()["quality"]} == {"bob"}
    nosy = await client.get(
        f"/v1/sessions/{room_uuid}/logs", params={"userId": "alice"}, headers=server.headers("bob")
    )
    expect_error(nosy, ServerCode.UNAUTHORISED)
    only = await client.get(
        f"/v1/sessions/{room_uuid}/logs", params={"userId": "bob"}, headers=server.admin_headers()
    )
    assert {line["userId"] for line in only.json()["logs"]} == {"bob"}
    outsider = await client.get(f"/v1/sessions/{room_uuid}/logs", headers=server.headers("carol"))
    expect_error(outsider, ServerCode.UNAUTHORISED)


async def test_sendbeacon_body_credentials_are_accepted(client, server):
    """With no headers, credentials in the body's ``auth`` work (text/plain, as a beacon)."""
    room_uuid = await enter(client, server, "alice", 502)
    body = batch(
        room_uuid,
        auth={"sdkAppId": server.app_id, "userId": "alice", "userSig": server.sig("alice")},
    )
    response = await client.post(
        "/v1/logs", content=json.dumps(body), headers={"Content-Type": "text/plain;charset=UTF-8"}
    )
    assert response.status_code == 200, response.text
    logs, _ = await stored(client, server, room_uuid)
    assert {line["userId"] for line in logs} == {"alice"}

    forged = batch(
        room_uuid,
        auth={"sdkAppId": server.app_id, "userId": "alice", "userSig": server.sig("mallory")},
    )
    response = await client.post("/v1/logs", content=json.dumps(forged))
    expect_error(response, ServerCode.UNAUTHORISED)


async def test_late_batches_after_hang_up_are_kept(client, server):
    """A member's final flush after leaving (and after the session closed) is stored."""
    room_uuid = await enter(client, server, "alice", 503)
    response = await client.post("/v1/rooms/503/exit", headers=server.headers("alice"))
    assert response.status_code == 200
    response = await client.post("/v1/logs", json=batch(room_uuid), headers=server.headers("alice"))
    assert response.status_code == 200, response.text


async def closed_session(client: httpx.AsyncClient, server: RunningServer, room: int) -> str:
    """A session alice entered and left, once the server has closed it; its UUID."""
    room_uuid = await enter(client, server, "alice", room)
    response = await client.post(f"/v1/rooms/{room}/exit", headers=server.headers("alice"))
    assert response.status_code == 200, response.text

    async def closed() -> bool:
        response = await client.get(f"/v1/sessions/{room_uuid}", headers=server.admin_headers())
        return response.json()["closedAt"] is not None

    await eventually(closed)
    return room_uuid


async def test_batches_for_a_session_closed_over_5_minutes_ago_are_refused(client, server):
    """Up to 5 minutes after its session closed a batch is stored; later it is 14003 (410)
    and nothing of it is kept."""
    room_uuid = await closed_session(client, server, 509)
    alice = server.headers("alice")
    sql = "UPDATE room_sessions SET closed_at = {at} WHERE room_id = 509"
    server.database.execute(sql.format(at=time.time() - LATE_GRACE + 60))
    response = await client.post("/v1/logs", json=batch(room_uuid), headers=alice)
    assert response.status_code == 200, response.text
    before = await stored(client, server, room_uuid)

    server.database.execute(sql.format(at=time.time() - LATE_GRACE - 60))
    response = await client.post("/v1/logs", json=batch(room_uuid), headers=alice)
    assert "closed" in expect_error(response, ServerCode.ROOM_CLOSED, status=410)
    assert await stored(client, server, room_uuid) == before


def caller(user: str = "alice") -> Caller:
    """A verified member of the service tests' app."""
    return Caller(app=AppConfig(APP, "a" * 64), user_id=user, privileges=255, is_admin=False)


async def left_session(store: Store, clock: Clock) -> tuple[str, float]:
    """A session alice entered and left, closed by a sweep; its UUID and close time."""
    rooms = await room_service(store, clock, max_members=3)
    admission = await rooms.enter(APP, 1, "alice", privileges=255)
    await rooms.exit(APP, 1, "alice")
    clock.now += 3.0  # past the 2 s close grace
    await rooms.sweep()
    return str(admission.room_uuid), clock.now


async def test_the_late_grace_ends_exactly_5_minutes_after_the_close(store: Store, clock: Clock):
    """At 300 s after its session closed a batch is taken; half a second later it is 14003."""
    room_uuid, closed_at = await left_session(store, clock)
    service = LogService(store)
    at = closed_at + LATE_GRACE
    await service.ingest(caller(), parse_batch(batch(room_uuid, now=at), now=at), now=at)
    later = at + 0.5
    with pytest.raises(ServerError) as refused:
        await service.ingest(
            caller(), parse_batch(batch(room_uuid, now=later), now=later), now=later
        )
    assert refused.value.code == ServerCode.ROOM_CLOSED
    assert len(await service.logs(uuid.UUID(room_uuid), user_id=None, since=None, limit=10)) == 2


async def test_the_daily_cap_resets_at_midnight_utc(store: Store, clock: Clock):
    """Past the app's daily cap a batch is refused whole (429, Retry-After until midnight
    UTC); the next UTC day it is taken; a refused batch does not count."""
    rooms = await room_service(store, clock, max_members=3)
    room_uuid = str((await rooms.enter(APP, 1, "alice", privileges=255)).room_uuid)
    service = LogService(store, daily_cap=6)
    now = clock.now
    midnight = (now // 86400 + 1) * 86400

    def four(at: float) -> Any:
        return parse_batch(batch(room_uuid, now=at), now=at)

    await service.ingest(caller(), four(now), now=now)
    with pytest.raises(RateLimited) as refused:
        await service.ingest(caller(), four(now + 1), now=now + 1)
    assert refused.value.code == ServerCode.INVALID_PARAMETER and refused.value.reason == "quota"
    assert refused.value.retry_after == max(1, math.ceil(midnight - (now + 1)))
    two = parse_batch({"roomUuid": room_uuid, "logs": batch(room_uuid, now=now)["logs"]}, now=now)
    await service.ingest(caller(), two, now=now + 2)  # exactly the cap: 6 items
    with pytest.raises(RateLimited):
        await service.ingest(caller(), two, now=now + 3)
    await service.ingest(caller(), four(midnight + 1), now=midnight + 1)  # a new UTC day
    assert len(await service.logs(uuid.UUID(room_uuid), user_id=None, since=None, limit=50)) == 6


async def test_the_daily_cap_refuses_with_429_and_survives_a_restart(
    server_factory: ServerFactory,
):
    """An app past its daily cap gets 429, server 10004, Retry-After, also after a restart
    (the count comes back from the database); another app is not affected."""
    other = AppConfig(1400000002, random_key())
    server = server_factory(log_daily_cap=10, apps=(AppConfig(APP_ID, random_key()), other))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        room_uuid = await enter(client, server, "alice", 510)
        alice = server.headers("alice")
        for _ in range(2):  # 4 items each
            response = await client.post("/v1/logs", json=batch(room_uuid), headers=alice)
            assert response.status_code == 200, response.text
        response = await client.post("/v1/logs", json=batch(room_uuid), headers=alice)
        message = expect_error(response, ServerCode.INVALID_PARAMETER, status=429)
        assert message.startswith("rate limited") and "today" in message
        assert 1 <= int(response.headers["Retry-After"]) <= 86400
        two = {"roomUuid": room_uuid, "logs": batch(room_uuid)["logs"]}
        response = await client.post("/v1/logs", json=two, headers=alice)
        assert response.status_code == 200, response.text  # 10: the cap itself is allowed

        zoe = server.headers("zoe", sig=server.sig("zoe", app=other), app_id=other.sdk_app_id)
        response = await client.post("/v1/rooms/510/enter", headers=zoe)
        assert response.status_code == 200, response.text
        theirs = batch(response.json()["roomUuid"])
        response = await client.post("/v1/logs", json=theirs, headers=zoe)
        assert response.status_code == 200, response.text

    server.restart()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        one = {"roomUuid": room_uuid, "logs": batch(room_uuid)["logs"][:1]}
        response = await client.post("/v1/logs", json=one, headers=server.headers("alice"))
        expect_error(response, ServerCode.INVALID_PARAMETER, status=429)


async def test_an_app_of_its_own_log_cap_keeps_to_it_and_the_others_to_the_server_s(
    sqlite_server_factory: ServerFactory,
):
    """An app with ``logDailyCap`` 4 is refused its second 4-item batch; an app with none
    of its own keeps the server's cap (and an app's 0 means no cap at all)."""
    small = AppConfig(1400000002, random_key(), log_daily_cap=4)
    free = AppConfig(1400000003, random_key(), log_daily_cap=0)
    server = sqlite_server_factory(
        log_daily_cap=8, apps=(AppConfig(APP_ID, random_key()), small, free)
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        outcomes: dict[int, list[int]] = {}
        for app in (server.settings.apps[0], small, free):
            who = server.headers("zoe", sig=server.sig("zoe", app=app), app_id=app.sdk_app_id)
            entered = await client.post("/v1/rooms/511/enter", headers=who)
            assert entered.status_code == 200, entered.text
            body = batch(entered.json()["roomUuid"])  # 4 items
            statuses = []
            for _ in range(3):
                response = await client.post("/v1/logs", json=body, headers=who)
                statuses.append(response.status_code)
            outcomes[app.sdk_app_id] = statuses
    assert outcomes == {
        APP_ID: [200, 200, 429],
        small.sdk_app_id: [200, 429, 429],
        free.sdk_app_id: [200, 200, 200],
    }


async def test_client_clock_skew_is_corrected_by_sent_at(client, server):
    """Items from a client whose clock is an hour behind are stored at server time."""
    room_uuid = await enter(client, server, "alice", 504)
    skewed = time.time() - 3600
    before = time.time()
    response = await client.post(
        "/v1/logs", json=batch(room_uuid, now=skewed), headers=server.headers("alice")
    )
    assert response.status_code == 200, response.text
    logs, _ = await stored(client, server, room_uuid)
    # "joined" was logged 2 s before the batch left, by the client's own clock.
    assert before - 3 < logs[0]["at"] < time.time()
    assert logs[0]["receivedAt"] - logs[0]["at"] == pytest.approx(2.0, abs=0.5)


def _mutate(path: list[Any], value: Any):
    def apply(body: dict) -> dict:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return body

    return apply


BAD_FIELDS = [
    (["logs", 0, "level"], 5),
    (["logs", 0, "level"], "fatal"),
    (["logs", 0, "event"], ""),
    (["logs", 0, "event"], "x" * 65),
    (["logs", 0, "at"], "yesterday"),
    (["logs", 0, "at"], 12.0),
    (["logs", 0, "data"], "not an object"),
    (["logs", 0, "data"], {"blob": "x" * 5000}),
    (["logs", 1, "error"], {"module": "trtc", "errorCode": 4242, "errorMsg": "made up"}),
    (["logs", 1, "error"], {"module": "nope", "errorCode": 10000, "errorMsg": "?"}),
    (["logs", 1, "error", "errorMsg"], "x" * 501),
    (["quality", 0, "packetLoss"], 1.5),
    (["quality", 0, "rttMs"], -1),
    (["quality", 0, "rttMs"], True),
    (["quality", 0, "width"], 640.5),
    (["quality", 0, "candidateType"], "carrier-pigeon"),
    (["quality", 0, "peerId"], "no spaces allowed"),
    (["quality", 0, "surprise"], 1),
    (["logs"], {"not": "a list"}),
    (["roomUuid"], "NOT-A-UUID"),
    (["dropped"], -3),
    (["sentAt"], "now"),
]


async def test_malformed_fields_are_refused_and_nothing_is_stored(sqlite_server):
    """Each wrong type, range or length refuses the whole batch with server 10004."""
    server = sqlite_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        room_uuid = await enter(client, server, "alice", 505)
        for i, (path, value) in enumerate(BAD_FIELDS):
            body = _mutate(path, value)(batch(room_uuid))
            # A user per case, so the per-user rate limit stays out of the way.
            headers = server.headers(f"user{i}")
            response = await client.post("/v1/logs", json=body, headers=headers)
            message = expect_error(response, ServerCode.INVALID_PARAMETER)
            assert str(path[-1]) in message, (path, message)
        assert await stored(client, server, room_uuid) == ([], [])


async def test_bad_batches_are_refused_with_seed_codes(client, server):
    """Huge, non-JSON, anonymous and foreign-session batches are refused; the store is unchanged."""
    room_uuid = await enter(client, server, "alice", 506)
    carol_uuid = await enter(client, server, "carol", 507)
    alice = server.headers("alice")
    good = await client.post("/v1/logs", json=batch(room_uuid), headers=alice)
    assert good.status_code == 200
    before = await stored(client, server, room_uuid)
    carol_before = await stored(client, server, carol_uuid)

    now = time.time()
    line = {"at": now, "level": "debug", "event": "tick"}
    too_many = {"roomUuid": room_uuid, "logs": [line] * (MAX_ITEMS + 1)}
    expect_error(
        await client.post("/v1/logs", json=too_many, headers=alice), ServerCode.INVALID_PARAMETER
    )
    huge = {"roomUuid": room_uuid, "logs": [{**line, "data": {"x": "y" * 1900}}] * 40}
    expect_error(await client.post("/v1/logs", json=huge, headers=alice), ServerCode.BAD_REQUEST)
    expect_error(
        await client.post("/v1/logs", content=b"{not json", headers=alice), ServerCode.JSON_DECODE
    )
    expect_error(await client.post("/v1/logs", json=[1, 2], headers=alice), ServerCode.BAD_REQUEST)
    expect_error(await client.post("/v1/logs", headers=alice), ServerCode.BAD_REQUEST)
    # No credentials at all, a wrong signature, a user of no app.
    expect_error(await client.post("/v1/logs", json=batch(room_uuid)), ServerCode.UNAUTHORISED)
    wrong_sig = server.headers("alice", sig=server.sig("bob"))
    expect_error(
        await client.post("/v1/logs", json=batch(room_uuid), headers=wrong_sig),
        ServerCode.UNAUTHORISED,
    )
    # Alice reporting into Carol's session, which she was never in.
    expect_error(
        await client.post("/v1/logs", json=batch(carol_uuid), headers=alice),
        ServerCode.UNAUTHORISED,
    )
    # A session that does not exist.
    ghost = "00000000-0000-4000-8000-000000000000"
    expect_error(
        await client.post("/v1/logs", json=batch(ghost), headers=alice),
        ServerCode.SESSION_NOT_FOUND,
    )
    expect_error(
        await client.get(f"/v1/sessions/{ghost}/logs", headers=server.admin_headers()),
        ServerCode.SESSION_NOT_FOUND,
    )

    assert await stored(client, server, room_uuid) == before
    assert await stored(client, server, carol_uuid) == carol_before


async def test_a_flooding_client_is_rate_limited(sqlite_server):
    """Past its burst, a user's batches get 429 with server 10004; another user is unaffected."""
    server = sqlite_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        room_uuid = await enter(client, server, "alice", 508)
        await enter(client, server, "bob", 508)
        small = {"roomUuid": room_uuid, "logs": []}
        statuses = []
        for _ in range(40):
            response = await client.post("/v1/logs", json=small, headers=server.headers("alice"))
            statuses.append(response.status_code)
            if response.status_code == 429:
                expect_error(response, ServerCode.INVALID_PARAMETER, status=429)
                assert response.headers["Retry-After"] == "1"
                break
        assert statuses[-1] == 429 and statuses.count(200) >= 20
        response = await client.post("/v1/logs", json=small, headers=server.headers("bob"))
        assert response.status_code == 200


async def test_serve_log_format_json_writes_room_events_with_session_and_user(tmp_path):
    """``tavkit serve --log-format json`` logs one JSON object a line; room events name both."""
    process = tavkit(
        "serve", "--demo", "--port", "0", "--data-dir", str(tmp_path), "--log-format", "json"
    )
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "tavkit serving on" in line:
                started.set()
        started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "".join(lines)
        url = next(m.group(1) for line in lines if (m := re.search(r"on (http://\S+)", line)))
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            minted = (await client.post("/v1/demo/usersig", json={"userId": "alice"})).json()
            headers = {
                "X-TAvKit-SdkAppId": str(minted["sdkAppId"]),
                "X-TAvKit-UserId": "alice",
                "X-TAvKit-UserSig": minted["userSig"],
            }
            room_uuid = (await client.post("/v1/rooms/9/enter", headers=headers)).json()["roomUuid"]
            await client.post("/v1/rooms/9/exit", headers=headers)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        reader.join(10)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and all({"time", "level", "logger", "msg"} <= set(r) for r in records)
    events = [(r["event"], r["user"]) for r in records if r.get("session") == room_uuid]
    assert ("member-joined", "alice") in events and ("member-left", "alice") in events


def timeline_line(data: Any) -> dict[str, Any]:
    """A ``join-timeline`` log line carrying ``data``."""
    return {"at": time.time(), "level": "info", "event": "join-timeline", "data": data}


GOOD_TIMELINE = {
    "peerId": "bob",
    "phases": [
        ["enter", 40.5],
        ["socket-open", 52],
        ["welcome", 60.1],
        ["media", 61],
        ["offer", 90],
    ],
}
BAD_TIMELINES = [
    None,
    "enter at 40",
    {"peerId": "bob"},
    {**GOOD_TIMELINE, "extra": 1},
    {**GOOD_TIMELINE, "peerId": "no spaces allowed"},
    {**GOOD_TIMELINE, "phases": []},
    {**GOOD_TIMELINE, "phases": [["enter", 1]] * 11},
    {**GOOD_TIMELINE, "phases": [["teleport", 1]]},
    {**GOOD_TIMELINE, "phases": [["enter", 1], ["enter", 2]]},
    {**GOOD_TIMELINE, "phases": [["enter", -1]]},
    {**GOOD_TIMELINE, "phases": [["enter", 1e9]]},
    {**GOOD_TIMELINE, "phases": [["enter", True]]},
    {**GOOD_TIMELINE, "phases": [["enter", "40"]]},
    {**GOOD_TIMELINE, "phases": [["enter", 1, 2]]},
    {**GOOD_TIMELINE, "phases": [{"enter": 1}]},
    {**GOOD_TIMELINE, "phases": [["welcome", 50], ["enter", 40]]},
]


async def test_a_join_timeline_is_stored_and_read_back(client, server):
    """A member's join timeline line comes back from the session's logs exactly as sent."""
    room_uuid = await enter(client, server, "alice", 531)
    body = {"roomUuid": room_uuid, "logs": [timeline_line(GOOD_TIMELINE)]}
    response = await client.post("/v1/logs", json=body, headers=server.headers("alice"))
    assert response.status_code == 200, response.text
    logs, _ = await stored(client, server, room_uuid)
    assert [(line["userId"], line["event"], line["data"]) for line in logs] == [
        ("alice", "join-timeline", GOOD_TIMELINE)
    ]


async def test_hostile_join_timelines_are_refused_and_nothing_is_stored(sqlite_server):
    """A garbled timeline refuses the batch (10004); a stranger's sound one is 10005."""
    server = sqlite_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        room_uuid = await enter(client, server, "alice", 532)
        for i, data in enumerate(BAD_TIMELINES):
            body = {"roomUuid": room_uuid, "logs": [timeline_line(data)]}
            response = await client.post("/v1/logs", json=body, headers=server.headers(f"u{i}"))
            message = expect_error(response, ServerCode.INVALID_PARAMETER)
            assert "logs[0].data" in message, (data, message)
        stranger = {"roomUuid": room_uuid, "logs": [timeline_line(GOOD_TIMELINE)]}
        response = await client.post("/v1/logs", json=stranger, headers=server.headers("mallory"))
        expect_error(response, ServerCode.UNAUTHORISED)
        assert await stored(client, server, room_uuid) == ([], [])
