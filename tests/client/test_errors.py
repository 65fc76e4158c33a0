"""The client's failures: the seed's codes through on_error and as typed exceptions."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from tavkit.client import DeviceSource, FileSource
from tavkit.errors import AvkitError, HttpError, ServerCode, ServerError, TrtcError

from ._util import RecordingListener, enter, make_kit, receiving, until


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, read back, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_bad_signature_reports_70346_and_sends_no_media(sqlite_server_factory: Any) -> None:
    """A userSig signed with the wrong key: on_error avkit 70346, start raises, nobody sees us."""
    server = sqlite_server_factory()
    other = sqlite_server_factory()  # another app key: its signatures are wrong here
    watcher_events, events = RecordingListener(), RecordingListener()
    async with make_kit(server.url) as watcher, make_kit(server.url) as intruder:
        await enter(watcher, server, "watcher", 201, watcher_events)
        with pytest.raises(AvkitError) as caught:
            await intruder.start(
                sdk_app_id=server.app_id,
                user_id="intruder",
                user_sig=other.sig("intruder"),
                room_id=201,
                listener=events,
            )
        assert caught.value.error_code == 70346
        assert [(e["module"], e["errorCode"]) for e in events.errors()] == [("avkit", 70346)]
        assert intruder.closed and intruder.peers_seen == {} and intruder.room_uuid is None
        assert intruder.frames_sent == {}
        assert watcher.members == []
        assert not any(name == "on_user_enter" for name in watcher_events.names())


async def test_full_room_reports_14000(sqlite_server_factory: Any) -> None:
    """Entering a room that already has max_members members is server 14000."""
    server = sqlite_server_factory(max_members=1)
    events = RecordingListener()
    async with make_kit(server.url) as first, make_kit(server.url) as second:
        await enter(first, server, "first", 202)
        with pytest.raises(ServerError) as caught:
            await enter(second, server, "second", 202, events)
        assert caught.value.error_code == 14000
        assert events.errors()[0]["module"] == "server"
        assert events.errors()[0]["errorCode"] == 14000
        assert first.members == []


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"user_id": ""}, 10002),
        ({"sdk_app_id": 0}, 10003),
        ({"user_sig": " "}, 10004),
        ({"room_id": 0}, 10005),
        ({"room_id": None}, 10005),
        ({"room_id": ""}, 10005),
        ({"room_id": None, "str_room_id": ""}, 10005),
    ],
)
async def test_missing_options_are_the_seeds_avkit_codes(
    options: dict[str, Any], code: int
) -> None:
    """start() without a required option reports avkit 10002-10005 before touching the network."""
    events = RecordingListener()
    kit = make_kit(f"http://127.0.0.1:{_closed_port()}")
    arguments: dict[str, Any] = {
        "sdk_app_id": 1400000001,
        "user_id": "u",
        "user_sig": "sig",
        "room_id": 1,
        "listener": events,
    }
    arguments.update(options)
    with pytest.raises(AvkitError) as caught:
        await kit.start(**arguments)
    assert caught.value.error_code == code
    assert events.errors() == [caught.value.to_dict()]


@pytest.mark.parametrize(
    ("room", "why"),
    [
        ({"room_id": 2**32}, "in 1..4294967295"),
        ({"room_id": "no spaces"}, "roomId may hold only"),
        ({"room_id": None, "str_room_id": "x" * 65}, "strRoomId is longer than 64 bytes"),
        ({"room_id": 1, "str_room_id": "lobby"}, "not both"),
    ],
)
async def test_bad_rooms_are_server_10004_before_any_network(
    room: dict[str, Any], why: str
) -> None:
    """A room the server would refuse (range, TRTC's rules, both kinds) is 10004, locally."""
    events = RecordingListener()
    kit = make_kit(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ServerError) as caught:
        await kit.start(sdk_app_id=1400000001, user_id="u", user_sig="sig", listener=events, **room)
    assert caught.value.code == ServerCode.INVALID_PARAMETER and why in caught.value.message
    assert events.errors() == [caught.value.to_dict()]


async def test_unreachable_server_is_http_10000_after_retries() -> None:
    """A server that refuses connections: the bounded retries run out into http 10000."""
    events = RecordingListener()
    kit = make_kit(f"http://127.0.0.1:{_closed_port()}", http_retries=2, http_timeout=2.0)
    with pytest.raises(HttpError) as caught:
        await kit.start(
            sdk_app_id=1400000001, user_id="u", user_sig="sig", room_id=1, listener=events
        )
    assert caught.value.error_code == 10000
    assert "3 attempts" in caught.value.message
    assert events.errors()[0]["module"] == "http"


async def test_unreadable_file_source_is_trtc_1301_and_gives_the_place_back(
    sqlite_server_factory: Any, tmp_path: Any
) -> None:
    """A file source that cannot be played is trtc -1301, after which we are not in the room."""
    server = sqlite_server_factory()
    events = RecordingListener()
    async with make_kit(server.url) as watcher:
        await enter(watcher, server, "watcher", 204)
        kit = make_kit(server.url, source=FileSource(tmp_path / "missing.mp4"))
        with pytest.raises(TrtcError) as caught:
            await enter(kit, server, "u", 204, events)
        assert caught.value.error_code == -1301
        assert [(e["module"], e["errorCode"]) for e in events.errors()] == [("trtc", -1301)]
        assert kit.closed and kit.peers_seen == {}
        # The source is opened after enter (privileges decide what it opens): the
        # membership it took is given back at once, not left to time out.
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            users = await http.get("/v1/rooms/204/users", headers=server.headers("watcher"))
        assert [m["userId"] for m in users.json()["members"]] == ["watcher"]


async def test_missing_capture_devices_are_trtc_errors(tmp_path: Any) -> None:
    """No camera here: a device source fails with -1301, a missing microphone with -1302."""
    camera = DeviceSource(video=str(tmp_path / "video9"), audio=None)
    with pytest.raises(TrtcError) as caught:
        await camera.open()
    assert caught.value.error_code == -1301
    microphone = DeviceSource(video=None, audio="tavkit-no-such-device")
    with pytest.raises(TrtcError) as caught:
        await microphone.open()
    assert caught.value.error_code == -1302


async def test_removed_member_gets_an_error_and_the_call_ends(sqlite_server_factory: Any) -> None:
    """An admin removing a member ends its call with server 14004 reported to on_error."""
    import httpx

    server = sqlite_server_factory()
    events = RecordingListener()
    async with make_kit(server.url) as ann, make_kit(server.url) as bob:
        await enter(ann, server, "ann", 203)
        await enter(bob, server, "bob", 203, events)
        await until(receiving(ann, "bob"), "ann decodes bob")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            response = await http.post(
                "/v1/admin/rooms/203/users/bob/remove", headers=server.admin_headers()
            )
        assert response.status_code == 200
        await until(lambda: bob.closed, "bob's call ends")
        assert [e["errorCode"] for e in events.errors()] == [14004]
        await until(lambda: ann.members == [], "ann sees bob go")
