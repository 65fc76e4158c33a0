"""String rooms (TRTC's strRoomId) over REST, on both databases: a room of their own kind.

A string room lives at ``/v1/str-rooms/{strRoomId}`` (percent-encoded); the room
``"123"`` is not the room ``123``, whose path is ``/v1/rooms/123``.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
from TLSSigAPIv2 import TLSSigAPIv2

from tavkit.auth import decode_sig
from tavkit.errors import AvkitCode, ServerCode
from tavkit.server import AppConfig
from tavkit.server.signaling.tokens import load_or_create_secret, verify

from ._util import expect_error

if TYPE_CHECKING:
    from conftest import ServerFactory

ODD = "lobby#1?a=b&c%d"
"""A string room whose characters mean something in a URL."""
PMK_APP = AppConfig(1400000003, "fedcba9876543210" * 4, require_private_map_key=True)


def at(room: str, call: str = "enter") -> str:
    """The REST path of ``call`` in the string room ``room``."""
    return f"/v1/str-rooms/{quote(room, safe='')}/{call}"


async def test_a_string_room_is_entered_beaten_listed_and_left(client, server):
    """enter, heartbeat, users and exit work in a string room; roomId comes back a string."""
    entered = await client.post(at(ODD), headers=server.headers("alice"))
    assert entered.status_code == 200, entered.text
    body = entered.json()
    assert body["roomId"] == ODD
    claims = verify(load_or_create_secret(server.settings.data_dir), body["socketToken"])
    assert claims.room_id == ODD
    bob = (await client.post(at(ODD), headers=server.headers("bob"))).json()
    assert bob["roomUuid"] == body["roomUuid"]
    assert [m["userId"] for m in bob["members"]] == ["alice"]
    beat = await client.post(at(ODD, "heartbeat"), headers=server.headers("alice"))
    assert beat.json()["roomUuid"] == body["roomUuid"]
    users = await client.get(at(ODD, "users"), headers=server.headers("alice"))
    assert [m["userId"] for m in users.json()["members"]] == ["alice", "bob"]
    left = await client.post(at(ODD, "exit"), headers=server.headers("alice"))
    assert left.json() == {"roomUuid": body["roomUuid"]}
    again = await client.post(at(ODD, "heartbeat"), headers=server.headers("alice"))
    assert '"lobby#1?a=b&c%d"' in expect_error(again, ServerCode.USER_EXITED)


async def test_a_number_and_the_same_digits_as_a_string_are_separate_rooms(client, server):
    """Members of room 123 and of room "123" never see each other; each has its own session."""
    numeric = (await client.post("/v1/rooms/123/enter", headers=server.headers("alice"))).json()
    string = (await client.post(at("123"), headers=server.headers("bob"))).json()
    assert numeric["roomId"] == 123 and string["roomId"] == "123"
    assert numeric["roomUuid"] != string["roomUuid"]
    assert string["members"] == []
    carol = (await client.post(at("123"), headers=server.headers("carol"))).json()
    assert [m["userId"] for m in carol["members"]] == ["bob"]
    users = await client.get("/v1/rooms/123/users", headers=server.headers("alice"))
    assert [m["userId"] for m in users.json()["members"]] == ["alice"]
    # Alice is in 123, not in "123": the string room's routes do not know her.
    wrong = await client.post(at("123", "heartbeat"), headers=server.headers("alice"))
    assert 'in room 123, not room "123"' in expect_error(wrong, ServerCode.ROOM_MISMATCH)
    wrong = await client.post("/v1/rooms/123/heartbeat", headers=server.headers("bob"))
    assert 'in room "123", not room 123' in expect_error(wrong, ServerCode.ROOM_MISMATCH)
    rooms = (await client.get("/v1/admin/rooms", headers=server.admin_headers())).json()
    by_room = {repr(r["roomId"]): len(r["members"]) for r in rooms["rooms"]}
    assert by_room == {"123": 1, "'123'": 2}
    # Moving from one to the other is a move, not a rejoin.
    moved = (await client.post(at("123"), headers=server.headers("alice"))).json()
    assert moved["roomUuid"] == string["roomUuid"]
    gone = await client.get("/v1/rooms/123/users", headers=server.headers("alice"))
    expect_error(gone, ServerCode.ROOM_MISMATCH)


async def test_bad_string_rooms_are_10004_never_a_500(client, server):
    """Too long, empty, or outside TRTC's characters: server 10004 naming the rule, no session."""
    cases = {
        "x" * 65: "longer than 64 bytes",
        "": "must not be empty",
        "with space": "may hold only",
        "é": "may hold only",
        "a/b": "may hold only",
        "a\nb": "may hold only",
        "a,b": "may hold only",
    }
    for room, why in cases.items():
        for call in ("enter", "heartbeat", "exit", "users"):
            method = client.get if call == "users" else client.post
            response = await method(at(room, call), headers=server.headers("alice"))
            assert why in expect_error(response, ServerCode.INVALID_PARAMETER), (room, call)
    admin = server.admin_headers()
    for path in ("close", "users/alice/remove", "recording/start", "recording/stop"):
        response = await client.post(f"/v1/admin/str-rooms/{'x' * 65}/{path}", headers=admin)
        expect_error(response, ServerCode.INVALID_PARAMETER)
    rooms = (await client.get("/v1/admin/rooms", headers=admin)).json()
    assert rooms["rooms"] == []
    # The numeric form is as strict as before.
    response = await client.post("/v1/rooms/abc/enter", headers=server.headers("alice"))
    expect_error(response, ServerCode.INVALID_PARAMETER)


