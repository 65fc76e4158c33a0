"""``auto`` rooms and per-app media modes, in front of the module's real Janus.

An ``auto`` room is a mesh until a member's enter makes it more than ``sfu_above``
members; then every member publishes to Janus, subscribes, and closes its mesh links.
The members are the Python client on the address Janus uses (``conftest.py``); the
per-app test speaks the protocol itself (no media), as a mesh-only client would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tavkit.protocol import DescriptionData, MediaSignalTo, SessionDescription, SignalTo, encode
from tavkit.server import AppConfig
from tavkit.testing import Participant, TavkitServer
from tavkit.testing.plugin import APP_ID
from tavkit.testing.server import random_key

from .conftest import RunningJanus
from .test_room_size import server_in
from .test_rooms import FRAMES, WITHIN, inspector, small_pattern, uploads

__all__ = ["inspector"]  # the fixture, shared with test_rooms

SWITCH_WITHIN = 60.0
"""A generous ceiling for the switch on two loaded cores; the measured time is printed."""


@contextmanager
def janus_server(
    janus: RunningJanus, tmp_path: Path, *, apps: tuple[AppConfig, ...], **settings: Any
) -> Iterator[TavkitServer]:
    """A real tavkit server on 127.0.0.1 in front of ``janus`` with ``apps`` and ``settings``."""
    with server_in(
        tmp_path,
        apps=apps,
        janus_urls=(janus.url,),
        janus_api_secret=janus.api_secret,
        **settings,
    ) as server:
        yield server


@pytest.fixture
def tavkit_server(janus: RunningJanus, tmp_path: Path) -> Iterator[TavkitServer]:
    """A tavkit server whose rooms are ``auto`` (SFU above 2 members, the default)."""
    apps = (AppConfig(APP_ID, random_key()),)
    with janus_server(janus, tmp_path, apps=apps, media_mode="auto") as server:
        yield server


def through_sfu(member: Participant, others: list[str]) -> bool:
    """Whether ``member`` has no mesh link left and decodes every one of ``others``
    through its SFU subscription (a link is closed at that member's first SFU frame)."""
    room = member.kit._room
    return (
        room is not None
        and room.sfu is not None
        and not room.links
        and all(room.sfu.receives_from(o) and member.video_frames_from(o) > 0 for o in others)
    )


async def test_an_auto_1v1_is_a_mesh_until_a_third_member_switches_it_to_the_sfu(
    participant: Any, janus: RunningJanus, inspector: Any
) -> None:
    """Two members of an auto room meet in a mesh (no room in Janus, one link each); a
    third member's enter switches the session: all three then receive each other's video
    through Janus (frames keep advancing), the mesh connections are closed, each member
    sends one audio and one video stream, and newcomers are told the room is an SFU room.
    Prints the time from the third member's enter until everyone decodes everyone else
    through the SFU."""
    alice = await participant("alice", host_addresses=[janus.address], source=small_pattern(0))
    bob = await participant("bob", host_addresses=[janus.address], source=small_pattern(1))
    await alice.wait_for_video_from("bob", FRAMES, within=WITHIN)
    await bob.wait_for_video_from("alice", FRAMES, within=WITHIN)
    room_uuid = alice.room_uuid
    assert room_uuid is not None
    rooms = [alice.kit._room, bob.kit._room]
    assert all(r is not None and r.sfu is None and len(r.links) == 1 for r in rooms)
    assert not await inspector.room_exists(room_uuid)
    mesh_pcs = [link.pc for r in rooms if r is not None for link in r.links.values()]

    entered = time.monotonic()
    carol = await participant("carol", host_addresses=[janus.address], source=small_pattern(2))
    newcomer = carol.kit._room  # its welcome said sfu: it never links to anyone
    assert newcomer is not None and newcomer.sfu is not None and not newcomer.links
    members = {"alice": alice, "bob": bob, "carol": carol}
    await carol.wait_for(
        lambda: all(through_sfu(m, [o for o in members if o != n]) for n, m in members.items()),
        "everyone decoding everyone through the SFU, no mesh link left",
        within=SWITCH_WITHIN,
    )
    bound = time.monotonic() - entered
    print(f"\nauto switch: everyone decodes everyone through the SFU {bound:.2f} s after enter")

    for name, member in members.items():  # and it keeps coming, through Janus only
        for other in members:
            if other != name:
                await member.wait_for_video_from(other, FRAMES, more=True, within=WITHIN)
        sent = await uploads(member)
        assert [kind for kind, _ in sent] == ["audio", "video"], f"{name}: {sent}"
    assert all(pc is None or pc.connectionState == "closed" for pc in mesh_pcs)
    assert sorted(await inspector.publishers(room_uuid)) == ["alice", "bob", "carol"]
    assert not any(m.kit.errors for m in members.values())


# -- per-app media modes (the protocol spoken directly, no media) --------------------------

SFU_APP, MESH_APP, AUTO_APP = 1400000101, 1400000102, 1400000103


@pytest.fixture
def apps_server(janus: RunningJanus, tmp_path: Path) -> Iterator[TavkitServer]:
    """A mesh server with three apps: one SFU, one mesh (the server's), one auto above 1."""
    apps = (
        AppConfig(SFU_APP, random_key(), media_mode="sfu"),
        AppConfig(MESH_APP, random_key()),
        AppConfig(AUTO_APP, random_key(), media_mode="auto", sfu_above=1),
    )
    with janus_server(janus, tmp_path, apps=apps) as server:
        yield server


async def enter(server: TavkitServer, app_id: int, user_id: str, room: int) -> dict[str, Any]:
    """``user_id`` enters ``room`` of app ``app_id``: the enter answer."""
    app = server.settings.app(app_id)
    assert app is not None
    headers = server.headers(user_id, sig=server.sig(user_id, app=app), app_id=app_id)
    async with httpx.AsyncClient(base_url=server.url, timeout=WITHIN) as http:
        answer = await http.post(f"/v1/rooms/{room}/enter", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def frame_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame of type ``kind`` on ``ws`` (others skipped)."""
    async with asyncio.timeout(WITHIN):
        while (frame := json.loads(await ws.recv()))["type"] != kind:
            pass
    result: dict[str, Any] = frame
    return result


def socket(body: dict[str, Any]) -> Any:
    """Open the signaling socket an enter answer names."""
    offered: Any = ["tavkit.v1", f"tavkit.token.{body['socketToken']}"]
    return connect(body["socketUrl"], subprotocols=offered, open_timeout=WITHIN)


async def test_each_app_gets_its_own_media_mode_on_one_server(
    apps_server: TavkitServer, inspector: Any
) -> None:
    """On one server an SFU app's room goes through Janus (enter and welcome say sfu, the
    session's room exists in Janus) while a mesh app's does not (mesh, no Janus room, a
    media-signal refused); an auto app's room switches when its second member enters
    (sfuAbove 1): the first member's socket gets media-mode sfu, and its mesh signals
    are refused from then on (10004)."""
    sfu = await enter(apps_server, SFU_APP, "ann", 5)
    mesh = await enter(apps_server, MESH_APP, "ann", 5)
    assert (sfu["mediaMode"], mesh["mediaMode"]) == ("sfu", "mesh")
    offer = DescriptionData(SessionDescription("offer", "v=0\r\n"))
    async with socket(sfu) as sfu_ws, socket(mesh) as mesh_ws:
        assert (await frame_of(sfu_ws, "welcome"))["mediaMode"] == "sfu"
        assert (await frame_of(mesh_ws, "welcome"))["mediaMode"] == "mesh"
        await mesh_ws.send(encode(MediaSignalTo("publish", offer, id="m1")))
        refused = await frame_of(mesh_ws, "error")
        assert refused["errorCode"] == 10004 and "media is a mesh" in refused["errorMsg"]
        async with asyncio.timeout(WITHIN):
            while not await inspector.room_exists(sfu["roomUuid"]):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert not await inspector.room_exists(mesh["roomUuid"])

    first = await enter(apps_server, AUTO_APP, "ann", 6)
    assert first["mediaMode"] == "mesh"
    async with socket(first) as ws:
        assert (await frame_of(ws, "welcome"))["mediaMode"] == "mesh"
        second = await enter(apps_server, AUTO_APP, "ben", 6)
        assert second["mediaMode"] == "sfu"
        assert (await frame_of(ws, "media-mode"))["mediaMode"] == "sfu"
        assert await inspector.room_exists(first["roomUuid"])  # joined before being told
        await ws.send(encode(SignalTo(to="ben", data=offer, id="late")))
        refused = await frame_of(ws, "error")
    assert (refused["errorCode"], refused["ref"]) == (10004, "late")
    assert "goes through the SFU" in refused["errorMsg"]


async def test_a_switched_auto_session_is_still_an_sfu_room_after_a_restart(
    apps_server: TavkitServer, inspector: Any
) -> None:
    """The switch is on the session's row, not only in the server's memory: after the
    server restarts, a member's socket opening again is welcomed as in an SFU room, and
    after another restart the next member's enter is told so (the row was marked
    already, and stays the one mark)."""
    first = await enter(apps_server, AUTO_APP, "ann", 8)
    async with socket(first) as ws:
        assert (await frame_of(ws, "welcome"))["mediaMode"] == "mesh"
        second = await enter(apps_server, AUTO_APP, "ben", 8)
        assert second["mediaMode"] == "sfu"
        assert (await frame_of(ws, "media-mode"))["mediaMode"] == "sfu"
    marked = "SELECT COUNT(*) FROM room_sessions WHERE sfu_since IS NOT NULL"
    assert apps_server.database.execute(marked) == [(1,)]  # the one session, ann's

    await asyncio.to_thread(apps_server.restart)
    async with socket({**first, "socketUrl": apps_server.ws_url}) as ws:
        welcome = await frame_of(ws, "welcome")
    assert (welcome["roomUuid"], welcome["mediaMode"]) == (first["roomUuid"], "sfu")
    await asyncio.to_thread(apps_server.restart)
    carl = await enter(apps_server, AUTO_APP, "carl", 8)
    assert (carl["roomUuid"], carl["mediaMode"]) == (first["roomUuid"], "sfu")
    assert apps_server.database.execute(marked) == [(1,)]
