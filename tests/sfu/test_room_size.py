"""How many members a room holds follows its media mode: 6 in a mesh, up to 50 through the SFU.

Entering is a REST call, so these rooms need no media and no Janus: the SFU server's
bridge connects to Janus only when a member's socket opens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tavkit.server import AppConfig, Settings
from tavkit.testing import TavkitServer
from tavkit.testing.plugin import APP_ID
from tavkit.testing.server import FAST_TIMERS, make_database, random_key

from .test_rooms import start_tavkit

ROOM = 21


@contextmanager
def server_in(
    tmp_path: Path, *, apps: tuple[AppConfig, ...] | None = None, **settings: Any
) -> Iterator[TavkitServer]:
    """A real tavkit server on 127.0.0.1 with ``settings`` and ``apps`` (one app unless
    told; no Janus behind it unless ``settings`` name one)."""
    database = make_database(tmp_path)
    server = TavkitServer(
        Settings(
            host="127.0.0.1",
            port=0,
            data_dir=tmp_path / "data",
            database_url=database.url,
            apps=apps or (AppConfig(APP_ID, random_key()),),
            admin_key=random_key(),
            **{**FAST_TIMERS, **settings},
        ),
        database,
    )
    try:
        yield server
    finally:
        server.stop()


def enter_all(server: TavkitServer, count: int) -> list[httpx.Response]:
    """``count`` users entering room ``ROOM`` one after another: each one's answer."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return [
            http.post(f"/v1/rooms/{ROOM}/enter", headers=server.headers(f"user{n}"))
            for n in range(count)
        ]


def test_a_mesh_room_refuses_the_seventh_member(tmp_path: Path) -> None:
    """In a mesh (the default mode and size) six members enter and the seventh is told the
    room is full (server 14000, naming the size)."""
    with server_in(tmp_path) as server:
        answers = enter_all(server, 7)
    assert [a.status_code for a in answers[:6]] == [200] * 6
    error = answers[6].json()
    assert (error["module"], error["errorCode"]) == ("server", 14000), error
    assert "is full (6 members)" in error["errorMsg"]


def test_an_sfu_room_takes_more_than_six_up_to_its_size(tmp_path: Path) -> None:
    """In SFU mode a room takes more than a mesh's six: with ``max_members`` 9 nine enter
    (all listed as members) and the tenth is refused; by default the room holds 50."""
    sfu = {"media_mode": "sfu", "janus_urls": ("ws://127.0.0.1:9",)}  # never reached: no socket
    with server_in(tmp_path / "nine", **sfu, max_members=9) as server:
        answers = enter_all(server, 10)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            users = http.get(f"/v1/rooms/{ROOM}/users", headers=server.headers("user0")).json()
    assert [a.status_code for a in answers[:9]] == [200] * 9
    assert answers[9].json()["errorCode"] == 14000
    assert len(users["members"]) == 9
    with server_in(tmp_path / "default", **sfu) as server:
        assert all(a.status_code == 200 for a in enter_all(server, 12))


def test_serve_refuses_an_sfu_room_larger_than_50(tmp_path: Path) -> None:
    """``tavkit serve --media-mode sfu --max-members 51`` does not start: it says an SFU
    room holds at most 50 and exits 2."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    args = ["serve", "--port", "0", "--media-mode", "sfu", "--janus-url", "ws://127.0.0.1:9"]
    process = start_tavkit(
        [*args, "--max-members", "51"], {**clean, "TAVKIT_DATA_DIR": str(tmp_path)}
    )
    try:
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    assert process.returncode == 2, output
    assert "more than an SFU room holds: at most 50" in output
