"""The recorder: real Python clients in a recorded room, and the files it leaves behind."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from client._util import RecordingListener, enter, make_kit, receiving, until
from conftest import APP_ID, random_key

from tavkit.auth import gen_user_sig
from tavkit.client import TAvKit
from tavkit.errors import ServerCode

from ._threads import no_decoder_threads_left
from ._util import eventually, expect_error

CALL = 4.0  # seconds each call lasts once media flows


@pytest.fixture(autouse=True)
def _no_leaked_media_threads() -> Any:
    """Every peer connection of the test (clients' and recorder's) is closed by its end."""
    yield
    no_decoder_threads_left()


def decode(path: Path) -> tuple[int, int]:
    """(video frames, audio frames) PyAV decodes from the file at ``path``."""
    video = audio = 0
    with av.open(str(path)) as container:
        for packet in container.demux():
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue  # a packet cut by a crash
            for frame in frames:
                if isinstance(frame, av.VideoFrame):
                    video += 1
                elif isinstance(frame, av.AudioFrame):
                    audio += 1
    return video, audio


async def recordings(
    http: httpx.AsyncClient, room_uuid: str, headers: dict[str, str]
) -> dict[str, Any]:
    """``GET /v1/sessions/{uuid}/recordings``, asserting success."""
    response = await http.get(f"/v1/sessions/{room_uuid}/recordings", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def finished(http: httpx.AsyncClient, room_uuid: str, headers: dict[str, str], n: int) -> Any:
    """Wait until the session has ``n`` recordings and none is still being written."""

    async def probe() -> list[dict[str, Any]] | None:
        body = await recordings(http, room_uuid, headers)
        done = [r for r in body["recordings"] if r["status"] != "recording"]
        if body["recording"] or len(done) != n or len(body["recordings"]) != n:
            return None
        return body["recordings"]

    return await eventually(probe, within=40)


def check_file(data_dir: Path, room_uuid: str, rec: dict[str, Any], n: int = 1) -> Path:
    """The file of ``rec`` matches its row (size, SHA-256) and decodes with video and audio."""
    path = data_dir / "recordings" / room_uuid / f"{rec['userId']}-{n}.mkv"
    content = path.read_bytes()
    assert rec["size"] == len(content)
    assert rec["sha256"] == hashlib.sha256(content).hexdigest()
    video, audio = decode(path)
    assert video > 10 and audio > 20, (rec["userId"], video, audio)
    assert rec["hasVideo"] and rec["hasAudio"]
    return path


async def test_auto_records_every_participant_to_a_decodable_file(
    sqlite_server_factory: Any,
) -> None:
    """recording=auto: two clients talk; each gets a complete file that decodes, recorder hidden."""
    server = sqlite_server_factory(recording="auto")
    listeners = {"alice": RecordingListener(), "bob": RecordingListener()}
    async with (
        make_kit(server.url) as alice,
        make_kit(server.url) as bob,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        entered = time.time()
        await enter(alice, server, "alice", 301, listeners["alice"])
        await enter(bob, server, "bob", 301, listeners["bob"])
        await until(receiving(alice, "bob", video=10, audio=20), "alice decodes bob")
        await until(receiving(bob, "alice", video=10, audio=20), "bob decodes alice")
        room_uuid = str(alice.room_uuid)
        body = await recordings(http, room_uuid, server.headers("alice"))
        assert body["recording"] is True
        flowing = time.time()
        await asyncio.sleep(CALL)
        users = await http.get("/v1/rooms/301/users", headers=server.headers("bob"))
        assert sorted(m["userId"] for m in users.json()["members"]) == ["alice", "bob"]
        assert alice.members == ["bob"] and bob.members == ["alice"]
        rooms = (await http.get("/v1/admin/rooms", headers=server.admin_headers())).json()
        [room] = [r for r in rooms["rooms"] if r["roomUuid"] == room_uuid]
        assert sorted(m["userId"] for m in room["members"]) == ["alice", "bob"]
        hung_up = {"alice": time.time()}
        await alice.hangup()
        hung_up["bob"] = time.time()
        await bob.hangup()

        found = await finished(http, room_uuid, server.admin_headers(), 2)
        # A member lists their own file only; the admin lists both.
        own = await recordings(http, room_uuid, server.headers("alice"))
        assert [r["userId"] for r in own["recordings"]] == ["alice"]
    assert sorted(r["userId"] for r in found) == ["alice", "bob"]
    for rec in found:
        assert rec["status"] == "complete" and rec["stopReason"] == "left"
        check_file(server.settings.data_dir, room_uuid, rec)
        # Each file spans the member's part of the call, to within a second.
        assert entered <= rec["startedAt"] <= flowing + 1.0, (entered, rec, flowing)
        assert abs(rec["endedAt"] - hung_up[rec["userId"]]) < 1.0, (rec, hung_up)
        assert rec["duration"] > CALL
        assert rec["endedAt"] == pytest.approx(rec["startedAt"] + rec["duration"])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        session = await http.get(f"/v1/sessions/{room_uuid}", headers=server.admin_headers())
    assert {m["userId"] for m in session.json()["members"]} == {"alice", "bob"}
    assert "__" not in session.text
    for name, listener in listeners.items():
        seen = [e for e in listener.events if e[0] in ("on_user_enter", "on_user_info")]
        assert all("__" not in str(e) for e in seen), (name, seen)
        assert not any("__" in uid for uid in (alice.peers_seen | bob.peers_seen))


async def test_on_demand_records_only_between_start_and_stop(sqlite_server_factory: Any) -> None:
    """recording=on-demand: nothing until the admin starts; files span start..stop, twice."""
    server = sqlite_server_factory(recording="on-demand")
    admin = server.admin_headers()
    start, stop = "/v1/admin/rooms/302/recording/start", "/v1/admin/rooms/302/recording/stop"
    spans = []
    async with (
        make_kit(server.url) as alice,
        make_kit(server.url) as bob,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        await enter(alice, server, "alice", 302)
        await enter(bob, server, "bob", 302)
        await until(receiving(bob, "alice", video=10, audio=20), "bob decodes alice")
        room_uuid = str(alice.room_uuid)
        body = await recordings(http, room_uuid, admin)
        assert body == {"roomUuid": room_uuid, "recording": False, "recordings": []}

        for round_ in (1, 2):
            began = time.time()
            started = await http.post(start, headers=admin)
            assert started.json() == {"roomUuid": room_uuid, "recording": True}
            again = await http.post(start, headers=admin)
            assert again.json() == {"roomUuid": room_uuid, "recording": True}
            await eventually(partial(_rows, http, room_uuid, admin, 2 * round_), within=20)
            await asyncio.sleep(2.0)
            stopped = await http.post(stop, headers=admin)
            assert stopped.json() == {"roomUuid": room_uuid, "recording": False}
            spans.append((began, time.time()))
            found = await finished(http, room_uuid, admin, 2 * round_)
        # The call goes on without the recorder, and nobody is told anything went wrong.
        await asyncio.sleep(1.0)
        assert alice.errors == [] and bob.errors == []
        assert alice.members == ["bob"]
        again = await http.post(stop, headers=admin)
        assert again.json() == {"roomUuid": room_uuid, "recording": False}
    assert sorted(r["userId"] for r in found) == ["alice", "alice", "bob", "bob"]
    for round_, (began, ended) in enumerate(spans, start=1):
        for rec in found[2 * (round_ - 1) : 2 * round_]:
            assert rec["status"] == "complete" and rec["stopReason"] == "stopped"
            check_file(server.settings.data_dir, room_uuid, rec, n=round_)
            assert began <= rec["startedAt"] and rec["endedAt"] <= ended + 0.5, (rec, began, ended)


async def test_a_string_room_is_recorded_and_listed_as_itself(sqlite_server_factory: Any) -> None:
    """Admin start/stop in string room "302#a" records it (not room 302); history names it."""
    server = sqlite_server_factory(recording="on-demand")
    admin = server.admin_headers()
    base = "/v1/admin/str-rooms/302%23a/recording"
    async with (
        make_kit(server.url) as alice,
        make_kit(server.url) as bob,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        await enter(alice, server, "alice", None, str_room_id="302#a")
        await enter(bob, server, "bob", "302#a")  # text that is not digits: a string room
        await until(receiving(bob, "alice", video=10, audio=20), "bob decodes alice")
        room_uuid = str(alice.room_uuid)
        numeric = await http.post("/v1/admin/rooms/302/recording/start", headers=admin)
        expect_error(numeric, ServerCode.ROOM_CLOSED)
        started = await http.post(f"{base}/start", headers=admin)
        assert started.json() == {"roomUuid": room_uuid, "recording": True}
        await eventually(partial(_rows, http, room_uuid, admin, 2), within=20)
        await asyncio.sleep(2.0)
        stopped = await http.post(f"{base}/stop", headers=admin)
        assert stopped.json() == {"roomUuid": room_uuid, "recording": False}
        found = await finished(http, room_uuid, admin, 2)
        await alice.hangup()
        await bob.hangup()
        sessions = (await http.get("/v1/admin/sessions", headers=admin)).json()["sessions"]
    assert sorted(r["userId"] for r in found) == ["alice", "bob"]
    for rec in found:
        assert rec["status"] == "complete" and rec["stopReason"] == "stopped"
        check_file(server.settings.data_dir, room_uuid, rec)
    assert [(s["roomUuid"], s["roomId"]) for s in sessions] == [(room_uuid, "302#a")]


async def _rows(http: httpx.AsyncClient, room_uuid: str, headers: dict[str, str], n: int) -> bool:
    """Whether the session has ``n`` recording rows (a row is written when a stint begins)."""
    body = await recordings(http, room_uuid, headers)
    return len(body["recordings"]) == n


async def test_off_refuses_start_and_policy_can_be_overridden(sqlite_server_factory: Any) -> None:
    """recording=off: start is 10004; the app's own policy wins until it is cleared."""
    server = sqlite_server_factory()
    admin = server.admin_headers()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        none_open = await http.post("/v1/admin/rooms/303/recording/start", headers=admin)
        expect_error(none_open, ServerCode.ROOM_CLOSED)
        entered = await http.post("/v1/rooms/303/enter", headers=server.headers("alice"))
        assert entered.status_code == 200
        refused = await http.post("/v1/admin/rooms/303/recording/start", headers=admin)
        expect_error(refused, ServerCode.INVALID_PARAMETER)

        policy = await http.get("/v1/admin/recording", headers=admin)
        assert policy.json() == {"sdkAppId": server.app_id, "policy": "off", "default": True}
        changed = await http.put("/v1/admin/recording", json={"policy": "on-demand"}, headers=admin)
        assert changed.json() == {
            "sdkAppId": server.app_id,
            "policy": "on-demand",
            "default": False,
        }
        bad = await http.put("/v1/admin/recording", json={"policy": "always"}, headers=admin)
        expect_error(bad, ServerCode.INVALID_PARAMETER)
        missing = await http.put("/v1/admin/recording", json={}, headers=admin)
        expect_error(missing, ServerCode.INVALID_PARAMETER)
        not_admin = await http.get("/v1/admin/recording", headers=server.headers("alice"))
        expect_error(not_admin, ServerCode.UNAUTHORISED)
        cleared = await http.put("/v1/admin/recording", json={"policy": None}, headers=admin)
        assert cleared.json() == {"sdkAppId": server.app_id, "policy": "off", "default": True}


