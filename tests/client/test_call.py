"""Python clients calling each other through a real server, over loopback."""

from __future__ import annotations

import array
import asyncio
from typing import Any

import httpx
from av import AudioFrame, VideoFrame

from tavkit.auth import Privilege
from tavkit.client import TAvKit
from tavkit.client.connections import sent_streams

from ._util import (
    RecordingListener,
    enter,
    frames_from,
    make_kit,
    receiving,
    small_pattern,
    until,
)


class MediaProbe:
    """An ``on_frame`` sink remembering how loud and how bright the latest frames were."""

    def __init__(self) -> None:
        self.peak: dict[str, int] = {}
        self.luma: dict[str, float] = {}

    def __call__(self, user_id: str, frame: Any) -> None:
        if isinstance(frame, AudioFrame):
            samples = array.array("h", bytes(frame.planes[0]))
            self.peak[user_id] = max(abs(min(samples)), abs(max(samples)))
        elif isinstance(frame, VideoFrame):
            luma = bytes(frame.planes[0])
            self.luma[user_id] = sum(luma) / len(luma)


async def test_two_clients_exchange_audio_and_video(sqlite_server_factory: Any) -> None:
    """Two Python clients in one room each decode the other's audio and video; names are logged."""
    server = sqlite_server_factory()
    alice_events, bob_events = RecordingListener(), RecordingListener()
    async with make_kit(server.url) as alice, make_kit(server.url) as bob:
        await enter(alice, server, "alice", 101, alice_events)
        await enter(bob, server, "bob", 101, bob_events)
        await until(receiving(alice, "bob", video=20, audio=40), "alice decodes bob")
        await until(receiving(bob, "alice", video=20, audio=40), "bob decodes alice")

        assert alice.room_uuid == bob.room_uuid
        assert alice.members == ["bob"] and bob.members == ["alice"]
        assert alice.peers["bob"].connected and bob.peers["alice"].connected
        assert (alice.peers["bob"].width, alice.peers["bob"].height) == (320, 240)
        assert ("on_user_enter", "bob") in alice_events.events
        assert ("on_user_info", ["alice"]) in bob_events.events
        assert bob.user_info["alice"]["userName"] == "name of alice"
        assert alice.errors == [] and bob.errors == []
        room_uuid = bob.room_uuid
    # The names bob's listener gave went to the server's logs, for the dashboard.
    async with httpx.AsyncClient(base_url=server.url, headers=server.admin_headers()) as http:
        logs = (await http.get(f"/v1/sessions/{room_uuid}/logs")).json()["logs"]
    named = sorted((line["userId"], line["data"]) for line in logs if line["event"] == "user-info")
    assert named == [
        ("alice", {"names": {"bob": "name of bob"}}),
        ("bob", {"names": {"alice": "name of alice"}}),
    ]


async def test_mute_and_camera_off_reach_the_other_side(sqlite_server_factory: Any) -> None:
    """Muting sends silence and a member-state; camera off sends black; both fire listeners."""
    server = sqlite_server_factory()
    probe = MediaProbe()
    alice_events, bob_events = RecordingListener(), RecordingListener()
    async with make_kit(server.url) as alice, make_kit(server.url, on_frame=probe) as bob:
        await enter(alice, server, "alice", 102, alice_events)
        await enter(bob, server, "bob", 102, bob_events)
        await until(receiving(bob, "alice", video=10, audio=20), "bob decodes alice")
        await until(lambda: probe.peak.get("alice", 0) > 3000, "the tone is audible")
        await until(lambda: probe.luma.get("alice", 0.0) > 60, "the pattern is visible")

        await alice.mute(True)
        await until(lambda: probe.peak["alice"] < 300, "bob hears silence")
        await until(
            lambda: ("on_user_state", "alice", True, True) in bob_events.events,
            "bob is told alice muted",
        )
        assert ("on_muted", True) in alice_events.events

        await alice.enable_camera(False)
        await until(lambda: probe.luma["alice"] < 30, "bob sees black")
        await until(
            lambda: ("on_user_state", "alice", True, False) in bob_events.events,
            "bob is told the camera is off",
        )

        await alice.mute(False)
        await alice.enable_camera(True)
        await until(lambda: probe.peak["alice"] > 3000, "bob hears the tone again")
        await until(lambda: probe.luma["alice"] > 60, "bob sees the pattern again")
        assert alice_events.names().count("on_muted") == 2


