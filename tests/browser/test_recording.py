"""A ``<tavkit-call>`` tab in a recorded room: it answers the recorder and never shows it.

And the dashboard's view of recording quotas: the free-disk floor on the session list,
and why each of a session's files ended.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from conftest import run_sync
from playwright.sync_api import BrowserContext, expect

from tavkit.server.recording import rows
from tavkit.server.recording.service import free_bytes, recording_path
from tavkit.server.store.db import Store
from tavkit.server.store.recording_models import RecordingRow

from .pages import CALL_SERVER_SETTINGS, CallPage, Server
from .test_dashboard import sign_in
from .test_python_interop import KitThread

pytestmark = pytest.mark.browser

WAIT = 40.0


@pytest.fixture
def call_server(sqlite_server_factory: Callable[..., Server]) -> Server:
    """The call server, recording every session."""
    return sqlite_server_factory(**CALL_SERVER_SETTINGS, recording="auto")


def _decode(path: Any) -> tuple[int, int]:
    video = audio = 0
    with av.open(str(path)) as container:
        for packet in container.demux():
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    video += 1
                elif isinstance(frame, av.AudioFrame):
                    audio += 1
    return video, audio


def _recordings(server: Any, room_uuid: str) -> list[dict[str, Any]]:
    """The session's recordings once both files are finished."""
    deadline = time.monotonic() + WAIT
    with httpx.Client(base_url=server.url, timeout=30) as http:
        while True:
            body = http.get(
                f"/v1/sessions/{room_uuid}/recordings", headers=server.admin_headers()
            ).json()
            found = body["recordings"]
            if len(found) == 2 and all(r["status"] != "recording" for r in found):
                return list(found)
            assert time.monotonic() < deadline, body
            time.sleep(0.2)


def test_the_browser_is_recorded_and_shows_no_recorder(
    open_call: Callable[..., CallPage], call_server: Any, room: int
) -> None:
    """recording=auto: the tab's file decodes with video and audio; no tile, event or pc."""
    peer = KitThread(call_server, "py")
    try:
        peer.join(room)
        tab = open_call("web")
        assert tab.join(call_server, room) is True
        tab.wait_connected("py")
        peer.wait_frames("web", video=15, audio=25)
        room_uuid = str(peer.kit.room_uuid)
        time.sleep(3.0)  # let the recorder take a few seconds of both

        assert tab.tile_ids() == ["web", "py"]
        assert sorted(tab.call("(el) => [...el.peerConnections().keys()]")) == ["py"]
        entered = [e["userId"] for e in tab.events("tavkit:user-enter")]
        assert entered == ["py"]
        assert "__" not in str(tab.tv("userInfo"))
        assert tab.tv("errors") == []
        tab.call("(el) => el.hangup()")
    finally:
        peer.close()

    found = {r["userId"]: r for r in _recordings(call_server, room_uuid)}
    assert set(found) == {"py", "web"}
    web = found["web"]
    assert web["status"] == "complete" and web["hasVideo"] and web["hasAudio"]
    path = call_server.settings.data_dir / "recordings" / room_uuid / "web-1.mkv"
    video, audio = _decode(path)
    assert video > 30 and audio > 50, (video, audio)
    with av.open(str(path)) as container:
        codecs = {s.type: s.codec_context.name for s in container.streams}
    assert codecs == {"video": "vp8", "audio": "opus"}


def test_the_dashboard_shows_the_disk_floor_and_why_files_ended(
    sqlite_server_factory: Callable[..., Any], context: BrowserContext, room: int
) -> None:
    """Below the free-disk floor the session list says so; a session lists each file's reason."""
    # A floor far above what any disk here has: the real probe reports it as crossed.
    floor = free_bytes(Path.cwd()) + 2**40
    server = sqlite_server_factory(
        **CALL_SERVER_SETTINGS, recording="on-demand", recording_min_free=floor
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        entered = http.post(f"/v1/rooms/{room}/enter", headers=server.headers("alice"))
        room_uuid = entered.json()["roomUuid"]
        refused = http.post(
            f"/v1/admin/rooms/{room}/recording/start", headers=server.admin_headers()
        )
        assert refused.status_code == 507 and refused.json()["errorCode"] == 14008
    run_sync(lambda: _finished_row(server, uuid.UUID(room_uuid), "disk-floor"))

    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in(page, server)
    banner = page.locator("#disk-floor")
    expect(banner).to_contain_text("below the floor")
    expect(banner).to_contain_text("new recordings are refused")
    page.locator(f'tr.row[data-uuid="{room_uuid}"]').click()
    row = page.locator('table.recordings tr[data-stop-reason="disk-floor"]')
    expect(row).to_contain_text("alice")
    expect(row).to_contain_text("disk below its free-space floor")
    assert problems == []


async def _finished_row(server: Any, room_uuid: uuid.UUID, reason: str) -> None:
    """A complete recording row of alice's that ended for ``reason`` (no media needed)."""
    path = server.settings.data_dir / recording_path(room_uuid, "alice", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 1000)
    now = time.time()
    store = Store.open(
        server.settings.effective_database_url, schema=server.settings.database_schema
    )
    try:
        await rows.insert(
            store,
            RecordingRow(
                id=uuid.uuid4(),
                session_id=room_uuid,
                user_id="alice",
                stint=1,
                path=recording_path(room_uuid, "alice", 1).as_posix(),
                started_at=now - 3.0,
                ended_at=now,
                duration=3.0,
                size=1000,
                sha256="0" * 64,
                status="complete",
                has_video=True,
                has_audio=True,
                stop_reason=reason,
            ),
        )
    finally:
        await store.close()
