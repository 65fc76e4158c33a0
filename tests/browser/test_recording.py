"""A ``<tavkit-call>`` tab in a recorded room: it answers the recorder and never shows it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import av
import httpx
import pytest

from .pages import CALL_SERVER_SETTINGS, CallPage, Server
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
