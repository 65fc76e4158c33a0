"""Recording quotas: the file limit rolls over, the session limit stops, the disk floor stops.

Real servers, real Python clients and a real recorder. The free-disk floor is checked
against a real file system: a small tmpfs mounted on the recordings directory, filled
by the test (when the test may mount one, as root in a container usually may), else
the real probe of the real disk minus what the test says it has written (the
service's ``free_space`` seam).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from client._util import enter, frames_from, make_kit, receiving, until
from conftest import APP_ID, random_key
from typer.testing import CliRunner

from tavkit.errors import ServerCode
from tavkit.server.cli import server_app
from tavkit.server.recording import service as recording_service
from tavkit.server.settings import AppConfig, Settings, read_apps_file

from ._threads import no_decoder_threads_left
from ._util import eventually, expect_error
from .test_recorder import decode, recordings

MIB = 1024**2


@pytest.fixture(autouse=True)
def _no_leaked_media_threads() -> Iterator[None]:
    """Every peer connection of the test (clients' and recorder's) is closed by its end."""
    yield
    no_decoder_threads_left()


async def closed_rows(
    http: httpx.AsyncClient, room_uuid: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    """The session's rows once nothing is recorded and every row is closed."""

    async def probe() -> list[dict[str, Any]] | None:
        body = await recordings(http, room_uuid, headers)
        closed = all(r["status"] != "recording" for r in body["recordings"])
        return body["recordings"] if closed and not body["recording"] else None

    found: list[dict[str, Any]] = await eventually(probe, within=40)
    return found


def playable(path: Path) -> None:
    """The file at ``path`` decodes with video and audio."""
    video, audio = decode(path)
    assert video > 0 and audio > 0, (path.name, video, audio)


# -- the file limit ----------------------------------------------------------------------