async def test_the_admin_closes_and_removes_in_string_rooms_only(client, server):
    """Admin close/remove on "55" act on the string room and leave room 55 alone."""
    admin = server.admin_headers()
    for user in ("alice", "bob"):
        assert (await client.post(at("55"), headers=server.headers(user))).status_code == 200
    numeric = (await client.post("/v1/rooms/55/enter", headers=server.headers("carol"))).json()
    removed = await client.post("/v1/admin/str-rooms/55/users/alice/remove", headers=admin)
    assert removed.status_code == 200, removed.text
    absent = await client.post("/v1/admin/rooms/55/users/bob/remove", headers=admin)
    assert "not in room 55" in expect_error(absent, ServerCode.USER_EXITED)
    closed = await client.post("/v1/admin/str-rooms/55/close", headers=admin)
    assert closed.status_code == 200, closed.text
    assert closed.json()["roomUuid"] != numeric["roomUuid"]
    again = await client.post("/v1/admin/str-rooms/55/close", headers=admin)
    assert '"55" has no open session' in expect_error(again, ServerCode.ROOM_CLOSED)
    users = await client.get("/v1/rooms/55/users", headers=server.headers("carol"))
    assert [m["userId"] for m in users.json()["members"]] == ["carol"]


async def test_history_and_the_dashboard_show_the_string_room(client, server):
    """The session record and the dashboard's sessions list give roomId as the string."""
    entered = (await client.post(at(ODD), headers=server.headers("alice"))).json()
    await client.post("/v1/rooms/77/enter", headers=server.headers("bob"))
    await client.post(at(ODD, "exit"), headers=server.headers("alice"))
    record = await client.get(
        f"/v1/sessions/{entered['roomUuid']}", headers=server.headers("alice")
    )
    assert record.json()["roomId"] == ODD
    assert [m["leaveReason"] for m in record.json()["members"]] == ["exit"]
    listed = await client.get("/v1/admin/sessions", headers=server.admin_headers())
    assert listed.status_code == 200, listed.text
    rooms = {s["roomUuid"]: s["roomId"] for s in listed.json()["sessions"]}
    assert rooms[entered["roomUuid"]] == ODD
    assert sorted(map(repr, rooms.values())) == sorted([repr(ODD), "77"])


def official_key(
    app: AppConfig, user: str, *, room_id: int = 0, room_str: str | None = None
) -> str:
    """A privateMapKey made by the official tls-sig-api-v2 package (its userbuf packed by hand)."""
    api = TLSSigAPIv2(app.sdk_app_id, app.key)
    issued = decode_sig(api.gen_sig(user, 3600)).time
    name = user.encode()
    userbuf = struct.pack(">BH", 0 if room_str is None else 1, len(name)) + name
    userbuf += struct.pack(">IIIII", app.sdk_app_id, room_id, issued + 3600, 255, 0)
    if room_str is not None:
        userbuf += struct.pack(">H", len(room_str.encode())) + room_str.encode()
    return str(api.gen_sig_with_userbuf(user, 3600, userbuf))


async def test_official_string_room_keys_open_their_room_and_no_other(
    server_factory: ServerFactory,
):
    """Keys from tls-sig-api-v2 for "42" open "42" only; a key for 42 opens 42 only (else 87)."""
    server = server_factory(apps=(PMK_APP,))
    app = PMK_APP

    def headers(user: str, pmk: str) -> dict[str, str]:
        return server.headers(user, sig=server.sig(user, app=app), pmk=pmk, app_id=app.sdk_app_id)

    string_key = official_key(app, "alice", room_str="42")
    numeric_key = official_key(app, "bob", room_id=42)
    odd_key = official_key(app, "carol", room_str=ODD)
    async with httpx.AsyncClient(base_url=server.url) as client:
        refused = await client.post("/v1/rooms/42/enter", headers=headers("alice", string_key))
        assert "key for room '42'" in expect_error(refused, AvkitCode.PRIVATE_MAP_KEY_WRONG)
        refused = await client.post(at("42"), headers=headers("bob", numeric_key))
        expect_error(refused, AvkitCode.PRIVATE_MAP_KEY_WRONG)
        refused = await client.post(at("42x"), headers=headers("alice", string_key))
        expect_error(refused, AvkitCode.PRIVATE_MAP_KEY_WRONG)
        string = await client.post(at("42"), headers=headers("alice", string_key))
        assert string.status_code == 200, string.text
        numeric = await client.post("/v1/rooms/42/enter", headers=headers("bob", numeric_key))
        assert numeric.status_code == 200, numeric.text
        odd = await client.post(at(ODD), headers=headers("carol", odd_key))
        assert odd.status_code == 200, odd.text
        assert string.json()["roomUuid"] != numeric.json()["roomUuid"]
        assert string.json()["members"] == [] and numeric.json()["members"] == []
