"""Client log ingest and queries over a real server: stored, readable, and refused when bad."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tavkit.errors import ServerCode
from tavkit.server.logs.wire import MAX_ITEMS

from ._util import expect_error
from .test_cli import tavkit

if TYPE_CHECKING:
    from conftest import RunningServer


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