async def test_hangup_fires_handup_and_the_other_sees_the_leave(sqlite_server_factory: Any) -> None:
    """hangup() fires on_handup, ends the call, and the other side gets on_user_leave(exit)."""
    server = sqlite_server_factory()
    alice_events, bob_events = RecordingListener(), RecordingListener()
    async with make_kit(server.url) as alice:
        bob = make_kit(server.url)
        await enter(alice, server, "alice", 103, alice_events)
        await enter(bob, server, "bob", 103, bob_events)
        await until(receiving(alice, "bob"), "alice decodes bob")

        await bob.hangup()
        assert bob.closed
        assert bob_events.names().count("on_handup") == 1
        await until(
            lambda: ("on_user_leave", "bob", "exit") in alice_events.events, "alice sees bob leave"
        )
        assert alice.members == []
        assert "bob" not in alice.peers and alice.peers_seen["bob"].video_frames >= 10
        await bob.hangup()  # idempotent
        assert bob_events.names().count("on_handup") == 1
        assert not alice.closed


async def test_switch_camera_changes_source_without_renegotiating(
    sqlite_server_factory: Any,
) -> None:
    """switch_camera() fires on_switch_camera and the peer keeps receiving, now the back source."""
    server = sqlite_server_factory()
    probe = MediaProbe()
    alice_events = RecordingListener()
    back = small_pattern(variant=1)
    async with (
        make_kit(server.url, back_source=back) as alice,
        make_kit(server.url, on_frame=probe) as bob,
    ):
        await enter(alice, server, "alice", 104, alice_events)
        await enter(bob, server, "bob", 104)
        await until(receiving(bob, "alice"), "bob decodes alice")

        assert alice.switch_camera() is False
        before = frames_from(bob, "alice")[0]
        await until(lambda: frames_from(bob, "alice")[0] > before + 15, "video keeps flowing")
        assert alice_events.events[-1] == ("on_switch_camera", False)
        assert alice.switch_camera() is True
        assert ("on_switch_camera", True) in alice_events.events
        assert bob.peers["alice"].rebuilds == 0


async def test_three_clients_form_a_mesh(sqlite_server_factory: Any) -> None:
    """With three members every client decodes both others (one peer connection per pair:
    ``kit.connections()`` lists a ``mesh`` connection per other member, and each sends
    audio and video on both)."""
    server = sqlite_server_factory()
    kits = [make_kit(server.url) for _ in range(3)]
    names = ["ann", "ben", "cat"]
    try:
        for kit, name in zip(kits, names, strict=True):
            await enter(kit, server, name, 105)
        for kit, name in zip(kits, names, strict=True):
            for other in names:
                if other != name:
                    await until(receiving(kit, other), f"{name} decodes {other}")
        assert sorted(kits[0].members) == ["ben", "cat"]
        connections = kits[0].connections()
        assert [(c.role, c.user_ids) for c in connections] == [
            ("mesh", ("ben",)),
            ("mesh", ("cat",)),
        ]
        sent = [kind for kind, _ in await sent_streams(connections)]
        assert sent == ["audio", "audio", "video", "video"]
    finally:
        for kit in kits:
            await kit.aclose()


async def test_simultaneous_starts_connect_despite_glare(sqlite_server_factory: Any) -> None:
    """Two clients starting at the same moment end up connected whoever offered first."""
    server = sqlite_server_factory()
    async with make_kit(server.url) as ann, make_kit(server.url) as bob:
        await asyncio.gather(enter(ann, server, "ann", 106), enter(bob, server, "bob", 106))
        await until(receiving(ann, "bob"), "ann decodes bob")
        await until(receiving(bob, "ann"), "bob decodes ann")


async def test_per_peer_encoding_also_works(sqlite_server_factory: Any) -> None:
    """With encode_once=False (aiortc encodes per sender) the call carries media as well."""
    server = sqlite_server_factory()
    async with (
        make_kit(server.url, encode_once=False) as ann,
        make_kit(server.url, encode_once=False) as bob,
    ):
        await enter(ann, server, "ann", 107)
        await enter(bob, server, "bob", 107)
        await until(receiving(ann, "bob"), "ann decodes bob")
        await until(receiving(bob, "ann"), "bob decodes ann")


async def test_async_listener_callbacks_are_awaited(sqlite_server_factory: Any) -> None:
    """A listener whose callbacks are coroutines gets them run by the kit."""
    server = sqlite_server_factory()
    entered: list[str] = []

    class AsyncListener:
        async def on_user_enter(self, user_id: str) -> None:
            await asyncio.sleep(0)
            entered.append(user_id)

    async with make_kit(server.url) as ann, make_kit(server.url) as bob:
        await enter(ann, server, "ann", 108, AsyncListener())
        await enter(bob, server, "bob", 108)
        await until(lambda: entered == ["bob"], "the coroutine ran")