async def test_a_graceful_shutdown_completes_the_files(sqlite_server_factory: Any) -> None:
    """Stopping the server mid-call finalises every file: complete (not partial) after a restart."""
    server = sqlite_server_factory(recording="auto")
    async with make_kit(server.url) as alice, make_kit(server.url) as bob:
        await enter(alice, server, "alice", 306)
        await enter(bob, server, "bob", 306)
        await until(receiving(alice, "bob", video=10, audio=20), "alice decodes bob")
        room_uuid = str(alice.room_uuid)
        folder = server.settings.data_dir / "recordings" / room_uuid
        await until(lambda: len(list(folder.glob("*.mkv"))) == 2, "both files are written")
        await asyncio.sleep(1.5)
        await asyncio.to_thread(server.stop)
        await _abandon(alice, bob)
    await asyncio.to_thread(server.start)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        body = await recordings(http, room_uuid, server.admin_headers())
    assert sorted(r["userId"] for r in body["recordings"]) == ["alice", "bob"]
    for rec in body["recordings"]:
        assert rec["status"] == "complete" and rec["stopReason"] == "shutdown"
        check_file(server.settings.data_dir, room_uuid, rec)


async def test_reserved_user_ids_cannot_enter(sqlite_server: Any) -> None:
    """A userId starting with __ belongs to the server: enter is 10004."""
    async with httpx.AsyncClient(base_url=sqlite_server.url, timeout=30) as http:
        for user in ("__rec.0123", "__x"):
            refused = await http.post("/v1/rooms/304/enter", headers=sqlite_server.headers(user))
            expect_error(refused, ServerCode.INVALID_PARAMETER)