async def test_a_file_at_the_apps_limit_rolls_over_to_a_new_file(
    sqlite_server_factory: Any,
) -> None:
    """An app's recordingMaxFileSeconds (2 s): files close at it and go on in the next one."""
    app = AppConfig(APP_ID, random_key(), recording_max_file_seconds=2.0)
    server = sqlite_server_factory(recording="auto", apps=(app,))
    admin = server.admin_headers()
    async with (
        make_kit(server.url) as alice,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        await enter(alice, server, "alice", 501)
        room_uuid = str(alice.room_uuid)

        async def two_closed_at_the_limit() -> bool:
            body = await recordings(http, room_uuid, admin)
            full = [r for r in body["recordings"] if r["stopReason"] == "file-limit"]
            return len(full) >= 2 and body["recording"]

        await eventually(two_closed_at_the_limit, within=40)
        quota = await http.get("/v1/admin/recording/quota", headers=admin)
        assert quota.json()["maxFileSeconds"] == 2.0
        assert quota.json()["maxSessionSeconds"] == 8 * 3600
        await alice.hangup()
        found = await closed_rows(http, room_uuid, admin)
    assert len(found) >= 3 and {r["userId"] for r in found} == {"alice"}
    *rolled, last = found
    assert {r["stopReason"] for r in rolled} == {"file-limit"}
    # The hang-up closes the last file; were it just rolled over and still empty, it
    # leaves no row (like any stint that received nothing), and the one before is last.
    assert last["stopReason"] in ("left", "file-limit")
    folder = server.settings.data_dir / "recordings" / room_uuid
    for n, rec in enumerate(found, start=1):
        assert rec["status"] == "complete"
        path = folder / f"alice-{n}.mkv"
        assert path.stat().st_size == rec["size"]
        if rec is last:  # it may have ended before its first keyframe: some media
            assert sum(decode(path)) > 0
        else:
            playable(path)  # a whole stretch: video from a keyframe on, and audio
    # One after the other, never overlapping: the roll-over loses no stretch of the call.
    for before, after in itertools.pairwise(found):
        assert before["startedAt"] < after["startedAt"]


# -- the session limit ------------------------------------------------------------------


async def test_the_session_limit_stops_the_recorder_and_the_call_goes_on(
    sqlite_server_factory: Any,
) -> None:
    """A 2 s session limit: every file is finalised (session-limit); the call goes on."""
    server = sqlite_server_factory(recording="auto", recording_max_session_seconds=2.0)
    admin = server.admin_headers()
    async with (
        make_kit(server.url) as alice,
        make_kit(server.url) as bob,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        await enter(alice, server, "alice", 502)
        await enter(bob, server, "bob", 502)
        room_uuid = str(alice.room_uuid)
        found = await closed_rows(http, room_uuid, admin)
        assert sorted(r["userId"] for r in found) == ["alice", "bob"]
        assert {(r["status"], r["stopReason"]) for r in found} == {("complete", "session-limit")}
        for rec in found:
            playable(server.settings.data_dir / "recordings" / room_uuid / f"{rec['userId']}-1.mkv")
        # The members still see and hear each other after the recorder has gone.
        seen = frames_from(bob, "alice")
        await until(receiving(bob, "alice", video=seen[0] + 10, audio=seen[1] + 10), "bob decodes")
        assert alice.members == ["bob"] and alice.errors == [] and bob.errors == []


# -- the free-disk floor ----------------------------------------------------------------


class RecordingsDisk:
    """The recordings directory's file system, which the test can fill up."""

    def __init__(self, directory: Path, *, tmpfs: bool) -> None:
        self.directory = directory
        self.tmpfs = tmpfs
        self.hogged = 0
        self._filler = directory / "filler.bin"

    def fill(self, size: int) -> None:
        """Take ``size`` bytes of the free space."""
        if self.tmpfs:
            with self._filler.open("wb") as out:
                for _ in range(size // MIB):
                    out.write(b"\0" * MIB)
        else:
            self.hogged = size

    def free_up(self) -> None:
        """Give the space back."""
        self._filler.unlink(missing_ok=True)
        self.hogged = 0


@pytest.fixture
def recordings_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingsDisk]:
    """A 32 MiB tmpfs on ``<tmp>/data/recordings``; else the real disk with a fake hog."""
    directory = tmp_path / "data" / "recordings"
    directory.mkdir(parents=True)
    mount = ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(directory)]
    mounted = os.geteuid() == 0 and subprocess.run(mount, capture_output=True).returncode == 0
    disk = RecordingsDisk(directory, tmpfs=mounted)
    if not mounted:
        real = recording_service.free_bytes

        def probe(path: Path) -> int:
            return real(path) - disk.hogged  # the real file-system check, minus the hog

        monkeypatch.setattr(recording_service, "free_bytes", probe)
    try:
        yield disk
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture
async def floor_server(
    recordings_disk: RecordingsDisk, sqlite_server_factory: Any
) -> AsyncIterator[Any]:
    """An on-demand server whose floor is a little under the free space it sees now."""
    free = recording_service.free_bytes(recordings_disk.directory)
    floor = free - 8 * MIB if recordings_disk.tmpfs else free - 64 * MIB
    yield sqlite_server_factory(
        recording="on-demand", data_dir=recordings_disk.directory.parent, recording_min_free=floor
    )


async def test_below_the_disk_floor_recording_stops_files_play_and_calls_go_on(
    floor_server: Any, recordings_disk: RecordingsDisk
) -> None:
    """Disk filled below the floor: files finalised (disk-floor), call goes on, start is 507."""
    server, admin = floor_server, floor_server.admin_headers()
    start = "/v1/admin/rooms/503/recording/start"
    async with (
        make_kit(server.url) as alice,
        make_kit(server.url) as bob,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
    ):
        await enter(alice, server, "alice", 503)
        await enter(bob, server, "bob", 503)
        await until(receiving(bob, "alice"), "bob decodes alice")
        room_uuid = str(alice.room_uuid)
        started = await http.post(start, headers=admin)
        assert started.json() == {"roomUuid": room_uuid, "recording": True}
        folder = recordings_disk.directory / room_uuid
        await until(lambda: len(list(folder.glob("*.mkv"))) == 2, "both files are written")
        quota = (await http.get("/v1/admin/recording/quota", headers=admin)).json()
        assert quota["belowFloor"] is False and quota["lastDiskStopAt"] is None

        recordings_disk.fill(16 * MIB if recordings_disk.tmpfs else 128 * MIB)
        found = await closed_rows(http, room_uuid, admin)
        assert sorted(r["userId"] for r in found) == ["alice", "bob"]
        assert {(r["status"], r["stopReason"]) for r in found} == {("complete", "disk-floor")}
        for rec in found:
            path = folder / f"{rec['userId']}-1.mkv"
            assert path.stat().st_size == rec["size"]
            playable(path)

        # The call goes on without the recorder.
        seen = frames_from(alice, "bob")
        await until(receiving(alice, "bob", video=seen[0] + 10, audio=seen[1] + 10), "alice sees")
        assert alice.errors == [] and bob.errors == [] and bob.members == ["alice"]

        # The API says why, and refuses to record again until there is room.
        quota = (await http.get("/v1/admin/recording/quota", headers=admin)).json()
        assert quota["belowFloor"] is True and quota["lastDiskStopAt"] is not None
        assert quota["freeBytes"] < quota["minFreeBytes"]
        refused = await http.post(start, headers=admin)
        message = expect_error(refused, ServerCode.RECORDING_FAILED, status=507)
        assert "below the floor" in message and "free" in message
        assert not (await recordings(http, room_uuid, admin))["recording"]

        recordings_disk.free_up()
        again = await http.post(start, headers=admin)
        assert again.json() == {"roomUuid": room_uuid, "recording": True}
        await http.post("/v1/admin/rooms/503/recording/stop", headers=admin)


async def test_without_a_floor_the_disk_is_not_checked(sqlite_server_factory: Any) -> None:
    """--recording-min-free 0: no floor, even with no room at all on the probe's disk."""
    server = sqlite_server_factory(recording="on-demand", recording_min_free=0)
    admin = server.admin_headers()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        entered = await http.post("/v1/rooms/504/enter", headers=server.headers("alice"))
        assert entered.status_code == 200
        quota = (await http.get("/v1/admin/recording/quota", headers=admin)).json()
        assert quota["minFreeBytes"] == 0 and quota["belowFloor"] is False
        started = await http.post("/v1/admin/rooms/504/recording/start", headers=admin)
        assert started.json()["recording"] is True
        await http.post("/v1/admin/rooms/504/recording/stop", headers=admin)


# -- settings ----------------------------------------------------------------------------


def test_the_recording_limits_default_and_are_read() -> None:
    """Defaults 4 h per file, 8 h per session, 2 GiB floor; TAVKIT_RECORDING_* set them."""
    default = Settings()
    assert default.recording_max_file_seconds == 4 * 3600
    assert default.recording_max_session_seconds == 8 * 3600
    assert default.recording_min_free == 2 * 1024**3
    settings = Settings.from_env(
        {
            "TAVKIT_RECORDING_MAX_FILE_SECONDS": "600",
            "TAVKIT_RECORDING_MAX_SESSION_SECONDS": "0",
            "TAVKIT_RECORDING_MIN_FREE": "500M",
        }
    )
    assert settings.recording_limits_of(APP_ID) == (600.0, 0.0)
    assert settings.recording_min_free == 500 * MIB
    for variable, value in (
        ("TAVKIT_RECORDING_MAX_FILE_SECONDS", "-1"),
        ("TAVKIT_RECORDING_MAX_SESSION_SECONDS", "inf"),
        ("TAVKIT_RECORDING_MIN_FREE", "lots"),
    ):
        with pytest.raises(ValueError, match=f"(?i){variable.removeprefix('TAVKIT_')}"):
            Settings.from_env({variable: value})


def test_an_app_overrides_the_limits_in_the_apps_file(tmp_path: Path) -> None:
    """recordingMaxFileSeconds / recordingMaxSessionSeconds win for that app only."""
    key = random_key()
    path = tmp_path / "apps.json"
    path.write_text(
        json.dumps(
            [
                {"sdkAppId": 1, "key": key, "recordingMaxFileSeconds": 60},
                {"sdkAppId": 2, "key": key, "recordingMaxSessionSeconds": 0},
                {"sdkAppId": 3, "key": key},
            ]
        )
    )
    settings = Settings(apps=read_apps_file(path), recording_max_file_seconds=100.0)
    assert settings.recording_limits_of(1) == (60.0, 8 * 3600)
    assert settings.recording_limits_of(2) == (100.0, 0.0)
    assert settings.recording_limits_of(3) == (100.0, 8 * 3600)
    for bad in ("ten", -5, True):
        path.write_text(json.dumps([{"sdkAppId": 1, "key": key, "recordingMaxFileSeconds": bad}]))
        with pytest.raises(ValueError, match="recordingMaxFileSeconds") as caught:
            read_apps_file(path)
        assert key not in str(caught.value)


def test_serve_names_a_bad_floor(tmp_path: Path) -> None:
    """tavkit serve --recording-min-free lots exits 2 naming the option."""
    result = CliRunner().invoke(
        server_app, ["serve", "--recording-min-free", "lots", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--recording-min-free" in result.output


def test_the_free_space_probe_asks_the_real_file_system(tmp_path: Path) -> None:
    """free_bytes asks statvfs of the nearest existing directory (the dir may not exist yet)."""
    expected = os.statvfs(tmp_path)
    free = recording_service.free_bytes(tmp_path / "not" / "yet")
    assert abs(free - expected.f_bavail * expected.f_frsize) < 64 * MIB