async def test_remote_track_copies_can_be_read(sqlite_server_factory: Any) -> None:
    """on_remote_track hands out tracks the application can read frames from."""
    server = sqlite_server_factory()
    tracks: dict[str, Any] = {}

    class TrackListener:
        def on_remote_track(self, user_id: str, track: Any) -> None:
            tracks[f"{user_id}:{track.kind}"] = track

    async with make_kit(server.url) as ann, make_kit(server.url) as bob:
        await enter(ann, server, "ann", 109, TrackListener())
        await enter(bob, server, "bob", 109)
        await until(lambda: len(tracks) == 2, "both of bob's tracks arrive")
        async with asyncio.timeout(10):
            video = await tracks["bob:video"].recv()
            audio = await tracks["bob:audio"].recv()
        assert isinstance(video, VideoFrame) and isinstance(audio, AudioFrame)


def test_tavkit_is_exported_from_the_package() -> None:
    """``from tavkit import TAvKit`` gives the client class."""
    import tavkit

    assert tavkit.TAvKit is TAvKit
    assert "TAvKit" in tavkit.__all__


async def test_a_receive_only_key_sends_nothing_and_receives_everything(
    sqlite_server_factory: Any,
) -> None:
    """With a VIEWER privateMapKey (enter + receive, 42) the client only watches."""
    server = sqlite_server_factory()
    async with make_kit(server.url) as host, make_kit(server.url) as viewer:
        await enter(host, server, "host", 110)
        viewer_key = server.pmk("viewer", 110, Privilege.VIEWER)
        await enter(viewer, server, "viewer", 110, private_map_key=viewer_key)
        await until(receiving(viewer, "host"), "the viewer decodes the host")
        await until(lambda: host.peers["viewer"].connected, "the host is connected to the viewer")
        assert viewer.frames_sent == {}
        assert frames_from(host, "viewer") == (0, 0)


async def test_reconnect_rebuilds_the_sessions_this_side_offered(
    sqlite_server_factory: Any,
) -> None:
    """reconnect() renegotiates on a fresh connection only where we offered; media resumes."""
    server = sqlite_server_factory()
    async with make_kit(server.url) as ann, make_kit(server.url) as bob:
        await enter(ann, server, "ann", 111)
        await enter(bob, server, "bob", 111)  # bob is the newcomer: he offered
        await until(receiving(ann, "bob"), "ann decodes bob")
        first = bob.peers["ann"]

        assert ann.reconnect() == []
        assert bob.reconnect() == ["ann"]
        video_at_ann, video_at_bob = frames_from(ann, "bob")[0], frames_from(bob, "ann")[0]
        await until(lambda: frames_from(ann, "bob")[0] > video_at_ann + 15, "ann decodes again")
        await until(lambda: frames_from(bob, "ann")[0] > video_at_bob + 15, "bob decodes again")
        assert bob.peers["ann"] is first and first.rebuilds == 1
        assert ann.members == ["bob"] and bob.members == ["ann"]


async def test_two_clients_talk_in_a_string_room_apart_from_the_numeric_one(
    sqlite_server_factory: Any,
) -> None:
    """Two clients talk in string room "808"; one in room 808 (given as "808") sees neither."""
    server = sqlite_server_factory()
    async with (
        make_kit(server.url) as alice,
        make_kit(server.url) as bob,
        make_kit(server.url) as carol,
    ):
        await enter(alice, server, "alice", None, str_room_id="808")
        await enter(bob, server, "bob", None, str_room_id="808")
        await enter(carol, server, "carol", "808")  # digits as text: the numeric room, as in JS
        await until(receiving(alice, "bob", video=20, audio=40), "alice decodes bob")
        await until(receiving(bob, "alice", video=20, audio=40), "bob decodes alice")
        async with httpx.AsyncClient(base_url=server.url) as http:
            rooms = (await http.get("/v1/admin/rooms", headers=server.admin_headers())).json()
        assert {repr(r["roomId"]): len(r["members"]) for r in rooms["rooms"]} == {
            "'808'": 2,
            "808": 1,
        }
        assert alice.room_uuid == bob.room_uuid != carol.room_uuid
        assert alice.members == ["bob"] and bob.members == ["alice"]
        assert carol.members == [] and "carol" not in alice.peers_seen | bob.peers_seen
        assert alice.errors == [] and bob.errors == [] and carol.errors == []