# -- a crash mid-recording -----------------------------------------------------------------


ADMIN_KEY = random_key()
"""The admin key of the ``tavkit serve`` processes below."""


def _serve(data_dir: Path, key: str) -> tuple[subprocess.Popen[str], str]:
    """``tavkit serve --recording auto --port 0`` on ``data_dir``; returns it and its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tavkit",
            "serve",
            "--port",
            "0",
            "--recording",
            "auto",
            "--data-dir",
            str(data_dir),
            "--app",
            f"{APP_ID}:{key}",
            "--close-grace",
            "0.2",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TAVKIT_ADMIN_KEY": ADMIN_KEY},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("tavkit serving on "), line
    return process, line.removeprefix("tavkit serving on ").strip()


async def test_a_crash_leaves_partial_files_that_decode(tmp_path: Path) -> None:
    """SIGKILL mid-call: the cut files decode; the next start marks their rows partial."""
    data_dir, key = tmp_path / "data", random_key()
    process, url = _serve(data_dir, key)
    try:
        kits = [make_kit(url), make_kit(url)]
        users = ["alice", "bob"]
        async with kits[0] as alice, kits[1] as bob:
            for kit, user in zip((alice, bob), users, strict=True):
                await kit.start(
                    sdk_app_id=APP_ID,
                    user_id=user,
                    user_sig=gen_user_sig(APP_ID, key, user, 3600),
                    room_id=305,
                )
            await until(receiving(alice, "bob", video=10, audio=20), "alice decodes bob")
            room_uuid = str(alice.room_uuid)
            folder = data_dir / "recordings" / room_uuid
            await until(lambda: len(list(folder.glob("*.mkv"))) == 2, "both files are written")
            await asyncio.sleep(3.0)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            await _abandon(alice, bob)
        for user in users:
            video, audio = decode(folder / f"{user}-1.mkv")
            assert video > 10 and audio > 20, (user, video, audio)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    process, url = _serve(data_dir, key)
    try:
        headers = {
            "X-TAvKit-SdkAppId": str(APP_ID),
            "X-TAvKit-UserId": "administrator",
            "X-TAvKit-UserSig": gen_user_sig(APP_ID, ADMIN_KEY, "administrator", 3600),
        }
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            body = await recordings(http, room_uuid, headers)
        assert sorted(r["userId"] for r in body["recordings"]) == users
        for rec in body["recordings"]:
            assert rec["status"] == "partial" and rec["stopReason"] == "crashed"
            content = (folder / f"{rec['userId']}-1.mkv").read_bytes()
            assert rec["size"] == len(content)
            assert rec["sha256"] == hashlib.sha256(content).hexdigest()
            assert rec["hasVideo"] and rec["hasAudio"] and rec["duration"] > 1.0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def _abandon(*kits: TAvKit) -> None:
    """Close clients whose server is gone, together, without waiting long for it to answer."""

    async def close(kit: TAvKit) -> None:
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(15):
                await kit.aclose()

    await asyncio.gather(*(close(kit) for kit in kits))
