"""SFU rooms: ``tavkit serve --media-mode sfu`` in front of a real Janus, Python members.

A real tavkit server (127.0.0.1, port 0) drives the module's real Janus
(``conftest.py``); the members are the Python client, gathering on the address Janus
uses. Media is a small test pattern, so three members fit on two busy cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect

from tavkit.auth import Privilege, gen_user_sig
from tavkit.client.connections import sent_streams
from tavkit.client.media import TestPattern
from tavkit.protocol import (
    DescriptionData,
    MediaLayers,
    MediaSignalTo,
    SessionDescription,
    SignalTo,
    StreamLayer,
    encode,
)
from tavkit.server import AppConfig, Settings
from tavkit.server.sfu.janus import JanusSession
from tavkit.testing import Participant, TavkitServer
from tavkit.testing.plugin import APP_ID
from tavkit.testing.server import FAST_TIMERS, make_database, random_key

from .conftest import RunningJanus, launch, stop_janus

FRAMES = 15  # one second of the 15 fps pattern
WITHIN = 20.0
AUDIENCE = int(Privilege.ENTER | Privilege.RECV_AUDIO | Privilege.RECV_VIDEO)  # 42


@pytest.fixture
def tavkit_server(janus: RunningJanus, tmp_path: Path) -> Iterator[TavkitServer]:
    """A tavkit server whose rooms go through the module's Janus (``--media-mode sfu``)."""
    with sfu_server(janus, tmp_path) as server:
        yield server


@contextmanager
def sfu_server(janus: RunningJanus, tmp_path: Path, **overrides: Any) -> Iterator[TavkitServer]:
    """A real tavkit server on 127.0.0.1 in ``--media-mode sfu`` in front of ``janus``
    (``overrides``: other settings, e.g. ``recording="auto"``)."""
    database = make_database(tmp_path)
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "data",
        database_url=database.url,
        apps=(AppConfig(APP_ID, random_key()),),
        admin_key=random_key(),
        media_mode="sfu",
        janus_urls=(janus.url,),
        janus_api_secret=janus.api_secret,
        **{**FAST_TIMERS, **overrides},
    )
    server = TavkitServer(settings, database)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def inspector(janus: RunningJanus) -> AsyncIterator[Any]:
    """A VideoRoom handle of the test's own, to look at Janus's rooms."""
    session = await JanusSession.connect(janus.url, api_secret=janus.api_secret)
    try:
        yield await session.attach_videoroom()
    finally:
        await session.close()


def small_pattern(variant: int) -> TestPattern:
    """A 160x120, 15 fps pattern with a tone: enough to see frames advance."""
    return TestPattern(width=160, height=120, fps=15, variant=variant)


async def uploads(member: Participant) -> list[tuple[str, int]]:
    """Every stream the member sends, over all its peer connections: (kind, packets)."""
    return await sent_streams(member.kit.connections())


async def test_members_of_an_sfu_room_receive_each_other_and_upload_once(
    participant: Any, janus: RunningJanus, inspector: Any
) -> None:
    """Three members in an SFU room receive each other's audio and video (frames advance)
    while each sends one audio and one video stream, to Janus only; a member who leaves
    disappears for the others and from Janus; when the room closes, Janus has no room."""
    names = ("alice", "bob", "carol")
    members = [
        await participant(name, host_addresses=[janus.address], source=small_pattern(i))
        for i, name in enumerate(names)
    ]
    room_uuid = members[0].room_uuid
    assert room_uuid is not None
    for member in members:
        for other in names:
            if other != member.user_id:
                await member.wait_for_video_from(other, FRAMES, within=WITHIN)
                await member.wait_for_audio_from(other, FRAMES, within=WITHIN)
    for member in members:  # and they keep coming
        for other in names:
            if other != member.user_id:
                await member.wait_for_video_from(other, FRAMES, more=True, within=WITHIN)
    for member in members:
        sent = await uploads(member)
        assert [kind for kind, _ in sent] == ["audio", "video"], f"{member.user_id}: {sent}"
    assert sorted(await inspector.publishers(room_uuid)) == list(names)

    alice, bob, carol = members
    await carol.leave()
    for member in (alice, bob):
        await member.wait_for_event("on_user_leave", "carol", "exit")
        await member.wait_for(
            lambda m=member: all("carol" not in c.user_ids for c in m.kit.connections()),
            "carol's media gone",
        )
    assert sorted(await inspector.participants(room_uuid)) == ["alice", "bob"]
    await bob.wait_for_video_from("alice", FRAMES, more=True, within=WITHIN)

    for member in (alice, bob):
        await member.leave()
    async with asyncio.timeout(WITHIN):  # the session closes after its close grace
        while await inspector.room_exists(room_uuid):  # noqa: ASYNC110 (polling Janus)
            await asyncio.sleep(0.1)


async def test_a_broken_publish_connection_is_made_again_without_an_error(
    participant: Any, janus: RunningJanus
) -> None:
    """When the connection a member publishes on ends under it (here closed, so Janus gets
    a DTLS alert and hangs it up, as when a starved client's ICE or DTLS gives up), the
    server asks it to publish again: its video reaches the others again and it is told of
    no error. Before, it got error 10000 and its media stayed off for the rest of the call."""
    alice, bob = [
        await participant(name, host_addresses=[janus.address], source=small_pattern(i))
        for i, name in enumerate(("alice", "bob"))
    ]
    await bob.wait_for_video_from("alice", FRAMES, within=WITHIN)
    (publish,) = [c.pc for c in alice.kit.connections() if c.role == "publish"]
    await publish.close()
    await alice.wait_for(
        lambda: any(c.role == "publish" and c.pc is not publish for c in alice.kit.connections()),
        "a new publish connection",
        within=WITHIN,
    )
    await bob.wait_for_video_from("alice", FRAMES, more=True, within=WITHIN)
    await alice.wait_for_video_from("bob", FRAMES, more=True, within=WITHIN)
    assert alice.errors == [], alice.errors


async def test_an_audience_member_receives_but_may_not_publish(
    participant: Any, janus: RunningJanus, inspector: Any
) -> None:
    """An audience member (privileges 42) receives the room's media; its publish offer is
    refused by tavkit with server 10004 naming the missing bit, so Janus never lists it
    as a publisher and no one receives anything from it."""
    alice = await participant("alice", host_addresses=[janus.address], source=small_pattern(0))
    viewer = await participant("viewer", host_addresses=[janus.address], privilege=AUDIENCE)
    await viewer.wait_for_video_from("alice", FRAMES, within=WITHIN)

    room = viewer.kit._room
    assert room is not None and room.socket is not None
    pc = RTCPeerConnection()
    source = small_pattern(1)
    await source.open()
    try:
        assert source.video is not None
        pc.addTransceiver(source.video, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = DescriptionData(SessionDescription("offer", pc.localDescription.sdp))
        await room.socket.send(MediaSignalTo("publish", offer, id="publish-1"))
        await viewer.wait_for(lambda: bool(viewer.errors), "the refusal of its publish")
    finally:
        await pc.close()
        await source.close()
    (error,) = viewer.errors
    assert (error["module"], error["errorCode"]) == ("server", 10004)
    assert "SEND_AUDIO (4) or SEND_VIDEO (16)" in error["errorMsg"]
    assert viewer.room_uuid is not None
    assert await inspector.publishers(viewer.room_uuid) == ["alice"]
    assert sorted(await inspector.participants(viewer.room_uuid)) == ["alice", "viewer"]
    assert alice.members == ["viewer"] and "viewer" not in alice.kit.peers
    assert await uploads(viewer) == []


async def test_a_mesh_only_client_is_told_the_room_goes_through_the_sfu(
    tavkit_server: TavkitServer,
) -> None:
    """A client that knows only the mesh (today's browser component) learns from enter and
    welcome that the room is an SFU room, and its mesh signal is refused with a message
    that says why (server 10004), rather than a call that half works."""
    async with httpx.AsyncClient(base_url=tavkit_server.url, timeout=WITHIN) as http:
        answer = await http.post("/v1/rooms/7/enter", headers=tavkit_server.headers("web"))
    body = answer.json()
    assert body["mediaMode"] == "sfu"
    offered: Any = ["tavkit.v1", f"tavkit.token.{body['socketToken']}"]
    async with connect(body["socketUrl"], subprotocols=offered, open_timeout=WITHIN) as ws:
        welcome = json.loads(await ws.recv())
        assert (welcome["type"], welcome["mediaMode"]) == ("welcome", "sfu")
        offer = DescriptionData(SessionDescription("offer", "v=0\r\n"))
        await ws.send(encode(SignalTo(to="someone", data=offer, id="s1")))
        async with asyncio.timeout(WITHIN):
            while (frame := json.loads(await ws.recv()))["type"] != "error":
                pass
    assert (frame["errorCode"], frame["ref"]) == (10004, "s1")
    assert "goes through the SFU (mediaMode sfu)" in frame["errorMsg"]


async def test_serve_in_sfu_mode_uses_the_janus_it_is_given(
    janus: RunningJanus, inspector: Any, tmp_path: Path
) -> None:
    """``tavkit serve --media-mode sfu --janus-url URL --janus-secret-file FILE`` (the
    secret out of the process list and the environment) answers enter and welcome with
    mediaMode sfu, makes the session's room in that Janus when a member's socket opens,
    and destroys it when the server stops."""
    key = random_key()
    secret_file = tmp_path / "api_secret"
    secret_file.write_text(janus.api_secret + "\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    env = {**clean, "TAVKIT_DATA_DIR": str(tmp_path)}
    args = ["serve", "--port", "0", "--app", f"{APP_ID}:{key}", "--log-level", "warning"]
    args += ["--media-mode", "sfu", "--janus-url", janus.url]
    args += ["--janus-secret-file", str(secret_file)]
    process = start_tavkit(args, env)
    try:
        url = await asyncio.wait_for(asyncio.to_thread(served_url, process), 60)
        headers = {
            "X-TAvKit-SdkAppId": str(APP_ID),
            "X-TAvKit-UserId": "alice",
            "X-TAvKit-UserSig": gen_user_sig(APP_ID, key, "alice", 600),
        }
        async with httpx.AsyncClient(base_url=url, timeout=WITHIN) as http:
            body = (await http.post("/v1/rooms/8/enter", headers=headers)).json()
        assert body["mediaMode"] == "sfu"
        offered: Any = ["tavkit.v1", f"tavkit.token.{body['socketToken']}"]
        async with connect(body["socketUrl"], subprotocols=offered, open_timeout=WITHIN) as ws:
            assert json.loads(await ws.recv())["mediaMode"] == "sfu"
            async with asyncio.timeout(WITHIN):
                while not await inspector.room_exists(body["roomUuid"]):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.to_thread(process.wait, 30)
    assert not await inspector.room_exists(body["roomUuid"])


def start_tavkit(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m tavkit ARGS`` with ``env``, its output (both streams) in a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "tavkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def served_url(process: subprocess.Popen[str]) -> str:
    """Read ``tavkit serve``'s output until it prints the URL it serves on."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "tavkit serving on " in line:
            return line.split("tavkit serving on ", 1)[1].split()[0]
    raise AssertionError("tavkit serve stopped:\n" + "".join(seen))


def test_serve_refuses_sfu_without_a_janus(tmp_path: Path) -> None:
    """``tavkit serve --media-mode sfu`` without a Janus URL does not start: it says what
    is missing and exits 2."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAVKIT_")}
    process = subprocess.run(
        [sys.executable, "-m", "tavkit", "serve", "--media-mode", "sfu", "--port", "0"],
        capture_output=True,
        text=True,
        env={**clean, "TAVKIT_DATA_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert process.returncode == 2
    assert "media mode sfu needs a Janus: give --janus-url (TAVKIT_JANUS_URL)" in process.stderr


async def test_members_are_told_when_janus_dies(participant: Any, tmp_path: Path) -> None:
    """Janus killed mid-call: tavkit notices its session end and tells each member of an
    SFU room with a clear error (server 10000), rather than frozen media and silence."""
    running, process = launch(tmp_path / "janus")
    try:
        with sfu_server(running, tmp_path / "tavkit") as server:
            alice = await Participant.enter(
                server, "alice", host_addresses=[running.address], source=small_pattern(0)
            )
            try:
                bob = await Participant.enter(
                    server, "bob", host_addresses=[running.address], source=small_pattern(1)
                )
                try:
                    await bob.wait_for_video_from("alice", FRAMES, within=WITHIN)
                    process.kill()
                    for member in (alice, bob):
                        await member.wait_for(lambda m=member: bool(m.errors), "an error")
                        (error,) = member.errors
                        assert (error["module"], error["errorCode"]) == ("server", 10000)
                        assert "the media server went away" in error["errorMsg"]
                finally:
                    await bob.aclose()
            finally:
                await alice.aclose()
    finally:
        stop_janus(process)


async def test_a_member_pauses_and_resumes_a_stream_and_bad_layer_choices_are_refused(
    participant: Any, janus: RunningJanus
) -> None:
    """``media-layers`` on a member's own subscription: ``paused`` (``kit.choose_layers``)
    stops a member's video at Janus and ``high`` brings it back; a mid the subscription
    lacks and an audio mid are refused with server 10004 naming the field; a choice for
    an old subscription is ignored."""
    await participant("alice", host_addresses=[janus.address], source=small_pattern(0))
    bob = await participant("bob", host_addresses=[janus.address], source=small_pattern(1))
    await bob.wait_for_video_from("alice", FRAMES, within=WITHIN)
    (subscription,) = [c for c in bob.kit.connections() if c.role == "subscription"]
    assert subscription.user_ids == ("alice",) and subscription.subscription is not None
    kinds = {t.mid: t.kind for t in subscription.pc.getTransceivers()}
    video = next(mid for mid, kind in kinds.items() if kind == "video")
    audio = next(mid for mid, kind in kinds.items() if kind == "audio")
    assert subscription.feeds[video] == "alice"
    number = subscription.subscription

    bob.kit.choose_layers({"alice": "paused"})
    await asyncio.sleep(1.0)  # what was in flight
    before = bob.video_frames_from("alice")
    await asyncio.sleep(1.5)
    assert bob.video_frames_from("alice") - before <= 1
    bob.kit.choose_layers({"alice": "high"})
    await bob.wait_for_video_from("alice", FRAMES, more=True, within=WITHIN)

    room = bob.kit._room  # the kit never sends a bad choice: these go on its socket raw
    assert room is not None and room.socket is not None
    socket = room.socket
    await socket.send(MediaLayers(number, (StreamLayer("99", "low"),), id="no-such"))
    await socket.send(MediaLayers(number, (StreamLayer(audio, "low"),), id="audio"))
    await socket.send(MediaLayers(number + 5, (StreamLayer("99", "low"),), id="old"))
    await bob.wait_for(lambda: len(bob.errors) >= 2, "the refusals")
    await asyncio.sleep(0.5)  # a third (for "old") would have come by now
    first, second = bob.errors
    assert (first["module"], first["errorCode"]) == ("server", 10004)
    assert "media-layers.layers[0].mid" in first["errorMsg"] and "'99'" in first["errorMsg"]
    assert (second["module"], second["errorCode"]) == ("server", 10004)
    assert "is audio, not video" in second["errorMsg"]
    assert len(bob.errors) == 2
